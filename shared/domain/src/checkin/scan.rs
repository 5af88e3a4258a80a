//! Scanning on a check-in list: online scans, offline batches and supervised undo.
//!
//! **Who may pass.** A ticket's state on a list is one `checkin_states` row (inside or not,
//! accepted entries and exits). Every writer of that row — the one-statement fast paths, the
//! locked path, offline batches, reverts — first locks the ticket row (`FOR NO KEY UPDATE`),
//! then the state row (a revert then the guest row): the order of the guest commands (ticket,
//! then guest), so nothing deadlocks, and all scans of one ticket are serialized, on every
//! list. A first entry writes no guest row: the ticket's `checked_in_at` checks its guest in
//! (migrations/V22; `guests::model::GUEST_STATUS`).
//!
//! **Online.** `ENTRY`/`EXIT` accept a scan in one statement (no `BEGIN`/`COMMIT` round
//! trips): lock the ticket if it is admitted now, upsert its state with a condition that
//! PostgreSQL evaluates on the row's latest version (`ON CONFLICT … DO UPDATE … WHERE NOT
//! inside AND (entries = 0 OR reentry)`), mark the ticket validated and checked in on its
//! first entry anywhere, write the scan log's row, and return the ticket. Of any number of racing
//! entries, exactly one finds the ticket outside. A statement that accepts nothing (a
//! refusal, the rare path) is followed by [`apply`] in a transaction: the ticket locked, the
//! rules of [`super::door::judge`] decide, and the attempt is logged with its result.
//!
//! **Offline.** A batch is [`apply`] over many attempts in one transaction: its tickets
//! locked in id order, its scans applied in `scannedAt` order against what the server knows,
//! every write done in a handful of set-based statements (so 500 scans cost about what 5
//! online ones do). An admission the server would have refused because the ticket was
//! already in or cancelled is recorded as a `conflict`, linked to the scan that admitted it
//! first.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::door::{self, Direction, DoorTicket, Presence, Refusal, ScanResult};
use super::input::{ScanBatch, ScanInput};
use super::lists::{conflicts_by_id, locate, Located};
use super::model::{scan_from_row, ScanRecord, SCAN_COLUMNS};
use crate::caller::Caller;
use crate::error::{DbResultExt, DomainError, DomainResult, ErrorCode};
use crate::idempotency::{self, Key};
use crate::rules::Input;
use crate::tickets::signing::{self, TicketKeys};
use crate::tickets::{code, queries, Ticket};
use crate::webhooks::emit::INLINE;
use crate::webhooks::{self, EventType};
use crate::work::{Done, Effects};

/// `200` of an accepted scan.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scanned {
    pub scan_id: i64,
    /// Always `accepted` (refusals are errors).
    #[schema(example = "accepted")]
    pub result: String,
    #[serde(rename = "type")]
    pub direction: Direction,
    pub ticket: Ticket,
    pub scanned_at: DateTime<Utc>,
}

/// One answer of a batch, in request order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub client_scan_id: Uuid,
    pub scan_id: i64,
    /// `accepted`, `conflict` or `rejected`.
    pub result: String,
    /// The error code of a conflict (TICKET_ALREADY_VALIDATED, TICKET_CANCELLED) or a rejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The `data` of a `scan.conflict` webhook.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictEvent {
    pub event_id: i64,
    pub list_id: i64,
    #[serde(flatten)]
    pub conflict: super::Conflict,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResults {
    pub results: Vec<BatchResult>,
}

/// What the scanner read, resolved to a ticket id (`Ok(None)`: nothing matches), with what a
/// signed payload says about the ticket (which the ticket row must still say).
#[derive(Debug, Clone)]
pub(crate) struct Read {
    ticket: Result<Option<i64>, Refusal>,
    claims: Option<(i64, String)>,
}

impl Read {
    pub(crate) fn ticket(id: i64) -> Self {
        Read {
            ticket: Ok(Some(id)),
            claims: None,
        }
    }
}

/// Resolves what was read: a signed payload verifies (else INVALID_SIGNATURE), a typed code
/// is looked up; anything else matches nothing.
pub(crate) async fn resolve(
    db: &impl GenericClient,
    keys: &TicketKeys,
    code: &str,
) -> DomainResult<Read> {
    let code = code.trim();
    if signing::looks_like_payload(code) {
        return Ok(match keys.verify(code) {
            Ok(c) => Read {
                ticket: Ok(Some(c.ticket_id)),
                claims: Some((c.event_id, c.code)),
            },
            Err(e) => {
                tracing::info!(error = %e, "scanned payload does not verify");
                Read {
                    ticket: Err(Refusal::InvalidSignature),
                    claims: None,
                }
            }
        });
    }
    let upper = code.to_ascii_uppercase();
    if !code::looks_like_code(&upper) {
        return Ok(Read {
            ticket: Ok(None),
            claims: None,
        });
    }
    let stmt = db
        .prepare_cached("SELECT id FROM tickets WHERE ticket_code = $1")
        .await?;
    Ok(Read {
        ticket: Ok(db.query_opt(&stmt, &[&upper]).await?.map(|r| r.get(0))),
        claims: None,
    })
}

/// One scan to apply.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub read: Read,
    pub scanner_id: String,
    pub location: String,
    pub direction: Direction,
    /// Offline: when it happened on the device. Online: `None` (now).
    pub scanned_at: Option<DateTime<Utc>>,
    pub client_scan_id: Option<Uuid>,
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub scan_id: i64,
    pub result: ScanResult,
    pub refusal: Option<Refusal>,
    pub ticket_id: Option<i64>,
    /// Written by this call (false: the stored result of a scan uploaded before).
    pub written: bool,
}

/// The accepted, not reverted, entry that holds a ticket on a list (the "first scan" a
/// refusal or a conflict points at).
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub scan_id: i64,
    pub scanned_at: DateTime<Utc>,
    pub scanner_id: String,
    pub location: String,
}

