//! Who is calling: bearer-token (HS256 JWT) verification into the domain's [`Caller`].

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use domain::{Caller, Role};
use platform::config::JwtConfig;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Clock skew tolerated between the token issuer and this service.
const LEEWAY_SECS: u64 = 30;

/// Verifies bearer tokens: HS256 with the configured secret, and, with a JWKS URL, the
/// RS256 / ES256 tokens of an identity provider; the same issuer, audience and claim rules
/// for both.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    jwks: Option<Jwks>,
}

/// An identity provider's signing keys, fetched from its JWKS URL and cached: fetched
/// again when they are [`JWKS_MAX_AGE`] old, or when a token names a key id that is not
/// there (a rotation), at most once per [`JWKS_MIN_REFRESH`] (a flood of made-up key ids
/// does not become a flood of fetches).
struct Jwks {
    url: String,
    http: reqwest::Client,
    keys: tokio::sync::RwLock<CachedKeys>,
}

#[derive(Default)]
struct CachedKeys {
    by_kid: std::collections::HashMap<String, (DecodingKey, Algorithm)>,
    fetched: Option<std::time::Instant>,
}

const JWKS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);
const JWKS_MIN_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

impl Jwks {
    /// The key `kid` (refreshing the set when it is stale or does not have it).
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), String> {
        {
            let cached = self.keys.read().await;
            let fresh = cached.fetched.is_some_and(|t| t.elapsed() < JWKS_MAX_AGE);
            if let (true, Some(key)) = (fresh, cached.by_kid.get(kid)) {
                return Ok(key.clone());
            }
        }
        let mut cached = self.keys.write().await;
        let may_fetch = cached
            .fetched
            .is_none_or(|t| t.elapsed() >= JWKS_MIN_REFRESH);
        if may_fetch {
            match self.fetch().await {
                Ok(keys) => {
                    cached.by_kid = keys;
                    cached.fetched = Some(std::time::Instant::now());
                }
                // The identity provider is unreachable: keep what we had.
                Err(e) => tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed"),
            }
        }
        cached
            .by_kid
            .get(kid)
            .cloned()
            .ok_or_else(|| format!("no key {kid:?} in the JWKS of {}", self.url))
    }

    async fn fetch(
        &self,
    ) -> Result<std::collections::HashMap<String, (DecodingKey, Algorithm)>, String> {
        let set: jsonwebtoken::jwk::JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let mut keys = std::collections::HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk))
            else {
                continue;
            };
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    jsonwebtoken::jwk::EllipticCurve::P384 => Algorithm::ES384,
                    _ => Algorithm::ES256,
                },
                _ => continue,
            };
            keys.insert(kid, (key, alg));
        }
        tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
        Ok(keys)
    }
}

impl TokenVerifier {
    pub fn new(config: &JwtConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        let mut required = vec!["exp", "sub"];
        // A configured issuer/audience must be present, not only correct when present.
        if config.issuer.is_some() {
            required.push("iss");
        }
        if config.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.leeway = LEEWAY_SECS;
        // A token that is not valid yet (`nbf` in the future) is refused too.
        validation.validate_nbf = true;
        match &config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Self {
            key: DecodingKey::from_secret(config.secret.as_bytes()),
            validation,
            jwks: None,
        }
    }

    /// Also accepts the asymmetric tokens signed by the keys of `url` (a JWKS document).
    pub fn with_jwks(mut self, url: Option<&str>) -> anyhow::Result<Self> {
        if let Some(url) = url {
            self.jwks = Some(Jwks {
                url: url.to_owned(),
                http: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(3))
                    .build()?,
                keys: Default::default(),
            });
        }
        Ok(self)
    }

    /// Parses an `Authorization` header value. Every failure is the same 401 for the
    /// client; the reason goes to the log.
    pub async fn verify_header(&self, header: Option<&str>) -> ApiResult<Caller> {
        let header = header.ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        self.verify(token).await
    }

    pub async fn verify(&self, token: &str) -> ApiResult<Caller> {
        let refused = |cause: String| {
            let mut err = ApiError::unauthorized("the token is invalid or expired");
            err.internal = Some(cause);
            err
        };
        // One signature check; the registered claims (exp, nbf, iss, aud) are validated by
        // jsonwebtoken, `iat` here: a token issued in the future is forged or from a
        // clock far off.
        let header = jsonwebtoken::decode_header(token).map_err(|e| refused(e.to_string()))?;
        let raw = match (header.alg, &self.jwks) {
            (Algorithm::HS256, _) => {
                decode::<serde_json::Value>(token, &self.key, &self.validation)
            }
            (Algorithm::RS256 | Algorithm::ES256 | Algorithm::ES384, Some(jwks)) => {
                let kid = header
                    .kid
                    .ok_or_else(|| refused("an asymmetric token without kid".into()))?;
                let (key, alg) = jwks.key(&kid).await.map_err(refused)?;
                if alg != header.alg {
                    return Err(refused(format!(
                        "key {kid} is {alg:?}, the token says {:?}",
                        header.alg
                    )));
                }
                let mut validation = self.validation.clone();
                validation.algorithms = vec![alg];
                decode::<serde_json::Value>(token, &key, &validation)
            }
            (other, _) => return Err(refused(format!("algorithm {other:?} is not accepted"))),
        }
        .map_err(|e| refused(e.to_string()))?
        .claims;
        let now = chrono::Utc::now().timestamp();
        if let Some(iat) = raw.get("iat").and_then(serde_json::Value::as_i64) {
            if iat > now + LEEWAY_SECS as i64 {
                return Err(refused(format!("iat {iat} is in the future (now {now})")));
            }
        }
        let claims: Claims =
            serde_json::from_value(raw).map_err(|e| refused(format!("claims: {e}")))?;
        if claims.sub.trim().is_empty() || claims.sub.len() > 255 {
            return Err(ApiError::unauthorized("the token has no valid subject"));
        }
        let organizer_id = match claims.role {
            Role::Scanner => Some(
                claims
                    .organizer_id
                    .filter(|o| !o.trim().is_empty())
                    .ok_or_else(|| {
                        ApiError::unauthorized("a scanner token must carry organizerId")
                    })?,
            ),
            _ => None,
        };
        Ok(Caller {
            user_id: claims.sub,
            role: claims.role,
            organizer_id,
        })
    }
}

