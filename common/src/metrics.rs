//! The registry of the metrics nines produces: every series name the agent sends, with its
//! unit, type, labels and meaning. The agent's collectors are tested against it, the metric
//! tables of docs/metrics.md are generated from it, and `check-config` warns about a metric
//! name that is not in it.
//!
//! The aggregator stores what agents send and derives one series of its own per host,
//! `nines_host_samples` ([`DERIVED`]); its self-metrics on `/metrics` are not series of the
//! store and are documented apart.

mod list;

pub use list::{DERIVED, HOST_SAMPLES, METRICS};

/// Whether a metric is a gauge or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value at the tick's instant, or averaged over the interval since the previous tick.
    Gauge,
    /// A count that only goes up.
    Counter {
        /// Since when it counts, in words: `boot`, `agent start`.
        since: &'static str,
    },
}

/// The section of docs/metrics.md a metric is documented in, named after its collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `cpu`.
    Cpu,
    /// `memory`.
    Memory,
    /// `swap`.
    Swap,
    /// `disk`.
    Disk,
    /// `filesystem`.
    Filesystem,
    /// `network`.
    Network,
    /// `process`.
    Process,
    /// `host`.
    Host,
    /// The agent's own metrics (runner, spool, certificate).
    Agent,
    /// `checks`.
    Checks,
    /// `textfile` and `push`: their own counts (the business metrics keep their own names).
    Business,
}

impl Section {
    /// Every section, in the order of docs/metrics.md.
    pub const ALL: [Section; 11] = [
        Self::Cpu,
        Self::Memory,
        Self::Swap,
        Self::Disk,
        Self::Filesystem,
        Self::Network,
        Self::Process,
        Self::Host,
        Self::Agent,
        Self::Checks,
        Self::Business,
    ];

    /// The name in the doc's table markers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Swap => "swap",
            Self::Disk => "disk",
            Self::Filesystem => "filesystem",
            Self::Network => "network",
            Self::Process => "process",
            Self::Host => "host",
            Self::Agent => "agent",
            Self::Checks => "checks",
            Self::Business => "business",
        }
    }
}

/// One metric nines produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The series name.
    pub name: &'static str,
    /// Where it is documented.
    pub section: Section,
    /// Its unit in words (`bytes`, `ratio`, `1/s`); empty for none.
    pub unit: &'static str,
    /// Gauge or counter.
    pub kind: Kind,
    /// The names of its labels, sorted as the doc lists them.
    pub labels: &'static [&'static str],
    /// The doc's labels column where it says more than the names (their values).
    pub labels_doc: Option<&'static str>,
    /// What it means, Markdown, one table cell.
    pub help: &'static str,
}

/// The metric of that name, if nines produces it.
pub fn lookup(name: &str) -> Option<&'static Metric> {
    METRICS.iter().chain(DERIVED).find(|m| m.name == name)
}

/// The name nines produces that is closest to `name`, if one is close enough to be a likely
/// typo: at most 3 edits, and fewer than a third of the name's length.
pub fn closest(name: &str) -> Option<&'static str> {
    closest_in(name, METRICS.iter().chain(DERIVED).map(|m| m.name))
}

/// The candidate closest to `name` by edit distance, if it is a likely typo of it (at most 3
/// edits, and fewer than a third of the name's length).
pub fn closest_in<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = 3.min(name.chars().count().div_ceil(3));
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Whether `name` matches a glob where `*` is any run of characters and `?` one character
/// ([`crate::util::glob`]).
pub fn glob_match(glob: &str, name: &str) -> bool {
    crate::util::glob::glob_match(glob, name)
}

