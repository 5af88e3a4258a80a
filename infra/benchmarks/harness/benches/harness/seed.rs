//! The data set, written by PostgreSQL itself (`INSERT … SELECT generate_series`): the events
//! the reads list and search, and the events and ticket pools each write load uses alone.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::report::Results;
use crate::settings::Settings;
use crate::ORG;

/// Ticket pools (confirmed guests with active tickets, consecutive ticket ids): label and size.
/// Each pool's event also gets a check-in list besides its default one ([`EXTRA_LIST`]).
const POOLS: [(&str, PoolSize); 30] = [
    ("val-warmup", PoolSize::Fixed(5_000)),
    ("val-http-16", PoolSize::Http),
    ("val-http-64", PoolSize::Http),
    ("val-pg-16", PoolSize::Pgbench),
    ("val-pg-64", PoolSize::Pgbench),
    ("val-pg1-64", PoolSize::Pgbench),
    ("val-lambda", PoolSize::Fixed(100)),
    // Entries on a check-in list (issue 15): the HTTP load takes the first `http_pool` tickets,
    // pgbench running the same statement the next `pg_pool`, on the same list.
    ("list-warmup", PoolSize::Fixed(5_000)),
    ("list-16", PoolSize::List),
    ("list-64", PoolSize::List),
    // Offline batches of BATCH scans: one pool per upload load and per pgbench run.
    ("batch-warmup", PoolSize::Fixed(20 * BATCH)),
    ("batch-http-4", PoolSize::BatchHttp),
    ("batch-http-8", PoolSize::BatchHttp),
    ("batch-pg-4", PoolSize::BatchPgbench),
    ("batch-pg-8", PoolSize::BatchPgbench),
    // Validations plain and with idempotency keys + webhooks (issue 17), four times each
    // (integrations::LOADS), then with the keys only, then with the webhooks delivered in
    // process, a fresh server each: the warm-up of server k takes tickets k × 5 000 onwards of
    // the warm-up pool.
    (
        "i17-val-warmup",
        PoolSize::Fixed(crate::integrations::LOADS.len() * 5_000),
    ),
    ("i17-val-off-1", PoolSize::Http),
    ("i17-val-on-1", PoolSize::Http),
    ("i17-val-on-2", PoolSize::Http),
    ("i17-val-off-2", PoolSize::Http),
    ("i17-val-off-3", PoolSize::Http),
    ("i17-val-on-3", PoolSize::Http),
    ("i17-val-on-4", PoolSize::Http),
    ("i17-val-off-4", PoolSize::Http),
    ("i17-val-keys", PoolSize::Http),
    ("i17-val-inproc", PoolSize::Http),
    // pgbench of the validation statement plain and keyed with a webhook (issue 17), in the
    // order of I17_PGBENCH_POOLS.
    (I17_PGBENCH_POOLS[0], PoolSize::PgbenchEntries),
    (I17_PGBENCH_POOLS[1], PoolSize::PgbenchEntries),
    (I17_PGBENCH_POOLS[2], PoolSize::PgbenchEntries),
    (I17_PGBENCH_POOLS[3], PoolSize::PgbenchEntries),
];

/// The pools of `pgbench::integrations`, in the order it runs them: plain, keyed, keyed, plain
/// (a drift falls on both alike, as in `integrations::LOADS`).
pub const I17_PGBENCH_POOLS: [&str; 4] = [
    "i17-pg-plain-1",
    "i17-pg-keyed-1",
    "i17-pg-keyed-2",
    "i17-pg-plain-2",
];

/// Scans per offline upload (the contract's largest batch).
pub const BATCH: usize = 500;

/// The largest pool: an event seats at most 100 000 (the schema's bound), every pool guest
/// holds a seat.
const MAX_POOL: usize = 100_000;

/// The check-in list every pool's event gets besides its default list: it admits the pool's
/// ticket type (named, as a gate for some ticket types is), once per ticket.
pub const EXTRA_LIST: &str = "North gate";

