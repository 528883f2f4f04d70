//! CPU, memory, swap and the host (uptime, the agent itself) through sysinfo.

use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use super::super::{CollectError, Collector, Out, Tick};

use super::{Shared, failed, lock, ratio};

/// CPU usage in total and per CPU, and the load average.
#[derive(Debug)]
pub struct Cpu {
    system: Shared,
    /// CPU usage was refreshed on an earlier tick: sysinfo's usage is over the time since then.
    primed: bool,
    /// `"0"`, `"1"`, ...: label values made once.
    labels: Vec<String>,
}

impl Cpu {
    pub(super) fn new(system: Shared) -> Self {
        Self {
            system,
            primed: false,
            labels: Vec::new(),
        }
    }

    fn collect_usage(&mut self, out: &mut Out<'_>) -> Result<(), CollectError> {
        let mut system = lock(&self.system, "cpu")?;
        system.refresh_cpu_usage();
        if system.cpus().is_empty() {
            return Err(failed("cpu", "no CPU listed"));
        }
        if !std::mem::replace(&mut self.primed, true) {
            return Ok(());
        }
        out.push(
            "cpu_usage_ratio",
            &[("cpu", "total")],
            ratio(system.global_cpu_usage()),
        );
        while self.labels.len() < system.cpus().len() {
            self.labels.push(self.labels.len().to_string());
        }
        for (cpu, label) in system.cpus().iter().zip(&self.labels) {
            out.push("cpu_usage_ratio", &[("cpu", label)], ratio(cpu.usage()));
        }
        Ok(())
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let usage = self.collect_usage(out);
        let load = System::load_average()
            .map(|load| {
                out.push("load_average_1m", &[], load.one);
                out.push("load_average_5m", &[], load.five);
                out.push("load_average_15m", &[], load.fifteen);
            })
            .map_err(|e| failed("load average", e));
        usage.and(load)
    }
}

/// RAM totals and use.
#[derive(Debug)]
pub struct Memory {
    system: Shared,
}

impl Memory {
    pub(super) fn new(system: Shared) -> Self {
        Self { system }
    }
}

impl Collector for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let mut system = lock(&self.system, "memory")?;
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = system.total_memory();
        if total == 0 {
            // sysinfo reports 0 when it could not read the figures.
            return Err(failed("memory", "total memory is 0"));
        }
        let available = system.available_memory().min(total);
        let used = total - available;
        out.push("memory_total_bytes", &[], total as f64);
        out.push("memory_available_bytes", &[], available as f64);
        out.push("memory_used_bytes", &[], used as f64);
        out.push("memory_used_ratio", &[], used as f64 / total as f64);
        Ok(())
    }
}

/// Swap space use.
#[derive(Debug)]
pub struct Swap {
    system: Shared,
}

impl Swap {
    pub(super) fn new(system: Shared) -> Self {
        Self { system }
    }
}

impl Collector for Swap {
    fn name(&self) -> &'static str {
        "swap"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let mut system = lock(&self.system, "swap")?;
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_swap());
        let total = system.total_swap();
        let used = total.saturating_sub(system.free_swap());
        out.push("swap_total_bytes", &[], total as f64);
        out.push("swap_used_bytes", &[], used as f64);
        // As the procfs collector: a host without swap is 0 % used, not unknown.
        let ratio = if total == 0 {
            0.0
        } else {
            used as f64 / total as f64
        };
        out.push("swap_used_ratio", &[], ratio);
        Ok(())
    }
}

/// Uptime, boot time, and the agent's CPU time and resident memory.
#[derive(Debug)]
pub struct Host {
    system: Shared,
    pid: Result<Pid, String>,
}

impl Host {
    pub(super) fn new(system: Shared) -> Self {
        Self {
            system,
            pid: sysinfo::get_current_pid().map_err(|e| e.to_string()),
        }
    }

    fn collect_agent(&self, out: &mut Out<'_>) -> Result<(), CollectError> {
        let pid = *self
            .pid
            .as_ref()
            .map_err(|detail| failed("own pid", detail))?;
        let mut system = lock(&self.system, "own process")?;
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_cpu()
                .with_memory(),
        );
        let p = system
            .process(pid)
            .ok_or_else(|| failed("own process", "not listed"))?;
        out.push(
            "agent_cpu_seconds_total",
            &[],
            p.accumulated_cpu_time() as f64 / 1000.0,
        );
        out.push("agent_resident_bytes", &[], p.memory() as f64);
        Ok(())
    }
}

impl Collector for Host {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        // Independent readings: a failure of one is counted and does not hide the others.
        match System::uptime() {
            Ok(secs) => out.push("host_uptime_seconds", &[], secs as f64),
            Err(e) => out.fail(failed("uptime", e)),
        }
        match System::boot_time() {
            Ok(secs) => out.push("host_boot_time_seconds", &[], secs as f64),
            Err(e) => out.fail(failed("boot time", e)),
        }
        if let Err(e) = self.collect_agent(out) {
            out.fail(e);
        }
        Ok(())
    }
}
