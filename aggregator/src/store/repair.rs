//! Repairs, when the store opens, host records that older versions let hostile input poison
//! (docs/design.md, "Poisoned marks").

use nines_common::proto::MAX_SEQ;

use super::HostRecord;

/// Repairs a host record an older version let hostile input poison, and says so; `true` if
/// it changed (docs/design.md, "Poisoned marks").
///
/// - A sequence mark above [`MAX_SEQ`] (a batch numbered near `u64::MAX` was stored) would
///   make every later batch a "duplicate", acked and dropped. The store keeps only the
///   highest mark, so the sane one it replaced is unknown: the mark becomes 0, and the agent
///   sends everything its spool still holds.
/// - A newest-sample time more than a day ahead of the clock (a point from year 10000) would
///   make the host look up for ever: it becomes the clock, so the host is judged by what it
///   sends from now on.
pub(super) fn repair(rec: &mut HostRecord, now_ms: i64) -> bool {
    let mut changed = false;
    if rec.last_seq > MAX_SEQ {
        tracing::warn!(
            host = %rec.host,
            mark = rec.last_seq,
            "stored sequence mark is above {MAX_SEQ} (a hostile or damaged batch): reset to 0, \
             so the agent's spooled batches are stored again instead of being dropped as duplicates"
        );
        rec.last_seq = 0;
        changed = true;
    }
    if rec.last_sample_ms > now_ms.saturating_add(REPAIR_FUTURE_MS) {
        tracing::warn!(
            host = %rec.host,
            last_sample_ms = rec.last_sample_ms,
            "stored newest-sample time is more than a day ahead of the clock: set to now"
        );
        rec.last_sample_ms = now_ms;
        changed = true;
    }
    changed
}

/// How far ahead of the clock a host's newest-sample time may be before it is repaired at
/// open: the largest `[ingest] max_future`.
const REPAIR_FUTURE_MS: i64 = 86_400_000;
