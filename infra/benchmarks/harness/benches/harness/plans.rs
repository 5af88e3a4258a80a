//! EXPLAIN checks: the plans of the hot queries on the seeded data set (a Seq Scan of a hot
//! table is printed loudly and fails the run), and those of the check-in statements once the
//! check-in loads have filled the scan log and the states ([`check_checkin`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{bail, Context};
// The service's own select lists: the plans below are the plans of the statements it prepares.
use domain::events::queries::EVENT_COLUMNS;
use domain::guests::model::GUEST_COLUMNS;
use serde_json::Value;

use crate::report::{ms, Results};
use crate::seed::{Seed, EXTRA_LIST};
use crate::settings::Settings;
use crate::ORG;

/// Relations a hot query must never read with a sequential scan.
pub const WATCHED: [&str; 8] = [
    "events",
    "guests",
    "tickets",
    "ticket_types",
    "seat_shards",
    "checkin_lists",
    "checkin_states",
    "ticket_scans",
];

/// Explains every hot query against rows of the seed, prints the plans and records them (and
/// how many read a watched table sequentially) in `res`.
pub async fn check(
    pg: &tokio_postgres::Client,
    seed: &Seed,
    res: &mut Results,
) -> anyhow::Result<()> {
    println!("harness: EXPLAIN of the hot queries");
    let big_pool = seed.pools["val-pg-16"];
    let code: String = pg
        .query_one(
            "SELECT ticket_code FROM tickets WHERE id = $1",
            &[&seed.pools["val-warmup"].1],
        )
        .await?
        .get(0);
    let detail_event: i64 = pg
        .query_one(
            "SELECT id FROM events WHERE organizer_id = $1 AND id % 3 = 0 ORDER BY id LIMIT 1",
            &[&ORG],
        )
        .await?
        .get(0);
    let ticket = seed.pools["val-warmup"].1 + 1;
    let ticket_guest: i64 = pg
        .query_one("SELECT guest_id FROM tickets WHERE id = $1", &[&ticket])
        .await?
        .get(0);
    let first_guest: i64 = pg
        .query_one(
            "SELECT min(id) FROM guests WHERE event_id = $1",
            &[&big_pool.0],
        )
        .await?
        .get(0);
    let fx = Fixture {
        detail_event,
        guest_event: big_pool.0,
        first_guest,
        ticket,
        ticket_guest,
        ticket_code: code,
        reg_event: seed.events("reg-warmup")[0],
    };
    let plans = plan_checks(pg, &fx).await?;
    record(res, plans);
    Ok(())
}

/// Prints `plans`, adds them to `res` and counts the plans that read a watched table
/// sequentially.
fn record(res: &mut Results, plans: Vec<PlanCheck>) {
    for p in &plans {
        let flag = if p.seq_scans.is_empty() {
            "ok  ".to_owned()
        } else {
            format!("!!! SEQ SCAN of {} !!!", p.seq_scans.join(", "))
        };
        println!(
            "  {flag} {:<58} {:<7} {:>8} ms  {}",
            p.name,
            p.mode,
            ms(p.exec_ms),
            p.summary
        );
    }
    let failures = plans.iter().filter(|p| !p.seq_scans.is_empty()).count();
    if failures > 0 {
        println!(
            "\n  !!!!!!!! {failures} plan(s) read a hot table sequentially (see above) !!!!!!!!\n"
        );
    }
    res.plan_failures += failures;
    res.plans.extend(plans);
}

/// The plan of one query under one plan mode.
pub struct PlanCheck {
    pub name: String,
    /// `custom` or `generic`.
    pub mode: &'static str,
    /// The plan's nodes, depth first.
    pub summary: String,
    /// The watched relations the plan reads sequentially.
    pub seq_scans: Vec<String>,
    pub exec_ms: f64,
}