/// Events of the write loads, each used by one load only: label and number of events.
const LOAD_EVENTS: [(&str, usize); 29] = [
    ("reg-warmup", 1),
    ("reg-hot-16", 1),
    ("reg-hot-64", 1),
    ("reg-spread-16", 50),
    ("reg-spread-64", 50),
    ("pg-naive-16", 1),
    ("pg-naive-64", 1),
    ("pg-hot-16", 1),
    ("pg-hot-64", 1),
    ("pg-spread-16", 50),
    ("pg-spread-64", 50),
    ("pg-last-16", 1),
    ("pg-last-64", 1),
    ("lambda", 1),
    // Registrations with the waiting list off and on (issue 16), alternated twice.
    ("wl-off-1", 1),
    ("wl-on-1", 1),
    ("wl-off-2", 1),
    ("wl-on-2", 1),
    // CSV imports of 5 000 rows (issue 16), a fresh event each.
    ("csv-import", crate::import::REPEATS),
    // Registrations plain and with idempotency keys + webhooks (issue 17), four times each
    // (integrations::LOADS), then with the keys only, then with the webhooks delivered in process.
    ("i17-reg-off-1", 1),
    ("i17-reg-on-1", 1),
    ("i17-reg-on-2", 1),
    ("i17-reg-off-2", 1),
    ("i17-reg-off-3", 1),
    ("i17-reg-on-3", 1),
    ("i17-reg-on-4", 1),
    ("i17-reg-off-4", 1),
    ("i17-reg-keys", 1),
    ("i17-reg-inproc", 1),
];

#[derive(Clone, Copy)]
enum PoolSize {
    Fixed(usize),
    /// Enough for an HTTP validation load at the fastest plausible rate.
    Http,
    /// Enough for a pgbench validation run at the fastest plausible rate.
    Pgbench,
    /// Enough for a pgbench run of the service's validation statement (slower than
    /// validation.sql's: fewer tickets, less to seed).
    PgbenchEntries,
    /// An HTTP load and a pgbench run of entries on a check-in list.
    List,
    /// An offline upload load at the fastest plausible rate.
    BatchHttp,
    /// A pgbench run of offline uploads (it uploads its whole pool).
    BatchPgbench,
}

/// What the seed made, by label.
pub struct Seed {
    /// Tickets of each HTTP validation pool.
    pub http_pool: usize,
    /// Tickets of each pgbench validation pool.
    pub pg_pool: usize,
    /// Tickets of each list pool left to pgbench after the HTTP load's `http_pool`.
    pub list_pg_pool: usize,
    /// Tickets of each offline upload pool of the HTTP loads (a multiple of [`BATCH`]).
    pub batch_http_pool: usize,
    /// Tickets of each offline upload pool of pgbench (a multiple of [`BATCH`]).
    pub batch_pg_pool: usize,
    /// (event id, first ticket id) of each ticket pool.
    pub pools: BTreeMap<&'static str, (i64, i64)>,
    /// The [`EXTRA_LIST`] of each ticket pool's event.
    pub lists: BTreeMap<&'static str, i64>,
    /// (event id, ticket type id) of each load's events, in id order.
    events: BTreeMap<&'static str, Vec<(i64, i64)>>,
}

impl Seed {
    /// The events of load `label` (one of [`LOAD_EVENTS`]).
    pub fn events(&self, label: &str) -> Vec<(i64, i64)> {
        self.events[label].clone()
    }
}

