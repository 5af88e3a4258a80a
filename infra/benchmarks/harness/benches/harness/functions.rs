//! The memory of each API function binary (release) served through the Lambda runtime
//! interface: the project's runtime emulator (`testkit::lambda::Emulator`, cargo-lambda's),
//! a few API Gateway v2 invocations, and the process's RSS after the first and the last.

use std::any::Any;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use testkit::lambda::{apigw_v2, Emulator};

use crate::loads::search_path;
use crate::procs::{child_running, mb, Mem};
use crate::report::Results;
use crate::seed::Seed;
use crate::settings::{signing_key, Settings};
use crate::JWT_SECRET;

/// The functions measured, in order.
const FUNCTIONS: [&str; 4] = ["events", "guests", "tickets", "health"];

/// What one function binary used.
#[derive(Debug, Clone)]
pub struct LambdaMem {
    pub name: String,
    /// The HTTP status of its first answer.
    pub first_status: u16,
    pub after_first: Mem,
    pub after_more: Mem,
    /// Invocations in all.
    pub more: usize,
}

/// Measures every function binary that was built (20 invocations each, on its real path);
/// one that cannot be measured becomes a note of the run.
pub async fn measure(s: &Settings, token: &str, seed: &Seed, res: &mut Results) -> Vec<LambdaMem> {
    println!("harness: Lambda function binaries under the Lambda runtime emulator (cargo-lambda)");
    let mut lambdas = Vec::new();
    if !FUNCTIONS.iter().all(|f| s.bin(f).exists()) {
        res.notes.push("function binaries not built (cargo build --release -p events -p guests -p tickets -p health): their RSS was not measured".into());
        return lambdas;
    }
    let apigw = |m: &str, p: &str, b: Option<Value>| apigw_v2(m, p, Some(token), b.as_ref());
    let (lev, ltt) = seed.events("lambda")[0];
    let (_, lfirst) = seed.pools["val-lambda"];
    let n = 20;
    let plans: [(&'static str, Vec<Value>); 4] = [
        ("events", (0..n).map(|i| apigw("GET", &search_path(i), None)).collect()),
        (
            "guests",
            (0..n)
                .map(|i| {
                    apigw(
                        "POST",
                        &format!("/api/events/{lev}/guests"),
                        Some(json!({"firstName": "Lambda", "lastName": "Guest", "email": format!("lambda-{i}@bench.example"), "ticketTypeId": ltt})),
                    )
                })
                .collect(),
        ),
        (
            "tickets",
            (0..n)
                .map(|i| {
                    apigw(
                        "POST",
                        &format!("/api/tickets/{}/validate", lfirst + i as i64),
                        Some(json!({"scannerId": "lambda", "location": "Gate"})),
                    )
                })
                .collect(),
        ),
        ("health", (0..n).map(|_| apigw_v2("GET", "/health/ready", None, None)).collect()),
    ];
    for (name, requests) in plans {
        let emulator = match start(s, name).await {
            Ok(emulator) => emulator,
            Err(e) => {
                println!("  {e:#}");
                res.notes.push(format!(
                    "the function binaries could not be measured: {e:#}"
                ));
                break;
            }
        };
        match lambda_memory(s, emulator, name, requests).await {
            Ok(m) => {
                println!(
                    "  {name:<8} first answer {}  RSS {:.1} MB after it, {:.1} MB after {} requests, peak {:.1} MB",
                    m.first_status,
                    mb(m.after_first.rss_kb),
                    mb(m.after_more.rss_kb),
                    m.more,
                    mb(m.after_more.hwm_kb)
                );
                lambdas.push(m);
            }
            Err(e) => {
                println!("  {name}: {e:#}");
                res.notes
                    .push(format!("the {name} function could not be measured: {e:#}"));
            }
        }
    }
    lambdas
}

/// An emulator of its own with the binary of function `name` attached to it (the emulator
/// stops it when dropped). Its own configuration: the bench database, no Redis, no queues,
/// the Lambda default pool (a blank variable is an unset one for the configuration).
async fn start(s: &Settings, name: &'static str) -> anyhow::Result<Emulator> {
    let exe = s.bin(name);
    let exe = exe
        .to_str()
        .with_context(|| format!("{} is not UTF-8", exe.display()))?
        .to_owned();
    let (db_url, key) = (s.db_url(), signing_key());
    tokio::task::spawn_blocking(move || {
        let mut emulator = Emulator::start();
        emulator.attach(
            name,
            &exe,
            &[
                ("DATABASE_URL", db_url.as_str()),
                ("JWT_SECRET", JWT_SECRET),
                ("TICKET_SIGNING_KEY", key.as_str()),
                ("REDIS_URL", ""),
                ("DB_POOL_SIZE", ""),
                ("EMAIL_QUEUE_URL", ""),
                ("TICKET_QUEUE_URL", ""),
            ],
        );
        emulator
    })
    .await
    .map_err(|e| {
        anyhow!(
            "the Lambda runtime emulator did not start: {}",
            panic_text(e)
        )
    })
}

/// The invocations of one function, and its memory after the first and after the last.
async fn lambda_memory(
    s: &Settings,
    emulator: Emulator,
    name: &'static str,
    requests: Vec<Value>,
) -> anyhow::Result<LambdaMem> {
    let pid = child_running(&s.bin(name))
        .with_context(|| format!("the {name} process is not running"))?;
    // The emulator's driver panics when the emulator does not answer: in a task of its own,
    // a failure is this function's, not the run's (the emulator and the binary stop either way).
    tokio::spawn(async move {
        let invoke = |event: &Value| {
            let emulator = &emulator;
            let event = event.clone();
            async move {
                match emulator.invoke(name, &event).await {
                    (200, output) => Ok(output),
                    (408, _) => bail!("{name} did not answer in 60 s"),
                    (status, output) => bail!("{name} reported an error ({status}): {output}"),
                }
            }
        };
        let first = invoke(&requests[0]).await?;
        let first_status = first["statusCode"].as_u64().unwrap_or(0) as u16;
        let after_first = Mem::of(pid);
        for r in &requests[1..] {
            invoke(r).await?;
        }
        Ok(LambdaMem {
            name: name.to_owned(),
            first_status,
            after_first,
            after_more: Mem::of(pid),
            more: requests.len(),
        })
    })
    .await
    .map_err(|e| anyhow!("the emulator's driver failed: {}", panic_text(e)))?
}

/// The message of a task that panicked.
fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(panic) => {
            let panic: &(dyn Any + Send) = &*panic;
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panicked".into())
        }
        Err(e) => e.to_string(),
    }
}
