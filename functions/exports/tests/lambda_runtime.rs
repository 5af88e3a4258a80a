//! The exports function driven through the Lambda runtime interface (cargo-lambda's emulator)
//! with real API Gateway HTTP API v2 payloads, configured as the template does (EXPORTS_BUCKET,
//! the region and the role's credentials in the environment), against moto's S3: a request,
//! the job run in this process, then a read whose presigned link downloads the file.

use domain::Role;
use platform::config::{DbConfig, S3Config};
use platform::s3::ObjectStore;
use serde_json::{json, Value};
use testkit::lambda::{apigw_v2, token, Emulator};
use testkit::TestDatabase;

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().expect("a body")).expect("a JSON body")
}

#[tokio::test]
async fn exports_answer_through_the_lambda_runtime_with_links_that_download() {
    let db = TestDatabase::create().await;
    let moto = testkit::aws::moto();
    let bucket = format!("exports-lambda-{}", std::process::id());
    let store = ObjectStore::new(&S3Config {
        bucket: bucket.clone(),
        region: testkit::aws::REGION.into(),
        endpoint: Some(moto.url.clone()),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        session_token: None,
        link_ttl: std::time::Duration::from_secs(3600),
    })
    .unwrap();
    store.create_bucket().await.expect("CreateBucket on moto");
    let secret = "lambda-test-secret";
    let mut env: Vec<(&str, String)> = moto.env();
    env.extend([
        ("DATABASE_URL", db.url.clone()),
        ("JWT_SECRET", secret.into()),
        ("EXPORTS_BUCKET", bucket),
        ("AWS_SESSION_TOKEN", "session-token-of-the-role".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut emulator = Emulator::start();
    emulator.attach("exports", env!("CARGO_BIN_EXE_exports"), &env);

    let pool = platform::db::pool(&DbConfig::local(&db.url, 2)).unwrap();
    let event: i64 = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "INSERT INTO events (organizer_id, title, event_date, location, max_attendees, status)
             VALUES ('org-1', 'Lambda export', now() + interval '30 days', 'Paris', 10, 'published') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let alice = token(secret, "org-1", Role::Organizer);

    let (status, res) = emulator
        .invoke(
            "exports",
            &apigw_v2(
                "POST",
                &format!("/api/events/{event}/exports"),
                Some(&alice),
                Some(&json!({"kind": "guests"})),
            ),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["statusCode"], 202, "{res}");
    let export = body(&res)["data"]["id"].as_i64().unwrap();
    assert_eq!(body(&res)["data"]["status"], "pending");

    // The job, as the ticket worker runs it.
    jobs::export::build(&pool, Some(&store), export)
        .await
        .unwrap();

    let (_, res) = emulator
        .invoke(
            "exports",
            &apigw_v2("GET", &format!("/api/exports/{export}"), Some(&alice), None),
        )
        .await;
    assert_eq!(res["statusCode"], 200, "{res}");
    let x = body(&res)["data"].clone();
    assert_eq!(x["status"], "done", "{x}");
    assert_eq!(x["rows"], 0);
    let url = x["downloadUrl"].as_str().unwrap();
    // Signed with the role's session credentials, as in Lambda.
    assert!(
        url.contains("X-Amz-Security-Token=session-token-of-the-role"),
        "{url}"
    );
    let csv = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(
        csv.starts_with("guestId,firstName,lastName,email,"),
        "{csv}"
    );

    for (who, expected) in [
        (token(secret, "org-2", Role::Organizer), 404),
        (token(secret, "org-1", Role::Scanner), 403),
    ] {
        let (_, res) = emulator
            .invoke(
                "exports",
                &apigw_v2("GET", &format!("/api/exports/{export}"), Some(&who), None),
            )
            .await;
        assert_eq!(res["statusCode"], expected, "{res}");
    }
}
