//! The measurements of a run turned into the report's tables: results beside pgbench, the CPU
//! split, memory, the targets of issues 8 and 15 with their verdicts, and the notes.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::driver::Sample;
use crate::functions::LambdaMem;
use crate::import::{Import, GATEWAY_SECS, REPEATS, ROWS};
use crate::integrations::{self, Integrations, Mode, EVENT_TYPES, REG_CLIENTS, VAL_CLIENTS};
use crate::loads::{Cached, Registration};
use crate::pgbench::PgbenchRun;
use crate::procs::{mb, CpuUse, Mem};
use crate::report::{ms, verdict, Results};
use crate::seed::BATCH;
use crate::waitlist::{self, SOLD_OUT, WAITING};

/// Everything a run measured.
pub struct Measurements {
    pub started: Instant,
    pub reads: BTreeMap<&'static str, Sample>,
    pub vals: BTreeMap<usize, Sample>,
    /// Entries on a check-in list (not the default one), by clients (16, 64).
    pub lists: BTreeMap<usize, Sample>,
    /// Offline uploads of [`BATCH`] entries (a sample counts uploads), by uploaders (4, 8).
    pub batches: BTreeMap<usize, Sample>,
    pub regs: BTreeMap<&'static str, Registration>,
    pub pgb: BTreeMap<&'static str, PgbenchRun>,
    pub cached: Cached,
    /// Issue 16: registrations with the waiting list off and on (off, on, off, on).
    pub waitlist: Vec<waitlist::Run>,
    /// Issue 16: the CSV imports.
    pub imports: Vec<Import>,
    /// Issue 17: registrations and validations plain and with idempotency keys + webhooks.
    pub integrations: Integrations,
    /// Issue 17: pgbench of the service's validation statement, (keyed with a webhook, run) in
    /// the order run: plain, keyed, plain, keyed.
    pub pgb_integrations: Vec<(bool, PgbenchRun)>,
    pub lambdas: Vec<LambdaMem>,
    /// Server 1 right after its start, after its first request, after its loads.
    pub idle_mem: Mem,
    pub first_mem: Mem,
    pub server_mem_1: Mem,
    /// The largest of the registration servers.
    pub reg_hwm: Mem,
}

/// Fills the tables and the notes of `res` from the measurements.
pub fn fill(res: &mut Results, m: &Measurements) {
    rows(res, m);
    import_row(res, m);
    cpu(res, m);
    memory(res, m);
    targets(res, m);
    notes(res, m);
}

