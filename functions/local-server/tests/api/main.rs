//! API integration tests against the real PostgreSQL (one database per test).
mod cache;
mod checkin_lists;
mod conventions;
mod etags;
mod events;
mod faults;
mod guests;
mod health;
mod helpers;
mod mixed;
mod outbox;
mod races;
mod sync;
mod tenancy;
mod ticket_types;
mod tickets;
mod webhooks;
