use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

async fn register_creates_an_active_unverified_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .post_json(
            "/auth/register",
            &json!({"email": "New.Person@Example.COM", "password": PASSWORD,
                     "is_superuser": true, "is_verified": true, "is_active": false}),
            None,
        )
        .await;
    assert_eq!(resp.status(), 201);
    let user: Value = resp.json().await.unwrap();
    let keys: Vec<_> = user.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 5, "{user}");
    for k in ["id", "email", "is_active", "is_superuser", "is_verified"] {
        assert!(keys.contains(&k.to_string()), "{k} in {user}");
    }
    let id = user["id"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(id).unwrap().hyphenated().to_string(),
        id
    );
    // domain lower-cased, local part kept; the flags of the request ignored
    assert_eq!(user["email"], "New.Person@example.com");
    assert_eq!(user["is_active"], true);
    assert_eq!(user["is_superuser"], false);
    assert_eq!(user["is_verified"], false);
    // and it can log in, with the email in any case
    app.token("new.person@EXAMPLE.com", PASSWORD).await;
}

async fn duplicate_emails_are_refused_case_insensitively(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("Dup@example.com").await;
    for email in ["Dup@example.com", "dup@example.com", "DUP@EXAMPLE.COM"] {
        assert_json(
            app.register(email, PASSWORD).await,
            400,
            json!({"detail": "REGISTER_USER_ALREADY_EXISTS"}),
        )
        .await;
    }
    let mut conn = app.db.get().unwrap();
    assert_eq!(users_db::users::count(&mut conn).unwrap(), 1);
}

async fn the_password_policy_is_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = "policy@example.com";
    let cases = [
        ("short-pass1".to_string(), "at least 12"),
        ("x".repeat(129), "at most 128"),
        (format!("my {email} pass"), "email"),
        (format!("MY {} PASS", email.to_uppercase()), "email"),
        ("123qweasdzxc".to_string(), "common"),
        ("Q1W2E3R4T5Y6".to_string(), "common"),
    ];
    for (password, reason_has) in cases {
        let resp = app.register(email, &password).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["detail"]["code"], "REGISTER_INVALID_PASSWORD",
            "{body}"
        );
        let reason = body["detail"]["reason"].as_str().unwrap();
        assert!(reason.contains(reason_has), "{password}: {reason}");
        assert_eq!(body["detail"].as_object().unwrap().len(), 2);
    }
    // 128 characters (multi-byte) are fine; so is exactly the minimum
    assert_eq!(
        app.register("long@example.com", &"é".repeat(128))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.register("min@example.com", "twelve chars")
            .await
            .status(),
        201
    );
    // the policy is checked before the duplicate check
    let body: Value = app
        .register("min@example.com", "short")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["detail"]["code"], "REGISTER_INVALID_PASSWORD");
    let mut conn = app.db.get().unwrap();
    assert_eq!(users_db::users::count(&mut conn).unwrap(), 2);
}

async fn the_minimum_length_is_configurable(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("PASSWORD_MIN_LENGTH".into(), "20".into());
    })
    .await;
    let body: Value = app
        .register("cfg@example.com", "nineteen characters")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["detail"]["code"], "REGISTER_INVALID_PASSWORD");
    assert!(body["detail"]["reason"].as_str().unwrap().contains("20"));
    assert_eq!(
        app.register("cfg@example.com", "twenty characters ok")
            .await
            .status(),
        201
    );
}

