//! Issue 16: "registration throughput on a hot ticket type unchanged within noise with the
//! waiting list enabled". The `hot16` registration load (one hot ticket type, 16 clients, a
//! fresh server) on events that also have a sold-out ticket type, with the waiting list off,
//! then on (`waitlistEnabled` set through `PATCH /api/events/{id}` and [`WAITING`] entries
//! waiting on the sold-out type, joined through `POST /api/events/{id}/waitlist`: the event's
//! `waitlists` row and its `waitlist_entries` exist), alternated twice in the same run (off,
//! on, off, on) so that the run-to-run spread shows beside the difference.

use anyhow::{bail, Context};
use serde_json::json;

use crate::driver::{drive, measured, Api};
use crate::loads::{drop_pending_jobs, register, Registration};
use crate::seed::Seed;
use crate::server::Server;
use crate::settings::Settings;

/// Seats of the second ticket type, sold out through the API before each load.
pub const SOLD_OUT: usize = 5;
/// Entries waiting on the sold-out ticket type when the waiting list is on.
pub const WAITING: usize = 20;
/// Clients of each load (as `hot16`).
pub const CLIENTS: usize = 16;

/// One load: whether the waiting list was on, and the registration load (its sample, whether
/// every count is exact, and the counts).
pub struct Run {
    pub on: bool,
    pub reg: Registration,
}

/// The four loads, in the order they ran: off, on, off, on.
pub async fn registrations(
    s: &Settings,
    http: &reqwest::Client,
    token: &str,
    pg: &tokio_postgres::Client,
    seed: &Seed,
) -> anyhow::Result<Vec<Run>> {
    println!(
        "harness: registrations on a hot ticket type, waiting list off and on (issue 16; a fresh server each)"
    );
    let warmup = seed.events("reg-warmup");
    let mut runs = Vec::new();
    for (label, on) in [
        ("wl-off-1", false),
        ("wl-on-1", true),
        ("wl-off-2", false),
        ("wl-on-2", true),
    ] {
        let (event, hot) = seed.events(label)[0];
        // The second ticket type of the event: the one the waiting list's entries wait for.
        let sold_out: i64 = pg
            .query_one(
                "INSERT INTO ticket_types (event_id, name, price_cents, quantity) VALUES ($1, 'Sold out', 9900, $2) RETURNING id",
                &[&event, &(SOLD_OUT as i32)],
            )
            .await?
            .get(0);
        let mut srv = Server::start(s, label, None)?;
        srv.wait_ready(http).await?;
        let api = Api::new(http, &srv.base(), token);
        prepare(&api, pg, label, event, sold_out, on).await?;
        drive(
            16,
            s.warmup,
            usize::MAX,
            register(&api, warmup.clone(), format!("warmup-{label}")),
        )
        .await;
        let sample = measured(
            &format!(
                "registrations, hot type, waiting list {}",
                if on { "on" } else { "off" }
            ),
            s,
            srv.pid(),
            CLIENTS,
            usize::MAX,
            register(&api, vec![(event, hot)], label.to_owned()),
        )
        .await;
        srv.stop();
        drop_pending_jobs(pg).await?;
        let (exact, text) = check(pg, (event, hot, sold_out), on, sample.ok).await?;
        println!(
            "    {text}{}",
            if exact {
                ""
            } else {
                "   !!! COUNTS DRIFTED !!!"
            }
        );
        runs.push(Run {
            on,
            reg: (sample, exact, text),
        });
    }
    Ok(runs)
}

