//! The domain core of the event planner: the rules and the SQL of events, ticket types,
//! guests, tickets and check-in, the outbox and its typed jobs.
//!
//! No HTTP framework and no AWS SDK here: the HTTP edge (`edge`) and the jobs wing (`jobs`)
//! depend on this crate, never the other way round. Commands take a transaction and return
//! their result with the effects to apply after the commit ([`work::Done`]); every load of
//! an event on behalf of a caller goes through the one tenancy gate, [`access`].

pub mod access;
pub mod audit;
pub mod caller;
pub mod capacity;
pub mod checkin;
pub mod error;
pub mod etag;
pub mod events;
pub mod exports;
pub mod guests;
pub mod idempotency;
pub mod job;
pub mod lifecycle;
pub mod money;
pub mod outbox;
pub mod page;
pub mod registration;
pub mod rules;
pub mod sql;
pub mod tickets;
pub mod waitlist;
pub mod webhooks;
pub mod work;

pub use caller::{Caller, Role};
pub use error::{DomainError, DomainResult, ErrorCode, FieldError};
pub use work::{Done, Effects};
