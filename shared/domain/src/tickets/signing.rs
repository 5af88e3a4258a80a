//! Signed QR payloads for tickets (Ed25519), verifiable offline by scanner apps.
//!
//! # Payload format (version `EP1`)
//!
//! ```text
//! EP1.<kid>.<ticketId>.<eventId>.<ticketCode>.<signature>
//! ```
//!
//! Six fields separated by `.` (ASCII 0x2E); no field contains a dot, no whitespace.
//!
//! | field        | content                                                                    |
//! |--------------|----------------------------------------------------------------------------|
//! | `EP1`        | literal format tag                                                         |
//! | `kid`        | key id: the first 8 lowercase hex characters of SHA-256 of the 32-byte public key |
//! | `ticketId`   | ticket id, decimal, positive, no sign and no leading zero (fits in `i64`)  |
//! | `eventId`    | event id, same rules                                                       |
//! | `ticketCode` | the ticket code, e.g. `TC-2027-ABCDEFGH23`: `A`–`Z`, `0`–`9` and `-` only   |
//! | `signature`  | base64url **without padding** (RFC 4648 §5, 86 characters) of the 64-byte Ed25519 signature |
//!
//! The signature is computed over the exact ASCII bytes of everything before the
//! last dot, i.e. `EP1.<kid>.<ticketId>.<eventId>.<ticketCode>`.
//!
//! Example (shape only): `EP1.3f2a91c0.42.7.TC-2027-ABCDEFGH23.<86 base64url chars>`.
//! With ids up to 10^12 and a 10-character code suffix a payload is 146 characters,
//! a version-8 QR code at error-correction level M.
//!
//! # Offline verification (what [`verify_offline`] does)
//!
//! A scanner fetches `GET /api/events/{eventId}/scanner-key` →
//! `{"algorithm": "Ed25519", "keyId", "publicKey": "<standard base64 of 32 bytes>"}`, then,
//! for each scanned string:
//!
//! 1. at most 256 characters; split on `.`: exactly 6 parts, the first `EP1`;
//! 2. `kid` is 8 lowercase hex characters, the ids positive decimal integers, the code
//!    matches `[A-Z0-9-]+`, the signature decodes (base64url, no padding, no stray bits)
//!    to exactly 64 bytes; any failure so far means a malformed payload;
//! 3. `kid` must equal the key id of the public key (else the payload was signed with
//!    another key: refresh the key, or reject);
//! 4. verify the signature over the bytes before the last dot with *strict* Ed25519
//!    verification (RFC 8032 §5.1.7 with canonical `S` and no small-order keys or `R`,
//!    as `ed25519-dalek`'s `verify_strict`);
//! 5. optionally check that `eventId` is the event being scanned.
//!
//! A valid signature proves the server issued the ticket; whether it is still active and
//! not yet used is only known online (`POST /api/tickets/validate`).
//!
//! # Keys
//!
//! [`TicketKeys`] holds the deployment's signing key and, for key rotation, retired
//! public keys that are still accepted (payloads name their key by `kid`). [`load`] takes
//! them from `TICKET_SIGNING_KEY` / `TICKET_VERIFY_KEYS`, or in development from a key
//! file that is created on first start.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::path::Path;

use anyhow::{bail, ensure, Context};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The format tag, first field of every payload.
pub const PREFIX: &str = "EP1";
/// Environment variable with the signing key: standard base64 of the 32-byte seed.
pub const SIGNING_KEY_ENV: &str = "TICKET_SIGNING_KEY";
/// Environment variable with retired verification keys: `kid:base64pub,kid:base64pub`.
pub const VERIFY_KEYS_ENV: &str = "TICKET_VERIFY_KEYS";

/// Longest payload accepted for parsing (real ones are < 190 characters); bounds the
/// work done on untrusted input.
const MAX_PAYLOAD_LEN: usize = 256;
const KID_LEN: usize = 8;

/// What a valid payload says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadClaims {
    pub kid: String,
    pub ticket_id: i64,
    pub event_id: i64,
    pub code: String,
}

/// Why a payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not an `EP1` payload of the documented shape.
    #[error("malformed ticket payload")]
    Malformed,
    /// Well-formed, but signed with a key that is not (or no longer) known.
    #[error("ticket payload signed with an unknown key")]
    UnknownKey,
    /// Well-formed, known key, but the signature does not verify.
    #[error("invalid ticket payload signature")]
    BadSignature,
}

