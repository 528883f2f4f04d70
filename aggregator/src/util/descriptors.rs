//! The process's file-descriptor budget: the soft `RLIMIT_NOFILE` is raised to the hard limit
//! at start, and the ingest and API connection limits are fitted into it beside a reserve for
//! the store, files and outgoing connections, so that a flood on one port can never take the
//! descriptors the other needs (docs/security.md, "Descriptor budget").

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but the two ports' connections: the store, logs, the
/// runtime, remote write, notifications, and the moment an over-limit connection is accepted
/// before it is closed.
pub const RESERVE: u64 = 256;

/// What the kernel allows when the hard limit says "unlimited" and `fs.nr_open` is unreadable.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// How the descriptor limit is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Descriptors the process may have open.
    pub limit: u64,
    /// `[ingest] max_connections` in force.
    pub ingest: usize,
    /// `[api] max_connections` in force.
    pub api: usize,
    /// The configured limits, if they did not fit and were lowered.
    pub configured: Option<(usize, usize)>,
}

impl Budget {
    /// Fits `ingest` and `api` connections into `limit` descriptors beside [`RESERVE`]: if
    /// they do not fit, both are lowered in proportion (each keeps at least 1).
    pub fn plan(limit: u64, ingest: usize, api: usize) -> Self {
        let room = limit.saturating_sub(RESERVE);
        let want = ingest as u64 + api as u64;
        if want <= room {
            return Self {
                limit,
                ingest,
                api,
                configured: None,
            };
        }
        let share = |n: usize| (u128::from(room) * n as u128 / u128::from(want.max(1))) as usize;
        let new_ingest = share(ingest).max(1);
        let new_api = (room as usize)
            .saturating_sub(new_ingest)
            .clamp(1, api.max(1));
        Self {
            limit,
            ingest: new_ingest,
            api: new_api,
            configured: Some((ingest, api)),
        }
    }

    /// One line for the log and `check-config`.
    pub fn describe(&self) -> String {
        match self.configured {
            None => format!(
                "descriptors: limit {}: [ingest] max_connections {} + [api] max_connections {} + {} reserved fit",
                self.limit, self.ingest, self.api, RESERVE
            ),
            Some((ingest, api)) => format!(
                "descriptors: limit {} does not hold [ingest] max_connections {ingest} + [api] max_connections {api} + {} reserved: \
                 lowered to {} and {}; raise LimitNOFILE (or ulimit -n) or lower max_connections",
                self.limit, RESERVE, self.ingest, self.api
            ),
        }
    }
}

fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NR_OPEN_DEFAULT)
}

/// The limit `serve` runs with: the hard limit (or what the kernel allows, if unlimited).
pub fn hard_limit() -> u64 {
    getrlimit(Resource::Nofile).maximum.unwrap_or_else(nr_open)
}

/// Raises the soft limit to the hard one, and returns the soft limit in force afterwards (the
/// old one, logged, if raising was refused).
pub fn raise() -> u64 {
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum.unwrap_or_else(nr_open);
    let soft = now.current.unwrap_or(hard);
    if soft >= hard {
        return soft;
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => hard,
        Err(e) => {
            tracing::warn!("cannot raise the descriptor limit from {soft} to {hard}: {e}");
            soft
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_fit_are_kept() {
        let b = Budget::plan(65_536, 16_384, 1024);
        assert_eq!((b.ingest, b.api, b.configured), (16_384, 1024, None));
        assert!(b.describe().contains("fit"), "{}", b.describe());
    }

    #[test]
    fn limits_that_do_not_fit_are_lowered_in_proportion_within_the_limit() {
        let b = Budget::plan(4096, 16_384, 1024);
        assert_eq!(b.configured, Some((16_384, 1024)));
        assert!(b.ingest as u64 + b.api as u64 + RESERVE <= 4096, "{b:?}");
        assert_eq!(b.ingest, 3614);
        assert_eq!(b.api, 226);
        let text = b.describe();
        assert!(
            text.contains("does not hold") && text.contains("LimitNOFILE"),
            "{text}"
        );
    }

    #[test]
    fn a_tiny_limit_still_leaves_each_port_a_connection() {
        let b = Budget::plan(100, 16_384, 1024);
        assert_eq!((b.ingest, b.api), (1, 1));
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let soft = raise();
        assert_eq!(soft, hard_limit());
        assert_eq!(getrlimit(Resource::Nofile).current, Some(soft));
    }
}
