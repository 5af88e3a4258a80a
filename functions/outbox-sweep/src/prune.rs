//! Retention, applied by the sweep at each run: the tables that only grow are pruned in
//! small batches (a bounded amount of work a minute, short transactions, no long locks).
//!
//! - `job_outbox`: rows dispatched more than `OUTBOX_RETENTION_DAYS` ago (default 7).
//! - `processed_jobs`: outcomes recorded more than `PROCESSED_JOBS_RETENTION_DAYS` ago
//!   (default 30, at least 15: longer than SQS keeps a message, 14 days at most, so a
//!   redelivery always finds its record); claims in progress are never pruned.
//! - `ticket_scans`: attempts older than `SCAN_RETENTION_DAYS` (default 400: a year of
//!   events and their door statistics, which are computed from the scan log).
//! - `webhook_deliveries`: settled deliveries (delivered or given up) whose last attempt is
//!   older than `WEBHOOK_DELIVERY_RETENTION_DAYS` (default 30); pending ones never.
//! - `idempotency_keys`: older than 24 hours (the contract's window; lookups ignore older ones).
//! - `ticket_tombstones`: deleted tickets announced to offline scanners, kept
//!   `domain::checkin::offline::TOMBSTONE_DAYS` (30; an offline cursor older than that gets a
//!   full download instead).

use anyhow::Context;
use deadpool_postgres::Pool;
use serde::Serialize;

use platform::config::Env;

/// Rows deleted per statement: a short transaction each.
const BATCH: i64 = 2_000;
/// Batches per table and run: at most `BATCH × ROUNDS` rows a minute per table.
const ROUNDS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub outbox_days: u32,
    pub processed_jobs_days: u32,
    pub scan_days: u32,
    pub webhook_delivery_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            outbox_days: 7,
            processed_jobs_days: 30,
            scan_days: 400,
            webhook_delivery_days: 30,
        }
    }
}

impl Retention {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let days = |key: &str, default: u32, min: u32| -> anyhow::Result<u32> {
            let value = match env.get(key) {
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .with_context(|| format!("{key} must be a whole number of days, got {v:?}"))?,
                None => default,
            };
            anyhow::ensure!(
                value >= min,
                "{key} must be at least {min} days, got {value}"
            );
            Ok(value)
        };
        Ok(Self {
            outbox_days: days("OUTBOX_RETENTION_DAYS", 7, 1)?,
            processed_jobs_days: days("PROCESSED_JOBS_RETENTION_DAYS", 30, 15)?,
            scan_days: days("SCAN_RETENTION_DAYS", 400, 1)?,
            webhook_delivery_days: days("WEBHOOK_DELIVERY_RETENTION_DAYS", 30, 1)?,
        })
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    pub outbox: u64,
    pub processed_jobs: u64,
    pub scans: u64,
    pub tombstones: u64,
    pub webhook_deliveries: u64,
    pub idempotency_keys: u64,
}

