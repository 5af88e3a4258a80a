//! Jobs through real SQS and Secrets Manager (moto_server, started once per test process
//! by `testkit::aws`), a real PostgreSQL database per test and a real HTTP stub of
//! the notification service (wiremock). Nothing of our own code is mocked.
mod helpers;
mod jobs;
mod poison;
mod poller;
mod rotation;
mod secrets;
