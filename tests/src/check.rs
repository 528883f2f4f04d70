//! What the fault tests assert about the data an aggregator holds for a real agent: every
//! batch the agent spooled and the aggregator stored is there once, with all its points, and
//! nothing the agent saw acknowledged is missing.

use crate::cluster::{Agent, Aggregator, Pki};
use crate::wire;

/// `Ok` if `ts` holds one timestamp per second, on whole seconds, with no gap and no repeat;
/// otherwise what is wrong and where.
pub fn every_second(ts: &[i64]) -> Result<(), String> {
    let mut problems = Vec::new();
    if let Some(t) = ts.iter().find(|t| *t % 1000 != 0) {
        problems.push(format!("timestamp {t} is not on a whole second"));
    }
    for w in ts.windows(2) {
        match w[1] - w[0] {
            1000 => {}
            0 => problems.push(format!("duplicate point at {}", w[0])),
            d if d < 0 => problems.push(format!("out of order: {} after {}", w[1], w[0])),
            d => problems.push(format!(
                "gap of {} s after {} (missing {} points)",
                d / 1000,
                w[0],
                d / 1000 - 1
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.truncate(20);
        Err(problems.join("; "))
    }
}

/// What [`spooled_batches_stored_once`] found.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Highest seq stored for the host.
    pub through_seq: u64,
    /// Timestamps of the stored ticks, in order.
    pub ticks: Vec<i64>,
}

/// For a stopped agent whose first seq was `first_seq`: asks the aggregator (over the
/// protocol) which seq it stored through, and checks over the API that it holds exactly one
/// tick per seq from `first_seq` on (`agent_spool_bytes`, which the agent adds to every tick),
/// each with its memory sample too; and that the spool's ack mark is not beyond what is stored.
/// Panics with the details otherwise.
pub async fn spooled_batches_stored_once(
    client: &reqwest::Client,
    agg: &Aggregator,
    pki: &Pki,
    agent: &Agent,
    first_seq: u64,
    from_ms: i64,
) -> Stored {
    let through_seq = wire::stored_through(agg.ingest, pki, &agent.host).await;
    assert!(
        through_seq >= first_seq,
        "{}: nothing stored (through {through_seq}, first seq {first_seq})",
        agent.host
    );
    if let Some(mark) = agent.acked_mark() {
        assert!(
            mark <= through_seq,
            "{}: the agent saw seq {mark} acknowledged but the aggregator stored only through {through_seq}",
            agent.host
        );
    }
    let to_ms = nines_common::model::now_ms() + 60_000;
    let series = |name: &'static str| async move {
        let s = agg
            .query(client, &agent.host, name, None, from_ms, to_ms)
            .await;
        assert_eq!(s.len(), 1, "{}: one {name} series: {s:?}", agent.host);
        s[0].points.iter().map(|p| p.0).collect::<Vec<i64>>()
    };
    let ticks = series("agent_spool_bytes").await;
    if let Some(w) = ticks.windows(2).find(|w| w[1] <= w[0]) {
        panic!(
            "{}: ticks out of order or repeated: {} then {}",
            agent.host, w[0], w[1]
        );
    }
    // Every batch is one tick, but for the goodbye of each clean stop (`agent_stopping`), a
    // batch of its own.
    let goodbyes = agg
        .query(client, &agent.host, "agent_stopping", None, from_ms, to_ms)
        .await
        .first()
        .map_or(0, |s| s.points.len() as u64);
    let batches = through_seq - first_seq + 1 - goodbyes;
    assert_eq!(
        ticks.len() as u64,
        batches,
        "{}: seqs {first_seq}..={through_seq} are stored with {goodbyes} goodbyes, so {batches} \
         ticks should be, one each; found {} (a difference means a batch lost or stored twice)",
        agent.host,
        ticks.len()
    );
    let memory = series("memory_used_bytes").await;
    assert_eq!(
        memory, ticks,
        "{}: every stored tick has its memory sample",
        agent.host
    );
    Stored { through_seq, ticks }
}