/// One run's pruning.
pub async fn prune(pool: &Pool, retention: &Retention) -> anyhow::Result<PruneReport> {
    let db = pool.get().await.context("connecting to the database")?;
    let mut report = PruneReport::default();
    let tables: [(&str, u32, &mut u64); 6] = [
        (
            "DELETE FROM job_outbox WHERE id IN (
                 SELECT id FROM job_outbox
                  WHERE dispatched_at < now() - make_interval(days => $1::int)
                  ORDER BY id LIMIT $2)",
            retention.outbox_days,
            &mut report.outbox,
        ),
        (
            "DELETE FROM processed_jobs WHERE job_id IN (
                 SELECT job_id FROM processed_jobs
                  WHERE processed_at < now() - make_interval(days => $1::int)
                    AND outcome <> 'in_progress'
                  ORDER BY processed_at LIMIT $2)",
            retention.processed_jobs_days,
            &mut report.processed_jobs,
        ),
        (
            "DELETE FROM ticket_scans WHERE id IN (
                 SELECT id FROM ticket_scans
                  WHERE scanned_at < now() - make_interval(days => $1::int)
                  ORDER BY id LIMIT $2)",
            retention.scan_days,
            &mut report.scans,
        ),
        (
            "DELETE FROM ticket_tombstones WHERE ticket_id IN (
                 SELECT ticket_id FROM ticket_tombstones
                  WHERE deleted_at < now() - make_interval(days => $1::int)
                  ORDER BY deleted_at LIMIT $2)",
            domain::checkin::offline::TOMBSTONE_DAYS as u32,
            &mut report.tombstones,
        ),
        (
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT id FROM webhook_deliveries
                  WHERE status <> 'pending'
                    AND COALESCE(last_attempt_at, created_at) < now() - make_interval(days => $1::int)
                  ORDER BY id LIMIT $2)",
            retention.webhook_delivery_days,
            &mut report.webhook_deliveries,
        ),
        (
            "DELETE FROM idempotency_keys WHERE (caller, key) IN (
                 SELECT caller, key FROM idempotency_keys
                  WHERE created_at < now() - make_interval(days => $1::int)
                  ORDER BY created_at LIMIT $2)",
            1,
            &mut report.idempotency_keys,
        ),
    ];
    for (sql, days, deleted) in tables {
        let days = days as i32;
        for _ in 0..ROUNDS {
            let n = db.execute(sql, &[&days, &BATCH]).await.context("pruning")?;
            *deleted += n;
            if (n as i64) < BATCH {
                break;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_its_settings_and_refuses_a_window_shorter_than_sqs_keeps_messages() {
        let env = |pairs: &[(&str, &str)]| Env::from_pairs(pairs.iter().copied());
        assert_eq!(
            Retention::from_env(&env(&[])).unwrap(),
            Retention::default()
        );
        let r = Retention::from_env(&env(&[
            ("OUTBOX_RETENTION_DAYS", "3"),
            ("PROCESSED_JOBS_RETENTION_DAYS", "20"),
            ("SCAN_RETENTION_DAYS", "90"),
        ]))
        .unwrap();
        assert_eq!(
            (r.outbox_days, r.processed_jobs_days, r.scan_days),
            (3, 20, 90)
        );
        let e = Retention::from_env(&env(&[("PROCESSED_JOBS_RETENTION_DAYS", "7")])).unwrap_err();
        assert!(e.to_string().contains("at least 15"), "{e}");
        assert!(Retention::from_env(&env(&[("SCAN_RETENTION_DAYS", "a year")])).is_err());
    }

    #[tokio::test]
    async fn old_rows_go_and_recent_ones_and_claims_in_progress_stay() {
        let db = testkit::TestDatabase::create().await;
        let pool = platform::db::pool(&platform::config::DbConfig::local(&db.url, 2)).unwrap();
        let c = pool.get().await.unwrap();
        c.batch_execute(
            "INSERT INTO events (organizer_id, title, event_date, location, max_attendees, status)
                  VALUES ('org', 'Old', now() + interval '1 day', 'Here', 10, 'published');
             INSERT INTO job_outbox (job_id, queue, job_type, payload, dispatched_at)
                  SELECT gen_random_uuid(), 'email', 'x', '{}', now() - make_interval(days => d)
                    FROM unnest(ARRAY[10, 8, 1]) d;
             INSERT INTO job_outbox (job_id, queue, job_type, payload) VALUES (gen_random_uuid(), 'email', 'x', '{}');
             INSERT INTO processed_jobs (job_id, job_type, outcome, processed_at)
                  SELECT gen_random_uuid(), 'x', o, now() - make_interval(days => d)
                    FROM (VALUES ('done', 40), ('failed_permanently', 31), ('done', 29), ('in_progress', 60)) v(o, d);
             INSERT INTO ticket_scans (event_id, scanner_id, location, result, scanned_at)
                  SELECT (SELECT id FROM events LIMIT 1), 's', 'Gate', 'accepted', now() - make_interval(days => d)
                    FROM unnest(ARRAY[500, 401, 399, 0]) d;
             INSERT INTO webhooks (organizer_id, url, event_types, secret)
                  VALUES ('org', 'https://crm.example.com/h', '{event.published}', 'whsec_x');
             INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload, status, last_attempt_at)
                  SELECT (SELECT id FROM webhooks), 'msg_' || s, 'event.published', '{}', s, now() - make_interval(days => d)
                    FROM (VALUES ('delivered', 31), ('failed', 29), ('pending', 60)) v(s, d);
             INSERT INTO idempotency_keys (caller, key, fingerprint, created_at)
                  VALUES ('organizer:o', 'old', 'f', now() - interval '25 hours'),
                         ('organizer:o', 'new', 'f', now() - interval '23 hours');
             INSERT INTO ticket_tombstones (ticket_id, event_id, deleted_at)
                  SELECT d, (SELECT id FROM events LIMIT 1), now() - make_interval(days => d)
                    FROM unnest(ARRAY[31, 29]) d;",
        )
        .await
        .unwrap();
        let report = prune(&pool, &Retention::default()).await.unwrap();
        assert_eq!(
            report,
            PruneReport {
                outbox: 2,
                processed_jobs: 2,
                scans: 2,
                tombstones: 1,
                webhook_deliveries: 1,
                idempotency_keys: 1
            }
        );
        let count = |sql: &'static str| {
            let c = &c;
            async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
        };
        assert_eq!(
            count("SELECT count(*) FROM job_outbox").await,
            2,
            "the recent and the undispatched stay"
        );
        assert_eq!(
            count("SELECT count(*) FROM processed_jobs WHERE outcome = 'in_progress'").await,
            1
        );
        assert_eq!(count("SELECT count(*) FROM processed_jobs").await, 2);
        assert_eq!(count("SELECT count(*) FROM ticket_scans").await, 2);
        // Nothing left to prune: a second run deletes nothing.
        assert_eq!(
            prune(&pool, &Retention::default()).await.unwrap(),
            PruneReport::default()
        );
    }
}
