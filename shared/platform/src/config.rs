//! Configuration, read once per process (per Lambda execution environment) into typed
//! sections. [`Env::process`] is the one place in the code base that reads the process
//! environment; in AWS, [`Env::with_secrets`] resolves the Secrets Manager ARNs a role
//! needs into the same [`Env`], and each role builds only the sections it uses
//! ([`Env::config`] for the API, [`Env::database`] for the others). Every variable has a
//! local-development default except in AWS, where the template sets them.

use std::collections::HashMap;
use std::time::Duration;

/// A snapshot of the environment (plus resolved secrets): the only source of configuration.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

/// A secret a role may ask [`Env::with_secrets`] to resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// `DB_SECRET_ARN` (+ `DB_HOST`/`DB_PORT`/`DB_NAME`) → `DATABASE_URL`.
    Database,
    /// `JWT_SECRET_ARN` → `JWT_SECRET`.
    Jwt,
    /// `TICKET_SIGNING_KEY_SECRET_ARN` → `TICKET_SIGNING_KEY`.
    TicketKey,
    /// `AUTH_SERVICE_TOKEN_SECRET_ARN` → `AUTH_SERVICE_TOKEN` (the workers' token for the
    /// auth service).
    AuthServiceToken,
    /// `REDIS_AUTH_SECRET_ARN` → `REDIS_AUTH_TOKEN` (ElastiCache AUTH, put into the Redis URL).
    RedisAuth,
}

