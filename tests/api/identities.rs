//! The provider accounts linked to a user: listed, unlinked, and never the last way
//! to sign in.

use serde_json::{json, Value};

use crate::both_backends;
use crate::github_provider::{GithubProvider, GithubUser};
use crate::helpers::*;
use crate::oidc_provider::{Identity, OidcProvider};
use crate::provider_flow::*;

async fn identities(app: &TestApp, token: &str) -> Value {
    let resp = app.get("/users/me/identities", Some(token)).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn is_iso_utc(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    s.len() == 20
        && s.ends_with('Z')
        && s.as_bytes()[10] == b'T'
        && s[..4].chars().all(|c| c.is_ascii_digit())
}

async fn identities_are_listed_and_unlinked(backend: Backend) {
    let corp = OidcProvider::start().await;
    let github = GithubProvider::start().await;
    let app = spawn_app_with(backend, |env| {
        configure_oidc(env, "corp", &corp);
        configure_github(env, &github);
    })
    .await;
    let (user, token) = app.user_with_token().await;
    assert_json(
        app.get("/users/me/identities", None).await,
        401,
        json!({"detail": "Unauthorized"}),
    )
    .await;
    assert_eq!(identities(&app, &token).await, json!([]));

    let corp_email = unique_email();
    corp.set_identity(Identity::new("corp-sub-1", &corp_email));
    assert_json(
        associate(&app, "corp", &corp, &token).await,
        200,
        user.clone(),
    )
    .await;
    github.set_user(GithubUser::new(4242, &unique_email()));
    assert_json(
        associate(&app, "github", &github, &token).await,
        200,
        user.clone(),
    )
    .await;

    let linked = identities(&app, &token).await;
    let list = linked.as_array().unwrap();
    assert_eq!(list.len(), 2, "{linked}");
    // newest first
    assert_eq!(list[0]["provider"], "github");
    assert_eq!(list[0]["subject"], "4242");
    assert_eq!(list[1]["provider"], "corp");
    assert_eq!(list[1]["subject"], "corp-sub-1");
    assert_eq!(list[1]["email"], corp_email.as_str());
    for item in list {
        assert!(is_iso_utc(&item["linked_at"]), "{item}");
        assert_eq!(item.as_object().unwrap().len(), 4, "{item}");
    }

    assert_eq!(
        app.delete("/users/me/identities/corp", &token)
            .await
            .status(),
        204
    );
    let linked = identities(&app, &token).await;
    assert_eq!(linked.as_array().unwrap().len(), 1);
    assert_eq!(linked[0]["provider"], "github");
    for gone in ["corp", "google", "nope", "oidc:corp"] {
        assert_json(
            app.delete(&format!("/users/me/identities/{gone}"), &token)
                .await,
            404,
            json!({"detail": "Not Found"}),
        )
        .await;
    }
    let resp = app
        .client
        .delete(app.url("/users/me/identities/github"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // the unlinked corp account now signs in to a user of its own
    let t = token_of(sign_in(&app, "corp", &corp).await).await;
    assert_ne!(
        app.me(&t).await.json::<Value>().await.unwrap()["id"],
        user["id"]
    );

    // deleting the user removes their identities
    let (_, admin) = app.superuser_with_token().await;
    assert_eq!(
        app.delete(&format!("/users/{}", user["id"].as_str().unwrap()), &admin)
            .await
            .status(),
        204
    );
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    let left = users_db::upstream::identities_of(&mut app.db.get().unwrap(), id).unwrap();
    assert!(left.is_empty());
}

async fn the_last_way_to_sign_in_cannot_be_unlinked(backend: Backend) {
    let corp = OidcProvider::start().await;
    let github = GithubProvider::start().await;
    let app = spawn_app_with(backend, |env| {
        configure_oidc(env, "corp", &corp);
        configure_github(env, &github);
    })
    .await;
    // made through GitHub: no usable password, one identity
    let email = unique_email();
    github.set_user(GithubUser::new(77, &email));
    let token = token_of(sign_in(&app, "github", &github).await).await;
    let last = json!({"detail": "IDENTITY_LAST_SIGN_IN_METHOD"});
    assert_json(
        app.delete("/users/me/identities/github", &token).await,
        400,
        last.clone(),
    )
    .await;
    assert_eq!(identities(&app, &token).await.as_array().unwrap().len(), 1);

    // a second identity: either may go, not both
    corp.set_identity(Identity::new("corp-77", &unique_email()));
    assert_eq!(associate(&app, "corp", &corp, &token).await.status(), 200);
    assert_eq!(
        app.delete("/users/me/identities/github", &token)
            .await
            .status(),
        204
    );
    assert_json(
        app.delete("/users/me/identities/corp", &token).await,
        400,
        last,
    )
    .await;

    // with a password of their own, the last identity may go too
    let resp = app
        .patch("/users/me", &token, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(resp.status(), 200);
    // a password change ends the sessions: sign in with the new password
    let token = app.token(&email, PASSWORD).await;
    assert_eq!(
        app.delete("/users/me/identities/corp", &token)
            .await
            .status(),
        204
    );
    assert_eq!(identities(&app, &token).await, json!([]));
    app.token(&email, PASSWORD).await;

    // each link and unlink is in the user's log; the refused ones are not
    let events = app.events("/users/me/events", &token).await;
    let seen: Vec<(&str, Value)> = events
        .iter()
        .filter(|e| e["type"] != "user.login_succeeded")
        .map(|e| (e["type"].as_str().unwrap(), e["data"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("user.registered", json!({"method": "github"})),
            (
                "identity.linked",
                json!({"provider": "github", "via": "sign_up"})
            ),
            (
                "identity.linked",
                json!({"provider": "corp", "via": "associate"})
            ),
            ("identity.unlinked", json!({"provider": "github"})),
            ("user.updated", json!({"fields": ["password"]})),
            ("password.changed", json!({"via": "self"})),
            ("identity.unlinked", json!({"provider": "corp"})),
        ]
    );
    let methods: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "user.login_succeeded")
        .map(|e| e["data"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["github", "password", "password"]);
}

/// Two removals at once, of a user's last two identities: one wins, one is refused.
async fn concurrent_unlinks_leave_a_way_to_sign_in(backend: Backend) {
    let corp = OidcProvider::start().await;
    let github = GithubProvider::start().await;
    let app = spawn_app_with(backend, |env| {
        configure_oidc(env, "corp", &corp);
        configure_github(env, &github);
    })
    .await;
    for round in 0..3 {
        github.set_user(GithubUser::new(1000 + round, &unique_email()));
        let token = token_of(sign_in(&app, "github", &github).await).await;
        corp.set_identity(Identity::new(&format!("corp-c{round}"), &unique_email()));
        assert_eq!(associate(&app, "corp", &corp, &token).await.status(), 200);
        let (a, b) = tokio::join!(
            app.delete("/users/me/identities/github", &token),
            app.delete("/users/me/identities/corp", &token),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [204, 400], "round {round}");
        assert_eq!(identities(&app, &token).await.as_array().unwrap().len(), 1);
    }
}

both_backends!(
    identities_are_listed_and_unlinked,
    the_last_way_to_sign_in_cannot_be_unlinked,
    concurrent_unlinks_leave_a_way_to_sign_in,
);
