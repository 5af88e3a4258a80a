//! Secrets from AWS Secrets Manager, fetched once per execution environment.
//!
//! In AWS the template gives each function the ARNs of its secrets instead of their values;
//! [`resolve_env`] turns them into the variables the rest of the code reads:
//!
//! | variable with the ARN | becomes | secret value |
//! |---|---|---|
//! | `JWT_SECRET_ARN` | `JWT_SECRET` | the secret string as is, or the field `"secret"` of a JSON object |
//! | `TICKET_SIGNING_KEY_ARN` (or `TICKET_SIGNING_KEY_SECRET_ARN`, the template's name) | `TICKET_SIGNING_KEY` | same |
//! | `DB_SECRET_ARN` | `DATABASE_URL` | RDS-managed JSON `{"username", "password"}`, with `DB_HOST`, `DB_PORT` (default 5432) and `DB_NAME` from the environment (or `host`, `port`, `dbname` from the secret when the variables are unset); user and password are percent-encoded |
//!
//! Variables without their ARN variable are left alone, so local development (plain
//! `JWT_SECRET`, `DATABASE_URL`...) never talks to AWS. Values are cached in a
//! [`SecretsCache`] (one per process: [`SecretsCache::global`]), and so is the SDK client.
//!
//! # Rotated database credentials
//! RDS rotates the master password it manages (every 7 days by default). Connections that
//! are open keep working; new ones fail with SQLSTATE 28P01 (`invalid_password`) until
//! the new password is fetched. [`RefreshingConnect`] is a `deadpool_postgres::Connect`
//! that does this: on 28P01 (not 28000: a pg_hba.conf refusal is no rotation) it
//! invalidates the cached secret, fetches it again (at most once per
//! [`RefreshingConnect::min_interval`]), and retries the connection with the new
//! credentials, which it then keeps for every later connection. `crate::db::pool` builds
//! the pool with it when `DB_SECRET_ARN` is set.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_secretsmanager::Client;
use deadpool_postgres::Connect;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;

/// The ARN variables of the ticket-signing key, first match wins.
pub const TICKET_SIGNING_KEY_ARN_VARS: [&str; 2] =
    ["TICKET_SIGNING_KEY_ARN", "TICKET_SIGNING_KEY_SECRET_ARN"];

/// Secret values by secret id (ARN or name), and the SDK client that fetched them.
#[derive(Clone)]
pub struct SecretsCache {
    inner: Arc<Inner>,
}

struct Inner {
    client: tokio::sync::OnceCell<Client>,
    values: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for SecretsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("SecretsCache")
            .field("cached", &ids)
            .finish()
    }
}

impl SecretsCache {
    /// A cache that fetches with `client` (tests give one pointing at moto).
    pub fn new(client: Client) -> Self {
        Self::with_cell(tokio::sync::OnceCell::new_with(Some(client)))
    }

    /// A cache whose client is built from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL`) at the first fetch.
    pub fn from_env() -> Self {
        Self::with_cell(tokio::sync::OnceCell::new())
    }

    fn with_cell(client: tokio::sync::OnceCell<Client>) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                values: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The cache of this process (this Lambda execution environment).
    pub fn global() -> &'static SecretsCache {
        static GLOBAL: OnceLock<SecretsCache> = OnceLock::new();
        GLOBAL.get_or_init(SecretsCache::from_env)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.inner
            .values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn client(&self) -> &Client {
        self.inner
            .client
            .get_or_init(|| async {
                let config = Box::pin(aws_config::load_defaults(
                    aws_config::BehaviorVersion::latest(),
                ))
                .await;
                Client::new(&config)
            })
            .await
    }