/// The results table: each load, beside pgbench running the same writes.
fn rows(res: &mut Results, m: &Measurements) {
    let fmt_sample = |name: &str, x: &Sample, pg: String, ratio: String| {
        [
            name.to_owned(),
            x.clients.to_string(),
            format!("{:.0}", x.rate),
            ms(x.p50),
            ms(x.p99),
            x.errors_text(),
            pg,
            ratio,
        ]
    };
    let pg_text =
        |r: &PgbenchRun| format!("{:.0}/s (p50 {} / p99 {} ms)", r.tps, ms(r.p50), ms(r.p99));
    let ratio = |a: f64, b: f64| format!("{:.2}×", a / b);
    for (key, name) in [
        (
            "list1",
            "event list (organizer sees 100k; pages 1–10, 4 sorts)",
        ),
        (
            "list16",
            "event list (organizer sees 100k; pages 1–10, 4 sorts)",
        ),
        ("search1", "event search (organizer, 6 terms, pages 1–3)"),
        ("search16", "event search (organizer, 6 terms, pages 1–3)"),
        ("search_admin16", "event search (admin, all events)"),
        ("detail16", "event detail, server without REDIS_URL"),
    ] {
        res.rows
            .push(fmt_sample(name, &m.reads[key], "–".into(), "–".into()));
    }
    res.rows.push(fmt_sample(
        "event detail, server with REDIS_URL",
        &m.cached.detail,
        "–".into(),
        "–".into(),
    ));
    res.rows.push(fmt_sample(
        "event search (organizer), server with REDIS_URL",
        &m.cached.search,
        "–".into(),
        "–".into(),
    ));
    for (key, clients) in [("hot16", 16), ("hot64", 64)] {
        let (x, exact, _) = &m.regs[key];
        let naive = &m.pgb[&*format!("naive{clients}")];
        let last = &m.pgb[&*format!("last{clients}")];
        let same = &m.pgb[key];
        res.rows.push(fmt_sample(
            &format!(
                "registrations, one hot ticket type (seats exact: {})",
                if *exact { "yes" } else { "**NO**" }
            ),
            x,
            format!(
                "naive (one counter row, first) {} · one counter row, last {} · the service's own (seat shards) {}",
                pg_text(naive),
                pg_text(last),
                pg_text(same)
            ),
            format!(
                "{} naive · {} last · {} own",
                ratio(x.rate, naive.tps),
                ratio(x.rate, last.tps),
                ratio(x.rate, same.tps)
            ),
        ));
    }
    for key in ["spread16", "spread64"] {
        let (x, exact, _) = &m.regs[key];
        let p = &m.pgb[key];
        res.rows.push(fmt_sample(
            &format!(
                "registrations, spread over 50 events (seats exact: {})",
                if *exact { "yes" } else { "**NO**" }
            ),
            x,
            pg_text(p),
            ratio(x.rate, p.tps),
        ));
    }
    let hot16 = &m.regs["hot16"].0;
    for (k, run) in m.waitlist.iter().enumerate() {
        let (x, exact, _) = &run.reg;
        let before = &m.waitlist[k.saturating_sub(1)].reg.0;
        res.rows.push(fmt_sample(
            &format!(
                "registrations, one hot ticket type, waiting list **{}** (a second ticket type sold out{}; counts exact: {}), run {}",
                if run.on { "on" } else { "off" },
                if run.on {
                    format!(", {WAITING} entries waiting on it")
                } else {
                    String::new()
                },
                yes_no(*exact),
                k / 2 + 1
            ),
            x,
            "–".into(),
            if run.on {
                format!(
                    "{} the off run before it · {} hot16",
                    ratio(x.rate, before.rate),
                    ratio(x.rate, hot16.rate)
                )
            } else {
                format!("{} hot16", ratio(x.rate, hot16.rate))
            },
        ));
    }
    integration_rows(
        res,
        &m.integrations.regs,
        "registrations, one hot ticket type",
        ("hot16", hot16.rate),
    );
    for (clients, key) in [(16, "val16"), (64, "val64")] {
        let x = &m.vals[&clients];
        let p = &m.pgb[key];
        res.rows.push(fmt_sample(
            "validations (each a different ticket)",
            x,
            pg_text(p),
            ratio(x.rate, p.tps),
        ));
    }
    {
        let p = &m.pgb["val1s64"];
        res.rows.push(pgbench_row(
            "pgbench only: the one-statement check-in of before check-in lists (validation-one-statement.sql)"
                .into(),
            64,
            p,
            pg_text(p),
            format!("{} validation.sql", ratio(p.tps, m.pgb["val64"].tps)),
        ));
    }
    integration_rows(
        res,
        &m.integrations.vals,
        "validations (each a different ticket)",
        ("the validations above", m.vals[&VAL_CLIENTS].rate),
    );
    let plain = pgbench_integrations(&m.pgb_integrations).off;
    for (k, (keyed, p)) in m.pgb_integrations.iter().enumerate() {
        res.rows.push(pgbench_row(
            format!(
                "pgbench only: the service's validation statement, {}, run {}",
                if *keyed {
                    "**keyed + webhook** (its Idempotency-Key and answer row, a guest.checked_in delivery)"
                } else {
                    "**plain** (no key, the webhook disabled)"
                },
                m.pgb_integrations[..k].iter().filter(|(x, _)| x == keyed).count() + 1
            ),
            VAL_CLIENTS,
            p,
            pg_text(p),
            if *keyed {
                format!("{} the plain mean", ratio(p.tps, plain))
            } else {
                "–".into()
            },
        ));
    }
    for clients in [16, 64] {
        let x = &m.lists[&clients];
        let p = &m.pgb[&*format!("list{clients}")];
        let v = &m.pgb[&*format!("val{clients}")];
        res.rows.push(fmt_sample(
            "entries on a check-in list, not the default one (each a different ticket)",
            x,
            format!(
                "the same statement (checkin-list-entry.sql) {} · validation.sql {}",
                pg_text(p),
                pg_text(v)
            ),
            format!(
                "{} same statement · {} validation.sql · {} part-1 validations",
                ratio(x.rate, p.tps),
                ratio(x.rate, v.tps),
                ratio(x.rate, m.vals[&clients].rate)
            ),
        ));
    }
    let n = BATCH as f64;
    for uploaders in [4, 8] {
        let x = &m.batches[&uploaders];
        let p = &m.pgb[&*format!("batch{uploaders}")];
        res.rows.push([
            format!("offline uploads, {BATCH} entries of distinct tickets per upload (p50/p99: per upload)"),
            uploaders.to_string(),
            format!("{:.0} scans ({:.1} uploads)", x.rate * n, x.rate),
            ms(x.p50),
            ms(x.p99),
            x.errors_text(),
            format!(
                "checkin-batch.sql {:.0} scans/s ({:.1} uploads/s, p50 {} / p99 {} ms){}",
                p.tps * n,
                p.tps,
                ms(p.p50),
                ms(p.p99),
                if p.aborted { " **aborted**" } else { "" }
            ),
            format!(
                "{} checkin-batch.sql · {:.1}× online entries on a list (64 clients), per scan",
                ratio(x.rate, p.tps),
                x.rate * n / m.lists[&64].rate
            ),
        ]);
    }
}

/// The rows of the issue-17 loads of one kind: each beside its pair's plain run (on), or
/// beside the reference load of part 1 (`reference`: its name and rate).
fn integration_rows(
    res: &mut Results,
    runs: &[integrations::Run],
    what: &str,
    reference: (&str, f64),
) {
    let ratio = |a: f64, b: f64| format!("{:.2}×", a / b);
    let plain = mean_rate(runs, Mode::Off);
    let on = mean_rate(runs, Mode::On);
    for (k, run) in runs.iter().enumerate() {
        let x = &run.sample;
        let vs_ref = format!("{} {}", ratio(x.rate, reference.1), reference.0);
        res.rows.push([
            format!(
                "{what}, {} (counts exact: {}){}",
                integrations_text(run.mode),
                yes_no(run.exact),
                match run.mode {
                    Mode::Off | Mode::On => format!(", run {}", integrations::nth_of_mode(k)),
                    Mode::KeysOnly | Mode::InProcess => String::new(),
                }
            ),
            x.clients.to_string(),
            format!("{:.0}", x.rate),
            ms(x.p50),
            ms(x.p99),
            x.errors_text(),
            "–".into(),
            match run.mode {
                Mode::Off => vs_ref,
                Mode::On => format!(
                    "{} its pair's plain run · {vs_ref}",
                    ratio(x.rate, runs[integrations::paired_off(k)].sample.rate)
                ),
                Mode::KeysOnly => format!(
                    "{} the plain mean · {} the mean with webhooks too",
                    ratio(x.rate, plain),
                    ratio(x.rate, on)
                ),
                Mode::InProcess => format!(
                    "{} the plain mean · {} the mean with the deliveries after the load",
                    ratio(x.rate, plain),
                    ratio(x.rate, on)
                ),
            },
        ]);
    }
}

