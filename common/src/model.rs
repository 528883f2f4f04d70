//! The metric model: host identities, series keys and samples.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted host id, the longest DNS name.
pub const MAX_HOST_ID_LEN: usize = 253;

/// The identity of a monitored host, as named in its agent certificate.
///
/// Allowed characters are ASCII letters, digits, `.`, `-` and `_`; 1 to 253 of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostId(String);

/// Why a string is not a valid [`HostId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host id {0:?}: use 1 to 253 ASCII letters, digits, '.', '-' or '_'")]
pub struct InvalidHostId(pub String);

impl HostId {
    /// Validates and wraps a host id.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidHostId> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= MAX_HOST_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if ok {
            Ok(Self(id))
        } else {
            Err(InvalidHostId(id))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HostId {
    type Error = InvalidHostId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<HostId> for String {
    fn from(h: HostId) -> String {
        h.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A series within one host: a metric name and its labels, sorted by label name.
///
/// The host is not part of the key: on the wire it is implied by the connection, and in the
/// store it is added by the aggregator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Metric name, snake_case with a unit suffix, e.g. `memory_available_bytes`.
    pub name: String,
    /// Label pairs sorted by name; names are unique.
    pub labels: Vec<(String, String)>,
}

impl SeriesKey {
    /// Builds a key, sorting the labels so that equal series have equal keys.
    pub fn new(name: impl Into<String>, labels: &[(&str, &str)]) -> Self {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        Self {
            name: name.into(),
            labels,
        }
    }

    /// Builds a key from owned labels, sorting them.
    pub fn from_parts(name: String, mut labels: Vec<(String, String)>) -> Self {
        labels.sort();
        Self { name, labels }
    }

    /// The value of one label, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks the name and labels against the naming rules (`[a-zA-Z_][a-zA-Z0-9_]*`, at most
    /// 200 bytes for names, 1024 for label values, 32 labels).
    pub fn validate(&self) -> Result<(), InvalidSeries> {
        fn ident(s: &str) -> bool {
            let mut b = s.bytes();
            matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
                && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
                && s.len() <= 200
        }
        if !ident(&self.name) {
            return Err(InvalidSeries(format!("metric name {:?}", self.name)));
        }
        if self.labels.len() > 32 {
            return Err(InvalidSeries(format!(
                "{} has more than 32 labels",
                self.name
            )));
        }
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if !ident(k) {
                return Err(InvalidSeries(format!("label name {k:?} on {}", self.name)));
            }
            if v.len() > 1024 {
                return Err(InvalidSeries(format!(
                    "label {k} on {} is too long",
                    self.name
                )));
            }
            if i > 0 && self.labels[i - 1].0 >= *k {
                return Err(InvalidSeries(format!(
                    "labels of {} are not sorted and unique",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}={v:?}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// Why a series key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid series: {0}")]
pub struct InvalidSeries(pub String);

/// One value of one series at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Which series.
    pub key: SeriesKey,
    /// Milliseconds since the Unix epoch, UTC.
    pub ts_ms: i64,
    /// The value, in the base unit the metric name states.
    pub value: f64,
}

/// The series a cleanly stopping agent sends once, as its last sample (value 1): the silence
/// that follows is not monitored time, not an outage (docs/metrics.md).
pub const AGENT_STOPPING: &str = "agent_stopping";

/// Milliseconds since the Unix epoch, UTC, by the system clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_validated() {
        assert!(HostId::new("web-1.example.net").is_ok());
        assert!(HostId::new("").is_err());
        assert!(HostId::new("a b").is_err());
        assert!(HostId::new("x".repeat(254)).is_err());
        assert!(HostId::new("../etc").is_err());
    }

    #[test]
    fn series_keys_sort_labels_and_validate() {
        let k = SeriesKey::new(
            "disk_read_bytes_per_second",
            &[("device", "sda"), ("a", "b")],
        );
        assert_eq!(k.labels[0].0, "a");
        assert_eq!(k.label("device"), Some("sda"));
        assert!(k.validate().is_ok());
        assert_eq!(
            k.to_string(),
            "disk_read_bytes_per_second{a=\"b\",device=\"sda\"}"
        );
        assert!(SeriesKey::new("1bad", &[]).validate().is_err());
        let dup = SeriesKey {
            name: "x".into(),
            labels: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        };
        assert!(dup.validate().is_err());
    }
}
