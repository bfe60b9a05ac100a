//! Sign in with any OpenID provider: two loopback providers configured at once, with
//! different keys (RS256 and ES256) and different client authentication
//! (`client_secret_basic` and `client_secret_post`), and nothing crossing between them.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::oidc_provider::{Identity, OidcProvider, Tamper, TestKey};
use crate::provider_flow::*;

/// `alpha`: RS256, client_secret_basic. `beta-2`: ES256, client_secret_post.
async fn two_providers() -> (OidcProvider, OidcProvider) {
    (
        OidcProvider::start_with_key("client_secret_basic", TestKey::Rsa).await,
        OidcProvider::start_with_key("client_secret_post", TestKey::Ec).await,
    )
}

async fn app_with(
    backend: Backend,
    alpha: &OidcProvider,
    beta: &OidcProvider,
    configure: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    spawn_app_with(backend, |env| {
        configure_oidc(env, "alpha", alpha);
        configure_oidc(env, "beta-2", beta);
        env.insert("OIDC_ALPHA_LABEL".into(), "Alpha Corp".into());
        configure(env);
    })
    .await
}

fn identity(sub: &str, email: &str, verified: bool) -> Identity {
    Identity {
        sub: sub.to_owned(),
        email: Some(email.to_owned()),
        email_verified: verified,
    }
}

async fn me(app: &TestApp, token: &str) -> Value {
    app.me(token).await.json().await.unwrap()
}

