//! The migrate function driven through the Lambda runtime interface (cargo-lambda's
//! emulator) with real CloudFormation custom-resource requests, whose `ResponseURL`
//! points at a local HTTP server standing in for the pre-signed S3 URL.

use base64::Engine;
use serde_json::{json, Value};
use testkit::aws::moto;
use testkit::lambda::Emulator;
use tokio_postgres::NoTls;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RESPONSE_PATH: &str = "/cloudformation-custom-resource-response/signed";

/// An empty database (no migrations applied), dropped at the end of the test.
struct BlankDatabase {
    name: String,
    url: String,
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&testkit::server_url(), NoTls)
        .await
        .expect("PostgreSQL runs (infra/scripts/services.sh)");
    tokio::spawn(conn);
    client
}

impl BlankDatabase {
    async fn create() -> Self {
        // `ept_test_` databases left by killed runs are dropped by infra/scripts/test.sh.
        let name = format!("ept_test_{}", uuid::Uuid::new_v4().simple());
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Self {
            url: testkit::url_for(&name),
            name,
        }
    }

    async fn tables(&self) -> Vec<String> {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

impl Drop for BlankDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let _ = admin()
                        .await
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                })
        })
        .join();
    }
}

/// The migrations of the repository (`V<n>__<name>`, oldest first): what a fresh database gets.
fn repository_migrations() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut found: Vec<(u32, String)> = std::fs::read_dir(dir)
        .expect("migrations/")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".sql")?;
            let version = stem.strip_prefix('V')?.split("__").next()?.parse().ok()?;
            Some((version, stem.to_owned()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, name)| name).collect()
}

/// The project's fixture (a real Create request), aimed at `server`.
fn request(
    server: &MockServer,
    kind: &str,
    resource_type: &str,
    request_id: &str,
    physical_id: Option<&str>,
    properties: Value,
    old_properties: Option<Value>,
) -> Value {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../infra/fixtures/cfn-custom-resource-create.json"
    ))
    .unwrap();
    event["RequestType"] = json!(kind);
    event["ResponseURL"] = json!(format!(
        "{}{RESPONSE_PATH}?X-Amz-Signature=abc",
        server.uri()
    ));
    event["RequestId"] = json!(request_id);
    event["ResourceType"] = json!(resource_type);
    if resource_type != "Custom::Migrations" {
        event["LogicalResourceId"] = json!("TicketSigningKey");
    }
    event["ResourceProperties"] = properties;
    if let Some(id) = physical_id {
        event["PhysicalResourceId"] = json!(id);
    }
    if let Some(old) = old_properties {
        event["OldResourceProperties"] = old;
    }
    event
}

async fn cloudformation() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(RESPONSE_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// The last response PUT to the stand-in; checks the headers CloudFormation requires.
async fn last_response(server: &MockServer, expected: usize) -> Value {
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), expected, "responses sent so far");
    let last = requests.last().unwrap();
    assert_eq!(
        last.headers
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some(""),
        "the pre-signed URL is signed without a content type"
    );
    serde_json::from_slice(&last.body).expect("a JSON response body")
}

#[tokio::test]
async fn migrations_run_as_a_custom_resource_and_a_second_run_is_a_no_op() {
    let db = BlankDatabase::create().await;
    assert!(db.tables().await.is_empty());
    let cfn = cloudformation().await;
    let mut emulator = Emulator::start();
    emulator.attach(
        "migrate",
        env!("CARGO_BIN_EXE_migrate"),
        &[("DATABASE_URL", db.url.as_str()), ("RUST_LOG", "warn")],
    );
    let props = json!({"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:migrate", "FunctionVersion": "1"});

    // Create: migrates, answers SUCCESS with the request's identifiers.
    let create = request(
        &cfn,
        "Create",
        "Custom::Migrations",
        "req-create-1",
        None,
        props.clone(),
        None,
    );
    let (status, out) = emulator.invoke("migrate", &create).await;
    assert_eq!(status, 200, "{out}");
    let body = last_response(&cfn, 1).await;
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(body["RequestId"], "req-create-1");
    assert_eq!(body["StackId"], create["StackId"]);
    assert_eq!(body["LogicalResourceId"], "Migrations");
    assert_eq!(
        body["PhysicalResourceId"],
        "event-planner-core-dev-migrations"
    );
    let migrations = repository_migrations();
    let latest = migrations.last().expect("at least one migration").clone();
    assert_eq!(
        body["Data"]["Applied"],
        migrations.len().to_string(),
        "{body}"
    );
    assert_eq!(body["Data"]["Current"], latest.as_str());
    assert_eq!(out, body, "the invocation returns what was sent");
    let tables = db.tables().await;
    for table in [
        "events",
        "ticket_types",
        "guests",
        "tickets",
        "ticket_scans",
        "job_outbox",
        "processed_jobs",
        "refinery_schema_history",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing: {tables:?}"
        );
    }

    // Update (a new deploy): nothing to apply, still SUCCESS, same physical id.
    let update = request(
        &cfn,
        "Update",
        "Custom::Migrations",
        "req-update-1",
        Some("event-planner-core-dev-migrations"),
        json!({"FunctionVersion": "2"}),
        Some(props.clone()),
    );
    let (status, _) = emulator.invoke("migrate", &update).await;
    assert_eq!(status, 200);
    let body = last_response(&cfn, 2).await;
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(
        body["PhysicalResourceId"],
        "event-planner-core-dev-migrations"
    );
    assert_eq!(body["Data"]["Applied"], "0");
    assert!(
        body["Reason"].as_str().unwrap().contains("up to date"),
        "{body}"
    );

    // The documented post-deploy invocation: `{}` migrates and returns the report.
    let (status, out) = emulator.invoke("migrate", &json!({})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out,
        json!({"applied": [], "current": latest, "total": migrations.len()})
    );

    // Delete: SUCCESS, and the schema stays.
    let delete = request(
        &cfn,
        "Delete",
        "Custom::Migrations",
        "req-delete-1",
        Some("event-planner-core-dev-migrations"),
        props,
        None,
    );
    emulator.invoke("migrate", &delete).await;
    let body = last_response(&cfn, 3).await;
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(db.tables().await, tables);
}

