//! Several server processes on one database: they share the generated secret, accept
//! each other's tokens and agree on revocation.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

async fn two_processes_share_tokens_and_revocation(backend: Backend) {
    let database = TestDatabase::new(backend);
    let env = process_env(&database.url);
    let a = ServerProcess::start(&env);
    let b = ServerProcess::start(&env);
    let client = reqwest::Client::new();
    let email = unique_email();

    let r = client
        .post(a.url("/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let login = |server: &ServerProcess| {
        client
            .post(server.url("/auth/jwt/login"))
            .form(&[("username", email.as_str()), ("password", PASSWORD)])
            .send()
    };
    let token_a: Value = login(&a).await.unwrap().json().await.unwrap();
    let token_a = token_a["access_token"].as_str().unwrap().to_owned();
    let token_b: Value = login(&b).await.unwrap().json().await.unwrap();
    let token_b = token_b["access_token"].as_str().unwrap().to_owned();
    let me = |server: &ServerProcess, token: &str| {
        client
            .get(server.url("/users/me"))
            .bearer_auth(token)
            .send()
    };
    // each accepts the other's token (the secret generated once, kept in the database)
    assert_eq!(me(&b, &token_a).await.unwrap().status(), 200);
    assert_eq!(me(&a, &token_b).await.unwrap().status(), 200);
    // logout on A is seen by B
    assert_eq!(
        client
            .post(a.url("/auth/jwt/logout"))
            .bearer_auth(&token_a)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(me(&b, &token_a).await.unwrap().status(), 401);
    // a password change on B revokes B's other tokens on A
    let token_c: Value = login(&a).await.unwrap().json().await.unwrap();
    let token_c = token_c["access_token"].as_str().unwrap().to_owned();
    let r = client
        .patch(b.url("/users/me"))
        .bearer_auth(&token_b)
        .json(&json!({"password": "another long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(&a, &token_c).await.unwrap().status(), 401);
    assert_eq!(me(&a, &token_b).await.unwrap().status(), 401);
    // a 422 echoes its input to the client, never to the log
    let r = client
        .post(a.url("/auth/register"))
        .json(&json!({"email": email, "password": 987_654_321_012u64}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = client
        .post(a.url("/auth/jwt/login"))
        .form(&[
            ("username", email.as_str()),
            ("password", "wrong-password-in-a-log?"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let logs: Vec<String> = [&a, &b]
        .iter()
        .flat_map(|s| s.output.lock().unwrap().clone())
        .collect();
    assert!(
        logs.iter().any(|l| l.contains("login succeeded")),
        "the processes log"
    );
    let secret = {
        let mut conn = database.pool().get().unwrap();
        users_db::shared::get(&mut conn, "jwt_secret")
            .unwrap()
            .unwrap()
    };
    for needle in [
        PASSWORD,
        "another long passphrase",
        "987654321012",
        "wrong-password-in-a-log?",
        &token_a,
        &token_b,
        &token_c,
        &secret,
    ] {
        assert!(
            !logs.iter().any(|l| l.contains(needle)),
            "`{needle}` must not be logged"
        );
    }
    // SIGTERM stops a server cleanly
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// Without JWT_SECRET the start warns plainly that the generated secret is stored in the
/// database, where anyone who reads it can mint tokens, and how to avoid it; and that is
/// so: the `service_settings` row signs a token the service accepts. With JWT_SECRET set,
/// no such warning.
async fn a_generated_secret_is_announced_for_what_it_is(backend: Backend) {
    let database = TestDatabase::new(backend);
    let server = ServerProcess::start(&process_env(&database.url));
    let client = reqwest::Client::new();
    let r = client
        .post(server.url("/auth/register"))
        .json(&json!({"email": unique_email(), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lines = server.output.lock().unwrap().clone();
    let warning = lines
        .iter()
        .find(|l| l.contains("JWT_SECRET is not set"))
        .unwrap_or_else(|| panic!("no warning: {lines:?}"));
    for needle in [
        "WARN",
        "stored in plain text in the database",
        "anyone who can read the database can mint tokens",
        "set JWT_SECRET (or JWT_SECRET_FILE)",
    ] {
        assert!(warning.contains(needle), "`{needle}` in {warning}");
    }

    let secret = {
        let mut conn = database.pool().get().unwrap();
        users_db::shared::get(&mut conn, "jwt_secret")
            .unwrap()
            .unwrap()
    };
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let minted = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": id, "aud": ["fastapi-users:auth"], "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let r = client
        .get(server.url("/users/me"))
        .bearer_auth(&minted)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a token minted from the database's row");
    assert!(server.terminate().success());

    let mut env = process_env(&database.url);
    env.insert("JWT_SECRET".into(), TEST_SECRET.into());
    let configured = ServerProcess::start(&env);
    let lines = configured.output.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.contains("JWT_SECRET is not set")),
        "{lines:?}"
    );
    assert!(configured.terminate().success());
}

both_backends!(
    two_processes_share_tokens_and_revocation,
    a_generated_secret_is_announced_for_what_it_is
);
