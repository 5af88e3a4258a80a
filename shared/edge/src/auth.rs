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

/// Verifies bearer tokens with the configured key, algorithm, issuer and audience.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
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
        }
    }

    /// Parses an `Authorization` header value. Every failure is the same 401 for the
    /// client; the reason goes to the log.
    pub fn verify_header(&self, header: Option<&str>) -> ApiResult<Caller> {
        let header = header.ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        self.verify(token)
    }

    pub fn verify(&self, token: &str) -> ApiResult<Caller> {
        let refused = |cause: String| {
            let mut err = ApiError::unauthorized("the token is invalid or expired");
            err.internal = Some(cause);
            err
        };
        // One signature check; the registered claims (exp, nbf, iss, aud) are validated by
        // jsonwebtoken, `iat` here: a token issued in the future is forged or from a
        // clock far off.
        let raw = decode::<serde_json::Value>(token, &self.key, &self.validation)
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

    #[test]
    fn accepts_a_valid_token() {
        let v = TokenVerifier::new(&config());
        let t = issue_token(&config(), &claims(Role::Organizer));
        let c = v.verify_header(Some(&format!("Bearer {t}"))).unwrap();
        assert_eq!(c.user_id, "u1");
        assert_eq!(c.tenant(), Some("u1"));
    }

    #[test]
    fn rejects_alg_none_and_other_algorithms() {
        let v = TokenVerifier::new(&config());
        // {"alg":"none","typ":"JWT"} . {"sub":"u1","role":"admin","exp":9999999999}
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsInJvbGUiOiJhZG1pbiIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(v.verify(none).is_err());
        let hs512 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS512),
            &claims(Role::Admin),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(v.verify(&hs512).is_err());
    }

    #[test]
    fn rejects_expired_and_wrongly_signed_tokens() {
        let v = TokenVerifier::new(&config());
        let mut c = claims(Role::Organizer);
        c.exp = 1_000;
        assert!(v.verify(&issue_token(&config(), &c)).is_err());
        let other = JwtConfig {
            secret: "other".into(),
            ..config()
        };
        assert!(v
            .verify(&issue_token(&other, &claims(Role::Organizer)))
            .is_err());
    }

    #[test]
    fn scanner_needs_organizer_id() {
        let v = TokenVerifier::new(&config());
        assert!(v
            .verify(&issue_token(&config(), &claims(Role::Scanner)))
            .is_err());
        let mut c = claims(Role::Scanner);
        c.organizer_id = Some("org".into());
        let caller = v.verify(&issue_token(&config(), &c)).unwrap();
        assert_eq!(caller.tenant(), Some("org"));
        assert!(!caller.is_manager());
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let cfg = JwtConfig {
            issuer: Some("iss".into()),
            audience: Some("aud".into()),
            ..config()
        };
        let v = TokenVerifier::new(&cfg);
        assert!(v.verify(&issue_token(&cfg, &claims(Role::Admin))).is_err());
        let mut c = claims(Role::Admin);
        c.iss = Some("iss".into());
        c.aud = Some("aud".into());
        assert!(v.verify(&issue_token(&cfg, &c)).is_ok());
        c.aud = Some("elsewhere".into());
        assert!(v.verify(&issue_token(&cfg, &c)).is_err());
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
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
            .is_ok());
        assert!(
            v.verify(&sign(serde_json::json!({"iat": now + 5}))).is_ok(),
            "within the leeway"
        );
        assert!(v
            .verify(&sign(serde_json::json!({"nbf": now + 3600})))
            .is_err());
        assert!(v
            .verify(&sign(serde_json::json!({"iat": now + 3600})))
            .is_err());
    }
}
