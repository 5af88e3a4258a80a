//! Issue 17: "registration & check-in rates with idempotency keys + webhooks on within 10 % of
//! off, one run". The `hot16` registration load and the 64-client validation load, each run
//! plain (off) and with integrations on: every request carries an `Idempotency-Key` (a fresh
//! UUID) and the organizer has an enabled webhook subscribed to `guest.registered` and
//! `guest.checked_in`, so that every registration and every first entry writes a delivery in
//! its transaction (the delivery is its own outbox, migrations/V20) and sends its
//! `deliver_webhook` message after the commit. Four pairs in the order off on, on off, off on,
//! on off ([`LOADS`]), then a load with the keys alone (no webhook), which splits the cost between
//! the two, and one with the webhooks delivered during the load; a fresh server each (as the registration
//! loads: the in-process workers' backlog of one load, webhook deliveries included, stays out
//! of the next).
//!
//! In AWS the webhook worker is a function of its own: the API writes the delivery and sends
//! its message to SQS after the commit; the worker's CPU is elsewhere, and only its
//! database work shares the database. Here every process shares 2 cores, so the "on" loads
//! hold the local server's webhook worker during the load (`LOCAL_HOLD_QUEUES=webhooks`: the
//! deliveries are written and sent as in AWS, then wait as they would in SQS), release it after
//! the load, and measure the backlog's delivery on its own (time, and CPU per delivery). The
//! last load ("in process") delivers during the load, as a single machine would.
//!
//! The webhook points at [`Receiver`], a tiny HTTP server of this harness on 127.0.0.1 that
//! answers 200 to every delivery (the server runs with `WEBHOOKS_ALLOW_PRIVATE_TARGETS=true`):
//! the workers really deliver, as a healthy receiver would have them, instead of failing and
//! retrying against an unreachable host.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::json;

use crate::driver::{drive, fresh_uuid, measured, Api, Sample};
use crate::loads::{drop_pending_jobs, register, validate_one};
use crate::procs::{CpuMeter, CpuUse};
use crate::report::Results;
use crate::seed::{seats, Seed};
use crate::server::Server;
use crate::settings::Settings;
use crate::HOST;

/// Clients of the registration loads (as `hot16`) and of the validation loads (as issue 8's
/// validation target).
pub const REG_CLIENTS: usize = 16;
pub const VAL_CLIENTS: usize = 64;
/// What the webhook is subscribed to.
pub const EVENT_TYPES: [&str; 2] = ["guest.registered", "guest.checked_in"];
/// Tickets of the validation warm-up pool each server's warm-up may take.
const WARMUP_TICKETS: usize = 5_000;
/// The longest wait for a released backlog of deliveries to reach the receiver.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);
/// The loads of each kind, in order: (mode, seed label suffix).
/// Four pairs, each in the order of the one before reversed (off on, on off, off on, on off):
/// a drift of the machine's speed over the loads, which on this shared machine moved plain loads
/// of the same code by 14–30 % within one run, falls on both modes alike, where alternating
/// off, on, off, on gives it to whichever mode runs last.
pub const LOADS: [(Mode, &str); 10] = [
    (Mode::Off, "off-1"),
    (Mode::On, "on-1"),
    (Mode::On, "on-2"),
    (Mode::Off, "off-2"),
    (Mode::Off, "off-3"),
    (Mode::On, "on-3"),
    (Mode::On, "on-4"),
    (Mode::Off, "off-4"),
    (Mode::KeysOnly, "keys"),
    (Mode::InProcess, "inproc"),
];

/// Which run of its mode the `k`-th load of [`LOADS`] is (1-based); the `n`-th off and the
/// `n`-th on load are a pair.
pub fn nth_of_mode(k: usize) -> usize {
    let mode = LOADS[k].0;
    LOADS[..k].iter().filter(|(m, _)| *m == mode).count() + 1
}

/// The index in [`LOADS`] of the off load paired with the on load `k`.
pub fn paired_off(k: usize) -> usize {
    let n = nth_of_mode(k);
    (0..LOADS.len())
        .find(|&j| LOADS[j].0 == Mode::Off && nth_of_mode(j) == n)
        .expect("every on load has an off load of the same rank")
}

/// What a load's requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No key, no webhook.
    Off,
    /// A fresh `Idempotency-Key` per request and the organizer's webhook enabled, its
    /// deliveries made after the load (the worker function's share, out of the API's way).
    On,
    /// The keys alone (the webhook disabled).
    KeysOnly,
    /// As `On`, with the deliveries made by the server's in-process worker during the load.
    InProcess,
}

impl Mode {
    fn keys(self) -> bool {
        self != Mode::Off
    }

    fn webhook(self) -> bool {
        matches!(self, Mode::On | Mode::InProcess)
    }