/// Seeds the whole data set, then `VACUUM ANALYZE`; records its size and time in `res`.
pub async fn seed(
    s: &Settings,
    pg: &tokio_postgres::Client,
    res: &mut Results,
) -> anyhow::Result<Seed> {
    println!(
        "harness: seeding {} events of {ORG} + 10 000 of other organizers...",
        s.events
    );
    let t = Instant::now();
    seed_events(pg, s.events).await?;
    let secs = s.secs.max(1.0);
    // Pools sized for the fastest rate plausible on this machine (a pgbench client that runs
    // out of tickets aborts, which the run reports).
    let http_pool = ((4_000.0 * (secs + s.warmup)) as usize).min(100_000);
    let pg_pool = ((7_000.0 * s.pg_secs as f64) as usize).min(100_000);
    // Offline uploads over HTTP: 25 000 scans/s, at most one full event (a load that empties
    // its pool ends early; its rate stays right, over a shorter time). pgbench uploads its whole
    // pool (-t): 15 000 scans/s for BENCH_PGBENCH_SECS, at most one full event.
    let most = MAX_POOL / BATCH;
    let batch_http_pool = ((25_000.0 * secs) as usize / BATCH).clamp(20, most) * BATCH;
    let batch_pg_pool = ((15_000.0 * s.pg_secs as f64) as usize / BATCH).clamp(20, most) * BATCH;
    // A list pool holds the HTTP load's tickets, then pgbench's (what is left of one event).
    let list_pg_pool = pg_pool.min(MAX_POOL.saturating_sub(http_pool));
    // The tickets of issue 17's pools carry what every ticket carries once its generation job
    // ran: a signed QR payload and its QR image (a base64 PNG of a few KB, stored out of line),
    // which every check-in answer includes. One payload and one image for all (their size is
    // what costs): a keyed check-in's stored answer must not copy the image. Signed with the
    // benchmark server's own key, as its tickets are.
    let keys = domain::tickets::signing::TicketKeys::from_seed_base64(
        &crate::settings::signing_key(),
        &[],
    )?;
    let payload = keys.sign(1, 1, "TC-2027-0000000001");
    let image = domain::tickets::qr::png_base64(&payload)?;
    let mut imaged = 0;
    let mut pools = BTreeMap::new();
    let mut lists = BTreeMap::new();
    for (label, size) in POOLS {
        let n = match size {
            PoolSize::Fixed(n) => n,
            PoolSize::Http => http_pool,
            PoolSize::Pgbench => pg_pool,
            PoolSize::PgbenchEntries => ((4_000.0 * s.pg_secs as f64) as usize).min(MAX_POOL),
            PoolSize::List => http_pool + list_pg_pool,
            PoolSize::BatchHttp => batch_http_pool,
            PoolSize::BatchPgbench => batch_pg_pool,
        };
        let qr = label
            .starts_with("i17-")
            .then_some((payload.as_str(), image.as_str()));
        imaged += if qr.is_some() { n } else { 0 };
        let (pool, list) = ticket_pool(pg, label, n, qr).await?;
        pools.insert(label, pool);
        lists.insert(label, list);
    }
    let mut events = BTreeMap::new();
    for (label, n) in LOAD_EVENTS {
        events.insert(label, load_events(pg, label, n).await?);
    }
    pg.batch_execute("VACUUM ANALYZE").await?;
    res.seed_secs = t.elapsed().as_secs_f64();
    let counts = pg
        .query_one(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM events WHERE organizer_id = $1),
                    (SELECT count(*) FROM ticket_types), (SELECT count(*) FROM guests), (SELECT count(*) FROM tickets)",
            &[&ORG],
        )
        .await?;
    let (n_events, n_org, n_tt, n_guests, n_tickets): (i64, i64, i64, i64, i64) = (
        counts.get(0),
        counts.get(1),
        counts.get(2),
        counts.get(3),
        counts.get(4),
    );
    res.seed_rows = format!(
        "{n_events} events ({n_org} of the organizer the loads use; titles, locations, dates over 3 years and statuses varied), \
         {n_tt} ticket types, {n_guests} guests with {n_tickets} tickets; the {imaged} tickets of issue 17's pools \
         carry a signed QR payload ({} characters) and its QR image ({} bytes of base64 PNG), as every ticket does once generated",
        payload.len(),
        image.len()
    );
    println!("  {} in {:.1} s", res.seed_rows, res.seed_secs);
    Ok(Seed {
        http_pool,
        pg_pool,
        list_pg_pool,
        batch_http_pool,
        batch_pg_pool,
        pools,
        lists,
        events,
    })
}

