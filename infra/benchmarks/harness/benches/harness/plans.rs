//! EXPLAIN checks: the plans of the hot queries on the seeded data set (a Seq Scan of a hot
//! table is printed loudly and fails the run).

use std::fmt::Write as _;

use anyhow::Context;
// The service's own select lists: the plans below are the plans of the statements it prepares.
use domain::events::queries::EVENT_COLUMNS;
use domain::guests::model::GUEST_COLUMNS;
use serde_json::Value;

use crate::report::{ms, Results};
use crate::seed::Seed;
use crate::ORG;

/// Relations a hot query must never read with a sequential scan.
const WATCHED: [&str; 5] = ["events", "guests", "tickets", "ticket_types", "seat_shards"];

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
    res.plans = plan_checks(pg, &fx).await?;
    for p in &res.plans {
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
    res.plan_failures = res.plans.iter().filter(|p| !p.seq_scans.is_empty()).count();
    if res.plan_failures > 0 {
        println!(
            "\n  !!!!!!!! {} plan(s) read a hot table sequentially (see above) !!!!!!!!\n",
            res.plan_failures
        );
    }
    Ok(())
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
