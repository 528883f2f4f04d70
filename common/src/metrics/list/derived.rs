//! The series the aggregator derives itself at ingest, not sent by any agent.

use super::super::{Kind, Metric, Section};

/// The series the aggregator derives itself, documented in docs/metrics.md's conventions.
pub const DERIVED: &[Metric] = &[Metric {
    name: "nines_host_samples",
    section: Section::Host,
    unit: "samples",
    kind: Kind::Gauge,
    labels: &[],
    labels_doc: None,
    help: "Derived by the aggregator at ingest: one point per distinct sample timestamp of every stored batch, valued with the number of samples the host sent for it. Liveness is judged from it.",
}];