/// A row of the results table for a pgbench run with no HTTP load beside it: its label,
/// clients, pgbench's figures (`pg`) and what it compares to.
fn pgbench_row(
    label: String,
    clients: usize,
    p: &PgbenchRun,
    pg: String,
    compared: String,
) -> [String; 8] {
    [
        label,
        clients.to_string(),
        "–".into(),
        "–".into(),
        "–".into(),
        if p.aborted {
            "**aborted**".into()
        } else {
            "0".into()
        },
        pg,
        compared,
    ]
}

/// The mean rate of the loads of `mode`.
pub fn mean_rate(runs: &[integrations::Run], mode: Mode) -> f64 {
    let rates: Vec<f64> = runs
        .iter()
        .filter(|r| r.mode == mode)
        .map(|r| r.sample.rate)
        .collect();
    rates.iter().sum::<f64>() / rates.len().max(1) as f64
}

/// The CSV imports' row: rows per second of the median import, its wall time and the slowest.
fn import_row(res: &mut Results, m: &Measurements) {
    let Some(f) = ImportFigures::of(&m.imports) else {
        return;
    };
    res.rows.push([
        format!(
            "CSV import of {ROWS} rows, best_effort, text/csv, a fresh event and server each (p50/p99: the median/slowest of {} imports)",
            m.imports.len()
        ),
        "1".into(),
        format!("{:.0} rows ({:.2} imports)", f.rate, 1.0 / f.median),
        ms(f.median * 1000.0),
        ms(f.slowest * 1000.0),
        if f.failed == 0 {
            "0".into()
        } else {
            format!("**{} of {} imports not whole**", f.failed, m.imports.len())
        },
        "–".into(),
        format!(
            "one import: {:.2} s = {:.0} % of API Gateway's {GATEWAY_SECS:.0} s (slowest {:.2} s)",
            f.median,
            100.0 * f.median / GATEWAY_SECS,
            f.slowest
        ),
    ]);
}

/// The imports in figures: median and slowest wall time, the median's rate, imports not whole.
struct ImportFigures {
    median: f64,
    slowest: f64,
    rate: f64,
    failed: usize,
}

impl ImportFigures {
    fn of(imports: &[Import]) -> Option<ImportFigures> {
        let mut secs: Vec<f64> = imports.iter().map(|i| i.secs).collect();
        secs.sort_by(f64::total_cmp);
        let median = *secs.get(secs.len() / 2)?;
        Some(ImportFigures {
            median,
            slowest: *secs.last()?,
            rate: ROWS as f64 / median,
            failed: imports.iter().filter(|i| !i.ok()).count(),
        })
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**NO**"
    }
}

fn integrations_text(mode: Mode) -> String {
    match mode {
        Mode::On => format!(
            "**Idempotency-Key** (a fresh UUID each) **+ webhook** ({}) to a local receiver, delivered after the load",
            EVENT_TYPES.join(", ")
        ),
        Mode::KeysOnly => "**Idempotency-Key only** (the webhook disabled)".into(),
        Mode::InProcess => format!(
            "**Idempotency-Key + webhook** ({}), **delivered in process during the load**",
            EVENT_TYPES.join(", ")
        ),
        Mode::Off => "**plain** (no key, no webhook)".into(),
    }
}

/// "key + webhook (run 1)" and the like.
fn cpu_label(mode: Mode, k: usize) -> String {
    match mode {
        Mode::Off => format!("plain (run {})", integrations::nth_of_mode(k)),
        Mode::On => format!("key + webhook (run {})", integrations::nth_of_mode(k)),
        Mode::KeysOnly => "key only".into(),
        Mode::InProcess => "key + webhook delivered in process".into(),
    }
}