/// Whether `s` is meant as a signed payload (as opposed to a typed ticket code).
pub fn looks_like_payload(s: &str) -> bool {
    s.starts_with("EP1.")
}

/// The key id of a public key: first 8 lowercase hex characters of its SHA-256.
fn kid_of(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes())[..KID_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_public_key(public_key_base64: &str) -> anyhow::Result<VerifyingKey> {
    let bytes: [u8; 32] = STANDARD
        .decode(public_key_base64.trim())
        .context("public key is not valid base64")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("public key is not 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).context("public key is not a valid Ed25519 key")
}

/// Signing key plus verification-only keys, looked up by kid.
#[derive(Clone)]
pub struct TicketKeys {
    signing: SigningKey,
    kid: String,
    /// Retired keys still accepted for verification, with their kids.
    extra: Vec<(String, VerifyingKey)>,
}

impl fmt::Debug for TicketKeys {
    // Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("kid", &self.kid)
            .field(
                "extra_kids",
                &self.extra.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    fn from_signing_key(signing: SigningKey) -> Self {
        let kid = kid_of(&signing.verifying_key());
        Self {
            signing,
            kid,
            extra: Vec::new(),
        }
    }

    /// A fresh key from the OS's CSPRNG.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// The key from its seed (standard base64 of 32 bytes) plus retired public keys as
    /// `(kid, standard base64 of 32 bytes)`; each kid must match its key.
    pub fn from_seed_base64(
        seed_b64: &str,
        extra_public: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let seed: [u8; 32] = STANDARD
            .decode(seed_b64.trim())
            .context("signing key seed is not valid base64")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("signing key seed is not 32 bytes"))?;
        let mut keys = Self::from_signing_key(SigningKey::from_bytes(&seed));
        for (kid, public) in extra_public {
            let key =
                decode_public_key(public).with_context(|| format!("verification key {kid:?}"))?;
            let actual = kid_of(&key);
            ensure!(
                actual == *kid,
                "verification key {kid:?} has key id {actual:?}"
            );
            if actual != keys.kid && keys.extra.iter().all(|(k, _)| *k != actual) {
                keys.extra.push((actual, key));
            }
        }
        Ok(keys)
    }

    /// Key id of the signing key (the `keyId` of the scanner-key endpoint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Standard base64 of the 32-byte public signing key (the `publicKey` for scanners).
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.signing.verifying_key().as_bytes())
    }

    /// Standard base64 of the 32-byte seed: the secret, for `TICKET_SIGNING_KEY`.
    pub fn seed_base64(&self) -> String {
        STANDARD.encode(self.signing.to_bytes())
    }

    /// The signed payload for a ticket. `ticket_id`/`event_id` must be positive and
    /// `code` of the ticket-code alphabet, else the payload will not verify.
    pub fn sign(&self, ticket_id: i64, event_id: i64, code: &str) -> String {
        debug_assert!(ticket_id > 0 && event_id > 0 && valid_code(code));
        let signed = format!("{PREFIX}.{}.{ticket_id}.{event_id}.{code}", self.kid);
        let signature = self.signing.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// Verifies a payload signed by the signing key or any extra key.
    pub fn verify(&self, payload: &str) -> Result<PayloadClaims, PayloadError> {
        let parsed = Parsed::parse(payload)?;
        let own = self.signing.verifying_key();
        let key = if parsed.claims.kid == self.kid {
            &own
        } else {
            self.extra
                .iter()
                .find(|(kid, _)| *kid == parsed.claims.kid)
                .map(|(_, key)| key)
                .ok_or(PayloadError::UnknownKey)?
        };
        parsed.verify_with(key)
    }
}

/// Offline verification with the scanner key (standard base64 of the 32-byte public
/// key): the routine documented in the module docs. A public key that does not decode
/// to a valid Ed25519 key, or whose kid differs from the payload's, is `UnknownKey`.
pub fn verify_offline(
    payload: &str,
    public_key_base64: &str,
) -> Result<PayloadClaims, PayloadError> {
    let parsed = Parsed::parse(payload)?;
    let key = decode_public_key(public_key_base64).map_err(|_| PayloadError::UnknownKey)?;
    if kid_of(&key) != parsed.claims.kid {
        return Err(PayloadError::UnknownKey);
    }
    parsed.verify_with(&key)
}

/// A payload that has the documented shape, signature not yet checked.
struct Parsed<'a> {
    signed: &'a str,
    signature: Signature,
    claims: PayloadClaims,
}