impl Env {
    /// The process environment. The only reader of `std::env` outside tests.
    pub fn process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment made of `pairs` (tests, tools).
    pub fn from_pairs<K: ToString, V: ToString>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The same environment with `key` set (tests, tools).
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars.insert(key.to_owned(), value.into());
        self
    }

    /// A variable, unless unset or blank.
    pub fn get(&self, key: &str) -> Option<String> {
        self.vars.get(key).filter(|v| !v.trim().is_empty()).cloned()
    }

    /// `get` as a closure, for the `from_lookup` constructors.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| self.get(k)
    }

    /// Running inside AWS Lambda.
    pub fn in_lambda(&self) -> bool {
        self.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
    }

    /// The environment with `wanted` secrets resolved from Secrets Manager (when their ARN
    /// variables are set) into the variables they stand for; other ARNs are not read.
    pub async fn with_secrets(mut self, wanted: &[Secret]) -> anyhow::Result<Self> {
        let resolved = {
            let only = |k: &str| {
                let needed = match k {
                    "DB_SECRET_ARN" | "DB_HOST" | "DB_PORT" | "DB_NAME" => Secret::Database,
                    "JWT_SECRET_ARN" => Secret::Jwt,
                    k if crate::secrets::TICKET_SIGNING_KEY_ARN_VARS.contains(&k) => {
                        Secret::TicketKey
                    }
                    "AUTH_SERVICE_TOKEN_SECRET_ARN" => Secret::AuthServiceToken,
                    "REDIS_AUTH_SECRET_ARN" => Secret::RedisAuth,
                    _ => return None,
                };
                wanted.contains(&needed).then(|| self.get(k)).flatten()
            };
            // Boxed: the SDK's futures are deep (rustc's layout depth limit).
            Box::pin(crate::secrets::resolve_env(only)).await?
        };
        self.vars.extend(resolved);
        Ok(self)
    }

    fn number(&self, key: &str, default: u64) -> anyhow::Result<u64> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| anyhow::anyhow!("{key} must be a whole number, got {v:?}"))
            })
            .unwrap_or(Ok(default))
    }

    /// `SERVICE_NAME` (metrics dimension, logs), default `event-planner-core`.
    pub fn service_name(&self) -> String {
        self.get("SERVICE_NAME")
            .unwrap_or_else(|| "event-planner-core".to_owned())
    }

    /// The database section: `DATABASE_URL` (or the resolved `DB_SECRET_ARN`), `DB_POOL_SIZE`
    /// (default `default_pool` in Lambda, 16 locally), `DB_TIMEOUT_MS`.
    pub fn database(&self, default_pool: usize) -> anyhow::Result<DbConfig> {
        let url = match self.get("DATABASE_URL") {
            Some(url) => url,
            None if self.in_lambda() => {
                anyhow::bail!("neither DB_SECRET_ARN nor DATABASE_URL is set")
            }
            None => DEFAULT_DATABASE_URL.to_owned(),
        };
        let default_pool = if self.in_lambda() { default_pool } else { 16 };
        // TLS: DB_SSLMODE, else verify-full in Lambda (RDS forces TLS), else the URL's sslmode
        // (libpq's default, prefer).
        let (url, url_mode) = crate::tls::split_sslmode(&url)?;
        let ssl_mode = match self.get("DB_SSLMODE") {
            Some(mode) => Some(crate::tls::SslMode::parse(&mode)?),
            None if self.in_lambda() => Some(crate::tls::SslMode::VerifyFull),
            None => url_mode,
        };
        Ok(DbConfig {
            url,
            pool_size: self.number("DB_POOL_SIZE", default_pool as u64)?.max(1) as usize,
            timeout: Duration::from_millis(self.number("DB_TIMEOUT_MS", 5_000)?),
            secret_arn: self.get("DB_SECRET_ARN"),
            max_idle: Duration::from_secs(self.number("DB_MAX_IDLE_SECS", 240)?),
            ssl_mode,
            ssl_root_cert: self.get("DB_SSL_ROOT_CERT").map(Into::into),
        })
    }

    /// `JWT_SECRET` (required in Lambda; a loud development default locally),
    /// `JWT_ISSUER`, `JWT_AUDIENCE`.
    pub fn jwt(&self) -> anyhow::Result<JwtConfig> {
        let (secret, is_development_default) = match self.get("JWT_SECRET") {
            Some(s) => (s, false),
            None if self.in_lambda() => anyhow::bail!("JWT_SECRET is not set"),
            None => (DEVELOPMENT_JWT_SECRET.to_owned(), true),
        };
        Ok(JwtConfig {
            secret,
            issuer: self.get("JWT_ISSUER"),
            audience: self.get("JWT_AUDIENCE"),
            is_development_default,
        })
    }

    /// `REDIS_URL` enables the cache; `REDIS_TIMEOUT_MS`, `CACHE_TTL_SECS`, `REDIS_PREFIX`.
    /// `REDIS_URL` (`redis://` or, with in-transit encryption, `rediss://`), with the AUTH
    /// token of `REDIS_AUTH_TOKEN` (resolved from `REDIS_AUTH_SECRET_ARN`) as its password.
    pub fn redis(&self) -> anyhow::Result<Option<RedisConfig>> {
        Ok(match self.get("REDIS_URL") {
            Some(url) => Some(RedisConfig {
                url: match self.get("REDIS_AUTH_TOKEN") {
                    Some(token) => redis_url_with_password(&url, &token)?,
                    None => url,
                },
                timeout: Duration::from_millis(self.number("REDIS_TIMEOUT_MS", 100)?),
                ttl: Duration::from_secs(self.number("CACHE_TTL_SECS", 300)?),
                prefix: self
                    .get("REDIS_PREFIX")
                    .unwrap_or_else(|| "epc:".to_owned()),
                root_cert: self.get("REDIS_TLS_ROOT_CERT").map(Into::into),
            }),
            None => None,
        })
    }

    /// The exports bucket: `None` without `EXPORTS_BUCKET` (exports then fail with a reason
    /// and have no link). With it: `AWS_REGION` (or `AWS_DEFAULT_REGION`), the credentials
    /// Lambda sets from the function's role (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`), `S3_ENDPOINT_URL` (else `AWS_ENDPOINT_URL`: an S3-compatible server
    /// such as moto, addressed path-style) and `EXPORT_LINK_SECS` (download links' lifetime,
    /// default 3600, at most 7 days, SigV4's limit). Only the functions that read or write
    /// exports call this.
    pub fn exports_storage(&self) -> anyhow::Result<Option<S3Config>> {
        let Some(bucket) = self.get("EXPORTS_BUCKET") else {
            return Ok(None);
        };
        let region = self
            .get("AWS_REGION")
            .or_else(|| self.get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| anyhow::anyhow!("EXPORTS_BUCKET is set but AWS_REGION is not"))?;
        let (Some(access_key_id), Some(secret_access_key)) = (
            self.get("AWS_ACCESS_KEY_ID"),
            self.get("AWS_SECRET_ACCESS_KEY"),
        ) else {
            anyhow::bail!(
                "EXPORTS_BUCKET is set but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not \
                 (Lambda sets them from the function's role)"
            );
        };
        let link_secs = self.number("EXPORT_LINK_SECS", 3600)?;
        if !(1..=604_800).contains(&link_secs) {
            anyhow::bail!(
                "EXPORT_LINK_SECS must be between 1 and 604800 (7 days), got {link_secs}"
            );
        }
        Ok(Some(S3Config {
            bucket,
            region,
            endpoint: self
                .get("S3_ENDPOINT_URL")
                .or_else(|| self.get("AWS_ENDPOINT_URL")),
            access_key_id,
            secret_access_key,
            session_token: self.get("AWS_SESSION_TOKEN"),
            link_ttl: Duration::from_secs(link_secs),
        }))
    }

    /// The database section with `DB_SECRET_ARN` resolved (and no other secret): what the
    /// operations functions and the workers need.
    pub async fn database_resolved(&self, default_pool: usize) -> anyhow::Result<DbConfig> {
        self.clone()
            .with_secrets(&[Secret::Database])
            .await?
            .database(default_pool)
    }

    /// The API's whole configuration.
    pub fn config(&self) -> anyhow::Result<Config> {
        Config::from_env(self)
    }

    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins a browser front end may call from.
    pub fn cors_origins(&self) -> Vec<String> {
        self.get("CORS_ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/event_planner_core";
/// Used only when `JWT_SECRET` is unset; the start-up log says so loudly.
pub const DEVELOPMENT_JWT_SECRET: &str = "development-only-secret-change-me";

/// `url` with `password` as its password (user `default`, ElastiCache's AUTH user),
/// percent-encoded.
fn redis_url_with_password(url: &str, password: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        anyhow::anyhow!("REDIS_URL must look like redis://host:port or rediss://host:port")
    })?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    Ok(format!(
        "{scheme}://default:{}@{host}",
        crate::secrets::percent_encode(password)
    ))
}

