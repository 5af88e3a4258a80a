//! Guests: registration with capacity that holds under concurrency, approval,
//! cancellation. The contract's Guests section.

pub mod commands;
pub mod import;
pub mod input;
pub mod model;
pub mod privacy;
pub mod queries;

pub use model::{Guest, GuestStatus};