fn walk_plan(node: &Value, out: &mut Vec<String>, seq: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or("?");
    let rel = node["Relation Name"].as_str();
    let index = node["Index Name"].as_str();
    let mut label = kind.to_owned();
    if let Some(i) = index {
        let _ = write!(label, " {i}");
    } else if let Some(r) = rel {
        let _ = write!(label, " {r}");
    }
    if kind == "Sort" {
        if let Some(m) = node["Sort Method"].as_str() {
            let _ = write!(label, " ({m})");
        }
    }
    if kind == "Seq Scan" {
        if let Some(r) = rel.filter(|r| WATCHED.contains(r)) {
            seq.push(r.to_owned());
        }
    }
    out.push(label);
    if let Some(children) = node["Plans"].as_array() {
        for c in children {
            walk_plan(c, out, seq);
        }
    }
}

/// EXPLAIN (ANALYZE) of `sql` prepared like the driver prepares it, with `args` as SQL
/// literals, under a custom plan and (when it has parameters) a generic plan. Inside a
/// transaction that is rolled back: the writes are executed but leave nothing behind.
async fn explain(
    pg: &tokio_postgres::Client,
    name: &str,
    sql: &str,
    args: &[&str],
) -> anyhow::Result<Vec<PlanCheck>> {
    let modes: &[&'static str] = if args.is_empty() {
        &["custom"]
    } else {
        &["custom", "generic"]
    };
    let mut out = Vec::new();
    for &mode in modes {
        pg.batch_execute(&format!(
            "BEGIN; SET LOCAL plan_cache_mode = force_{mode}_plan; PREPARE bench_q AS {sql}"
        ))
        .await
        .with_context(|| format!("preparing {name}"))?;
        let execute = if args.is_empty() {
            "EXECUTE bench_q".to_owned()
        } else {
            format!("EXECUTE bench_q({})", args.join(", "))
        };
        let result = pg
            .query_one(
                &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}"),
                &[],
            )
            .await;
        pg.batch_execute("ROLLBACK; DEALLOCATE bench_q").await?;
        let plan: Value = result.with_context(|| format!("explaining {name}"))?.get(0);
        let root = &plan[0];
        let (mut nodes, mut seq) = (Vec::new(), Vec::new());
        walk_plan(&root["Plan"], &mut nodes, &mut seq);
        out.push(PlanCheck {
            name: name.to_owned(),
            mode,
            summary: nodes.join(" › "),
            seq_scans: seq,
            exec_ms: root["Execution Time"].as_f64().unwrap_or(f64::NAN),
        });
    }
    Ok(out)
}

/// Rows of the seed the statements are explained with.
struct Fixture {
    detail_event: i64,
    guest_event: i64,
    first_guest: i64,
    ticket: i64,
    ticket_guest: i64,
    ticket_code: String,
    reg_event: (i64, i64),
}

