//! Webhooks, following the Standard Webhooks specification (standardwebhooks.com).
//!
//! - Endpoints belong to an organizer ([`commands`]); each has a secret (`whsec_` + base64 of
//!   32 random bytes) shown once, at creation and rotation. After a rotation the previous
//!   secret keeps signing (a second signature in `webhook-signature`) for 24 hours, so a
//!   receiver can switch without losing messages.
//! - A change writes, in its own transaction, one delivery per subscribed endpoint and a
//!   `deliver_webhook` job per delivery ([`emit`]): a webhook exists exactly when its change does.
//! - The worker (`jobs::webhook`) signs and sends it ([`sign`]); a failed attempt schedules the
//!   next one through the outbox (exponential back-off for up to 3 days), 410 disables the
//!   endpoint, and an endpoint failing for 3 days is disabled.

pub mod commands;
pub mod emit;
pub mod input;
pub mod model;
pub mod sign;

pub use emit::emit;
pub use model::{Delivery, EventType, Webhook, WebhookWithSecret};
