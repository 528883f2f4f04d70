//! What queries may cost (docs/api.md, "Query limits"): matchers and regex bytes per query
//! (counted by the parser, [`crate::promql::Limits`]), a time budget per query, and how many
//! queries run at once. Queries are parsed, compiled and evaluated on blocking threads, never
//! on the async workers that answer `/healthz` and everything else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::promql::Limits;

/// The configured limits (`[api]` `query_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Per-query matcher and regex-size caps.
    pub parse: Limits,
    /// How long one query may run, waiting for its turn included.
    pub timeout: Duration,
    /// Queries evaluated at once; more wait for their turn, within `timeout`.
    pub concurrency: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            parse: Limits::default(),
            timeout: Duration::from_secs(20),
            concurrency: 2,
        }
    }
}

/// Why a query did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// No turn came before the time ran out.
    #[error("too many queries at once: none finished within {0:?}; try again")]
    Busy(Duration),
    /// The query ran out of time.
    #[error("query timed out in expression evaluation (the limit is {0:?})")]
    Timeout(Duration),
    /// The evaluation panicked (logged).
    #[error("query task failed")]
    Failed,
}

/// Admits queries within the limits, one turn each.
#[derive(Debug, Clone)]
pub struct QueryGate {
    limits: QueryLimits,
    turns: Arc<Semaphore>,
}

impl Default for QueryGate {
    fn default() -> Self {
        Self::new(QueryLimits::default())
    }
}

impl QueryGate {
    /// A gate over `limits` (a concurrency of 0 counts as 1).
    pub fn new(limits: QueryLimits) -> Self {
        Self {
            limits,
            turns: Arc::new(Semaphore::new(limits.concurrency.max(1))),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Runs `work` on a blocking thread once a turn is free, passing it the deadline it must
    /// check. The answer is abandoned at the deadline (plus a short grace for the work to
    /// notice it); the turn is held until the work itself returns, so abandoned work still
    /// counts against the concurrency and cannot pile up.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Instant) -> T + Send + 'static,
    ) -> Result<T, GateError> {
        let timeout = self.limits.timeout;
        let deadline = Instant::now() + timeout;
        let turn = tokio::time::timeout(timeout, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| GateError::Busy(timeout))?
            .map_err(|_| GateError::Busy(timeout))?;
        let task = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            work(deadline)
        });
        let grace = Duration::from_millis(250);
        let left = deadline.saturating_duration_since(Instant::now()) + grace;
        match tokio::time::timeout(left, task).await {
            Err(_) => Err(GateError::Timeout(timeout)),
            Ok(Err(e)) => {
                tracing::error!("query task: {e}");
                Err(GateError::Failed)
            }
            Ok(Ok(v)) => Ok(v),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn gate(timeout_ms: u64, concurrency: usize) -> QueryGate {
        QueryGate::new(QueryLimits {
            parse: Limits::default(),
            timeout: Duration::from_millis(timeout_ms),
            concurrency,
        })
    }

    #[tokio::test]
    async fn work_past_its_deadline_is_abandoned() {
        let g = gate(100, 1);
        let started = Instant::now();
        // Work that never looks at its deadline, the worst case.
        let r = g
            .run(|_| std::thread::sleep(Duration::from_millis(800)))
            .await;
        assert!(matches!(r, Err(GateError::Timeout(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_millis(700));
    }

    #[tokio::test]
    async fn queries_beyond_the_concurrency_wait_then_give_up() {
        let g = gate(150, 1);
        let busy = g.clone();
        let hold = tokio::spawn(async move {
            busy.run(|_| std::thread::sleep(Duration::from_millis(600)))
                .await
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let r = g.run(|_| 1).await;
        assert!(matches!(r, Err(GateError::Busy(_))), "{r:?}");
        // Abandoned at 150 ms + grace, but its turn is held until the work returns (600 ms).
        assert!(matches!(hold.await.unwrap(), Err(GateError::Timeout(_))));
        assert!(matches!(g.run(|_| 3).await, Err(GateError::Busy(_))));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The turn is back once the abandoned work has returned.
        assert_eq!(g.run(|_| 2).await.unwrap(), 2);
    }
}
