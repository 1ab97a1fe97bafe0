//! Memory and CPU of a process from `/proc` (Linux): the server's RSS and peak (VmHWM), CPU ticks
//! of a process or of some of this process's threads, and the cores they used between two marks.
//! Used by the scenarios that run the server as a child process (`desk`, `broadcast`) or measure
//! it in-process apart from their client threads.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::report::{self, CpuSampler, CpuUse, round};

/// A process's memory and CPU counters, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kb: u64,
    pub hwm_kb: u64,
    /// utime + stime, clock ticks, of every thread (finished ones included).
    pub ticks: u64,
    pub threads: u64,
}

fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    }
}

/// The counters of process `pid` (`None` = this process); `None` when it cannot be read.
pub fn proc_sample(pid: Option<u32>) -> Option<ProcSample> {
    let dir = proc_dir(pid);
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    Some(ProcSample {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
        ticks: stat_ticks(&stat)?,
        threads: field("Threads:"),
    })
}

/// utime + stime of a `/proc/.../stat` line (fields 14 and 15; the command name in parentheses
/// may contain spaces, so count from the closing parenthesis).
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks of this process's threads named `comm` (at most 15 characters, the kernel's `comm`).
pub fn thread_ticks(comm: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| {
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if name.trim() != comm {
                return None;
            }
            stat_ticks(&std::fs::read_to_string(t.path().join("stat")).ok()?)
        })
        .sum()
}

pub fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// KiB to MiB, one decimal.
pub fn mb(kb: u64) -> f64 {
    round(kb as f64 / 1024.0, 1)
}

/// CPU counters at one instant: the server, this process, its client threads (named
/// `client_comm`), the whole machine.
pub struct CpuMark {
    at: Instant,
    server: u64,
    own: u64,
    client_comm: &'static str,
    client_threads: u64,
    machine: CpuSampler,
}

impl CpuMark {
    /// `pid`: the server's process (`None` = it runs in this process, apart from the threads
    /// named `client_comm`, which are the load generator's).
    pub fn take(pid: Option<u32>, client_comm: &'static str) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            server: proc_sample(pid).map_or(0, |s| s.ticks),
            own: proc_sample(None).map_or(0, |s| s.ticks),
            client_comm,
            client_threads: thread_ticks(client_comm),
            machine: CpuSampler::start(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// Cores busy on average (1.0 = one core fully).
    pub server_cores: f64,
    /// server_cores / cores of the machine.
    pub server_share_of_machine: f64,
    /// The load generator: this whole process when the server is a child process (clients and,
    /// where there is one, graph-sim), else its client threads.
    pub load_generator_cores: f64,
    pub machine: Option<CpuUse>,
}

/// What was used from `start` until now.
pub fn cpu_between(start: CpuMark, pid: Option<u32>, tck: f64) -> CpuReport {
    let end = CpuMark::take(pid, start.client_comm);
    let secs = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
    let cores = |ticks: u64| round(ticks as f64 / tck / secs, 3);
    let clients = end.client_threads.saturating_sub(start.client_threads);
    let (server, generator) = match pid {
        Some(_) => (
            end.server.saturating_sub(start.server),
            end.own.saturating_sub(start.own),
        ),
        None => (
            end.own.saturating_sub(start.own).saturating_sub(clients),
            clients,
        ),
    };
    let server_cores = cores(server);
    CpuReport {
        server_cores,
        server_share_of_machine: round(server_cores / report::cpus() as f64, 3),
        load_generator_cores: cores(generator),
        machine: start.machine.finish(),
    }
}

/// The highest RSS (KiB) of `pid` seen, sampled every 250 ms until `stop`.
pub async fn sample_rss(pid: Option<u32>, stop: CancellationToken) -> u64 {
    let mut max = 0;
    loop {
        max = max.max(proc_sample(pid).map_or(0, |s| s.rss_kb));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.cancelled() => return max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_of_a_stat_line() {
        let stat = "1234 (tokio (rt) w) S 1 2 3 4 5 6 7 8 9 10 111 222 0 0 20 0";
        assert_eq!(stat_ticks(stat), Some(333));
    }

    #[test]
    fn samples_this_process() {
        let s = proc_sample(None).expect("/proc/self");
        assert!(s.rss_kb > 0 && s.hwm_kb >= s.rss_kb && s.threads >= 1);
    }
}
