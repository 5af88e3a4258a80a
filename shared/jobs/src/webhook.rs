//! The `deliver_webhook` job: one attempt of one webhook delivery.
//!
//! The attempt signs the stored body (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), resolves the endpoint's host and refuses private, loopback and
//! link-local addresses (unless [`WebhookSender::allow_private`], development only), connects to
//! the addresses it checked (no second DNS answer can redirect it), follows no redirect, gives
//! up after 10 s and reads at most 64 KiB of the answer. One client per process: TLS roots
//! loaded once, connections to an endpoint kept alive from one delivery to the next.
//!
//! Its outcome is recorded in one transaction: 2xx delivered; 410 disables the endpoint;
//! anything else (or no answer) sets the delivery's next attempt (`next_attempt_at`) after an
//! exponential back-off, until 3 days after the delivery's window began; an endpoint whose
//! attempts have all failed for 3 days is disabled. The job itself then succeeds: retries are
//! the outbox's, not the queue's (SQS cannot delay a message more than 15 minutes): the delivery
//! row is its own outbox (migrations/V20), and a relay sends the next attempt once due.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;

use domain::webhooks::sign;

use crate::dispatch::JobError;

/// How webhook attempts are made.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    /// Development only: let endpoints resolve to private or loopback addresses.
    pub allow_private: bool,
    /// The pause after failed attempt n (1-based; the last one repeats).
    pub backoff: Vec<Duration>,
    /// No attempt later than this after the delivery's window began.
    pub give_up_after: chrono::Duration,
    pub timeout: Duration,
    pub max_answer_bytes: usize,
}

impl Default for WebhookSender {
    /// Production settings: the back-off of the Standard Webhooks recommendations (5 s, 5 min,
    /// 30 min, 2 h, 5 h, then every 10 h) for up to 3 days; public addresses only.
    fn default() -> Self {
        Self {
            allow_private: false,
            backoff: [5, 300, 1800, 7200, 18000, 36000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            give_up_after: chrono::Duration::days(3),
            timeout: Duration::from_secs(10),
            max_answer_bytes: 64 * 1024,
        }
    }
}

impl WebhookSender {
    /// `WEBHOOKS_ALLOW_PRIVATE_TARGETS=true` allows private targets; it is refused in Lambda
    /// (production) and the default outside it (the local server's receivers run on loopback).
    pub fn from_env(env: &platform::config::Env) -> anyhow::Result<Self> {
        let allow = match env.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS").as_deref() {
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                anyhow::bail!("WEBHOOKS_ALLOW_PRIVATE_TARGETS must be true or false, got {other:?}")
            }
            None => !env.in_lambda(),
        };
        anyhow::ensure!(
            !(allow && env.in_lambda()),
            "WEBHOOKS_ALLOW_PRIVATE_TARGETS=true is refused in Lambda: webhooks must not reach private addresses"
        );
        Ok(Self {
            allow_private: allow,
            ..Self::default()
        })
    }

    /// The HTTP client of these settings: built once per process (its TLS roots and its
    /// connections reused from one delivery to the next), following no redirect, with the
    /// time-out, and resolving names through [`GuardedResolver`], so it connects only to
    /// addresses that were checked.
    fn client(&self) -> Result<reqwest::Client, String> {
        static CLIENTS: OnceLock<Mutex<HashMap<(bool, Duration), reqwest::Client>>> =
            OnceLock::new();
        let mut clients = CLIENTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = (self.allow_private, self.timeout);
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: self.allow_private,
            }))
            .user_agent("event-planner-webhooks/1")
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn pause_after(&self, attempts: i32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.backoff.len().saturating_sub(1));
        self.backoff
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }
}

/// Resolves a webhook endpoint's name like the system does, then refuses it when any of its
/// addresses is one a webhook must never reach (unless private targets are allowed): the
/// client connects only to the addresses returned here, so no second DNS answer can send it
/// elsewhere.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| format!("resolving {host}: {e}"))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address").into());
            }
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| forbidden(a.ip())) {
                    return Err(format!(
                        "refused: {host} resolves to {} (a private, loopback or link-local address)",
                        bad.ip()
                    )
                    .into());
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an address is one a webhook must never reach in production.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 (embeds an IPv4 address)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

/// What one attempt gave.
#[derive(Debug)]
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
    duration_ms: i32,
}

struct Target {
    message_id: String,
    payload: Value,
    url: String,
    secrets: Vec<String>,
}

