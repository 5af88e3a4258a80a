//! Issue 16: the CSV import. [`ROWS`] rows (the contract's largest file) posted to
//! `POST /api/events/{eventId}/guests/import?mode=best_effort` as `text/csv` into a fresh
//! published event whose ticket type has 100 000 seats, [`REPEATS`] times, each on its own
//! event and a fresh server (so the previous import's ticket and email jobs, which the local
//! server's in-process workers run, do not overlap the next one). Each import is timed from
//! the request to the whole answer, and checked: `created` = [`ROWS`], nothing failed, and
//! the event has [`ROWS`] confirmed guests with signed tickets (`qr_payload` not null)
//! holding [`ROWS`] seats.

use std::fmt::Write as _;
use std::time::Instant;

use crate::driver::Api;
use crate::loads::drop_pending_jobs;
use crate::procs::{interference, CpuMeter, CpuUse};
use crate::seed::Seed;
use crate::server::Server;
use crate::settings::Settings;

/// Imports, each on its own event (`csv-import` of the seed).
pub const REPEATS: usize = 3;
/// Rows of each file: the contract's most.
pub const ROWS: usize = 5_000;
/// API Gateway's HTTP API integration timeout: an answer later than this is a 503 to the
/// client whatever the function does.
pub const GATEWAY_SECS: f64 = 30.0;

/// One import.
pub struct Import {
    /// From the request to the whole answer.
    pub secs: f64,
    /// The answer: status, `created`, number of `failed` rows (or what went wrong).
    pub status: u16,
    pub created: i64,
    pub failed: usize,
    /// The event's confirmed guests afterwards, those with a signed ticket, its seats taken.
    pub guests: i64,
    pub signed: i64,
    pub seats: i64,
    pub cpu: CpuUse,
    pub other_top: String,
}

impl Import {
    pub fn ok(&self) -> bool {
        let n = ROWS as i64;
        self.status == 200
            && self.created == n
            && self.failed == 0
            && self.guests == n
            && self.signed == n
            && self.seats == n
    }

    pub fn rate(&self) -> f64 {
        ROWS as f64 / self.secs
    }
}

/// The imports, in the order they ran.
pub async fn imports(
    s: &Settings,
    http: &reqwest::Client,
    token: &str,
    pg: &tokio_postgres::Client,
    seed: &Seed,
) -> anyhow::Result<Vec<Import>> {
    println!(
        "harness: CSV imports of {ROWS} rows (issue 16; a fresh event and server each, {REPEATS} times)"
    );
    let mut out = Vec::new();
    for (k, (event, tt)) in seed.events("csv-import").into_iter().enumerate() {
        let mut srv = Server::start(s, &format!("import-{}", k + 1), None)?;
        srv.wait_ready(http).await?;
        let api = Api::new(http, &srv.base(), token);
        // One request first: the pool's first connection and the event's tenancy read.
        let (status, _) = api
            .json(reqwest::Method::GET, &format!("/api/events/{event}"), None)
            .await?;
        anyhow::ensure!(status == 200, "GET /api/events/{event} answered {status}");
        let body = csv_file(k);
        let meter = CpuMeter::start(Some(srv.pid()), &s.db, s.clk_tck);
        let t = Instant::now();
        let (status, answer) = api
            .raw(
                reqwest::Method::POST,
                &format!("/api/events/{event}/guests/import?mode=best_effort"),
                "text/csv",
                body,
            )
            .await?;
        let secs = t.elapsed().as_secs_f64();
        let (cpu, other_top) = meter.finish();
        srv.stop();
        drop_pending_jobs(pg).await?;
        let data = &answer["data"];
        let row = pg
            .query_one(
                "SELECT count(*), count(t.qr_payload), (SELECT seats_taken($1, $2))::bigint
                   FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id
                  WHERE g.event_id = $1 AND g.status = 'confirmed'",
                &[&event, &tt],
            )
            .await?;
        let import = Import {
            secs,
            status,
            created: data["created"].as_i64().unwrap_or(-1),
            failed: data["failed"].as_array().map_or(usize::MAX, Vec::len),
            guests: row.get(0),
            signed: row.get(1),
            seats: row.get(2),
            cpu,
            other_top,
        };
        println!(
            "  CSV import of {ROWS} rows (best_effort) #{}: {:>6.2} s = {:>5.0} rows/s; answer {status}, created {}, {} failed; \
             {} guests, {} signed tickets, {} seats{}{}",
            k + 1,
            import.secs,
            import.rate(),
            import.created,
            import.failed,
            import.guests,
            import.signed,
            import.seats,
            if import.ok() {
                ""
            } else {
                "   !!! NOT EVERY ROW IMPORTED !!!"
            },
            interference(&import.cpu, &import.other_top)
        );
        if status != 200 {
            println!("    answer: {answer}");
        }
        out.push(import);
    }
    Ok(out)
}

/// A file of [`ROWS`] guests, distinct emails, all on the ticket type `General` (the seed's).
fn csv_file(k: usize) -> String {
    const FIRST: [&str; 10] = [
        "Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Giulia", "Hugo", "Inès", "Jonas",
    ];
    const LAST: [&str; 10] = [
        "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
        "Moreau",
    ];
    let mut out = String::with_capacity(ROWS * 64);
    out.push_str("firstName,lastName,email,ticketType\n");
    for i in 0..ROWS {
        let _ = writeln!(
            out,
            "{},{},import{k}.guest{i}@bench.example,General",
            FIRST[i % FIRST.len()],
            LAST[(i / FIRST.len()) % LAST.len()]
        );
    }
    out
}
