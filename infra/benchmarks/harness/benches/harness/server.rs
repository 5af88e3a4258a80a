//! The release local server (`target/release/local-server`) as a child process, and the tokens
//! it signs for the loads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procs::Mem;
use crate::settings::{free_port, signing_key, Settings};
use crate::{HOST, JWT_SECRET};

pub struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    pub fn start(s: &Settings, label: &str, redis: Option<&str>) -> anyhow::Result<Server> {
        Self::spawn(s, label, redis, None)
    }

    /// A server whose workers of `queues` (`LOCAL_HOLD_QUEUES`) wait for [`Server::release`].
    pub fn start_holding(s: &Settings, label: &str, queues: &str) -> anyhow::Result<Server> {
        Self::spawn(s, label, None, Some(queues))
    }

    /// Starts the held workers (SIGUSR1).
    pub fn release(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-USR1", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -USR1 {} failed ({status})", self.pid());
        }
        Ok(())
    }

    fn spawn(
        s: &Settings,
        label: &str,
        redis: Option<&str>,
        hold: Option<&str>,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let log = s.work.join(format!("server-{label}.log"));
        let out = std::fs::File::create(&log)?;
        let bin = s.bin("local-server");
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&s.work)
            .env("PORT", port.to_string())
            .env("DATABASE_URL", s.db_url())
            .env("JWT_SECRET", JWT_SECRET)
            .env("TICKET_SIGNING_KEY", signing_key())
            .env(
                "RUST_LOG",
                std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("REDIS_URL")
            .env_remove("AWS_LAMBDA_FUNCTION_NAME")
            .env_remove("EMAIL_QUEUE_URL")
            .env_remove("TICKET_QUEUE_URL")
            .env_remove("NOTIFICATION_SERVICE_URL")
            // The webhook receiver of the issue-17 loads listens on 127.0.0.1 (the default
            // outside Lambda, made explicit).
            .env("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        match hold {
            Some(queues) => cmd.env("LOCAL_HOLD_QUEUES", queues),
            None => cmd.env_remove("LOCAL_HOLD_QUEUES"),
        };
        if let Ok(size) = std::env::var("BENCH_DB_POOL_SIZE") {
            cmd.env("DB_POOL_SIZE", size);
        }
        if let Some(url) = redis {
            cmd.env("REDIS_URL", url)
                .env("REDIS_PREFIX", format!("epcbench{}:", std::process::id()))
                // The loads must measure the server, not the limiter.
                .env("RATE_LIMIT_REGISTRATIONS_PER_MINUTE", "100000000")
                .env("RATE_LIMIT_VALIDATIONS_PER_MINUTE", "100000000");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Server { child, port, log })
    }

    pub fn base(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn mem(&self) -> Mem {
        Mem::of(self.pid())
    }

    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the local server exited ({status}); its log ({}):\n{}",
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            if let Ok(r) = http.get(format!("{}/health", self.base())).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the local server did not answer /health in 120 s; log:\n{}",
            tail(&self.log, 30)
        )
    }

    /// Ctrl-C (graceful shutdown), then a kill after 10 s. Only this child, by its pid.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A harness that fails half-way leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn token(s: &Settings, role: &str, sub: &str) -> anyhow::Result<String> {
    let out = Command::new(s.bin("local-server"))
        .args(["token", role, sub])
        .env("JWT_SECRET", JWT_SECRET)
        .env_remove("JWT_ISSUER")
        .env_remove("JWT_AUDIENCE")
        .output()
        .context("local-server token")?;
    if !out.status.success() {
        bail!(
            "local-server token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}