    /// The current value of a secret (its `SecretString`, or its `SecretBinary` as UTF-8),
    /// fetched once and then served from the cache.
    pub async fn get(&self, secret_id: &str) -> anyhow::Result<String> {
        if let Some(v) = self.lock().get(secret_id) {
            return Ok(v.clone());
        }
        let out = self
            .client()
            .await
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                let not_found = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                let detail = aws_sdk_secretsmanager::error::DisplayErrorContext(e);
                if not_found {
                    anyhow::anyhow!("secret {secret_id} does not exist or has no value yet (a secret created empty needs `aws secretsmanager put-secret-value`): {detail}")
                } else {
                    anyhow::anyhow!("fetching secret {secret_id}: {detail}")
                }
            })?;
        let value = match (out.secret_string(), out.secret_binary()) {
            (Some(s), _) => s.to_owned(),
            (None, Some(b)) => String::from_utf8(b.as_ref().to_vec())
                .with_context(|| format!("secret {secret_id} is binary and not UTF-8"))?,
            (None, None) => anyhow::bail!("secret {secret_id} has no value"),
        };
        self.lock().insert(secret_id.to_owned(), value.clone());
        Ok(value)
    }

    /// Forgets one secret: the next [`get`](Self::get) fetches it again (after the
    /// database refused its credentials, for example).
    pub fn invalidate(&self, secret_id: &str) {
        self.lock().remove(secret_id);
    }

    /// The variables the secrets named in the environment stand for (see the
    /// [module documentation](self)); empty when no ARN variable is set.
    pub async fn resolve_env(
        &self,
        get: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<HashMap<String, String>> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let jwt_arn = non_empty("JWT_SECRET_ARN");
        let ticket_arn = TICKET_SIGNING_KEY_ARN_VARS
            .iter()
            .find_map(|k| non_empty(k));
        let db_arn = non_empty("DB_SECRET_ARN");
        let auth_arn = non_empty("AUTH_SERVICE_TOKEN_SECRET_ARN");
        let redis_arn = non_empty("REDIS_AUTH_SECRET_ARN");
        let db_env = DbEnv {
            host: non_empty("DB_HOST"),
            port: non_empty("DB_PORT"),
            name: non_empty("DB_NAME"),
        };

        let plain = |arn: Option<String>, var: &'static str| async move {
            match arn {
                Some(arn) => {
                    let raw = self.get(&arn).await?;
                    let value = secret_field(&raw, "secret")
                        .with_context(|| format!("secret {arn} (for {var})"))?;
                    anyhow::Ok(Some(value))
                }
                None => Ok(None),
            }
        };
        let db = async {
            match &db_arn {
                Some(arn) => {
                    let raw = self.get(arn).await?;
                    let url = database_url(&raw, &db_env)
                        .with_context(|| format!("secret {arn} (for DATABASE_URL)"))?;
                    anyhow::Ok(Some(url))
                }
                None => Ok(None),
            }
        };
        let (jwt, ticket, db, auth, redis) = tokio::try_join!(
            plain(jwt_arn, "JWT_SECRET"),
            plain(ticket_arn, "TICKET_SIGNING_KEY"),
            db,
            plain(auth_arn, "AUTH_SERVICE_TOKEN"),
            plain(redis_arn, "REDIS_AUTH_TOKEN"),
        )?;

        let mut vars = HashMap::new();
        for (var, value) in [
            ("JWT_SECRET", jwt),
            ("TICKET_SIGNING_KEY", ticket),
            ("DATABASE_URL", db),
            ("AUTH_SERVICE_TOKEN", auth),
            ("REDIS_AUTH_TOKEN", redis),
        ] {
            if let Some(v) = value {
                vars.insert(var.to_owned(), v);
            }
        }
        if !vars.is_empty() {
            let names: Vec<&str> = vars.keys().map(String::as_str).collect();
            tracing::info!(variables = ?names, "configuration read from Secrets Manager");
        }
        Ok(vars)
    }
}

/// [`SecretsCache::resolve_env`] with the process-wide cache.
pub async fn resolve_env(
    get: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<HashMap<String, String>> {
    SecretsCache::global().resolve_env(get).await
}

/// A plain secret: the string itself, or `field` of a JSON object.
pub fn secret_field(raw: &str, field: &str) -> anyhow::Result<String> {
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => match map.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(_) => anyhow::bail!("the field {field:?} of the JSON secret is not a string"),
            None => anyhow::bail!("the JSON secret has no {field:?} field"),
        },
        _ => raw.to_owned(),
    };
    if value.trim().is_empty() {
        anyhow::bail!("the secret is empty");
    }
    Ok(value)
}

/// `username` and `password` of an RDS secret.
pub fn db_credentials(raw: &str) -> anyhow::Result<(String, String)> {
    let v: Value = serde_json::from_str(raw)
        .map_err(|_| anyhow::anyhow!("the database secret is not JSON"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("the database secret has no {k:?}"))
    };
    Ok((field("username")?, field("password")?))
}

struct DbEnv {
    host: Option<String>,
    port: Option<String>,
    name: Option<String>,
}

fn database_url(raw: &str, env: &DbEnv) -> anyhow::Result<String> {
    let (user, password) = db_credentials(raw)?;
    let v: Value = serde_json::from_str(raw)?;
    let from_secret = |k: &str| match v.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let host = env
        .host
        .clone()
        .or_else(|| from_secret("host"))
        .ok_or_else(|| anyhow::anyhow!("DB_HOST is not set"))?;
    let port = env
        .port
        .clone()
        .or_else(|| from_secret("port"))
        .unwrap_or_else(|| "5432".into());
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("DB_PORT must be a port number, got {port:?}"))?;
    let name = env
        .name
        .clone()
        .or_else(|| from_secret("dbname"))
        .ok_or_else(|| anyhow::anyhow!("DB_NAME is not set"))?;
    // An IPv6 literal needs brackets in a URL.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(format!(
        "postgres://{}:{}@{host}:{port}/{}",
        percent_encode(&user),
        percent_encode(&password),
        percent_encode(&name)
    ))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Whether PostgreSQL refused the password (28P01 `invalid_password`): what a rotation
