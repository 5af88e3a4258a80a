//! Tickets: codes, signed QR payloads and images, the ticket view, check-in at the
//! door, and event stats. The contract's Tickets section.

pub mod checkin;
pub mod code;
pub mod issue;
pub mod model;
pub mod qr;
pub mod queries;
pub mod signing;
pub mod stats;

pub use model::{Ticket, TicketStatus};