    /// How the report names it.
    pub fn text(self) -> &'static str {
        match self {
            Mode::Off => "plain (no key, no webhook)",
            Mode::On => "idempotency keys + webhooks",
            Mode::KeysOnly => "idempotency keys only (no webhook)",
            Mode::InProcess => "idempotency keys + webhooks delivered in process",
        }
    }
}

/// One load.
pub struct Run {
    pub mode: Mode,
    pub sample: Sample,
    /// Registrations: seats = guests = 201s; validations: checked-in guests = 200s. And one
    /// webhook delivery written per success with the webhook (none without), one idempotency
    /// key stored per answer with keys (none without).
    pub exact: bool,
    pub text: String,
    /// Webhook deliveries written during the measured load (one per success when on).
    pub written: i64,
    /// Deliveries the receiver got during the measured load (the workers run behind it).
    pub received: usize,
    /// `On`: the held backlog's delivery after the load.
    pub drain: Option<Drain>,
}

/// A held backlog delivered after its load: how many reached the receiver, in how long,
/// and the CPU it took.
pub struct Drain {
    pub delivered: usize,
    pub secs: f64,
    pub cpu: CpuUse,
    /// Every delivery written during the load reached the receiver within [`DRAIN_LIMIT`].
    pub complete: bool,
}

/// Both kinds of load, each as [`LOADS`].
pub struct Integrations {
    pub regs: Vec<Run>,
    pub vals: Vec<Run>,
}

/// The harness's webhook receiver: `POST /hook` answers 200 and counts.
struct Receiver {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind((HOST, 0)).await?;
        let addr = listener.local_addr()?;
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, count, task })
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The organizer's webhook to the receiver: created the first time it is turned on, then
/// enabled and disabled with `PATCH /api/webhooks/{id}` (left disabled at the end, with its
/// deliveries, so that nothing after this phase writes any).
struct Webhook {
    url: String,
    id: Option<i64>,
}

impl Webhook {
    async fn set(&mut self, api: &Api, on: bool) -> anyhow::Result<()> {
        match (self.id, on) {
            (None, false) => {}
            (None, true) => {
                let body = json!({"url": self.url, "eventTypes": EVENT_TYPES,
                                  "description": "benchmark receiver (infra/benchmarks, issue 17)"});
                let (status, answer) = api
                    .json(reqwest::Method::POST, "/api/webhooks", Some(&body))
                    .await?;
                let id = answer["data"]["id"].as_i64();
                match (status, id) {
                    (201, Some(id)) => self.id = Some(id),
                    _ => bail!("POST /api/webhooks answered {status} {answer}"),
                }
            }
            (Some(id), on) => api
                .expect(
                    reqwest::Method::PATCH,
                    &format!("/api/webhooks/{id}"),
                    Some(&json!({ "enabled": on })),
                    200,
                )
                .await
                .map_err(|e| anyhow::anyhow!("PATCH /api/webhooks/{id}: {e}"))?,
        }
        Ok(())
    }
}

/// Which load: registrations on the hot ticket type, or validations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Registrations,
    Validations,
}

/// The registration loads, then the validation loads, each as [`LOADS`].
pub async fn run(
    s: &Settings,
    http: &reqwest::Client,
    token: &str,
    pg: &tokio_postgres::Client,
    seed: &Seed,
    res: &mut Results,
) -> anyhow::Result<Integrations> {
    println!(
        "harness: idempotency keys + webhooks off and on, then keys only (issue 17; a fresh server each; webhook receiver answering 200)"
    );
    let receiver = Receiver::start().await?;
    let mut hook = Webhook {
        url: receiver.url(),
        id: None,
    };
    let mut out = Integrations {
        regs: Vec::new(),
        vals: Vec::new(),
    };
    for kind in [Kind::Registrations, Kind::Validations] {
        for (k, (mode, suffix)) in LOADS.into_iter().enumerate() {
            let run = one_load(
                s,
                http,
                token,
                pg,
                seed,
                (kind, mode, suffix, k),
                &receiver,
                &mut hook,
                res,
            )
            .await?;
            match kind {
                Kind::Registrations => out.regs.push(run),
                Kind::Validations => out.vals.push(run),
            }
        }
    }
    let left: i64 = pg
        .query_one("SELECT count(*) FROM webhooks WHERE enabled", &[])
        .await
        .context("webhooks left")?
        .get(0);
    if left != 0 {
        bail!("{left} enabled webhooks left after the issue-17 loads");
    }
    drop(receiver);
    Ok(out)
}