/// Applies `attempts` on `list` in `tx` (see the module doc).
pub(crate) async fn apply(
    tx: &Transaction<'_>,
    list: &Located,
    attempts: &[Attempt],
    offline: bool,
) -> DomainResult<Applied> {
    let rules = &list.rules;
    let list_id = rules.id;

    // Lock the tickets, in id order.
    let mut ids: Vec<i64> = attempts
        .iter()
        .filter_map(|a| a.read.ticket.ok().flatten())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let stmt = tx
        .prepare_cached(
            "SELECT id, event_id, guest_id, ticket_type_id, status = 'cancelled' AS cancelled,
                    validated_at IS NOT NULL AS validated, ticket_code
               FROM tickets WHERE id = ANY ($1) ORDER BY id FOR NO KEY UPDATE",
        )
        .await?;
    let mut tickets: HashMap<i64, (DoorTicket, String)> = HashMap::new();
    for r in tx.query(&stmt, &[&ids]).await? {
        let t = DoorTicket {
            id: r.get("id"),
            event_id: r.get("event_id"),
            guest_id: r.get("guest_id"),
            ticket_type_id: r.get("ticket_type_id"),
            cancelled: r.get("cancelled"),
            validated: r.get("validated"),
        };
        tickets.insert(t.id, (t, r.get("ticket_code")));
    }

    // Offline scans already recorded (an upload retried): their first result, nothing written.
    let mut known: HashMap<Uuid, Outcome> = HashMap::new();
    let client_ids: Vec<Uuid> = attempts.iter().filter_map(|a| a.client_scan_id).collect();
    if !client_ids.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT client_scan_id, id, result, code, ticket_id FROM ticket_scans
                  WHERE list_id = $1 AND client_scan_id = ANY ($2)",
            )
            .await?;
        for r in tx.query(&stmt, &[&list_id, &client_ids]).await? {
            let result: ScanResult = r.try_get("result")?;
            let code: Option<String> = r.get("code");
            known.insert(
                r.get("client_scan_id"),
                Outcome {
                    scan_id: r.get("id"),
                    result,
                    refusal: code.as_deref().and_then(refusal_of),
                    ticket_id: r.get("ticket_id"),
                    written: false,
                },
            );
        }
    }

    let stmt = tx
        .prepare_cached(
            "SELECT ticket_id, inside, entries, exits FROM checkin_states
              WHERE list_id = $1 AND ticket_id = ANY ($2)",
        )
        .await?;
    let mut presence: HashMap<i64, Presence> = HashMap::new();
    for r in tx.query(&stmt, &[&list_id, &ids]).await? {
        presence.insert(
            r.get(0),
            Presence {
                inside: r.get(1),
                entries: r.get(2),
                exits: r.get(3),
            },
        );
    }
    let before = presence.clone();

    // Judge in scannedAt order (stable: request order among equal times).
    let now = Utc::now();
    let mut order: Vec<usize> = (0..attempts.len()).collect();
    order.sort_by_key(|&i| attempts[i].scanned_at.unwrap_or(now));
    struct Pending {
        index: usize,
        ticket: Option<i64>,
        event_id: Option<i64>,
        result: ScanResult,
        refusal: Option<Refusal>,
        /// A conflict's holder: a stored scan, or an accepted attempt of this batch.
        holder: Option<Result<i64, usize>>,
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut in_batch_holder: HashMap<i64, usize> = HashMap::new();
    let mut first_entries: Vec<(i64, usize)> = Vec::new();
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for &i in &order {
        let a = &attempts[i];
        if let Some(id) = a.client_scan_id {
            if known.contains_key(&id) || seen.contains_key(&id) {
                continue;
            }
            seen.insert(id, i);
        }
        let found = match &a.read.ticket {
            Ok(Some(id)) => tickets.get(id).filter(|(t, code)| match &a.read.claims {
                Some((event_id, claimed)) => t.event_id == *event_id && code == claimed,
                None => true,
            }),
            _ => None,
        };
        let door_ticket = found.map(|(t, _)| t);
        let at = a.scanned_at.unwrap_or(now);
        let verdict = match a.read.ticket {
            Err(r) => Err(r),
            Ok(_) => {
                let p = door_ticket
                    .and_then(|t| presence.get(&t.id).copied())
                    .unwrap_or_default();
                door::judge(rules, door_ticket, p, a.direction, at)
            }
        };
        // A ticket of another event is logged without it (its event is not this list's).
        let ticket = door_ticket.filter(|t| t.event_id == rules.event_id);
        let (result, refusal, holder) = match verdict {
            Ok(next) => {
                let t = ticket.expect("an accepted scan has its ticket");
                presence.insert(t.id, next);
                if a.direction == Direction::Entry {
                    in_batch_holder.insert(t.id, i);
                    if !t.validated && !first_entries.iter().any(|(id, _)| *id == t.id) {
                        first_entries.push((t.id, i));
                    }
                }
                (ScanResult::Accepted, None, None)
            }
            Err(r) if offline && r.is_conflict(a.direction) => {
                let holder = match (r, ticket) {
                    (Refusal::AlreadyEntered, Some(t)) => Some(match in_batch_holder.get(&t.id) {
                        Some(&j) => Err(j),
                        None => Ok(t.id), // resolved to the stored holder below
                    }),
                    _ => None,
                };
                (ScanResult::Conflict, Some(r), holder)
            }
            Err(r) => (r.result(), Some(r), None),
        };
        pending.push(Pending {
            index: i,
            ticket: ticket.map(|t| t.id),
            event_id: ticket.map(|t| t.event_id),
            result,
            refusal,
            holder,
        });
    }

    // The stored holders of the tickets refused as already entered.
    let refused: Vec<i64> = pending
        .iter()
        .filter(|p| p.refusal == Some(Refusal::AlreadyEntered))
        .filter_map(|p| p.ticket)
        .collect();
    let holders = if refused.is_empty() {
        HashMap::new()
    } else {
        stored_holders(tx, list_id, &refused).await?
    };

    // The scan log's rows, in judging order.
    let n = pending.len();
    let mut cols = ScanColumns::with_capacity(n);
    for p in &pending {
        let a = &attempts[p.index];
        cols.ticket_id.push(p.ticket);
        cols.event_id.push(p.event_id);
        cols.scanner_id.push(a.scanner_id.as_str());
        cols.location.push(a.location.as_str());
        cols.result.push(p.result.as_str());
        cols.direction.push(a.direction.as_str());
        cols.code.push(p.refusal.map(|r| r.code().as_str()));
        cols.client_scan_id.push(a.client_scan_id);
        cols.received_at.push(a.scanned_at.map(|_| now));
        cols.scanned_at.push(a.scanned_at);
        cols.conflict_with.push(match p.holder {
            Some(Ok(ticket)) => holders.get(&ticket).map(|h| h.scan_id),
            _ => None,
        });
    }
    let scan_ids = if n == 0 {
        Vec::new()
    } else {
        cols.insert(tx, list_id).await?
    };
    if scan_ids.len() != n {
        // Another upload of the same scans committed between our read and our insert (scans
        // of no ticket take no ticket lock): run the batch again, which then finds them.
        let mut e =
            DomainError::unavailable("the scan log", "an upload of the same scans raced this one");
        e.retryable = true;
        return Err(e);
    }
    // Conflicts with an admission of this same batch point at its new row.
    let in_batch: Vec<(i64, i64)> = pending
        .iter()
        .zip(&scan_ids)
        .filter_map(|(p, id)| match p.holder {
            Some(Err(j)) => pending
                .iter()
                .position(|q| q.index == j)
                .map(|k| (*id, scan_ids[k])),
            _ => None,
        })
        .collect();
    if !in_batch.is_empty() {
        let (conflicts, firsts): (Vec<i64>, Vec<i64>) = in_batch.into_iter().unzip();
        tx.execute(
            "UPDATE ticket_scans s SET conflict_with = u.first
               FROM unnest($1::bigint[], $2::bigint[]) AS u (id, first) WHERE s.id = u.id",
            &[&conflicts, &firsts],
        )
        .await?;
    }

    // States that changed, then the tickets validated for the first time, which checks their
    // guests in (migrations/V22: no guest row is written), with their guest.checked_in webhooks.
    let mut hooks = false;
    let changed: Vec<(i64, Presence)> = presence
        .iter()
        .filter(|(id, p)| before.get(id) != Some(p))
        .map(|(id, p)| (*id, *p))
        .collect();
    if !changed.is_empty() {
        write_presence(tx, list_id, rules.allow_reentry, &changed).await?;
    }
    if !first_entries.is_empty() {
        let ids: Vec<i64> = first_entries.iter().map(|(id, _)| *id).collect();
        let at: Vec<Option<DateTime<Utc>>> = first_entries
            .iter()
            .map(|(_, i)| attempts[*i].scanned_at)
            .collect();
        let by: Vec<&str> = first_entries
            .iter()
            .map(|(_, i)| attempts[*i].scanner_id.as_str())
            .collect();
        let loc: Vec<&str> = first_entries
            .iter()
            .map(|(_, i)| attempts[*i].location.as_str())
            .collect();
        let stmt = tx
            .prepare_cached(
                "WITH v AS (
                    UPDATE tickets t
                       SET validated_at = COALESCE(u.at, now()), validated_by = u.by,
                           validation_location = u.loc, checked_in_at = now(), updated_at = now()
                      FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[]) AS u (id, at, by, loc)
                     WHERE t.id = u.id AND t.validated_at IS NULL
                 RETURNING t.id, t.guest_id, t.event_id, t.checked_in_at),
                      hook AS (
                    SELECT cardinality(webhook_write(e.organizer_id, 'guest.checked_in',
                                                     webhook_guest(ROW(g.*)::guests, v.id, v.checked_in_at),
                                                     interval '0')) AS n
                      FROM v JOIN guests g ON g.id = v.guest_id JOIN events e ON e.id = v.event_id)
                 SELECT COALESCE(sum(n), 0)::bigint FROM hook",
            )
            .await?;
        let written: i64 = tx.query_one(&stmt, &[&ids, &at, &by, &loc]).await?.get(0);
        hooks |= written > 0;
    }

    // The results, in request order.
    let mut by_index: HashMap<usize, Outcome> = HashMap::new();
    for (p, id) in pending.iter().zip(&scan_ids) {
        by_index.insert(
            p.index,
            Outcome {
                scan_id: *id,
                result: p.result,
                refusal: p.refusal,
                ticket_id: p.ticket,
                written: true,
            },
        );
    }
    let outcomes = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if let Some(o) = by_index.get(&i) {
                return Ok(o.clone());
            }
            // A repeated clientScanId: the first result.
            let id = a
                .client_scan_id
                .expect("only repeated offline scans are skipped");
            known
                .get(&id)
                .cloned()
                .or_else(|| seen.get(&id).and_then(|j| by_index.get(j)).cloned())
                .map(|o| Outcome {
                    written: false,
                    ..o
                })
                .ok_or_else(|| DomainError::internal("a repeated scan without its first result"))
        })
        .collect::<DomainResult<Vec<_>>>()?;
    Ok(Applied {
        outcomes,
        holders,
        hooks,
    })
}