#[tokio::test]
async fn failures_are_answered_so_the_stack_never_waits() {
    let cfn = cloudformation().await;
    let mut emulator = Emulator::start();
    // Nothing listens on port 9: every connection is refused.
    emulator.attach(
        "migrate",
        env!("CARGO_BIN_EXE_migrate"),
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/none"),
            ("RUST_LOG", "off"),
        ],
    );

    let create = request(
        &cfn,
        "Create",
        "Custom::Migrations",
        "req-fail-1",
        None,
        json!({}),
        None,
    );
    let (status, _) = emulator.invoke("migrate", &create).await;
    assert_eq!(
        status, 200,
        "a delivered FAILED answer is a handled invocation"
    );
    let body = last_response(&cfn, 1).await;
    assert_eq!(body["Status"], "FAILED", "{body}");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .contains("connecting to the database"),
        "{body}"
    );
    assert_eq!(
        body["PhysicalResourceId"],
        "event-planner-core-dev-migrations"
    );

    // Invoked directly, the error carries its whole cause chain.
    let (_, out) = emulator.invoke("migrate", &json!({})).await;
    let message = out["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("connecting to the database at 127.0.0.1:9/none")
            && message.to_lowercase().contains("refused"),
        "{out}"
    );

    // The rollback's Delete must not need the database.
    let delete = request(
        &cfn,
        "Delete",
        "Custom::Migrations",
        "req-fail-2",
        Some("event-planner-core-dev-migrations"),
        json!({}),
        None,
    );
    emulator.invoke("migrate", &delete).await;
    assert_eq!(last_response(&cfn, 2).await["Status"], "SUCCESS");

    // A resource type this function does not manage.
    let other = request(
        &cfn,
        "Create",
        "Custom::Other",
        "req-fail-3",
        None,
        json!({}),
        None,
    );
    emulator.invoke("migrate", &other).await;
    let body = last_response(&cfn, 3).await;
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().contains("Custom::Other"));

    // A direct invocation reports the error as a function error.
    let (status, out) = emulator.invoke("migrate", &json!({})).await;
    assert_eq!(status, 500, "{out}");
}

