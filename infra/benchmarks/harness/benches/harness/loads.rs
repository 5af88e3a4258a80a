//! The HTTP loads against the local server: reads (event list, search, detail), validations,
//! entries on a check-in list and offline batch uploads, registrations (a fresh server each),
//! and the cached reads of a second server with Redis.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::driver::{drive, measured, Api, PathFn, Sample};
use crate::procs::Mem;
use crate::report::Results;
use crate::seed::{seats, Seed, BATCH, EXTRA_LIST};
use crate::server::Server;
use crate::settings::Settings;
use crate::ORG;

/// Search terms of the search load, cycled: a topic, a city, an event kind, a venue word, a
/// partial word as typed, and a term that matches nothing (the seed's word lists).
const SEARCH_TERMS: [&str; 6] = [
    "jazz",
    "Lyon",
    "Conference",
    "arena",
    "robot",
    "quantum ballet",
];

/// The paths of the read loads.
pub struct Paths {
    /// Event list: pages 1–10 under 4 sorts.
    pub list: PathFn,
    /// Event search: [`SEARCH_TERMS`], pages 1–3.
    pub search: PathFn,
    /// Event detail: 1 000 events of the organizer.
    pub detail: PathFn,
}

impl Paths {
    pub async fn new(pg: &tokio_postgres::Client) -> anyhow::Result<Paths> {
        let sorts = [
            "eventDate",
            "-createdAt",
            "eventDate&status=upcoming",
            "-eventDate",
        ];
        let list_path = move |i: usize| {
            format!(
                "/api/events?page={}&limit=20&sort={}",
                1 + i % 10,
                sorts[(i / 10) % sorts.len()]
            )
        };
        let ids: Arc<Vec<i64>> = Arc::new(
            pg.query(
                "SELECT id FROM events WHERE organizer_id = $1 ORDER BY md5(id::text) LIMIT 1000",
                &[&ORG],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        );
        Ok(Paths {
            list: Arc::new(list_path),
            search: Arc::new(search_path),
            detail: Arc::new(move |i| format!("/api/events/{}", ids[i % ids.len()])),
        })
    }
}

/// The path of request `i` of the search load.
pub fn search_path(i: usize) -> String {
    let term = SEARCH_TERMS[i % SEARCH_TERMS.len()].replace(' ', "%20");
    format!(
        "/api/events?search={term}&limit=20&page={}",
        1 + (i / SEARCH_TERMS.len()) % 3
    )
}

/// A GET load on `path` (200 expected): warmed up, then measured.
async fn get_load(
    label: &str,
    s: &Settings,
    server: u32,
    api: &Api,
    path: &PathFn,
    clients: usize,
) -> Sample {
    let load = |api: &Api, path: PathFn| {
        let api = api.clone();
        move |i: usize| {
            let (api, p) = (api.clone(), path(i));
            async move { api.expect(reqwest::Method::GET, &p, None, 200).await }
        }
    };
    drive(clients, s.warmup, usize::MAX, load(api, path.clone())).await;
    measured(
        label,
        s,
        server,
        clients,
        usize::MAX,
        load(api, path.clone()),
    )
    .await
}

/// The read loads on server 1 (no Redis), by key: `list1`, `list16`, `search1`, `search16`,
/// `search_admin16`, `detail16`.
pub async fn reads(
    s: &Settings,
    api: &Api,
    admin_api: &Api,
    server: u32,
    paths: &Paths,
) -> BTreeMap<&'static str, Sample> {
    println!(
        "harness: reads (warm-up {} s each, then {} s measured)",
        s.warmup, s.secs
    );
    let mut reads = BTreeMap::new();
    for (key, label, which_api, path, clients) in [
        (
            "list1",
            "event list (organizer, 100k events)",
            api,
            &paths.list,
            1,
        ),
        (
            "list16",
            "event list (organizer, 100k events)",
            api,
            &paths.list,
            16,
        ),
        (
            "search1",
            "event search (organizer, 100k events)",
            api,
            &paths.search,
            1,
        ),
        (
            "search16",
            "event search (organizer, 100k events)",
            api,
            &paths.search,
            16,
        ),
        (
            "search_admin16",
            "event search (admin, all events)",
            admin_api,
            &paths.search,
            16,
        ),
        (
            "detail16",
            "event detail, no REDIS_URL",
            api,
            &paths.detail,
            16,
        ),
    ] {
        reads.insert(
            key,
            get_load(label, s, server, which_api, path, clients).await,
        );
    }
    reads
}

