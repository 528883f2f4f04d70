//! The series the aggregator derives itself at ingest, not sent by any agent.

use super::super::{Kind, Metric, Section};

/// The series of a host's liveness: one point per distinct sample timestamp of every stored
/// batch, valued with the number of samples the host sent for it.
pub const HOST_SAMPLES: &str = "nines_host_samples";

/// The series the aggregator derives itself, documented in docs/metrics.md's conventions.
pub const DERIVED: &[Metric] = &[Metric {
    name: HOST_SAMPLES,
    section: Section::Host,
    unit: "samples",
    kind: Kind::Gauge,
    labels: &[],
    labels_doc: None,
    help: "Derived by the aggregator at ingest: one point per distinct sample timestamp of every stored batch, valued with the number of samples the host sent for it. Liveness is judged from it.",
}];
