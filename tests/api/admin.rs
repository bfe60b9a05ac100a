use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

async fn admin_routes_need_a_superuser_checked_before_the_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token) = app.user_with_token().await;
    let id = user["id"].as_str().unwrap();
    for path in [
        format!("/users/{id}"),
        "/users/not-a-uuid".to_string(),
        format!("/users/{}", uuid::Uuid::new_v4()),
    ] {
        assert_json(
            app.get(&path, None).await,
            401,
            json!({"detail": "Unauthorized"}),
        )
        .await;
        assert_json(
            app.get(&path, Some(&token)).await,
            403,
            json!({"detail": "Forbidden"}),
        )
        .await;
        assert_json(
            app.patch(&path, &token, &json!({})).await,
            403,
            json!({"detail": "Forbidden"}),
        )
        .await;
        assert_json(
            app.delete(&path, &token).await,
            403,
            json!({"detail": "Forbidden"}),
        )
        .await;
    }
    assert_json(
        app.get("/users", Some(&token)).await,
        403,
        json!({"detail": "Forbidden"}),
    )
    .await;
    assert_json(
        app.get("/users", None).await,
        401,
        json!({"detail": "Unauthorized"}),
    )
    .await;
}

async fn superusers_read_update_and_delete_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let path = format!("/users/{}", user["id"].as_str().unwrap());
    assert_json(app.get(&path, Some(&admin)).await, 200, user.clone()).await;
    for missing in [
        "/users/not-a-uuid".to_string(),
        format!("/users/{}", uuid::Uuid::new_v4()),
    ] {
        assert_json(
            app.get(&missing, Some(&admin)).await,
            404,
            json!({"detail": "Not Found"}),
        )
        .await;
        assert_json(
            app.patch(&missing, &admin, &json!({})).await,
            404,
            json!({"detail": "Not Found"}),
        )
        .await;
        assert_json(
            app.delete(&missing, &admin).await,
            404,
            json!({"detail": "Not Found"}),
        )
        .await;
    }
    // every field may be set by a superuser
    let new_email = unique_email();
    let body: Value = app
        .patch(&path, &admin, &json!({"email": new_email, "is_superuser": true, "is_verified": true, "password": "admin set this password"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["email"], new_email.as_str());
    assert_eq!(body["is_superuser"], true);
    assert_eq!(
        body["is_verified"], true,
        "explicit is_verified wins over the email change"
    );
    app.token(&new_email, "admin set this password").await;
    // the 400s of /users/me apply
    let (other, _) = app.user_with_token().await;
    assert_json(
        app.patch(&path, &admin, &json!({"email": other["email"]}))
            .await,
        400,
        json!({"detail": "UPDATE_USER_EMAIL_ALREADY_EXISTS"}),
    )
    .await;
    let body: Value = app
        .patch(&path, &admin, &json!({"password": "short"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["detail"]["code"], "UPDATE_USER_INVALID_PASSWORD");
    assert_eq!(
        assert_422(
            app.patch(&path, &admin, &json!({"is_superuser": "sometimes"}))
                .await
        )
        .await[0]["type"],
        "bool_parsing"
    );
    // delete: 204 with an empty body, then 404
    let resp = app.delete(&path, &admin).await;
    assert_eq!(resp.status(), 204);
    assert!(resp.text().await.unwrap().is_empty());
    assert_json(
        app.get(&path, Some(&admin)).await,
        404,
        json!({"detail": "Not Found"}),
    )
    .await;
    assert_eq!(
        app.login(&new_email, "admin set this password")
            .await
            .status(),
        400
    );
}

async fn superusers_list_and_search_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin_user, admin) = app.superuser_with_token().await;
    let mut created = vec![admin_user["email"].as_str().unwrap().to_owned()];
    for i in 0..5 {
        let email = format!("Member{i}-{}@Example.com", uuid::Uuid::new_v4().simple());
        app.create_user(&email).await;
        created.push(email.replace("Example.com", "example.com"));
    }
    app.create_user("someone_else@example.net").await;
    let all: Value = app
        .get("/users?per_page=100", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["total"], 7);
    assert_eq!(all["page"], 1);
    assert_eq!(all["per_page"], 100);
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    // pages: stable order, no overlap, nothing missed
    let mut seen = Vec::new();
    for page in 1..=3 {
        let body: Value = app
            .get(&format!("/users?page={page}&per_page=3"), Some(&admin))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["total"], 7);
        for u in body["items"].as_array().unwrap() {
            seen.push(u["email"].as_str().unwrap().to_owned());
        }
    }
    let order: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, order);
    assert_eq!(&order[..6], &created[..], "creation order");
    // search: substring, case-insensitive; LIKE wildcards are literal
    let body: Value = app
        .get("/users?email=MEMBER", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["total"], 5);
    let body: Value = app
        .get("/users?email=e_e", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["total"], 1, "{body}");
    let body: Value = app
        .get("/users?email=%25", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["total"], 0);
    // bad parameters
    for q in ["page=0", "page=x", "per_page=101", "per_page=0"] {
        let d = assert_422(app.get(&format!("/users?{q}"), Some(&admin)).await).await;
        assert_eq!(d[0]["loc"][0], "query", "{q}");
    }
}

both_backends!(
    admin_routes_need_a_superuser_checked_before_the_id,
    superusers_read_update_and_delete_users,
    superusers_list_and_search_users,
);