/// looks like. Not 28000 (`invalid_authorization_specification`): that is pg_hba.conf
/// refusing the connection (no TLS, a host not allowed), which new credentials cannot fix.
pub fn is_auth_failure(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::INVALID_PASSWORD)
}

/// Connects like deadpool's default (with the process's TLS connector) and, when the server refuses the
/// credentials, fetches the database secret again and retries once with it (see the
/// [module documentation](self)).
pub struct RefreshingConnect {
    cache: SecretsCache,
    secret_id: String,
    tls: crate::tls::MakeRustlsConnect,
    min_interval: Duration,
    state: Mutex<RefreshState>,
}

#[derive(Default)]
struct RefreshState {
    /// Credentials from the last refresh; they replace those of the pool's config.
    credentials: Option<(String, String)>,
    last_refresh: Option<Instant>,
}

impl RefreshingConnect {
    pub fn new(
        cache: SecretsCache,
        secret_id: impl Into<String>,
        tls: crate::tls::MakeRustlsConnect,
    ) -> Self {
        Self {
            cache,
            secret_id: secret_id.into(),
            tls,
            min_interval: Duration::from_secs(30),
            state: Mutex::new(RefreshState::default()),
        }
    }

    /// The shortest time between two fetches of the secret (default 30 s), so that
    /// credentials that are simply wrong do not fetch the secret on every connection.
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RefreshState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches the secret again unless that was done less than `min_interval` ago;
    /// returns the credentials to retry with.
    async fn refresh(&self) -> Option<(String, String)> {
        {
            let mut state = self.state();
            if state
                .last_refresh
                .is_some_and(|t| t.elapsed() < self.min_interval)
            {
                return None;
            }
            state.last_refresh = Some(Instant::now());
        }
        self.cache.invalidate(&self.secret_id);
        match self
            .cache
            .get(&self.secret_id)
            .await
            .and_then(|raw| db_credentials(&raw))
        {
            Ok(credentials) => {
                self.state().credentials = Some(credentials.clone());
                Some(credentials)
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "could not fetch the database secret again");
                None
            }
        }
    }
}

async fn connect_once(
    config: &tokio_postgres::Config,
    tls: &crate::tls::MakeRustlsConnect,
) -> Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error> {
    let (client, connection) = config.connect(tls.clone()).await?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "database connection error");
        }
    });
    Ok((client, task))
}

impl Connect for RefreshingConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>,
    > {
        let mut config = pg_config.clone();
        if let Some((user, password)) = self.state().credentials.clone() {
            config.user(user).password(password);
        }
        Box::pin(async move {
            match connect_once(&config, &self.tls).await {
                Err(e) if is_auth_failure(&e) => {
                    tracing::warn!(error = %e, "the database refused the credentials; fetching them again from Secrets Manager");
                    match self.refresh().await {
                        Some((user, password)) => {
                            config.user(user).password(password);
                            connect_once(&config, &self.tls).await
                        }
                        None => Err(e),
                    }
                }
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(host: Option<&str>, port: Option<&str>, name: Option<&str>) -> DbEnv {
        DbEnv {
            host: host.map(Into::into),
            port: port.map(Into::into),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn plain_or_json_secrets() {
        assert_eq!(secret_field("abc", "secret").unwrap(), "abc");
        assert_eq!(
            secret_field(r#"{"secret":"x y"}"#, "secret").unwrap(),
            "x y"
        );
        assert!(secret_field(r#"{"key":"x"}"#, "secret").is_err());
        assert!(secret_field("  ", "secret").is_err());
        // A JSON value that is not an object is a plain secret.
        assert_eq!(secret_field("\"q\"", "secret").unwrap(), "\"q\"");
    }

    #[test]
    fn database_urls_are_encoded() {
        let raw = r#"{"username":"app_admin","password":"p@ss:/w?rd#%"}"#;
        let url = database_url(raw, &env(Some("db.example"), None, Some("core"))).unwrap();
        assert_eq!(
            url,
            "postgres://app_admin:p%40ss%3A%2Fw%3Frd%23%25@db.example:5432/core"
        );
        let parsed: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(parsed.get_password(), Some("p@ss:/w?rd#%".as_bytes()));
        assert_eq!(parsed.get_dbname(), Some("core"));

        // Fields of a full RDS secret fill what the environment leaves out.
        let full = r#"{"username":"u","password":"p","host":"h","port":6543,"dbname":"d"}"#;
        assert_eq!(
            database_url(full, &env(None, None, None)).unwrap(),
            "postgres://u:p@h:6543/d"
        );
        assert!(database_url(raw, &env(None, None, Some("core"))).is_err());
        assert!(database_url(raw, &env(Some("h"), Some("x"), Some("core"))).is_err());
        assert!(database_url(r#"{"username":"u"}"#, &env(Some("h"), None, Some("d"))).is_err());
    }
}