/// The rates of each kind's loads and the on/off ratio of their means (`BENCH_ONLY`).
pub fn print(runs: &Integrations, pgbench: &[(bool, crate::pgbench::PgbenchRun)]) {
    for (kind, loads) in [("registrations", &runs.regs), ("validations", &runs.vals)] {
        let mean = |mode: Mode| crate::summary::mean_rate(loads, mode);
        let line: Vec<String> = loads
            .iter()
            .map(|r| format!("{:?} {:.0}/s", r.mode, r.sample.rate))
            .collect();
        println!(
            "  {kind}: {}; on/off {:.2}x, keys only/off {:.2}x; counts exact: {}",
            line.join(", "),
            mean(Mode::On) / mean(Mode::Off),
            mean(Mode::KeysOnly) / mean(Mode::Off),
            loads.iter().all(|r| r.exact)
        );
    }
    let rates: Vec<(bool, f64)> = pgbench.iter().map(|(on, r)| (*on, r.tps)).collect();
    let c = crate::summary::compare(&rates);
    println!(
        "  pgbench, the validation statement: {}; keyed + webhook / plain {:.2}x",
        rates
            .iter()
            .map(|(on, r)| format!("{} {r:.0}/s", if *on { "keyed" } else { "plain" }))
            .collect::<Vec<_>>()
            .join(", "),
        c.ratio
    );
}

/// Right before each of issue 17's measured loads and pgbench runs: the database in the same
/// state for each, as autovacuum and the checkpointer keep it in production. PostgreSQL here
/// runs without autovacuum, so a load would otherwise find the dead rows of the loads before it
/// (an "on" load's deliveries are rewritten as delivered once released, its keys' pages split),
/// and the one a checkpoint fell in would write full pages for a while (the first change of a
/// page after a checkpoint writes the whole page to the WAL) where another would not.
pub async fn settle(pg: &tokio_postgres::Client) -> anyhow::Result<()> {
    // Two statements: VACUUM cannot run in the transaction of a multi-statement query.
    pg.batch_execute("VACUUM")
        .await
        .context("VACUUM before a load")?;
    pg.batch_execute("CHECKPOINT")
        .await
        .context("CHECKPOINT before a load")?;
    Ok(())
}

/// One load on a fresh server: the webhook set for `mode` (and left disabled after the last
/// load), warm-up, the database settled ([`settle`]), the measured load, then the counts.
#[allow(clippy::too_many_arguments)]
async fn one_load(
    s: &Settings,
    http: &reqwest::Client,
    token: &str,
    pg: &tokio_postgres::Client,
    seed: &Seed,
    (kind, mode, suffix, k): (Kind, Mode, &str, usize),
    receiver: &Receiver,
    hook: &mut Webhook,
    res: &mut Results,
) -> anyhow::Result<Run> {
    let label = match kind {
        Kind::Registrations => format!("i17-reg-{suffix}"),
        Kind::Validations => format!("i17-val-{suffix}"),
    };
    let mut srv = if mode == Mode::On {
        Server::start_holding(s, &label, "webhooks")?
    } else {
        Server::start(s, &label, None)?
    };
    srv.wait_ready(http).await?;
    let plain = Api::new(http, &srv.base(), token);
    hook.set(&plain, mode.webhook()).await?;
    let api = if mode.keys() {
        plain.with_header("idempotency-key", fresh_uuid)
    } else {
        plain.clone()
    };
    // Warm-up, then the measured load (its marks taken between the two).
    let (marks_before, sample) = match kind {
        Kind::Registrations => {
            drive(
                16,
                s.warmup,
                usize::MAX,
                register(&api, seed.events("reg-warmup"), format!("warmup-{label}")),
            )
            .await;
            settle(pg).await?;
            let before = marks(pg, receiver).await?;
            let sample = measured(
                &format!("registrations, hot type, {}", mode.text()),
                s,
                srv.pid(),
                REG_CLIENTS,
                usize::MAX,
                register(&api, seed.events(&label), label.clone()),
            )
            .await;
            (before, sample)
        }
        Kind::Validations => {
            let warm_api = api.clone();
            let warm_from = seed.pools["i17-val-warmup"].1 + (k * WARMUP_TICKETS) as i64;
            drive(16, s.warmup, WARMUP_TICKETS, move |i| {
                validate_one(warm_api.clone(), warm_from, i)
            })
            .await;
            settle(pg).await?;
            let before = marks(pg, receiver).await?;
            let load_api = api.clone();
            let first = seed.pools[&*label].1;
            let sample = measured(
                &format!("validations, {}", mode.text()),
                s,
                srv.pid(),
                VAL_CLIENTS,
                seed.http_pool,
                move |i| validate_one(load_api.clone(), first, i),
            )
            .await;
            (before, sample)
        }
    };
    let (written, keys, received) = since(pg, receiver, marks_before).await?;
    let drain = if mode == Mode::On {
        Some(drain(s, &srv, receiver, marks_before.2 + received, written).await?)
    } else {
        None
    };
    if k + 1 == LOADS.len() {
        hook.set(&plain, false).await?;
    }
    srv.stop();
    drop_pending_jobs(pg).await?;
    let n = sample.ok as i64;
    let answers = (sample.ok + sample.error_count()) as i64;
    let (counts_exact, counts) = match kind {
        Kind::Registrations => {
            let (sold, registered, guests) = seats(pg, &seed.events(&label)).await?;
            (
                sold == guests && registered == guests && guests == n,
                format!("sold {sold} = registered {registered} = guests {guests} = 201s {n}"),
            )
        }
        Kind::Validations => {
            if sample.ok + sample.error_count() >= seed.http_pool {
                res.notes.push(format!(
                    "issue 17 validations ({label}) used the whole pool of {} tickets before the time was up: the run was shorter",
                    seed.http_pool
                ));
            }
            let checked_in: i64 = pg
                .query_one(
                    &format!(
                    "SELECT count(*) FROM guests g JOIN tickets t ON t.guest_id = g.id WHERE g.event_id = $1 AND {}",
                    domain::guests::model::GUEST_CHECKED_IN
                ),
                    &[&seed.pools[&*label].0],
                )
                .await?
                .get(0);
            (
                checked_in == n,
                format!("checked in {checked_in} = 200s {n}"),
            )
        }
    };
    let exact = counts_exact
        && drain.as_ref().is_none_or(|d| d.complete)
        && written == if mode.webhook() { n } else { 0 }
        && keys == if mode.keys() { answers } else { 0 };
    let drained = match &drain {
        Some(d) => format!(
            "; released after the load: {} delivered in {:.1} s ({:.0}/s, PostgreSQL {:.2} ms and the server {:.2} ms of CPU per delivery){}",
            d.delivered,
            d.secs,
            d.delivered as f64 / d.secs.max(1e-9),
            1000.0 * d.cpu.pg / d.delivered.max(1) as f64,
            1000.0 * d.cpu.server / d.delivered.max(1) as f64,
            if d.complete { "" } else { ", NOT ALL within the time limit" }
        ),
        None => String::new(),
    };
    let text = format!(
        "{counts}; {written} webhook deliveries written, {received} delivered to the receiver during the load{drained}; \
         {keys} idempotency keys stored"
    );
    println!(
        "    {text}{}",
        if exact {
            ""
        } else {
            "   !!! COUNTS DRIFTED !!!"
        }
    );
    Ok(Run {
        mode,
        sample,
        exact,
        text,
        written,
        received,
        drain,
    })
}