async fn plan_checks(pg: &tokio_postgres::Client, fx: &Fixture) -> anyhow::Result<Vec<PlanCheck>> {
    let org = format!("'{ORG}'");
    let (ev, gev, tk) = (
        fx.detail_event.to_string(),
        fx.guest_event.to_string(),
        fx.ticket.to_string(),
    );
    let (rev, rtt) = (fx.reg_event.0.to_string(), fx.reg_event.1.to_string());
    let code = format!("'{}'", fx.ticket_code);
    let search = "(e.title ILIKE $2 OR e.location ILIKE $2)";
    let guest_search = "(g.first_name || ' ' || g.last_name || ' ' || g.email) ILIKE $2";
    let ticket_select = format!(
        "SELECT {} FROM tickets t
           JOIN guests g ON g.id = t.guest_id
           JOIN events e ON e.id = t.event_id
           LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id",
        domain::tickets::queries::columns()
    );
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "event list: organizer, sort eventDate, page 1",
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.organizer_id = $1 ORDER BY e.event_date ASC, e.id ASC LIMIT $2 OFFSET $3"),
            vec![org.clone(), "20".into(), "0".into()],
        ),
        (
            "event list: organizer, sort -createdAt, page 10",
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.organizer_id = $1 ORDER BY e.created_at DESC, e.id DESC LIMIT $2 OFFSET $3"),
            vec![org.clone(), "20".into(), "180".into()],
        ),
        (
            "event list: organizer, status=upcoming, sort eventDate",
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.organizer_id = $1 AND e.status = 'published' AND e.event_date > now() ORDER BY e.event_date ASC, e.id ASC LIMIT $2 OFFSET $3"),
            vec![org.clone(), "20".into(), "0".into()],
        ),
        (
            "event list: organizer, sort title",
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.organizer_id = $1 ORDER BY e.title ASC, e.id ASC LIMIT $2 OFFSET $3"),
            vec![org.clone(), "20".into(), "0".into()],
        ),
        // Totals without a search term come from the event_counts counters (migration V5),
        // as shared/domain/src/events/queries.rs::list builds them.
        (
            "event list: total (organizer, counters)",
            "SELECT ((SELECT COALESCE(sum(c.n), 0) FROM event_counts c WHERE c.organizer_id = $1))::bigint".into(),
            vec![org.clone()],
        ),
        (
            "event list: total (organizer, status=upcoming)",
            "SELECT ((SELECT COALESCE(sum(c.n), 0) FROM event_counts c WHERE c.organizer_id = $1 AND c.status = 'published')
                     - (SELECT count(*) FROM events e WHERE e.organizer_id = $1 AND e.status = 'published' AND e.event_date <= now()))::bigint".into(),
            vec![org.clone()],
        ),
        (
            "event search: organizer, 'Conference' (common), page",
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.organizer_id = $1 AND {search} ORDER BY e.event_date ASC, e.id ASC LIMIT $3 OFFSET $4"),
            vec![org.clone(), "'%Conference%'".into(), "20".into(), "0".into()],
        ),
        (
            "event search: organizer, 'Conference' (common), count",
            format!("SELECT count(*) FROM events e WHERE e.organizer_id = $1 AND {search}"),
            vec![org.clone(), "'%Conference%'".into()],
        ),
        (
            "event search: organizer, 'Lyon' (selective), page",
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.organizer_id = $1 AND {search} ORDER BY e.event_date ASC, e.id ASC LIMIT $3 OFFSET $4"),
            vec![org.clone(), "'%Lyon%'".into(), "20".into(), "0".into()],
        ),
        (
            "event search: organizer, 'quantum ballet' (no match), count",
            format!("SELECT count(*) FROM events e WHERE e.organizer_id = $1 AND {search}"),
            vec![org.clone(), "'%quantum ballet%'".into()],
        ),
        (
            "event search: admin (no organizer filter), 'jazz', page",
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE {} ORDER BY e.event_date ASC, e.id ASC LIMIT $2 OFFSET $3", search.replace("$2", "$1")),
            vec!["'%jazz%'".into(), "20".into(), "0".into()],
        ),
        (
            "event detail",
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = $1"),
            vec![ev.clone()],
        ),
        (
            "guest list: big event, page 1",
            format!("SELECT {GUEST_COLUMNS} FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id WHERE g.event_id = $1 ORDER BY g.id LIMIT $2 OFFSET $3"),
            vec![gev.clone(), "20".into(), "0".into()],
        ),
        (
            "guest search: big event, 'martin', page",
            format!("SELECT {GUEST_COLUMNS} FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id WHERE g.event_id = $1 AND {guest_search} ORDER BY g.id LIMIT $3 OFFSET $4"),
            vec![gev.clone(), "'%martin%'".into(), "20".into(), "0".into()],
        ),
        (
            "guest search: big event, 'martin', count",
            format!("SELECT count(*) FROM guests g WHERE g.event_id = $1 AND {guest_search}"),
            vec![gev.clone(), "'%martin%'".into()],
        ),
        (
            "guest search: big event, 'paula.rossi.1234', count",
            format!("SELECT count(*) FROM guests g WHERE g.event_id = $1 AND {guest_search}"),
            vec![gev.clone(), "'%paula.rossi.1234%'".into()],
        ),
        (
            "validation: tenancy",
            "SELECT t.event_id, e.organizer_id FROM tickets t JOIN events e ON e.id = t.event_id WHERE t.id = $1".into(),
            vec![tk.clone()],
        ),
        (
            "validation: accept (UPDATE tickets)",
            "UPDATE tickets t SET validated_at = now(), validated_by = $2, validation_location = $3, updated_at = now()
              WHERE t.id = $1 AND t.status = 'active' AND t.validated_at IS NULL
                AND EXISTS (SELECT 1 FROM events e WHERE e.id = t.event_id AND e.status = 'published')
          RETURNING t.guest_id, t.validated_at".into(),
            vec![tk.clone(), "'scanner-1'".into(), "'Entrance A'".into()],
        ),
        (
            "validation: guest checked_in (UPDATE guests)",
            "UPDATE guests SET status = 'checked_in', updated_at = now() WHERE id = $1".into(),
            vec![fx.ticket_guest.to_string()],
        ),
        (
            "ticket by id (validation answer)",
            format!("{ticket_select} WHERE t.id = $1"),
            vec![tk.clone()],
        ),
        (
            "ticket by code (scanner)",
            "SELECT id FROM tickets WHERE ticket_code = $1".into(),
            vec![code],
        ),
        (
            "registration: event access",
            "SELECT organizer_id, status, event_date, requires_approval,
                    EXISTS (SELECT 1 FROM ticket_types t WHERE t.event_id = e.id) AS has_types
               FROM events e WHERE id = $1".into(),
            vec![rev.clone()],
        ),
        (
            // The statement seat_shards_add runs on each shard it tries (migrations/V4).
            "registration: take a seat of a shard (seat_shards_add)",
            "UPDATE seat_shards SET taken = taken + 1
              WHERE event_id = $1 AND COALESCE(ticket_type_id, 0) = COALESCE($2::bigint, 0)
                AND shard = $3::bigint % 16 AND taken + 1 BETWEEN 0 AND quota".into(),
            vec![rev.clone(), rtt.clone(), "7".into()],
        ),
        (
            "registration: guest by id (answer)",
            format!("SELECT {GUEST_COLUMNS} FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id WHERE g.id = $1 AND g.event_id = $2"),
            vec![fx.first_guest.to_string(), gev.clone()],
        ),
    ];
    let mut all = Vec::new();
    for (name, sql, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(explain(pg, name, sql, &args).await?);
    }
    Ok(all)
}

