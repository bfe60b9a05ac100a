//! Roles and permissions (docs/roles-and-api-keys.md): superusers manage roles and give
//! them to users; first-party access tokens carry `roles` when the user has any.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::provider_flow::claims_of;

async fn put_json(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn roles_are_managed_by_superusers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let (_, user) = app.user_with_token().await;
    let role = json!({"name": "billing", "description": "Invoices", "permissions": ["invoices:write", "invoices:read"]});

    // 401 without a token, 403 for a user who is not a superuser
    assert_json(
        app.post_json("/roles", &role, None).await,
        401,
        json!({"detail": "Unauthorized"}),
    )
    .await;
    assert_json(
        app.post_json("/roles", &role, Some(&user)).await,
        403,
        json!({"detail": "Forbidden"}),
    )
    .await;
    assert_eq!(app.get("/roles", Some(&user)).await.status(), 403);
    assert_eq!(app.get("/roles/billing", Some(&user)).await.status(), 403);

    let created = json!({"name": "billing", "description": "Invoices", "permissions": ["invoices:read", "invoices:write"]});
    assert_json(
        app.post_json("/roles", &role, Some(&admin)).await,
        201,
        created.clone(),
    )
    .await;
    assert_json(
        app.post_json("/roles", &role, Some(&admin)).await,
        400,
        json!({"detail": "ROLE_ALREADY_EXISTS"}),
    )
    .await;
    let r = app
        .post_json("/roles", &json!({"name": "auditor"}), Some(&admin))
        .await;
    assert_eq!(r.status(), 201);
    // sorted by name
    assert_json(
        app.get("/roles", Some(&admin)).await,
        200,
        json!([{"name": "auditor", "description": "", "permissions": []}, created]),
    )
    .await;
    assert_json(app.get("/roles/billing", Some(&admin)).await, 200, created).await;
    assert_json(
        app.get("/roles/nope", Some(&admin)).await,
        404,
        json!({"detail": "ROLE_NOT_FOUND"}),
    )
    .await;

    // PATCH changes the fields given
    assert_json(
        app.patch(
            "/roles/billing",
            &admin,
            &json!({"permissions": ["invoices:read"]}),
        )
        .await,
        200,
        json!({"name": "billing", "description": "Invoices", "permissions": ["invoices:read"]}),
    )
    .await;
    assert_json(
        app.patch("/roles/billing", &admin, &json!({"description": "Bills"}))
            .await,
        200,
        json!({"name": "billing", "description": "Bills", "permissions": ["invoices:read"]}),
    )
    .await;
    assert_json(
        app.patch("/roles/nope", &admin, &json!({"description": "x"}))
            .await,
        404,
        json!({"detail": "ROLE_NOT_FOUND"}),
    )
    .await;

    assert_eq!(app.delete("/roles/auditor", &admin).await.status(), 204);
    assert_json(
        app.delete("/roles/auditor", &admin).await,
        404,
        json!({"detail": "ROLE_NOT_FOUND"}),
    )
    .await;
    assert_eq!(app.delete("/roles/billing", &user).await.status(), 403);
}

async fn role_names_and_permissions_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    for bad in ["Admin", "", "-x", "a b", &"a".repeat(65)] {
        let detail = assert_422(
            app.post_json("/roles", &json!({"name": bad}), Some(&admin))
                .await,
        )
        .await;
        assert_eq!(detail.len(), 1, "{detail:?}");
        assert_eq!(detail[0]["loc"], json!(["body", "name"]));
        assert_eq!(detail[0]["type"], "string_pattern_mismatch");
        assert_eq!(detail[0]["input"], json!(bad));
    }
    let detail = assert_422(
        app.post_json(
            "/roles",
            &json!({"name": "ok", "permissions": ["fine:read", "Not:Fine"]}),
            Some(&admin),
        )
        .await,
    )
    .await;
    assert_eq!(detail.len(), 1, "{detail:?}");
    assert_eq!(detail[0]["loc"], json!(["body", "permissions", 1]));
    let detail = assert_422(
        app.post_json(
            "/roles",
            &json!({"name": "ok", "permissions": "fine:read"}),
            Some(&admin),
        )
        .await,
    )
    .await;
    assert_eq!(detail[0]["loc"], json!(["body", "permissions"]));
    assert_eq!(detail[0]["type"], "list_type");
    let detail = assert_422(app.post_json("/roles", &json!({}), Some(&admin)).await).await;
    assert_eq!(detail[0]["loc"], json!(["body", "name"]));
    assert_eq!(detail[0]["type"], "missing");
    // nothing was created
    assert_json(app.get("/roles", Some(&admin)).await, 200, json!([])).await;
    let detail = assert_422(
        app.patch("/roles/ok", &admin, &json!({"permissions": [1]}))
            .await,
    )
    .await;
    assert_eq!(detail[0]["loc"], json!(["body", "permissions", 0]));
}