/// What [`apply`] did.
pub(crate) struct Applied {
    /// The result of each attempt, in request order.
    pub outcomes: Vec<Outcome>,
    /// The holders of the tickets refused as already entered.
    pub holders: HashMap<i64, Holder>,
    /// Webhook jobs were written (the effects relay them).
    pub hooks: bool,
}

fn refusal_of(code: &str) -> Option<Refusal> {
    use Refusal::*;
    [
        NotFound,
        InvalidSignature,
        EventNotPublished,
        NotOnList,
        ListClosed,
        Cancelled,
        AlreadyEntered,
        NotInside,
    ]
    .into_iter()
    .find(|r| r.code().as_str() == code)
}

/// The scan log's columns of a set of attempts, inserted in one statement.
struct ScanColumns<'a> {
    ticket_id: Vec<Option<i64>>,
    event_id: Vec<Option<i64>>,
    scanner_id: Vec<&'a str>,
    location: Vec<&'a str>,
    result: Vec<&'static str>,
    direction: Vec<&'static str>,
    code: Vec<Option<&'static str>>,
    client_scan_id: Vec<Option<Uuid>>,
    received_at: Vec<Option<DateTime<Utc>>>,
    scanned_at: Vec<Option<DateTime<Utc>>>,
    conflict_with: Vec<Option<i64>>,
}

impl<'a> ScanColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            ticket_id: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            scanner_id: Vec::with_capacity(n),
            location: Vec::with_capacity(n),
            result: Vec::with_capacity(n),
            direction: Vec::with_capacity(n),
            code: Vec::with_capacity(n),
            client_scan_id: Vec::with_capacity(n),
            received_at: Vec::with_capacity(n),
            scanned_at: Vec::with_capacity(n),
            conflict_with: Vec::with_capacity(n),
        }
    }

    /// The new rows' ids in the columns' order (fewer when some client scan ids were taken).
    async fn insert(&self, tx: &Transaction<'_>, list_id: i64) -> DomainResult<Vec<i64>> {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO ticket_scans (ticket_id, event_id, list_id, scanner_id, location, result,
                                           direction, code, client_scan_id, received_at, scanned_at, conflict_with)
                 SELECT u.ticket_id, u.event_id, $1, u.scanner_id, u.location, u.result, u.direction, u.code,
                        u.client_scan_id, u.received_at, COALESCE(u.scanned_at, now()), u.conflict_with
                   FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
                               $8::text[], $9::uuid[], $10::timestamptz[], $11::timestamptz[], $12::bigint[])
                        WITH ORDINALITY AS u (ticket_id, event_id, scanner_id, location, result, direction,
                                              code, client_scan_id, received_at, scanned_at, conflict_with, n)
                  ORDER BY u.n
                     ON CONFLICT (list_id, client_scan_id) WHERE client_scan_id IS NOT NULL DO NOTHING
                 RETURNING id",
            )
            .await?;
        let rows = tx
            .query(
                &stmt,
                &[
                    &list_id,
                    &self.ticket_id,
                    &self.event_id,
                    &self.scanner_id,
                    &self.location,
                    &self.result,
                    &self.direction,
                    &self.code,
                    &self.client_scan_id,
                    &self.received_at,
                    &self.scanned_at,
                    &self.conflict_with,
                ],
            )
            .await?;
        // Identity values are drawn in insertion order, which is the ORDER BY's.
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