/// The check-in statements of issue 15, explained once the check-in loads have written their
/// scans and states (and `ANALYZE` has seen them): the one statement of an accepted entry on a
/// list and on the default list (as shared/domain/src/checkin/scan.rs builds them, checked
/// against infra/benchmarks/checkin-list-entry.sql, which pgbench runs), and the statements of
/// an offline upload of 500 entries (infra/benchmarks/checkin-batch.sql, bound with the arrays
/// its first SELECT builds). On tickets pgbench uses later: every write is rolled back.
pub async fn check_checkin(
    pg: &tokio_postgres::Client,
    s: &Settings,
    seed: &Seed,
    res: &mut Results,
) -> anyhow::Result<()> {
    println!("harness: EXPLAIN of the check-in statements (after the check-in loads)");
    pg.batch_execute("ANALYZE checkin_lists, checkin_states, ticket_scans, tickets, guests")
        .await?;
    let dir = s.root.join("infra/benchmarks");
    let mut cases: Vec<(String, String, Vec<String>)> = Vec::new();

    // One entry: a ticket of the list-64 pool that pgbench enters later.
    let entry_file = std::fs::read_to_string(dir.join("checkin-list-entry.sql"))?;
    let entry = script_statements(&entry_file);
    let [entry] = entry.as_slice() else {
        bail!(
            "checkin-list-entry.sql: expected one statement, found {}",
            entry.len()
        );
    };
    let (pgbench_entry, _) = parametrize(entry, Some(&ENTRY_PARAMS))?;
    let ticket = (seed.pools["list-64"].1 + seed.http_pool as i64).to_string();
    let args = vec![
        ticket,
        "'scanner-1'".to_owned(),
        format!("'{EXTRA_LIST}'"),
        format!("'{ORG}'"),
        seed.lists["list-64"].to_string(),
    ];
    match service_entry() {
        Ok((on_list, on_default)) => {
            if squash(&on_list) != squash(&pgbench_entry) {
                let msg = "**infra/benchmarks/checkin-list-entry.sql is no longer the service's entry statement on a list \
                           (domain::checkin::scan::statement)**: the pgbench comparison of entries on a list is off until it is copied again";
                println!("  !!! {msg}");
                res.notes.push(msg.to_owned());
            }
            cases.push((
                "check-in list: accepted entry (entry_sql on a list, one statement)".into(),
                on_list,
                args.clone(),
            ));
            cases.push((
                "part-1 validation: accepted entry on the default list (entry_sql)".into(),
                on_default,
                args[..4].to_vec(),
            ));
        }
        Err(e) => {
            let msg = format!(
                "could not build the service's entry statement ({e:#}): checkin-list-entry.sql explained instead, not compared"
            );
            println!("  !!! {msg}");
            res.notes.push(msg);
            cases.push((
                "check-in list: accepted entry (checkin-list-entry.sql)".into(),
                pgbench_entry,
                args,
            ));
        }
    }

    // An upload of 500 entries: the first 500 tickets of the pool pgbench uploads at 8 clients.
    let batch_file = std::fs::read_to_string(dir.join("checkin-batch.sql"))?;
    let stmts = script_statements(&batch_file);
    const BATCH_STATEMENTS: [&str; 10] = [
        "",
        "",
        "check-in list: locate (list and event)",
        "offline upload: lock 500 tickets FOR NO KEY UPDATE",
        "offline upload: scans of these clientScanIds already recorded",
        "offline upload: the tickets' states on the list",
        "offline upload: INSERT 500 scan rows (unnest)",
        "offline upload: upsert 500 states (unnest)",
        "offline upload: first entries (UPDATE tickets, then guests)",
        "",
    ];
    if stmts.len() != BATCH_STATEMENTS.len() {
        bail!(
            "checkin-batch.sql: expected {} statements (the arrays, BEGIN, 7 of the service, COMMIT), found {}",
            BATCH_STATEMENTS.len(),
            stmts.len()
        );
    }
    let (event, first) = seed.pools["batch-pg-8"];
    let mut values: HashMap<String, String> = [
        ("first_ticket", first.to_string()),
        ("lo", first.to_string()),
        (
            "last_ticket",
            (first + seed.batch_pg_pool as i64 - 1).to_string(),
        ),
        ("client_id", "0".to_owned()),
        ("event_id", event.to_string()),
        ("list_id", seed.lists["batch-pg-8"].to_string()),
        ("location", format!("'{EXTRA_LIST}'")),
        ("reentry", "false".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // The arrays the upload binds, in text as pgbench sends them.
    let arrays = inline(&stmts[0], &values)?;
    for msg in pg.simple_query(&arrays).await? {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
            for (i, c) in row.columns().iter().enumerate() {
                let v = row.get(i).map_or("NULL".to_owned(), |v| {
                    format!("'{}'", v.replace('\'', "''"))
                });
                values.insert(c.name().to_owned(), v);
            }
        }
    }
    // Each statement must still be one of the service's (parameters aside).
    let mut service = Vec::new();
    for file in ["scan.rs", "lists.rs"] {
        let path = s.root.join("shared/domain/src/checkin").join(file);
        let src = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        service.extend(string_literals(&src).iter().map(|l| shape(l)));
    }
    for (stmt, name) in stmts.iter().zip(BATCH_STATEMENTS) {
        if name.is_empty() {
            continue;
        }
        if !service.contains(&shape(&substitute(stmt, |_| Ok("$".to_owned()))?)) {
            let msg = format!(
                "**infra/benchmarks/checkin-batch.sql: the statement \"{name}\" is no longer one of shared/domain/src/checkin/scan.rs \
                 or lists.rs**: the pgbench comparison of offline uploads is off until it is copied again"
            );
            println!("  !!! {msg}");
            res.notes.push(msg);
        }
        let (sql, names) = parametrize(stmt, None)?;
        let args = names
            .iter()
            .map(|n| {
                values
                    .get(n)
                    .cloned()
                    .with_context(|| format!("checkin-batch.sql: no value for :{n}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        cases.push((name.to_owned(), sql, args));
    }

    let mut plans = Vec::new();
    for (name, sql, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        plans.extend(explain(pg, name, sql, &args).await?);
    }
    record(res, plans);
    Ok(())
}

/// The variables of checkin-list-entry.sql, in the order of entry_sql's `$1`..`$5`.
const ENTRY_PARAMS: [&str; 5] = ["tid", "scanner", "location", "org", "list_id"];

/// The statement of an accepted entry on a list and on the default list, as the service runs
/// them without a key for an organizer with no endpoint (`domain::checkin::scan::statement`).
fn service_entry() -> anyhow::Result<(String, String)> {
    use domain::checkin::scan::{statement, Shape};
    let shape = |on_list| Shape {
        direction: domain::checkin::Direction::Entry,
        on_list,
        keyed: false,
        inline_hooks: false,
    };
    Ok((
        statement(shape(true)).to_owned(),
        statement(shape(false)).to_owned(),
    ))
}

/// Every string literal of a Rust source file (outside `//` comments), `\` line continuations
/// joined.
fn string_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    let mut cur: Option<String> = None;
    while let Some(c) = chars.next() {
        if let Some(lit) = cur.as_mut() {
            match c {
                '\\' => match chars.next() {
                    Some('\n') => {
                        while chars.peek().is_some_and(|c| c.is_whitespace()) {
                            chars.next();
                        }
                    }
                    Some('n') => lit.push('\n'),
                    Some(e) => lit.push(e),
                    None => {}
                },
                '"' => out.extend(cur.take()),
                c => lit.push(c),
            }
            continue;
        }
        match c {
            '"' => cur = Some(String::new()),
            // A char literal such as '"' (a lifetime has nothing to skip).
            '\'' if chars.peek() == Some(&'"') => {
                chars.next();
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A statement's shape: parameters (`$n`) as `$`, format placeholders (`{}`) dropped,
/// whitespace squashed.
fn shape(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
        }
    }
    squash(&out.replace("{}", ""))
}

/// Whitespace-insensitive text of a statement.
fn squash(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The SQL statements of a pgbench script, in order: comment lines and meta-commands left out, a
/// statement ends with `;` at the end of a line or with `\gset`.
fn script_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in script.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with("--") || t.starts_with('\\') {
            continue;
        }
        if let Some(at) = line.find("\\gset") {
            cur.push_str(&line[..at]);
            out.push(cur.trim().to_owned());
            cur.clear();
        } else if let Some(stmt) = line.trim_end().strip_suffix(';') {
            cur.push_str(stmt);
            out.push(cur.trim().to_owned());
            cur.clear();
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    out
}

/// `stmt` with each pgbench `:variable` (outside quotes; `::` is a cast) replaced by `with`'s
/// text for it.
fn substitute(
    stmt: &str,
    mut with: impl FnMut(&str) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let chars: Vec<char> = stmt.chars().collect();
    let mut out = String::with_capacity(stmt.len());
    let (mut i, mut quoted) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            quoted = !quoted;
        } else if !quoted && c == ':' {
            if chars.get(i + 1) == Some(&':') {
                out.push_str("::");
                i += 2;
                continue;
            }
            if chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_')
            {
                let end = (i + 1..chars.len())
                    .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'))
                    .unwrap_or(chars.len());
                let name: String = chars[i + 1..end].iter().collect();
                out.push_str(&with(&name)?);
                i = end;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

/// `stmt` with its `:variables` as `$n` parameters, numbered as in `order` (which must name
/// every one) or else by first appearance; and the variables in parameter order.
fn parametrize(stmt: &str, order: Option<&[&str]>) -> anyhow::Result<(String, Vec<String>)> {
    let mut names: Vec<String> = order
        .map(|o| o.iter().map(|n| (*n).to_owned()).collect())
        .unwrap_or_default();
    let sql = substitute(stmt, |name| {
        let n = match names.iter().position(|x| x == name) {
            Some(n) => n,
            None if order.is_some() => bail!("unexpected variable :{name}"),
            None => {
                names.push(name.to_owned());
                names.len() - 1
            }
        };
        Ok(format!("${}", n + 1))
    })?;
    Ok((sql, names))
}

/// `stmt` with its `:variables` replaced by the SQL text of `values`.
fn inline(stmt: &str, values: &HashMap<String, String>) -> anyhow::Result<String> {
    substitute(stmt, |name| {
        values
            .get(name)
            .cloned()
            .with_context(|| format!("no value for :{name}"))
    })
}
