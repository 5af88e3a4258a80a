//! Client of the notification service (`NOTIFICATION_SERVICE_URL`): e-mail (the service also
//! takes SMS; no job sends one yet, so this client does not).
//!
//! # Retry policy (shared with [`super::auth`])
//!
//! Each call makes up to [`ClientConfig::max_attempts`] attempts, each bounded by
//! [`ClientConfig::timeout`] (connection, response and body together):
//!
//! - a 2xx response is success;
//! - any other status below 500 except 429 (a 4xx, or an unfollowed 3xx) is final and is
//!   never retried: for the notification service that is a [`SendError::Permanent`];
//! - a 5xx, a 429, a time-out or a connection error is transient: the next attempt waits
//!   [`ClientConfig::backoff`], doubled after every retry, or the `Retry-After` seconds of a
//!   429/503 when the server sends them; every wait is capped at 5 s. When the attempts
//!   run out the call fails with [`SendError::Transient`], and the job is retried by its
//!   queue (ending in the dead-letter queue if it never succeeds).
//!
//! Every message carries the job id as its idempotency key (in the body and in the
//! `Idempotency-Key` header) so the notification service can drop the duplicates that
//! retries and at-least-once delivery produce. Failed attempts are logged at `warn` with
//! their number; message contents (and recipients) are never logged.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument as _;

/// The longest wait between two attempts, whatever the backoff or `Retry-After` say.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// The longest excerpt of a response body kept in an error.
const EXCERPT_CHARS: usize = 500;

/// Time-out and retry settings of a service client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Bound of one attempt, body included.
    pub timeout: Duration,
    /// Attempts per call, the first included (at least 1 is made).
    pub max_attempts: u32,
    /// Wait before the second attempt, doubled before each further one.
    pub backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_attempts: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

impl ClientConfig {
    /// The defaults with the time-out read from `timeout_var` (milliseconds), if set.
    pub(super) fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        timeout_var: &str,
    ) -> anyhow::Result<Self> {
        let mut config = Self::default();
        if let Some(ms) = non_empty(get, timeout_var) {
            let ms: u64 = ms
                .parse()
                .map_err(|_| anyhow::anyhow!("{timeout_var} must be a whole number, got {ms:?}"))?;
            config.timeout = Duration::from_millis(ms.max(1));
        }
        Ok(config)
    }

    fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder().timeout(self.timeout).build()?)
    }

    /// The wait before attempt `failed + 1`.
    fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or_else(|| {
                self.backoff
                    .saturating_mul(2u32.saturating_pow(failed.saturating_sub(1)))
            })
            .min(MAX_DELAY)
    }
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The service refused the message (a 4xx other than 429): retrying cannot help.
    #[error("the notification service refused the message: HTTP {status}: {body}")]
    Permanent { status: u16, body: String },
    /// The service could not be reached or kept failing; a later retry may succeed.
    #[error("the notification service is unavailable: {0}")]
    Transient(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent { .. })
    }
}

/// What the notification service answered to an accepted message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentMessage {
    /// The service's id of the message, when its response carried one.
    pub id: Option<String>,
}

impl SentMessage {
    /// Reads `{"id": ...}` or `{"data": {"id": ...}}`; anything else (even a body that is
    /// not JSON) is a message without id.
    fn parse(body: &str) -> Self {
        let id = serde_json::from_str::<Value>(body).ok().and_then(|v| {
            let id = v
                .get("id")
                .or_else(|| v.get("data").and_then(|d| d.get("id")))?;
            match id {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        });
        Self { id }
    }
}

/// An e-mail to send. Its `Debug` leaves the contents out.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The job id: the notification service drops a second message with the same key.
    pub idempotency_key: String,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("attachments", &self.attachments.len())
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub content_base64: String,
}

impl Attachment {
    /// An attachment of raw `content` (encoded here in standard base64).
    pub fn new(
        filename: impl Into<String>,
        content_type: impl Into<String>,
        content: &[u8],
    ) -> Self {
        Self {
            filename: filename.into(),
            content_type: content_type.into(),
            content_base64: base64::engine::general_purpose::STANDARD.encode(content),
        }
    }
}

/// HTTP client of the notification service; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct NotificationClient {
    http: reqwest::Client,
    config: ClientConfig,
    email_url: Url,
}

impl NotificationClient {
    pub fn new(base_url: &str, config: ClientConfig) -> anyhow::Result<Self> {
        let base = parse_base_url(base_url, "NOTIFICATION_SERVICE_URL")?;
        Ok(Self {
            http: config.http_client()?,
            email_url: endpoint(&base, &["api", "notifications", "email"])?,
            config,
        })
    }