async fn write_presence(
    tx: &Transaction<'_>,
    list_id: i64,
    reentry: bool,
    changed: &[(i64, Presence)],
) -> DomainResult<()> {
    let ids: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
    let inside: Vec<bool> = changed.iter().map(|(_, p)| p.inside).collect();
    let entries: Vec<i32> = changed.iter().map(|(_, p)| p.entries).collect();
    let exits: Vec<i32> = changed.iter().map(|(_, p)| p.exits).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO checkin_states AS s (list_id, ticket_id, inside, entries, exits, reentry)
             SELECT $1, u.id, u.inside, u.entries, u.exits, $6
               FROM unnest($2::bigint[], $3::bool[], $4::int[], $5::int[]) AS u (id, inside, entries, exits)
              ORDER BY u.id
                 ON CONFLICT (list_id, ticket_id) DO UPDATE
                SET inside = excluded.inside, entries = excluded.entries, exits = excluded.exits,
                    reentry = excluded.reentry, changed_at = now()",
        )
        .await?;
    tx.execute(
        &stmt,
        &[&list_id, &ids, &inside, &entries, &exits, &reentry],
    )
    .await?;
    Ok(())
}

/// The accepted, not reverted, latest entry of each ticket of `ids` on the list.
pub(crate) async fn stored_holders(
    db: &impl GenericClient,
    list_id: i64,
    ids: &[i64],
) -> DomainResult<HashMap<i64, Holder>> {
    let stmt = db
        .prepare_cached(
            "SELECT DISTINCT ON (ticket_id) ticket_id, id, scanned_at, scanner_id, location
               FROM ticket_scans
              WHERE ticket_id = ANY ($2) AND list_id = $1 AND result = 'accepted'
                AND direction = 'entry' AND reverted_at IS NULL
              ORDER BY ticket_id, id DESC",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&list_id, &ids])
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                Holder {
                    scan_id: r.get(1),
                    scanned_at: r.get(2),
                    scanner_id: r.get(3),
                    location: r.get(4),
                },
            )
        })
        .collect())
}

/// The error a refused online scan answers; TICKET_ALREADY_VALIDATED carries the holding
/// scan (part 1's `details`: `validatedAt`, `scannerId`, `location`).
pub(crate) fn refusal_error(refusal: Refusal, holder: Option<&Holder>) -> DomainError {
    let e = DomainError::new(refusal.code(), refusal.message());
    match (refusal, holder) {
        (Refusal::AlreadyEntered, Some(h)) => e.with_details(json!({
            "validatedAt": h.scanned_at, "scannerId": h.scanner_id, "location": h.location,
            "scanId": h.scan_id
        })),
        _ => e,
    }
}

/// Which list an online scan is on: a list by id, or the default list of the ticket's event
/// (the part-1 check-in endpoints).
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnList {
    Id(i64),
    DefaultOf,
}

/// `$1` ticket, `$2` scanner, `$3` location, `$4` the caller's tenant (null: admin), `$5` the
/// list (`OnList::Id`). Returns the new scan's id and time and the ticket (as
/// `queries::from_row` reads it) when the entry is accepted; no row otherwise. Under a key,
/// the key and its answer are written by the statement too ([`keyed`]). The guest.checked_in
/// deliveries of a first entry are written by a call of `webhook_write` when an endpoint
/// subscribes, or (`inline_hooks`) by an insert in the statement itself ([`Hooks`]).
fn entry_sql(on: OnList, key: bool, inline_hooks: bool) -> String {
    let (hook, hooks) = if inline_hooks {
        webhooks::emit::inline_guest_deliveries(
            EventType::GuestCheckedIn,
            "(SELECT organizer_id FROM l)",
            "guest_snapshot(g, v.id, v.checked_in_at)",
            "v JOIN guests g ON g.id = v.guest_id",
        )
    } else {
        (
            CALLED_HOOK.to_owned(),
            "COALESCE((SELECT ids FROM hook), ARRAY[]::bigint[])",
        )
    };
    let sql = format!(
        "WITH l AS (
            SELECT l.id, l.event_id, l.allow_reentry, l.ticket_type_ids, e.organizer_id
              FROM checkin_lists l JOIN events e ON e.id = l.event_id
             WHERE {} AND e.status = 'published'
               AND ($4::text IS NULL OR e.organizer_id = $4::text)
               AND (l.opens_at IS NULL OR l.opens_at <= now())
               AND (l.closes_at IS NULL OR now() < l.closes_at)),
              k AS (
            SELECT t.id, t.guest_id, t.event_id, l.id AS list_id, l.allow_reentry
              FROM tickets t JOIN l ON l.event_id = t.event_id
             WHERE t.id = $1 AND t.status = 'active'
               AND (cardinality(l.ticket_type_ids) = 0 OR t.ticket_type_id = ANY (l.ticket_type_ids))
               FOR NO KEY UPDATE OF t),
              s AS (
            INSERT INTO checkin_states AS s (list_id, ticket_id, inside, entries, exits, reentry)
            SELECT k.list_id, k.id, true, 1, 0, k.allow_reentry FROM k
                ON CONFLICT (list_id, ticket_id) DO UPDATE
               SET inside = true, entries = s.entries + 1, reentry = excluded.reentry, changed_at = now()
             WHERE NOT s.inside AND (s.entries = 0 OR excluded.reentry)
         RETURNING s.list_id, s.ticket_id),
              v AS (
            UPDATE tickets t SET validated_at = now(), validated_by = $2, validation_location = $3,
                   checked_in_at = now(), updated_at = now()
              FROM s WHERE t.id = s.ticket_id AND t.validated_at IS NULL
         RETURNING t.*),
              log AS (
            INSERT INTO ticket_scans (ticket_id, event_id, list_id, scanner_id, location, result, direction)
            SELECT k.id, k.event_id, k.list_id, $2::text, $3::text, 'accepted', 'entry'
              FROM s JOIN k ON k.id = s.ticket_id
         RETURNING id, scanned_at, list_id),
              {hook}
        SELECT log.id AS scan_id, log.scanned_at AS scanned_at, log.list_id AS on_list,
               {hooks} AS hooks, {}
          FROM log CROSS JOIN k
          JOIN LATERAL (SELECT * FROM v UNION ALL
                        SELECT * FROM tickets x WHERE x.id = k.id AND NOT EXISTS (SELECT 1 FROM v)) t ON true
          JOIN guests g ON g.id = k.guest_id
          JOIN events e ON e.id = k.event_id
          LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id",
        list_match(on),
        queries::columns()
    );
    if key {
        keyed(&sql, on)
    } else {
        sql
    }
}

