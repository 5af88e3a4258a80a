//! The `exports` API function's routes, with their OpenAPI annotations. The Lambda binary
//! (`main.rs`) serves them alone; the local server and the OpenAPI document merge them with
//! the other functions'. It is the one API function with the exports bucket (to presign
//! download links: `s3:GetObject` only); the files are written by the `build_export` job.

mod routes;

pub use routes::routes;
