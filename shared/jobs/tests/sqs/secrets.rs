//! Secrets from (moto's) Secrets Manager: resolution into the configuration the code
//! reads, the cache and its invalidation, and a state built from them that connects.

use std::collections::HashMap;

use platform::secrets::SecretsCache;
use testkit::aws::moto;
use testkit::TestDatabase;

async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: Option<&str>,
) -> String {
    client
        .create_secret()
        .name(format!("{name}-{}", uuid::Uuid::new_v4().simple()))
        .set_secret_string(value.map(str::to_owned))
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("an ARN")
}

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[tokio::test]
async fn secrets_become_the_configuration() {
    let client = moto().secrets();
    let signing_key = domain::tickets::signing::TicketKeys::generate().seed_base64();
    let jwt = create_secret(&client, "jwt", Some("jwt-secret-from-aws")).await;
    let ticket = create_secret(
        &client,
        "ticket-key",
        Some(&serde_json::json!({ "secret": signing_key }).to_string()),
    )
    .await;
    let password = "p@ss:/w?rd #%&é";
    let db = create_secret(
        &client,
        "rds-master",
        Some(&serde_json::json!({"username": "app_admin", "password": password}).to_string()),
    )
    .await;

    let auth = create_secret(&client, "auth-token", Some("svc-token")).await;
    let redis = create_secret(&client, "redis-auth", Some(r#"{"secret": "r3dis/t@ken"}"#)).await;
    let cache = SecretsCache::new(client.clone());
    let vars = cache
        .resolve_env(lookup(&[
            ("AUTH_SERVICE_TOKEN_SECRET_ARN", &auth),
            ("REDIS_AUTH_SECRET_ARN", &redis),
            ("JWT_SECRET_ARN", &jwt),
            // The template's name of the variable.
            ("TICKET_SIGNING_KEY_SECRET_ARN", &ticket),
            ("DB_SECRET_ARN", &db),
            ("DB_HOST", "db.internal.example"),
            ("DB_NAME", "event_planner_core"),
        ]))
        .await
        .unwrap();
    assert_eq!(vars.len(), 5, "{:?}", vars.keys());
    assert_eq!(vars["AUTH_SERVICE_TOKEN"], "svc-token");
    assert_eq!(vars["REDIS_AUTH_TOKEN"], "r3dis/t@ken");
    // The Redis AUTH token becomes the password of the (TLS) Redis URL.
    let env = platform::config::Env::from_pairs([
        ("REDIS_URL", "rediss://cache.internal.example:6379"),
        ("REDIS_AUTH_TOKEN", vars["REDIS_AUTH_TOKEN"].as_str()),
    ]);
    assert_eq!(
        env.redis().unwrap().unwrap().url,
        "rediss://default:r3dis%2Ft%40ken@cache.internal.example:6379"
    );
    assert_eq!(vars["JWT_SECRET"], "jwt-secret-from-aws");
    assert_eq!(vars["TICKET_SIGNING_KEY"], signing_key);
    assert_eq!(
        vars["DATABASE_URL"],
        "postgres://app_admin:p%40ss%3A%2Fw%3Frd%20%23%25%26%C3%A9@db.internal.example:5432/event_planner_core"
    );
    let parsed: tokio_postgres::Config = vars["DATABASE_URL"].parse().unwrap();
    assert_eq!(parsed.get_password(), Some(password.as_bytes()));
    assert_eq!(parsed.get_user(), Some("app_admin"));
    assert_eq!(parsed.get_ports(), [5432]);

    // Nothing to resolve without ARN variables (local development never calls AWS).
    let none = SecretsCache::new(client.clone())
        .resolve_env(lookup(&[("JWT_SECRET", "local")]))
        .await
        .unwrap();
    assert!(none.is_empty());

    // The values are cached until invalidated.
    client
        .put_secret_value()
        .secret_id(&jwt)
        .secret_string("rotated")
        .send()
        .await
        .unwrap();
    assert_eq!(cache.get(&jwt).await.unwrap(), "jwt-secret-from-aws");
    cache.invalidate(&jwt);
    assert_eq!(cache.get(&jwt).await.unwrap(), "rotated");
}

#[tokio::test]
async fn a_missing_or_empty_secret_is_a_clear_error() {
    let client = moto().secrets();
    let empty = create_secret(&client, "ticket-key-empty", None).await;
    let cache = SecretsCache::new(client);
    let err = cache
        .resolve_env(lookup(&[("TICKET_SIGNING_KEY_ARN", &empty)]))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("has no value yet"), "{err:#}");
    let err = cache
        .resolve_env(lookup(&[(
            "DB_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope-AbCdEf",
        )]))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("nope"), "{err:#}");
}

#[tokio::test]
async fn a_state_built_from_secrets_serves_the_database() {
    let client = moto().secrets();
    let test_db = TestDatabase::create().await;
    let url: tokio_postgres::Config = test_db.url.parse().unwrap();
    let port = url.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = create_secret(
        &client,
        "rds-master",
        Some(r#"{"username": "postgres", "password": "unused-with-trust-auth"}"#),
    )
    .await;
    let jwt = create_secret(&client, "jwt", Some(r#"{"secret": "from-json"}"#)).await;
    let key = domain::tickets::signing::TicketKeys::generate().seed_base64();
    let ticket = create_secret(&client, "ticket-key", Some(&key)).await;
    let pairs = [
        ("AWS_LAMBDA_FUNCTION_NAME", "email-worker"),
        // In Lambda the default is verify-full; the shared test server's certificate (if it
        // has TLS at all) is no RDS one.
        ("DB_SSLMODE", "disable"),
        ("DB_SECRET_ARN", db.as_str()),
        ("DB_HOST", "127.0.0.1"),
        ("DB_PORT", port.as_str()),
        ("DB_NAME", test_db.name.as_str()),
        ("JWT_SECRET_ARN", jwt.as_str()),
        ("TICKET_SIGNING_KEY_ARN", ticket.as_str()),
    ];
    let env = lookup(&pairs);
    let resolved = SecretsCache::new(client).resolve_env(&env).await.unwrap();
    // What ApiState::load does, with this environment instead of the process's.
    let mut config = platform::config::Env::from_pairs(pairs);
    for (k, v) in resolved {
        config = config.set(&k, v);
    }
    let state = edge::ApiState::from_env(&config).expect("a Lambda state from the secrets");
    assert_eq!(state.config.jwt.secret, "from-json");
    assert!(!state.config.jwt.is_development_default);
    let conn = state.db.get().await.expect("the database answers");
    let name: String = conn
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, test_db.name);
}
