//! Events and their ticket types: the contract's Events section.
//! `input` holds the request shapes and rules, `queries` the reads, `commands` the
//! changes (one transaction each), `model` what the API returns.

pub mod commands;
pub mod input;
pub mod model;
pub mod queries;

pub use model::{Event, EventList, EventStatus, TicketType};
