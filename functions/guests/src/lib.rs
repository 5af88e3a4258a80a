//! The `guests` API function's routes, with their OpenAPI annotations. The Lambda binary
//! (`main.rs`) serves them alone; the local server and the OpenAPI document merge them with
//! the other functions'.

mod routes;
mod waitlist;

/// The guests function's routes: guests, and the waiting list whose entries become guests.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<edge::ApiState> {
    routes::routes().merge(waitlist::routes())
}