/// The same for an exit: accepted when the ticket is inside on the list.
fn exit_sql(on: OnList, key: bool) -> String {
    let sql = format!(
        "WITH l AS (
            SELECT l.id, l.event_id FROM checkin_lists l JOIN events e ON e.id = l.event_id
             WHERE {} AND ($4::text IS NULL OR e.organizer_id = $4::text)),
              k AS (
            SELECT t.id, t.guest_id, t.event_id, l.id AS list_id
              FROM tickets t JOIN l ON l.event_id = t.event_id
             WHERE t.id = $1 FOR NO KEY UPDATE OF t),
              s AS (
            UPDATE checkin_states s SET inside = false, exits = s.exits + 1, changed_at = now()
              FROM k WHERE s.list_id = k.list_id AND s.ticket_id = k.id AND s.inside
         RETURNING s.list_id, s.ticket_id),
              log AS (
            INSERT INTO ticket_scans (ticket_id, event_id, list_id, scanner_id, location, result, direction)
            SELECT k.id, k.event_id, k.list_id, $2::text, $3::text, 'accepted', 'exit'
              FROM s JOIN k ON k.id = s.ticket_id
         RETURNING id, scanned_at, list_id)
        SELECT log.id AS scan_id, log.scanned_at AS scanned_at, log.list_id AS on_list, ARRAY[]::bigint[] AS hooks, {}
          FROM log CROSS JOIN k
          JOIN tickets t ON t.id = k.id
          JOIN guests g ON g.id = t.guest_id
          JOIN events e ON e.id = k.event_id
          LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id",
        list_match(on),
        queries::columns()
    );
    if key {
        keyed(&sql, on)
    } else {
        sql
    }
}

/// The columns of an accepted scan's answer stored under its Idempotency-Key, in the order of
/// the type `scan_answer` (migrations/V21__scan_answer_rows.sql): the select list of the scan
/// statements without `hooks`. A replay reads them back with [`REPLAY_COLUMNS`] ([`replayed`]).
pub const ANSWER_COLUMNS: [&str; 34] = [
    "scan_id",
    "scanned_at",
    "on_list",
    "tk_id",
    "ticket_code",
    "tk_status",
    "validated_at",
    "validated_by",
    "validation_location",
    "qr_payload",
    "qr_code_data",
    "tk_created_at",
    "id",
    "event_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "status",
    "ticket_type_id",
    "ticket_id",
    "created_at",
    "updated_at",
    "e_title",
    "e_date",
    "e_location",
    "e_status",
    "e_organizer",
    "tt_id",
    "tt_name",
    "tt_price",
    "tt_quantity",
    "tt_taken",
    "tt_held",
];

/// What a keyed scan's answer row holds for the ticket's QR image (`qr_code_data`, a base64
/// PNG of 2–4 KB) when the answer showed one: not a copy of it. A ticket's image is written once
/// (the ticket-generation job leaves a rendered ticket alone) and removed only by an erasure,
/// which deletes the guest's stored answers too, so a replay reads it from the ticket
/// ([`REPLAY_COLUMNS`]) and sends the bytes the first answer sent. Copying it wrote an image to
/// the key's row (out of line, in its TOAST table) with every keyed check-in: 4.9 KB more to
/// write than the row itself (infra/benchmarks/RESULTS.md, the run of 22:46). An answer without
/// an image stores NULL and replays NULL, even once the image is rendered.
const THE_TICKETS_IMAGE: &str = "";

/// The select list that reads a key's answer row back for a replay, with the columns of
/// [`ANSWER_COLUMNS`]: the stored values, and the ticket's image where the row says so
/// ([`THE_TICKETS_IMAGE`]). For a query of `idempotency_keys` (a row without an answer row
/// reads as nulls).
pub static REPLAY_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    ANSWER_COLUMNS
        .iter()
        .map(|&c| match c {
            "qr_code_data" => format!(
                "CASE WHEN (answer_row).qr_code_data = '{THE_TICKETS_IMAGE}'
                      THEN (SELECT t.qr_code_data FROM tickets t WHERE t.id = (answer_row).tk_id)
                      ELSE (answer_row).qr_code_data END AS qr_code_data"
            ),
            c => format!("(answer_row).{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
});

/// A scan statement that also writes the request's Idempotency-Key with its answer when the
/// scan is accepted: one round trip, as without a key (a transaction around the scan and the
/// key's insert made four, which cost the database more than the key's row). The answer is
/// the statement's own row, stored as a `scan_answer` value (no text is rendered in the
/// statement). A key another request holds makes the insert fail with a unique violation, which
/// rolls the whole statement back: nothing is scanned, and the edge replays that request's
/// answer. Its parameters follow the scan's: the caller, the key, the fingerprint.
fn keyed(sql: &str, on: OnList) -> String {
    let split = sql
        .rfind("SELECT log.id AS scan_id")
        .expect("a scan statement ends with its answer's select");
    let (ctes, select) = sql.split_at(split);
    let ctes = ctes.trim_end();
    let first = match on {
        OnList::Id(_) => 6,
        OnList::DefaultOf => 5,
    };
    let row = ANSWER_COLUMNS
        .iter()
        .map(|&c| match c {
            "qr_code_data" => format!(
                "CASE WHEN res.qr_code_data IS NULL THEN NULL ELSE '{THE_TICKETS_IMAGE}' END"
            ),
            c => format!("res.{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{ctes},
              res AS ({select}),
              answer AS (
            INSERT INTO idempotency_keys (caller, key, fingerprint, status, answer_row)
            SELECT ${first}, ${}, ${}, 200, ROW({row})::scan_answer FROM res)
        SELECT * FROM res",
        first + 1,
        first + 2
    )
}

/// The guest.checked_in deliveries of a first entry, written by `webhook_write` (the one
/// definition of a delivery: migrations/V20) when one of the organizer's endpoints subscribes;
/// nothing is opened or called otherwise.
const CALLED_HOOK: &str = "hook AS (
            SELECT webhook_write(e.organizer_id, 'guest.checked_in',
                                 webhook_guest(ROW(g.*)::guests, v.id, v.checked_in_at), interval '1 minute') AS ids
              FROM v JOIN guests g ON g.id = v.guest_id JOIN events e ON e.id = v.event_id
             WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.organizer_id = e.organizer_id AND w.enabled
                             AND 'guest.checked_in' = ANY (w.event_types)))";

fn list_match(on: OnList) -> &'static str {
    match on {
        OnList::Id(_) => "l.id = $5",
        OnList::DefaultOf => {
            "l.is_default AND l.event_id = (SELECT event_id FROM tickets WHERE id = $1)"
        }
    }
}

/// What an online scan statement does: which way, on a list by id or on the ticket's default
/// list, whether it writes an Idempotency-Key, and how it writes the deliveries of a first
/// entry (exits write none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub direction: Direction,
    pub on_list: bool,
    pub keyed: bool,
    pub inline_hooks: bool,
}

impl Shape {
    const ALL: usize = 16;

    fn index(self) -> usize {
        usize::from(self.direction == Direction::Exit) << 3
            | usize::from(self.on_list) << 2
            | usize::from(self.keyed) << 1
            | usize::from(self.inline_hooks)
    }

    fn of(index: usize) -> Self {
        Self {
            direction: if index & 8 == 0 {
                Direction::Entry
            } else {
                Direction::Exit
            },
            on_list: index & 4 != 0,
            keyed: index & 2 != 0,
            inline_hooks: index & 1 != 0,
        }
    }

