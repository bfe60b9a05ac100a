use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

async fn me_returns_the_current_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token) = app.user_with_token().await;
    assert_json(app.me(&token).await, 200, user).await;
}

async fn patch_me_changes_email_and_clears_verification(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token) = app.user_with_token().await;
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    {
        let mut conn = app.db.get().unwrap();
        let c = users_db::users::UserChanges {
            is_verified: Some(true),
            ..Default::default()
        };
        users_db::users::update(&mut conn, id, &c, 0).unwrap();
    }
    // the same email changes nothing (is_verified stays)
    let same: Value = app
        .patch("/users/me", &token, &json!({"email": user["email"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(same["is_verified"], true);
    // flags and id in the body are ignored on /users/me
    let resp = app
        .patch(
            "/users/me",
            &token,
            &json!({"is_superuser": true, "is_active": false, "is_verified": false, "id": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["is_superuser"], false);
    assert_eq!(body["is_active"], true);
    assert_eq!(body["is_verified"], true);
    assert_eq!(body["id"], user["id"]);
    // a new email: normalised, and no longer verified
    let new_email = format!("Changed-{}@EXAMPLE.org", uuid::Uuid::new_v4().simple());
    let body: Value = app
        .patch("/users/me", &token, &json!({"email": new_email}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["email"],
        new_email.replace("EXAMPLE.org", "example.org")
    );
    assert_eq!(body["is_verified"], false);
    app.token(&new_email.to_lowercase(), PASSWORD).await;
}

async fn patch_me_refuses_taken_emails_and_weak_passwords(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = unique_email();
    app.create_user(&other).await;
    let (user, token) = app.user_with_token().await;
    assert_json(
        app.patch("/users/me", &token, &json!({"email": other.to_uppercase()}))
            .await,
        400,
        json!({"detail": "UPDATE_USER_EMAIL_ALREADY_EXISTS"}),
    )
    .await;
    let resp = app
        .patch("/users/me", &token, &json!({"password": "short"}))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"]["code"], "UPDATE_USER_INVALID_PASSWORD");
    assert!(body["detail"]["reason"].is_string());
    // the new password must not contain the new email either
    let email = "fresh-address@example.com";
    let body: Value = app
        .patch(
            "/users/me",
            &token,
            &json!({"email": email, "password": format!("x{email}x")}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["detail"]["code"], "UPDATE_USER_INVALID_PASSWORD");
    // nothing was changed by the refused requests
    assert_json(app.me(&token).await, 200, user).await;
    // malformed bodies
    let d = assert_422(
        app.patch("/users/me", &token, &json!({"email": "nope"}))
            .await,
    )
    .await;
    assert_eq!(d[0]["loc"], json!(["body", "email"]));
    let d = assert_422(
        app.patch("/users/me", &token, &json!({"password": 12}))
            .await,
    )
    .await;
    assert_eq!(d[0]["type"], "string_type");
    let resp = app
        .client
        .patch(app.url("/users/me"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(assert_422(resp).await[0]["type"], "json_invalid");
    // 401 comes before the body is looked at
    assert_eq!(
        app.patch("/users/me", "bad", &json!({"email": 1}))
            .await
            .status(),
        401
    );
}

both_backends!(
    me_returns_the_current_user,
    patch_me_changes_email_and_clears_verification,
    patch_me_refuses_taken_emails_and_weak_passwords,
);
