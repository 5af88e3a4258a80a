//! The processes of a run, read from /proc: memory of one process, and the CPU of every
//! process during a phase, split by whose it is (server, PostgreSQL, load generator, others).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

impl Mem {
    pub fn of(pid: u32) -> Mem {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Mem {
            rss_kb: field("VmRSS:"),
            hwm_kb: field("VmHWM:"),
        }
    }
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// utime + stime of a process, in clock ticks.
fn proc_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// (busy, total) ticks of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Whose CPU a process's is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Server,
    /// Backends of the bench database and PostgreSQL's own processes (WAL writer...).
    Postgres,
    Harness,
    Pgbench,
    /// Everything else: other engineers' builds and tests (and their database sessions).
    Other,
}

fn classify(pid: &str, server: Option<u32>, db: &str) -> Who {
    if server.is_some_and(|s| s.to_string() == pid) {
        return Who::Server;
    }
    if std::process::id().to_string() == pid {
        return Who::Harness;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    match comm.trim() {
        "pgbench" => Who::Pgbench,
        // The cache's share of serving a request.
        "redis-server" => Who::Server,
        "postgres" => {
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            let client = cmdline.contains("127.0.0.1(")
                || cmdline.contains("[local]")
                || cmdline.contains("::1(");
            if !client || cmdline.split_whitespace().any(|w| w == db) {
                Who::Postgres
            } else {
                Who::Other
            }
        }
        _ => Who::Other,
    }
}

/// CPU seconds spent during a phase, by whom.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub server: f64,
    pub pg: f64,
    pub me: f64,
    pub pgbench: f64,
    pub other: f64,
    pub busy: f64,
    /// CPU-seconds the machine had (wall time × CPUs).
    pub capacity: f64,
}

impl CpuUse {
    pub fn busy_share(&self) -> f64 {
        self.busy / self.capacity.max(1e-9)
    }

    pub fn other_share(&self) -> f64 {
        self.other / self.capacity.max(1e-9)
    }
}

/// Samples /proc every 200 ms during a phase and adds up the CPU of every process by [`Who`]
/// (processes that start during the phase count from zero; the last <200 ms of one that
/// exits are missed).
pub struct CpuMeter {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(CpuUse, String)>,
}

impl CpuMeter {
    pub fn start(server: Option<u32>, db: &str, tck: f64) -> CpuMeter {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let db = db.to_owned();
        let handle = std::thread::spawn(move || {
            let mut seen: std::collections::HashMap<String, (Who, u64)> = Default::default();
            let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut others: BTreeMap<String, u64> = BTreeMap::new();
            let (b0, t0) = machine_ticks();
            let mut first = true;
            loop {
                let done = flag.load(Ordering::Relaxed);
                if let Ok(dir) = std::fs::read_dir("/proc") {
                    for pid in dir
                        .filter_map(Result::ok)
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    {
                        let ticks = proc_ticks(&pid);
                        let entry = seen.entry(pid.clone());
                        let (who, last) = match entry {
                            std::collections::hash_map::Entry::Occupied(ref e) => *e.get(),
                            std::collections::hash_map::Entry::Vacant(_) => {
                                (classify(&pid, server, &db), if first { ticks } else { 0 })
                            }
                        };
                        let key = match who {
                            Who::Server => "server",
                            Who::Postgres => "pg",
                            Who::Harness => "me",
                            Who::Pgbench => "pgbench",
                            Who::Other => "other",
                        };
                        let delta = ticks.saturating_sub(last);
                        *totals.entry(key).or_default() += delta;
                        if who == Who::Other && delta > 0 {
                            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                                .unwrap_or_default();
                            *others.entry(comm.trim().to_owned()).or_default() += delta;
                        }
                        seen.insert(pid, (who, ticks.max(last)));
                    }
                }
                first = false;
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let (b1, t1) = machine_ticks();
            let get = |k: &str| totals.get(k).copied().unwrap_or(0) as f64 / tck;
            let mut top: Vec<(String, u64)> = others.into_iter().collect();
            top.sort_by_key(|t| std::cmp::Reverse(t.1));
            let top = top
                .iter()
                .take(3)
                .map(|(c, t)| format!("{c} {:.1} CPU-s", *t as f64 / tck))
                .collect::<Vec<_>>()
                .join(", ");
            let cpu = CpuUse {
                server: get("server"),
                pg: get("pg"),
                me: get("me"),
                pgbench: get("pgbench"),
                other: get("other"),
                busy: (b1 - b0) as f64 / tck,
                capacity: (t1 - t0) as f64 / tck,
            };
            (cpu, top)
        });
        CpuMeter { stop, handle }
    }

    /// The CPU split, and the three busiest other processes.
    pub fn finish(self) -> (CpuUse, String) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// A warning when other processes took more than 10 % of the machine during a phase.
pub fn interference(cpu: &CpuUse, top: &str) -> String {
    if cpu.other_share() > 0.10 {
        format!(
            "  ⚠ other processes used {:.0} % of the machine ({top})",
            100.0 * cpu.other_share()
        )
    } else {
        String::new()
    }
}

/// The pid of a child of this process that runs the executable `exe`.
pub fn child_running(exe: &Path) -> Option<u32> {
    let exe = std::fs::canonicalize(exe).ok()?;
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After "pid (comm)": state, then the parent's pid.
            let parent = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1));
            parent == Some(me.as_str())
                && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe)
        })
        .and_then(|pid| pid.parse().ok())
}
