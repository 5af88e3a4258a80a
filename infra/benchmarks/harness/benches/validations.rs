//! Ticket validations per second and latency through the real router and PostgreSQL.
//! Run: `cargo bench -p harness --bench validations` (figures in the README, Benchmarks).
//! `BENCH_VALIDATIONS` sets N.
//!
//! Two loads: every request validates a different ticket (the door on a busy evening),
//! and many scanners hitting the same 50 tickets at once (exactly one acceptance each).

mod common;

use axum::http::StatusCode;
use common::{drive, env_usize, Bench};
use serde_json::json;

async fn tickets(bench: &Bench, n: usize) -> Vec<i64> {
    let (event, tt) = bench.event(100_000).await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"firstName": "Bench", "lastName": "Guest", "email": format!("v{i}@bench.example"), "ticketTypeId": tt});
        let (s, r) = bench
            .call("POST", &format!("/api/events/{event}/guests"), body)
            .await;
        assert_eq!(s, StatusCode::CREATED);
        ids.push(r["data"]["ticket"]["id"].as_i64().unwrap());
    }
    ids
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let total = env_usize("BENCH_VALIDATIONS", 4000);
    rt.block_on(async {
        for clients in [16, 64] {
            let bench = Bench::new(clients.min(32)).await;
            let ids = tickets(&bench, total).await;
            let b = bench.clone();
            let ids2 = ids.clone();
            let report = drive(total, clients, move |i| {
                let (b, id) = (b.clone(), ids2[i]);
                async move {
                    let body = json!({"scannerId": format!("scanner-{}", i % 8), "location": "Entrance A"});
                    b.call("POST", &format!("/api/tickets/{id}/validate"), body).await.0 == StatusCode::OK
                }
            })
            .await;
            println!("validations    each a different ticket   clients={clients:<3} n={total:<6} {report}");

            // Same 50 tickets, every one scanned by many scanners: one 200 each, the rest 409.
            let bench = Bench::new(clients.min(32)).await;
            let hot = tickets(&bench, 50).await;
            let b = bench.clone();
            let report = drive(total, clients, move |i| {
                let (b, id) = (b.clone(), hot[i % hot.len()]);
                async move {
                    let body = json!({"scannerId": format!("scanner-{i}"), "location": "Gate"});
                    matches!(b.call("POST", &format!("/api/tickets/{id}/validate"), body).await.0, StatusCode::OK | StatusCode::CONFLICT)
                }
            })
            .await;
            let accepted = bench.count("SELECT count(*) FROM ticket_scans WHERE result = 'accepted'").await;
            assert_eq!(accepted, 50, "exactly one acceptance per ticket");
            println!("validations    50 tickets, many scanners clients={clients:<3} n={total:<6} {report}   accepted exactly 50");
        }
    });
}