impl<'a> Parsed<'a> {
    fn parse(payload: &'a str) -> Result<Self, PayloadError> {
        use PayloadError::Malformed;
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(Malformed);
        }
        let (signed, signature) = payload.rsplit_once('.').ok_or(Malformed)?;
        let mut parts = signed.split('.');
        let (Some(PREFIX), Some(kid), Some(ticket_id), Some(event_id), Some(code), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Malformed);
        };
        let kid_ok = kid.len() == KID_LEN
            && kid
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !kid_ok || !valid_code(code) {
            return Err(Malformed);
        }
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Malformed)?
            .try_into()
            .map_err(|_| Malformed)?;
        Ok(Self {
            signed,
            signature: Signature::from_bytes(&signature),
            claims: PayloadClaims {
                kid: kid.to_owned(),
                ticket_id: parse_id(ticket_id).ok_or(Malformed)?,
                event_id: parse_id(event_id).ok_or(Malformed)?,
                code: code.to_owned(),
            },
        })
    }

    fn verify_with(self, key: &VerifyingKey) -> Result<PayloadClaims, PayloadError> {
        key.verify_strict(self.signed.as_bytes(), &self.signature)
            .map_err(|_| PayloadError::BadSignature)?;
        Ok(self.claims)
    }
}

/// A positive id in canonical decimal (no sign, no leading zero).
fn parse_id(s: &str) -> Option<i64> {
    let canonical = !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| s.parse().ok()).flatten()
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// Where the keys of [`load`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// From `TICKET_SIGNING_KEY` (a deployment).
    Configured,
    /// From the local development key file; `created` when it was just generated.
    DevelopmentFile { created: bool },
}

/// Loads the ticket keys.
///
/// With `TICKET_SIGNING_KEY` set (and not blank) it is the seed, standard base64 of 32
/// bytes. Otherwise the seed is read from `dev_key_file`, or generated and written there
/// (parent directories created, mode 0600 on unix) so a local server keeps its key
/// across restarts. In both cases `TICKET_VERIFY_KEYS`, comma-separated `kid:base64pub`,
/// adds retired keys still accepted for verification.
pub fn load(
    env: impl Fn(&str) -> Option<String>,
    dev_key_file: &Path,
) -> anyhow::Result<(TicketKeys, KeySource)> {
    let extra = parse_verify_keys(&env(VERIFY_KEYS_ENV).unwrap_or_default())?;
    if let Some(seed) = env(SIGNING_KEY_ENV).filter(|s| !s.trim().is_empty()) {
        let keys = TicketKeys::from_seed_base64(&seed, &extra)
            .with_context(|| format!("invalid {SIGNING_KEY_ENV}"))?;
        return Ok((keys, KeySource::Configured));
    }
    let from_file = |seed: &str| {
        TicketKeys::from_seed_base64(seed, &extra)
            .with_context(|| format!("invalid key in {}", dev_key_file.display()))
    };
    match std::fs::read_to_string(dev_key_file) {
        Ok(seed) => Ok((
            from_file(&seed)?,
            KeySource::DevelopmentFile { created: false },
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let seed = TicketKeys::generate().seed_base64();
            match write_new_key_file(dev_key_file, &seed) {
                Ok(()) => Ok((
                    from_file(&seed)?,
                    KeySource::DevelopmentFile { created: true },
                )),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let seed = std::fs::read_to_string(dev_key_file)
                        .with_context(|| format!("reading {}", dev_key_file.display()))?;
                    Ok((
                        from_file(&seed)?,
                        KeySource::DevelopmentFile { created: false },
                    ))
                }
                Err(e) => Err(e).with_context(|| format!("writing {}", dev_key_file.display())),
            }
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", dev_key_file.display())),
    }
}

fn parse_verify_keys(value: &str) -> anyhow::Result<Vec<(String, String)>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once(':') {
            Some((kid, public)) => Ok((kid.trim().to_owned(), public.trim().to_owned())),
            None => bail!("{VERIFY_KEYS_ENV}: entry {entry:?} is not kid:base64pub"),
        })
        .collect()
}