/// The data set: `events` events of [`ORG`] plus 10 000 of nine other organizers, with
/// varied titles, locations, dates and statuses, and one or two ticket types each.
/// Deterministic (setseed), built in a few seconds by PostgreSQL itself.
async fn seed_events(pg: &tokio_postgres::Client, events: usize) -> anyhow::Result<()> {
    let total = events + 10_000;
    let sql = format!(
        "SELECT setseed(0.42);
INSERT INTO events (organizer_id, title, description, event_date, location, max_attendees, status,
                    requires_approval, created_at, updated_at)
SELECT org, title, descr, d,
       city || ', ' || venue,
       maxa,
       CASE WHEN d < now() THEN (CASE WHEN r < 0.6 THEN 'completed' WHEN r < 0.9 THEN 'published' ELSE 'cancelled' END)
            ELSE (CASE WHEN r < 0.75 THEN 'published' WHEN r < 0.95 THEN 'draft' ELSE 'cancelled' END) END,
       r2 < 0.1, c, c
  FROM (SELECT g,
               CASE WHEN g <= {events} THEN '{ORG}' ELSE 'org-' || (1 + g % 9) END AS org,
               adj || ' ' || topic || ' ' || kind || ' ' || extract(year FROM d)::int
                 || CASE WHEN g % 7 = 0 THEN ' - Day ' || (1 + g % 3) ELSE '' END AS title,
               CASE WHEN g % 4 = 0 THEN NULL
                    ELSE 'About ' || topic || ': talks, workshops and a ' || lower(kind) || ' for everyone.' END AS descr,
               d, city, venue, maxa, r, r2,
               least(d, now()) - random() * interval '365 days' AS c
          FROM (SELECT g,
                       (ARRAY['Annual','International','Regional','Spring','Autumn','Winter','Summer','Community',
                              'Open','Global','Local','Advanced','Beginners','Night','Weekend'])[1 + floor(random() * 15)::int] AS adj,
                       (ARRAY['Rust','Jazz','Data','Cloud','Design','Marketing','Startup','Wine','Film','Robotics',
                              'Photography','Yoga','Chess','Blockchain','Security','Gaming','Poetry','Cooking',
                              'Climate','Music'])[1 + floor(random() * 20)::int] AS topic,
                       (ARRAY['Conference','Meetup','Festival','Workshop','Summit','Concert','Hackathon','Fair',
                              'Gala','Seminar','Expo','Retreat'])[1 + floor(random() * 12)::int] AS kind,
                       (ARRAY['Paris','Lyon','Marseille','Toulouse','Nice','Nantes','Strasbourg','Montpellier',
                              'Bordeaux','Lille','Rennes','Reims','Grenoble','Dijon','Angers','Brest','Berlin',
                              'Munich','Hamburg','Madrid','Barcelona','Valencia','Lisbon','Porto','Rome','Milan',
                              'Turin','Vienna','Zurich','Geneva','Brussels','Antwerp','Amsterdam','Rotterdam',
                              'London','Manchester','Dublin','Copenhagen','Oslo','Stockholm'])[1 + floor(random() * 40)::int] AS city,
                       (ARRAY['Convention Center','Arena','Town Hall','Expo Park','Opera House','University Campus',
                              'Old Harbour','Tech Hub','Riverside Hall','Grand Hotel'])[1 + floor(random() * 10)::int] AS venue,
                       (ARRAY[50, 100, 200, 500, 1000, 5000])[1 + floor(random() * 6)::int] AS maxa,
                       now() - interval '365 days' + random() * interval '1095 days' AS d,
                       random() AS r, random() AS r2
                  FROM generate_series(1, {total}) g) raw) s;
INSERT INTO ticket_types (event_id, name, price_cents, quantity)
SELECT id, 'General', (ARRAY[0, 1000, 2500, 4900])[1 + id % 4], max_attendees FROM events ORDER BY id;
INSERT INTO ticket_types (event_id, name, price_cents, quantity)
SELECT id, 'VIP', 9900 + (id % 5) * 5000, greatest(1, max_attendees / 10) FROM events WHERE id % 3 = 0 ORDER BY id;"
    );
    pg.batch_execute(&sql).await.context("seeding events")?;
    Ok(())
}

/// `n` published future events of [`ORG`] with one ticket type each (100 000 seats), with
/// consecutive ids (checked): `(event id, ticket type id)` in id order.
async fn load_events(
    pg: &tokio_postgres::Client,
    label: &str,
    n: usize,
) -> anyhow::Result<Vec<(i64, i64)>> {
    let rows = pg
        .query(
            "WITH e AS (
                 INSERT INTO events (organizer_id, title, event_date, location, max_attendees, status)
                 SELECT $1, 'Load ' || $2 || ' ' || g, now() + interval '60 days', 'Bench Hall, Lyon', 100000, 'published'
                   FROM generate_series(1, $3::int) g ORDER BY g
                 RETURNING id)
             SELECT id FROM e ORDER BY id",
            &[&ORG, &label, &(n as i32)],
        )
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let rows = pg
        .query(
            "WITH t AS (
                 INSERT INTO ticket_types (event_id, name, price_cents, quantity)
                 SELECT id, 'General', 2500, 100000 FROM unnest($1::bigint[]) id ORDER BY id
                 RETURNING id, event_id)
             SELECT event_id, id FROM t ORDER BY event_id",
            &[&ids],
        )
        .await?;
    let pairs: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let consecutive = |v: Vec<i64>| v.windows(2).all(|w| w[1] == w[0] + 1);
    if !consecutive(pairs.iter().map(|p| p.0).collect())
        || !consecutive(pairs.iter().map(|p| p.1).collect())
    {
        bail!("the {label} events or their ticket types did not get consecutive ids (is something else writing to {label}'s database?)");
    }
    Ok(pairs)
}

