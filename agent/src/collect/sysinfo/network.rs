//! Per-interface traffic and link state through sysinfo.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Instant;

use sysinfo::{InterfaceOperationalState, Networks};

use super::super::network::NetworkConfig;
use super::super::select::selected;
use super::super::{CollectConfig, CollectError, Collector, Out, Tick};

use super::failed;

/// Metric names of the rates, in the order of [`counters`].
pub(super) const RATES: [&str; 6] = [
    "network_receive_bytes_per_second",
    "network_receive_packets_per_second",
    "network_receive_errors_per_second",
    "network_transmit_bytes_per_second",
    "network_transmit_packets_per_second",
    "network_transmit_errors_per_second",
];

/// The counters of an interface since it was created, in [`RATES`] order.
fn counters(data: &sysinfo::NetworkData) -> [u64; 6] {
    [
        data.total_received(),
        data.total_packets_received(),
        data.total_errors_on_received(),
        data.total_transmitted(),
        data.total_packets_transmitted(),
        data.total_errors_on_transmitted(),
    ]
}

/// `network_up` for an operational state, as the procfs collector reads `operstate`: `up`, and
/// `unknown` (drivers that do not track link state), are up. `None` for a state sysinfo could
/// not name.
fn link_up(state: InterfaceOperationalState) -> Option<bool> {
    match state {
        InterfaceOperationalState::Up | InterfaceOperationalState::Unknown => Some(true),
        InterfaceOperationalState::Down
        | InterfaceOperationalState::Testing
        | InterfaceOperationalState::Dormant
        | InterfaceOperationalState::NotPresent
        | InterfaceOperationalState::LowerLayerDown => Some(false),
        _ => None,
    }
}

/// Per-interface traffic and link state.
#[derive(Debug)]
pub struct Network {
    networks: Result<Networks, String>,
    config: NetworkConfig,
    /// Counters of each reported interface at the previous tick.
    prev: HashMap<OsString, [u64; 6]>,
    prev_at: Option<Instant>,
}

impl Network {
    pub(super) fn new(config: &CollectConfig) -> Self {
        Self {
            networks: Networks::new().map_err(|e| e.to_string()),
            config: config.network.clone(),
            prev: HashMap::new(),
            prev_at: None,
        }
    }
}

impl Collector for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let networks = self
            .networks
            .as_mut()
            .map_err(|detail| failed("networks", detail))?;
        networks.refresh(true);
        let secs = self
            .prev_at
            .map(|at| tick.now.saturating_duration_since(at).as_secs_f64())
            .filter(|s| *s > 0.0);
        let mut next = HashMap::with_capacity(self.prev.len());
        for (name, data) in networks.iter() {
            let Some(label) = name.to_str() else {
                continue;
            };
            if !selected(label, &self.config.include, &self.config.exclude) {
                continue;
            }
            let labels = [("interface", label)];
            if let Some(up) = link_up(data.operational_state()) {
                out.push("network_up", &labels, if up { 1.0 } else { 0.0 });
            }
            let cur = counters(data);
            if let (Some(prev), Some(secs)) = (self.prev.get(name), secs)
                // A counter that went backwards: the interface was recreated. No rates.
                && cur.iter().zip(prev).all(|(c, p)| c >= p)
            {
                for ((metric, c), p) in RATES.iter().zip(cur).zip(prev) {
                    out.push(metric, &labels, (c - p) as f64 / secs);
                }
            }
            next.insert(name.clone(), cur);
        }
        self.prev = next;
        self.prev_at = Some(tick.now);
        Ok(())
    }
}
