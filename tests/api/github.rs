//! Sign in with GitHub through a loopback GitHub (web side and REST API).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::both_backends;
use crate::github_provider::{GithubEmail, GithubProvider, GithubUser};
use crate::helpers::*;
use crate::oidc_provider::OidcProvider;
use crate::provider_flow::*;

async fn app_with_github(
    backend: Backend,
    github: &GithubProvider,
    configure: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    spawn_app_with(backend, |env| {
        configure_github(env, github);
        configure(env);
    })
    .await
}

async fn me(app: &TestApp, token: &str) -> Value {
    app.me(token).await.json().await.unwrap()
}

async fn github_sign_up_then_sign_in(backend: Backend) {
    let github = GithubProvider::start().await;
    let app = app_with_github(backend, &github, |_| {}).await;
    assert_json(
        app.get("/auth/providers", None).await,
        200,
        json!([{"name": "github", "label": "GitHub", "authorize_url": "http://127.0.0.1:0/auth/github/authorize"}]),
    )
    .await;
    let email = unique_email();
    github.set_user(GithubUser::new(123, &email));
    let token = token_of(sign_in(&app, "github", &github).await).await;
    let user = me(&app, &token).await;
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["is_verified"], false);
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        400,
        "no usable password"
    );
    // again, with another address at GitHub: the same user (keyed on the numeric id)
    let mut renamed = GithubUser::new(123, &unique_email());
    renamed.login = "renamed".into();
    github.set_user(renamed);
    let again = token_of(sign_in(&app, "github", &github).await).await;
    assert_eq!(me(&app, &again).await["id"], user["id"]);
    let sessions: Value = app
        .get("/auth/sessions", Some(&again))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["method"], "github");
    let linked: Value = app
        .get("/users/me/identities", Some(&again))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(linked[0]["provider"], "github");
    assert_eq!(linked[0]["subject"], "123");

    // what GitHub saw: state and PKCE S256 at authorize; the secret, the verifier and
    // Accept: application/json at the token endpoint; a User-Agent and the token at
    // the API
    for a in github.authorizations() {
        assert_eq!(a["code_challenge_method"], "S256");
        assert_eq!(a["code_challenge"].len(), 43);
        assert_eq!(a["scope"], "read:user user:email");
        assert!(a["redirect_uri"].ends_with("/auth/github/callback"));
        assert!(!a["state"].is_empty());
    }
    for r in github.token_requests() {
        assert!(r["accept"].contains("application/json"), "{r:?}");
        assert_eq!(r["client_secret"], GithubProvider::CLIENT_SECRET);
        assert!(r["code_verifier"].len() >= 43);
        assert!(r["redirect_uri"].ends_with("/auth/github/callback"));
    }
    let api = github.api_requests();
    assert_eq!(
        api.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["/api/v3/user", "/api/v3/user/emails"].repeat(2)
    );
    for (_, headers) in api {
        assert!(headers["user-agent"].starts_with("users-upstream/"));
        assert!(headers["authorization"].starts_with("Bearer gho_"));
        assert_eq!(headers["x-github-api-version"], "2022-11-28");
    }
}

async fn only_a_primary_verified_github_email_counts(backend: Backend) {
    let github = GithubProvider::start().await;
    let app = app_with_github(backend, &github, |_| {}).await;
    let (primary, other) = (unique_email(), unique_email());
    let email = |e: &str, primary: bool, verified: bool| GithubEmail {
        email: e.to_owned(),
        primary,
        verified,
    };
    // the primary address unverified; a verified secondary and a public profile
    // address do not stand in for it
    github.set_user(GithubUser {
        id: 7,
        login: "seven".into(),
        public_email: Some(other.clone()),
        emails: vec![email(&other, false, true), email(&primary, true, false)],
    });
    assert_json(
        sign_in(&app, "github", &github).await,
        400,
        json!({"detail": "OAUTH_NOT_AVAILABLE_EMAIL"}),
    )
    .await;
    // no address at all (the user:email scope refused: GitHub answers 404)
    github.set_user(GithubUser {
        id: 8,
        login: "eight".into(),
        public_email: None,
        emails: vec![],
    });
    assert_json(
        sign_in(&app, "github", &github).await,
        400,
        json!({"detail": "OAUTH_NOT_AVAILABLE_EMAIL"}),
    )
    .await;
    assert_eq!(
        users_db::users::count(&mut app.db.get().unwrap()).unwrap(),
        0
    );
    // verified and primary: that one
    github.set_user(GithubUser {
        id: 7,
        login: "seven".into(),
        public_email: None,
        emails: vec![email(&other, false, true), email(&primary, true, true)],
    });
    let token = token_of(sign_in(&app, "github", &github).await).await;
    assert_eq!(me(&app, &token).await["email"], primary.as_str());
}