pub async fn deliver(
    pool: &Pool,
    sender: &WebhookSender,
    delivery_id: i64,
) -> Result<(), JobError> {
    let db = pool.get().await?;
    let stmt = db
        .prepare_cached(
            "SELECT d.message_id, delivery_payload(d) AS payload, d.status, w.url, w.secret, w.previous_secret,
                    w.previous_until > now() AS previous_valid, w.enabled
               FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
              WHERE d.id = $1",
        )
        .await?;
    let row = db.query_opt(&stmt, &[&delivery_id]).await?;
    let Some(row) = row else {
        // The webhook was deleted, with its deliveries; a delivery written by a change that
        // raced that deletion outlives it (no foreign key: migrations/V24) and is dropped here.
        let orphan = db
            .execute(
                "DELETE FROM webhook_deliveries d WHERE d.id = $1
                    AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id)",
                &[&delivery_id],
            )
            .await?;
        tracing::info!(
            delivery_id,
            orphan_dropped = orphan > 0,
            "webhook delivery gone (webhook deleted)"
        );
        return Ok(());
    };
    let status: String = row.get("status");
    if status != "pending" {
        return Ok(()); // delivered or given up meanwhile (a duplicate job)
    }
    if !row.get::<_, bool>("enabled") {
        db.execute(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the webhook is disabled', next_attempt_at = NULL
              WHERE id = $1 AND status = 'pending'",
            &[&delivery_id],
        )
        .await?;
        return Ok(());
    }
    let mut secrets = vec![row.get::<_, String>("secret")];
    if row.get::<_, Option<bool>>("previous_valid") == Some(true) {
        secrets.extend(row.get::<_, Option<String>>("previous_secret"));
    }
    let target = Target {
        message_id: row.get("message_id"),
        payload: row.get("payload"),
        url: row.get("url"),
        secrets,
    };
    drop(db);
    let attempt = send(sender, &target).await;
    record(pool, sender, delivery_id, &attempt).await
}

async fn send(sender: &WebhookSender, target: &Target) -> Attempt {
    let started = Instant::now();
    let result = try_send(sender, target).await;
    let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    match result {
        Ok(status) => Attempt {
            status: Some(status),
            error: (!(200..300).contains(&status)).then(|| format!("answered {status}")),
            duration_ms,
        },
        Err(error) => Attempt {
            status: None,
            error: Some(error),
            duration_ms,
        },
    }
}

async fn try_send(sender: &WebhookSender, target: &Target) -> Result<u16, String> {
    let url = reqwest::Url::parse(&target.url).map_err(|e| format!("bad URL: {e}"))?;
    let host = url.host_str().ok_or("the URL has no host")?.to_owned();
    // A name is resolved and checked by the client's resolver ([`GuardedResolver`]); an
    // address written in the URL is never resolved, so it is checked here.
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        if !sender.allow_private && forbidden(ip) {
            return Err(format!(
                "refused: {host} is {ip} (a private, loopback or link-local address)"
            ));
        }
    }
    let body = serde_json::to_vec(&target.payload).map_err(|e| e.to_string())?;
    let timestamp = Utc::now().timestamp();
    let secrets: Vec<&str> = target.secrets.iter().map(String::as_str).collect();
    let signature = sign::header(&secrets, &target.message_id, timestamp, &body);
    let client = sender.client()?;
    let mut answer = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &target.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("sending to {host}: {}", error_chain(&e)))?;
    let status = answer.status().as_u16();
    // Read at most max_answer_bytes of the answer, then drop the connection.
    let mut read = 0usize;
    while read < sender.max_answer_bytes {
        match answer.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(status)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn record(
    pool: &Pool,
    sender: &WebhookSender,
    delivery_id: i64,
    attempt: &Attempt,
) -> Result<(), JobError> {
    if attempt.status.is_some_and(|s| (200..300).contains(&s)) {
        return record_delivered(pool, delivery_id, attempt).await;
    }
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let status = attempt.status.map(i32::from);
    let row = tx
        .query_opt(
            "UPDATE webhook_deliveries d
                SET attempts = attempts + 1, last_status = $2, last_error = $3, last_duration_ms = $4,
                    last_attempt_at = now()
              WHERE d.id = $1 AND d.status = 'pending'
          RETURNING d.attempts, d.window_start, d.webhook_id",
            &[&delivery_id, &status, &attempt.error, &attempt.duration_ms],
        )
        .await?;
    let Some(row) = row else {
        return Ok(()); // settled by another attempt meanwhile
    };
    let (attempts, window_start, webhook_id): (i32, DateTime<Utc>, i64) =
        (row.get(0), row.get(1), row.get(2));
    let outcome = match attempt.status {
        Some(410) => {
            give_up(&tx, delivery_id).await?;
            disable(&tx, webhook_id, "gone").await?;
            "the endpoint answered 410 Gone: webhook disabled"
        }
        _ => {
            // Failing since the first failure after the last success.
            let since: DateTime<Utc> = tx
                .query_one(
                    "UPDATE webhooks SET failing_since = COALESCE(failing_since, now()) WHERE id = $1 RETURNING failing_since",
                    &[&webhook_id],
                )
                .await?
                .get(0);
            let now = Utc::now();
            let next = now
                + chrono::Duration::from_std(sender.pause_after(attempts))
                    .unwrap_or(chrono::Duration::hours(10));
            if now - since >= sender.give_up_after {
                give_up(&tx, delivery_id).await?;
                disable(&tx, webhook_id, "failing").await?;
                "failing for 3 days: webhook disabled"
            } else if next > window_start + sender.give_up_after {
                give_up(&tx, delivery_id).await?;
                "given up after 3 days of attempts"
            } else {
                // The delivery is its own outbox (migrations/V20): a relay sends the next
                // attempt once it is due, however far ahead.
                tx.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id = $1",
                    &[&delivery_id, &next],
                )
                .await?;
                "retry scheduled"
            }
        }
    };
    tx.commit().await?;
    tracing::info!(
        delivery_id,
        webhook_id,
        attempts,
        status = attempt.status,
        error = attempt.error.as_deref(),
        duration_ms = attempt.duration_ms,
        outcome,
        "webhook attempt"
    );
    Ok(())
}