async fn two_openid_providers_sign_in_side_by_side(backend: Backend) {
    let (alpha, beta) = two_providers().await;
    let app = app_with(backend, &alpha, &beta, |_| {}).await;
    assert_json(
        app.get("/auth/providers", None).await,
        200,
        json!([
            {"name": "alpha", "label": "Alpha Corp", "authorize_url": "http://127.0.0.1:0/auth/alpha/authorize"},
            {"name": "beta-2", "label": "beta-2", "authorize_url": "http://127.0.0.1:0/auth/beta-2/authorize"},
        ]),
    )
    .await;

    // The same subject at both providers is two people.
    let (email_a, email_b) = (unique_email(), unique_email());
    alpha.set_identity(identity("shared-sub", &email_a, true));
    beta.set_identity(identity("shared-sub", &email_b, true));
    let token_a = token_of(sign_in(&app, "alpha", &alpha).await).await;
    let token_b = token_of(sign_in(&app, "beta-2", &beta).await).await;
    let (user_a, user_b) = (me(&app, &token_a).await, me(&app, &token_b).await);
    assert_eq!(user_a["email"], email_a.as_str());
    assert_eq!(user_b["email"], email_b.as_str());
    assert_ne!(user_a["id"], user_b["id"]);
    // again: each provider signs in its own user
    let again = token_of(sign_in(&app, "beta-2", &beta).await).await;
    assert_eq!(me(&app, &again).await["id"], user_b["id"]);

    // sessions carry the provider's key
    for (token, method) in [(&token_a, "oidc:alpha"), (&token_b, "oidc:beta-2")] {
        let sessions: Value = app
            .get("/auth/sessions", Some(token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(sessions[0]["method"], method, "{sessions}");
    }
    // identities: the provider's name and its subject
    let linked: Value = app
        .get("/users/me/identities", Some(&token_a))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(linked.as_array().unwrap().len(), 1, "{linked}");
    assert_eq!(linked[0]["provider"], "alpha");
    assert_eq!(linked[0]["subject"], "shared-sub");
    assert_eq!(linked[0]["email"], email_a.as_str());

    // each provider saw its own redirect URI, PKCE and nonce, and its own client
    // authentication
    for (provider, name) in [(&alpha, "alpha"), (&beta, "beta-2")] {
        for a in provider.authorizations() {
            assert!(
                a["redirect_uri"].ends_with(&format!("/auth/{name}/callback")),
                "{a:?}"
            );
            assert_eq!(a["scope"], "openid email profile");
            assert_eq!(a["code_challenge_method"], "S256");
            assert!(a["nonce"].len() >= 32);
        }
    }
    let nonces: Vec<String> = alpha
        .authorizations()
        .into_iter()
        .chain(beta.authorizations())
        .map(|a| a["nonce"].clone())
        .collect();
    let distinct: std::collections::BTreeSet<&String> = nonces.iter().collect();
    assert_eq!(
        distinct.len(),
        nonces.len(),
        "every authorization has its own nonce"
    );
    for r in alpha.token_requests() {
        assert!(r["authorization"].starts_with("Basic "), "{r:?}");
        assert!(!r.contains_key("client_secret"), "{r:?}");
    }
    for r in beta.token_requests() {
        assert_eq!(r["client_secret"], OidcProvider::CLIENT_SECRET);
        assert!(!r.contains_key("authorization"), "{r:?}");
    }
}

async fn states_and_keys_do_not_cross_between_providers(backend: Backend) {
    let (alpha, beta) = two_providers().await;
    let app = app_with(backend, &alpha, &beta, |_| {}).await;
    alpha.set_identity(identity("a-1", &unique_email(), true));
    beta.set_identity(identity("b-1", &unique_email(), true));

    // alpha's state (and code and cookie) at beta's callback: refused, and not spent
    let (code, state, cookie) = consented(&app, "alpha", &alpha).await;
    assert_eq!(claims_of(&state)["provider"], "alpha");
    assert_json(
        callback(
            &app,
            "/auth/beta-2/callback",
            &query(&code, &state),
            Some(&cookie),
            None,
        )
        .await,
        400,
        json!({"detail": "OAUTH_INVALID_STATE"}),
    )
    .await;
    token_of(
        callback(
            &app,
            "/auth/alpha/callback",
            &query(&code, &state),
            Some(&cookie),
            None,
        )
        .await,
    )
    .await;

    // a state signed with the service's secret that claims beta but names alpha's
    // pending authorization (its verifier and nonce): the server-side row says alpha
    let (code, state, cookie) = consented(&app, "alpha", &alpha).await;
    let mut forged = claims_of(&state);
    forged["provider"] = json!("beta-2");
    let forged = sign_state(&forged, TEST_SECRET);
    assert_json(
        callback(
            &app,
            "/auth/beta-2/callback",
            &query(&code, &forged),
            Some(&cookie),
            None,
        )
        .await,
        400,
        json!({"detail": "OAUTH_INVALID_STATE"}),
    )
    .await;
    // an associate state of alpha at beta's associate callback
    let (_, token) = app.user_with_token().await;
    let (url, cookie) = authorize(&app, "/auth/associate/alpha/authorize", Some(&token)).await;
    let (code, state) = alpha.authorize(&url).await;
    assert_json(
        callback(
            &app,
            "/auth/associate/beta-2/callback",
            &query(&code, &state),
            Some(&cookie),
            Some(&token),
        )
        .await,
        400,
        json!({"detail": "OAUTH_INVALID_STATE"}),
    )
    .await;

    // keys: an id_token validly signed by the other provider's key (under its kid) is
    // not the provider's own
    beta.set_tamper(Tamper::SignedWith(TestKey::Rsa));
    assert_json(
        sign_in(&app, "beta-2", &beta).await,
        400,
        json!({"detail": "OAUTH_INVALID_ID_TOKEN"}),
    )
    .await;
    alpha.set_tamper(Tamper::SignedWith(TestKey::Ec));
    assert_json(
        sign_in(&app, "alpha", &alpha).await,
        400,
        json!({"detail": "OAUTH_INVALID_ID_TOKEN"}),
    )
    .await;
    // a key beta never published, even under beta's own kid
    beta.set_tamper(Tamper::OtherKey);
    assert_json(
        sign_in(&app, "beta-2", &beta).await,
        400,
        json!({"detail": "OAUTH_INVALID_ID_TOKEN"}),
    )
    .await;
    for tamper in [
        Tamper::BadSignature,
        Tamper::WrongNonce,
        Tamper::WrongAudience,
        Tamper::Expired,
    ] {
        beta.set_tamper(tamper);
        let resp = sign_in(&app, "beta-2", &beta).await;
        assert_eq!(resp.status(), 400, "{tamper:?}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"detail": "OAUTH_INVALID_ID_TOKEN"}),
            "{tamper:?}"
        );
    }
    // both still work with their own keys
    alpha.set_tamper(Tamper::None);
    beta.set_tamper(Tamper::None);
    token_of(sign_in(&app, "alpha", &alpha).await).await;
    token_of(sign_in(&app, "beta-2", &beta).await).await;
}

async fn a_generic_provider_makes_googles_checks_in_googles_order(backend: Backend) {
    let (alpha, beta) = two_providers().await;
    let app = app_with(backend, &alpha, &beta, |_| {}).await;
    beta.set_identity(identity("b-order", &unique_email(), true));
    callback_checks_come_in_order(&app, "beta-2", &beta).await;

    // no email, then an inactive user
    beta.set_identity(Identity {
        sub: "no-email".into(),
        email: None,
        email_verified: false,
    });
    assert_json(
        sign_in(&app, "beta-2", &beta).await,
        400,
        json!({"detail": "OAUTH_NOT_AVAILABLE_EMAIL"}),
    )
    .await;
    beta.set_identity(identity("b-inactive", &unique_email(), true));
    let token = token_of(sign_in(&app, "beta-2", &beta).await).await;
    let user = me(&app, &token).await;
    let (_, admin) = app.superuser_with_token().await;
    app.patch(
        &format!("/users/{}", user["id"].as_str().unwrap()),
        &admin,
        &json!({"is_active": false}),
    )
    .await;
    assert_json(
        sign_in(&app, "beta-2", &beta).await,
        400,
        json!({"detail": "LOGIN_BAD_CREDENTIALS"}),
    )
    .await;
    // the provider down at the callback
    let (code, state, cookie) = consented(&app, "alpha", &alpha).await;
    alpha.stop().await;
    assert_json(
        callback(
            &app,
            "/auth/alpha/callback",
            &query(&code, &state),
            Some(&cookie),
            None,
        )
        .await,
        502,
        json!({"detail": "OAUTH_PROVIDER_UNAVAILABLE"}),
    )
    .await;
    // names that are not configured stay 404
    for path in [
        "/auth/gamma/authorize",
        "/auth/github/authorize",
        "/auth/google/callback?code=x&state=y",
        "/auth/associate/gamma/authorize",
    ] {
        assert_json(
            app.get(path, None).await,
            404,
            json!({"detail": "Not Found"}),
        )
        .await;
    }
}

async fn linking_rules_are_per_provider(backend: Backend) {
    let (alpha, beta) = two_providers().await;
    let app = app_with(backend, &alpha, &beta, |env| {
        env.insert("OIDC_ALPHA_ASSOCIATE_BY_EMAIL".into(), "true".into());
    })
    .await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    // beta does not link by email, verified or not
    beta.set_identity(identity("b-x", &email, true));
    assert_json(
        sign_in(&app, "beta-2", &beta).await,
        400,
        json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}),
    )
    .await;
    // alpha links only a verified email
    alpha.set_identity(identity("a-x", &email, false));
    assert_json(
        sign_in(&app, "alpha", &alpha).await,
        400,
        json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}),
    )
    .await;
    alpha.set_identity(identity("a-x", &email, true));
    let token = token_of(sign_in(&app, "alpha", &alpha).await).await;
    assert_eq!(me(&app, &token).await["id"], user["id"]);

    // associate: beta's account to the current user; then to nobody else
    beta.set_identity(identity("b-linked", &unique_email(), true));
    assert_json(
        associate(&app, "beta-2", &beta, &token).await,
        200,
        me(&app, &token).await,
    )
    .await;
    let t = token_of(sign_in(&app, "beta-2", &beta).await).await;
    assert_eq!(me(&app, &t).await["id"], user["id"]);
    let (_, other) = app.user_with_token().await;
    assert_json(
        associate(&app, "beta-2", &beta, &other).await,
        400,
        json!({"detail": "OAUTH_ACCOUNT_ALREADY_LINKED"}),
    )
    .await;
}

