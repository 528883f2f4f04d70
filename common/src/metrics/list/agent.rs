//! The agent's own metrics, those of its checks, and the counts of its `textfile` and `push`
//! sources.

use super::super::{Kind, Metric, Section};

/// The agent's own metrics: its resources, collectors, spool and certificate.
pub(super) const AGENT: &[Metric] = &[
    Metric {
        name: "agent_collector_failures_total",
        section: Section::Agent,
        unit: "failures",
        kind: Kind::Counter {
            since: "agent start",
        },
        labels: &["collector"],
        labels_doc: None,
        help: "Failures of the collector: a file that could not be read or parsed (once per tick while it lasts), a process or mount that could not be read (a process once, see *Permissions*). Each cause is logged once. The other collectors go on; a failing collector's metrics may be partly or wholly absent.",
    },
    Metric {
        name: "agent_collector_duration_seconds",
        section: Section::Agent,
        unit: "seconds",
        kind: Kind::Gauge,
        labels: &["collector"],
        labels_doc: None,
        help: "Wall time the collector took on this tick.",
    },
    Metric {
        name: "agent_spool_bytes",
        section: Section::Agent,
        unit: "bytes",
        kind: Kind::Gauge,
        labels: &[],
        labels_doc: None,
        help: "Bytes of records in the spool's segment files (acknowledged records still in the segment being written included; the zero-filled preallocation not counted).",
    },
    Metric {
        name: "agent_spool_pending_batches",
        section: Section::Agent,
        unit: "batches",
        kind: Kind::Gauge,
        labels: &[],
        labels_doc: None,
        help: "Batches in the spool not yet acknowledged by the aggregator.",
    },
    Metric {
        name: "agent_spool_dropped_batches_total",
        section: Section::Agent,
        unit: "batches",
        kind: Kind::Counter {
            since: "agent start",
        },
        labels: &[],
        labels_doc: None,
        help: "Batches dropped from the spool because it exceeded `[spool] max_bytes` or `max_age`.",
    },
    Metric {
        name: "agent_stopping",
        section: Section::Agent,
        unit: "—",
        kind: Kind::Gauge,
        labels: &[],
        labels_doc: None,
        help: "1, sent once as the agent's last sample when it stops cleanly (SIGTERM): its timestamp is the moment it stopped, not a tick. The silence that follows is not monitored time rather than an outage (docs/design.md, \"Monitored time and liveness\").",
    },
    Metric {
        name: "agent_certificate_expiry_timestamp_seconds",
        section: Section::Agent,
        unit: "seconds since the epoch",
        kind: Kind::Gauge,
        labels: &[],
        labels_doc: None,
        help: "When the agent certificate in force expires. It is renewed at two thirds of its life (docs/security.md); a value less than a week away means renewal is failing.",
    },
];

/// The `checks` collector: service checks and their performance data.
pub(super) const CHECKS: &[Metric] = &[
    Metric {
        name: "check_status",
        section: Section::Checks,
        unit: "state",
        kind: Kind::Gauge,
        labels: &["check"],
        labels_doc: None,
        help: "0 ok, 1 warning, 2 critical, 3 unknown: the plugin's exit code; any other code, a plugin killed by a signal, one that timed out or could not be started is 3. The aggregator's `check_failed` alert rules read it.",
    },
    Metric {
        name: "check_duration_seconds",
        section: Section::Checks,
        unit: "seconds",
        kind: Kind::Gauge,
        labels: &["check"],
        labels_doc: None,
        help: "Wall time of the last run.",
    },
    Metric {
        name: "check_perfdata",
        section: Section::Checks,
        unit: "the plugin's `uom`",
        kind: Kind::Gauge,
        labels: &["check", "label", "uom"],
        labels_doc: None,
        help: r#"One per performance data entry of the last run (`'label'=value[UOM];warn;crit;min;max`, after the first `\|` of the output)."#,
    },
];

/// The `textfile` and `push` sources' own counts (the business metrics keep their own names).
pub(super) const BUSINESS: &[Metric] = &[
    Metric {
        name: "agent_textfile_series",
        section: Section::Business,
        unit: "series",
        kind: Kind::Gauge,
        labels: &[],
        labels_doc: None,
        help: "Series taken from the textfile directory this tick.",
    },
    Metric {
        name: "agent_textfile_refused_series_total",
        section: Section::Business,
        unit: "series",
        kind: Kind::Counter {
            since: "agent start",
        },
        labels: &[],
        labels_doc: None,
        help: "Series refused because `max_series` was reached, added up over ticks (a series refused on 3 ticks counts 3).",
    },
    Metric {
        name: "agent_push_series",
        section: Section::Business,
        unit: "series",
        kind: Kind::Gauge,
        labels: &[],
        labels_doc: None,
        help: "Series held from the push socket.",
    },
    Metric {
        name: "agent_push_refused_series_total",
        section: Section::Business,
        unit: "lines",
        kind: Kind::Counter {
            since: "agent start",
        },
        labels: &[],
        labels_doc: None,
        help: "Lines refused because they would add a series beyond `max_series`.",
    },
    Metric {
        name: "agent_push_errors_total",
        section: Section::Business,
        unit: "lines",
        kind: Kind::Counter {
            since: "agent start",
        },
        labels: &[],
        labels_doc: None,
        help: "Lines that did not parse or were too long.",
    },
];