#[tokio::test]
async fn the_ticket_signing_key_is_generated_once_and_rotated_on_request() {
    let moto = moto();
    let secrets = moto.secrets();
    // As the template creates it: a secret without a value.
    let arn = secrets
        .create_secret()
        .name(format!("ticket-key-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("an ARN");
    let value = || async {
        secrets
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .expect("the secret has a value")
            .secret_string
            .unwrap()
    };

    let cfn = cloudformation().await;
    let aws_env = moto.env();
    let mut env: Vec<(&str, &str)> = vec![("RUST_LOG", "warn")];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut emulator = Emulator::start();
    emulator.attach("migrate", env!("CARGO_BIN_EXE_migrate"), &env);
    let kind = "Custom::TicketSigningKey";

    let props = json!({"SecretId": arn, "Rotation": "1"});
    emulator
        .invoke(
            "migrate",
            &request(
                &cfn,
                "Create",
                kind,
                "key-create",
                None,
                props.clone(),
                None,
            ),
        )
        .await;
    let created = last_response(&cfn, 1).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["PhysicalResourceId"], arn.as_str());
    assert_eq!(created["Data"]["VerifyKeys"], "");
    let seed = value().await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(seed.trim())
        .expect("standard base64");
    assert_eq!(bytes.len(), 32, "a 32-byte Ed25519 seed");
    let keys = domain::tickets::signing::TicketKeys::from_seed_base64(&seed, &[]).unwrap();
    assert_eq!(created["Data"]["KeyId"], keys.kid());
    assert_eq!(created["Data"]["PublicKey"], keys.public_key_base64());

    // An Update that does not change `Rotation` keeps the key.
    let same = request(
        &cfn,
        "Update",
        kind,
        "key-update",
        Some(&arn),
        json!({"SecretId": arn, "Rotation": "1", "X": "y"}),
        Some(props.clone()),
    );
    emulator.invoke("migrate", &same).await;
    let kept = last_response(&cfn, 2).await;
    assert_eq!(kept["Data"]["KeyId"], keys.kid(), "{kept}");
    assert_eq!(value().await, seed);

    // Changing `Rotation` rotates; the old key is offered for verification.
    let rotate = request(
        &cfn,
        "Update",
        kind,
        "key-rotate",
        Some(&arn),
        json!({"SecretId": arn, "Rotation": "2"}),
        Some(props),
    );
    emulator.invoke("migrate", &rotate).await;
    let rotated = last_response(&cfn, 3).await;
    assert_eq!(rotated["Status"], "SUCCESS", "{rotated}");
    assert_ne!(rotated["Data"]["KeyId"], keys.kid());
    assert_eq!(
        rotated["Data"]["VerifyKeys"],
        format!("{}:{}", keys.kid(), keys.public_key_base64())
    );
    let new_seed = value().await;
    assert_ne!(new_seed, seed);

    // The same request again (Lambda retrying the asynchronous invocation) does not rotate twice.
    emulator.invoke("migrate", &rotate).await;
    let again = last_response(&cfn, 4).await;
    assert_eq!(again["Data"]["KeyId"], rotated["Data"]["KeyId"], "{again}");
    assert_eq!(value().await, new_seed);

    // CloudFormation rolling that update back: an Update with `Rotation` 2 → 1 and the old
    // properties. The first key is current again and the rolled-back one still verifies:
    // no key that signed a ticket is lost (a third key here would void every ticket).
    let rollback = request(
        &cfn,
        "Update",
        kind,
        "key-rollback",
        Some(&arn),
        json!({"SecretId": arn, "Rotation": "1"}),
        Some(json!({"SecretId": arn, "Rotation": "2"})),
    );
    emulator.invoke("migrate", &rollback).await;
    let restored = last_response(&cfn, 5).await;
    assert_eq!(restored["Status"], "SUCCESS", "{restored}");
    assert_eq!(restored["Data"]["KeyId"], keys.kid(), "{restored}");
    assert_eq!(
        restored["Data"]["VerifyKeys"],
        format!(
            "{}:{}",
            rotated["Data"]["KeyId"].as_str().unwrap(),
            rotated["Data"]["PublicKey"].as_str().unwrap()
        )
    );
    assert_eq!(value().await, seed);
    // Retried, the rollback does nothing more.
    emulator.invoke("migrate", &rollback).await;
    assert_eq!(last_response(&cfn, 6).await["Data"]["KeyId"], keys.kid());
    assert_eq!(value().await, seed);

    // Delete leaves the (retained) secret alone.
    let delete = request(
        &cfn,
        "Delete",
        kind,
        "key-delete",
        Some(&arn),
        json!({"SecretId": arn}),
        None,
    );
    emulator.invoke("migrate", &delete).await;
    assert_eq!(last_response(&cfn, 7).await["Status"], "SUCCESS");
    assert_eq!(value().await, seed);
}

/// A failed stack update rolls back: CloudFormation sends the migrations resource an
/// Update with the older function version. That, and a database already ahead of the code
/// that runs, answer SUCCESS without touching the schema, so the rollback can complete.
#[tokio::test]
async fn rollbacks_leave_the_schema_and_succeed() {
    let db = BlankDatabase::create().await;
    let cfn = cloudformation().await;
    let mut emulator = Emulator::start();
    emulator.attach(
        "migrate",
        env!("CARGO_BIN_EXE_migrate"),
        &[("DATABASE_URL", db.url.as_str()), ("RUST_LOG", "warn")],
    );
    let v = |n: &str| json!({"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:migrate", "FunctionVersion": n});
    let create = request(
        &cfn,
        "Create",
        "Custom::Migrations",
        "rb-1",
        None,
        v("5"),
        None,
    );
    emulator.invoke("migrate", &create).await;
    assert_eq!(last_response(&cfn, 1).await["Status"], "SUCCESS");
    let tables = db.tables().await;

    // The rollback of an update 5 → 6: Update to 5 with old properties 6.
    let id = Some("event-planner-core-dev-migrations");
    let rollback = request(
        &cfn,
        "Update",
        "Custom::Migrations",
        "rb-2",
        id,
        v("5"),
        Some(v("6")),
    );
    emulator.invoke("migrate", &rollback).await;
    let body = last_response(&cfn, 2).await;
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert!(
        body["Reason"].as_str().unwrap().contains("rollback"),
        "{body}"
    );
    assert_eq!(
        body["PhysicalResourceId"],
        "event-planner-core-dev-migrations"
    );

    // A database that a newer deploy migrated further: this code applies nothing, succeeds.
    let (client, conn) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (999, 'from_a_newer_deploy', now()::text, '0')",
            &[],
        )
        .await
        .unwrap();
    let update = request(
        &cfn,
        "Update",
        "Custom::Migrations",
        "rb-3",
        id,
        v("7"),
        Some(v("5")),
    );
    emulator.invoke("migrate", &update).await;
    let body = last_response(&cfn, 3).await;
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("ahead") && reason.contains("V999__from_a_newer_deploy"),
        "{reason}"
    );
    assert_eq!(db.tables().await, tables);
    let (status, out) = emulator.invoke("migrate", &json!({})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out["newer_in_database"],
        json!(["V999__from_a_newer_deploy"])
    );
}