/// The Markdown table of one section of docs/metrics.md.
pub fn doc_table(section: Section) -> String {
    let mut out =
        String::from("| Metric | Unit | Type | Labels | Meaning |\n|---|---|---|---|---|\n");
    for m in METRICS.iter().filter(|m| m.section == section) {
        let unit = if m.unit.is_empty() { "—" } else { m.unit };
        let kind = match m.kind {
            Kind::Gauge => "gauge".to_owned(),
            Kind::Counter { since } => format!("counter (since {since})"),
        };
        let labels = match (m.labels_doc, m.labels) {
            (Some(doc), _) => doc.to_owned(),
            (None, []) => "—".to_owned(),
            (None, names) => names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        out.push_str(&format!(
            "| `{}` | {unit} | {kind} | {labels} | {} |\n",
            m.name, m.help
        ));
    }
    out
}

/// The line that opens a generated table in docs/metrics.md; the section's name follows it.
pub const DOC_BEGIN: &str = "<!-- generated from common/src/metrics/list.rs, do not edit: table ";
/// The line that closes a generated table.
pub const DOC_END: &str = "<!-- end of generated table -->";

/// `doc` (docs/metrics.md) with every generated table replaced by what the registry says.
/// Fails on a marker naming no section, an unclosed table, or a section without its table.
pub fn render_doc(doc: &str) -> Result<String, String> {
    let mut out = String::with_capacity(doc.len());
    let mut seen = Vec::new();
    let mut lines = doc.split_inclusive('\n');
    while let Some(line) = lines.next() {
        out.push_str(line);
        let Some(rest) = line.trim_end().strip_prefix(DOC_BEGIN) else {
            continue;
        };
        let name = rest.trim_end_matches("-->").trim();
        let section = Section::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| format!("table marker names no section: {name:?}"))?;
        seen.push(section);
        out.push_str(&doc_table(section));
        loop {
            match lines.next() {
                Some(l) if l.trim_end() == DOC_END => {
                    out.push_str(l);
                    break;
                }
                Some(_) => {}
                None => return Err(format!("table {name:?} has no end marker")),
            }
        }
    }
    if let Some(s) = Section::ALL.into_iter().find(|s| !seen.contains(s)) {
        return Err(format!("no generated table for section {:?}", s.as_str()));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_valid_and_follow_the_conventions() {
        for (i, m) in METRICS.iter().enumerate() {
            assert!(
                crate::SeriesKey::new(m.name, &[]).validate().is_ok(),
                "{}",
                m.name
            );
            assert!(
                METRICS[..i].iter().all(|x| x.name != m.name),
                "{} is listed twice",
                m.name
            );
            // (`processes_total` is a gauge, the count of processes, despite its name.)
            if matches!(m.kind, Kind::Counter { .. }) {
                assert!(m.name.ends_with("_total"), "{}", m.name);
            }
            assert!(!m.help.is_empty() && !m.help.contains('\n'), "{}", m.name);
        }
    }

    #[test]
    fn a_typo_finds_the_name_it_misspells_and_nonsense_finds_none() {
        assert_eq!(closest("cpu_usage_ration"), Some("cpu_usage_ratio"));
        assert_eq!(
            closest("memory_availble_bytes"),
            Some("memory_available_bytes")
        );
        assert_eq!(closest("shop_orders_total"), None);
        assert_eq!(closest("cpu"), None);
        assert!(lookup("cpu_usage_ratio").is_some());
        assert!(lookup("cpu_usage_ration").is_none());
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("shop_*", "shop_orders_total"));
        assert!(glob_match("*_total", "shop_orders_total"));
        assert!(glob_match("shop_order?_total", "shop_orders_total"));
        assert!(!glob_match("shop_*", "myshop_orders"));
        assert!(!glob_match("shop", "shop_orders"));
    }

    /// docs/metrics.md's metric tables are what the registry generates. To regenerate them:
    /// `NINES_WRITE_METRICS_DOC=1 cargo test -p nines-common --lib metrics_doc`.
    #[test]
    fn metrics_doc_tables_are_generated_from_the_registry() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let generated = render_doc(&doc).unwrap();
        if std::env::var_os("NINES_WRITE_METRICS_DOC").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        assert!(
            doc == generated,
            "docs/metrics.md differs from the metric registry (common/src/metrics/list.rs); \
             regenerate its tables with \
             `NINES_WRITE_METRICS_DOC=1 cargo test -p nines-common --lib metrics_doc`"
        );
    }
}
