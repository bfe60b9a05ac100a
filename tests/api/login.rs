use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

async fn login_returns_a_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let resp = app.login(&email, PASSWORD).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(body["token_type"], "bearer");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3);
    let me: Value = app.me(token).await.json().await.unwrap();
    assert_eq!(me["email"], email.as_str());
    // grant_type=password and the optional OAuth2 fields are accepted
    let resp = app
        .client
        .post(app.url("/auth/jwt/login"))
        .form(&[
            ("grant_type", "password"),
            ("username", &email),
            ("password", PASSWORD),
            ("scope", ""),
            ("client_id", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn login_accepts_multipart_forms(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let form = reqwest::multipart::Form::new()
        .text("username", email.clone())
        .text("password", PASSWORD);
    let resp = app
        .client
        .post(app.url("/auth/jwt/login"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn bad_credentials_look_the_same(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let bad = json!({"detail": "LOGIN_BAD_CREDENTIALS"});
    assert_json(
        app.login(&email, "wrong password!!").await,
        400,
        bad.clone(),
    )
    .await;
    assert_json(
        app.login("nobody@example.com", PASSWORD).await,
        400,
        bad.clone(),
    )
    .await;
    assert_json(
        app.login("not even an email", PASSWORD).await,
        400,
        bad.clone(),
    )
    .await;
    // an inactive user cannot log in, even with the right password
    let (_, admin) = app.superuser_with_token().await;
    let id = user["id"].as_str().unwrap();
    assert_eq!(
        app.patch(
            &format!("/users/{id}"),
            &admin,
            &json!({"is_active": false})
        )
        .await
        .status(),
        200
    );
    assert_json(app.login(&email, PASSWORD).await, 400, bad).await;
}

async fn malformed_login_forms_get_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let form = "application/x-www-form-urlencoded";
    // missing and empty fields
    let d = assert_422(app.post_raw("/auth/jwt/login", form, "").await).await;
    let locs: Vec<_> = d.iter().map(|e| e["loc"].clone()).collect();
    assert_eq!(
        locs,
        vec![json!(["body", "username"]), json!(["body", "password"])]
    );
    let d = assert_422(
        app.post_raw("/auth/jwt/login", form, "username=&password=x")
            .await,
    )
    .await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["type"], "missing");
    assert_eq!(d[0]["loc"], json!(["body", "username"]));
    // a JSON body where a form is expected
    let d = assert_422(
        app.post_json(
            "/auth/jwt/login",
            &json!({"username": "a@example.com", "password": "x"}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|e| e["type"] == "missing"));
    // another grant type
    let d = assert_422(
        app.post_raw(
            "/auth/jwt/login",
            form,
            "grant_type=client_credentials&username=a&password=b",
        )
        .await,
    )
    .await;
    assert_eq!(d[0]["type"], "string_pattern_mismatch");
    assert_eq!(d[0]["loc"], json!(["body", "grant_type"]));
}

/// Hashes made by fastapi-users (pwdlib 0.3: argon2-cffi with m=65536,t=3,p=4, and
/// bcrypt), stored as an import would store them, log in and are upgraded.
async fn fastapi_users_hashes_log_in_and_are_upgraded(backend: Backend) {
    const ARGON2_FU: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$2I4h2c6lNHmc9s27U4OmRg$ep2hOIpgjJyx0aqxgjSHp43rVRRE1t6X3xgA+iIL9zE";
    const ARGON2_FU_PASSWORD: &str = "fastapi-users imported password";
    const BCRYPT_FU: &str = "$2b$12$liYBowKSySqGBtCmthXIP.9Wt40SbyA3T4AGbvRMkyVkekaTWKt2K";
    const BCRYPT_FU_PASSWORD: &str = "legacy bcrypt password 1";

    let app = spawn_app(backend).await;
    for (hash, password) in [
        (ARGON2_FU, ARGON2_FU_PASSWORD),
        (BCRYPT_FU, BCRYPT_FU_PASSWORD),
    ] {
        let email = unique_email();
        let user = app.create_user(&email).await;
        let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
        {
            let mut conn = app.db.get().unwrap();
            let changes = users_db::users::UserChanges {
                hashed_password: Some(hash.to_owned()),
                ..Default::default()
            };
            assert!(users_db::users::update(&mut conn, id, &changes, 0).unwrap());
        }
        assert_eq!(app.login(&email, "not the password").await.status(), 400);
        app.token(&email, password).await;
        let stored = {
            let mut conn = app.db.get().unwrap();
            users_db::users::find_by_id(&mut conn, id)
                .unwrap()
                .unwrap()
                .hashed_password
        };
        assert!(
            stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "upgraded to the current parameters: {stored}"
        );
        // and the upgraded hash still holds the same password
        app.token(&email, password).await;
    }
}

/// The defaults are OWASP's argon2id parameters.
async fn default_hashes_are_owasp_argon2id(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        for k in [
            "ARGON2_MEMORY_KIB",
            "ARGON2_ITERATIONS",
            "ARGON2_PARALLELISM",
        ] {
            env.remove(k);
        }
    })
    .await;
    let user = app.create_user(&unique_email()).await;
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    let mut conn = app.db.get().unwrap();
    let hash = users_db::users::find_by_id(&mut conn, id)
        .unwrap()
        .unwrap()
        .hashed_password;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

both_backends!(
    login_returns_a_bearer_token,
    login_accepts_multipart_forms,
    bad_credentials_look_the_same,
    malformed_login_forms_get_422,
    fastapi_users_hashes_log_in_and_are_upgraded,
    default_hashes_are_owasp_argon2id,
);