async fn malformed_bodies_get_fastapi_422s(backend: Backend) {
    let app = spawn_app(backend).await;
    // malformed JSON
    let d = assert_422(
        app.post_raw("/auth/register", "application/json", "{\"email\": ")
            .await,
    )
    .await;
    assert_eq!(d[0]["type"], "json_invalid");
    assert_eq!(d[0]["loc"][0], "body");
    // not an object
    let d = assert_422(
        app.post_raw("/auth/register", "application/json", "[1]")
            .await,
    )
    .await;
    assert_eq!(d[0]["type"], "model_attributes_type");
    // empty body
    let d = assert_422(app.post_raw("/auth/register", "application/json", "").await).await;
    assert_eq!(d[0]["type"], "missing");
    // missing fields: both listed
    let d = assert_422(app.post_json("/auth/register", &json!({}), None).await).await;
    let locs: Vec<_> = d.iter().map(|e| e["loc"].clone()).collect();
    assert!(
        locs.contains(&json!(["body", "email"])) && locs.contains(&json!(["body", "password"])),
        "{locs:?}"
    );
    assert!(d
        .iter()
        .all(|e| e["type"] == "missing" && e["msg"] == "Field required"));
    // wrong types
    let d = assert_422(
        app.post_json(
            "/auth/register",
            &json!({"email": 42, "password": ["x"]}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|e| e["type"] == "string_type"));
    assert_eq!(d[0]["input"], 42);
    let d = assert_422(
        app.post_json(
            "/auth/register",
            &json!({"email": "a@example.com", "password": PASSWORD, "is_active": "perhaps"}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(d[0]["loc"], json!(["body", "is_active"]));
    // empty fields: an empty email is no email (422); an empty password is a value,
    // refused by the policy (see empty_json_strings_are_values), so not listed here
    let d = assert_422(
        app.post_json(
            "/auth/register",
            &json!({"email": "", "password": ""}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["loc"], json!(["body", "email"]));
    // invalid and special-use emails
    for email in [
        "not-an-email",
        "a@b",
        "user@site.test",
        "user@printer.local",
        "user@localhost",
        "a@@example.com",
    ] {
        let d = assert_422(app.register(email, PASSWORD).await).await;
        assert_eq!(d[0]["type"], "value_error", "{email}");
        assert_eq!(d[0]["loc"], json!(["body", "email"]));
        assert!(
            d[0]["msg"]
                .as_str()
                .unwrap()
                .starts_with("value is not a valid email address"),
            "{email}"
        );
    }
    let mut conn = app.db.get().unwrap();
    assert_eq!(
        users_db::users::count(&mut conn).unwrap(),
        0,
        "nothing half-written"
    );
}

async fn oversized_bodies_unknown_routes_and_methods_get_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let big = json!({"email": "big@example.com", "password": "x".repeat(17 * 1024)});
    let resp = app.post_json("/auth/register", &big, None).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("too large"));
    assert_json(
        app.get("/nope", None).await,
        404,
        json!({"detail": "Not Found"}),
    )
    .await;
    assert_json(
        app.get("/auth/register", None).await,
        405,
        json!({"detail": "Method Not Allowed"}),
    )
    .await;
    let resp = app.client.put(app.url("/users/me")).send().await.unwrap();
    assert_json(resp, 405, json!({"detail": "Method Not Allowed"})).await;
}

/// As in pydantic, an empty JSON string is a value: the flow refuses it with its own
/// code (docs/api.md). An empty form field is missing: 422.
async fn empty_json_strings_are_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.register(&unique_email(), "").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["detail"]["code"], "REGISTER_INVALID_PASSWORD",
        "{body}"
    );
    assert!(
        body["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("at least 12"),
        "{body}"
    );
    assert_json(
        app.post_json(
            "/auth/reset-password",
            &json!({"token": "", "password": PASSWORD}),
            None,
        )
        .await,
        400,
        json!({"detail": "RESET_PASSWORD_BAD_TOKEN"}),
    )
    .await;
    assert_json(
        app.post_json("/auth/verify", &json!({"token": ""}), None)
            .await,
        400,
        json!({"detail": "VERIFY_USER_BAD_TOKEN"}),
    )
    .await;
    let (_, token) = app.user_with_token().await;
    let resp = app
        .patch("/users/me", &token, &json!({"password": ""}))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["detail"]["code"], "UPDATE_USER_INVALID_PASSWORD",
        "{body}"
    );
    let d = assert_422(app.login(&unique_email(), "").await).await;
    assert_eq!(d[0]["type"], "missing");
    assert_eq!(d[0]["loc"], json!(["body", "password"]));
    let mut conn = app.db.get().unwrap();
    assert_eq!(
        users_db::users::count(&mut conn).unwrap(),
        1,
        "only the one user"
    );
}

both_backends!(
    empty_json_strings_are_values,
    register_creates_an_active_unverified_user,
    duplicate_emails_are_refused_case_insensitively,
    the_password_policy_is_enforced,
    the_minimum_length_is_configurable,
    malformed_bodies_get_fastapi_422s,
    oversized_bodies_unknown_routes_and_methods_get_json,
);

/// Fifty registrations at once on one SQLite file: every one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_registrations_on_sqlite_all_succeed() {
    let app = spawn_app_with(Backend::Sqlite, |env| {
        env.insert("WORKERS".into(), "4".into());
    })
    .await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let resp = app
                .register(&format!("concurrent-{i}@example.com"), PASSWORD)
                .await;
            (resp.status().as_u16(), resp.text().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let mut conn = app.db.get().unwrap();
    assert_eq!(users_db::users::count(&mut conn).unwrap(), 50);
}