/// Signs tokens with the configured key: used by tests, benchmarks and local tooling
/// (the auth service issues real tokens).
pub fn issue_token(config: &JwtConfig, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(config.secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// A 24-hour token from command-line words `<role> <sub> [organizerId]` (local tooling).
pub fn development_token(config: &JwtConfig, args: &[String]) -> anyhow::Result<String> {
    let usage = "usage: token <organizer|admin|scanner> <sub> [organizerId]";
    let role: Role = serde_json::from_value(serde_json::Value::String(
        args.first().cloned().unwrap_or_default(),
    ))
    .map_err(|_| anyhow::anyhow!(usage))?;
    let sub = args.get(1).cloned().ok_or_else(|| anyhow::anyhow!(usage))?;
    let claims = Claims {
        sub,
        role,
        exp: (chrono::Utc::now().timestamp() + 24 * 3600) as u64,
        organizer_id: args.get(2).cloned(),
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
    };
    Ok(issue_token(config, &claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> JwtConfig {
        JwtConfig {
            secret: "k".into(),
            issuer: None,
            audience: None,
            is_development_default: false,
        }
    }

    fn claims(role: Role) -> Claims {
        Claims {
            sub: "u1".into(),
            role,
            exp: (chrono::Utc::now().timestamp() + 600) as u64,
            organizer_id: None,
            iss: None,
            aud: None,
        }
    }

    #[tokio::test]
    async fn accepts_a_valid_token() {
        let v = TokenVerifier::new(&config());
        let t = issue_token(&config(), &claims(Role::Organizer));
        let c = v.verify_header(Some(&format!("Bearer {t}"))).await.unwrap();
        assert_eq!(c.user_id, "u1");
        assert_eq!(c.tenant(), Some("u1"));
    }

    #[tokio::test]
    async fn rejects_alg_none_and_other_algorithms() {
        let v = TokenVerifier::new(&config());
        // {"alg":"none","typ":"JWT"} . {"sub":"u1","role":"admin","exp":9999999999}
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsInJvbGUiOiJhZG1pbiIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(v.verify(none).await.is_err());
        let hs512 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS512),
            &claims(Role::Admin),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(v.verify(&hs512).await.is_err());
    }

    #[tokio::test]
    async fn rejects_expired_and_wrongly_signed_tokens() {
        let v = TokenVerifier::new(&config());
        let mut c = claims(Role::Organizer);
        c.exp = 1_000;
        assert!(v.verify(&issue_token(&config(), &c)).await.is_err());
        let other = JwtConfig {
            secret: "other".into(),
            ..config()
        };
        assert!(v
            .verify(&issue_token(&other, &claims(Role::Organizer)))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn scanner_needs_organizer_id() {
        let v = TokenVerifier::new(&config());
        assert!(v
            .verify(&issue_token(&config(), &claims(Role::Scanner)))
            .await
            .is_err());
        let mut c = claims(Role::Scanner);
        c.organizer_id = Some("org".into());
        let caller = v.verify(&issue_token(&config(), &c)).await.unwrap();
        assert_eq!(caller.tenant(), Some("org"));
        assert!(!caller.is_manager());
    }

    #[tokio::test]
    async fn issuer_and_audience_are_enforced_when_configured() {
        let cfg = JwtConfig {
            issuer: Some("iss".into()),
            audience: Some("aud".into()),
            ..config()
        };
        let v = TokenVerifier::new(&cfg);
        assert!(v
            .verify(&issue_token(&cfg, &claims(Role::Admin)))
            .await
            .is_err());
        let mut c = claims(Role::Admin);
        c.iss = Some("iss".into());
        c.aud = Some("aud".into());
        assert!(v.verify(&issue_token(&cfg, &c)).await.is_ok());
        c.aud = Some("elsewhere".into());
        assert!(v.verify(&issue_token(&cfg, &c)).await.is_err());
    }

    #[tokio::test]
    async fn tokens_from_the_future_are_refused() {
        let v = TokenVerifier::new(&config());
        let now = chrono::Utc::now().timestamp();
        let sign = |extra: serde_json::Value| {
            let mut claims = serde_json::to_value(claims(Role::Organizer)).unwrap();
            claims
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(b"k"),
            )
            .unwrap()
        };
        assert!(v
            .verify(&sign(serde_json::json!({"nbf": now - 10, "iat": now - 10})))
            .await
            .is_ok());
        assert!(
            v.verify(&sign(serde_json::json!({"iat": now + 5})))
                .await
                .is_ok(),
            "within the leeway"
        );
        assert!(v
            .verify(&sign(serde_json::json!({"nbf": now + 3600})))
            .await
            .is_err());
        assert!(v
            .verify(&sign(serde_json::json!({"iat": now + 3600})))
            .await
            .is_err());
    }
}
