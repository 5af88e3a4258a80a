//! Tickets: codes, the ticket view, and (with their issues) signing, QR and check-in.

pub mod code;
pub mod model;
pub mod qr;
pub mod queries;
pub mod signing;

pub use model::{Ticket, TicketStatus};
