use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use domain::Role;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn every_token_problem_is_401() {
    let app = TestApp::spawn().await;
    let expired = {
        let claims = edge::auth::Claims {
            sub: "alice".into(),
            role: Role::Organizer,
            exp: 1_000_000,
            organizer_id: None,
            iss: None,
            aud: None,
        };
        edge::auth::issue_token(&app.state.config.jwt, &claims)
    };
    let forged = {
        let cfg = platform::config::JwtConfig {
            secret: "not-ours".into(),
            ..app.state.config.jwt.clone()
        };
        let claims = edge::auth::Claims {
            exp: 9_999_999_999,
            ..serde_json::from_value(json!({"sub": "a", "role": "admin", "exp": 1})).unwrap()
        };
        edge::auth::issue_token(&cfg, &claims)
    };
    // {"alg":"none"} with an admin payload and no signature.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwicm9sZSI6ImFkbWluIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
    for auth in [
        None,
        Some("".to_owned()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_owned()),
        Some("Bearer not.a.jwt".to_owned()),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {none}")),
        Some(format!("Bearer {}", app.token(Role::Scanner, "s", None))),
    ] {
        let mut req = Request::builder().uri("/api/events");
        if let Some(a) = &auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let r = app.send(req.body(Body::empty()).unwrap()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            "{auth:?}"
        );
    }
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let app = TestApp::spawn_with(|c| {
        c.jwt.issuer = Some("auth-service".into());
        c.jwt.audience = Some("core-service".into());
    })
    .await;
    let mut claims: edge::auth::Claims = serde_json::from_value(
        json!({"sub": "alice", "role": "organizer", "exp": 9_999_999_999u64}),
    )
    .unwrap();
    let no_iss = edge::auth::issue_token(&app.state.config.jwt, &claims);
    assert_eq!(
        app.get("/api/events", &no_iss).await.status,
        StatusCode::UNAUTHORIZED
    );
    claims.iss = Some("auth-service".into());
    claims.aud = Some("core-service".into());
    let good = edge::auth::issue_token(&app.state.config.jwt, &claims);
    assert_eq!(app.get("/api/events", &good).await.status, StatusCode::OK);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let req = Request::builder()
        .uri("/health")
        .header("x-request-id", "client-abc-123")
        .body(Body::empty())
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.headers["x-request-id"], "client-abc-123");

    let r = app.call(Method::GET, "/api/events", None, None).await;
    let generated = r.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID");
    assert_eq!(
        r.body["error"]["requestId"],
        generated.as_str(),
        "the error body carries the same id"
    );
    assert_eq!(r.body["success"], false);
    assert!(r.body["error"]["message"].is_string());

    // A hostile id is replaced, not echoed into logs and headers.
    let req = Request::builder()
        .uri("/health")
        .header("x-request-id", "a b\"c")
        .body(Body::empty())
        .unwrap();
    assert_ne!(app.send(req).await.headers["x-request-id"], "a b\"c");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_envelope() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let r = app.get("/api/nothing-here", &token).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    let r = app
        .call(Method::PUT, "/api/events", Some(&token), Some(json!({})))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    );
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn bodies_must_be_json_and_not_too_large() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let send = |content_type: Option<&'static str>, body: Vec<u8>| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/api/events")
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        app.send(req.body(Body::from(body)).unwrap())
    };
    let valid = event_body().to_string().into_bytes();
    assert_eq!(send(None, valid.clone()).await.code(), "VALIDATION_ERROR");
    assert_eq!(
        send(Some("text/plain"), valid.clone()).await.code(),
        "VALIDATION_ERROR"
    );
    assert_eq!(
        send(Some("application/json; charset=utf-8"), valid)
            .await
            .status,
        StatusCode::CREATED
    );
    for bad in [
        &b""[..],
        b"{",
        b"[]",
        b"null",
        b"\"str\"",
        b"{\"title\": \"abc\",}",
        b"\xff\xfe",
        b"{\"title\":\"a\0b\"}",
    ] {
        let r = send(Some("application/json"), bad.to_vec()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // One JSON document and nothing after it (issue 14, F5): trailing data or a second
    // document is refused and nothing is created.
    let before = app.count("SELECT count(*) FROM events").await;
    for trailing in ["xyz", " {}", "\n{\"title\": \"second\"}"] {
        let body = format!("{}{trailing}", event_body());
        let r = send(Some("application/json"), body.into_bytes()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            "trailing {trailing:?}: {}",
            r.body
        );
    }
    // Trailing whitespace is still one document.
    let r = send(
        Some("application/json"),
        format!("{} \n", event_body()).into_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(app.count("SELECT count(*) FROM events").await, before + 1);

    // Messages speak JSON, not Rust: no `i64`, no `struct CreateEvent`.
    for (body, field) in [
        (
            json!({"title": "Conference", "maxAttendees": "many"}),
            "maxAttendees",
        ),
        (json!("text"), "body"),
    ] {
        let r = send(Some("application/json"), body.to_string().into_bytes()).await;
        assert_eq!(r.code(), "VALIDATION_ERROR");
        let text = r.body["error"].to_string();
        assert!(text.contains(field), "{text}");
        for rust in ["i64", "i32", "u64", "struct", "CreateEvent"] {
            assert!(!text.contains(rust), "{rust} in {text}");
        }
    }
    // A NUL character (which PostgreSQL text cannot hold) is refused by field, not by the database.
    let mut nul = event_body();
    nul["title"] = json!("Conf\u{0}erence");
    let r = send(Some("application/json"), nul.to_string().into_bytes()).await;
    assert_eq!(r.code(), "VALIDATION_ERROR");
    assert_eq!(
        r.body["error"]["details"][0]["field"], "title",
        "{}",
        r.body
    );
    let r = app.get("/api/events?search=a%00b", &token).await;
    assert_eq!(r.code(), "VALIDATION_ERROR");
    assert_eq!(
        r.body["error"]["details"][0]["field"], "search",
        "{}",
        r.body
    );

    let r = app.get("/api/events/abc", &token).await;
    assert_eq!(r.code(), "VALIDATION_ERROR");
    assert!(!r.body.to_string().contains("i64"), "{}", r.body);

    let mut big = event_body();
    big["description"] = Value::String("x".repeat(70 * 1024));
    let r = send(Some("application/json"), big.to_string().into_bytes()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
}

/// Hostile values in every field of every events endpoint: the answer is always a
/// contract error (4xx) or a success, never a 500, and always the JSON envelope.
#[tokio::test]
async fn hostile_input_never_causes_a_500() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.create_event(&token, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].as_i64().unwrap();
    let hostile: Vec<Value> = vec![
        Value::Null,
        json!(""),
        json!("\u{0000}"),
        json!("a\u{0000}bcdef"),
        json!("'; DROP TABLE events; --"),
        json!("%_\\"),
        json!("🎉".repeat(300)),
        json!("\u{202e}evil"),
        json!(-1),
        json!(0),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e308),
        json!(-0.0),
        json!(0.005),
        json!(true),
        json!([]),
        json!([1, 2]),
        json!({}),
        json!({"$gt": ""}),
        json!("9999-12-31T23:59:59Z"),
        json!("+275760-09-13T00:00:00Z"),
        json!("2099-02-30T00:00:00Z"),
        json!("2099-01-01T00:00:00+25:00"),
        json!(vec![json!({"name": "x", "price": 1, "quantity": 1}); 60]),
    ];
    let fields = [
        "title",
        "description",
        "eventDate",
        "location",
        "maxAttendees",
        "requiresApproval",
        "ticketTypes",
        "status",
    ];
    let mut requests = 0;
    for field in fields {
        for value in &hostile {
            let mut create = event_body();
            create[field] = value.clone();
            let mut patch = json!({});
            patch[field] = value.clone();
            let tt_body = json!({"name": value, "price": value, "quantity": value});
            for (method, uri, body) in [
                (Method::POST, "/api/events".to_owned(), create),
                (Method::PATCH, format!("/api/events/{id}"), patch),
                (
                    Method::POST,
                    format!("/api/events/{id}/ticket-types"),
                    tt_body.clone(),
                ),
                (
                    Method::PATCH,
                    format!("/api/events/{id}/ticket-types/{tt}"),
                    tt_body,
                ),
            ] {
                let r = app
                    .call(method.clone(), &uri, Some(&token), Some(body.clone()))
                    .await;
                requests += 1;
                assert!(
                    r.status.as_u16() < 500,
                    "{method} {uri} {body} → {} {}",
                    r.status,
                    r.body
                );
                assert!(
                    r.body.is_object() && r.body["success"].is_boolean(),
                    "{method} {uri} {body} → {}",
                    r.body
                );
            }
        }
    }
    let queries = ["page", "limit", "search", "status", "sort"];
    let query_values = [
        "",
        "%00",
        "%27%3B--",
        "-1",
        "1e3",
        "99999999999999999999",
        "%F0%9F%8E%89",
        "a&a=b",
        "%25",
        "[]",
    ];
    for q in queries {
        for v in query_values {
            let r = app.get(&format!("/api/events?{q}={v}"), &token).await;
            requests += 1;
            assert!(
                r.status.as_u16() < 500,
                "?{q}={v} → {} {}",
                r.status,
                r.body
            );
        }
    }
    for path in [
        "/api/events/0",
        "/api/events/1.5",
        "/api/events/%00",
        "/api/events/1/ticket-types/x",
        "/api/events//",
    ] {
        let r = app.get(path, &token).await;
        requests += 1;
        assert!(r.status.as_u16() < 500, "{path} → {}", r.status);
    }
    assert!(requests > 850, "{requests}");
}

/// An answer that may leave a request body unread says `Connection: close`, so a keep-alive
/// client does not write its next request into a connection the server is closing (issue 14).
#[tokio::test]
async fn refusals_of_requests_with_a_body_close_the_connection() {
    let app = TestApp::spawn().await;
    let post = |token: Option<String>, body: &str| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/api/events")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req.body(Body::from(body.to_owned())).unwrap()
    };
    let body = event_body().to_string();
    for (token, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(app.scanner("alice")), StatusCode::FORBIDDEN),
    ] {
        let (status, headers, _) = app.send_raw(post(token, &body)).await;
        assert_eq!(status, expected);
        assert_eq!(headers.get(header::CONNECTION).unwrap(), "close");
    }
    // A success, and a request without a body, keep the connection.
    let (status, headers, _) = app
        .send_raw(post(Some(app.organizer("alice")), &body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(headers.get(header::CONNECTION).is_none());
    let r = app.get("/api/events/999999", &app.organizer("alice")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.headers.get(header::CONNECTION).is_none());
}

/// A browser front end on an allowed origin gets its preflight answered and may read the
/// headers it needs; another origin gets no CORS header (the browser then refuses).
#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let mut app = TestApp::spawn().await;
    app.app = local_server::with_cors(app.app.clone(), &["https://app.example.com".to_owned()]);
    let token = app.organizer("alice");
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/events")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type,idempotency-key",
            )
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers, _) = app.send_raw(preflight("https://app.example.com")).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("idempotency-key"),
        "{allowed}"
    );
    let (_, headers, _) = app.send_raw(preflight("https://evil.example.com")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let get = Request::get("/api/events")
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = app.send_raw(get).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let exposed = headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("etag") && exposed.contains("x-request-id"),
        "{exposed}"
    );
}

