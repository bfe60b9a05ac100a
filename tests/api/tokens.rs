use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(claims: &Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn assert_401(app: &TestApp, token: &str, what: &str) {
    let resp = app.me(token).await;
    assert_eq!(resp.status(), 401, "{what}");
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"detail": "Unauthorized"}),
        "{what}"
    );
}

async fn tampered_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token) = app.user_with_token().await;
    let id = user["id"].as_str().unwrap();
    let exp = now() + 600;
    let good = json!({"sub": id, "aud": ["fastapi-users:auth"], "exp": exp});

    // a token minted the way fastapi-users mints it (no iat, aud list) is accepted
    assert_eq!(
        app.me(&sign(&good, Algorithm::HS256, TEST_SECRET))
            .await
            .status(),
        200
    );
    // and a plain-string audience too
    let s = json!({"sub": id, "aud": "fastapi-users:auth", "exp": exp});
    assert_eq!(
        app.me(&sign(&s, Algorithm::HS256, TEST_SECRET))
            .await
            .status(),
        200
    );

    assert_401(
        &app,
        &sign(
            &good,
            Algorithm::HS256,
            "another-secret-of-sufficient-length!!",
        ),
        "other secret",
    )
    .await;
    assert_401(&app, &sign(&good, Algorithm::HS512, TEST_SECRET), "HS512").await;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    assert_401(&app, &none, "alg none").await;
    let expired = json!({"sub": id, "aud": ["fastapi-users:auth"], "exp": now() - 5});
    assert_401(
        &app,
        &sign(&expired, Algorithm::HS256, TEST_SECRET),
        "expired",
    )
    .await;
    for aud in [
        "fastapi-users:reset",
        "fastapi-users:verify",
        "fastapi-users:oauth-state",
        "other",
    ] {
        let c = json!({"sub": id, "aud": aud, "exp": exp});
        assert_401(&app, &sign(&c, Algorithm::HS256, TEST_SECRET), aud).await;
    }
    let unknown =
        json!({"sub": uuid::Uuid::new_v4().to_string(), "aud": ["fastapi-users:auth"], "exp": exp});
    assert_401(
        &app,
        &sign(&unknown, Algorithm::HS256, TEST_SECRET),
        "unknown sub",
    )
    .await;
    let not_uuid = json!({"sub": "42", "aud": ["fastapi-users:auth"], "exp": exp});
    assert_401(
        &app,
        &sign(&not_uuid, Algorithm::HS256, TEST_SECRET),
        "non-UUID sub",
    )
    .await;
    // a flipped signature character
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.len() - 2;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    assert_401(
        &app,
        &chars.into_iter().collect::<String>(),
        "tampered signature",
    )
    .await;
    assert_401(&app, "not-a-jwt", "garbage").await;
    // no token at all, and another scheme
    assert_json(
        app.get("/users/me", None).await,
        401,
        json!({"detail": "Unauthorized"}),
    )
    .await;
    let resp = app
        .client
        .get(app.url("/users/me"))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // the real token still works
    assert_eq!(app.me(&token).await.status(), 200);
}

async fn logout_revokes_only_the_presented_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let first = app.token(&email, PASSWORD).await;
    let second = app.token(&email, PASSWORD).await;
    assert_ne!(first, second, "every login mints a distinct token");
    let resp = app.logout(&first).await;
    assert_eq!(resp.status(), 204);
    assert!(resp.text().await.unwrap().is_empty());
    assert_401(&app, &first, "logged-out token").await;
    assert_eq!(app.logout(&first).await.status(), 401);
    assert_eq!(app.me(&second).await.status(), 200);
    assert_eq!(app.logout("garbage").await.status(), 401);
}

async fn a_password_change_revokes_every_earlier_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let id = user["id"].as_str().unwrap();
    let a = app.token(&email, PASSWORD).await;
    let b = app.token(&email, PASSWORD).await;
    // a fastapi-users token (no iat) minted before the change
    let fu = sign(
        &json!({"sub": id, "aud": ["fastapi-users:auth"], "exp": now() + 3600 - 5}),
        Algorithm::HS256,
        TEST_SECRET,
    );
    assert_eq!(app.me(&fu).await.status(), 200);

    let new_password = "a brand new passphrase";
    assert_eq!(
        app.patch("/users/me", &a, &json!({"password": new_password}))
            .await
            .status(),
        200
    );
    assert_401(&app, &a, "the token that changed the password").await;
    assert_401(&app, &b, "another earlier token").await;
    assert_401(&app, &fu, "an earlier fastapi-users token").await;
    assert_eq!(app.login(&email, PASSWORD).await.status(), 400);
    // a token issued right after the change works, in the same second or not
    let c = app.token(&email, new_password).await;
    assert_eq!(app.me(&c).await.status(), 200);
    // an email-only change revokes nothing
    assert_eq!(
        app.patch("/users/me", &c, &json!({"email": unique_email()}))
            .await
            .status(),
        200
    );
    assert_eq!(app.me(&c).await.status(), 200);
}

async fn deactivated_and_deleted_users_lose_access_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let (user, token) = app.user_with_token().await;
    let path = format!("/users/{}", user["id"].as_str().unwrap());
    assert_eq!(
        app.patch(&path, &admin, &json!({"is_active": false}))
            .await
            .status(),
        200
    );
    assert_401(&app, &token, "inactive user").await;
    assert_eq!(
        app.patch(&path, &admin, &json!({"is_active": true}))
            .await
            .status(),
        200
    );
    // docs/sessions-and-tokens.md, what ends sessions: deactivation ended the user's
    // sessions, so a reactivated user signs in again (fastapi-users would take the old
    // token back)
    assert_401(&app, &token, "token of a session ended by the deactivation").await;
    let token = app.token(user["email"].as_str().unwrap(), PASSWORD).await;
    assert_eq!(app.me(&token).await.status(), 200);
    assert_eq!(app.delete(&path, &admin).await.status(), 204);
    assert_401(&app, &token, "deleted user").await;
}

both_backends!(
    tampered_tokens_are_refused,
    logout_revokes_only_the_presented_token,
    a_password_change_revokes_every_earlier_token,
    deactivated_and_deleted_users_lose_access_at_once,
);
