//! The events function driven through the Lambda runtime interface
//! (cargo-lambda's emulator) with real API Gateway HTTP API v2 payloads.

use domain::Role;
use serde_json::{json, Value};
use testkit::lambda::{apigw_v2, Emulator};
use testkit::TestDatabase;

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().expect("a body")).expect("a JSON body")
}

#[tokio::test]
async fn events_answer_through_the_lambda_runtime() {
    let db = TestDatabase::create().await;
    let secret = "lambda-test-secret";
    // No TICKET_SIGNING_KEY: the events function signs and verifies no ticket.
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("JWT_SECRET", secret),
        ("RUST_LOG", "warn"),
    ];
    let mut emulator = Emulator::start();
    emulator.attach("events", env!("CARGO_BIN_EXE_events"), &env);

    let token = testkit::lambda::token(secret, "org-1", Role::Organizer);

    let date = (chrono::Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let create = json!({"title": "Tech Conference 2027", "eventDate": date, "location": "Paris, La Défense",
                        "maxAttendees": 500, "ticketTypes": [{"name": "VIP", "price": 299.99, "quantity": 50}]});
    let (status, res) = emulator
        .invoke(
            "events",
            &apigw_v2("POST", "/api/events", Some(&token), Some(&create)),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["statusCode"], 201, "{res}");
    let created = body(&res);
    assert_eq!(created["data"]["status"], "draft");
    assert_eq!(
        res["headers"]["x-request-id"], "lambda-test-1",
        "the request id is echoed"
    );
    let id = created["data"]["id"].as_i64().unwrap();

    let (_, res) = emulator
        .invoke(
            "events",
            &apigw_v2("GET", "/api/events?limit=5&search=tech", Some(&token), None),
        )
        .await;
    assert_eq!(res["statusCode"], 200);
    assert_eq!(body(&res)["data"]["events"][0]["id"], id);
    assert_eq!(body(&res)["data"]["pagination"]["limit"], 5);

    let (_, res) = emulator
        .invoke("events", &apigw_v2("GET", "/api/events", None, None))
        .await;
    assert_eq!(res["statusCode"], 401);
    assert_eq!(body(&res)["error"]["code"], "UNAUTHORIZED");
    let (_, res) = emulator
        .invoke(
            "events",
            &apigw_v2(
                "POST",
                "/api/events",
                Some(&token),
                Some(&json!({"title": 1})),
            ),
        )
        .await;
    assert_eq!(res["statusCode"], 400);
    assert_eq!(body(&res)["error"]["code"], "VALIDATION_ERROR");
}

/// As deployed: RDS forces TLS, the credentials come from the RDS-managed secret
/// (`DB_SECRET_ARN`, here in moto's Secrets Manager) and the address from `DB_HOST` /
/// `DB_PORT`, and connections verify the server (verify-full, the template's setting).
/// Against a TLS-only PostgreSQL with a CA of its own, the events function creates and
/// lists events, and every session it opened is encrypted.
#[tokio::test]
async fn events_answer_over_verified_tls_configured_as_the_template_does() {
    let pg = testkit::private::PrivatePostgres::start_tls("rds-managed-pw");
    pg.migrated_database("app").await;
    let moto = testkit::aws::moto();
    let secret = moto
        .secrets()
        .create_secret()
        .name(format!(
            "rds-master-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ))
        .secret_string(json!({"username": "postgres", "password": "rds-managed-pw"}).to_string())
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .unwrap();
    let port = pg.port.to_string();
    let ca = pg.ca_file.clone().unwrap();
    let mut env: Vec<(&str, String)> = moto.env();
    env.extend([
        ("DB_SECRET_ARN", secret),
        ("DB_HOST", "127.0.0.1".into()),
        ("DB_PORT", port),
        ("DB_NAME", "app".into()),
        ("DB_SSLMODE", "verify-full".into()),
        ("DB_SSL_ROOT_CERT", ca.to_str().unwrap().into()),
        ("JWT_SECRET", "tls-test-secret".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut emulator = Emulator::start();
    emulator.attach("events", env!("CARGO_BIN_EXE_events"), &env);
    let token = testkit::lambda::token("tls-test-secret", "org-tls", Role::Organizer);
    let date = (chrono::Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let create =
        json!({"title": "Over TLS", "eventDate": date, "location": "Lyon", "maxAttendees": 10});
    let (status, res) = emulator
        .invoke(
            "events",
            &apigw_v2("POST", "/api/events", Some(&token), Some(&create)),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["statusCode"], 201, "{res}");
    let (_, res) = emulator
        .invoke(
            "events",
            &apigw_v2("GET", "/api/events", Some(&token), None),
        )
        .await;
    assert_eq!(res["statusCode"], 200, "{res}");
    assert_eq!(body(&res)["data"]["events"][0]["title"], "Over TLS");

    let admin = pg.connect("postgres").await;
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
               FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.datname = 'app' AND a.backend_type = 'client backend'",
            &[],
        )
        .await
        .unwrap();
    let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        encrypted >= 1,
        "the function's sessions are open and encrypted"
    );
    assert_eq!(plain, 0, "no session without TLS");
}
