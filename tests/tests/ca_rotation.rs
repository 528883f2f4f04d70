//! Replacing the CA through renewals, step by step as docs/security.md ("Replacing the CA")
//! tells the operator, with the real binaries: the host is never visited, its agent never
//! restarted by hand to change certificates, and it ships throughout. At the end an agent
//! still holding a certificate of the old CA is refused.

use std::time::Duration;

use nines_tests::cluster::{Agent, Aggregator, Pki, log_tail};
use nines_tests::eventually;
use nines_tests::wire::connect;

/// Waits until the aggregator has reloaded its certificate and CA bundle `n` times.
async fn reloaded(agg: &Aggregator, n: usize) {
    eventually(Duration::from_secs(10), || async {
        let log = std::fs::read_to_string(&agg.log).unwrap_or_default();
        (log.matches("ingest certificate and CA bundle reloaded")
            .count()
            >= n)
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no reload #{n}:\n{}", log_tail(&agg.log, 20)));
}

/// Waits until `host` has sent data newer than `after_ms`; returns when it was seen.
async fn ships(agg: &Aggregator, client: &reqwest::Client, agent: &Agent, after_ms: i64) -> i64 {
    eventually(Duration::from_secs(30), || async {
        agg.last_seen_ms(client, &agent.host)
            .await
            .filter(|t| *t > after_ms)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{} stopped shipping:\n{}\n{}",
            agent.host,
            log_tail(&agent.log, 20),
            log_tail(&agg.log, 20)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_is_replaced_through_renewals_without_visiting_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let next = Pki::init(&dir.path().join("pki-next"));
    pki.issue("old-1");
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;
    let mut agent = Agent::new(dir.path(), &pki, "rot-1", agg.ingest, "");
    // Old enough to be renewed as soon as it connects.
    pki.reissue("rot-1", -20, 10);

    // 1-2. The bundle: the new CA first, then the old one; the new CA key in place.
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap();
    let old_ca = read(pki.ca());
    std::fs::write(pki.ca(), format!("{}{}", read(next.ca()), old_ca)).unwrap();
    std::fs::copy(next.dir.join("ca.key"), pki.dir.join("ca.key")).unwrap();
    reloaded(&agg, 1).await;

    // 3. The agent renews: its new certificate is from the new CA, and it now trusts both.
    let start = nines_common::model::now_ms();
    agent.start();
    agent
        .wait_for_log(
            "reconnecting with the renewed certificate",
            Duration::from_secs(20),
        )
        .await;
    let trusted = read(agent.state_dir.join("tls/ca.pem"));
    assert!(trusted.contains(read(next.ca()).trim()));
    let seen = ships(&agg, &client, &agent, start).await;

    // 4. The server certificate of the new CA.
    std::fs::copy(next.dir.join("server.key"), pki.dir.join("server.key")).unwrap();
    std::fs::copy(next.dir.join("server.pem"), pki.dir.join("server.pem")).unwrap();
    reloaded(&agg, 2).await;
    // A new connection (an agent restart is the simplest way to force one) checks it.
    agent.stop();
    agent.start();
    // Data newer than the restart: the new process ships (the old one's goodbye is newer
    // than its last tick).
    let restarted = nines_common::model::now_ms() + 1000;
    let seen = ships(&agg, &client, &agent, (seen + 1000).max(restarted)).await;

    // 5. The old CA leaves the bundle: the renewed agent goes on, an old certificate is out.
    std::fs::write(pki.ca(), read(next.ca())).unwrap();
    reloaded(&agg, 3).await;
    agent.stop();
    agent.start();
    let restarted = nines_common::model::now_ms() + 1000;
    ships(&agg, &client, &agent, (seen + 1000).max(restarted)).await;
    // A client of the old CA that trusts the new one, so that the refusal is the
    // aggregator's and not its own.
    let mut roots = rustls::RootCertStore::empty();
    for c in nines_common::tls::parse_certs(read(next.ca()).as_bytes(), "ca").unwrap() {
        roots.add(c).unwrap();
    }
    let (cert, key) = pki.agent("old-1");
    let mut old_client = rustls::ClientConfig::builder_with_provider(nines_common::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            nines_common::tls::parse_certs(read(cert).as_bytes(), "cert").unwrap(),
            nines_common::tls::parse_key(read(key).as_bytes(), "key").unwrap(),
        )
        .unwrap();
    old_client.alpn_protocols = vec![nines_common::proto::ALPN.to_vec()];
    let r = connect(
        agg.ingest,
        std::sync::Arc::new(old_client),
        "old-1",
        Duration::from_secs(5),
    )
    .await;
    assert!(r.is_err(), "a certificate of the removed CA got in");
    agent.stop();
    agg.stop();
}
