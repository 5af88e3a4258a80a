//! The rows of an export as CSV, a page at a time.
//!
//! [`CsvStream::next_page`] reads the next [`PAGE_ROWS`] rows with keyset pagination (the
//! last id seen, never an OFFSET: each page is an index range scan however deep it is) and
//! appends their CSV to a buffer that the caller ships and empties ([`CsvStream::take`])
//! whenever it is big enough: memory holds one page of rows and one buffer, whatever the
//! number of rows. Guests are read in id order (`idx_guests_event (event_id, id)`); scans list
//! by list, in id order within each (`idx_ticket_scans_list (list_id, id)`).
//!
//! Cells are quoted by the `csv` crate (RFC 4180), and every text cell that a spreadsheet
//! would run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage return, as
//! OWASP's "CSV Injection" advice lists) is prefixed with `'` ([`escape_formula`]): a phone
//! number `+33612345678` is exported as `'+33612345678`.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::GenericClient;

use super::ExportKind;
use crate::error::{DomainError, DomainResult};
use crate::guests::model::{GUEST_STATUS, GUEST_UPDATED_AT};

/// Rows read per page.
pub const PAGE_ROWS: i64 = 1000;

pub const GUEST_COLUMNS: [&str; 13] = [
    "guestId",
    "firstName",
    "lastName",
    "email",
    "phone",
    "status",
    "ticketTypeId",
    "ticketType",
    "ticketId",
    "ticketCode",
    "checkedInAt",
    "createdAt",
    "updatedAt",
];

pub const SCAN_COLUMNS: [&str; 18] = [
    "scanId",
    "scannedAt",
    "listId",
    "list",
    "type",
    "result",
    "code",
    "ticketId",
    "ticketCode",
    "guestId",
    "firstName",
    "lastName",
    "scannerId",
    "location",
    "offline",
    "receivedAt",
    "revertedAt",
    "revertedBy",
];

/// `value` as a spreadsheet shows it, never as a formula it would run.
pub fn escape_formula(value: &str) -> Cow<'_, str> {
    match is_formula(value) {
        true => Cow::Owned(format!("'{value}")),
        false => Cow::Borrowed(value),
    }
}