/// Where the CPU went, per load (and a note when other processes took a large share).
fn cpu(res: &mut Results, m: &Measurements) {
    let mut cpu_rows: Vec<(String, usize, usize, CpuUse, String)> = Vec::new();
    // `per`: scans per request (an offline upload counts per scan).
    let mut add_per = |name: &str, x: &Sample, per: usize| {
        if let Some(c) = x.cpu {
            cpu_rows.push((
                name.to_owned(),
                x.clients,
                x.ok * per,
                c,
                x.other_top.clone(),
            ));
        }
    };
    let mut add = |name: &str, x: &Sample| add_per(name, x, 1);
    for (key, name) in [
        ("list16", "event list"),
        ("search16", "event search"),
        ("search_admin16", "event search (admin)"),
        ("detail16", "event detail, no cache"),
    ] {
        add(name, &m.reads[key]);
    }
    add("event detail, REDIS_URL", &m.cached.detail);
    add("event search, REDIS_URL", &m.cached.search);
    for (key, name) in [
        ("hot16", "registrations hot"),
        ("hot64", "registrations hot"),
        ("spread16", "registrations spread"),
        ("spread64", "registrations spread"),
    ] {
        add(name, &m.regs[key].0);
    }
    for c in [16, 64] {
        add("validations", &m.vals[&c]);
    }
    for c in [16, 64] {
        add("entries on a check-in list", &m.lists[&c]);
    }
    for c in [4, 8] {
        add_per("offline uploads, per scan", &m.batches[&c], BATCH);
    }
    for (k, run) in m.waitlist.iter().enumerate() {
        add_per(
            &format!(
                "registrations hot, waiting list {} (run {})",
                if run.on { "on" } else { "off" },
                k / 2 + 1
            ),
            &run.reg.0,
            1,
        );
    }
    for (k, run) in m.integrations.regs.iter().enumerate() {
        add_per(
            &format!("registrations hot, {}", cpu_label(run.mode, k)),
            &run.sample,
            1,
        );
    }
    for (k, run) in m.integrations.vals.iter().enumerate() {
        add_per(
            &format!("validations, {}", cpu_label(run.mode, k)),
            &run.sample,
            1,
        );
    }
    for (key, name, clients) in [
        ("naive16", "pgbench registration-naive.sql, hot", 16),
        ("last16", "pgbench registration-counters-last.sql, hot", 16),
        ("hot16", "pgbench registration.sql (seat shards), hot", 16),
        ("spread16", "pgbench registration.sql, spread", 16),
        ("val16", "pgbench validation.sql", 16),
        ("val64", "pgbench validation.sql", 64),
        (
            "val1s64",
            "pgbench validation-one-statement.sql (before check-in lists)",
            64,
        ),
        ("list16", "pgbench checkin-list-entry.sql", 16),
        ("list64", "pgbench checkin-list-entry.sql", 64),
        ("batch4", "pgbench checkin-batch.sql, per scan", 4),
        ("batch8", "pgbench checkin-batch.sql, per scan", 8),
    ] {
        let r = &m.pgb[key];
        let per = if key.starts_with("batch") { BATCH } else { 1 };
        cpu_rows.push((
            name.to_owned(),
            clients,
            r.done as usize * per,
            r.cpu,
            r.other_top.clone(),
        ));
    }
    for (k, i) in m.imports.iter().enumerate() {
        cpu_rows.push((
            format!("CSV import #{}, per row", k + 1),
            1,
            ROWS,
            i.cpu,
            i.other_top.clone(),
        ));
    }
    let mut max_other = 0.0f64;
    for (name, clients, n, c, top) in cpu_rows {
        let per = |v: f64| format!("{:.2}", v * 1000.0 / n.max(1) as f64);
        max_other = max_other.max(c.other_share());
        let bound = if c.busy_share() > 0.9 {
            if c.server > c.pg {
                "CPU (server > postgres)"
            } else {
                "CPU (postgres > server)"
            }
        } else {
            "waits (locks, WAL flushes, pool)"
        };
        res.cpu.push([
            name,
            clients.to_string(),
            per(c.server),
            per(c.pg),
            per(c.me + c.pgbench),
            format!("{:.0}%", 100.0 * c.busy_share()),
            if c.other_share() > 0.10 {
                format!("**{:.0}%** ({top})", 100.0 * c.other_share())
            } else {
                format!("{:.0}%", 100.0 * c.other_share())
            },
            bound.into(),
        ]);
    }
    if max_other > 0.10 {
        res.notes.push(format!(
            "**other processes used up to {:.0}% of the machine during a load** (column `other busy`: builds or tests of other engineers): \
             the figures of those loads are pessimistic; re-run on a quiet machine",
            max_other * 100.0
        ));
    }
}

/// The memory of the server processes and of the function binaries.
fn memory(res: &mut Results, m: &Measurements) {
    let mem_row = |name: &str, first: Mem, later: Mem, later_label: &str| {
        [
            name.to_owned(),
            format!("{:.1} MB", mb(first.rss_kb)),
            format!("{:.1} MB {later_label}", mb(later.rss_kb)),
            format!("{:.1} MB", mb(later.hwm_kb)),
        ]
    };
    res.memory.push([
        "local-server (all routes, in-process workers, pool 16), idle after start".into(),
        "–".into(),
        format!("{:.1} MB", mb(m.idle_mem.rss_kb)),
        format!("{:.1} MB", mb(m.idle_mem.hwm_kb)),
    ]);
    res.memory.push(mem_row(
        "local-server, run 1 (no Redis)",
        m.first_mem,
        m.server_mem_1,
        "after every load of run 1",
    ));
    res.memory.push([
        "local-server, the four registration runs (a fresh process each)".into(),
        "–".into(),
        format!("{:.1} MB at the end of the heaviest", mb(m.reg_hwm.rss_kb)),
        format!("{:.1} MB", mb(m.reg_hwm.hwm_kb)),
    ]);
    res.memory.push(mem_row(
        "local-server, run 2 (REDIS_URL)",
        m.cached.mem,
        m.cached.mem,
        "after the cached loads",
    ));
    for f in &m.lambdas {
        res.memory.push(mem_row(
            &format!(
                "function `{}` (Lambda runtime, pool 2; first answer {})",
                f.name, f.first_status
            ),
            f.after_first,
            f.after_more,
            &format!("after {} requests", f.more),
        ));
    }
}