async fn github_associate_and_link_by_email(backend: Backend) {
    let github = GithubProvider::start().await;
    let app = app_with_github(backend, &github, |env| {
        env.insert("GITHUB_ASSOCIATE_BY_EMAIL".into(), "true".into());
    })
    .await;
    // a verified primary address matching a user links to that user
    let email = unique_email();
    let user = app.create_user(&email).await;
    github.set_user(GithubUser::new(500, &email));
    let token = token_of(sign_in(&app, "github", &github).await).await;
    assert_eq!(me(&app, &token).await["id"], user["id"]);

    // associate: another GitHub account to the current user, then to nobody else
    let (other_user, other_token) = app.user_with_token().await;
    github.set_user(GithubUser::new(501, &unique_email()));
    assert_json(
        associate(&app, "github", &github, &other_token).await,
        200,
        other_user.clone(),
    )
    .await;
    let t = token_of(sign_in(&app, "github", &github).await).await;
    assert_eq!(me(&app, &t).await["id"], other_user["id"]);
    assert_json(
        associate(&app, "github", &github, &token).await,
        400,
        json!({"detail": "OAUTH_ACCOUNT_ALREADY_LINKED"}),
    )
    .await;
}

async fn github_callback_checks_and_outages(backend: Backend) {
    let github = GithubProvider::start().await;
    let google = OidcProvider::start().await;
    let app = app_with_github(backend, &github, |env| {
        env.insert("GOOGLE_CLIENT_ID".into(), OidcProvider::CLIENT_ID.into());
        env.insert(
            "GOOGLE_CLIENT_SECRET".into(),
            OidcProvider::CLIENT_SECRET.into(),
        );
        env.insert("GOOGLE_ISSUER_URL".into(), google.issuer());
    })
    .await;
    github.set_user(GithubUser::new(900, &unique_email()));
    callback_checks_come_in_order(&app, "github", &github).await;

    // a Google state at GitHub's callback, and the reverse
    let (code, state, cookie) = consented(&app, "google", &google).await;
    assert_json(
        callback(
            &app,
            "/auth/github/callback",
            &query(&code, &state),
            Some(&cookie),
            None,
        )
        .await,
        400,
        json!({"detail": "OAUTH_INVALID_STATE"}),
    )
    .await;
    let (code, state, cookie) = consented(&app, "github", &github).await;
    assert_json(
        callback(
            &app,
            "/auth/google/callback",
            &query(&code, &state),
            Some(&cookie),
            None,
        )
        .await,
        400,
        json!({"detail": "OAUTH_INVALID_STATE"}),
    )
    .await;

    // the API answering 5xx, then gone
    github.set_api_status(Some(503));
    assert_json(
        sign_in(&app, "github", &github).await,
        502,
        json!({"detail": "OAUTH_PROVIDER_UNAVAILABLE"}),
    )
    .await;
    github.set_api_status(None);
    github.stop_api().await;
    assert_json(
        sign_in(&app, "github", &github).await,
        502,
        json!({"detail": "OAUTH_PROVIDER_UNAVAILABLE"}),
    )
    .await;
    // no user was made by any of it but the one of the order checks
    assert_eq!(
        users_db::users::count(&mut app.db.get().unwrap()).unwrap(),
        1
    );
}

both_backends!(
    github_sign_up_then_sign_in,
    only_a_primary_verified_github_email_counts,
    github_associate_and_link_by_email,
    github_callback_checks_and_outages,
);
