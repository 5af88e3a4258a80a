//! The ticket signing key, generated at deploy: the `Custom::TicketSigningKey` resource
//! handled by the `migrate` function.
//!
//! `TICKET_SIGNING_KEY` must be the standard base64 of a 32-byte Ed25519 seed, a format
//! CloudFormation's `GenerateSecretString` cannot produce. So the template creates the
//! secret empty, and this resource (properties `SecretId`, `Rotation`) fills it:
//!
//! | request | effect |
//! |---|---|
//! | Create, secret empty | a new key is generated and stored (`PutSecretValue`) |
//! | Create/Update, secret holds a valid seed | kept as is (an operator's key is adopted) |
//! | Create/Update, secret holds anything else | `FAILED`: nothing is overwritten |
//! | Update raising `Rotation` (e.g. 1 → 2) | a new key is stored; the old one becomes the secret's `AWSPREVIOUS` version |
//! | Update lowering `Rotation` (2 → 1: CloudFormation rolling a failed update back) | the previous key becomes current again and the rolled-back one its `AWSPREVIOUS` (no key is lost: tickets signed with either keep verifying) |
//! | Update with a `Rotation` that is not a number | kept (the template allows digits only) |
//! | Delete | nothing (the secret is retained: losing it invalidates every issued ticket) |
//!
//! Attributes (`!GetAtt`): `KeyId` and `PublicKey` of the current key, and `VerifyKeys`:
//! `kid:base64pub` of the `AWSPREVIOUS` version when it holds another key (else empty),
//! which the template adds to the functions' `TICKET_VERIFY_KEYS`, so that tickets signed
//! before a rotation keep validating. Changing that variable also replaces the functions'
//! execution environments, which then read the new key.
//!
//! `PutSecretValue` uses a token derived from the CloudFormation request id: a retried
//! invocation of the same request does not rotate twice.

use anyhow::Context;
use aws_sdk_secretsmanager::Client;
use serde_json::{json, Map};
use sha2::{Digest, Sha256};

use domain::tickets::signing::TicketKeys;
use platform::secrets::secret_field;

use crate::cfn::{CustomResourceRequest, Outcome, RequestType};

pub const RESOURCE_TYPE: &str = "Custom::TicketSigningKey";

/// The state of the key after [`ensure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    pub public_key: String,
    /// `kid:base64pub` of the previous key, or empty.
    pub verify_keys: String,
    /// What this call did: `generated`, `rotated` or `kept`.
    pub action: &'static str,
}

/// What an Update does to the key, from the old and new `Rotation` properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    Keep,
    /// `Rotation` went up: a new key.
    Rotate,
    /// `Rotation` went down (a rollback): the previous key again.
    Restore,
}

impl KeyChange {
    pub fn of(request: &CustomResourceRequest) -> Self {
        if request.request_type != RequestType::Update {
            return KeyChange::Keep;
        }
        let number = |v: Option<&str>| v.and_then(|s| s.trim().parse::<u64>().ok());
        let new = number(request.property("Rotation"));
        let old = number(request.old_property("Rotation"));
        match (old, new) {
            (Some(old), Some(new)) if new > old => KeyChange::Rotate,
            (Some(old), Some(new)) if new < old => KeyChange::Restore,
            _ => KeyChange::Keep,
        }
    }
}

