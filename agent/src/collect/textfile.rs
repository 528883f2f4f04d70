//! Business metrics from a directory of Prometheus exposition files (`*.prom`), read at every
//! tick as node_exporter's textfile collector reads them; bounded in series count.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::exposition::{Bounded, parse_line};
use super::{CollectError, Collector, Out, Tick};

/// Largest file read; a bigger one is an error (a runaway writer must not eat the agent's
/// memory).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

fn default_max_series() -> usize {
    1000
}

/// `[collect.textfile]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextfileConfig {
    /// Directory of `*.prom` files. Default none: the collector is off.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// Series taken per tick, at most; the rest are refused and counted. Default 1000.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

impl Default for TextfileConfig {
    fn default() -> Self {
        Self {
            directory: None,
            max_series: default_max_series(),
        }
    }
}

/// The textfile collector.
#[derive(Debug)]
pub struct Textfile {
    directory: PathBuf,
    max_series: usize,
    refused_total: u64,
    refusing: bool,
}

impl Textfile {
    /// The collector for a configured directory, or none.
    pub fn new(config: &TextfileConfig) -> Option<Self> {
        Some(Self {
            directory: config.directory.clone()?,
            max_series: config.max_series,
            refused_total: 0,
            refusing: false,
        })
    }
}

impl Collector for Textfile {
    fn name(&self) -> &'static str {
        "textfile"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let read_err = |source| CollectError::Read {
            path: self.directory.clone(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.directory)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "prom"))
            .collect();
        // In name order, so that the series kept under the bound are the same every tick.
        files.sort();
        let mut admitted = Bounded::new(self.max_series);
        let mut refused = 0u64;
        for path in &files {
            if let Err(e) = read_file(path, &mut admitted, &mut refused, out) {
                out.fail(e);
            }
        }
        self.refused_total += refused;
        if refused > 0 && !self.refusing {
            tracing::warn!(
                directory = %self.directory.display(),
                "textfile: more than max_series = {} series; {refused} refused this tick \
                 (counted in agent_textfile_refused_series_total; logged again only after a \
                 tick without refusals)",
                self.max_series
            );
        }
        self.refusing = refused > 0;
        out.push("agent_textfile_series", &[], admitted.len() as f64);
        out.push(
            "agent_textfile_refused_series_total",
            &[],
            self.refused_total as f64,
        );
        Ok(())
    }
}

/// Pushes one file's samples; a bad line is reported and skipped, the rest taken.
fn read_file(
    path: &Path,
    admitted: &mut Bounded,
    refused: &mut u64,
    out: &mut Out<'_>,
) -> Result<(), CollectError> {
    let read_err = |source| CollectError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_FILE_BYTES {
        return Err(CollectError::Parse {
            path: path.to_owned(),
            detail: format!("{size} bytes, more than the {MAX_FILE_BYTES} read"),
        });
    }
    let text = std::fs::read(path).map_err(read_err)?;
    let text = String::from_utf8_lossy(&text);
    for (n, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((key, value))) => {
                if admitted.admit(&key) {
                    let labels: Vec<(&str, &str)> = key
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    out.push(&key.name, &labels, value);
                } else {
                    *refused += 1;
                }
            }
            Err(detail) => out.fail(CollectError::Parse {
                path: path.to_owned(),
                detail: format!("line {}: {detail}", n + 1),
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Instant;

    use super::super::testing;
    use super::*;

    fn collector(dir: &Path, max_series: usize) -> Textfile {
        Textfile::new(&TextfileConfig {
            directory: Some(dir.to_owned()),
            max_series,
        })
        .unwrap()
    }

    #[test]
    fn prom_files_become_samples_and_bad_lines_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("shop.prom"),
            "# HELP shop_orders_total Orders.\n# TYPE shop_orders_total counter\n\
             shop_orders_total{channel=\"web\"} 1027 1700000000000\n\
             shop_orders_total{channel=\"app\"} 12\n\
             shop_backlog 3.5\n\
             broken line here\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "not_read 1\n").unwrap();
        std::fs::write(
            dir.path().join("batch.prom"),
            "batch_last_success_seconds 1.7e9\n",
        )
        .unwrap();
        let mut c = collector(dir.path(), 1000);
        let (samples, result, failures) = testing::run(&mut c, &testing::tick(Instant::now(), 0));
        result.unwrap();
        let get = |name: &str, labels: &[(&str, &str)]| testing::get(&samples, name, labels);
        assert_eq!(
            get("shop_orders_total", &[("channel", "web")]),
            Some(1027.0)
        );
        assert_eq!(get("shop_orders_total", &[("channel", "app")]), Some(12.0));
        assert_eq!(get("shop_backlog", &[]), Some(3.5));
        assert_eq!(get("batch_last_success_seconds", &[]), Some(1.7e9));
        assert_eq!(get("not_read", &[]), None);
        assert_eq!(get("agent_textfile_series", &[]), Some(4.0));
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].to_string().contains("shop.prom: line 6"),
            "{}",
            failures[0]
        );
    }

    /// Beyond max_series the extra series are refused and counted, every tick, and the same
    /// ones are kept each time.
    #[test]
    fn series_beyond_the_bound_are_refused_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..50)
            .map(|i| format!("job_items{{n=\"{i}\"}} {i}\n"))
            .collect();
        std::fs::write(dir.path().join("a.prom"), text).unwrap();
        std::fs::write(dir.path().join("b.prom"), "late_metric 1\n").unwrap();
        let mut c = collector(dir.path(), 10);
        let start = Instant::now();
        let mut samples = Vec::new();
        for secs in 0..3 {
            samples = testing::run_ok(&mut c, &testing::tick(start, secs));
        }
        let jobs = samples.iter().filter(|s| s.key.name == "job_items").count();
        assert_eq!(jobs, 10);
        assert_eq!(
            testing::get(&samples, "job_items", &[("n", "9")]),
            Some(9.0)
        );
        assert_eq!(testing::get(&samples, "late_metric", &[]), None);
        assert_eq!(
            testing::get(&samples, "agent_textfile_series", &[]),
            Some(10.0)
        );
        assert_eq!(
            testing::get(&samples, "agent_textfile_refused_series_total", &[]),
            Some(3.0 * 41.0)
        );
    }

    #[test]
    fn a_missing_directory_is_a_failure_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(&dir.path().join("absent"), 10);
        let (_, result, _) = testing::run(&mut c, &testing::tick(Instant::now(), 0));
        assert!(result.unwrap_err().to_string().contains("absent"));
    }
}