async fn an_unreachable_provider_answers_503_until_discovery_succeeds(backend: Backend) {
    let beta = OidcProvider::start_with_key("client_secret_post", TestKey::Ec).await;
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let app = spawn_app_with(backend, |env| {
        env.insert("OIDC_PROVIDERS".into(), "alpha".into());
        env.insert("OIDC_ALPHA_ISSUER_URL".into(), issuer.clone());
        env.insert(
            "OIDC_ALPHA_CLIENT_ID".into(),
            OidcProvider::CLIENT_ID.into(),
        );
        env.insert(
            "OIDC_ALPHA_CLIENT_SECRET".into(),
            OidcProvider::CLIENT_SECRET.into(),
        );
        env.insert("OIDC_ALPHA_LABEL".into(), "Alpha Corp".into());
        env.insert("OIDC_ALPHA_TIMEOUT_SECONDS".into(), "1".into());
        configure_oidc(env, "beta-2", &beta);
    })
    .await;
    let resp = app.get("/auth/alpha/authorize", None).await;
    assert_eq!(resp.status(), 503);
    let detail = resp.json::<Value>().await.unwrap()["detail"].clone();
    assert!(detail.as_str().unwrap().contains("Alpha Corp"), "{detail}");
    // the other provider, and everything else, works meanwhile
    beta.set_identity(identity("b-up", &unique_email(), true));
    token_of(sign_in(&app, "beta-2", &beta).await).await;
    app.user_with_token().await;

    // the provider comes up: background discovery finds it
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let alpha = OidcProvider::start_on(listener, "client_secret_basic", TestKey::Rsa);
    alpha.set_identity(identity("a-up", &unique_email(), true));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = app.get("/auth/alpha/authorize", None).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            std::time::Instant::now() < deadline,
            "discovery never succeeded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    token_of(sign_in(&app, "alpha", &alpha).await).await;
}

both_backends!(
    two_openid_providers_sign_in_side_by_side,
    states_and_keys_do_not_cross_between_providers,
    a_generic_provider_makes_googles_checks_in_googles_order,
    linking_rules_are_per_provider,
    an_unreachable_provider_answers_503_until_discovery_succeeds,
);

