//! The rules of the door, as a pure function: may this ticket go in (or out) on this list
//! now? The one-statement fast paths (`scan.rs`) encode the same rules in SQL for the
//! common case (accepted); everything else — refusals, offline uploads — is decided here,
//! with the ticket locked, so both paths agree by construction and the rules are unit-tested.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorCode;

/// Which way a scan goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Entry,
    Exit,
}

crate::text_enum!(Direction {
    Entry => "entry",
    Exit => "exit",
});

/// What a list admits.
#[derive(Debug, Clone)]
pub struct ListRules {
    pub id: i64,
    pub event_id: i64,
    pub event_published: bool,
    pub allow_reentry: bool,
    /// Empty: every ticket type.
    pub ticket_type_ids: Vec<i64>,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
}

impl ListRules {
    pub fn admits_type(&self, ticket_type_id: Option<i64>) -> bool {
        self.ticket_type_ids.is_empty()
            || ticket_type_id.is_some_and(|t| self.ticket_type_ids.contains(&t))
    }

    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.opens_at.is_none_or(|o| o <= at) && self.closes_at.is_none_or(|c| at < c)
    }
}

/// A ticket as the door sees it.
#[derive(Debug, Clone)]
pub struct DoorTicket {
    pub id: i64,
    pub event_id: i64,
    pub guest_id: i64,
    pub ticket_type_id: Option<i64>,
    pub cancelled: bool,
    /// Whether an entry on some list already validated it (part 1's `isValidated`).
    pub validated: bool,
}

/// A ticket's state on one list: accepted, not reverted, entries and exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presence {
    pub inside: bool,
    pub entries: i32,
    pub exits: i32,
}

/// Why a scan is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    InvalidSignature,
    EventNotPublished,
    NotOnList,
    ListClosed,
    Cancelled,
    /// An entry of a ticket inside, or already entered once on a list without re-entry.
    AlreadyEntered,
    NotInside,
}

impl Refusal {
    pub fn code(self) -> ErrorCode {
        match self {
            Refusal::NotFound => ErrorCode::NotFound,
            Refusal::InvalidSignature => ErrorCode::InvalidSignature,
            Refusal::EventNotPublished => ErrorCode::InvalidState,
            Refusal::NotOnList => ErrorCode::NotOnList,
            Refusal::ListClosed => ErrorCode::ListClosed,
            Refusal::Cancelled => ErrorCode::TicketCancelled,
            Refusal::AlreadyEntered => ErrorCode::TicketAlreadyValidated,
            Refusal::NotInside => ErrorCode::NotInside,
        }
    }

    pub fn result(self) -> ScanResult {
        match self {
            Refusal::NotFound => ScanResult::NotFound,
            Refusal::InvalidSignature => ScanResult::InvalidSignature,
            Refusal::EventNotPublished => ScanResult::EventNotPublished,
            Refusal::NotOnList => ScanResult::NotOnList,
            Refusal::ListClosed => ScanResult::ListClosed,
            Refusal::Cancelled => ScanResult::Cancelled,
            Refusal::AlreadyEntered => ScanResult::AlreadyValidated,
            Refusal::NotInside => ScanResult::NotInside,
        }
    }

    /// An offline admission refused for this reason is a conflict: the device let a person in
    /// whom the server would have refused because the ticket was already used (another device
    /// admitted it first) or was cancelled meanwhile. Every other refusal is `rejected`.
    pub fn is_conflict(self, direction: Direction) -> bool {
        direction == Direction::Entry
            && matches!(self, Refusal::AlreadyEntered | Refusal::Cancelled)
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotFound => "ticket not found",
            Refusal::InvalidSignature => "the ticket's signature does not verify",
            Refusal::EventNotPublished => "the event is not published, tickets cannot be validated",
            Refusal::NotOnList => "this check-in list does not admit this ticket's type",
            Refusal::ListClosed => "this check-in list is closed at this time",
            Refusal::Cancelled => "this ticket was cancelled",
            Refusal::AlreadyEntered => "this ticket was already validated",
            Refusal::NotInside => "this ticket is not inside",
        }
    }
}