async fn a_users_roles_are_set_and_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin_user, admin) = app.superuser_with_token().await;
    let (user, token) = app.user_with_token().await;
    let id = user["id"].as_str().unwrap();
    for (name, permissions) in [
        ("billing", json!(["invoices:read", "invoices:write"])),
        ("support", json!(["invoices:read", "tickets:read"])),
    ] {
        let r = app
            .post_json(
                "/roles",
                &json!({"name": name, "permissions": permissions}),
                Some(&admin),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let none = json!({"roles": [], "permissions": []});
    assert_json(
        app.get("/users/me/roles", Some(&token)).await,
        200,
        none.clone(),
    )
    .await;
    assert_json(
        app.get(&format!("/users/{id}/roles"), Some(&admin)).await,
        200,
        none.clone(),
    )
    .await;
    assert_eq!(
        app.get(&format!("/users/{id}/roles"), Some(&token))
            .await
            .status(),
        403
    );

    let both = json!({
        "roles": ["billing", "support"],
        "permissions": ["invoices:read", "invoices:write", "tickets:read"],
    });
    assert_json(
        put_json(
            &app,
            &format!("/users/{id}/roles"),
            &admin,
            &json!({"roles": ["support", "billing"]}),
        )
        .await,
        200,
        both.clone(),
    )
    .await;
    assert_json(
        app.get("/users/me/roles", Some(&token)).await,
        200,
        both.clone(),
    )
    .await;

    // an unknown name: 400 naming the first one, and nothing changes
    assert_json(
        put_json(
            &app,
            &format!("/users/{id}/roles"),
            &admin,
            &json!({"roles": ["billing", "ghost", "phantom"]}),
        )
        .await,
        400,
        json!({"detail": {"code": "ROLE_NOT_FOUND", "role": "ghost"}}),
    )
    .await;
    assert_json(
        app.get(&format!("/users/{id}/roles"), Some(&admin)).await,
        200,
        both,
    )
    .await;
    // an unknown user
    let unknown = uuid::Uuid::new_v4();
    assert_json(
        put_json(
            &app,
            &format!("/users/{unknown}/roles"),
            &admin,
            &json!({"roles": []}),
        )
        .await,
        404,
        json!({"detail": "Not Found"}),
    )
    .await;
    let detail = assert_422(
        put_json(
            &app,
            &format!("/users/{id}/roles"),
            &admin,
            &json!({"roles": ["Bad Name"]}),
        )
        .await,
    )
    .await;
    assert_eq!(detail[0]["loc"], json!(["body", "roles", 0]));

    // deleting a role takes it from its users
    assert_eq!(app.delete("/roles/support", &admin).await.status(), 204);
    assert_json(
        app.get("/users/me/roles", Some(&token)).await,
        200,
        json!({"roles": ["billing"], "permissions": ["invoices:read", "invoices:write"]}),
    )
    .await;

    // the user object stays exactly fastapi-users'
    let me: Value = app.me(&token).await.json().await.unwrap();
    let mut keys: Vec<&String> = me.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["email", "id", "is_active", "is_superuser", "is_verified"]
    );

    // events: role.* with no user and the superuser as actor; user.roles_changed
    let audit = app.events("/audit", &admin).await;
    let admin_id = admin_user["id"].as_str().unwrap();
    let of = |t: &str| -> Vec<Value> {
        audit
            .iter()
            .filter(|e| e["type"] == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    let created = of("role.created");
    assert_eq!(created.len(), 2);
    for e in &created {
        assert_eq!(e["user_id"], Value::Null);
        assert_eq!(e["actor_id"], admin_id);
    }
    assert_eq!(created[0]["data"]["name"], "billing");
    let deleted = of("role.deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["data"]["name"], "support");
    assert_eq!(deleted[0]["user_id"], Value::Null);
    let changed = of("user.roles_changed");
    assert_eq!(changed.len(), 1, "the refused PUT changed nothing");
    assert_eq!(changed[0]["user_id"], id);
    assert_eq!(changed[0]["actor_id"], admin_id);
    assert_eq!(changed[0]["data"]["roles"], json!(["billing", "support"]));
}

async fn access_tokens_carry_the_roles(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let id = user["id"].as_str().unwrap();

    // no roles: no claim
    let pair = app.login_offline(&email, PASSWORD).await;
    let claims = claims_of(pair["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id);
    assert!(claims.get("roles").is_none(), "{claims}");

    for name in ["billing", "support"] {
        let r = app
            .post_json("/roles", &json!({"name": name}), Some(&admin))
            .await;
        assert_eq!(r.status(), 201);
    }
    let r = put_json(
        &app,
        &format!("/users/{id}/roles"),
        &admin,
        &json!({"roles": ["support", "billing"]}),
    )
    .await;
    assert_eq!(r.status(), 200);

    // a token minted before the change keeps what it had; the next refresh carries them
    let refreshed: Value = app
        .refresh(pair["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let claims = claims_of(refreshed["access_token"].as_str().unwrap());
    assert_eq!(claims["roles"], json!(["billing", "support"]));
    // as does a new login, and the cookie sign-in
    let token = app.token(&email, PASSWORD).await;
    assert_eq!(claims_of(&token)["roles"], json!(["billing", "support"]));
    let r = app
        .client
        .post(app.url("/auth/cookie/login"))
        .form(&[("username", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set_cookie
        .strip_prefix("fastapiusersauth=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    assert_eq!(claims_of(&cookie)["roles"], json!(["billing", "support"]));

    // a removed role is gone from the next refresh
    let r = put_json(
        &app,
        &format!("/users/{id}/roles"),
        &admin,
        &json!({"roles": ["billing"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let again: Value = app
        .refresh(refreshed["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims_of(again["access_token"].as_str().unwrap())["roles"],
        json!(["billing"])
    );
    // and a deleted role too: then no claim at all
    assert_eq!(app.delete("/roles/billing", &admin).await.status(), 204);
    let last: Value = app
        .refresh(again["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let claims = claims_of(last["access_token"].as_str().unwrap());
    assert!(claims.get("roles").is_none(), "{claims}");
    assert_eq!(
        app.me(last["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

both_backends!(
    roles_are_managed_by_superusers,
    role_names_and_permissions_are_validated,
    a_users_roles_are_set_and_read,
    access_tokens_carry_the_roles,
);
