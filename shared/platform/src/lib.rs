//! What every function's process stands on, whatever its role: configuration (the one
//! place that reads the environment, with secrets resolved into it), the PostgreSQL pool
//! and migrations, Redis, the SQS queue backend, the exports bucket (S3), structured logs,
//! EMF metrics and the Lambda invocation context. No HTTP routing and no job handling here.

pub mod cache;
pub mod config;
pub mod db;
pub mod emf;
pub mod health;
pub mod invocation;
pub mod logging;
pub mod s3;
pub mod secrets;
pub mod sqs;
pub mod tls;