/// The result of a scan attempt, as written to the scan log (`ticket_scans.result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanResult {
    Accepted,
    /// An offline admission the server would have refused (see [`Refusal::is_conflict`]).
    Conflict,
    /// The database refused the attempt with a conflict every time it was tried (503).
    Unavailable,
    AlreadyValidated,
    Cancelled,
    EventNotPublished,
    NotFound,
    InvalidSignature,
    NotOnList,
    ListClosed,
    NotInside,
}

crate::text_enum!(ScanResult {
    Accepted => "accepted",
    Conflict => "conflict",
    Unavailable => "unavailable",
    AlreadyValidated => "already_validated",
    Cancelled => "cancelled",
    EventNotPublished => "event_not_published",
    NotFound => "not_found",
    InvalidSignature => "invalid_signature",
    NotOnList => "not_on_list",
    ListClosed => "list_closed",
    NotInside => "not_inside",
});

/// The door's decision for `ticket` (`None`: nothing matched what was read) scanned
/// `direction` on `list` at `at`, the ticket being `presence` on the list: its presence
/// after an accepted scan, or why not.
pub fn judge(
    list: &ListRules,
    ticket: Option<&DoorTicket>,
    presence: Presence,
    direction: Direction,
    at: DateTime<Utc>,
) -> Result<Presence, Refusal> {
    let Some(ticket) = ticket.filter(|t| t.event_id == list.event_id) else {
        return Err(Refusal::NotFound);
    };
    if !list.admits_type(ticket.ticket_type_id) {
        return Err(Refusal::NotOnList);
    }
    match direction {
        Direction::Entry => {
            if !list.event_published {
                return Err(Refusal::EventNotPublished);
            }
            if !list.is_open(at) {
                return Err(Refusal::ListClosed);
            }
            if ticket.cancelled {
                return Err(Refusal::Cancelled);
            }
            if presence.inside || (presence.entries > 0 && !list.allow_reentry) {
                return Err(Refusal::AlreadyEntered);
            }
            Ok(Presence {
                inside: true,
                entries: presence.entries + 1,
                exits: presence.exits,
            })
        }
        // Leaving is always possible for someone inside (a ticket cancelled while its holder
        // is in the hall, a list that closed meanwhile).
        Direction::Exit => {
            if !presence.inside {
                return Err(Refusal::NotInside);
            }
            Ok(Presence {
                inside: false,
                entries: presence.entries,
                exits: presence.exits + 1,
            })
        }
    }
}

