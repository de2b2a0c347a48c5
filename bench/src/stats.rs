//! Latency samples and their percentiles, and the machine the run is on.

use std::time::Duration;

/// Latencies in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    /// An empty set with room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Adds a sample.
    pub fn push(&mut self, latency: Duration) {
        self.0
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every sample of `other`.
    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (0..=1) in milliseconds (nearest rank); 0 without samples.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1000.0
    }

    /// The median in milliseconds.
    pub fn p50(&self) -> f64 {
        self.quantile_ms(0.50)
    }

    /// The 99th percentile in milliseconds.
    pub fn p99(&self) -> f64 {
        self.quantile_ms(0.99)
    }
}

/// The machine: CPU count and model, memory.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// `MemTotal` of /proc/meminfo, in MiB.
    pub memory_mib: u64,
}

impl Machine {
    /// Reads the machine's description (unknown parts stay empty).
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = kib_field(&meminfo, "MemTotal:").unwrap_or(0) / 1024;
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory_mib,
        }
    }
}

/// A `Name:   123 kB` field of a /proc file, in KiB.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory of process `pid`: (current `VmRSS`, peak `VmHWM`) in KiB.
pub fn resident_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (
        kib_field(&status, "VmRSS:").unwrap_or(0),
        kib_field(&status, "VmHWM:").unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut latencies = Latencies::default();
        for ms in 1..=100 {
            latencies.push(Duration::from_millis(ms));
        }
        assert_eq!(latencies.p50(), 50.0);
        assert_eq!(latencies.p99(), 99.0);
        assert_eq!(Latencies::default().p99(), 0.0);
    }

    #[test]
    fn proc_fields_are_read_in_kib() {
        let text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t1024 kB\n";
        assert_eq!(kib_field(text, "VmRSS:"), Some(1024));
        assert_eq!(kib_field(text, "VmHWM:"), Some(2048));
        assert_eq!(kib_field(text, "VmSwap:"), None);
    }
}
