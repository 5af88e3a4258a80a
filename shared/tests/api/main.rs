//! API integration tests against the real PostgreSQL (one database per test).
mod conventions;
mod events;
mod health;
mod helpers;
mod ticket_types;
