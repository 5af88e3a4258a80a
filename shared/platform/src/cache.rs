//! Redis, optional and never in the way: a cache for what is read far more often than
//! written, and the counters of the rate limits. Every operation has a short time-out;
//! when Redis is down or slow the caller simply gets "no value" (an uncached answer),
//! a warning is logged, and Redis is left alone for a moment (a small circuit breaker)
//! so a dead Redis costs nothing per request.
//!
//! Invalidation is by *generation*: a cached entry's key embeds the current generation
//! of what it depends on (`gen:event:{id}`, `gen:org:{organizer}`), and every write bumps
//! the generations it affects after its commit. A reader that raced a write can only
//! store its (old) answer under the old generation, which nobody reads any more, so a
//! read that starts after a write's commit never sees data older than that write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

/// How long a failing Redis is left alone before the next attempt.
const BACKOFF: Duration = Duration::from_secs(2);

/// A Redis client for `url`; `rediss://` is TLS (rustls on ring, installed as the process
/// default since the redis crate asks for it), trusting `root_cert` or the system roots.
fn client(url: &str, root_cert: Option<&std::path::Path>) -> anyhow::Result<redis::Client> {
    if !url.starts_with("rediss://") {
        return Ok(redis::Client::open(url)?);
    }
    crate::tls::install_default_provider();
    let root_cert = match root_cert {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("REDIS_TLS_ROOT_CERT: cannot read {}: {e}", path.display())
        })?),
        None => None,
    };
    Ok(redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert,
        },
    )?)
}

#[derive(Clone, Default)]
pub struct Cache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
    ttl: Duration,
    prefix: String,
    /// Milliseconds since `epoch` before which Redis is not tried (circuit open).
    open_until_ms: AtomicU64,
    epoch: Instant,
}

impl Cache {
    /// No Redis: every read misses, every write is a no-op.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// `url` e.g. `redis://127.0.0.1:6379`; `prefix` namespaces the keys (tests, tenants of a shared Redis).
    pub fn new(url: &str, timeout: Duration, ttl: Duration, prefix: &str) -> anyhow::Result<Self> {
        Self::with_client(client(url, None)?, timeout, ttl, prefix)
    }

    /// From the configuration (`REDIS_URL`, its AUTH token, `REDIS_TLS_ROOT_CERT`).
    pub fn from_config(config: &crate::config::RedisConfig) -> anyhow::Result<Self> {
        Self::with_client(
            client(&config.url, config.root_cert.as_deref())?,
            config.timeout,
            config.ttl,
            &config.prefix,
        )
    }

    fn with_client(
        client: redis::Client,
        timeout: Duration,
        ttl: Duration,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Some(Arc::new(Inner {
                client,
                conn: Mutex::new(None),
                timeout,
                ttl,
                prefix: prefix.to_owned(),
                open_until_ms: AtomicU64::new(0),
                epoch: Instant::now(),
            })),
        })
    }

    pub fn is_configured(&self) -> bool {
        self.inner.is_some()
    }

    /// For readiness: `None` when not configured, else whether Redis answers a PING now.
    /// The PING is sent even while the circuit is open (requests skip Redis then): readiness
    /// reports Redis as it is, not as a failure of up to [`BACKOFF`] ago left it; a PING
    /// that is answered closes the circuit at once.
    pub async fn ping(&self) -> Option<bool> {
        let inner = self.inner.as_ref()?;
        inner.open_until_ms.store(0, Ordering::Relaxed);
        Some(
            inner
                .run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
                .await
                .is_some(),
        )
    }

    /// The cached JSON value of `key`, if any (and if Redis answers in time).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let inner = self.inner.as_ref()?;
        let key = inner.key(key);
        let raw: Option<Vec<u8>> = inner
            .run(|mut c| async move { redis::cmd("GET").arg(&key).query_async(&mut c).await })
            .await?;
        serde_json::from_slice(&raw?).ok()
    }

    pub async fn put<T: Serialize>(&self, key: &str, value: &T) {
        self.put_for(key, value, None).await
    }

    pub async fn put_for<T: Serialize>(&self, key: &str, value: &T, ttl: Option<Duration>) {
        let Some(inner) = self.inner.as_ref() else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        let (key, secs) = (inner.key(key), ttl.unwrap_or(inner.ttl).as_secs().max(1));
        inner
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(bytes)
                    .arg("EX")
                    .arg(secs)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    }

    /// The current generation of `scope` (0 when unknown), part of dependent keys.
    pub async fn generation(&self, scope: &str) -> Option<u64> {
        let inner = self.inner.as_ref()?;
        let key = inner.key(&format!("gen:{scope}"));
        let g: Option<u64> = inner
            .run(|mut c| async move { redis::cmd("GET").arg(&key).query_async(&mut c).await })
            .await?;
        Some(g.unwrap_or(0))
    }

    /// Invalidates every entry that depends on these scopes (call after the commit).
    pub async fn bump(&self, scopes: &[String]) {
        let Some(inner) = self.inner.as_ref() else {
            return;
        };
        if scopes.is_empty() {
            return;
        }
        let keys: Vec<String> = scopes
            .iter()
            .map(|s| inner.key(&format!("gen:{s}")))
            .collect();
        inner
            .run(|mut c| async move {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("INCR").arg(k).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await;
    }

    /// Counts one hit in a fixed window; returns (hits so far, seconds left in the window).
    pub async fn hit(&self, key: &str, window: Duration) -> Option<(u64, u64)> {
        let inner = self.inner.as_ref()?;
        let secs = window.as_secs().max(1);
        let now = chrono::Utc::now().timestamp() as u64;
        let slot = now / secs;
        let key = inner.key(&format!("{key}:{slot}"));
        let hits: u64 = inner
            .run(|mut c| async move {
                let (hits,): (u64,) = redis::pipe()
                    .cmd("INCR")
                    .arg(&key)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(secs + 1)
                    .ignore()
                    .query_async(&mut c)
                    .await?;
                Ok(hits)
            })
            .await?;
        Some((hits, (slot + 1) * secs - now))
    }
}

impl Inner {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs one operation with the time-out; any failure opens the circuit for [`BACKOFF`].
    async fn run<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.now_ms() < self.open_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        let attempt = async {
            let conn = self.connection().await?;
            op(conn).await.map_err(anyhow::Error::from)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(v)) => Some(v),
            failure => {
                let reason = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", self.timeout),
                };
                if self.open_until_ms.swap(
                    self.now_ms() + BACKOFF.as_millis() as u64,
                    Ordering::Relaxed,
                ) <= self.now_ms()
                {
                    tracing::warn!(error = %reason, "redis unavailable: serving uncached for a while");
                }
                *self.conn.lock().await = None;
                None
            }
        }
    }

    async fn connection(&self) -> anyhow::Result<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}
