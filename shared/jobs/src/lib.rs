//! The jobs wing: what happens to a job after the outbox relay (`domain::outbox`) hands it
//! to a queue. [`dispatch`] claims a job by its id and runs it once, whatever the number of
//! deliveries; [`workers`] routes each typed job to its handler ([`ticket`], [`email`], [`webhook`],
//! [`export`]);
//! [`lambda`] is the SQS batch adapter of the worker functions (partial batch failures)
//! and the poller of the local server; [`queue`] the in-process queue of local runs;
//! [`clients`] the notification and auth services. No HTTP edge here.

pub mod clients;
pub mod dispatch;
pub mod email;
pub mod export;
pub mod lambda;
pub mod queue;
pub mod ticket;
pub mod webhook;
pub mod workers;
