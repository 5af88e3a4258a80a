//! The offline dataset of a list: every ticket the list admits, then only what changed.
//!
//! **Sealed details.** Names travel only inside `sealed`: base64url (no padding) of a 12-byte
//! random nonce followed by the AES-256-GCM ciphertext (with its 16-byte tag) of
//! `{"firstName","lastName","ticketCode","ticketTypeName"}` under the key
//! SHA-256("EP-SEAL-1" ‖ qrPayload). A scanner that reads a QR code finds the item by
//! `payloadHash` (hex SHA-256 of the payload) and opens it with the payload it just read; a
//! lost device holds no readable personal data without the tickets themselves.
//!
//! **Cursor.** Changes are found by time: a ticket's or guest's `updated_at`, the ticket's
//! state on the list (`changed_at`). A transaction stamps its rows with its start time but
//! may commit later, so a pass reads "since" a horizon that no running transaction can still
//! write behind: the start of the oldest transaction open in the database when the pass began
//! (or now). Items may come twice (a scanner just stores the latest); none is missed. A pass
//! pages in ticket id order, so the cursor also holds where the pass is.

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::input::OfflineQuery;
use super::lists::locate;
use crate::caller::Caller;
use crate::error::{DomainError, DomainResult};
use crate::rules::finish;
use crate::tickets::TicketStatus;

/// The key a sealed item is encrypted under: SHA-256("EP-SEAL-1" ‖ qrPayload).
pub fn seal_key(qr_payload: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"EP-SEAL-1");
    h.update(qr_payload.as_bytes());
    h.finalize().into()
}

/// Lowercase hex SHA-256 of the payload: how a scanner finds the item of what it read.
pub fn payload_hash(qr_payload: &str) -> String {
    Sha256::digest(qr_payload.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SealedDetails {
    pub first_name: String,
    pub last_name: String,
    pub ticket_code: String,
    pub ticket_type_name: Option<String>,
}

pub fn seal(qr_payload: &str, details: &SealedDetails) -> String {
    let cipher = Aes256Gcm::new(&seal_key(qr_payload).into());
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let plain = serde_json::to_vec(details).expect("details serialize");
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), plain.as_slice())
        .expect("AES-GCM encrypts any length this small");
    let mut out = nonce.to_vec();
    out.extend(sealed);
    URL_SAFE_NO_PAD.encode(out)
}

/// Opens what [`seal`] sealed, with the payload read from the ticket.
pub fn open(qr_payload: &str, sealed: &str) -> Option<SealedDetails> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < 12 + 16 {
        return None;
    }
    let (nonce, body) = bytes.split_at(12);
    let cipher = Aes256Gcm::new(&seal_key(qr_payload).into());
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let plain = cipher.decrypt(&Nonce::from(nonce), body).ok()?;
    serde_json::from_slice(&plain).ok()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfflineItem {
    pub ticket_id: i64,
    /// Lowercase hex SHA-256 of the ticket's `qrPayload`.
    pub payload_hash: String,
    pub ticket_type_id: Option<i64>,
    pub status: TicketStatus,
    /// Inside on this list now.
    pub inside: bool,
    /// Accepted entries on this list.
    pub entries: i32,
    /// The ticket was deleted (its guest was): do not admit it (`status` says `cancelled`).
    pub deleted: bool,
    /// base64url (no padding) of nonce ‖ AES-256-GCM ciphertext of the guest's details (see
    /// the module doc); null for a ticket without a payload.
    pub sealed: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfflineData {
    pub items: Vec<OfflineItem>,
    /// For the next call: the rest of this pass while `hasMore`, else the changes since it.
    pub cursor: String,
    pub has_more: bool,
    /// This pass is a full download: the scanner replaces its dataset with it (the first
    /// call, or the list's rules changed since the cursor).
    pub full: bool,
}

/// Where a scanner is: `since` null is a full pass; `horizon` is where the next pass starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cursor {
    /// The list the cursor is for.
    l: i64,
    /// Changes since (null: everything).
    s: Option<DateTime<Utc>>,
    /// The horizon of this pass.
    h: DateTime<Utc>,
    /// The last ticket id of the pass so far.
    a: i64,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serializes"))
    }

    fn decode(s: &str, list_id: i64) -> DomainResult<Self> {
        let bad = || DomainError::field("cursor", "is not a cursor of this check-in list");
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if c.l != list_id {
            return Err(bad());
        }
        Ok(c)
    }
}

const DEFAULT_PAGE: i64 = 1000;

/// How long the tombstones of deleted tickets are kept (`ticket_tombstones`, pruned by the
/// sweep): a cursor older than that gets a full download.
pub const TOMBSTONE_DAYS: i64 = 30;

/// A pass's horizon: the start of the oldest transaction open now in this database (one that
/// may still write rows stamped before it), or now.
const HORIZON: &str = "SELECT LEAST(now(), COALESCE((SELECT min(xact_start) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL), now()))";

