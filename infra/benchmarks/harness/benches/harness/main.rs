//! The performance harness of issue 8: ONE command, `infra/benchmarks/run.sh`, that
//!
//! 1. starts the release local server (`target/release/local-server`) on a free port against a
//!    fresh database (`ept_bench`, migrated by the server itself) ([`server`]),
//! 2. seeds a realistic data set with `INSERT … SELECT generate_series` (100 000 events of one
//!    organizer plus 10 000 of nine others, ticket types, and pools of guests/tickets) ([`seed`]),
//! 3. checks with `EXPLAIN (ANALYZE, FORMAT JSON)` that every hot query uses an index (a Seq
//!    Scan of events/guests/tickets/ticket_types is printed loudly and fails the run) ([`plans`]),
//! 4. drives the server over real HTTP on 127.0.0.1 (reqwest, fixed concurrency, bounded time):
//!    event list, event search, event detail (without and with the Redis cache), registrations
//!    (one hot ticket type, and spread over 50 events), validations at 16 and 64 clients,
//!    entries on a check-in list that is not the default one at 16 and 64 clients, and offline
//!    uploads of 500 entries at 4 and 8 uploaders (issue 15) ([`loads`], with the driver in
//!    [`driver`] and the CPU split from /proc in [`procs`]); then explains the check-in
//!    statements on the tables those loads filled; after the cached reads, each on a fresh
//!    server (issues 16 and 17): registrations on a hot ticket type with the waiting list off
//!    and on, alternated twice ([`waitlist`]), CSV imports of 5 000 rows ([`import`]), and
//!    registrations and validations plain and with idempotency keys + webhooks (to a receiver
//!    of the harness answering 200, delivered after each load: the worker is held meanwhile),
//!    alternated twice, then keys only, then with in-process delivery ([`integrations`]),
//! 5. runs the same writes through pgbench against the same database in the same run
//!    (infra/benchmarks/registration.sql, registration-naive.sql, registration-counters-last.sql,
//!    validation.sql, checkin-list-entry.sql, checkin-batch.sql) ([`pgbench`]),
//! 6. measures the RSS of the server and of each Lambda function binary after its first
//!    request, the functions under the project's Lambda runtime emulator
//!    (`testkit::lambda::Emulator`) ([`functions`]), and
//! 7. prints the table and rewrites the generated part of infra/benchmarks/RESULTS.md
//!    ([`summary`], [`report`]).
//!
//! It is a benchmark, never a test: run without cargo bench's `--bench` flag (for example by
//! `cargo test --all-targets`) it does nothing. Environment knobs are listed in
//! [`settings::Settings`].

mod driver;
mod functions;
mod import;
mod integrations;
mod loads;
mod pgbench;
mod plans;
mod procs;
mod report;
mod seed;
mod server;
mod settings;
mod summary;
mod waitlist;

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::driver::Api;
use crate::report::{machine_facts, render, write_results, Results, BEGIN_MARK, END_MARK};
use crate::server::{token, Server};
use crate::settings::{pg_connect, Settings};

/// Every load targets this address and nothing else.
const HOST: &str = "127.0.0.1";
/// The organizer whose 100 000 events are listed and searched.
const ORG: &str = "bench-org";
const JWT_SECRET: &str = "bench-harness-jwt-secret-0123456789";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("harness: a benchmark, not a test; run infra/benchmarks/run.sh");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        match run().await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("\nharness: FAILED: {e:#}");
                1
            }
        }
    });
    std::process::exit(code);
}