    fn sql(self) -> String {
        let on = if self.on_list {
            OnList::Id(0)
        } else {
            OnList::DefaultOf
        };
        match self.direction {
            Direction::Entry => entry_sql(on, self.keyed, self.inline_hooks),
            Direction::Exit => exit_sql(on, self.keyed),
        }
    }
}

static STATEMENTS: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..Shape::ALL).map(|i| Shape::of(i).sql()).collect());

/// The online scan statement of `shape` (the benchmark harness compares its copy in
/// infra/benchmarks/checkin-list-entry.sql with it).
pub fn statement(shape: Shape) -> &'static str {
    &STATEMENTS[shape.index()]
}

/// Every online scan statement (tests compare their columns with the type `scan_answer`).
pub fn statements() -> impl Iterator<Item = &'static str> {
    STATEMENTS.iter().map(String::as_str)
}

/// The connection an online scan runs on: a pooled connection of its own, or the transaction of
/// a caller that writes something with the scan (an Idempotency-Key's answer, `edge::statement!`).
/// A serialization failure or deadlock aborts a caller's transaction, so on one the scan does not
/// run itself again ([`online`]): the caller runs the whole transaction again.
pub trait Door: GenericClient + Send {
    /// The scan's own connection: it may run the scan again after a conflict.
    const OWN: bool;
}

impl Door for Client {
    const OWN: bool = true;
}

impl Door for Transaction<'_> {
    const OWN: bool = false;
}