/// Tokens of an identity provider (Cognito, Auth0, Keycloak: ES256 / RS256 with a `kid`)
/// verify against its JWKS, beside the HS256 ones; a rotated key is fetched when a token
/// names it, without a fetch per made-up key id.
#[tokio::test]
async fn identity_provider_tokens_verify_against_its_jwks_and_follow_a_rotation() {
    use base64::Engine;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let idp = MockServer::start().await;
    let (k1, k2) = (
        rcgen::KeyPair::generate().unwrap(),
        rcgen::KeyPair::generate().unwrap(),
    );
    let jwk = |kid: &str, key: &rcgen::KeyPair| {
        let raw = key.public_key_raw(); // 0x04 || x || y
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
               "x": b64(&raw[1..33]), "y": b64(&raw[33..65])})
    };
    let publish = |keys: Value| {
        Mock::given(method("GET"))
            .and(path("/.well-known/jwks.json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(keys))
    };
    publish(json!({"keys": [jwk("k1", &k1)]})).mount(&idp).await;
    let url = format!("{}/.well-known/jwks.json", idp.uri());
    let app = TestApp::spawn_with(|c| c.jwks_url = Some(url)).await;
    let token = |kid: &str, key: &rcgen::KeyPair| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        let claims = json!({"sub": "idp-user-1", "role": "organizer",
                            "exp": chrono::Utc::now().timestamp() + 600});
        let key = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    assert_eq!(
        app.get("/api/events", &token("k1", &k1)).await.status,
        StatusCode::OK
    );
    // The secret's HS256 tokens still work.
    assert_eq!(
        app.get("/api/events", &app.organizer("alice")).await.status,
        StatusCode::OK
    );
    // A key the provider has not published, a key id it does not have, a token signed by
    // another key under a published id: refused.
    assert_eq!(
        app.get("/api/events", &token("k2", &k2)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/events", &token("k1", &k2)).await.status,
        StatusCode::UNAUTHORIZED
    );
    for i in 0..5 {
        let r = app
            .get("/api/events", &token(&format!("made-up-{i}"), &k2))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let fetches = idp.received_requests().await.unwrap().len();
    assert!(
        fetches <= 2,
        "made-up key ids must not each fetch the JWKS: {fetches} fetches"
    );

    // The provider rotates: k2 published. A k2 token is accepted once the set is fetched
    // again (at most every 5 s).
    idp.reset().await;
    publish(json!({"keys": [jwk("k1", &k1), jwk("k2", &k2)]}))
        .mount(&idp)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
    assert_eq!(
        app.get("/api/events", &token("k2", &k2)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/events", &token("k1", &k1)).await.status,
        StatusCode::OK
    );
}