/// A pool of `n` confirmed guests with active tickets on a fresh event, ticket ids consecutive,
/// and the event's [`EXTRA_LIST`]: ((event id, first ticket id), list id). `qr`: the QR payload
/// and image its tickets carry (none: as before their generation job).
async fn ticket_pool(
    pg: &tokio_postgres::Client,
    label: &str,
    n: usize,
    qr: Option<(&str, &str)>,
) -> anyhow::Result<((i64, i64), i64)> {
    let (event, tt) = load_events(pg, label, 1).await?[0];
    pg.execute(
        "INSERT INTO guests (event_id, ticket_type_id, first_name, last_name, email, status)
         SELECT $1, $2, f, l, lower(f || '.' || l || '.' || g || '@example.com'), 'confirmed'
           FROM (SELECT g,
                        (ARRAY['Alice','Bruno','Chloe','David','Emma','Farid','Giulia','Hugo','Ines','Jonas',
                               'Karim','Lea','Marco','Nina','Oscar','Paula','Quentin','Rosa','Samir','Tess'])[1 + g % 20] AS f,
                        (ARRAY['Martin','Bernard','Dubois','Thomas','Robert','Richard','Petit','Durand','Leroy','Moreau',
                               'Simon','Laurent','Lefebvre','Michel','Garcia','Rossi','Muller','Schmidt','Novak','Silva'])[1 + (g / 20) % 20] AS l
                   FROM generate_series(1, $3::int) g) s
          ORDER BY g",
        &[&event, &tt, &(n as i32)],
    )
    .await?;
    let row = pg
        .query_one(
            "WITH t AS (
                 INSERT INTO tickets (guest_id, event_id, ticket_type_id, ticket_code, qr_payload, qr_code_data)
                 SELECT id, event_id, ticket_type_id, 'TC-2027-' || lpad(upper(to_hex(id)), 10, '0'), $2, $3
                   FROM guests WHERE event_id = $1 ORDER BY id
                 RETURNING id)
             SELECT min(id), max(id), count(*) FROM t",
            &[&event, &qr.map(|q| q.0), &qr.map(|q| q.1)],
        )
        .await?;
    let (first, last, count): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if last - first + 1 != count || count != n as i64 {
        bail!("ticket pool {label}: ids not consecutive");
    }
    pg.execute(
        "SELECT seat_shards_set($1, NULL, max_attendees, $3) FROM events WHERE id = $1
         UNION ALL
         SELECT seat_shards_set($1, $2, quantity, $3) FROM ticket_types WHERE id = $2",
        &[&event, &tt, &(n as i32)],
    )
    .await?;
    // As POST /api/events/{id}/checkin-lists writes it (lists::create).
    let list: i64 = pg
        .query_one(
            "INSERT INTO checkin_lists (event_id, name, ticket_type_ids, allow_reentry) VALUES ($1, $2, $3, false) RETURNING id",
            &[&event, &EXTRA_LIST, &vec![tt]],
        )
        .await?
        .get(0);
    Ok(((event, first), list))
}

/// Seats of a set of events after a registration load: (sold, registered, active guests).
pub async fn seats(
    pg: &tokio_postgres::Client,
    events: &[(i64, i64)],
) -> anyhow::Result<(i64, i64, i64)> {
    let ids: Vec<i64> = events.iter().map(|e| e.0).collect();
    let row = pg
        .query_one(
            "SELECT (SELECT COALESCE(sum(seats_taken(event_id, id)), 0)::bigint FROM ticket_types WHERE event_id = ANY($1)),
                    (SELECT COALESCE(sum(seats_taken(id, NULL)), 0)::bigint FROM events WHERE id = ANY($1)),
                    (SELECT count(*) FROM guests WHERE event_id = ANY($1) AND status <> 'cancelled')",
            &[&ids],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}