/// The X-Ray trace id of the invocation running now (`_X_AMZN_TRACE_ID`, which the Lambda
/// runtime sets before each invocation): the one variable read per invocation rather than
/// once at start, so not part of [`Env`].
pub fn current_trace_id() -> Option<String> {
    std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// The database section ([`Env::database`]).
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: String,
    /// Connections per process: 1–2 in a Lambda execution environment (it serves one
    /// request at a time), more for the local server.
    pub pool_size: usize,
    pub timeout: Duration,
    /// `DB_SECRET_ARN` (AWS): new connections re-fetch the credentials from Secrets
    /// Manager when the database refuses them (after a rotation).
    pub secret_arn: Option<String>,
    /// `DB_MAX_IDLE_SECS` (default 240): a pooled connection idle for longer is replaced,
    /// never reused (shorter than RDS Proxy's `IdleClientTimeout`).
    pub max_idle: Duration,
    /// `DB_SSLMODE` ([`crate::tls`]); `None`: the URL's `sslmode` (default prefer).
    pub ssl_mode: Option<crate::tls::SslMode>,
    /// `DB_SSL_ROOT_CERT`: a PEM file of trusted roots instead of the shipped AWS ones.
    pub ssl_root_cert: Option<std::path::PathBuf>,
}

impl DbConfig {
    /// A configuration for `url` with the defaults of a local run (tests, tools).
    pub fn local(url: &str, pool_size: usize) -> Self {
        Self {
            url: url.to_owned(),
            pool_size,
            timeout: Duration::from_secs(10),
            secret_arn: None,
            max_idle: Duration::from_secs(240),
            ssl_mode: None,
            ssl_root_cert: None,
        }
    }

    /// `host:port/database` of the URL, for log lines (never the credentials).
    pub fn address(&self) -> String {
        let Ok(pg) = self.url.parse::<tokio_postgres::Config>() else {
            return "(unparsable DATABASE_URL)".to_owned();
        };
        let host = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}/{}", pg.get_dbname().unwrap_or(""))
    }

    /// The parsed connection settings with their TLS negotiation applied, and the
    /// connector to open connections with.
    pub fn connection(
        &self,
    ) -> anyhow::Result<(tokio_postgres::Config, crate::tls::MakeRustlsConnect)> {
        use anyhow::Context;
        let mut pg: tokio_postgres::Config = self
            .url
            .parse()
            .context("DATABASE_URL is not a valid PostgreSQL connection string")?;
        let mode = self.ssl_mode.unwrap_or(match pg.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => crate::tls::SslMode::Disable,
            tokio_postgres::config::SslMode::Require => crate::tls::SslMode::Require,
            _ => crate::tls::SslMode::Prefer,
        });
        let tls = crate::tls::DbTls {
            mode,
            root_cert: self.ssl_root_cert.clone(),
        };
        let connector = tls.prepare(&mut pg)?;
        Ok((pg, connector))
    }
}

/// The exports bucket ([`Env::exports_storage`]); its `Debug` leaves the credentials out.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// An S3-compatible server (moto locally), addressed path-style; `None`: AWS's regional
    /// endpoint, virtual-hosted style.
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// How long a download link works.
    pub link_ttl: Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("link_ttl", &self.link_ttl)
            .finish_non_exhaustive()
    }
}

/// What the API functions (and the local server) read.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: DbConfig,
    pub jwt: JwtConfig,
    pub port: u16,
    pub redis: Option<RedisConfig>,
    pub limits: Limits,
    /// `JWT_JWKS_URL`: an identity provider's key set (Cognito, Auth0, Keycloak...): RS256 /
    /// ES256 tokens are verified against it, beside HS256 tokens signed with `JWT_SECRET`.
    pub jwks_url: Option<String>,
    /// Webhook endpoints may be plain http to a loopback host (development):
    /// `WEBHOOKS_ALLOW_PRIVATE_TARGETS`, default true outside Lambda, refused in it.
    pub webhooks_allow_local: bool,
}

