//! The waiting list (contract part 2, "Waiting list"): entries per event and ticket type,
//! offers that hold a seat for a while, claims that turn an offer into a registration.
//!
//! A held seat is a seat taken in the seat shards ([`crate::capacity`]), exactly like a
//! registration's, so registrations and imports can never take it; see
//! migrations/V15__waitlist.sql for the lock order every path follows.

pub mod commands;
pub mod input;
pub mod model;
pub mod offers;

pub use model::{WaitlistEntry, WaitlistPage, WaitlistStatus};