fn is_formula(value: &str) -> bool {
    matches!(
        value.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// One export's rows, read and written page by page.
pub struct CsvStream {
    kind: ExportKind,
    event_id: i64,
    /// The CSV not yet taken by the caller.
    buffer: Vec<u8>,
    rows: u64,
    /// The last id written (of the current list, for scans).
    after: i64,
    /// Scans: the event's check-in lists (id, name) and the one being read.
    lists: Vec<(i64, String)>,
    list: usize,
    header_written: bool,
    finished: bool,
}

impl CsvStream {
    /// Starts an export of `kind` for `event_id` (scans: reads the event's lists).
    pub async fn open(
        db: &impl GenericClient,
        kind: ExportKind,
        event_id: i64,
    ) -> DomainResult<Self> {
        let lists = match kind {
            ExportKind::Guests => Vec::new(),
            ExportKind::Scans => {
                let stmt = db
                    .prepare_cached(
                        "SELECT id, name FROM checkin_lists WHERE event_id = $1 ORDER BY id",
                    )
                    .await?;
                db.query(&stmt, &[&event_id])
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect()
            }
        };
        Ok(Self {
            kind,
            event_id,
            buffer: Vec::new(),
            rows: 0,
            after: 0,
            lists,
            list: 0,
            header_written: false,
            finished: false,
        })
    }

    /// Data rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes written and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The bytes written since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer)
    }

    /// Reads and writes the next page; `false` once every row has been written (the header
    /// row is written with the first page, so an export without rows is a header alone).
    pub async fn next_page(&mut self, db: &impl GenericClient) -> DomainResult<bool> {
        if self.finished {
            return Ok(false);
        }
        let mut out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::with_capacity(256 * 1024));
        if !self.header_written {
            let header: &[&str] = match self.kind {
                ExportKind::Guests => &GUEST_COLUMNS,
                ExportKind::Scans => &SCAN_COLUMNS,
            };
            out.write_record(header).map_err(DomainError::internal)?;
            self.header_written = true;
        }
        let written = match self.kind {
            ExportKind::Guests => self.guests(db, &mut out).await?,
            ExportKind::Scans => loop {
                let Some((list_id, name)) = self.lists.get(self.list).cloned() else {
                    break 0;
                };
                let n = self.scans(db, &mut out, list_id, &name).await?;
                if n > 0 {
                    break n;
                }
                // This list is done: the next one, from its start.
                self.list += 1;
                self.after = 0;
            },
        };
        self.rows += written;
        self.finished = written == 0;
        let bytes = out
            .into_inner()
            .map_err(|e| DomainError::internal(e.error()))?;
        self.buffer.extend_from_slice(&bytes);
        Ok(!self.finished)
    }

    async fn guests(
        &mut self,
        db: &impl GenericClient,
        out: &mut csv::Writer<Vec<u8>>,
    ) -> DomainResult<u64> {
        let stmt = db
            .prepare_cached(&format!(
                "SELECT g.id, g.first_name, g.last_name, g.email, g.phone, {GUEST_STATUS} AS status, g.ticket_type_id,
                        tt.name AS ticket_type, t.id AS ticket_id, t.ticket_code, t.validated_at,
                        g.created_at, {GUEST_UPDATED_AT} AS updated_at
                   FROM guests g
                   LEFT JOIN ticket_types tt ON tt.id = g.ticket_type_id
                   LEFT JOIN tickets t ON t.guest_id = g.id
                  WHERE g.event_id = $1 AND g.id > $2
                  ORDER BY g.id LIMIT $3"
            ))
            .await?;
        let rows = db
            .query(&stmt, &[&self.event_id, &self.after, &PAGE_ROWS])
            .await?;
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let record: [Cow<'_, str>; 13] = [
                id.to_string().into(),
                text(r.try_get(1)?),
                text(r.try_get(2)?),
                text(r.try_get(3)?),
                opt_text(r.try_get(4)?),
                text(r.try_get(5)?),
                opt_num(r.try_get(6)?),
                opt_text(r.try_get(7)?),
                opt_num(r.try_get(8)?),
                opt_text(r.try_get(9)?),
                opt_time(r.try_get(10)?),
                time(r.try_get(11)?),
                time(r.try_get(12)?),
            ];
            out.write_record(record.iter().map(|c| c.as_bytes()))
                .map_err(DomainError::internal)?;
            self.after = id;
        }
        Ok(rows.len() as u64)
    }

    async fn scans(
        &mut self,
        db: &impl GenericClient,
        out: &mut csv::Writer<Vec<u8>>,
        list_id: i64,
        list_name: &str,
    ) -> DomainResult<u64> {
        let stmt = db
            .prepare_cached(
                "SELECT s.id, s.scanned_at, s.direction, s.result, s.code, s.ticket_id, t.ticket_code,
                        g.id AS guest_id, g.first_name, g.last_name, s.scanner_id, s.location,
                        s.client_scan_id IS NOT NULL AS offline, s.received_at, s.reverted_at, s.reverted_by
                   FROM ticket_scans s
                   LEFT JOIN tickets t ON t.id = s.ticket_id
                   LEFT JOIN guests g ON g.id = t.guest_id
                  WHERE s.list_id = $1 AND s.id > $2
                  ORDER BY s.id LIMIT $3",
            )
            .await?;
        let rows = db
            .query(&stmt, &[&list_id, &self.after, &PAGE_ROWS])
            .await?;
        let list = list_id.to_string();
        let list_name = escape_formula(list_name);
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let offline: bool = r.try_get(12)?;
            let record: [Cow<'_, str>; 18] = [
                id.to_string().into(),
                time(r.try_get(1)?),
                Cow::Borrowed(list.as_str()),
                Cow::Borrowed(list_name.as_ref()),
                text(r.try_get(2)?),
                text(r.try_get(3)?),
                opt_text(r.try_get(4)?),
                opt_num(r.try_get(5)?),
                opt_text(r.try_get(6)?),
                opt_num(r.try_get(7)?),
                opt_text(r.try_get(8)?),
                opt_text(r.try_get(9)?),
                text(r.try_get(10)?),
                text(r.try_get(11)?),
                Cow::Borrowed(if offline { "true" } else { "false" }),
                opt_time(r.try_get(13)?),
                opt_time(r.try_get(14)?),
                opt_text(r.try_get(15)?),
            ];
            out.write_record(record.iter().map(|c| c.as_bytes()))
                .map_err(DomainError::internal)?;
            self.after = id;
        }
        Ok(rows.len() as u64)
    }
}

fn text(s: String) -> Cow<'static, str> {
    match is_formula(&s) {
        true => Cow::Owned(format!("'{s}")),
        false => Cow::Owned(s),
    }
}

fn opt_text(s: Option<String>) -> Cow<'static, str> {
    s.map(text).unwrap_or(Cow::Borrowed(""))
}

fn opt_num(n: Option<i64>) -> Cow<'static, str> {
    n.map(|n| Cow::Owned(n.to_string()))
        .unwrap_or(Cow::Borrowed(""))
}

fn time(t: DateTime<Utc>) -> Cow<'static, str> {
    Cow::Owned(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn opt_time(t: Option<DateTime<Utc>>) -> Cow<'static, str> {
    t.map(time).unwrap_or(Cow::Borrowed(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_escaped_and_the_rest_left_alone() {
        for cell in ["=1+1", "+33612345678", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(escape_formula(cell), format!("'{cell}"));
        }
        for cell in ["Ada", "", "a=b", "'quoted", "1-2", " =x"] {
            assert_eq!(escape_formula(cell), cell);
        }
        assert_eq!(text("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")");
    }
}
