//! The health function driven through the Lambda runtime interface (cargo-lambda's
//! emulator) with real API Gateway HTTP API v2 payloads.

use serde_json::Value;
use testkit::lambda::{apigw_v2, Emulator};
use testkit::TestDatabase;

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().expect("a body")).expect("a JSON body")
}

#[tokio::test]
async fn health_answers_through_the_lambda_runtime() {
    let db = TestDatabase::create().await;
    // No JWT_SECRET, no TICKET_SIGNING_KEY: the health function builds only what it uses.
    let env = [("DATABASE_URL", db.url.as_str())];
    let mut emulator = Emulator::start();
    emulator.attach("health", env!("CARGO_BIN_EXE_health"), &env);

    let (status, res) = emulator
        .invoke("health", &apigw_v2("GET", "/health", None, None))
        .await;
    assert_eq!(
        (status, res["statusCode"].as_u64()),
        (200, Some(200)),
        "{res}"
    );
    assert_eq!(body(&res)["status"], "healthy");
    let (_, res) = emulator
        .invoke("health", &apigw_v2("GET", "/health/ready", None, None))
        .await;
    assert_eq!(res["statusCode"], 200);
    assert_eq!(body(&res)["dependencies"]["database"], true);
    let (_, res) = emulator
        .invoke("health", &apigw_v2("GET", "/api/openapi.json", None, None))
        .await;
    assert!(body(&res)["paths"]["/api/events"].is_object());
    // Routes of other functions are not served here.
    let (_, res) = emulator
        .invoke("health", &apigw_v2("GET", "/api/events", None, None))
        .await;
    assert_eq!(res["statusCode"], 404);
}