/// Validations of distinct tickets on server 1, by number of clients (16, 64).
pub async fn validations(
    s: &Settings,
    api: &Api,
    server: u32,
    seed: &Seed,
    res: &mut Results,
) -> BTreeMap<usize, Sample> {
    println!("harness: validations");
    let validate = |api: &Api, first: i64| {
        let api = api.clone();
        move |i: usize| validate_one(api.clone(), first, i)
    };
    let http_pool = seed.http_pool;
    drive(
        16,
        s.warmup,
        5_000,
        validate(api, seed.pools["val-warmup"].1),
    )
    .await;
    let mut vals = BTreeMap::new();
    for (clients, pool) in [(16, "val-http-16"), (64, "val-http-64")] {
        let sample = measured(
            "validations (distinct tickets)",
            s,
            server,
            clients,
            http_pool,
            validate(api, seed.pools[pool].1),
        )
        .await;
        if sample.ok + sample.error_count() >= http_pool {
            res.notes.push(format!("validations at {clients} clients used the whole pool of {http_pool} tickets before the time was up: the run was shorter"));
        }
        vals.insert(clients, sample);
    }
    vals
}

/// Request `i` of a validation load: ticket `first + i` validated (part 1's endpoint), 200.
pub async fn validate_one(api: Api, first: i64, i: usize) -> Result<(), String> {
    let body = json!({"scannerId": format!("scanner-{}", i % 8), "location": "Entrance A"});
    api.expect(
        reqwest::Method::POST,
        &format!("/api/tickets/{}/validate", first + i as i64),
        Some(&body),
        200,
    )
    .await
}

/// Entries on a check-in list that is not the event's default one (issue 15), each a different
/// ticket, on server 1, by number of clients (16, 64): `POST /api/checkin-lists/{id}/scans`.
/// Afterwards the list's scan log must hold exactly one accepted entry per 200.
pub async fn list_entries(
    s: &Settings,
    api: &Api,
    server: u32,
    pg: &tokio_postgres::Client,
    seed: &Seed,
    res: &mut Results,
) -> anyhow::Result<BTreeMap<usize, Sample>> {
    println!("harness: entries on a check-in list (not the default list)");
    let scan = |api: &Api, list: i64, first: i64| {
        let api = api.clone();
        move |i: usize| {
            let api = api.clone();
            async move {
                let body = json!({"ticketId": first + i as i64, "scannerId": format!("scanner-{}", i % 8),
                                  "location": EXTRA_LIST, "type": "entry"});
                api.expect(
                    reqwest::Method::POST,
                    &format!("/api/checkin-lists/{list}/scans"),
                    Some(&body),
                    200,
                )
                .await
            }
        }
    };
    let http_pool = seed.http_pool;
    drive(
        16,
        s.warmup,
        5_000,
        scan(api, seed.lists["list-warmup"], seed.pools["list-warmup"].1),
    )
    .await;
    let mut out = BTreeMap::new();
    for (clients, pool) in [(16, "list-16"), (64, "list-64")] {
        let list = seed.lists[pool];
        let sample = measured(
            "entries on a check-in list (distinct tickets)",
            s,
            server,
            clients,
            http_pool,
            scan(api, list, seed.pools[pool].1),
        )
        .await;
        if sample.ok + sample.error_count() >= http_pool {
            res.notes.push(format!("entries on a check-in list at {clients} clients used the whole pool of {http_pool} tickets before the time was up: the run was shorter"));
        }
        let (accepted, scans) = list_scans(pg, list).await?;
        if accepted != sample.ok as i64 || scans != accepted {
            res.notes.push(format!(
                "**entries on a check-in list at {clients} clients: {} answers 200, but the list's scan log holds {accepted} accepted of {scans} scans**",
                sample.ok
            ));
        }
        out.insert(clients, sample);
    }
    Ok(out)
}