pub async fn data(
    db: &impl GenericClient,
    caller: &Caller,
    list_id: i64,
    query: OfflineQuery,
) -> DomainResult<OfflineData> {
    let list = locate(db, caller, list_id, false).await?;
    finish(crate::rules::field_errors(validator::Validate::validate(
        &query,
    )))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let list_changed = list.updated_at;
    let mut cursor = match &query.cursor {
        Some(c) => Cursor::decode(c, list_id)?,
        None => Cursor {
            l: list_id,
            s: None,
            h: Utc::now(),
            a: 0,
        },
    };
    if cursor.a == 0 {
        // A new pass: its horizon now; a full one when the list's rules changed since.
        let horizon: DateTime<Utc> = db.query_one(HORIZON, &[]).await?.get(0);
        // A full one when the list's rules changed since, or when the cursor is older than
        // the tombstones of deleted tickets are kept.
        let stale = Utc::now() - chrono::Duration::days(TOMBSTONE_DAYS);
        if cursor.s.is_some_and(|s| list_changed >= s || s < stale) {
            cursor.s = None;
        }
        cursor.h = horizon;
    }
    // Live tickets, and on a changes pass the tickets deleted since (tombstones), in id order.
    let stmt = db
        .prepare_cached(
            "SELECT t.id, t.qr_payload, NULL::text AS payload_hash, t.ticket_type_id, t.status,
                    t.ticket_code, COALESCE(s.inside, false) AS inside, COALESCE(s.entries, 0) AS entries,
                    g.first_name, g.last_name, tt.name AS type_name, false AS deleted
               FROM tickets t
               JOIN guests g ON g.id = t.guest_id
               LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id
               LEFT JOIN checkin_states s ON s.list_id = $1 AND s.ticket_id = t.id
              WHERE t.event_id = $2 AND t.id > $4
                AND (cardinality($3::bigint[]) = 0 OR t.ticket_type_id = ANY ($3))
                AND ($5::timestamptz IS NULL OR t.updated_at >= $5 OR g.updated_at >= $5 OR s.changed_at >= $5)
             UNION ALL
             SELECT d.ticket_id, NULL, d.payload_hash, d.ticket_type_id, 'cancelled',
                    NULL, false, 0, NULL, NULL, NULL, true
               FROM ticket_tombstones d
              WHERE $5::timestamptz IS NOT NULL AND d.event_id = $2 AND d.deleted_at >= $5
                AND d.ticket_id > $4
                AND (cardinality($3::bigint[]) = 0 OR d.ticket_type_id = ANY ($3))
              ORDER BY 1 LIMIT $6",
        )
        .await?;
    let rows = db
        .query(
            &stmt,
            &[
                &list_id,
                &list.rules.event_id,
                &list.rules.ticket_type_ids,
                &cursor.a,
                &cursor.s,
                &(limit + 1),
            ],
        )
        .await?;
    let has_more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len().min(limit as usize));
    for r in rows.iter().take(limit as usize) {
        let payload: Option<String> = r.get("qr_payload");
        let deleted: bool = r.get("deleted");
        let sealed = match (&payload, deleted) {
            (Some(p), false) => Some(seal(
                p,
                &SealedDetails {
                    first_name: r.get("first_name"),
                    last_name: r.get("last_name"),
                    ticket_code: r.get("ticket_code"),
                    ticket_type_name: r.get("type_name"),
                },
            )),
            _ => None,
        };
        items.push(OfflineItem {
            ticket_id: r.get("id"),
            payload_hash: match &payload {
                Some(p) => payload_hash(p),
                None => r
                    .get::<_, Option<String>>("payload_hash")
                    .unwrap_or_default(),
            },
            ticket_type_id: r.get("ticket_type_id"),
            status: crate::sql::get(r, "status")?,
            inside: r.get("inside"),
            entries: r.get("entries"),
            deleted,
            sealed,
        });
    }
    let full = cursor.s.is_none();
    let next = if has_more {
        Cursor {
            a: items.last().map(|i| i.ticket_id).unwrap_or(cursor.a),
            ..cursor.clone()
        }
    } else {
        Cursor {
            l: list_id,
            s: Some(cursor.h),
            h: cursor.h,
            a: 0,
        }
    };
    Ok(OfflineData {
        items,
        cursor: next.encode(),
        has_more,
        full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_item_opens_with_its_payload_only() {
        let details = SealedDetails {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            ticket_code: "TC-2027-ABCDEFGH".into(),
            ticket_type_name: Some("VIP".into()),
        };
        let sealed = seal("EP1.payload", &details);
        assert_eq!(open("EP1.payload", &sealed), Some(details.clone()));
        assert_eq!(open("EP1.other", &sealed), None);
        // A fresh nonce every time.
        assert_ne!(seal("EP1.payload", &details), sealed);
        assert_eq!(
            payload_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cursors_belong_to_their_list() {
        let c = Cursor {
            l: 3,
            s: None,
            h: Utc::now(),
            a: 10,
        };
        assert_eq!(Cursor::decode(&c.encode(), 3).unwrap(), c);
        assert!(Cursor::decode(&c.encode(), 4).is_err());
        assert!(Cursor::decode("nope", 3).is_err());
    }
}
