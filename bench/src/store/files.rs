//! What the store bench reads and does beside the store: the process's memory, the size
//! of each redb table, the hello every synthetic host says, and batches submitted together.

#[allow(unused_imports)]
use super::*;

pub(crate) fn hello_for(host: &HostId, interval_ms: u32) -> HelloWrite {
    HelloWrite {
        host: host.clone(),
        hello: Hello {
            protocol: nines_common::proto::PROTOCOL_VERSION,
            agent_version: "bench".into(),
            host_id: host.to_string(),
            boot_id: "bench".into(),
            os: "bench".into(),
            arch: std::env::consts::ARCH.into(),
            kernel: "bench".into(),
            interval_ms,
        },
        now_ms: nines_common::model::now_ms(),
    }
}

/// Resident and peak memory of this process, bytes.
pub(crate) fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Submits batches without waiting for each commit, so they share commits, then waits for all.
pub(crate) async fn write_all(
    store: &Store,
    batches: Vec<BatchWrite>,
) -> Result<(), StoreBenchError> {
    let mut pending = std::collections::VecDeque::new();
    for b in batches {
        pending.push_back(store.submit_batch(b).await?);
        if pending.len() >= 8192
            && let Some(rx) = pending.pop_front()
        {
            rx.await.map_err(|_| StoreError::Closed)??;
        }
    }
    for rx in pending {
        rx.await.map_err(|_| StoreError::Closed)??;
    }
    Ok(())
}

/// Per-table bytes of a store file (stored, metadata and fragmentation within its pages),
/// largest first, and the file size.
pub(crate) fn table_bytes(path: &Path) -> Result<(u64, Vec<(String, u64)>), StoreBenchError> {
    let file = std::fs::metadata(path)?.len();
    let db = redb::Database::open(path).map_err(|e| StoreBenchError::Other(e.to_string()))?;
    let txn = db
        .begin_read()
        .map_err(|e| StoreBenchError::Other(e.to_string()))?;
    let mut out = Vec::new();
    for handle in txn
        .list_tables()
        .map_err(|e| StoreBenchError::Other(e.to_string()))?
    {
        let t = txn
            .open_untyped_table(handle.clone())
            .map_err(|e| StoreBenchError::Other(e.to_string()))?;
        let stats = t
            .stats()
            .map_err(|e| StoreBenchError::Other(e.to_string()))?;
        out.push((
            handle.name().to_owned(),
            stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes(),
        ));
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.1));
    Ok((file, out))
}