/// The whole run, phase after phase: 0, or 2 when a hot query reads a table sequentially.
async fn run() -> anyhow::Result<i32> {
    let s = Settings::from_env()?;
    let started = Instant::now();
    if !s.bin("local-server").exists() {
        bail!(
            "{} is missing: run `cargo build --release -p local-server` (infra/benchmarks/run.sh does)",
            s.bin("local-server").display()
        );
    }
    let mut res = Results::default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;

    // A fresh database, created and migrated by the server itself.
    println!("harness: fresh database {} (dropped and re-created)", s.db);
    let admin = pg_connect(&s.admin_url()).await?;
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            domain::page::quote_ident(&s.db)
        ))
        .await?;
    let mut server = Server::start(&s, "1", None)?;
    server.wait_ready(&http).await?;
    let pid = server.pid();
    let idle_mem = server.mem();
    let org_token = token(&s, "organizer", ORG)?;
    let admin_token = token(&s, "admin", "bench-admin")?;
    let api = Api::new(&http, &server.base(), &org_token);
    let admin_api = Api::new(&http, &server.base(), &admin_token);
    let (status, _) = api
        .json(reqwest::Method::GET, "/api/events?limit=20", None)
        .await?;
    if status != 200 {
        bail!("GET /api/events answered {status} (token or server misconfigured)");
    }
    let first_mem = server.mem();
    let pg = pg_connect(&s.db_url()).await?;
    res.facts = machine_facts(&s, &pg).await?;

    let seed = seed::seed(&s, &pg, &mut res).await?;
    match s.only.as_deref() {
        None => {}
        Some("integrations") => {
            server.stop();
            let runs = integrations::run(&s, &http, &org_token, &pg, &seed, &mut res).await?;
            let pg_runs = pgbench::integrations(&s, &pg, &seed, &mut res).await?;
            integrations::print(&runs, &pg_runs);
            for note in &res.notes {
                println!("  note: {note}");
            }
            println!(
                "harness: BENCH_ONLY=integrations: nothing written to {} ({:.0} s)",
                s.results.display(),
                started.elapsed().as_secs_f64()
            );
            return Ok(0);
        }
        Some(other) => {
            bail!("BENCH_ONLY={other:?}: the only phase that runs alone is `integrations`")
        }
    }
    plans::check(&pg, &seed, &mut res).await?;

    // Server 1 (no Redis): reads, validations, then check-in lists (issue 15).
    let paths = loads::Paths::new(&pg).await?;
    let reads = loads::reads(&s, &api, &admin_api, pid, &paths).await;
    let vals = loads::validations(&s, &api, pid, &seed, &mut res).await;
    let lists = loads::list_entries(&s, &api, pid, &pg, &seed, &mut res).await?;
    let batches = loads::batch_uploads(&s, &api, pid, &pg, &seed, &mut res).await?;
    plans::check_checkin(&pg, &s, &seed, &mut res).await?;
    let server_mem_1 = server.mem();
    server.stop();
    // pgbench of the check-in statements on the database as those loads left it.
    let pgb_checkin = pgbench::checkin(&s, &pg, &seed, &mut res).await?;

    let (regs, reg_hwm) = loads::registrations(&s, &http, &org_token, &pg, &seed, &mut res).await?;
    let mut pgb = pgbench::compare(&s, &pg, &seed, &mut res).await?;
    pgb.extend(pgb_checkin);
    let cached = loads::cached(&s, &http, &org_token, &pg, &paths).await?;
    // Issues 16 and 17: a fresh server per load again.
    let waitlist = waitlist::registrations(&s, &http, &org_token, &pg, &seed).await?;
    let imports = import::imports(&s, &http, &org_token, &pg, &seed).await?;
    let integrations = integrations::run(&s, &http, &org_token, &pg, &seed, &mut res).await?;
    let pgb_integrations = pgbench::integrations(&s, &pg, &seed, &mut res).await?;
    let lambdas = functions::measure(&s, &org_token, &seed, &mut res).await;

    summary::fill(
        &mut res,
        &summary::Measurements {
            started,
            reads,
            vals,
            lists,
            batches,
            regs,
            pgb,
            cached,
            waitlist,
            imports,
            integrations,
            pgb_integrations,
            lambdas,
            idle_mem,
            first_mem,
            server_mem_1,
            reg_hwm,
        },
    );
    let block = render(&res);
    write_results(&s.results, &block)?;
    println!("\n{}", block.replace(BEGIN_MARK, "").replace(END_MARK, ""));
    println!(
        "harness: written to {} ({:.0} s)",
        s.results.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(if res.plan_failures > 0 { 2 } else { 0 })
}