/// The targets of issue 8, each with its verdict and its evidence.
fn targets(res: &mut Results, m: &Measurements) {
    let v64 = &m.vals[&64];
    let pv64 = &m.pgb["val64"];
    let v_ok = v64.rate >= 0.7 * pv64.tps && v64.p99 <= 25.0 && v64.error_count() == 0;
    res.targets.push([
        "validations ≥ 70 % of pgbench and p99 ≤ 25 ms at 64 clients".into(),
        format!(
            "{:.0}/s = {:.0} % of pgbench's {:.0}/s; p99 {} ms",
            v64.rate,
            100.0 * v64.rate / pv64.tps,
            pv64.tps,
            ms(v64.p99)
        ),
        verdict(v_ok).into(),
        format!(
            "64 clients that each wait for their answer (a closed loop) see a mean latency of 64 / rate (Little's law): \
             {} ms at this rate, {} ms even at pgbench's rate (pgbench's own p99: {} ms). {}",
            ms(64_000.0 / v64.rate),
            ms(64_000.0 / pv64.tps),
            ms(pv64.p99),
            cpu_hint(v64)
        ),
    ]);
    let (h16, ex16, t16) = &m.regs["hot16"];
    let (h64, ex64, t64) = &m.regs["hot64"];
    let n16 = &m.pgb["naive16"];
    let r_ok = h16.rate >= 1.3 * n16.tps && *ex16 && h16.error_count() == 0;
    res.targets.push([
        "registrations on one hot ticket type ≥ 1.3× the naive pgbench transaction at 16 clients, seats exact".into(),
        format!("{:.0}/s = {:.2}× naive pgbench's {:.0}/s; {t16}", h16.rate, h16.rate / n16.tps, n16.tps),
        verdict(r_ok).into(),
        format!(
            "pgbench, one counter row updated last: {:.0}/s ({:.2}× naive); the service's transaction with its seat shards: {:.0}/s ({:.2}× naive). {}",
            m.pgb["last16"].tps,
            m.pgb["last16"].tps / n16.tps,
            m.pgb["hot16"].tps,
            m.pgb["hot16"].tps / n16.tps,
            cpu_hint(h16)
        ),
    ]);
    let c_ok = h64.rate >= 0.8 * h16.rate && *ex64 && h64.error_count() == 0;
    res.targets.push([
        "no collapse at 64 clients (here: rate ≥ 80 % of the 16-client rate, no errors, seats exact)".into(),
        format!(
            "{:.0}/s = {:.0} % of the 16-client rate (pgbench naive: {:.0} % ); p99 {} ms; {t64}",
            h64.rate,
            100.0 * h64.rate / h16.rate,
            100.0 * m.pgb["naive64"].tps / n16.tps,
            ms(h64.p99)
        ),
        verdict(c_ok).into(),
        cpu_hint(h64),
    ]);
    let s16 = &m.reads["search16"];
    let s1 = &m.reads["search1"];
    for (x, clients) in [(s1, 1), (s16, 16)] {
        res.targets.push([
            format!(
                "event search p99 ≤ 20 ms on 100 000 events (uncached, {clients} client{})",
                if clients > 1 { "s" } else { "" }
            ),
            format!(
                "p99 {} ms, p50 {} ms, {:.0}/s",
                ms(x.p99),
                ms(x.p50),
                x.rate
            ),
            verdict(x.p99 <= 20.0 && x.error_count() == 0).into(),
            cpu_hint(x),
        ]);
    }
    let mut rss_text = Vec::new();
    let mut rss_ok = true;
    for f in &m.lambdas {
        rss_ok &= f.after_first.rss_kb <= 20 * 1024;
        rss_text.push(format!("{} {:.1} MB", f.name, mb(f.after_first.rss_kb)));
    }
    rss_text.push(format!(
        "local-server {:.1} MB (all routes, not a function)",
        mb(m.first_mem.rss_kb)
    ));
    res.targets.push([
        "each function process ≤ 20 MB RSS after its first request".into(),
        rss_text.join("; "),
        if m.lambdas.is_empty() {
            "not measured".into()
        } else {
            verdict(rss_ok).into()
        },
        "VmRSS right after the first answer; see Memory".into(),
    ]);
    checkin_targets(res, m);
    waitlist_target(res, m);
    import_target(res, m);
    integrations_targets(res, m);
    res.targets.push([
        "every hot query uses an index (EXPLAIN)".into(),
        format!(
            "{} plans checked, {} with a Seq Scan of a hot table",
            res.plans.len(),
            res.plan_failures
        ),
        verdict(res.plan_failures == 0).into(),
        "see EXPLAIN table".into(),
    ]);
}