    /// `None` when `NOTIFICATION_SERVICE_URL` is unset or empty; `NOTIFICATION_TIMEOUT_MS`
    /// overrides the time-out of an attempt.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Self>> {
        let Some(url) = non_empty(&get, "NOTIFICATION_SERVICE_URL") else {
            return Ok(None);
        };
        let config = ClientConfig::from_lookup(&get, "NOTIFICATION_TIMEOUT_MS")?;
        Self::new(&url, config).map(Some)
    }

    /// POSTs the e-mail to `/api/notifications/email`.
    pub async fn send_email(&self, email: &Email) -> Result<SentMessage, SendError> {
        self.post(&self.email_url, email, &email.idempotency_key, "email")
            .await
    }

    async fn post(
        &self,
        url: &Url,
        body: &impl Serialize,
        idempotency_key: &str,
        kind: &'static str,
    ) -> Result<SentMessage, SendError> {
        let span = tracing::info_span!("notification", kind, idempotency_key);
        let request = || {
            self.http
                .post(url.clone())
                .header("Idempotency-Key", idempotency_key)
                .json(body)
        };
        let (status, body) = send_with_retry(&self.config, "notification service", request)
            .instrument(span)
            .await
            .map_err(SendError::Transient)?;
        if status.is_success() {
            Ok(SentMessage::parse(&body))
        } else {
            Err(SendError::Permanent {
                status: status.as_u16(),
                body: excerpt(&body),
            })
        }
    }
}

/// Sends `request()` under the [retry policy](self). `Ok` holds a final response (a 2xx or
/// a non-retryable status) with its whole body; `Err` describes the last transient failure
/// once the attempts are spent.
pub(super) async fn send_with_retry(
    config: &ClientConfig,
    service: &str,
    request: impl Fn() -> RequestBuilder,
) -> Result<(StatusCode, String), String> {
    let max_attempts = config.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let (failure, retry_after) = match request().send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(&response);
                match response.text().await {
                    Ok(body) if !is_transient(status) => return Ok((status, body)),
                    Ok(body) => (
                        format!("HTTP {}: {}", status.as_u16(), excerpt(&body)),
                        retry_after,
                    ),
                    Err(e) => (
                        format!(
                            "HTTP {}, body unreadable: {}",
                            status.as_u16(),
                            describe(&e)
                        ),
                        None,
                    ),
                }
            }
            Err(e) => (describe(&e), None),
        };
        if attempt >= max_attempts {
            tracing::warn!(attempt, max_attempts, error = %failure, "{service} call failed; giving up");
            return Err(format!("{failure} (after {attempt} attempts)"));
        }
        let delay = config.delay(attempt, retry_after);
        tracing::warn!(
            attempt,
            max_attempts,
            error = %failure,
            retry_in_ms = delay.as_millis() as u64,
            "{service} call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// The `Retry-After` of a 429 or 503, in seconds (the HTTP-date form is ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    if !matches!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// A transport error in a few words, without the request (and so without its URL query).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first [`EXCERPT_CHARS`] characters of a response body.
pub(super) fn excerpt(body: &str) -> String {
    match body.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &body[..end]),
        None => body.to_owned(),
    }
}

