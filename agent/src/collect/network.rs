//! Network collector: traffic, error and drop rates per interface from `/proc/net/dev`, and
//! link state from `/sys/class/net/<interface>/operstate`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;

use super::disk::selected;
use super::{CollectConfig, CollectError, Collector, Out, Tick, read};

fn default_include() -> Vec<String> {
    vec!["*".to_owned()]
}

fn default_exclude() -> Vec<String> {
    vec!["lo".to_owned()]
}

/// `[collect.network]`: which interfaces are reported.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Globs (`*`, `?`) on the interface name, e.g. `["eth*", "en*"]`. An interface is reported
    /// if it matches one of them. Default `["*"]`.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Globs on the interface name that are left out even if included, e.g. `["veth*"]` on
    /// container hosts. Default `["lo"]`.
    #[serde(default = "default_exclude")]
    pub exclude: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            include: default_include(),
            exclude: default_exclude(),
        }
    }
}

/// The counters of one `/proc/net/dev` line that the collector uses, since the interface was
/// created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_drops: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on transmit.
    pub tx_drops: u64,
}

impl NetCounters {
    fn as_array(&self) -> [u64; 8] {
        [
            self.rx_bytes,
            self.rx_packets,
            self.rx_errors,
            self.rx_drops,
            self.tx_bytes,
            self.tx_packets,
            self.tx_errors,
            self.tx_drops,
        ]
    }
}

/// Metric names, in [`NetCounters::as_array`] order.
const RATES: [&str; 8] = [
    "network_receive_bytes_per_second",
    "network_receive_packets_per_second",
    "network_receive_errors_per_second",
    "network_receive_drops_per_second",
    "network_transmit_bytes_per_second",
    "network_transmit_packets_per_second",
    "network_transmit_errors_per_second",
    "network_transmit_drops_per_second",
];

/// Parses `/proc/net/dev` into (interface, counters), in file order. The two header lines
/// are skipped.
pub fn parse(text: &str) -> Result<Vec<(&str, NetCounters)>, String> {
    let mut interfaces = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.contains('|') {
            continue;
        }
        // Old kernels print no space after the colon once the byte count is wide enough
        // (`eth0:1234567890`), so split on the colon rather than on whitespace.
        let Some((name, counters)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("line {}: no interface name", i + 1));
        };
        let name = name.trim();
        let mut v = [0u64; 16];
        let mut fields = counters.split_ascii_whitespace();
        for (n, slot) in v.iter_mut().enumerate() {
            let field = fields
                .next()
                .ok_or_else(|| format!("line {}: {name} has only {n} counters", i + 1))?;
            *slot = field
                .parse()
                .map_err(|_| format!("line {}: {name}: bad counter {field:?}", i + 1))?;
        }
        // Receive: bytes packets errs drop fifo frame compressed multicast, then transmit:
        // bytes packets errs drop fifo colls carrier compressed.
        interfaces.push((
            name,
            NetCounters {
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_drops: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_drops: v[11],
            },
        ));
    }
    Ok(interfaces)
}

/// Whether an `operstate` value means the link carries traffic. `unknown` is what drivers
/// that do not track link state report (lo, tun, wireguard, dummy) while administratively
/// up; an interface that is down reports `down`.
pub fn is_up(operstate: &str) -> bool {
    matches!(operstate.trim(), "up" | "unknown")
}

#[derive(Debug)]
struct InterfaceState {
    /// Selected by the config; decided once, when the name first appears.
    report: bool,
    operstate: PathBuf,
    prev: Option<NetCounters>,
    seen: bool,
}

/// Per-interface traffic and link state.
#[derive(Debug)]
pub struct Network {
    net_dev: PathBuf,
    sys_class_net: PathBuf,
    config: NetworkConfig,
    interfaces: HashMap<String, InterfaceState>,
    prev_at: Option<Instant>,
}

impl Network {
    /// A network collector reading `{procfs}/net/dev` and `{sysfs}/class/net`.
    pub fn new(config: &CollectConfig) -> Self {
        Self {
            net_dev: config.procfs.join("net/dev"),
            sys_class_net: config.sysfs.join("class/net"),
            config: config.network.clone(),
            interfaces: HashMap::new(),
            prev_at: None,
        }
    }
}