/// An online scan of `read` on `on`; `Ok(Scanned)` when accepted, else the refusal.
///
/// Under an Idempotency-Key (`key`), an accepted scan writes the key with its answer in its
/// one statement ([`keyed`]); anything else (a refusal, a ticket read by code that must be
/// checked first) is [`idempotency::needs_transaction`], and the edge runs the scan again in
/// a transaction with the key stored in it, without `key`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn online<D: Door>(
    db: &mut D,
    caller: &Caller,
    on: OnList,
    read: Read,
    scanner_id: &str,
    location: &str,
    direction: Direction,
    key: Option<&Key>,
) -> DomainResult<Done<Scanned>> {
    // Locks are taken in one order on every path (see the module doc), so a deadlock should
    // not happen; a serialization failure or deadlock that does is retried here a bounded
    // number of times before it becomes a 503 (which is logged too).
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        match online_once(db, caller, on, &read, scanner_id, location, direction, key).await {
            // In a caller's transaction, which the conflict aborted: the caller runs it again.
            Err(e) if e.retryable && !D::OWN => return Err(e),
            Err(e) if e.retryable && attempt < ATTEMPTS => {
                tracing::warn!(
                    attempt,
                    cause = e.internal.as_deref(),
                    "check-in conflict, retrying"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                attempt += 1;
            }
            Err(e) if e.retryable => {
                let ticket = read.ticket.ok().flatten();
                if let Err(log) =
                    log_unavailable(&*db, on, ticket, scanner_id, location, direction).await
                {
                    tracing::error!(
                        cause = log.internal.as_deref(),
                        "could not log the refused scan"
                    );
                }
                return Err(e);
            }
            outcome => return outcome,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn online_once<D: Door>(
    db: &mut D,
    caller: &Caller,
    on: OnList,
    read: &Read,
    scanner_id: &str,
    location: &str,
    direction: Direction,
    key: Option<&Key>,
) -> DomainResult<Done<Scanned>> {
    let tenant = caller.tenant();
    // The fast path: a ticket read by id or by a payload whose claims it must match (the
    // statement does not compare them; a payload's ticket of another event is not on
    // this list, and the claims are compared on the locked path below).
    if let (Ok(Some(id)), None) = (&read.ticket, &read.claims) {
        if let Some(s) = fast(db, on, *id, scanner_id, location, tenant, direction, key).await? {
            return Ok(s);
        }
    } else if let (Ok(Some(id)), Some(_)) = (&read.ticket, &read.claims) {
        if claims_hold(&*db, *id, read).await? {
            if let Some(s) = fast(db, on, *id, scanner_id, location, tenant, direction, key).await?
            {
                return Ok(s);
            }
        }
    }
    if key.is_some() {
        return Err(idempotency::needs_transaction());
    }
    // Refused, or not found: decide with the ticket locked, and log it, in one transaction.
    let tx = db.transaction().await?;
    let list_id = match on {
        OnList::Id(id) => Some(id),
        OnList::DefaultOf => match read.ticket {
            Ok(Some(ticket)) => default_list_of(&tx, ticket).await?,
            _ => None,
        },
    };
    let Some(list_id) = list_id else {
        // Nothing identifies the event: logged without a list.
        let refusal = read.ticket.err().unwrap_or(Refusal::NotFound);
        log_unlisted(&tx, scanner_id, location, direction, refusal).await?;
        tx.commit().await?;
        return Err(DomainError::new(refusal.code(), refusal.message()));
    };
    let list = match locate(&tx, caller, list_id, false).await {
        Ok(list) => list,
        // Another organizer's ticket (part 1): not found, and logged like an unknown one.
        Err(e) if e.code == ErrorCode::NotFound && matches!(on, OnList::DefaultOf) => {
            log_unlisted(&tx, scanner_id, location, direction, Refusal::NotFound).await?;
            tx.commit().await?;
            return Err(DomainError::not_found("ticket"));
        }
        Err(e) => return Err(e),
    };
    let attempt = Attempt {
        read: read.clone(),
        scanner_id: scanner_id.to_owned(),
        location: location.to_owned(),
        direction,
        scanned_at: None,
        client_scan_id: None,
    };
    let applied = apply(&tx, &list, std::slice::from_ref(&attempt), false).await?;
    let holders = applied.holders;
    let outcome = applied
        .outcomes
        .into_iter()
        .next()
        .ok_or_else(|| DomainError::internal("a scan without its outcome"))?;
    if let Some(refusal) = outcome.refusal {
        tx.commit().await?;
        let holder = outcome.ticket_id.and_then(|t| holders.get(&t));
        return Err(refusal_error(refusal, holder));
    }
    let ticket_id = outcome
        .ticket_id
        .ok_or_else(|| DomainError::internal("an accepted scan without its ticket"))?;
    let ticket = queries::by_id(&tx, ticket_id)
        .await?
        .ok_or_else(|| DomainError::internal("ticket vanished"))?;
    let scanned_at: DateTime<Utc> = tx
        .query_one(
            "SELECT scanned_at FROM ticket_scans WHERE id = $1",
            &[&outcome.scan_id],
        )
        .await?
        .get(0);
    tx.commit().await?;
    tracing::info!(
        ticket_id,
        list_id,
        scanner_id,
        direction = direction.as_str(),
        "scan accepted"
    );
    let event_id = ticket.event.id;
    let mut effects = Effects::default().event_changed(event_id);
    if applied.hooks {
        effects = effects.jobs();
    }
    Ok(Done::new(
        Scanned {
            scan_id: outcome.scan_id,
            result: ScanResult::Accepted.as_str().to_owned(),
            direction,
            ticket,
            scanned_at,
        },
        effects,
    ))
}

/// Whether the ticket row still says what its signed payload says (else: not found).
async fn claims_hold(db: &impl GenericClient, id: i64, read: &Read) -> DomainResult<bool> {
    let Some((event_id, code)) = &read.claims else {
        return Ok(true);
    };
    let stmt = db
        .prepare_cached(
            "SELECT 1 FROM tickets WHERE id = $1 AND event_id = $2 AND ticket_code = $3",
        )
        .await?;
    Ok(db.query_opt(&stmt, &[&id, event_id, code]).await?.is_some())
}

#[allow(clippy::too_many_arguments)]
async fn fast(
    db: &impl GenericClient,
    on: OnList,
    ticket_id: i64,
    scanner_id: &str,
    location: &str,
    tenant: Option<&str>,
    direction: Direction,
    key: Option<&Key>,
) -> DomainResult<Option<Done<Scanned>>> {
    let inline_hooks =
        direction == Direction::Entry && INLINE.get(EventType::GuestCheckedIn, tenant);
    let stmt = db
        .prepare_cached(statement(Shape {
            direction,
            on_list: matches!(on, OnList::Id(_)),
            keyed: key.is_some(),
            inline_hooks,
        }))
        .await?;
    let list_param = match on {
        OnList::Id(list_id) => Some(list_id),
        OnList::DefaultOf => None,
    };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ticket_id, &scanner_id, &location, &tenant];
    if let Some(list_id) = list_param.as_ref() {
        params.push(list_id);
    }
    if let Some(k) = key {
        params.extend([&k.caller as &(dyn ToSql + Sync), &k.key, &k.fingerprint]);
    }
    // Another request holds the key: the statement, scan included, rolled back, and the edge
    // replays that request's answer; unless the key is past its 24 hours and only waits for
    // the prune, when it is taken over.
    let run = || async {
        db.query_opt(&stmt, &params)
            .await
            .on_constraint("idempotency_keys_pkey", idempotency::key_used)
    };
    let mut row = run().await;
    if let (Err(e), Some(k)) = (&row, key) {
        if idempotency::is(e, idempotency::KEY_USED) && idempotency::drop_expired(db, k).await? {
            row = run().await;
        }
    }
    let row = row?;
    let Some(row) = row else { return Ok(None) };
    let scanned = replayed(&row, direction)?;
    let ticket = &scanned.ticket;
    let list_id: i64 = row.get("on_list");
    tracing::info!(
        ticket_id,
        list_id,
        scanner_id,
        direction = direction.as_str(),
        "scan accepted"
    );
    let event_id = ticket.event.id;
    // The guest.checked_in deliveries it wrote: their messages are sent after the commit.
    let hooks: Vec<i64> = row.get("hooks");
    if direction == Direction::Entry {
        INLINE.learn(
            EventType::GuestCheckedIn,
            tenant,
            inline_hooks,
            !hooks.is_empty(),
        );
    }
    let effects = Effects::default().event_changed(event_id).webhooks(hooks);
    Ok(Some(Done::new(scanned, effects)))
}

/// The accepted scan a row of the scan statements says, or (the same columns) the answer row
/// stored under an Idempotency-Key, read back for a replay (`edge::idempotency`): the same
/// values, so the same answer.
pub fn replayed(row: &Row, direction: Direction) -> DomainResult<Scanned> {
    Ok(Scanned {
        scan_id: row.try_get("scan_id")?,
        result: ScanResult::Accepted.as_str().to_owned(),
        direction,
        ticket: queries::from_row(row)?,
        scanned_at: row.try_get("scanned_at")?,
    })
}

async fn default_list_of(db: &impl GenericClient, ticket_id: i64) -> DomainResult<Option<i64>> {
    let stmt = db
        .prepare_cached(
            "SELECT l.id FROM tickets t JOIN checkin_lists l ON l.event_id = t.event_id AND l.is_default
              WHERE t.id = $1",
        )
        .await?;
    Ok(db.query_opt(&stmt, &[&ticket_id]).await?.map(|r| r.get(0)))
}

/// A refused scan that names no list (nothing matched what was read, on the part-1 endpoint).
async fn log_unlisted(
    db: &impl GenericClient,
    scanner_id: &str,
    location: &str,
    direction: Direction,
    refusal: Refusal,
) -> DomainResult<()> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO ticket_scans (scanner_id, location, direction, result, code) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    db.execute(
        &stmt,
        &[
            &scanner_id,
            &location,
            &direction,
            &refusal.result(),
            &refusal.code().as_str(),
        ],
    )
    .await?;
    Ok(())
}

/// Every attempt is in the scan log, even one the database kept refusing (best effort: the
/// 503 is the answer either way).
async fn log_unavailable(
    db: &impl GenericClient,
    on: OnList,
    ticket_id: Option<i64>,
    scanner_id: &str,
    location: &str,
    direction: Direction,
) -> DomainResult<()> {
    let list_id = match (on, ticket_id) {
        (OnList::Id(id), _) => Some(id),
        (OnList::DefaultOf, Some(t)) => default_list_of(db, t).await?,
        _ => None,
    };
    let stmt = db
        .prepare_cached(
            "INSERT INTO ticket_scans (ticket_id, event_id, list_id, scanner_id, location, direction, result, code)
             SELECT t.id, t.event_id, $2, $3, $4, $5, 'unavailable', 'SERVICE_UNAVAILABLE'
               FROM (SELECT $1::bigint AS wanted) w LEFT JOIN tickets t ON t.id = w.wanted",
        )
        .await?;
    db.execute(
        &stmt,
        &[&ticket_id, &list_id, &scanner_id, &location, &direction],
    )
    .await?;
    Ok(())
}

/// `POST /api/checkin-lists/{listId}/scans`.
pub async fn scan<D: Door>(
    db: &mut D,
    key: Option<&Key>,
    caller: &Caller,
    keys: &TicketKeys,
    list_id: i64,
    input: Input<ScanInput>,
) -> DomainResult<Done<Scanned>> {
    let input = match input.take().and_then(|s| s.check().map(|()| s)) {
        Ok(input) => input,
        Err(invalid) => {
            // Another organizer's list is not found, whatever the body says.
            locate(&*db, caller, list_id, false).await?;
            return Err(invalid);
        }
    };
    let read = match (&input.code, input.ticket_id) {
        (Some(code), _) => resolve(&*db, keys, code).await?,
        (None, Some(id)) => Read::ticket(id),
        (None, None) => unreachable!("checked: code or ticketId"),
    };
    online(
        db,
        caller,
        OnList::Id(list_id),
        read,
        &input.scanner_id,
        &input.location,
        input.direction,
        key,
    )
    .await
}

/// `POST /api/checkin-lists/{listId}/scans/batch`.
pub async fn batch(
    tx: &Transaction<'_>,
    caller: &Caller,
    keys: &TicketKeys,
    list_id: i64,
    input: Input<ScanBatch>,
) -> DomainResult<Done<BatchResults>> {
    let list = locate(tx, caller, list_id, false).await?;
    let input = input.take()?;
    let times = input.check(Utc::now())?;
    let mut attempts = Vec::with_capacity(input.scans.len());
    for (scan, at) in input.scans.iter().zip(times) {
        let read = match (&scan.code, scan.ticket_id) {
            (Some(code), _) => resolve(tx, keys, code).await?,
            (None, Some(id)) => Read::ticket(id),
            (None, None) => unreachable!("checked: code or ticketId"),
        };
        attempts.push(Attempt {
            read,
            scanner_id: scan.scanner_id.clone(),
            location: scan.location.clone(),
            direction: scan.direction,
            scanned_at: Some(at),
            client_scan_id: Some(scan.client_scan_id),
        });
    }
    let applied = apply(tx, &list, &attempts, true).await?;
    let outcomes = applied.outcomes;
    let mut effects = Effects::default();
    if applied.hooks {
        effects = effects.jobs();
    }
    // Conflicts written by this upload are announced (`scan.conflict`, in this transaction).
    let fresh: Vec<i64> = outcomes
        .iter()
        .filter(|o| o.written && o.result == ScanResult::Conflict)
        .map(|o| o.scan_id)
        .collect();
    if !fresh.is_empty() {
        tracing::warn!(
            list_id,
            conflicts = fresh.len(),
            "offline upload recorded conflicts"
        );
        for conflict in conflicts_by_id(tx, list_id, &fresh).await? {
            let data = ConflictEvent {
                event_id: list.rules.event_id,
                list_id,
                conflict,
            };
            if webhooks::emit(tx, &list.organizer_id, EventType::ScanConflict, &data).await? {
                effects = effects.jobs();
            }
        }
    }
    if outcomes.iter().any(|o| o.result == ScanResult::Accepted) {
        effects = effects.event_changed(list.rules.event_id);
    }
    let results = input
        .scans
        .iter()
        .zip(&outcomes)
        .map(|(scan, o)| BatchResult {
            client_scan_id: scan.client_scan_id,
            scan_id: o.scan_id,
            result: match o.result {
                ScanResult::Accepted => "accepted",
                ScanResult::Conflict => "conflict",
                _ => "rejected",
            }
            .to_owned(),
            code: o.refusal.map(|r| r.code().as_str().to_owned()),
        })
        .collect();
    Ok(Done::new(BatchResults { results }, effects))
}

/// `POST /api/checkin-lists/{listId}/scans/{scanId}/revert`: the accepted scan undone (see
/// the module doc of `checkin`): the ticket back in its previous state on the list, the row
/// kept with `revertedAt`/`revertedBy`, an audit entry. Only the latest accepted scan of a
/// ticket on a list can be reverted (undoing an older one would leave a state no sequence of
/// scans produces); reverting twice answers the same and changes nothing.
pub async fn revert(
    tx: &Transaction<'_>,
    caller: &Caller,
    list_id: i64,
    scan_id: i64,
) -> DomainResult<Done<ScanRecord>> {
    let list = locate(tx, caller, list_id, false).await?;
    let find =
        format!("SELECT {SCAN_COLUMNS} FROM ticket_scans s WHERE s.id = $1 AND s.list_id = $2");
    let scan = tx
        .query_opt(&find, &[&scan_id, &list_id])
        .await?
        .ok_or_else(|| DomainError::not_found("scan"))?;
    let scan = scan_from_row(&scan)?;
    if scan.reverted_at.is_some() {
        return Ok(Done::new(scan, Effects::default()));
    }
    if scan.result != ScanResult::Accepted.as_str() {
        return Err(DomainError::invalid_state(
            "only an accepted scan can be reverted",
        ));
    }
    let ticket_id = scan
        .ticket_id
        .ok_or_else(|| DomainError::internal("an accepted scan without its ticket"))?;
    // The ticket first (every writer of its state does so), then read again what a racing
    // scan or revert may have changed.
    tx.execute(
        "SELECT 1 FROM tickets WHERE id = $1 FOR NO KEY UPDATE",
        &[&ticket_id],
    )
    .await?;
    let scan = scan_from_row(&tx.query_one(&find, &[&scan_id, &list_id]).await?)?;
    if scan.reverted_at.is_some() {
        return Ok(Done::new(scan, Effects::default()));
    }
    let latest: i64 = tx
        .query_one(
            "SELECT max(id) FROM ticket_scans
              WHERE list_id = $1 AND ticket_id = $2 AND result = 'accepted' AND reverted_at IS NULL",
            &[&list_id, &ticket_id],
        )
        .await?
        .get(0);
    if latest != scan_id {
        return Err(DomainError::invalid_state(
            "only the latest accepted scan of a ticket on a list can be reverted; revert the later ones first",
        ));
    }
    let state = tx
        .query_one(
            "SELECT inside, entries, exits FROM checkin_states WHERE list_id = $1 AND ticket_id = $2",
            &[&list_id, &ticket_id],
        )
        .await?;
    let back = door::revert(
        Presence {
            inside: state.get(0),
            entries: state.get(1),
            exits: state.get(2),
        },
        scan.direction,
    );
    write_presence(tx, list_id, list.rules.allow_reentry, &[(ticket_id, back)]).await?;
    let row = tx
        .query_one(
            &format!(
                "UPDATE ticket_scans s SET reverted_at = now(), reverted_by = $2, updated_at = now() WHERE s.id = $1 RETURNING {SCAN_COLUMNS}"
            ),
            &[&scan_id, &caller.user_id],
        )
        .await?;
    let reverted = scan_from_row(&row)?;
    // No entry left on any list: the ticket is no longer validated, its guest no longer in.
    if scan.direction == Direction::Entry {
        tx.execute(
            "WITH v AS (
                UPDATE tickets t SET validated_at = NULL, validated_by = NULL, validation_location = NULL,
                                     checked_in_at = NULL, updated_at = now()
                 WHERE t.id = $1 AND t.validated_at IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM checkin_states s WHERE s.ticket_id = t.id AND s.entries > 0)
             RETURNING t.guest_id)
             UPDATE guests g SET status = 'confirmed', updated_at = now()
               FROM v WHERE g.id = v.guest_id AND g.status IN ('confirmed', 'checked_in')",
            &[&ticket_id],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO audit_log (event_id, actor_sub, actor_role, action, entity, entity_id, changes)
         VALUES ($1, $2, $3, 'scan.reverted', 'scan', $4, $5)",
        &[
            &list.rules.event_id,
            &caller.user_id,
            &caller.role.as_str(),
            &scan_id,
            &json!({"listId": list_id, "ticketId": ticket_id, "type": scan.direction.as_str(),
                    "scannedAt": scan.scanned_at, "scannerId": scan.scanner_id}),
        ],
    )
    .await?;
    tracing::info!(scan_id, list_id, ticket_id, by = %caller.user_id, "scan reverted");
    Ok(Done::new(
        reverted,
        Effects::default().event_changed(list.rules.event_id),
    ))
}
