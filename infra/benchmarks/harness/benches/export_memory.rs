//! Exports of any size in flat memory (issue 16, item 3): builds the guest export of an event
//! with N guests through the real `build_export` code (`jobs::export::build`: keyset pages, CSV,
//! S3 multipart upload) into an S3-compatible server, and reports this process's memory before
//! and at its peak (VmRSS / VmHWM of /proc/self/status). Then it downloads the file through the
//! presigned link and reads it with Python's `csv` module, which must find exactly N rows.
//!
//! One size per process (VmHWM is a process's high-water mark): `infra/benchmarks/export-memory.sh`
//! runs it for 10 000 and 100 000 guests against moto and prints the table of RESULTS.md.
//!
//!   cargo bench -p harness --bench export_memory -- <guests>
//!
//! Needs `EXPORTS_BUCKET`, `S3_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` (the script sets them) and PostgreSQL (testkit's `DATABASE_URL`).

use std::time::Instant;

use platform::config::{DbConfig, Env};
use platform::s3::ObjectStore;

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

async fn run(guests: i64) -> anyhow::Result<()> {
    let db = testkit::TestDatabase::create().await;
    let pool = platform::db::pool(&DbConfig::local(&db.url, 1))?;
    let store = ObjectStore::from_env(&Env::process())?
        .ok_or_else(|| anyhow::anyhow!("EXPORTS_BUCKET is not set"))?;
    store
        .create_bucket()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // The data, in bulk on the server (nothing of it passes through this process).
    let seed = Instant::now();
    let (event, export) = {
        let c = pool.get().await?;
        let event: i64 = c
            .query_one(
                "INSERT INTO events (organizer_id, title, event_date, location, max_attendees, status)
                 VALUES ('bench', 'Export benchmark', now() + interval '30 days', 'Paris', 100000, 'published')
                 RETURNING id",
                &[],
            )
            .await?
            .get(0);
        let tt: i64 = c
            .query_one(
                "INSERT INTO ticket_types (event_id, name, price_cents, quantity) VALUES ($1, 'Standard', 4500, 100000) RETURNING id",
                &[&event],
            )
            .await?
            .get(0);
        c.execute(
            "INSERT INTO guests (event_id, ticket_type_id, first_name, last_name, email, phone, status)
             SELECT $1, $2, CASE WHEN i % 10 = 0 THEN '=Guest' || i ELSE 'Guest' || i END,
                    'Lastname, \"' || i || '\"', 'guest' || i || '@bench.example',
                    '+336' || lpad(i::text, 8, '0'), 'confirmed'
               FROM generate_series(1, $3::bigint) AS i",
            &[&event, &tt, &guests],
        )
        .await?;
        c.execute(
            "INSERT INTO tickets (guest_id, event_id, ticket_type_id, ticket_code)
             SELECT g.id, g.event_id, g.ticket_type_id, 'TC-2027-' || upper(lpad(to_hex(g.id), 10, '0'))
               FROM guests g WHERE g.event_id = $1",
            &[&event],
        )
        .await?;
        c.execute("ANALYZE guests", &[]).await?;
        c.execute("ANALYZE tickets", &[]).await?;
        let export: i64 = c
            .query_one(
                "INSERT INTO exports (event_id, kind, requested_by, requested_role) VALUES ($1, 'guests', 'bench', 'organizer') RETURNING id",
                &[&event],
            )
            .await?
            .get(0);
        (event, export)
    };
    let seeded = seed.elapsed();

    let (rss_before, hwm_before) = memory();
    let started = Instant::now();
    jobs::export::build(&pool, Some(&store), export)
        .await
        .map_err(|e| anyhow::anyhow!("build_export: {e}"))?;
    let elapsed = started.elapsed();
    let (rss_after, hwm_after) = memory();

    let c = pool.get().await?;
    let row = c
        .query_one(
            "SELECT status, row_count, size_bytes, object_key FROM exports WHERE id = $1",
            &[&export],
        )
        .await?;
    let (status, rows, size, key): (String, Option<i64>, Option<i64>, Option<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    anyhow::ensure!(status == "done", "export ended {status}");
    anyhow::ensure!(rows == Some(guests), "{rows:?} rows, expected {guests}");
    let size = size.unwrap_or(0);

    // The presigned link, downloaded to a file (after the measurement), read by Python's csv.
    let (url, _) = store.download_link(&key.unwrap_or_default(), "bench.csv");
    let file = std::env::temp_dir().join(format!("export-bench-{export}.csv"));
    {
        use std::io::Write;
        let mut response = reqwest::get(&url).await?.error_for_status()?;
        let mut out = std::fs::File::create(&file)?;
        while let Some(chunk) = response.chunk().await? {
            out.write_all(&chunk)?;
        }
    }
    let script = "import csv, sys\nwith open(sys.argv[1], newline='', encoding='utf-8') as f:\n    r = list(csv.DictReader(f))\n    assert r[9]['firstName'] == \"'=Guest10\", r[9]\n    assert r[0]['lastName'] == 'Lastname, \"1\"', r[0]\n    print(len(r))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, file.to_str().unwrap_or_default()])
        .output()?;
    let _ = std::fs::remove_file(&file);
    anyhow::ensure!(
        out.status.success(),
        "python csv: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: i64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    anyhow::ensure!(parsed == guests, "python csv read {parsed} rows");

    println!(
        "export_memory guests={guests} event={event} seeded_s={:.1} build_s={:.2} rows_per_s={:.0} file_mib={:.1} \
         rss_before_mib={} peak_before_mib={} rss_after_mib={} peak_mib={} peak_growth_mib={} python_csv_rows={parsed}",
        seeded.as_secs_f64(),
        elapsed.as_secs_f64(),
        guests as f64 / elapsed.as_secs_f64(),
        size as f64 / 1048576.0,
        mib(rss_before),
        mib(hwm_before),
        mib(rss_after),
        mib(hwm_after),
        mib(hwm_after.saturating_sub(rss_before)),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; the size is the first number.
    let guests: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(guests))
}