/// The presence before the accepted scan `direction` that is being reverted.
pub fn revert(presence: Presence, direction: Direction) -> Presence {
    match direction {
        Direction::Entry => Presence {
            inside: false,
            entries: (presence.entries - 1).max(0),
            exits: presence.exits,
        },
        Direction::Exit => Presence {
            inside: true,
            entries: presence.entries,
            exits: (presence.exits - 1).max(0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn list(reentry: bool) -> ListRules {
        ListRules {
            id: 1,
            event_id: 10,
            event_published: true,
            allow_reentry: reentry,
            ticket_type_ids: vec![],
            opens_at: None,
            closes_at: None,
        }
    }

    fn ticket() -> DoorTicket {
        DoorTicket {
            id: 5,
            event_id: 10,
            guest_id: 7,
            ticket_type_id: Some(3),
            cancelled: false,
            validated: false,
        }
    }

    const OUT: Presence = Presence {
        inside: false,
        entries: 0,
        exits: 0,
    };

    #[test]
    fn entries_and_exits_alternate_on_a_reentry_list() {
        let (l, t, now) = (list(true), ticket(), Utc::now());
        let p = judge(&l, Some(&t), OUT, Direction::Entry, now).unwrap();
        assert_eq!(
            judge(&l, Some(&t), p, Direction::Entry, now),
            Err(Refusal::AlreadyEntered)
        );
        let p = judge(&l, Some(&t), p, Direction::Exit, now).unwrap();
        assert_eq!(
            judge(&l, Some(&t), p, Direction::Exit, now),
            Err(Refusal::NotInside)
        );
        let p = judge(&l, Some(&t), p, Direction::Entry, now).unwrap();
        assert_eq!(
            p,
            Presence {
                inside: true,
                entries: 2,
                exits: 1
            }
        );
        assert_eq!(
            revert(p, Direction::Entry),
            Presence {
                inside: false,
                entries: 1,
                exits: 1
            }
        );
    }

    #[test]
    fn a_list_without_reentry_admits_once_ever() {
        let (l, t, now) = (list(false), ticket(), Utc::now());
        let p = judge(&l, Some(&t), OUT, Direction::Entry, now).unwrap();
        let p = judge(&l, Some(&t), p, Direction::Exit, now).unwrap();
        assert_eq!(
            judge(&l, Some(&t), p, Direction::Entry, now),
            Err(Refusal::AlreadyEntered)
        );
        // A reverted entry lets it in again.
        let back = revert(revert(p, Direction::Exit), Direction::Entry);
        assert_eq!(back, OUT);
        assert!(judge(&l, Some(&t), back, Direction::Entry, now).is_ok());
    }

    #[test]
    fn refusals_in_order() {
        let now = Utc::now();
        let t = ticket();
        let mut l = list(false);
        assert_eq!(
            judge(&l, None, OUT, Direction::Entry, now),
            Err(Refusal::NotFound)
        );
        let other_event = DoorTicket {
            event_id: 11,
            ..ticket()
        };
        assert_eq!(
            judge(&l, Some(&other_event), OUT, Direction::Entry, now),
            Err(Refusal::NotFound)
        );
        l.ticket_type_ids = vec![4];
        assert_eq!(
            judge(&l, Some(&t), OUT, Direction::Entry, now),
            Err(Refusal::NotOnList)
        );
        l.ticket_type_ids = vec![3, 4];
        l.opens_at = Some(now + Duration::minutes(5));
        assert_eq!(
            judge(&l, Some(&t), OUT, Direction::Entry, now),
            Err(Refusal::ListClosed)
        );
        l.opens_at = None;
        l.closes_at = Some(now);
        assert_eq!(
            judge(&l, Some(&t), OUT, Direction::Entry, now),
            Err(Refusal::ListClosed),
            "closesAt is exclusive"
        );
        l.closes_at = None;
        let cancelled = DoorTicket {
            cancelled: true,
            ..ticket()
        };
        assert_eq!(
            judge(&l, Some(&cancelled), OUT, Direction::Entry, now),
            Err(Refusal::Cancelled)
        );
        l.event_published = false;
        assert_eq!(
            judge(&l, Some(&t), OUT, Direction::Entry, now),
            Err(Refusal::EventNotPublished)
        );
    }

    #[test]
    fn exits_need_the_ticket_inside_and_nothing_else() {
        let now = Utc::now();
        let mut l = list(false);
        l.event_published = false;
        l.closes_at = Some(now - Duration::hours(1));
        let cancelled = DoorTicket {
            cancelled: true,
            ..ticket()
        };
        let inside = Presence {
            inside: true,
            entries: 1,
            exits: 0,
        };
        assert!(judge(&l, Some(&cancelled), inside, Direction::Exit, now).is_ok());
        assert_eq!(
            judge(&l, Some(&cancelled), OUT, Direction::Exit, now),
            Err(Refusal::NotInside)
        );
    }

    #[test]
    fn only_used_or_cancelled_tickets_make_conflicts() {
        assert!(Refusal::AlreadyEntered.is_conflict(Direction::Entry));
        assert!(Refusal::Cancelled.is_conflict(Direction::Entry));
        assert!(!Refusal::NotInside.is_conflict(Direction::Exit));
        assert!(!Refusal::NotOnList.is_conflict(Direction::Entry));
        assert!(!Refusal::ListClosed.is_conflict(Direction::Entry));
    }
}
