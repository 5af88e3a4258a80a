//! Client of the auth service: user look-ups for the emails (organizer details).
//!
//! [`AuthClient::get_user`] reads `GET {AUTH_SERVICE_URL}/api/users/{id}` (with the
//!   optional service token `AUTH_SERVICE_TOKEN` as bearer), read-through a [`UserCache`]
//!   when one is attached. It follows the retry policy of
//!   [`super::notification`]: a 2xx is the user, a 404 is `None`, any other 4xx fails at
//!   once ([`AuthError::Rejected`]), and 5xx, 429, time-outs and connection errors are
//!   retried with a doubling backoff up to [`ClientConfig::max_attempts`] attempts before
//!   [`AuthError::Unavailable`].

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument as _;

use super::notification::{
    endpoint, excerpt, non_empty, parse_base_url, send_with_retry, ClientConfig,
};

/// A user of the auth service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
}

/// A store of users that [`AuthClient::get_user`] reads through (e.g. Redis). Only found
/// users are stored; a cache error should be reported as a miss.
#[async_trait]
pub trait UserCache: Send + Sync {
    async fn get(&self, id: &str) -> Option<User>;
    async fn put(&self, user: &User);
}

/// Why a user could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("AUTH_SERVICE_URL not configured")]
    NotConfigured,
    /// A 4xx other than 404 and 429 (e.g. a missing or refused service token).
    #[error("the auth service refused the request: HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    /// 5xx, 429, time-outs or connection errors on every attempt.
    #[error("the auth service is unavailable: {0}")]
    Unavailable(String),
    /// A 2xx whose body is not a user.
    #[error("the auth service sent an unreadable user: {0}")]
    InvalidResponse(String),
}

/// Where users are read from.
#[derive(Clone)]
struct UserService {
    http: reqwest::Client,
    config: ClientConfig,
    base: Url,
    token: Option<String>,
}

/// User look-ups from the auth service. Cheap to clone.
#[derive(Clone, Default)]
pub struct AuthClient {
    users: Option<UserService>,
    cache: Option<Arc<dyn UserCache>>,
}

impl AuthClient {
    /// A client without a service yet: [`get_user`](Self::get_user) fails with
    /// [`AuthError::NotConfigured`] until [`with_user_service`](Self::with_user_service).
    pub fn new() -> Self {
        Self {
            users: None,
            cache: None,
        }
    }

    /// Reads users from the auth service at `base_url`, sending `service_token` as bearer.
    pub fn with_user_service(
        mut self,
        base_url: &str,
        service_token: Option<String>,
        config: ClientConfig,
    ) -> anyhow::Result<Self> {
        self.users = Some(UserService {
            http: reqwest::Client::builder().timeout(config.timeout).build()?,
            config,
            base: parse_base_url(base_url, "AUTH_SERVICE_URL")?,
            token: service_token.filter(|t| !t.trim().is_empty()),
        });
        Ok(self)
    }

    /// Reads users through `cache` (a hit makes no request; a fetched user is stored).
    pub fn with_cache(mut self, cache: Arc<dyn UserCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// `None` when `AUTH_SERVICE_URL` is unset or empty; `AUTH_SERVICE_TOKEN` and
    /// `AUTH_TIMEOUT_MS` (milliseconds) are optional.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Self>> {
        let Some(url) = non_empty(&get, "AUTH_SERVICE_URL") else {
            return Ok(None);
        };
        Self::new()
            .with_user_service(
                &url,
                non_empty(&get, "AUTH_SERVICE_TOKEN"),
                ClientConfig::from_lookup(&get, "AUTH_TIMEOUT_MS")?,
            )
            .map(Some)
    }

    /// Whether [`get_user`](Self::get_user) can reach the auth service.
    pub fn has_user_service(&self) -> bool {
        self.users.is_some()
    }

    /// The user `user_id`, or `None` when the auth service does not know it.
    pub async fn get_user(&self, user_id: &str) -> Result<Option<User>, AuthError> {
        let users = self.users.as_ref().ok_or(AuthError::NotConfigured)?;
        if user_id.trim().is_empty() {
            return Ok(None);
        }
        if let Some(cache) = &self.cache {
            if let Some(user) = cache.get(user_id).await {
                return Ok(Some(user));
            }
        }
        let user = users.fetch(user_id).await?;
        if let (Some(cache), Some(user)) = (&self.cache, &user) {
            cache.put(user).await;
        }
        Ok(user)
    }
}

impl UserService {
    async fn fetch(&self, user_id: &str) -> Result<Option<User>, AuthError> {
        let url = endpoint(&self.base, &["api", "users", user_id])
            .map_err(|e| AuthError::InvalidResponse(e.to_string()))?;
        let request = || {
            let request = self.http.get(url.clone());
            match &self.token {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
        };
        let (status, body) = send_with_retry(&self.config, "auth service", request)
            .instrument(tracing::info_span!("get_user", user_id))
            .await
            .map_err(AuthError::Unavailable)?;
        match status {
            s if s.is_success() => parse_user(&body).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(AuthError::Rejected {
                status: s.as_u16(),
                body: excerpt(&body),
            }),
        }
    }
}

/// A user, bare or wrapped in `{"data": ...}`.
fn parse_user(body: &str) -> Result<User, AuthError> {
    let invalid = |e: serde_json::Error| AuthError::InvalidResponse(e.to_string());
    let mut value: Value = serde_json::from_str(body).map_err(invalid)?;
    if let Some(data) = value.get_mut("data").filter(|d| d.is_object()) {
        value = data.take();
    }
    serde_json::from_value(value).map_err(invalid)
}

/// The auth service's users, read through Redis (organizer details rarely change).
#[async_trait]
impl UserCache for platform::cache::Cache {
    async fn get(&self, id: &str) -> Option<User> {
        platform::cache::Cache::get(self, &format!("user:{id}")).await
    }

