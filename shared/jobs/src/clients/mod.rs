//! HTTP clients of the services this one talks to.

pub mod auth;
pub mod notification;
