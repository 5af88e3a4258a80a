//! Registrations per second through the real router and a real PostgreSQL, with the seat
//! counts checked afterwards. Run: `cargo bench -p harness --bench registrations`
//! (figures recorded in the README, Benchmarks). `BENCH_REGISTRATIONS` sets N.
//!
//! Two loads: every request on ONE hot ticket type (the worst case for locking: every
//! transaction takes seats of the same event and ticket type, spread over their seat
//! shards), and requests spread over 50 events.

mod common;

use axum::http::StatusCode;
use common::{drive, env_usize, Bench};
use serde_json::json;

async fn run(clients: usize, total: usize, spread: bool) {
    let bench = Bench::new(clients.min(32)).await;
    let mut targets = vec![bench.event(100_000).await];
    if spread {
        for _ in 1..50 {
            targets.push(bench.event(100_000).await);
        }
    }
    let b = bench.clone();
    let report = drive(total, clients, move |i| {
        let (b, (event, tt)) = (b.clone(), targets[i % targets.len()]);
        async move {
            let body = json!({"firstName": "Bench", "lastName": format!("Guest{i}"),
                              "email": format!("guest{i}@bench.example"), "ticketTypeId": tt});
            b.call("POST", &format!("/api/events/{event}/guests"), body)
                .await
                .0
                == StatusCode::CREATED
        }
    })
    .await;
    let sold = bench
        .count("SELECT sum(taken)::bigint FROM seat_shards WHERE ticket_type_id IS NOT NULL")
        .await;
    let guests = bench
        .count("SELECT count(*) FROM guests WHERE status <> 'cancelled'")
        .await;
    let registered = bench
        .count("SELECT sum(taken)::bigint FROM seat_shards WHERE ticket_type_id IS NULL")
        .await;
    assert!(
        sold == guests && registered == guests && guests == total as i64,
        "seat counts drifted"
    );
    let label = if spread {
        "spread over 50 events"
    } else {
        "one hot ticket type"
    };
    println!("registrations  {label:<24} clients={clients:<3} n={total:<6} {report}   seats exact: {guests}");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let total = env_usize("BENCH_REGISTRATIONS", 4000);
    rt.block_on(async {
        for clients in [16, 64] {
            run(clients, total, false).await;
            run(clients, total, true).await;
        }
    });
}
