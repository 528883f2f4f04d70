//! `[collect.process]`: the watches, each a name and one way of finding its processes.

use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::pattern::{Pattern, PatternError};

/// `[collect.process]`: groups of processes whose health is reported.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(try_from = "RawProcessConfig")]
pub struct ProcessConfig {
    /// `watch = [...]`: what to watch. Each entry is a program name (`"sshd"`, as
    /// `comm = "sshd"`), or a table `{ name = "web", comm = "nginx", min = 2 }` with exactly
    /// one of `comm`, `cmdline`, `pidfile`, `unit`. Names are unique. Default `[]`.
    pub watch: Vec<Watch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcessConfig {
    #[serde(default)]
    watch: Vec<Watch>,
}

impl TryFrom<RawProcessConfig> for ProcessConfig {
    type Error = WatchError;

    fn try_from(raw: RawProcessConfig) -> Result<Self, WatchError> {
        for (i, w) in raw.watch.iter().enumerate() {
            if raw.watch[..i].iter().any(|v| v.name == w.name) {
                return Err(WatchError::DuplicateName(w.name.clone()));
            }
        }
        Ok(Self { watch: raw.watch })
    }
}

/// One watch: a name (the `process` label) and how its processes are found.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// The value of the `process` label.
    pub name: String,
    /// How the processes are found.
    pub select: Select,
    /// `process_up` is 1 when at least this many processes match. Default 1.
    pub min: u32,
}

impl Watch {
    /// A watch of the program `name`, named after it: the plain-string form.
    pub fn comm(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            select: Select::Comm(name.to_owned()),
            min: 1,
        }
    }
}

/// How a watch finds its processes.
#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    /// `comm`: the program name, as `ps -e`, `pgrep` and `top` show it (the kernel's `comm`,
    /// usually the executable's file name). Names longer than the 15 bytes the kernel keeps
    /// are confirmed with `argv[0]`.
    Comm(String),
    /// `cmdline`: a pattern (a regex subset) found in the command line, the arguments joined
    /// by spaces as `ps` shows them.
    Cmdline(Pattern),
    /// `pidfile`: the process whose pid is in this file, read on every tick.
    Pidfile(PathBuf),
    /// `unit`: the processes in the cgroup of this systemd unit, or below it.
    Unit(String),
}

fn default_min() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    name: String,
    comm: Option<String>,
    cmdline: Option<String>,
    pidfile: Option<PathBuf>,
    unit: Option<String>,
    #[serde(default = "default_min")]
    min: u32,
}

impl TryFrom<RawWatch> for Watch {
    type Error = WatchError;

    fn try_from(raw: RawWatch) -> Result<Self, WatchError> {
        let name = raw.name;
        if name.is_empty() {
            return Err(WatchError::EmptyName);
        }
        let set: Vec<&'static str> = [
            ("comm", raw.comm.is_some()),
            ("cmdline", raw.cmdline.is_some()),
            ("pidfile", raw.pidfile.is_some()),
            ("unit", raw.unit.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        let bad = |problem| {
            Err(WatchError::Invalid {
                name: name.clone(),
                problem,
            })
        };
        let select = match (raw.comm, raw.cmdline, raw.pidfile, raw.unit) {
            (Some(comm), None, None, None) => {
                if comm.is_empty() {
                    return bad(WatchProblem::EmptyComm);
                }
                Select::Comm(comm)
            }
            (None, Some(source), None, None) => {
                if source.is_empty() {
                    return bad(WatchProblem::EmptyCmdline);
                }
                match Pattern::new(&source) {
                    Ok(p) => Select::Cmdline(p),
                    Err(error) => {
                        return bad(WatchProblem::Cmdline {
                            pattern: source,
                            error,
                        });
                    }
                }
            }
            (None, None, Some(path), None) => {
                if !path.is_absolute() {
                    return bad(WatchProblem::RelativePidfile(path));
                }
                Select::Pidfile(path)
            }
            (None, None, None, Some(unit)) => {
                if unit.is_empty() || unit.contains('/') {
                    return bad(WatchProblem::Unit(unit));
                }
                Select::Unit(unit)
            }
            _ => return bad(WatchProblem::Selectors(set)),
        };
        if raw.min == 0 {
            return bad(WatchProblem::MinZero);
        }
        Ok(Self {
            name,
            select,
            min: raw.min,
        })
    }
}

/// Why `[collect.process]` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// Two watches have the same name.
    #[error("two watches are named {0:?}; names label the series and must be unique")]
    DuplicateName(String),
    /// A watch's name is empty.
    #[error("a watch has an empty name")]
    EmptyName,
    /// One watch is wrong.
    #[error("watch {name:?}: {problem}")]
    Invalid {
        /// The watch's name.
        name: String,
        /// What is wrong with it.
        problem: WatchProblem,
    },
}

