//! The harness's knobs (environment variables), paths, and the small helpers every phase uses.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use tokio_postgres::NoTls;

use crate::HOST;

/// Environment knobs (all optional):
/// `BENCH_SECS` (8) measured seconds per HTTP load, `BENCH_WARMUP_SECS` (1),
/// `BENCH_PGBENCH_SECS` (8), `BENCH_EVENTS` (100000), `BENCH_DB` (ept_bench), `BENCH_PG_PORT`
/// (5432), `BENCH_REDIS_URL` (redis://127.0.0.1:6379), `BENCH_BIN_DIR` (target/release),
/// `BENCH_DB_POOL_SIZE` (unset: the server's default), `BENCH_RUST_LOG` (info),
/// `BENCH_RESULTS` (infra/benchmarks/RESULTS.md), `BENCH_ONLY` (unset; `integrations`: seed,
/// then only the issue-17 loads, printed and not written to RESULTS.md: a quick comparison
/// while working on that path, never a result).
pub struct Settings {
    pub root: PathBuf,
    /// `target/bench`: server and pgbench logs, generated pgbench scripts.
    pub work: PathBuf,
    pub bin_dir: PathBuf,
    pub results: PathBuf,
    pub pg_port: u16,
    pub db: String,
    pub secs: f64,
    pub warmup: f64,
    pub pg_secs: usize,
    pub events: usize,
    pub redis_url: String,
    pub clk_tck: f64,
    pub only: Option<String>,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        // This crate is infra/benchmarks/harness: the repository root is three levels up.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(3)
            .context("infra/benchmarks/harness/ is inside the repository")?
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let target = if target.is_absolute() {
            target
        } else {
            root.join(target)
        };
        let bin_dir = std::env::var_os("BENCH_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("release"));
        let work = target.join("bench");
        std::fs::create_dir_all(&work)?;
        let env_f = |k: &str, d: f64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let env_u = |k: &str, d: usize| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let env_s = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        let clk_tck = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Ok(Self {
            results: std::env::var_os("BENCH_RESULTS")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("infra/benchmarks/RESULTS.md")),
            root,
            work,
            bin_dir,
            pg_port: env_u("BENCH_PG_PORT", 5432) as u16,
            db: env_s("BENCH_DB", "ept_bench"),
            secs: env_f("BENCH_SECS", 8.0),
            warmup: env_f("BENCH_WARMUP_SECS", 1.0),
            pg_secs: env_u("BENCH_PGBENCH_SECS", 8),
            events: env_u("BENCH_EVENTS", 100_000),
            redis_url: env_s("BENCH_REDIS_URL", "redis://127.0.0.1:6379"),
            clk_tck,
            only: std::env::var("BENCH_ONLY").ok().filter(|v| !v.is_empty()),
        })
    }

    pub fn db_url(&self) -> String {
        format!("postgres://postgres@{HOST}:{}/{}", self.pg_port, self.db)
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@{HOST}:{}/postgres", self.pg_port)
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// A fixed development signing seed (base64 of 32 bytes), so nothing is written to `.local/`.
pub fn signing_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((HOST, 0))?.local_addr()?.port())
}

pub async fn pg_connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}
