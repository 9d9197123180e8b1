//! System and process metrics under their Elastic names, read from `/proc` on Linux. Elsewhere, or
//! when a file cannot be read, the samples it would give are left out.
//!
//! CPU percentages compare two readings: the first collection has only a baseline and reports
//! them from the second one on. A forked child starts a new engine, hence a new baseline.

use crate::model::{MetricKind, MetricSample};

/// Clock ticks the whole machine spent, and of those idle (idle and waiting for I/O), from the
/// `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemCpu {
    pub total: u64,
    pub idle: u64,
}

pub fn parse_stat(text: &str) -> Option<SystemCpu> {
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal; guest time is already counted in user.
    let counted = &ticks[..ticks.len().min(8)];
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some(SystemCpu { total: counted.iter().sum(), idle })
}

/// `MemTotal` and the memory available without swapping (`MemAvailable`; on old kernels
/// free + buffers + page cache), in bytes, from `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| kib_field(text, name);
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:").or_else(|| Some(field("MemFree:")? + field("Buffers:").unwrap_or(0) + field("Cached:").unwrap_or(0)))?;
    Some((total, available))
}

/// The process's CPU ticks (user + system) from `/proc/self/stat`.
pub fn parse_process_stat(text: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces or parentheses: fields follow the last `)`.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 1..)?.split_whitespace().collect();
    // After the name: state (field 3) ... utime (field 14), stime (field 15).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Virtual size and resident set in bytes, and the thread count, from `/proc/self/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessStatus {
    pub size: Option<u64>,
    pub rss: Option<u64>,
    pub threads: Option<u64>,
}

pub fn parse_status(text: &str) -> ProcessStatus {
    let threads = text.lines().find_map(|line| line.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok());
    ProcessStatus { size: kib_field(text, "VmSize:"), rss: kib_field(text, "VmRSS:"), threads }
}

/// A `Name:   123 kB` line, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let rest = text.lines().find_map(|line| line.strip_prefix(name))?;
    let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The previous CPU readings, for the next percentages.
#[derive(Debug, Default)]
pub struct SystemSampler {
    previous: Option<(SystemCpu, Option<u64>)>,
}

impl SystemSampler {
    /// The samples readable now, with CPU percentages since the previous call.
    pub fn sample(&mut self) -> Vec<MetricSample> {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        self.sample_from(
            read("/proc/stat").as_deref().and_then(parse_stat),
            read("/proc/meminfo").as_deref().and_then(parse_meminfo),
            read("/proc/self/stat").as_deref().and_then(parse_process_stat),
            read("/proc/self/status").as_deref().map(parse_status).unwrap_or_default(),
        )
    }

    fn sample_from(&mut self, cpu: Option<SystemCpu>, memory: Option<(u64, u64)>, process_ticks: Option<u64>, status: ProcessStatus) -> Vec<MetricSample> {
        let mut samples = Vec::new();
        let mut gauge = |name: &str, value: Option<f64>| {
            if let Some(value) = value {
                samples.push(MetricSample { name: name.to_owned(), value, kind: MetricKind::Gauge });
            }
        };
        let previous = std::mem::replace(&mut self.previous, cpu.map(|cpu| (cpu, process_ticks)));
        if let (Some(cpu), Some((before, process_before))) = (cpu, previous) {
            let elapsed = cpu.total.saturating_sub(before.total);
            if elapsed > 0 {
                let idle = cpu.idle.saturating_sub(before.idle);
                gauge("system.cpu.total.norm.pct", Some(1.0 - idle as f64 / elapsed as f64));
                // Ticks of all CPUs in both: the share is already normalized by the CPU count.
                let process = process_ticks.zip(process_before).map(|(now, then)| now.saturating_sub(then) as f64 / elapsed as f64);
                gauge("system.process.cpu.total.norm.pct", process.map(|p| p.min(1.0)));
            }
        }
        gauge("system.memory.actual.free", memory.map(|(_, available)| available as f64));
        gauge("system.memory.total", memory.map(|(total, _)| total as f64));
        gauge("system.process.memory.size", status.size.map(|v| v as f64));
        gauge("system.process.memory.rss.bytes", status.rss.map(|v| v as f64));
        gauge("system.process.threads", status.threads.map(|v| v as f64));
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  4705 356 584 3699 23 0 19 0 7 0\ncpu0 1393280 32966 572056 13343292 6130 0 17875 0 0 0\nintr 1 2 3\n";
    const MEMINFO: &str = "MemTotal:       24684092 kB\nMemFree:         1024000 kB\nMemAvailable:   24076176 kB\nBuffers:          204800 kB\n";
    const PROCESS_STAT: &str = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 2310 0 0 0 173 42 0 0 20 0 3 0 1234 187133952 7478 18446744073709551615";
    const STATUS: &str = "Name:\tpython3\nVmPeak:\t  190000 kB\nVmSize:\t  182748 kB\nVmRSS:\t   29912 kB\nThreads:\t3\n";

    #[test]
    fn proc_files_are_parsed() {
        assert_eq!(parse_stat(STAT), Some(SystemCpu { total: 4705 + 356 + 584 + 3699 + 23 + 19, idle: 3699 + 23 }));
        assert_eq!(parse_meminfo(MEMINFO), Some((24_684_092 * 1024, 24_076_176 * 1024)));
        // Before MemAvailable (Linux 3.14): free + buffers + cache.
        assert_eq!(parse_meminfo("MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 20 kB\n"), Some((102_400, 35 * 1024)));
        assert_eq!(parse_process_stat(PROCESS_STAT), Some(173 + 42));
        assert_eq!(parse_status(STATUS), ProcessStatus { size: Some(182_748 * 1024), rss: Some(29_912 * 1024), threads: Some(3) });
    }

    #[test]
    fn unreadable_or_malformed_text_gives_nothing() {
        assert_eq!(parse_stat("intr 1 2\n"), None);
        assert_eq!(parse_stat("cpu  1 two 3\n"), None);
        assert_eq!(parse_meminfo("MemFree: 10 kB\n"), None);
        assert_eq!(parse_process_stat("4242 (truncated"), None);
        assert_eq!(parse_status(""), ProcessStatus::default());
    }

    fn names(samples: &[MetricSample]) -> Vec<&str> {
        samples.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn cpu_percentages_come_from_the_second_reading_on() {
        let mut sampler = SystemSampler::default();
        let status = parse_status(STATUS);
        let first = sampler.sample_from(Some(SystemCpu { total: 1000, idle: 800 }), parse_meminfo(MEMINFO), Some(100), status);
        assert!(!names(&first).iter().any(|n| n.contains("cpu")), "{first:?}");
        assert_eq!(names(&first).len(), 5);
        let second = sampler.sample_from(Some(SystemCpu { total: 1400, idle: 1100 }), None, Some(120), status);
        let value = |name: &str| second.iter().find(|s| s.name == name).map(|s| s.value);
        assert_eq!(value("system.cpu.total.norm.pct"), Some(0.25));
        assert_eq!(value("system.process.cpu.total.norm.pct"), Some(0.05));
        assert_eq!(value("system.memory.total"), None);
        assert_eq!(value("system.process.threads"), Some(3.0));
    }

    #[test]
    fn the_running_system_gives_every_sample_on_linux() {
        let mut sampler = SystemSampler::default();
        sampler.sample();
        let samples = sampler.sample();
        if cfg!(target_os = "linux") {
            assert!(names(&samples).contains(&"system.memory.total") && names(&samples).contains(&"system.process.memory.rss.bytes"), "{samples:?}");
        }
    }
}
