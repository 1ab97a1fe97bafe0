//! What the scenarios print: per-phase summaries (throughput and latency percentiles computed by
//! sorting the recorded microseconds), the machine, and a machine-wide CPU sampler.

use serde::Serialize;

use crate::load::Outcome;

/// Throughput and latency of one load phase (measured window only).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Answers received inside the window (200s and errors).
    pub requests: u64,
    /// Non-200 answers and transport errors inside the window.
    pub errors: u64,
    /// 200s per second inside the window.
    pub acks_per_sec: f64,
    /// Latency of the 200s, from sending the request to reading the whole answer.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Machine-wide CPU use during the phase (Linux only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuUse>,
}

impl PhaseReport {
    pub fn new(outcome: &Outcome, cpu: Option<CpuUse>) -> PhaseReport {
        let mut latencies = outcome.latencies_us.clone();
        latencies.sort_unstable();
        let secs = outcome.window.as_secs_f64();
        PhaseReport {
            requests: outcome.ok + outcome.errors,
            errors: outcome.errors,
            acks_per_sec: if secs > 0.0 {
                round(outcome.ok as f64 / secs, 1)
            } else {
                0.0
            },
            p50_ms: us_to_ms(percentile(&latencies, 50.0)),
            p99_ms: us_to_ms(percentile(&latencies, 99.0)),
            max_ms: us_to_ms(latencies.last().copied().unwrap_or(0)),
            cpu,
        }
    }
}

/// Nearest-rank percentile of an ascending slice; 0 when empty.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn us_to_ms(us: u32) -> f64 {
    round(f64::from(us) / 1000.0, 3)
}

pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub os: &'static str,
    pub arch: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
}

pub fn machine() -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
    Machine {
        cpus: cpus(),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        cpu_model,
    }
}

/// Share of all cores' time spent busy and in I/O wait, over a phase, for every process on the
/// machine (so PostgreSQL's backends and anything else running count too).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub busy: f64,
    pub iowait: f64,
    /// Time the hypervisor gave to other guests (noise on a shared VM).
    pub steal: f64,
}

/// Reads `/proc/stat` at the start and end of a phase.
pub struct CpuSampler {
    start: Option<[u64; 4]>,
}

impl CpuSampler {
    pub fn start() -> CpuSampler {
        CpuSampler {
            start: read_proc_stat(),
        }
    }

    pub fn finish(self) -> Option<CpuUse> {
        let [busy0, iowait0, steal0, total0] = self.start?;
        let [busy1, iowait1, steal1, total1] = read_proc_stat()?;
        let total = total1.checked_sub(total0).filter(|t| *t > 0)? as f64;
        let share = |a: u64, b: u64| round(b.saturating_sub(a) as f64 / total, 3);
        Some(CpuUse {
            busy: share(busy0, busy1),
            iowait: share(iowait0, iowait1),
            steal: share(steal0, steal1),
        })
    }
}

/// (busy, iowait, steal, total) jiffies of the aggregate `cpu` line.
fn read_proc_stat() -> Option<[u64; 4]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    if fields.len() < 8 {
        return None;
    }
    let total: u64 = fields[..8].iter().sum();
    let idle = fields[3];
    let iowait = fields[4];
    let steal = fields[7];
    Some([total - idle - iowait - steal, iowait, steal, total])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn phase_report_from_outcome() {
        let outcome = Outcome {
            window: std::time::Duration::from_secs(2),
            latencies_us: vec![3000, 1000, 2000, 4000],
            ok: 4,
            errors: 1,
            ..Outcome::default()
        };
        let r = PhaseReport::new(&outcome, None);
        assert_eq!(r.requests, 5);
        assert_eq!(r.errors, 1);
        assert_eq!(r.acks_per_sec, 2.0);
        assert_eq!(r.p50_ms, 2.0);
        assert_eq!(r.p99_ms, 4.0);
        assert_eq!(r.max_ms, 4.0);
    }
}