/// RDS forces TLS: against a TLS-only PostgreSQL (its own CA, `hostssl` lines only, SCRAM)
/// the migrate function, defaulting to verify-full in Lambda, answers a real Create with
/// SUCCESS over an encrypted session; without the CA the server is not trusted, and
/// without TLS the server refuses the connection.
#[tokio::test]
async fn migrations_run_over_verified_tls_against_a_tls_only_postgresql() {
    let pg = testkit::private::PrivatePostgres::start_tls("s3cret-pw");
    let ca = pg.ca_file.clone().unwrap();
    let url = pg.url("postgres");
    let cfn = cloudformation().await;
    let mut emulator = Emulator::start();
    let base = [("DATABASE_URL", url.as_str()), ("RUST_LOG", "warn")];
    let ca = ca.to_str().unwrap();
    let verified: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("DB_SSLMODE", "verify-full"), ("DB_SSL_ROOT_CERT", ca)])
        .collect();
    emulator.attach("migrate", env!("CARGO_BIN_EXE_migrate"), &verified);
    // The AWS roots only (the function's default): our CA is not among them.
    let aws_roots: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("DB_SSLMODE", "verify-full")])
        .collect();
    // (The emulator knows functions by their binary's name: one emulator per configuration.)
    let mut with_aws_roots = Emulator::start();
    with_aws_roots.attach("migrate", env!("CARGO_BIN_EXE_migrate"), &aws_roots);
    let plain: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("DB_SSLMODE", "disable")])
        .collect();
    let mut without_tls = Emulator::start();
    without_tls.attach("migrate", env!("CARGO_BIN_EXE_migrate"), &plain);
    let props = json!({"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:migrate", "FunctionVersion": "1"});

    let create = request(
        &cfn,
        "Create",
        "Custom::Migrations",
        "req-tls-1",
        None,
        props.clone(),
        None,
    );
    let (status, out) = emulator.invoke("migrate", &create).await;
    assert_eq!(status, 200, "{out}");
    let body = last_response(&cfn, 1).await;
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(
        body["Data"]["Current"],
        repository_migrations().last().unwrap().as_str()
    );

    let create = request(
        &cfn,
        "Create",
        "Custom::Migrations",
        "req-tls-2",
        None,
        props.clone(),
        None,
    );
    let (status, out) = with_aws_roots.invoke("migrate", &create).await;
    assert_eq!(status, 200, "{out}");
    let body = last_response(&cfn, 2).await;
    assert_eq!(body["Status"], "FAILED", "{body}");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("certificate"),
        "refused for verification: {reason}"
    );

    let create = request(
        &cfn,
        "Create",
        "Custom::Migrations",
        "req-tls-3",
        None,
        props,
        None,
    );
    let (status, out) = without_tls.invoke("migrate", &create).await;
    assert_eq!(status, 200, "{out}");
    let body = last_response(&cfn, 3).await;
    assert_eq!(body["Status"], "FAILED", "{body}");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("no pg_hba.conf entry") && reason.contains("no encryption"),
        "refused by the server: {reason}"
    );
    // The schema is there, and this session (like the function's) is encrypted.
    let client = pg.connect("postgres").await;
    let row = client
        .query_one(
            "SELECT ssl, (SELECT count(*) FROM refinery_schema_history) FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, i64>(1) > 0);
}