/// A discovery document naming another issuer stops the start, naming the variable;
/// the secret is in no message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_naming_another_issuer_stops_the_start() {
    let db = TestDatabase::new(Backend::Sqlite);
    let impostor = OidcProvider::start().await;
    impostor.patch_discovery(json!({"issuer": "https://login.example.com"}));
    for (var, configure) in [
        (
            "OIDC_ALPHA_ISSUER_URL",
            Box::new(|env: &mut HashMap<String, String>, p: &OidcProvider| {
                configure_oidc(env, "alpha", p)
            }) as Box<dyn Fn(&mut HashMap<String, String>, &OidcProvider)>,
        ),
        (
            "GOOGLE_ISSUER_URL",
            Box::new(|env: &mut HashMap<String, String>, p: &OidcProvider| {
                env.insert("GOOGLE_CLIENT_ID".into(), OidcProvider::CLIENT_ID.into());
                env.insert(
                    "GOOGLE_CLIENT_SECRET".into(),
                    OidcProvider::CLIENT_SECRET.into(),
                );
                env.insert("GOOGLE_ISSUER_URL".into(), p.issuer());
            }),
        ),
    ] {
        let mut env = test_env(&db.url);
        configure(&mut env, &impostor);
        let settings =
            users_server::Settings::from_lookup(|k| env.get(k).cloned()).expect("settings");
        let error = match users_server::Application::build(settings).await {
            Ok(_) => panic!("the app started with a provider naming another issuer"),
            Err(e) => e.to_string(),
        };
        assert!(error.starts_with(&format!("{var}: ")), "{error}");
        assert!(error.contains("https://login.example.com"), "{error}");
        assert!(!error.contains(OidcProvider::CLIENT_SECRET), "{error}");
    }
}

/// Provider sign-ins that succeed and fail, on the real binary with our crates logging
/// at debug: no client secret (right or wrong), code, provider token or id_token in
/// any line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_secrets_codes_and_tokens_stay_out_of_the_logs() {
    use crate::github_provider::{GithubProvider, GithubUser};

    let database = TestDatabase::new(Backend::Sqlite);
    let (alpha, beta) = two_providers().await;
    let github = GithubProvider::start().await;
    let wrong_secret = "wrong-beta-secret-8d1f0c";
    let mut env = process_env(&database.url);
    env.insert(
        "RUST_LOG".into(),
        "info,users_upstream=debug,users_core=debug,users_server=debug".into(),
    );
    configure_oidc(&mut env, "alpha", &alpha);
    configure_oidc(&mut env, "beta-2", &beta);
    env.insert("OIDC_BETA_2_CLIENT_SECRET".into(), wrong_secret.into());
    configure_github(&mut env, &github);
    let server = ServerProcess::start(&env);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    alpha.set_identity(identity("log-a", &unique_email(), true));
    github.set_user(GithubUser::new(31337, &unique_email()));
    let a = token_of(process_sign_in(&client, &server, "alpha", &alpha, None).await).await;
    let g = token_of(process_sign_in(&client, &server, "github", &github, None).await).await;
    // beta refuses our (wrong) secret; a made-up code is refused
    for resp in [
        process_sign_in(&client, &server, "beta-2", &beta, None).await,
        process_sign_in(
            &client,
            &server,
            "github",
            &github,
            Some("0000made-up-code"),
        )
        .await,
    ] {
        assert_json(resp, 400, json!({"detail": "OAUTH_CODE_REJECTED"})).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let output = server.output.clone();
    assert!(server.terminate().success());

    let lines = output.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("token endpoint answered")),
        "the refusals are logged: {lines:?}"
    );
    let mut needles: Vec<String> = vec![
        OidcProvider::CLIENT_SECRET.into(),
        wrong_secret.into(),
        GithubProvider::CLIENT_SECRET.into(),
        "0000made-up-code".into(),
        "gho_".into(),
        "access-".into(),
        "refresh-".into(),
        "code-".into(),
        a,
        g,
    ];
    for r in alpha
        .token_requests()
        .into_iter()
        .chain(github.token_requests())
    {
        needles.extend(r.get("code").cloned());
        needles.extend(r.get("code_verifier").cloned());
    }
    for needle in &needles {
        assert!(
            !lines.iter().any(|l| l.contains(needle.as_str())),
            "`{needle}` must not be logged"
        );
    }
}

/// The sign-in dance against a server process; `code` replaces the provider's.
async fn process_sign_in(
    client: &reqwest::Client,
    server: &ServerProcess,
    name: &str,
    provider: &impl Consent,
    code: Option<&str>,
) -> reqwest::Response {
    let resp = client
        .get(server.url(&format!("/auth/{name}/authorize")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let (real_code, state) = provider
        .consent(body["authorization_url"].as_str().unwrap())
        .await;
    client
        .get(server.url(&format!(
            "/auth/{name}/callback?{}",
            query(code.unwrap_or(&real_code), &state)
        )))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}