/// Makes sure `secret_id` holds a signing key, rotated or restored as `change` says;
/// `request_token` makes the write idempotent.
pub async fn ensure(
    client: &Client,
    secret_id: &str,
    change: KeyChange,
    request_token: &str,
) -> anyhow::Result<KeyInfo> {
    let token = version_token(request_token);
    let current = read(client, secret_id, "AWSCURRENT").await?;
    let current_keys = match &current {
        Some((value, _)) => Some(parse(value).with_context(|| {
            format!("secret {secret_id} holds a value that is not a base64 32-byte seed; refusing to overwrite it")
        })?),
        None => None,
    };
    let already_written = current
        .as_ref()
        .is_some_and(|(_, version)| version.as_deref() == Some(token.as_str()));
    // A rollback puts the previous key back, when there is one that differs.
    let restorable = match (change, &current_keys) {
        (KeyChange::Restore, Some(current)) if !already_written => {
            match read(client, secret_id, "AWSPREVIOUS").await? {
                Some((value, _)) => parse(&value).ok().filter(|p| p.kid() != current.kid()),
                None => None,
            }
        }
        _ => None,
    };
    let (keys, action) = match (current_keys, restorable) {
        (Some(_), Some(previous)) => {
            put(client, secret_id, &previous, &token).await?;
            tracing::info!(
                key_id = previous.kid(),
                "ticket signing key restored (rollback)"
            );
            (previous, "restored")
        }
        (Some(keys), None) if change != KeyChange::Rotate || already_written => (keys, "kept"),
        (existing, _) => {
            let keys = TicketKeys::generate();
            put(client, secret_id, &keys, &token).await?;
            let action = if existing.is_some() {
                "rotated"
            } else {
                "generated"
            };
            tracing::info!(key_id = keys.kid(), action, "ticket signing key stored");
            (keys, action)
        }
    };
    let verify_keys = match read(client, secret_id, "AWSPREVIOUS").await? {
        Some((value, _)) => match parse(&value) {
            Ok(previous) if previous.kid() != keys.kid() => {
                format!("{}:{}", previous.kid(), previous.public_key_base64())
            }
            Ok(_) => String::new(),
            Err(e) => {
                tracing::warn!(error = %e, "the previous version of the ticket key secret is no key: not kept for verification");
                String::new()
            }
        },
        None => String::new(),
    };
    Ok(KeyInfo {
        key_id: keys.kid().to_owned(),
        public_key: keys.public_key_base64(),
        verify_keys,
        action,
    })
}

/// Stores `keys` as the secret's current version (the old current one becomes `AWSPREVIOUS`).
async fn put(
    client: &Client,
    secret_id: &str,
    keys: &TicketKeys,
    token: &str,
) -> anyhow::Result<()> {
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(keys.seed_base64())
        .client_request_token(token)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "PutSecretValue on {secret_id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    Ok(())
}

/// The custom resource's work (run by [`crate::cfn::respond`]).
pub async fn on_request(request: CustomResourceRequest) -> anyhow::Result<Outcome> {
    if request.request_type == RequestType::Delete {
        return Ok(Outcome {
            reason: "the secret is retained; nothing to do".into(),
            ..Outcome::default()
        });
    }
    let secret_id = request
        .property("SecretId")
        .context("the resource has no SecretId property")?
        .to_owned();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = Client::new(&config);
    let info = ensure(
        &client,
        &secret_id,
        KeyChange::of(&request),
        &request.request_id,
    )
    .await?;
    let mut data = Map::new();
    data.insert("KeyId".into(), json!(info.key_id));
    data.insert("PublicKey".into(), json!(info.public_key));
    data.insert("VerifyKeys".into(), json!(info.verify_keys));
    Ok(Outcome {
        // The secret is the resource: a new SecretId is a new resource.
        physical_resource_id: Some(secret_id),
        reason: format!("ticket signing key {} ({})", info.key_id, info.action),
        data,
    })
}

/// The secret's value at `stage` and its version id; `None` when there is none (a secret
/// created without a value has no `AWSCURRENT` version).
async fn read(
    client: &Client,
    secret_id: &str,
    stage: &str,
) -> anyhow::Result<Option<(String, Option<String>)>> {
    match client
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage(stage)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .secret_string()
            .filter(|s| !s.trim().is_empty())
            .map(|s| (s.to_owned(), out.version_id().map(str::to_owned)))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!(
            "GetSecretValue ({stage}) on {secret_id}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
        )),
    }
}

fn parse(value: &str) -> anyhow::Result<TicketKeys> {
    TicketKeys::from_seed_base64(&secret_field(value, "secret")?, &[])
}

/// A `ClientRequestToken` (32–64 characters) derived from a request id.
fn version_token(request_id: &str) -> String {
    Sha256::digest(format!("ticket-signing-key:{request_id}").as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_long_enough() {
        let t = version_token("0f1e-request");
        assert_eq!(t.len(), 32);
        assert_eq!(t, version_token("0f1e-request"));
        assert_ne!(t, version_token("another"));
    }

    #[test]
    fn seeds_parse_plain_or_as_json() {
        let keys = TicketKeys::generate();
        let seed = keys.seed_base64();
        assert_eq!(parse(&seed).unwrap().kid(), keys.kid());
        assert_eq!(
            parse(&json!({"secret": seed}).to_string()).unwrap().kid(),
            keys.kid()
        );
        assert!(parse("not a key").is_err());
    }
}
