//! Network collector: traffic, error and drop rates per interface from `/proc/net/dev`, and
//! link state from `/sys/class/net/<interface>/operstate`.

use std::path::PathBuf;

use serde::Deserialize;

use super::select::{Devices, selected};
use super::{CollectConfig, CollectError, Collector, Out, Tick};

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

/// Parses `/proc/net/dev` into (interface, counters), in file order, one line at a time. The
/// two header lines are skipped. A bad line is an error for that line only.
pub fn parse(text: &str) -> impl Iterator<Item = Result<(&str, NetCounters), String>> {
    text.lines().enumerate().filter_map(|(i, line)| {
        parse_line(line)
            .map_err(|e| format!("line {}: {e}", i + 1))
            .transpose()
    })
}

fn parse_line(line: &str) -> Result<Option<(&str, NetCounters)>, String> {
    if line.contains('|') {
        return Ok(None);
    }
    // Old kernels print no space after the colon once the byte count is wide enough
    // (`eth0:1234567890`), so split on the colon rather than on whitespace.
    let Some((name, counters)) = line.split_once(':') else {
        if line.trim().is_empty() {
            return Ok(None);
        }
        return Err("no interface name".to_owned());
    };
    let name = name.trim();
    let mut v = [0u64; 16];
    let mut fields = counters.split_ascii_whitespace();
    for (n, slot) in v.iter_mut().enumerate() {
        let field = fields
            .next()
            .ok_or_else(|| format!("{name} has only {n} counters"))?;
        *slot = field
            .parse()
            .map_err(|_| format!("{name}: bad counter {field:?}"))?;
    }
    // Receive: bytes packets errs drop fifo frame compressed multicast, then transmit:
    // bytes packets errs drop fifo colls carrier compressed.
    Ok(Some((
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
    )))
}

/// Whether an `operstate` value means the link carries traffic. `unknown` is what drivers
/// that do not track link state report (lo, tun, wireguard, dummy) while administratively
/// up; an interface that is down reports `down`.
pub fn is_up(operstate: &str) -> bool {
    matches!(operstate.trim(), "up" | "unknown")
}

#[derive(Debug)]
struct InterfaceState {
    operstate: PathBuf,
    prev: Option<NetCounters>,
}

/// Per-interface traffic and link state.
#[derive(Debug)]
pub struct Network {
    net_dev: PathBuf,
    sys_class_net: PathBuf,
    config: NetworkConfig,
    interfaces: Devices<InterfaceState>,
}

impl Network {
    /// A network collector reading `{procfs}/net/dev` and `{sysfs}/class/net`.
    pub fn new(config: &CollectConfig) -> Self {
        Self {
            net_dev: config.procfs.join("net/dev"),
            sys_class_net: config.sysfs.join("class/net"),
            config: config.network.clone(),
            interfaces: Devices::new(),
        }
    }
}

impl Collector for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let Self {
            net_dev,
            sys_class_net,
            config,
            interfaces,
        } = self;
        let secs = interfaces.secs(tick.now);
        out.read(net_dev, |text, out| {
            interfaces.update(
                net_dev,
                parse(text),
                out,
                |name| {
                    let state = InterfaceState {
                        operstate: sys_class_net.join(name).join("operstate"),
                        prev: None,
                    };
                    (selected(name, &config.include, &config.exclude), state)
                },
                |out, name, state, cur| report(out, name, state, cur, secs),
            );
            Ok(())
        })?;
        self.interfaces.end_tick(tick.now);
        Ok(())
    }
}

/// Link state and rates of one selected interface.
fn report(
    out: &mut Out<'_>,
    name: &str,
    state: &mut InterfaceState,
    cur: NetCounters,
    secs: Option<f64>,
) {
    let labels = [("interface", name)];
    match out.read_single(&state.operstate, |text, _| Ok(is_up(text))) {
        Ok(up) => out.push("network_up", &labels, if up { 1.0 } else { 0.0 }),
        // No operstate file: the interface went away since /proc/net/dev was read, or sysfs
        // belongs to another network namespace. No link state rather than a guess.
        Err(CollectError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
        }
        Err(e) => out.fail(e),
    }
    let prev = state.prev.replace(cur);
    let (Some(prev), Some(secs)) = (prev, secs) else {
        return;
    };
    let (cur, prev) = (cur.as_array(), prev.as_array());
    // Any counter going backwards means the interface was recreated (or a 32-bit counter
    // wrapped): skip it all rather than report a bogus spike.
    let mut delta = [0u64; 8];
    for ((d, c), p) in delta.iter_mut().zip(cur).zip(prev) {
        match c.checked_sub(p) {
            Some(v) => *d = v,
            None => return,
        }
    }
    for (name, d) in RATES.iter().zip(delta) {
        out.push(name, &labels, d as f64 / secs);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;
    use std::time::Duration;
    use std::time::Instant;

    use nines_common::{Sample, SeriesKey};

    use super::super::testing;
    use super::*;

    fn all(text: &str) -> Result<Vec<(&str, NetCounters)>, String> {
        parse(text).collect()
    }

    fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let key = SeriesKey::new(name, labels);
        samples.iter().find(|s| s.key == key).map(|s| s.value)
    }

    #[test]
    fn parses_this_machines_net_dev() {
        let interfaces = all(include_str!("../../tests/fixtures/vm/proc/net/dev")).unwrap();
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
        let interfaces = all(include_str!("../../tests/fixtures/server/proc/net/dev")).unwrap();
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
        assert_eq!(all(text).unwrap()[0].1.rx_bytes, 4294967296);
        let err = all("  eth0: 1 2 3\n").unwrap_err();
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

    #[test]
    fn parses_a_2_6_net_dev() {
        let interfaces = all(include_str!("../../tests/fixtures/old/proc/net/dev")).unwrap();
        let (_, eth0) = interfaces.iter().find(|(n, _)| *n == "eth0").unwrap();
        assert_eq!(eth0.rx_bytes, 3734096471);
        assert_eq!(eth0.tx_packets, 21349832);
    }

    /// Interface counters of 32-bit drivers wrap at 4 GiB (34 s at 1 Gbit/s): that tick
    /// has no rates for the interface rather than a bogus one.
    #[test]
    fn skips_a_tick_when_32_bit_counters_wrap() {
        let arm = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/arm32");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        let config = CollectConfig {
            procfs: dir.path().to_owned(),
            sysfs: arm.join("sys"),
            ..Default::default()
        };
        let mut network = Network::new(&config);
        let start = Instant::now();
        let eth0 = [("interface", "eth0")];
        let wlan0 = [("interface", "wlan0")];
        for t in 0..3 {
            std::fs::copy(
                arm.join(format!("t{t}/proc/net/dev")),
                dir.path().join("net/dev"),
            )
            .unwrap();
            let samples = testing::run_ok(&mut network, &testing::tick(start, t));
            assert_eq!(get(&samples, "network_up", &eth0), Some(1.0));
            let rx = get(&samples, "network_receive_bytes_per_second", &eth0);
            let wlan = get(&samples, "network_receive_bytes_per_second", &wlan0);
            match t {
                0 => assert_eq!((rx, wlan), (None, None)),
                1 => assert_eq!((rx, wlan), (None, Some(100000.0))),
                _ => assert_eq!((rx, wlan), (Some(1e6), Some(100000.0))),
            }
        }
    }
}