/// What is wrong with one watch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchProblem {
    /// `comm = ""`.
    #[error("comm is empty")]
    EmptyComm,
    /// `cmdline = ""`.
    #[error("cmdline is empty (it would match every process)")]
    EmptyCmdline,
    /// `cmdline` is outside the pattern subset.
    #[error("cmdline {pattern:?}: {error}")]
    Cmdline {
        /// The pattern as written.
        pattern: String,
        /// What in it is not supported.
        error: PatternError,
    },
    /// `pidfile` is a relative path.
    #[error("pidfile {:?} is not an absolute path", .0.display())]
    RelativePidfile(PathBuf),
    /// `unit` is empty or has a `/`.
    #[error("unit {0:?} is not a unit name such as \"nginx.service\"")]
    Unit(String),
    /// Not exactly one of `comm`, `cmdline`, `pidfile` and `unit`: those that are set.
    #[error("set exactly one of comm, cmdline, pidfile, unit ({})", set_keys(.0))]
    Selectors(Vec<&'static str>),
    /// `min = 0`.
    #[error("min is 0; it is the number of processes that must run, at least 1")]
    MinZero,
}

/// The keys set, in words.
fn set_keys(keys: &[&str]) -> String {
    if keys.is_empty() {
        "none is set".to_owned()
    } else {
        format!("{} are set", keys.join(" and "))
    }
}

impl<'de> Deserialize<'de> for Watch {
    /// A string is a program name; a table is a full watch.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WatchVisitor;

        impl<'de> Visitor<'de> for WatchVisitor {
            type Value = Watch;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a program name, or a table such as { name = \"web\", comm = \"nginx\" }",
                )
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Watch, E> {
                if name.is_empty() {
                    return Err(E::custom("a watch has an empty name"));
                }
                Ok(Watch::comm(name))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Watch, A::Error> {
                let raw = RawWatch::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Watch::try_from(raw).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(WatchVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<ProcessConfig, String> {
        toml::from_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_names_and_tables() {
        let config = parse(
            r#"
            watch = [
              "sshd",
              { name = "web", comm = "nginx", min = 2 },
              { name = "billing", cmdline = "java .*billing\\.jar" },
              { name = "db", pidfile = "/run/postgresql/16-main.pid" },
              { name = "cache", unit = "redis-server.service" },
            ]
            "#,
        )
        .unwrap();
        let w = &config.watch;
        assert_eq!(w[0], Watch::comm("sshd"));
        assert_eq!(w[1].name, "web");
        assert_eq!(w[1].select, Select::Comm("nginx".into()));
        assert_eq!(w[1].min, 2);
        assert_eq!(
            w[2].select,
            Select::Cmdline(Pattern::new("java .*billing\\.jar").unwrap())
        );
        assert_eq!(w[2].min, 1);
        assert_eq!(
            w[3].select,
            Select::Pidfile("/run/postgresql/16-main.pid".into())
        );
        assert_eq!(w[4].select, Select::Unit("redis-server.service".into()));

        // The array-of-tables spelling.
        let config = parse(
            "[[watch]]\nname = \"web\"\nunit = \"nginx.service\"\n\n\
             [[watch]]\nname = \"ssh\"\ncomm = \"sshd\"\n",
        )
        .unwrap();
        assert_eq!(config.watch.len(), 2);
        assert_eq!(parse("").unwrap(), ProcessConfig::default());
    }

    #[test]
    fn says_what_is_wrong_with_a_watch() {
        for (toml, expected) in [
            (
                "watch = [{ name = \"web\" }]",
                "watch \"web\": set exactly one of comm, cmdline, pidfile, unit (none is set)",
            ),
            (
                "watch = [{ name = \"web\", comm = \"nginx\", unit = \"nginx.service\" }]",
                "(comm and unit are set)",
            ),
            ("watch = [{ comm = \"nginx\" }]", "missing field `name`"),
            (
                "watch = [{ name = \"web\", com = \"nginx\" }]",
                "unknown field `com`",
            ),
            (
                "watch = [{ name = \"web\", cmdline = \"(nginx|apache2)\" }]",
                "watch \"web\": cmdline \"(nginx|apache2)\": groups and alternation",
            ),
            (
                "watch = [{ name = \"db\", pidfile = \"run/pg.pid\" }]",
                "is not an absolute path",
            ),
            (
                "watch = [{ name = \"web\", unit = \"system.slice/nginx.service\" }]",
                "is not a unit name",
            ),
            (
                "watch = [{ name = \"web\", comm = \"nginx\", min = 0 }]",
                "min is 0",
            ),
            (
                "watch = [\"nginx\", { name = \"nginx\", unit = \"nginx.service\" }]",
                "two watches are named \"nginx\"",
            ),
            ("watch = [\"\"]", "empty name"),
            ("watch = [3]", "a program name, or a table"),
            ("watchh = []", "unknown field `watchh`"),
        ] {
            let err = parse(toml).unwrap_err();
            assert!(err.contains(expected), "{toml}: {err}");
        }
    }

    /// The examples in docs/metrics.md are valid.
    #[test]
    fn the_documented_examples_parse() {
        let doc = include_str!("../../../../docs/metrics.md");
        let blocks: Vec<&str> = doc
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .filter(|b| b.contains("watch"))
            .collect();
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        let config: toml::Table = toml::from_str(blocks[0]).unwrap();
        let process: ProcessConfig = config["collect"]["process"].clone().try_into().unwrap();
        assert_eq!(process.watch.len(), 5);
        assert_eq!(
            process.watch[2].select,
            Select::Cmdline(Pattern::new("java .*-jar /opt/billing/billing\\.jar").unwrap())
        );
        let config: toml::Table = toml::from_str(blocks[1]).unwrap();
        let process: ProcessConfig = config["collect"]["process"].clone().try_into().unwrap();
        assert_eq!(
            process.watch[0].select,
            Select::Unit("redis-server.service".into())
        );
    }
}