/// Through the API of the load's server: the second ticket type sold out (a registration
/// more answers SOLD_OUT) and, when `on`, the waiting list enabled with [`WAITING`] entries
/// on that type, each answered `waiting`. Then checked in the database.
async fn prepare(
    api: &Api,
    pg: &tokio_postgres::Client,
    label: &str,
    event: i64,
    sold_out: i64,
    on: bool,
) -> anyhow::Result<()> {
    let guests = format!("/api/events/{event}/guests");
    let person = |kind: &str, k: usize| {
        json!({"firstName": kind, "lastName": format!("Person {k}"),
               "email": format!("{label}-{}-{k}@bench.example", kind.to_lowercase()), "ticketTypeId": sold_out})
    };
    for k in 0..SOLD_OUT {
        api.expect(
            reqwest::Method::POST,
            &guests,
            Some(&person("Early", k)),
            201,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{label}: registration on the small ticket type: {e}"))?;
    }
    api.expect(
        reqwest::Method::POST,
        &guests,
        Some(&person("Late", 0)),
        409,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{label}: the small ticket type should be sold out: {e}"))?;
    if on {
        api.expect(
            reqwest::Method::PATCH,
            &format!("/api/events/{event}"),
            Some(&json!({"waitlistEnabled": true})),
            200,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{label}: PATCH waitlistEnabled: {e}"))?;
        for k in 0..WAITING {
            let (status, body) = api
                .json(
                    reqwest::Method::POST,
                    &format!("/api/events/{event}/waitlist"),
                    Some(&person("Waiting", k)),
                )
                .await?;
            let entry_status = body["data"]["status"].as_str().unwrap_or_default();
            if status != 201 || entry_status != "waiting" {
                bail!("{label}: joining the waiting list answered {status} {body}");
            }
        }
    }
    let row = pg
        .query_one(
            "SELECT e.waitlist_enabled,
                    (SELECT last_position FROM waitlists WHERE event_id = e.id),
                    (SELECT count(*) FROM waitlist_entries WHERE event_id = e.id AND status = 'waiting')
               FROM events e WHERE e.id = $1",
            &[&event],
        )
        .await
        .context("the waiting list's state")?;
    let (enabled, last, waiting): (bool, Option<i64>, i64) = (row.get(0), row.get(1), row.get(2));
    let want = if on {
        (true, Some(WAITING as i64), WAITING as i64)
    } else {
        (false, None, 0)
    };
    if (enabled, last, waiting) != want {
        bail!(
            "{label}: waiting list enabled {enabled}, last position {last:?}, {waiting} waiting; expected {want:?}"
        );
    }
    Ok(())
}

/// After a load: the hot type's seats = its guests = the 201s, the sold-out type still holds
/// exactly its [`SOLD_OUT`] seats, the event's seats = its guests, and the waiting list as it
/// was (registrations never touch it: no entry offered, none gone).
async fn check(
    pg: &tokio_postgres::Client,
    (event, hot, sold_out): (i64, i64, i64),
    on: bool,
    ok: usize,
) -> anyhow::Result<(bool, String)> {
    let r = pg
        .query_one(
            "SELECT seats_taken($1, $2), seats_taken($1, $3), seats_taken($1, NULL),
                    (SELECT count(*) FROM guests WHERE event_id = $1 AND ticket_type_id = $2 AND status <> 'cancelled'),
                    (SELECT count(*) FROM guests WHERE event_id = $1 AND status <> 'cancelled'),
                    (SELECT count(*) FROM waitlist_entries WHERE event_id = $1 AND status = 'waiting'),
                    (SELECT count(*) FROM waitlist_entries WHERE event_id = $1 AND status <> 'waiting')",
            &[&event, &hot, &sold_out],
        )
        .await?;
    let (hot_sold, small_sold, event_sold): (i32, i32, i32) = (r.get(0), r.get(1), r.get(2));
    let (hot_guests, guests, waiting, moved): (i64, i64, i64, i64) =
        (r.get(3), r.get(4), r.get(5), r.get(6));
    let want_waiting = if on { WAITING as i64 } else { 0 };
    let exact = i64::from(hot_sold) == hot_guests
        && hot_guests == ok as i64
        && small_sold as usize == SOLD_OUT
        && i64::from(event_sold) == guests
        && guests == (ok + SOLD_OUT) as i64
        && waiting == want_waiting
        && moved == 0;
    Ok((
        exact,
        format!(
            "hot type: sold {hot_sold} = guests {hot_guests} = 201s {ok}; sold-out type {small_sold} of {SOLD_OUT}; \
             event {event_sold} = guests {guests}; waiting entries {waiting} of {want_waiting}, {moved} offered or gone"
        ),
    ))
}