pub(super) fn non_empty(get: &impl Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Parses a service base URL (`http` or `https`, any path prefix kept).
pub(super) fn parse_base_url(base_url: &str, what: &str) -> anyhow::Result<Url> {
    let url = Url::parse(base_url.trim())
        .map_err(|e| anyhow::anyhow!("{what} is not a valid URL ({e}): {base_url:?}"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.has_host(),
        "{what} must be an http(s) URL, got {base_url:?}"
    );
    Ok(url)
}

/// `base` followed by the path `segments`, each percent-encoded as one segment.
pub(super) fn endpoint(base: &Url, segments: &[&str]) -> anyhow::Result<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("{base} cannot be a base URL"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn fast() -> ClientConfig {
        ClientConfig {
            timeout: Duration::from_secs(2),
            max_attempts: 3,
            backoff: Duration::from_millis(1),
        }
    }

    fn client(server: &MockServer) -> NotificationClient {
        NotificationClient::new(&server.uri(), fast()).unwrap()
    }

    fn email() -> Email {
        Email {
            to: "ada@example.com".into(),
            subject: "Your ticket".into(),
            text: "Hello".into(),
            html: Some("<p>Hello</p>".into()),
            attachments: vec![Attachment::new("ticket.png", "image/png", b"png")],
            idempotency_key: "job-1".into(),
        }
    }

    fn email_mock() -> wiremock::MockBuilder {
        Mock::given(method("POST")).and(path("/api/notifications/email"))
    }

    #[tokio::test]
    async fn sends_an_email_with_the_contract_shape() {
        let server = MockServer::start().await;
        email_mock()
            .and(header("Idempotency-Key", "job-1"))
            .and(body_json(json!({
                "to": "ada@example.com",
                "subject": "Your ticket",
                "text": "Hello",
                "html": "<p>Hello</p>",
                "attachments": [{
                    "filename": "ticket.png",
                    "contentType": "image/png",
                    "contentBase64": "cG5n"
                }],
                "idempotencyKey": "job-1"
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "m-1"})))
            .expect(1)
            .mount(&server)
            .await;
        let sent = client(&server).send_email(&email()).await.unwrap();
        assert_eq!(sent.id.as_deref(), Some("m-1"));
    }

    #[tokio::test]
    async fn reads_a_wrapped_id_and_accepts_a_body_that_is_not_json() {
        let server = MockServer::start().await;
        email_mock()
            .respond_with(ResponseTemplate::new(202).set_body_json(json!({"data": {"id": 7}})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        email_mock()
            .respond_with(ResponseTemplate::new(200).set_body_string("queued"))
            .mount(&server)
            .await;
        let c = client(&server);
        assert_eq!(
            c.send_email(&email()).await.unwrap().id.as_deref(),
            Some("7")
        );
        assert_eq!(c.send_email(&email()).await.unwrap().id, None);
    }

    #[tokio::test]
    async fn retries_a_server_error_then_succeeds() {
        let server = MockServer::start().await;
        email_mock()
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        email_mock()
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "m-2"})))
            .expect(1)
            .mount(&server)
            .await;
        let sent = client(&server).send_email(&email()).await.unwrap();
        assert_eq!(sent.id.as_deref(), Some("m-2"));
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn retries_a_rate_limit_after_retry_after() {
        let server = MockServer::start().await;
        email_mock()
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        email_mock()
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        assert!(client(&server).send_email(&email()).await.is_ok());
    }

    #[tokio::test]
    async fn a_client_error_is_permanent_at_once() {
        let server = MockServer::start().await;
        email_mock()
            .respond_with(ResponseTemplate::new(400).set_body_string("x".repeat(2_000)))
            .expect(1)
            .mount(&server)
            .await;
        let err = client(&server).send_email(&email()).await.unwrap_err();
        assert!(err.is_permanent());
        match err {
            SendError::Permanent { status, body } => {
                assert_eq!(status, 400);
                assert_eq!(body.chars().count(), EXCERPT_CHARS + 1);
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_persistent_server_error_is_transient_after_max_attempts() {
        let server = MockServer::start().await;
        email_mock()
            .respond_with(ResponseTemplate::new(503).set_body_string("down"))
            .expect(3)
            .mount(&server)
            .await;
        let err = client(&server).send_email(&email()).await.unwrap_err();
        assert!(!err.is_permanent());
        assert!(err.to_string().contains("HTTP 503: down"), "{err}");
    }

    #[tokio::test]
    async fn a_time_out_is_transient() {
        let server = MockServer::start().await;
        email_mock()
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
            .expect(2)
            .mount(&server)
            .await;
        let config = ClientConfig {
            timeout: Duration::from_millis(100),
            max_attempts: 2,
            ..fast()
        };
        let c = NotificationClient::new(&server.uri(), config).unwrap();
        let err = c.send_email(&email()).await.unwrap_err();
        assert!(matches!(err, SendError::Transient(_)), "{err:?}");
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_service_is_transient() {
        // Bind then drop a listener: nothing listens on that port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = NotificationClient::new(&format!("http://127.0.0.1:{port}"), fast()).unwrap();
        let err = c.send_email(&email()).await.unwrap_err();
        assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_base_url_with_a_path_keeps_it() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/prefix/api/notifications/email"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "m-2"})))
            .expect(1)
            .mount(&server)
            .await;
        let c = NotificationClient::new(&format!("{}/prefix/", server.uri()), fast()).unwrap();
        assert_eq!(
            c.send_email(&email()).await.unwrap().id.as_deref(),
            Some("m-2")
        );
    }

    #[test]
    fn omits_empty_optional_fields_and_hides_contents_from_debug() {
        let e = Email {
            html: None,
            attachments: vec![],
            ..email()
        };
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.get("html").is_none());
        assert_eq!(v["attachments"], json!([]));
        let debug = format!("{e:?}");
        assert!(
            !debug.contains("Hello") && !debug.contains("ada@"),
            "{debug}"
        );
    }

    #[test]
    fn from_lookup_reads_the_environment() {
        assert!(NotificationClient::from_lookup(|_| None).unwrap().is_none());
        assert!(NotificationClient::from_lookup(|_| Some(" ".into()))
            .unwrap()
            .is_none());
        let c = NotificationClient::from_lookup(|k| match k {
            "NOTIFICATION_SERVICE_URL" => Some("http://notify:3002/".into()),
            "NOTIFICATION_TIMEOUT_MS" => Some("750".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(c.config.timeout, Duration::from_millis(750));
        assert_eq!(
            c.email_url.as_str(),
            "http://notify:3002/api/notifications/email"
        );
        assert!(NotificationClient::from_lookup(|k| match k {
            "NOTIFICATION_SERVICE_URL" => Some("http://notify".into()),
            _ => Some("soon".into()),
        })
        .is_err());
        assert!(NotificationClient::new("notify:3002", ClientConfig::default()).is_err());
    }

    #[test]
    fn backoff_doubles_and_every_wait_is_capped() {
        let c = ClientConfig::default();
        assert_eq!(c.delay(1, None), Duration::from_millis(200));
        assert_eq!(c.delay(2, None), Duration::from_millis(400));
        assert_eq!(c.delay(30, None), MAX_DELAY);
        assert_eq!(c.delay(1, Some(Duration::from_secs(0))), Duration::ZERO);
        assert_eq!(c.delay(1, Some(Duration::from_secs(120))), MAX_DELAY);
    }
}