/// The targets of issue 15 (check-in lists): online entries on a list against pgbench's
/// reference check-in transaction and against the part-1 validations, and offline uploads
/// against online entries, per scan.
fn checkin_targets(res: &mut Results, m: &Measurements) {
    let l64 = &m.lists[&64];
    let pv64 = &m.pgb["val64"];
    let pl64 = &m.pgb["list64"];
    let v64 = &m.vals[&64];
    let clean = l64.error_count() == 0;
    res.targets.push([
        "issue 15: entries on a check-in list ≥ 100 % of pgbench's validation.sql at 64 clients".into(),
        format!(
            "{:.0}/s = {:.0} % of {:.0}/s; p50 {} / p99 {} ms",
            l64.rate,
            100.0 * l64.rate / pv64.tps,
            pv64.tps,
            ms(l64.p50),
            ms(l64.p99)
        ),
        verdict(l64.rate >= pv64.tps && clean).into(),
        format!(
            "pgbench running the service's own entry statement (checkin-list-entry.sql) at 64 clients: {:.0}/s = {:.0} % of validation.sql \
             (the service over HTTP: {:.0} % of it). Service: {}; pgbench: postgres {} ms per entry",
            pl64.tps,
            100.0 * pl64.tps / pv64.tps,
            100.0 * l64.rate / pl64.tps,
            cpu_hint(l64),
            per_tx(pl64.cpu.pg, pl64.done)
        ),
    ]);
    res.targets.push([
        "issue 15: entries on a check-in list ≥ 100 % of the part-1 validations (64 clients, same run)".into(),
        format!(
            "{:.0}/s = {:.0} % of {:.0}/s (p99 {} vs {} ms)",
            l64.rate,
            100.0 * l64.rate / v64.rate,
            v64.rate,
            ms(l64.p99),
            ms(v64.p99)
        ),
        verdict(l64.rate >= v64.rate && clean).into(),
        format!(
            "list: {}; part-1 validations: {}",
            cpu_hint(l64),
            cpu_hint(v64)
        ),
    ]);
    let n = BATCH as f64;
    let (best, bx) = m
        .batches
        .iter()
        .max_by(|a, b| a.1.rate.total_cmp(&b.1.rate))
        .expect("batch loads ran");
    let b_ok = bx.rate * n >= 5.0 * l64.rate && bx.error_count() == 0;
    res.targets.push([
        format!("issue 15: offline uploads ≥ 5× the online entry rate on a list, per scan (best of {} uploaders vs 64 online clients)",
            m.batches.keys().map(|k| k.to_string()).collect::<Vec<_>>().join(" and ")),
        format!(
            "{:.0} scans/s at {best} uploaders = {:.1}× {:.0}/s ({})",
            bx.rate * n,
            bx.rate * n / l64.rate,
            l64.rate,
            m.batches
                .iter()
                .map(|(u, x)| format!("{u} uploaders: {:.0} scans/s, p99 {} ms per upload", x.rate * n, ms(x.p99)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        verdict(b_ok).into(),
        format!(
            "pgbench, the upload transaction (checkin-batch.sql): {}, i.e. {:.1}× pgbench's online entry statement. \
             Uploads at {best}: machine {:.0}% busy; per scan: server {} ms CPU, postgres {} ms, load generator {} ms \
             (online entries at 64 clients: postgres {} ms per entry)",
            m.batches
                .keys()
                .map(|u| {
                    let p = &m.pgb[&*format!("batch{u}")];
                    format!(
                        "{:.0} scans/s at {u} clients (postgres {} ms per scan)",
                        p.tps * n,
                        per_tx(p.cpu.pg, p.done * BATCH as u64)
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            m.batches
                .keys()
                .map(|u| m.pgb[&*format!("batch{u}")].tps * n)
                .fold(0.0, f64::max)
                / pl64.tps,
            bx.cpu.map_or(0.0, |c| 100.0 * c.busy_share()),
            per_tx(bx.cpu.map_or(0.0, |c| c.server), (bx.ok * BATCH) as u64),
            per_tx(bx.cpu.map_or(0.0, |c| c.pg), (bx.ok * BATCH) as u64),
            per_tx(bx.cpu.map_or(0.0, |c| c.me), (bx.ok * BATCH) as u64),
            per_tx(l64.cpu.map_or(0.0, |c| c.pg), l64.ok as u64),
        ),
    ]);
}

/// The figures of the four loads: mean rate off and on, the ratio of the means, and the
/// run-to-run spreads (|a − b| / mean) of the two off loads and of the two on loads.
pub struct Compared {
    pub off: f64,
    pub on: f64,
    pub ratio: f64,
    pub spread_off: f64,
    pub spread_on: f64,
    /// on / off of each pair (off run k, on run k).
    pub pairs: Vec<f64>,
}

impl Compared {
    /// The ratio of each pair: "x× and y×".
    fn pairs_text(&self) -> String {
        self.pairs
            .iter()
            .map(|r| format!("{r:.2}×"))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// Compares the rates of alternated runs `(on, rate)`: pair k is the k-th off run and the
/// k-th on run.
pub fn compare(runs: &[(bool, f64)]) -> Compared {
    let pick = |on: bool| -> Vec<f64> { runs.iter().filter(|r| r.0 == on).map(|r| r.1).collect() };
    let (off, on) = (pick(false), pick(true));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let spread = |v: &[f64]| {
        let (lo, hi) = v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        });
        if v.len() < 2 {
            0.0
        } else {
            (hi - lo) / mean(v)
        }
    };
    Compared {
        off: mean(&off),
        on: mean(&on),
        ratio: mean(&on) / mean(&off),
        spread_off: spread(&off),
        spread_on: spread(&on),
        pairs: off.iter().zip(&on).map(|(a, b)| b / a).collect(),
    }
}

/// "on a, b/s vs off c, d/s: on/off x× and y× (pairs), z× (means); run-to-run spread …".
fn compared_text(runs: &[(bool, f64)], c: &Compared) -> String {
    let rates = |on: bool| {
        runs.iter()
            .filter(|r| r.0 == on)
            .map(|r| format!("{:.0}", r.1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "on {} /s vs off {} /s (means {:.0} and {:.0}): on/off {} (run by run), **{:.2}×** (means); run-to-run spread {:.0} % off, {:.0} % on",
        rates(true),
        rates(false),
        c.on,
        c.off,
        c.pairs_text(),
        c.ratio,
        100.0 * c.spread_off,
        100.0 * c.spread_on
    )
}

/// "server a → b ms CPU, postgres c → d ms per request (off → on, means)".
fn cpu_shift(off: &[&Sample], on: &[&Sample]) -> String {
    let per = |xs: &[&Sample], f: fn(&CpuUse) -> f64| {
        let n: usize = xs.iter().map(|x| x.ok).sum();
        let cpu: f64 = xs.iter().filter_map(|x| x.cpu.as_ref()).map(f).sum();
        cpu * 1000.0 / n.max(1) as f64
    };
    format!(
        "per request, off → on: server {:.2} → {:.2} ms CPU, postgres {:.2} → {:.2} ms, load generator (and receiver) {:.2} → {:.2} ms",
        per(off, |c| c.server),
        per(on, |c| c.server),
        per(off, |c| c.pg),
        per(on, |c| c.pg),
        per(off, |c| c.me),
        per(on, |c| c.me)
    )
}

/// Issue 16: the waiting list costs registrations on a hot ticket type nothing beyond noise.
fn waitlist_target(res: &mut Results, m: &Measurements) {
    if m.waitlist.is_empty() {
        return;
    }
    let runs: Vec<(bool, f64)> = m.waitlist.iter().map(|r| (r.on, r.reg.0.rate)).collect();
    let c = compare(&runs);
    let noise = c.spread_off.max(c.spread_on).max(0.05);
    let clean = m
        .waitlist
        .iter()
        .all(|r| r.reg.1 && r.reg.0.error_count() == 0);
    let within = (c.ratio - 1.0).abs() <= noise;
    let pick = |on: bool| -> Vec<&Sample> {
        m.waitlist
            .iter()
            .filter(|r| r.on == on)
            .map(|r| &r.reg.0)
            .collect()
    };
    res.targets.push([
        format!(
            "issue 16: registrations on a hot ticket type unchanged within noise with the waiting list enabled \
             ({} clients; off, on, off, on in one run; here: on/off within 1 ± the larger run-to-run spread, at least ± 5 %)",
            waitlist::CLIENTS
        ),
        compared_text(&runs, &c),
        verdict(within && clean).into(),
        format!(
            "{} Each event has the hot type and a second type of {SOLD_OUT} seats, sold out through the API; on: \
             waitlistEnabled (PATCH) and {WAITING} entries joined (POST …/waitlist) on the sold-out type, all still waiting \
             after the load; counts exact in every run: {}. hot16 (one ticket type, no list): {:.0}/s. {}.",
            if within {
                format!(
                    "Reading: the difference ({:+.1} %) is within the noise ({:.0} %): registrations never read or lock the waiting list (migrations/V15__waitlist.sql).",
                    100.0 * (c.ratio - 1.0),
                    100.0 * noise
                )
            } else {
                format!(
                    "Reading: the difference ({:+.1} %) is beyond the noise ({:.0} %): compare the CPU per request.",
                    100.0 * (c.ratio - 1.0),
                    100.0 * noise
                )
            },
            yes_no(m.waitlist.iter().all(|r| r.reg.1)),
            m.regs["hot16"].0.rate,
            cpu_shift(&pick(false), &pick(true))
        ),
    ]);
}

/// Issue 16: one 5 000-row import inside API Gateway's timeout, with its rows per second.
fn import_target(res: &mut Results, m: &Measurements) {
    let Some(f) = ImportFigures::of(&m.imports) else {
        return;
    };
    let cpu = |pick: fn(&CpuUse) -> f64| {
        m.imports
            .iter()
            .map(|i| format!("{:.2}", pick(&i.cpu)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    res.targets.push([
        format!("issue 16: a CSV import of {ROWS} rows (the contract's most) answers inside API Gateway's {GATEWAY_SECS:.0} s integration timeout"),
        format!(
            "one import: **{:.2} s** (median of {}; slowest {:.2} s) = {:.0} rows/s, {:.0} % of {GATEWAY_SECS:.0} s ({:.0}× margin); \
             every import: answer 200 with created {ROWS} and no failed row, {ROWS} confirmed guests with signed tickets (qr_payload) \
             holding {ROWS} seats: {}",
            f.median,
            m.imports.len(),
            f.slowest,
            f.rate,
            100.0 * f.median / GATEWAY_SECS,
            GATEWAY_SECS / f.slowest,
            yes_no(f.failed == 0 && m.imports.len() == REPEATS)
        ),
        verdict(f.failed == 0 && f.slowest < GATEWAY_SECS && m.imports.len() == REPEATS).into(),
        format!(
            "Reading: {ROWS} rows take {:.1} s of the {GATEWAY_SECS:.0} s, on the local server (pool 16) on these 2 busy cores; the guests \
             function in Lambda runs the same few bulk statements over its pool of 2 (one connection used). CPU-s per import: \
             server {}, postgres {}.",
            f.median,
            cpu(|c| c.server),
            cpu(|c| c.pg)
        ),
    ]);
}

/// Issue 17: registrations and validations with idempotency keys + webhooks within 10 % of off.
fn integrations_targets(res: &mut Results, m: &Measurements) {
    for (runs, what, clients, unit) in [
        (
            &m.integrations.regs,
            "registrations on a hot ticket type",
            REG_CLIENTS,
            "registration",
        ),
        (
            &m.integrations.vals,
            "validations (each a different ticket)",
            VAL_CLIENTS,
            "first entry",
        ),
    ] {
        if runs.is_empty() {
            continue;
        }
        let rates: Vec<(bool, f64)> = runs
            .iter()
            .filter(|r| matches!(r.mode, Mode::Off | Mode::On))
            .map(|r| (r.mode == Mode::On, r.sample.rate))
            .collect();
        let c = compare(&rates);
        let clean = runs.iter().all(|r| r.exact && r.sample.error_count() == 0);
        let pick = |mode: Mode| -> Vec<&Sample> {
            runs.iter()
                .filter(|r| r.mode == mode)
                .map(|r| &r.sample)
                .collect()
        };
        let (written, received): (i64, usize) = runs
            .iter()
            .filter(|r| r.mode == Mode::On)
            .fold((0, 0), |(w, d), r| (w + r.written, d + r.received));
        let keys_only = match pick(Mode::KeysOnly).first() {
            Some(x) => format!(
                " Keys alone (one run, the webhook disabled): {:.0}/s = {:.2}× the plain mean, i.e. of the {:.0} % the two cost \
                 the keys take {:.0} points and the webhooks the rest; {}.",
                x.rate,
                x.rate / c.off,
                100.0 * (1.0 - c.ratio),
                100.0 * (1.0 - x.rate / c.off),
                cpu_shift(&pick(Mode::Off), &pick(Mode::KeysOnly)).replace("off → on", "plain → keys only")
            ),
            None => String::new(),
        };
        let in_process = match runs.iter().find(|r| r.mode == Mode::InProcess) {
            Some(x) => format!(
                " With the deliveries made in process during the load (one run, the worker on the same 2 cores as the API \
                 and PostgreSQL, as no AWS deployment runs it): {:.0}/s = {:.2}× the plain mean, {} of {} delivered during the load.",
                x.sample.rate,
                x.sample.rate / c.off,
                x.received,
                x.written
            ),
            None => String::new(),
        };
        let drains: Vec<&integrations::Drain> =
            runs.iter().filter_map(|r| r.drain.as_ref()).collect();
        let drained = if drains.is_empty() {
            String::new()
        } else {
            let n: usize = drains.iter().map(|d| d.delivered).sum();
            let secs: f64 = drains.iter().map(|d| d.secs).sum();
            let pg: f64 = drains.iter().map(|d| d.cpu.pg).sum();
            let server: f64 = drains.iter().map(|d| d.cpu.server).sum();
            format!(
                " The held deliveries, released after each load: {n} in {secs:.1} s ({:.0}/s), all delivered: {}; \
                 PostgreSQL {:.2} ms and the server {:.2} ms of CPU per delivery (the worker's share, on other machines in AWS \
                 except PostgreSQL's).",
                n as f64 / secs.max(1e-9),
                yes_no(drains.iter().all(|d| d.complete)),
                1000.0 * pg / n.max(1) as f64,
                1000.0 * server / n.max(1) as f64
            )
        };
        let floor = if unit == "first entry" && !m.pgb_integrations.is_empty() {
            let runs = &m.pgb_integrations;
            let p = pgbench_integrations(runs);
            let rates = |keyed: bool| {
                runs.iter()
                    .filter(|(k, _)| *k == keyed)
                    .map(|(_, r)| format!("{:.0}", r.tps))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let cpu = |keyed: bool| {
                let (secs, n) = runs
                    .iter()
                    .filter(|(k, _)| *k == keyed)
                    .fold((0.0, 0u64), |(s, n), (_, r)| (s + r.cpu.pg, n + r.done));
                per_tx(secs, n)
            };
            format!(
                " The database's own share, measured beside it: pgbench running the service's validation statement \
                 at {VAL_CLIENTS} clients, plain and as a keyed request of an organizer with an endpoint runs it \
                 (key and answer row, delivery), in the order plain, keyed, keyed, plain: keyed {} /s vs plain {} /s: keyed/plain {} (run by run), \
                 **{:.2}×** (means); run-to-run spread {:.0} % plain, {:.0} % keyed; PostgreSQL CPU per transaction \
                 {} → {} ms. The HTTP ratio sits between that ratio and 1: the server's and the load generator's \
                 shares are the same in both modes.",
                rates(true),
                rates(false),
                p.pairs_text(),
                p.ratio,
                100.0 * p.spread_off,
                100.0 * p.spread_on,
                cpu(false),
                cpu(true)
            )
        } else {
            String::new()
        };
        res.targets.push([
            format!(
                "issue 17: {what} with idempotency keys + webhooks on ≥ 90 % of off ({clients} clients; four pairs in one run, off on, on off, off on, on off; then keys only)"
            ),
            compared_text(&rates, &c),
            verdict(c.ratio >= 0.9 && clean).into(),
            format!(
                "Reading: {} On: a fresh Idempotency-Key per request and an enabled webhook ({}) to a receiver of the harness \
                 answering 200: {written} deliveries written and their messages sent (one per {unit}) during the loads, {received} delivered \
                 during them: the server's webhook worker is held until the load ends (`LOCAL_HOLD_QUEUES`), as in AWS, where it \
                 is a function of its own; counts exact in every run: {}. Each load (and each pgbench run) starts on a vacuumed \
                 database right after a checkpoint (`integrations::settle`), and the tickets validated carry their QR image \
                 (see the data set). {}.{drained}{keys_only}{in_process}{floor}",
                if c.ratio >= 0.9 {
                    format!("the integrations cost {:.0} % of the rate, inside the 10 %.", 100.0 * (1.0 - c.ratio).max(0.0))
                } else {
                    format!("the integrations cost {:.0} % of the rate, beyond the 10 %.", 100.0 * (1.0 - c.ratio))
                },
                EVENT_TYPES.join(", "),
                yes_no(runs.iter().all(|r| r.exact)),
                cpu_shift(&pick(Mode::Off), &pick(Mode::On))
            ),
        ]);
    }
}

/// The pgbench runs of `pgbench::integrations` compared as the HTTP loads are.
fn pgbench_integrations(runs: &[(bool, PgbenchRun)]) -> Compared {
    compare(&runs.iter().map(|(on, r)| (*on, r.tps)).collect::<Vec<_>>())
}

/// CPU milliseconds per unit of `cpu_secs` over `n` units.
fn per_tx(cpu_secs: f64, n: u64) -> String {
    format!("{:.3}", cpu_secs * 1000.0 / n.max(1) as f64)
}

/// The notes every run adds: the cache, and where the load generator ran.
fn notes(res: &mut Results, m: &Measurements) {
    if !m.waitlist.is_empty() {
        res.notes.push(format!(
            "issue 16 registrations with the waiting list, run by run (off, on, off, on): {}",
            m.waitlist
                .iter()
                .map(|r| r.reg.2.clone())
                .collect::<Vec<_>>()
                .join(" · ")
        ));
    }
    for (runs, what) in [
        (&m.integrations.regs, "registrations"),
        (&m.integrations.vals, "validations"),
    ] {
        if runs.is_empty() {
            continue;
        }
        res.notes.push(format!(
            "issue 17 {what}, run by run (off, on, on, off, off, on, on, off, keys only, in process): {}",
            runs.iter()
                .map(|r| r.text.clone())
                .collect::<Vec<_>>()
                .join(" · ")
        ));
    }
    let d0 = &m.reads["detail16"];
    let ratio_cache = m.cached.detail.rate / d0.rate;
    res.notes.push(format!(
        "event detail: {:.0}/s without REDIS_URL, {:.0}/s with it ({ratio_cache:.2}×; /health/ready says redis = {}). \
         {}",
        d0.rate,
        m.cached.detail.rate,
        m.cached.redis_ready,
        if (0.9..1.1).contains(&ratio_cache) {
            "The two figures are about equal: the cache is not (yet) serving event details, or a cache hit costs as much as the query."
        } else {
            "Same 1 000 event ids in both runs, so after the warm-up the cached run serves mostly hits."
        }
    ));
    res.notes.push(format!(
        "the load generator runs on the same 2 cores as the server and PostgreSQL (its share is in the CPU table); \
         pgbench runs with the server idle. Whole run: {:.0} s.",
        m.started.elapsed().as_secs_f64()
    ));
}

/// One sentence from the CPU split of a load: what bounded it.
fn cpu_hint(x: &Sample) -> String {
    let Some(c) = x.cpu else { return String::new() };
    let n = x.ok.max(1) as f64;
    format!(
        "machine {:.0}% busy; per request: server {:.2} ms CPU, postgres {:.2} ms, load generator {:.2} ms",
        100.0 * c.busy / c.capacity.max(1e-9),
        c.server * 1000.0 / n,
        c.pg * 1000.0 / n,
        c.me * 1000.0 / n
    )
}
