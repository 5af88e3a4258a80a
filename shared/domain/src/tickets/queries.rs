//! Reading tickets with their guest, event and ticket type in one statement.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::model::{EventSummary, Ticket};
use crate::error::DomainResult;
use crate::guests::model::{Guest, GUEST_COLUMNS};
use crate::sql;

/// The select list `from_row` reads, over `t` (tickets), `g` (guests), `e` (events) and
/// `tt` (ticket types, may be null). Also EXPLAINed by the performance harness.
pub fn columns() -> String {
    format!(
        "t.id AS tk_id, t.ticket_code, t.status AS tk_status, t.validated_at, t.validated_by,
                t.validation_location, t.qr_payload, t.qr_code_data, t.created_at AS tk_created_at,
                {GUEST_COLUMNS},
                e.title AS e_title, e.event_date AS e_date, e.location AS e_location, e.status AS e_status,
                e.organizer_id AS e_organizer,
                tt.id AS tt_id, tt.name AS tt_name, tt.price_cents AS tt_price, tt.quantity AS tt_quantity,
                seats_taken(tt.event_id, tt.id) AS tt_taken,
                (SELECT count(*)::int FROM waitlist_entries w
                  WHERE w.event_id = tt.event_id AND w.ticket_type_id = tt.id AND w.status = 'offered') AS tt_held"
    )
}

fn select() -> String {
    format!(
        "SELECT {}
           FROM tickets t
           JOIN guests g ON g.id = t.guest_id
           JOIN events e ON e.id = t.event_id
           LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id",
        columns()
    )
}

/// The ticket `id`, whoever owns it (callers check tenancy on `ticket.event.organizer_id`).
pub async fn by_id(db: &impl GenericClient, id: i64) -> DomainResult<Option<Ticket>> {
    let stmt = db
        .prepare_cached(&format!("{} WHERE t.id = $1", select()))
        .await?;
    db.query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn by_guest(db: &impl GenericClient, guest_id: i64) -> DomainResult<Option<Ticket>> {
    let stmt = db
        .prepare_cached(&format!("{} WHERE t.guest_id = $1", select()))
        .await?;
    db.query_opt(&stmt, &[&guest_id])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub(crate) fn from_row(row: &Row) -> DomainResult<Ticket> {
    let validated_at: Option<chrono::DateTime<chrono::Utc>> = row.get("validated_at");
    let guest = Guest::from_row(row)?;
    let ticket_type = row.get::<_, Option<i64>>("tt_id").map(|id| {
        crate::events::TicketType::new(
            id,
            guest.event_id,
            row.get("tt_name"),
            crate::money::Cents(row.get("tt_price")),
            row.get("tt_quantity"),
            // Seats taken in the shards are sold or held for a waiting-list offer. The held
            // ones are counted by a subquery the statement plans once (an index probe of
            // `waitlist_entries_offered`), not by a second function call: this select list is
            // in the one-statement check-in.
            row.get::<_, i32>("tt_taken") - row.get::<_, i32>("tt_held"),
            row.get("tt_held"),
        )
    });
    Ok(Ticket {
        id: row.get("tk_id"),
        ticket_code: row.get("ticket_code"),
        status: sql::get(row, "tk_status")?,
        is_validated: validated_at.is_some(),
        validated_at,
        validated_by: row.get("validated_by"),
        validation_location: row.get("validation_location"),
        qr_payload: row.get("qr_payload"),
        qr_code_data: row.get("qr_code_data"),
        event: EventSummary {
            id: guest.event_id,
            title: row.get("e_title"),
            event_date: row.get("e_date"),
            location: row.get("e_location"),
            status: sql::get(row, "e_status")?,
            organizer_id: row.get("e_organizer"),
        },
        guest,
        ticket_type,
        created_at: row.get("tk_created_at"),
    })
}