    async fn put(&self, user: &User) {
        self.put_for(
            &format!("user:{}", user.id),
            user,
            Some(std::time::Duration::from_secs(600)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn client(server: &MockServer) -> AuthClient {
        let config = ClientConfig {
            timeout: Duration::from_secs(2),
            max_attempts: 3,
            backoff: Duration::from_millis(1),
        };
        AuthClient::new()
            .with_user_service(&server.uri(), Some("svc-token".into()), config)
            .unwrap()
    }

    fn user_json() -> Value {
        json!({
            "id": "u1",
            "email": "ada@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "organizationName": "Analytical Engines"
        })
    }

    fn user_mock(id_path: &str) -> wiremock::MockBuilder {
        Mock::given(method("GET")).and(path(id_path))
    }

    #[tokio::test]
    async fn gets_a_user_with_the_service_token() {
        let server = MockServer::start().await;
        user_mock("/api/users/u1")
            .and(header("Authorization", "Bearer svc-token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(user_json()))
            .expect(1)
            .mount(&server)
            .await;
        let user = client(&server).get_user("u1").await.unwrap().unwrap();
        assert_eq!(user.first_name, "Ada");
        assert_eq!(
            user.organization_name.as_deref(),
            Some("Analytical Engines")
        );
    }

    #[tokio::test]
    async fn gets_a_wrapped_user_and_encodes_the_id() {
        let server = MockServer::start().await;
        let mut bare = user_json();
        bare["id"] = json!("a/b c");
        if let Some(o) = bare.as_object_mut() {
            o.remove("organizationName");
        }
        user_mock("/api/users/a%2Fb%20c")
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": bare})))
            .expect(1)
            .mount(&server)
            .await;
        let user = client(&server).get_user("a/b c").await.unwrap().unwrap();
        assert_eq!(user.id, "a/b c");
        assert_eq!(user.organization_name, None);
    }

    #[tokio::test]
    async fn an_unknown_user_is_none() {
        let server = MockServer::start().await;
        user_mock("/api/users/nobody")
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(client(&server).get_user("nobody").await.unwrap(), None);
    }

    #[tokio::test]
    async fn retries_a_server_error_then_succeeds() {
        let server = MockServer::start().await;
        user_mock("/api/users/u1")
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        user_mock("/api/users/u1")
            .respond_with(ResponseTemplate::new(200).set_body_json(user_json()))
            .expect(1)
            .mount(&server)
            .await;
        assert!(client(&server).get_user("u1").await.unwrap().is_some());
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn other_failures_are_errors() {
        let server = MockServer::start().await;
        user_mock("/api/users/forbidden")
            .respond_with(ResponseTemplate::new(403).set_body_string("bad token"))
            .expect(1)
            .mount(&server)
            .await;
        user_mock("/api/users/down")
            .respond_with(ResponseTemplate::new(502))
            .expect(3)
            .mount(&server)
            .await;
        user_mock("/api/users/garbled")
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
            .expect(1)
            .mount(&server)
            .await;
        let c = client(&server);
        assert!(matches!(
            c.get_user("forbidden").await,
            Err(AuthError::Rejected { status: 403, .. })
        ));
        assert!(matches!(
            c.get_user("down").await,
            Err(AuthError::Unavailable(_))
        ));
        assert!(matches!(
            c.get_user("garbled").await,
            Err(AuthError::InvalidResponse(_))
        ));
    }

    #[derive(Default)]
    struct CountingCache {
        users: Mutex<Vec<User>>,
        gets: AtomicUsize,
        puts: AtomicUsize,
    }

    #[async_trait]
    impl UserCache for CountingCache {
        async fn get(&self, id: &str) -> Option<User> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            let users = self.users.lock().unwrap();
            users.iter().find(|u| u.id == id).cloned()
        }

        async fn put(&self, user: &User) {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.users.lock().unwrap().push(user.clone());
        }
    }

    #[tokio::test]
    async fn reads_through_the_cache() {
        let server = MockServer::start().await;
        user_mock("/api/users/u1")
            .respond_with(ResponseTemplate::new(200).set_body_json(user_json()))
            .expect(1)
            .mount(&server)
            .await;
        let cache = Arc::new(CountingCache::default());
        let c = client(&server).with_cache(cache.clone());
        let first = c.get_user("u1").await.unwrap();
        let second = c.get_user("u1").await.unwrap();
        assert_eq!(first, second);
        assert_eq!(cache.gets.load(Ordering::SeqCst), 2);
        assert_eq!(cache.puts.load(Ordering::SeqCst), 1);
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn without_the_user_service_lookups_say_so() {
        assert!(AuthClient::from_lookup(|_| None).unwrap().is_none());
        let c = AuthClient::new();
        assert!(!c.has_user_service());
        assert!(matches!(
            c.get_user("u1").await,
            Err(AuthError::NotConfigured)
        ));
    }

    #[test]
    fn from_lookup_reads_the_user_service_settings() {
        let c = AuthClient::from_lookup(|k| match k {
            "AUTH_SERVICE_URL" => Some("http://auth:3000".into()),
            "AUTH_SERVICE_TOKEN" => Some("t".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert!(c.has_user_service());
        assert!(AuthClient::from_lookup(|k| match k {
            "AUTH_SERVICE_URL" => Some("::".into()),
            _ => None,
        })
        .is_err());
    }
}
