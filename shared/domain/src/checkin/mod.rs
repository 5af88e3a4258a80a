//! Door operations: check-in lists, scans with entry and exit, supervised undo, and offline
//! scanning. The contract's part 2, "Check-in lists" and "Offline scanning".
//!
//! - [`door`]: the rules of the door as a pure function (who may go in or out, and why not).
//! - [`scan`]: online scans (one statement when accepted), offline batches, reverts.
//! - [`lists`]: the lists themselves, their scan logs and conflicts.
//! - [`offline`]: the dataset a scanner downloads, with sealed guest details.
//!
//! The part-1 check-in endpoints ([`crate::tickets::checkin`]) scan on the event's default list.

pub mod door;
pub mod input;
pub mod lists;
pub mod model;
pub mod offline;
pub mod scan;

pub use door::{Direction, ScanResult};
pub use model::{CheckinList, Conflict, ListStats, ScanRecord};