/// A 2xx answer, the common case, in one statement (one round trip, one commit, one new
/// version of the delivery row): the attempt recorded, the delivery settled, and the
/// webhook's failure streak ended (the webhook row is written only when it was failing).
async fn record_delivered(
    pool: &Pool,
    delivery_id: i64,
    attempt: &Attempt,
) -> Result<(), JobError> {
    let db = pool.get().await?;
    let stmt = db
        .prepare_cached(
            "WITH d AS (
                UPDATE webhook_deliveries d
                   SET attempts = attempts + 1, last_status = $2, last_error = NULL, last_duration_ms = $3,
                       last_attempt_at = now(), status = 'delivered', delivered_at = now(), next_attempt_at = NULL
                 WHERE d.id = $1 AND d.status = 'pending'
             RETURNING d.attempts, d.webhook_id),
                  w AS (
                UPDATE webhooks w SET failing_since = NULL FROM d
                 WHERE w.id = d.webhook_id AND w.failing_since IS NOT NULL)
             SELECT attempts, webhook_id FROM d",
        )
        .await?;
    let status = attempt.status.map(i32::from);
    let row = db
        .query_opt(&stmt, &[&delivery_id, &status, &attempt.duration_ms])
        .await?;
    // No row: settled by another attempt meanwhile.
    if let Some(row) = row {
        let (attempts, webhook_id): (i32, i64) = (row.get(0), row.get(1));
        tracing::info!(
            delivery_id,
            webhook_id,
            attempts,
            status = attempt.status,
            duration_ms = attempt.duration_ms,
            outcome = "delivered",
            "webhook attempt"
        );
    }
    Ok(())
}

async fn give_up(
    tx: &deadpool_postgres::Transaction<'_>,
    delivery_id: i64,
) -> Result<(), JobError> {
    tx.execute(
        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL WHERE id = $1",
        &[&delivery_id],
    )
    .await?;
    Ok(())
}

async fn disable(
    tx: &deadpool_postgres::Transaction<'_>,
    webhook_id: i64,
    reason: &str,
) -> Result<(), JobError> {
    tx.execute(
        "UPDATE webhooks SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1",
        &[&webhook_id, &reason],
    )
    .await?;
    tracing::warn!(webhook_id, reason, "webhook disabled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_forbidden() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    /// A name that resolves to loopback is refused by the shared client's resolver, before
    /// any connection; with private targets allowed, the same request reaches the listener.
    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_by_the_resolver() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let target = Target {
            message_id: "msg_1".into(),
            payload: serde_json::json!({"type": "event.published"}),
            url: format!("http://localhost:{port}/hooks"),
            secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
        };
        let production = WebhookSender::default();
        let error = try_send(&production, &target).await.unwrap_err();
        assert!(
            error.contains("refused") && error.contains("localhost"),
            "{error}"
        );
        let development = WebhookSender {
            allow_private: true,
            ..WebhookSender::default()
        };
        assert_eq!(try_send(&development, &target).await, Ok(200));
        // The same client again (kept per setting), still answering.
        assert_eq!(try_send(&development, &target).await, Ok(200));
    }

    #[test]
    fn backoff_grows_then_repeats() {
        let s = WebhookSender::default();
        assert_eq!(s.pause_after(1), Duration::from_secs(5));
        assert_eq!(s.pause_after(2), Duration::from_secs(300));
        assert_eq!(s.pause_after(6), Duration::from_secs(36000));
        assert_eq!(s.pause_after(40), Duration::from_secs(36000));
    }
}
