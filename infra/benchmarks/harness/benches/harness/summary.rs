//! The measurements of a run turned into the report's tables: results beside pgbench, the CPU
//! split, memory, the targets of issues 8 and 15 with their verdicts, and the notes.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::driver::Sample;
use crate::functions::LambdaMem;
use crate::loads::{Cached, Registration};
use crate::pgbench::PgbenchRun;
use crate::procs::{mb, CpuUse, Mem};
use crate::report::{ms, verdict, Results};
use crate::seed::BATCH;

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
        res.rows.push([
            "pgbench only: the one-statement check-in of before check-in lists (validation-one-statement.sql)"
                .into(),
            "64".into(),
            "–".into(),
            "–".into(),
            "–".into(),
            if p.aborted {
                "**aborted**".into()
            } else {
                "0".into()
            },
            pg_text(p),
            format!("{} validation.sql", ratio(p.tps, m.pgb["val64"].tps)),
        ]);
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

/// CPU milliseconds per unit of `cpu_secs` over `n` units.
fn per_tx(cpu_secs: f64, n: u64) -> String {
    format!("{:.3}", cpu_secs * 1000.0 / n.max(1) as f64)
}

/// The notes every run adds: the cache, and where the load generator ran.
fn notes(res: &mut Results, m: &Measurements) {
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