impl Collector for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let text = read(&self.net_dev)?;
        let interfaces = parse(&text).map_err(|detail| CollectError::Parse {
            path: self.net_dev.clone(),
            detail,
        })?;
        let secs = self
            .prev_at
            .map(|at| tick.now.saturating_duration_since(at).as_secs_f64())
            .filter(|s| *s > 0.0);
        for (name, cur) in interfaces {
            let state = match self.interfaces.get_mut(name) {
                Some(state) => state,
                None => self
                    .interfaces
                    .entry(name.to_owned())
                    .or_insert(InterfaceState {
                        report: selected(name, &self.config.include, &self.config.exclude),
                        operstate: self.sys_class_net.join(name).join("operstate"),
                        prev: None,
                        seen: false,
                    }),
            };
            state.seen = true;
            if !state.report {
                continue;
            }
            let labels = [("interface", name)];
            // No operstate file (interface gone since the read above, or a sysfs from another
            // network namespace): no link state rather than a guess.
            if let Ok(operstate) = std::fs::read_to_string(&state.operstate) {
                out.push(
                    "network_up",
                    &labels,
                    if is_up(&operstate) { 1.0 } else { 0.0 },
                );
            }
            let prev = state.prev.replace(cur);
            let (Some(prev), Some(secs)) = (prev, secs) else {
                continue;
            };
            let (cur, prev) = (cur.as_array(), prev.as_array());
            // Any counter going backwards means the interface was recreated: skip it all.
            let mut delta = [0u64; 8];
            let mut reset = false;
            for ((d, c), p) in delta.iter_mut().zip(cur).zip(prev) {
                match c.checked_sub(p) {
                    Some(v) => *d = v,
                    None => reset = true,
                }
            }
            if reset {
                continue;
            }
            for (name, d) in RATES.iter().zip(delta) {
                out.push(name, &labels, d as f64 / secs);
            }
        }
        self.interfaces
            .retain(|_, state| std::mem::take(&mut state.seen));
        self.prev_at = Some(tick.now);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use nines_common::{Sample, SeriesKey};

    use super::*;

    fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let key = SeriesKey::new(name, labels);
        samples.iter().find(|s| s.key == key).map(|s| s.value)
    }

    #[test]
    fn parses_this_machines_net_dev() {
        let interfaces = parse(include_str!("../../tests/fixtures/vm/proc/net/dev")).unwrap();
        let names: Vec<&str> = interfaces.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        assert_eq!(
            interfaces[3].1,
            NetCounters {
                rx_bytes: 51288600,
                rx_packets: 2708,
                rx_errors: 0,
                rx_drops: 0,
                tx_bytes: 235692,
                tx_packets: 1874,
                tx_errors: 0,
                tx_drops: 0,
            }
        );
    }

    #[test]
    fn parses_a_server_net_dev() {
        let interfaces = parse(include_str!("../../tests/fixtures/server/proc/net/dev")).unwrap();
        let (_, eno1) = interfaces.iter().find(|(n, _)| *n == "eno1").unwrap();
        assert_eq!(eno1.rx_bytes, 87234523410);
        assert_eq!(eno1.rx_errors, 3);
        assert_eq!(eno1.rx_drops, 120);
        assert_eq!(eno1.tx_packets, 20934123);
        let (_, veth) = interfaces
            .iter()
            .find(|(n, _)| *n == "veth4f1c2a9")
            .unwrap();
        assert_eq!(veth.tx_drops, 3);
    }

    #[test]
    fn parses_wide_counters_glued_to_the_name() {
        let text = "  eth0:4294967296 10 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n";
        assert_eq!(parse(text).unwrap()[0].1.rx_bytes, 4294967296);
        let err = parse("  eth0: 1 2 3\n").unwrap_err();
        assert!(err.contains("eth0 has only 3 counters"), "{err}");
    }

    #[test]
    fn operstate_up_and_unknown_count_as_up() {
        assert!(is_up("up\n"));
        assert!(is_up("unknown\n"));
        for state in ["down", "dormant", "lowerlayerdown", "notpresent", "testing"] {
            assert!(!is_up(state), "{state}");
        }
    }

    #[test]
    fn reports_link_state_of_selected_interfaces() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/server");
        let config = CollectConfig {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            network: NetworkConfig {
                include: vec!["*".into()],
                exclude: vec!["lo".into(), "veth*".into()],
            },
            ..Default::default()
        };
        let mut samples = Vec::new();
        let tick = Tick {
            ts_ms: 0,
            now: Instant::now(),
        };
        Network::new(&config)
            .collect(&tick, &mut Out::new(0, &mut samples))
            .unwrap();
        let up = |i: &str| get(&samples, "network_up", &[("interface", i)]);
        assert_eq!(up("eno1"), Some(1.0));
        assert_eq!(up("eno2"), Some(0.0));
        assert_eq!(up("docker0"), Some(0.0));
        assert_eq!(up("wg0"), Some(1.0));
        // Excluded.
        assert_eq!(up("lo"), None);
        assert_eq!(up("veth4f1c2a9"), None);
        // No sysfs entry.
        assert_eq!(up("tun0"), None);
        // First tick: link state only.
        assert!(samples.iter().all(|s| s.key.name == "network_up"));
    }

    #[test]
    fn computes_rates_between_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let (procfs, sysfs) = (dir.path().join("proc"), dir.path().join("sys"));
        std::fs::create_dir_all(procfs.join("net")).unwrap();
        std::fs::create_dir_all(sysfs.join("class/net/eth0")).unwrap();
        let operstate = sysfs.join("class/net/eth0/operstate");
        std::fs::write(&operstate, "up\n").unwrap();
        let config = CollectConfig {
            procfs: procfs.clone(),
            sysfs,
            ..Default::default()
        };
        let mut network = Network::new(&config);
        let start = Instant::now();
        let header = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";
        let mut run = |secs: u64, lines: &str| {
            std::fs::write(procfs.join("net/dev"), format!("{header}{lines}")).unwrap();
            let tick = Tick {
                ts_ms: secs as i64 * 1000,
                now: start + Duration::from_secs(secs),
            };
            let mut samples = Vec::new();
            network
                .collect(&tick, &mut Out::new(tick.ts_ms, &mut samples))
                .unwrap();
            samples
        };
        let eth0 = [("interface", "eth0")];

        let first = run(
            0,
            "    lo:  1000 10 0 0 0 0 0 0  1000 10 0 0 0 0 0 0\n  \
             eth0: 50000 100 1 2 0 0 0 0 20000 80 0 1 0 0 0 0\n",
        );
        assert_eq!(get(&first, "network_up", &eth0), Some(1.0));
        assert_eq!(first.len(), 1, "{first:?}");

        // In 1 s: 1 MB in (700 packets, 2 errors, 5 drops), 125000 bytes out (300 packets,
        // 1 error, 0 drops).
        std::fs::write(&operstate, "down\n").unwrap();
        let second = run(
            1,
            "    lo:  9000 90 0 0 0 0 0 0  9000 90 0 0 0 0 0 0\n  \
             eth0: 1050000 800 3 7 0 0 0 0 145000 380 1 1 0 0 0 0\n",
        );
        assert_eq!(get(&second, "network_up", &eth0), Some(0.0));
        assert_eq!(
            get(&second, "network_receive_bytes_per_second", &eth0),
            Some(1e6)
        );
        assert_eq!(
            get(&second, "network_receive_packets_per_second", &eth0),
            Some(700.0)
        );
        assert_eq!(
            get(&second, "network_receive_errors_per_second", &eth0),
            Some(2.0)
        );
        assert_eq!(
            get(&second, "network_receive_drops_per_second", &eth0),
            Some(5.0)
        );
        assert_eq!(
            get(&second, "network_transmit_bytes_per_second", &eth0),
            Some(125000.0)
        );
        assert_eq!(
            get(&second, "network_transmit_packets_per_second", &eth0),
            Some(300.0)
        );
        assert_eq!(
            get(&second, "network_transmit_errors_per_second", &eth0),
            Some(1.0)
        );
        assert_eq!(
            get(&second, "network_transmit_drops_per_second", &eth0),
            Some(0.0)
        );
        // lo is excluded by default.
        assert!(
            second
                .iter()
                .all(|s| s.key.label("interface") == Some("eth0"))
        );
        assert_eq!(second.len(), 9);

        // Interface recreated (counters restart): no rates this tick; operstate file gone:
        // no link state.
        std::fs::remove_file(&operstate).unwrap();
        let third = run(2, "  eth0: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n");
        assert!(third.is_empty(), "{third:?}");
        let fourth = run(3, "  eth0: 2148 3 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n");
        assert_eq!(
            get(&fourth, "network_receive_bytes_per_second", &eth0),
            Some(2048.0)
        );
    }
}
