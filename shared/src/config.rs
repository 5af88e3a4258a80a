//! Configuration from the environment, read once per process (per Lambda execution
//! environment). Every variable has a local-development default except in AWS, where
//! the template sets them.

use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/event_planner_core";
/// Used only when `JWT_SECRET` is unset; the start-up log says so loudly.
pub const DEVELOPMENT_JWT_SECRET: &str = "development-only-secret-change-me";

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// Connections per process: 1–2 in a Lambda execution environment (it serves one
    /// request at a time), more for the local server.
    pub db_pool_size: usize,
    pub db_timeout: Duration,
    pub jwt: JwtConfig,
    pub port: u16,
    pub redis: Option<RedisConfig>,
    /// `DB_SECRET_ARN` (AWS): new connections re-fetch the credentials from Secrets
    /// Manager when the database refuses them (after a rotation).
    pub db_secret_arn: Option<String>,
    pub limits: Limits,
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
}

/// Requests per minute per token (or per IP without one).
#[derive(Debug, Clone)]
pub struct Limits {
    /// `RATE_LIMIT_REGISTRATIONS_PER_MINUTE`, default 600.
    pub registrations_per_minute: u64,
    /// `RATE_LIMIT_VALIDATIONS_PER_MINUTE`, default 1200 (a busy entrance scans ~1/s per scanner).
    pub validations_per_minute: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            registrations_per_minute: 600,
            validations_per_minute: 1200,
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
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Testable core of [`Config::from_env`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let in_lambda = non_empty("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let parse = |k: &str, default: u64| -> anyhow::Result<u64> {
            non_empty(k)
                .map(|v| {
                    v.parse()
                        .map_err(|_| anyhow::anyhow!("{k} must be a whole number, got {v:?}"))
                })
                .unwrap_or(Ok(default))
        };
        let (secret, is_development_default) = match non_empty("JWT_SECRET") {
            Some(s) => (s, false),
            None if in_lambda => anyhow::bail!("JWT_SECRET is not set"),
            None => (DEVELOPMENT_JWT_SECRET.to_owned(), true),
        };
        Ok(Self {
            database_url: non_empty("DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            db_pool_size: parse("DB_POOL_SIZE", if in_lambda { 2 } else { 16 })?.max(1) as usize,
            db_timeout: Duration::from_millis(parse("DB_TIMEOUT_MS", 5_000)?),
            jwt: JwtConfig {
                secret,
                issuer: non_empty("JWT_ISSUER"),
                audience: non_empty("JWT_AUDIENCE"),
                is_development_default,
            },
            redis: match non_empty("REDIS_URL") {
                Some(url) => Some(RedisConfig {
                    url,
                    timeout: Duration::from_millis(parse("REDIS_TIMEOUT_MS", 100)?),
                    ttl: Duration::from_secs(parse("CACHE_TTL_SECS", 300)?),
                    prefix: non_empty("REDIS_PREFIX").unwrap_or_else(|| "epc:".to_owned()),
                }),
                None => None,
            },
            db_secret_arn: non_empty("DB_SECRET_ARN"),
            limits: Limits {
                registrations_per_minute: parse("RATE_LIMIT_REGISTRATIONS_PER_MINUTE", 600)?,
                validations_per_minute: parse("RATE_LIMIT_VALIDATIONS_PER_MINUTE", 1200)?,
            },
            port: parse("PORT", 3001)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("PORT must be a port number"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn local_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert!(c.jwt.is_development_default);
        assert_eq!(c.db_pool_size, 16);
    }

    #[test]
    fn lambda_needs_a_secret_and_uses_a_small_pool() {
        assert!(config(&[("AWS_LAMBDA_FUNCTION_NAME", "events")]).is_err());
        let c = config(&[("AWS_LAMBDA_FUNCTION_NAME", "events"), ("JWT_SECRET", "s")]).unwrap();
        assert_eq!(c.db_pool_size, 2);
        assert!(!c.jwt.is_development_default);
    }

    #[test]
    fn bad_numbers_are_reported() {
        assert!(config(&[("PORT", "abc")]).is_err());
        assert!(config(&[("PORT", "70000")]).is_err());
        assert_eq!(config(&[("PORT", "8080")]).unwrap().port, 8080);
    }
}
