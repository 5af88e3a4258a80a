//! The HTTP load driver: a client of the server's API, and fixed-concurrency, bounded-time
//! loads that report throughput, latency percentiles, errors and the CPU split.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::procs::{interference, CpuMeter, CpuUse};
use crate::settings::Settings;

/// The path of request `i` of a read load.
pub type PathFn = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// The value of a header, made for each request (a fixed one, or a fresh `Idempotency-Key`:
/// [`fresh_uuid`]).
pub type HeaderValue = Arc<dyn Fn() -> String + Send + Sync>;

/// A random (version 4) UUID, for a fresh `Idempotency-Key` per request: 122 bits from the
/// standard library's randomly keyed SipHash (a fresh `RandomState` per call) over a process
/// counter, so no two calls of a run repeat (no crate added to the harness for it).
pub fn fresh_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(n);
        h.write_u64(salt);
        h.finish()
    };
    let random = (u128::from(half(1)) << 64) | u128::from(half(2));
    // The version (4) and the variant (RFC 9562) bits.
    let v = (random & !((0xf000u128 << 64) | (0xc000u128 << 48)))
        | (0x4000u128 << 64)
        | (0x8000u128 << 48);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Arc<str>,
    auth: Arc<str>,
    /// Headers added to every request ([`Api::with_header`]).
    headers: Arc<[(&'static str, HeaderValue)]>,
}

impl Api {
    pub fn new(http: &reqwest::Client, base: &str, token: &str) -> Api {
        Api {
            http: http.clone(),
            base: base.into(),
            auth: format!("Bearer {token}").into(),
            headers: Arc::new([]),
        }
    }

    /// The same client, every request of which also carries header `name` with the value
    /// `value()` returns for it.
    pub fn with_header(
        &self,
        name: &'static str,
        value: impl Fn() -> String + Send + Sync + 'static,
    ) -> Api {
        let mut headers = self.headers.to_vec();
        headers.push((name, Arc::new(value)));
        Api {
            headers: headers.into(),
            ..self.clone()
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let r = self.bare(method, path);
        match body {
            Some(b) => r
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => r,
        }
    }

    /// A request with the token and the extra headers, and no body yet.
    fn bare(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &*self.auth);
        for (name, value) in self.headers.iter() {
            r = r.header(*name, value());
        }
        r
    }

    /// One request with a body of another type than JSON (a CSV file): status and JSON answer.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> anyhow::Result<(u16, Value)> {
        let res = self
            .bare(method, path)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    /// One request whose whole body is read; `Err` names the unexpected outcome.
    pub async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        want: u16,
    ) -> Result<(), String> {
        let res = self
            .request(method, path, body)
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await.map_err(|e| format!("body: {e}"))?;
        if status == want {
            return Ok(());
        }
        let code = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        Err(format!("{status} {code}").trim().to_owned())
    }

    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let res = self.request(method, path, body).send().await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }
}

/// What one load measured.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub clients: usize,
    pub ok: usize,
    pub errors: BTreeMap<String, usize>,
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub cpu: Option<CpuUse>,
    /// The busiest processes that were neither the server, PostgreSQL nor the load generator.
    pub other_top: String,
}

impl Sample {
    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        self.errors
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

/// `clients` tasks issue `request(i)` (i = 0, 1, 2, … shared between them) back to back until
/// `secs` have passed or `max` requests were started. Latencies are of successful requests.
pub async fn drive<F, Fut>(clients: usize, secs: f64, max: usize, request: F) -> Sample
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (request, next) = (request.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(8192);
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                let t = Instant::now();
                match request(i).await {
                    Ok(()) => latencies.push(t.elapsed().as_micros() as u64),
                    Err(e) => *errors.entry(e).or_default() += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r.expect("a load task panicked");
        latencies.extend(l);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Sample {
        clients,
        ok: latencies.len(),
        errors,
        rate: latencies.len() as f64 / secs,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        cpu: None,
        other_top: String::new(),
    }
}

/// [`drive`] with the CPU split of the phase and a progress line.
pub async fn measured<F, Fut>(
    label: &str,
    s: &Settings,
    server: u32,
    clients: usize,
    max: usize,
    request: F,
) -> Sample
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let meter = CpuMeter::start(Some(server), &s.db, s.clk_tck);
    let mut sample = drive(clients, s.secs, max, request).await;
    let (cpu, top) = meter.finish();
    sample.cpu = Some(cpu);
    sample.other_top = top.clone();
    println!(
        "  {label:<44} c={clients:<3} {:>7} ok {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors: {}{}",
        sample.ok,
        sample.rate,
        sample.p50,
        sample.p99,
        sample.errors_text(),
        interference(&cpu, &top)
    );
    sample
}