/// Releases the server's held webhook worker and waits until the receiver has `written`
/// more deliveries than `before` (or [`DRAIN_LIMIT`]): the time and CPU of the backlog.
async fn drain(
    s: &Settings,
    srv: &Server,
    receiver: &Receiver,
    before: usize,
    written: i64,
) -> anyhow::Result<Drain> {
    let want = before + written.max(0) as usize;
    let meter = CpuMeter::start(Some(srv.pid()), &s.db, s.clk_tck);
    let start = std::time::Instant::now();
    srv.release()?;
    while receiver.received() < want && start.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let (cpu, _) = meter.finish();
    let delivered = receiver.received() - before;
    println!(
        "    released: {delivered} of {written} deliveries in {secs:.1} s; CPU per delivery: PostgreSQL {:.2} ms, server {:.2} ms",
        1000.0 * cpu.pg / delivered.max(1) as f64,
        1000.0 * cpu.server / delivered.max(1) as f64
    );
    Ok(Drain {
        delivered,
        secs,
        cpu,
        complete: delivered as i64 >= written,
    })
}

/// Counters read before a load: the last webhook delivery's id, idempotency keys stored,
/// deliveries the receiver got.
async fn marks(
    pg: &tokio_postgres::Client,
    receiver: &Receiver,
) -> anyhow::Result<(i64, i64, usize)> {
    let r = pg
        .query_one(
            "SELECT (SELECT COALESCE(max(id), 0) FROM webhook_deliveries), (SELECT count(*) FROM idempotency_keys)",
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1), receiver.received()))
}

/// Since [`marks`]: webhook deliveries written, idempotency keys stored, deliveries received.
async fn since(
    pg: &tokio_postgres::Client,
    receiver: &Receiver,
    (last, keys, received): (i64, i64, usize),
) -> anyhow::Result<(i64, i64, usize)> {
    let r = pg
        .query_one(
            "SELECT (SELECT count(*) FROM webhook_deliveries WHERE id > $1), (SELECT count(*) FROM idempotency_keys)",
            &[&last],
        )
        .await?;
    let (written, keys_now): (i64, i64) = (r.get(0), r.get(1));
    Ok((written, keys_now - keys, receiver.received() - received))
}
