//! The `webhooks` API function's routes, with their OpenAPI annotations. The Lambda binary
//! (`main.rs`) serves them alone; the local server and the OpenAPI document merge them with
//! the other functions'.

mod routes;

pub use routes::routes;