/// `REDIS_URL` enables the cache and the rate limits.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Per operation (`REDIS_TIMEOUT_MS`, default 100): a slow Redis costs at most this.
    pub timeout: Duration,
    /// Cached entries live at most this long (`CACHE_TTL_SECS`, default 300).
    pub ttl: Duration,
    /// Key prefix (`REDIS_PREFIX`, default `epc:`).
    pub prefix: String,
    /// `REDIS_TLS_ROOT_CERT`: a PEM file of the roots to trust for `rediss://` instead of
    /// the system's (ElastiCache's certificates chain to public roots).
    pub root_cert: Option<std::path::PathBuf>,
}

/// Requests per minute per token (or per IP without one).
#[derive(Debug, Clone)]
pub struct Limits {
    /// `RATE_LIMIT_REGISTRATIONS_PER_MINUTE`, default 600.
    pub registrations_per_minute: u64,
    /// `RATE_LIMIT_VALIDATIONS_PER_MINUTE`, default 1200 (a busy entrance scans ~1/s per scanner).
    pub validations_per_minute: u64,
    /// `RATE_LIMIT_CLAIMS_PER_MINUTE`, default 20: waiting-list claims by token, per client
    /// IP (the public endpoint: tokens are 256 bits, this keeps the endpoint cheap to run).
    pub claims_per_minute: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            registrations_per_minute: 600,
            validations_per_minute: 1200,
            claims_per_minute: 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub secret: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// True when the development default is in use.
    pub is_development_default: bool,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Self {
            db: env.database(2)?,
            jwt: env.jwt()?,
            redis: env.redis()?,
            jwks_url: env.get("JWT_JWKS_URL").filter(|u| !u.trim().is_empty()),
            webhooks_allow_local: match env.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS").as_deref() {
                _ if env.in_lambda() => false,
                Some(v) => v == "true",
                None => true,
            },
            limits: Limits {
                registrations_per_minute: env.number("RATE_LIMIT_REGISTRATIONS_PER_MINUTE", 600)?,
                validations_per_minute: env.number("RATE_LIMIT_VALIDATIONS_PER_MINUTE", 1200)?,
                claims_per_minute: env.number("RATE_LIMIT_CLAIMS_PER_MINUTE", 20)?,
            },
            port: env
                .number("PORT", 3001)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("PORT must be a port number"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        Env::from_pairs(vars.iter().copied()).config()
    }

    #[test]
    fn local_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.db.url, DEFAULT_DATABASE_URL);
        assert!(c.jwt.is_development_default);
        assert_eq!(c.db.pool_size, 16);
    }

    #[test]
    fn lambda_needs_a_secret_and_uses_a_small_pool() {
        assert!(config(&[("AWS_LAMBDA_FUNCTION_NAME", "events")]).is_err());
        // In Lambda the database is configured (or its secret resolved), never the local default.
        let no_db = config(&[("AWS_LAMBDA_FUNCTION_NAME", "events"), ("JWT_SECRET", "s")]);
        assert!(format!("{:#}", no_db.unwrap_err()).contains("DATABASE_URL"));
        let c = config(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "events"),
            ("JWT_SECRET", "s"),
            ("DATABASE_URL", "postgres://db/x"),
        ])
        .unwrap();
        assert_eq!(c.db.pool_size, 2);
        assert!(!c.jwt.is_development_default);
    }

    #[test]
    fn the_exports_bucket_needs_a_region_and_credentials() {
        let env = |vars: &[(&str, &str)]| Env::from_pairs(vars.iter().copied());
        assert!(env(&[]).exports_storage().unwrap().is_none());
        assert!(env(&[("EXPORTS_BUCKET", "b")]).exports_storage().is_err());
        assert!(env(&[("EXPORTS_BUCKET", "b"), ("AWS_REGION", "eu-west-1")])
            .exports_storage()
            .is_err());
        let full = [
            ("EXPORTS_BUCKET", "b"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ];
        let c = env(&full).exports_storage().unwrap().unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(c.link_ttl, Duration::from_secs(3600));
        assert!(!format!("{c:?}").contains("very-secret"));
        assert!(env(&full)
            .set("EXPORT_LINK_SECS", "604801")
            .exports_storage()
            .is_err());
    }

    #[test]
    fn bad_numbers_are_reported() {
        assert!(config(&[("PORT", "abc")]).is_err());
        assert!(config(&[("PORT", "70000")]).is_err());
        assert_eq!(config(&[("PORT", "8080")]).unwrap().port, 8080);
    }
}