/// Offline uploads (issue 15): `uploaders` clients each posting batches of [`BATCH`] entries of
/// distinct tickets (`POST /api/checkin-lists/{id}/scans/batch`), by number of uploaders (4, 8).
/// A sample counts uploads (rate: uploads per second; p50/p99: per upload). Afterwards every scan
/// of every 200 must be an accepted entry and every guest checked in.
pub async fn batch_uploads(
    s: &Settings,
    api: &Api,
    server: u32,
    pg: &tokio_postgres::Client,
    seed: &Seed,
    res: &mut Results,
) -> anyhow::Result<BTreeMap<usize, Sample>> {
    println!("harness: offline uploads of {BATCH} entries");
    // Scanned in the last 10 minutes (the contract takes up to 7 days), one per millisecond.
    let since = chrono::Utc::now() - chrono::Duration::minutes(10);
    let upload = |api: &Api, list: i64, first: i64| {
        let api = api.clone();
        move |i: usize| {
            let api = api.clone();
            let lo = first + (i * BATCH) as i64;
            let scans: Vec<Value> = (0..BATCH as i64)
                .map(|k| {
                    let at = since + chrono::Duration::milliseconds(k);
                    json!({"clientScanId": client_scan_id(lo + k), "ticketId": lo + k,
                           "scannerId": format!("device-{}", i % 8), "location": EXTRA_LIST, "type": "entry",
                           "scannedAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)})
                })
                .collect();
            async move {
                api.expect(
                    reqwest::Method::POST,
                    &format!("/api/checkin-lists/{list}/scans/batch"),
                    Some(&json!({ "scans": scans })),
                    200,
                )
                .await
            }
        }
    };
    let per_pool = seed.batch_http_pool / BATCH;
    drive(
        4,
        s.warmup,
        20,
        upload(
            api,
            seed.lists["batch-warmup"],
            seed.pools["batch-warmup"].1,
        ),
    )
    .await;
    let mut out = BTreeMap::new();
    for (uploaders, pool) in [(4, "batch-http-4"), (8, "batch-http-8")] {
        let list = seed.lists[pool];
        let sample = measured(
            &format!("offline uploads of {BATCH} entries"),
            s,
            server,
            uploaders,
            per_pool,
            upload(api, list, seed.pools[pool].1),
        )
        .await;
        println!("    = {:.0} scans/s", sample.rate * BATCH as f64);
        if sample.ok + sample.error_count() >= per_pool {
            res.notes.push(format!(
                "offline uploads at {uploaders} uploaders used the whole pool of {} tickets in {:.1} s of the {} s: the rate is over that shorter time",
                seed.batch_http_pool,
                sample.ok as f64 / sample.rate.max(1e-9),
                s.secs
            ));
        }
        let (accepted, scans) = list_scans(pg, list).await?;
        let checked_in: i64 = pg
            .query_one(
                &format!(
                    "SELECT count(*) FROM guests g JOIN tickets t ON t.guest_id = g.id WHERE g.event_id = $1 AND {}",
                    domain::guests::model::GUEST_CHECKED_IN
                ),
                &[&seed.pools[pool].0],
            )
            .await?
            .get(0);
        let want = (sample.ok * BATCH) as i64;
        if accepted != want || scans != want || checked_in != want {
            res.notes.push(format!(
                "**offline uploads at {uploaders} uploaders: {} uploads answered 200 ({want} scans), but the list's scan log holds \
                 {accepted} accepted of {scans} scans and {checked_in} guests are checked in**",
                sample.ok
            ));
        }
        out.insert(uploaders, sample);
    }
    Ok(out)
}

/// The offline scan id of a ticket's entry (distinct per ticket; the pgbench script's too).
fn client_scan_id(ticket: i64) -> String {
    format!("00000000-0000-4000-8000-{ticket:012x}")
}

/// (accepted, all) scans in a list's scan log.
pub async fn list_scans(pg: &tokio_postgres::Client, list: i64) -> anyhow::Result<(i64, i64)> {
    let row = pg
        .query_one(
            "SELECT count(*) FILTER (WHERE result = 'accepted' AND direction = 'entry'), count(*) FROM ticket_scans WHERE list_id = $1",
            &[&list],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// The requests of a registration load: request `i` registers `{run}-{i}@bench.example` on
/// target `i % targets.len()` (event id, ticket type id), 201.
pub fn register(
    api: &Api,
    targets: Vec<(i64, i64)>,
    run: String,
) -> impl Fn(usize) -> RegisterOne + Send + Sync + 'static {
    let api = api.clone();
    let targets = Arc::new(targets);
    let run: Arc<str> = run.into();
    move |i: usize| {
        let (event, tt) = targets[i % targets.len()];
        register_one(api.clone(), event, tt, run.clone(), i)
    }
}

/// The future of one registration of [`register`].
pub type RegisterOne =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

fn register_one(api: Api, event: i64, tt: i64, run: Arc<str>, i: usize) -> RegisterOne {
    Box::pin(async move {
        let body = json!({"firstName": "Bench", "lastName": format!("Guest {i}"),
                          "email": format!("{run}-{i}@bench.example"), "ticketTypeId": tt});
        api.expect(
            reqwest::Method::POST,
            &format!("/api/events/{event}/guests"),
            Some(&body),
            201,
        )
        .await
    })
}

/// One registration load: its sample, whether the seat counts are exact, and the counts.
pub type Registration = (Sample, bool, String);

/// The registration loads, by key (`hot16`, `hot64`, `spread16`, `spread64`), and the largest
/// memory of their servers.
///
/// A fresh server per load. The local server runs the job workers in-process, and each
/// registration queues a QR code rendering that they cannot keep up with: a fresh process per
/// load keeps one load's backlog out of the next one.
pub async fn registrations(
    s: &Settings,
    http: &reqwest::Client,
    token: &str,
    pg: &tokio_postgres::Client,
    seed: &Seed,
    res: &mut Results,
) -> anyhow::Result<(BTreeMap<&'static str, Registration>, Mem)> {
    println!("harness: registrations (a fresh server for each load)");
    let warmup = seed.events("reg-warmup");
    let mut regs = BTreeMap::new();
    let mut reg_hwm = Mem::default();
    for (key, label, clients, events) in [
        (
            "hot16",
            "registrations, one hot ticket type",
            16,
            "reg-hot-16",
        ),
        (
            "hot64",
            "registrations, one hot ticket type",
            64,
            "reg-hot-64",
        ),
        (
            "spread16",
            "registrations, spread over 50 events",
            16,
            "reg-spread-16",
        ),
        (
            "spread64",
            "registrations, spread over 50 events",
            64,
            "reg-spread-64",
        ),
    ] {
        let targets = seed.events(events);
        let mut srv = Server::start(s, &format!("reg-{key}"), None)?;
        srv.wait_ready(http).await?;
        let reg_api = Api::new(http, &srv.base(), token);
        drive(
            16,
            s.warmup,
            usize::MAX,
            register(&reg_api, warmup.clone(), format!("warmup-{key}")),
        )
        .await;
        let sample = measured(
            label,
            s,
            srv.pid(),
            clients,
            usize::MAX,
            register(&reg_api, targets.clone(), key.to_owned()),
        )
        .await;
        let ids: Vec<i64> = targets.iter().map(|t| t.0).collect();
        let qr = pg
            .query_one(
                "SELECT count(*) FILTER (WHERE qr_code_data IS NULL), count(*) FROM tickets WHERE event_id = ANY($1)",
                &[&ids],
            )
            .await?;
        let (no_qr, tickets): (i64, i64) = (qr.get(0), qr.get(1));
        let m = srv.mem();
        reg_hwm.hwm_kb = reg_hwm.hwm_kb.max(m.hwm_kb);
        reg_hwm.rss_kb = reg_hwm.rss_kb.max(m.rss_kb);
        srv.stop();
        let (sold, registered, guests) = seats(pg, &targets).await?;
        let exact = sold == guests && registered == guests && guests == sample.ok as i64;
        let text = format!(
            "sold {sold} = registered {registered} = guests {guests} = 201s {}",
            sample.ok
        );
        println!(
            "    seats: {text}{}",
            if exact {
                ""
            } else {
                "   !!! SEAT COUNTS DRIFTED !!!"
            }
        );
        println!("    in-process workers: {no_qr} of {tickets} tickets still without a QR code at the end of the load");
        res.notes.push(format!(
            "{label} at {clients} clients: at the end of the load {no_qr} of {tickets} tickets had no QR code yet \
             (the in-process workers of the local server fell behind; their work overlaps the load and is in its server CPU)"
        ));
        regs.insert(key, (sample, exact, text));
    }
    Ok((regs, reg_hwm))
}

/// Marks the jobs the loads wrote and no server ran as dispatched, and settles the webhook
/// deliveries still pending (their own outbox, migrations/V20), so that the next server starts
/// idle (its relay would otherwise run a previous load's backlog during its load). Returns how
/// many there were.
pub async fn drop_pending_jobs(pg: &tokio_postgres::Client) -> anyhow::Result<u64> {
    let jobs = pg
        .execute(
            "UPDATE job_outbox SET dispatched_at = now() WHERE dispatched_at IS NULL",
            &[],
        )
        .await?;
    let deliveries = pg
        .execute(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
                    last_error = 'left by a benchmark load'
              WHERE status = 'pending'",
            &[],
        )
        .await?;
    Ok(jobs + deliveries)
}

/// What server 2 (with `REDIS_URL`) measured.
pub struct Cached {
    pub detail: Sample,
    pub search: Sample,
    /// `/health/ready`'s view of Redis.
    pub redis_ready: Value,
    /// The server's memory after the cached loads.
    pub mem: Mem,
}

/// Server 2, the same server with the Redis cache: event detail and search.
pub async fn cached(
    s: &Settings,
    http: &reqwest::Client,
    token: &str,
    pg: &tokio_postgres::Client,
    paths: &Paths,
) -> anyhow::Result<Cached> {
    // The jobs the loads wrote and nobody ran: server 2 must start idle.
    let dropped = drop_pending_jobs(pg).await?;
    println!("  ({dropped} undispatched jobs and pending webhook deliveries of the loads settled, so the next server starts idle)");

    println!("harness: the same server with REDIS_URL={}", s.redis_url);
    let mut server2 = Server::start(s, "2-redis", Some(&s.redis_url))?;
    server2.wait_ready(http).await?;
    let pid2 = server2.pid();
    let api2 = Api::new(http, &server2.base(), token);
    let ready = api2
        .json(reqwest::Method::GET, "/health/ready", None)
        .await?
        .1;
    // Flat, as the contract says (no envelope).
    let redis_ready = ready["dependencies"]["redis"].clone();
    let detail = get_load(
        "event detail, REDIS_URL set",
        s,
        pid2,
        &api2,
        &paths.detail,
        16,
    )
    .await;
    let search = get_load(
        "event search, REDIS_URL set",
        s,
        pid2,
        &api2,
        &paths.search,
        16,
    )
    .await;
    let mem = server2.mem();
    server2.stop();
    Ok(Cached {
        detail,
        search,
        redis_ready,
        mem,
    })
}