/// Creates `path` (failing if it exists) holding `seed` and a newline, readable only by
/// its owner on unix.
fn write_new_key_file(path: &Path, seed: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{seed}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "TC-2027-ABCDEFGH23";
    const MAX_ID: i64 = 1_000_000_000_000;

    #[test]
    fn sign_then_verify_round_trips() {
        let keys = TicketKeys::generate();
        let payload = keys.sign(42, 7, CODE);
        assert!(looks_like_payload(&payload));
        assert!(payload.starts_with(&format!("EP1.{}.42.7.{CODE}.", keys.kid())));
        let expected = PayloadClaims {
            kid: keys.kid().to_owned(),
            ticket_id: 42,
            event_id: 7,
            code: CODE.to_owned(),
        };
        assert_eq!(keys.verify(&payload), Ok(expected.clone()));
        assert_eq!(
            verify_offline(&payload, &keys.public_key_base64()),
            Ok(expected)
        );
    }

    #[test]
    fn kid_is_sha256_prefix_of_public_key() {
        let keys = TicketKeys::generate();
        let public = STANDARD.decode(keys.public_key_base64()).unwrap();
        let digest = Sha256::digest(&public);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(keys.kid(), &hex[..8]);
    }

    #[test]
    fn seed_round_trips() {
        let keys = TicketKeys::generate();
        let again = TicketKeys::from_seed_base64(&keys.seed_base64(), &[]).unwrap();
        assert_eq!(again.kid(), keys.kid());
        assert_eq!(again.public_key_base64(), keys.public_key_base64());
        assert!(TicketKeys::from_seed_base64("c2hvcnQ=", &[]).is_err());
        assert!(!format!("{keys:?}").contains(&keys.seed_base64()));
    }

    #[test]
    fn any_single_character_change_is_rejected() {
        let keys = TicketKeys::generate();
        let public = keys.public_key_base64();
        let payload = keys.sign(MAX_ID, 123_456, CODE);
        for (i, original) in payload.char_indices() {
            // A look-alike of the same class (so parsing succeeds and the signature is
            // what refuses it), and a separator.
            let similar = match original {
                '0'..='8' | 'a'..='y' | 'A'..='Y' => (original as u8 + 1) as char,
                '9' => '8',
                'z' | 'Z' => 'a',
                '-' => '_',
                _ => '-',
            };
            for c in [similar, '.'].into_iter().filter(|&c| c != original) {
                let mut tampered = payload.clone();
                tampered.replace_range(i..i + 1, c.encode_utf8(&mut [0; 4]));
                assert!(keys.verify(&tampered).is_err(), "accepted {tampered}");
                assert!(
                    verify_offline(&tampered, &public).is_err(),
                    "accepted {tampered}"
                );
            }
        }
    }

    #[test]
    fn wrong_key_is_rejected() {
        let (a, b) = (TicketKeys::generate(), TicketKeys::generate());
        let payload = a.sign(1, 2, CODE);
        assert_eq!(b.verify(&payload), Err(PayloadError::UnknownKey));
        assert_eq!(
            verify_offline(&payload, &b.public_key_base64()),
            Err(PayloadError::UnknownKey)
        );
        assert_eq!(
            verify_offline(&payload, "not base64"),
            Err(PayloadError::UnknownKey)
        );
        // Right kid, wrong signature.
        let forged = format!(
            "{}.{}",
            payload.rsplit_once('.').unwrap().0,
            b.sign(1, 2, CODE).rsplit_once('.').unwrap().1
        );
        assert_eq!(a.verify(&forged), Err(PayloadError::BadSignature));
        assert_eq!(
            verify_offline(&forged, &a.public_key_base64()),
            Err(PayloadError::BadSignature)
        );
    }

    #[test]
    fn rotation_accepts_retired_keys() {
        let a = TicketKeys::generate();
        let old = a.sign(5, 6, CODE);
        let b_seed = TicketKeys::generate().seed_base64();
        let b =
            TicketKeys::from_seed_base64(&b_seed, &[(a.kid().to_owned(), a.public_key_base64())])
                .unwrap();
        assert_eq!(b.verify(&old).unwrap().kid, a.kid());
        assert_eq!(b.verify(&b.sign(5, 6, CODE)).unwrap().kid, b.kid());
        // A kid that does not match its key is a configuration error.
        let wrong = [("00000000".to_owned(), a.public_key_base64())];
        assert!(TicketKeys::from_seed_base64(&b_seed, &wrong).is_err());
    }

    #[test]
    fn malformed_inputs_are_malformed() {
        let keys = TicketKeys::generate();
        let good = keys.sign(1, 2, CODE);
        let (signed, sig) = good.rsplit_once('.').unwrap();
        let kid = keys.kid();
        let sig63 = URL_SAFE_NO_PAD.encode([7u8; 63]);
        let padded = STANDARD.encode(URL_SAFE_NO_PAD.decode(sig).unwrap());
        let cases = [
            String::new(),
            "EP1".to_owned(),
            signed.to_owned(),
            format!("EP1.{kid}.1.2.{sig}"),
            format!("EP1.{kid}.1.2.{CODE}.x.{sig}"),
            format!("EP2.{kid}.1.2.{CODE}.{sig}"),
            format!("EP1.{kid}.one.2.{CODE}.{sig}"),
            format!("EP1.{kid}.1.2x.{CODE}.{sig}"),
            format!("EP1.{kid}.0.2.{CODE}.{sig}"),
            format!("EP1.{kid}.-1.2.{CODE}.{sig}"),
            format!("EP1.{kid}.+1.2.{CODE}.{sig}"),
            format!("EP1.{kid}.01.2.{CODE}.{sig}"),
            format!("EP1.{kid}.99999999999999999999.2.{CODE}.{sig}"),
            format!("EP1.{kid}.1.2.tc-2027-abc.{sig}"),
            format!("EP1.{kid}.1.2..{sig}"),
            // An uppercase kid (made so even when the real kid has only digits).
            format!("EP1.A{}.1.2.{CODE}.{sig}", kid[1..].to_uppercase()),
            format!("EP1.abc.1.2.{CODE}.{sig}"),
            format!("{signed}.not*base64"),
            format!("{signed}.{padded}"),
            format!("{signed}.{sig63}"),
            format!("{signed}."),
            format!("{good}{}", "A".repeat(MAX_PAYLOAD_LEN)),
        ];
        for case in &cases {
            assert_eq!(keys.verify(case), Err(PayloadError::Malformed), "{case:?}");
            assert_eq!(
                verify_offline(case, &keys.public_key_base64()),
                Err(PayloadError::Malformed),
                "{case:?}"
            );
        }
        assert!(!looks_like_payload(CODE));
    }

    #[test]
    fn realistic_max_payload_is_short() {
        let payload = TicketKeys::generate().sign(MAX_ID, MAX_ID, "TC-2027-ABCDEFGH23");
        assert!(payload.len() <= 180, "{} chars", payload.len());
        assert_eq!(payload.len(), 146);
    }

    #[test]
    fn load_prefers_configured_key() {
        let keys = TicketKeys::generate();
        let retired = TicketKeys::generate();
        let verify = format!(" {}:{} ,", retired.kid(), retired.public_key_base64());
        let seed = keys.seed_base64();
        let env = |name: &str| match name {
            SIGNING_KEY_ENV => Some(seed.clone()),
            VERIFY_KEYS_ENV => Some(verify.clone()),
            _ => None,
        };
        let missing = std::env::temp_dir().join("never-created-ticket-key");
        let (loaded, source) = load(env, &missing).unwrap();
        assert_eq!(source, KeySource::Configured);
        assert_eq!(loaded.kid(), keys.kid());
        assert!(loaded.verify(&retired.sign(1, 2, CODE)).is_ok());
        assert!(!missing.exists());
        let bad = |name: &str| (name == SIGNING_KEY_ENV).then(|| "bm9wZQ==".to_owned());
        assert!(load(bad, &missing).is_err());
    }

    #[test]
    fn dev_key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!(
            "ticket-keys-test-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = dir.join("nested").join("ticket-signing.key");
        let no_env = |_: &str| None;
        let (first, source) = load(no_env, &file).unwrap();
        assert_eq!(source, KeySource::DevelopmentFile { created: true });
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, source) = load(no_env, &file).unwrap();
        assert_eq!(source, KeySource::DevelopmentFile { created: false });
        assert_eq!(second.seed_base64(), first.seed_base64());
        assert!(second.verify(&first.sign(3, 4, CODE)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
