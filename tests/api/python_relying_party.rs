//! The OAuth 2.1 / OpenID Connect provider (docs/oauth-provider.md) judged by a relying
//! party from another ecosystem: Authlib's OpenID Connect client in Python
//! (tests/fixtures/relying_party/relying_party.py, in the venv `target/relying-party-venv`
//! that `.ci/run` makes; venvs.rs). The script configures itself from the discovery
//! document, builds the authorization URL (PKCE S256, state, nonce), exchanges the code,
//! has the library check the ID token (signature from the JWKS, `iss`, `aud`, `exp`,
//! `nonce`, `at_hash`) and refuse altered ones, calls userinfo, refreshes and makes the
//! RP-Initiated Logout URL; the test plays the browser between its two steps and after
//! them, and checks what it reports.

use std::path::{Path, PathBuf};

use openidconnect::{PkceCodeChallenge, PkceCodeVerifier};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::oauth_provider::{
    browse, browser_cookie, decide, location, provider_app, query_of, register_client,
};
use crate::venvs::{FIXTURES, RELYING_PARTY};

const REDIRECT: &str = "http://127.0.0.1:9/python/callback";
const POST_LOGOUT: &str = "http://127.0.0.1:9/python/signed-out";
const SCOPE: &str = "openid email offline_access";

/// How one client is registered, and what the relying party should see.
struct Case {
    label: &'static str,
    auth_method: &'static str,
    /// `id_token_signed_response_alg`, `None` for the default.
    alg: Option<&'static str>,
    expected_alg: &'static str,
}

/// Runs a step of the script; its JSON output.
async fn run_script(python: &Path, args: Vec<String>, secret: Option<String>) -> Value {
    let python = python.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(python);
        cmd.arg(Path::new(FIXTURES).join("relying_party/relying_party.py"))
            .args(&args)
            .env_remove("RP_CLIENT_SECRET");
        if let Some(secret) = secret {
            cmd.env("RP_CLIENT_SECRET", secret);
        }
        cmd.output().expect("run relying_party.py")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "relying_party.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "relying_party.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The session file of one sign-in, in cargo's tmp folder.
fn session_file() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("relying-party");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}.json", uuid::Uuid::new_v4().simple()))
}

/// One sign-in through the Python relying party, with a client registered as `case`
/// says; every check on what it reports.
async fn sign_in_with(app: &TestApp, admin: &str, python: &Path, case: &Case) {
    let label = case.label;
    let mut metadata = json!({
        "client_name": format!("Python {label}"),
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": [POST_LOGOUT],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": SCOPE,
        "token_endpoint_auth_method": case.auth_method,
    });
    if let Some(alg) = case.alg {
        metadata["id_token_signed_response_alg"] = json!(alg);
    }
    let client = register_client(app, admin, metadata).await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().map(str::to_owned);
    assert_eq!(secret.is_none(), case.auth_method == "none", "{label}");

    let email = unique_email();
    let user = app.create_user(&email).await;
    let cookie = browser_cookie(app, &email).await;

    // step one: discovery and the authorization URL
    let session = session_file();
    let started = run_script(
        python,
        // `--name=value`: a client id may begin with `-`, which argparse would take
        // for an option of its own in `--name value`
        vec![
            "start".into(),
            format!("--issuer={}", app.address),
            format!("--client-id={client_id}"),
            format!("--auth-method={}", case.auth_method),
            format!("--redirect-uri={REDIRECT}"),
            format!("--scope={SCOPE}"),
            format!("--post-logout-redirect-uri={POST_LOGOUT}"),
            format!("--session={}", session.display()),
        ],
        secret.clone(),
    )
    .await;
    let url = started["authorization_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", app.address)),
        "{label}: {url}"
    );
    // what the library asked for: PKCE S256 of the verifier it kept, state and nonce
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    let q = query_of(&url);
    assert_eq!(q["response_type"], "code", "{label}");
    assert_eq!(q["client_id"], client_id, "{label}");
    assert_eq!(q["redirect_uri"], REDIRECT, "{label}");
    assert_eq!(q["scope"], SCOPE, "{label}");
    assert_eq!(q["code_challenge_method"], "S256", "{label}");
    let verifier = PkceCodeVerifier::new(kept["code_verifier"].as_str().unwrap().to_owned());
    assert_eq!(
        q["code_challenge"],
        PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str(),
        "{label}"
    );
    assert_eq!(q["state"], kept["state"].as_str().unwrap(), "{label}");
    assert_eq!(q["nonce"], kept["nonce"].as_str().unwrap(), "{label}");

    // the browser: signed in already, so straight to the consent page; allow
    let r = browse(app, &url, Some(&cookie)).await;
    assert_eq!(r.status(), 302, "{label}");
    let consent = location(&r);
    assert!(
        consent.contains("/oauth/consent?request="),
        "{label}: {consent}"
    );
    let r = decide(app, &consent, &cookie, "allow").await;
    assert_eq!(r.status(), 302, "{label}");
    let callback = location(&r);
    assert!(callback.starts_with(REDIRECT), "{label}: {callback}");

    // step two: the code exchange and everything the library checked
    let summary = run_script(
        python,
        vec![
            "finish".into(),
            format!("--session={}", session.display()),
            format!("--callback={callback}"),
        ],
        secret,
    )
    .await;
    let _ = std::fs::remove_file(&session);

    assert_eq!(summary["issuer"], app.address, "{label}");
    assert_eq!(summary["iss_parameter_checked"], true, "{label}: RFC 9207");
    assert_eq!(summary["token_type"], "Bearer", "{label}");
    assert_eq!(summary["scope"], SCOPE, "{label}");
    assert_eq!(summary["id_token_alg"], case.expected_alg, "{label}");
    let id = &summary["id_token"];
    assert_eq!(id["sub"], user["id"], "{label}: {summary}");
    assert_eq!(id["iss"], app.address, "{label}");
    assert_eq!(id["aud"], client_id, "{label}");
    assert_eq!(id["nonce"], kept["nonce"], "{label}");
    assert_eq!(id["email"], email.as_str(), "{label}");
    assert_eq!(id["email_verified"], false, "{label}");
    assert_eq!(id["amr"], json!(["pwd"]), "{label}");
    assert!(id["at_hash"].is_string(), "{label}");
    assert!(id["auth_time"].as_i64().unwrap() <= id["iat"].as_i64().unwrap());
    assert!(id["exp"].as_i64().unwrap() > summary["checked_at"].as_i64().unwrap());
    assert_eq!(
        summary["userinfo"],
        json!({"sub": user["id"], "email": email, "email_verified": false}),
        "{label}"
    );

    // the library refused every altered ID token, each for its own reason
    let rejections = &summary["rejections"];
    for (what, because) in [
        ("tampered_payload", "BadSignature"),
        ("unsigned", "'none'"),
        ("wrong_nonce", "nonce"),
        ("wrong_audience", "aud"),
        ("wrong_access_token", "at_hash"),
        ("wrong_issuer", "iss"),
        ("expired", "Expired"),
    ] {
        let error = rejections[what]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: the library accepted the {what} ID token"));
        assert!(error.contains(because), "{label}: {what}: {error}");
    }

    // the refresh: new tokens, a new ID token of the same sign-in, without a nonce
    let refreshed = &summary["refreshed"];
    assert_eq!(summary["has_refresh_token"], true, "{label}");
    assert_eq!(refreshed["access_token_changed"], true, "{label}");
    assert_eq!(refreshed["refresh_token_changed"], true, "{label}");
    assert_eq!(refreshed["id_token_alg"], case.expected_alg, "{label}");
    assert_eq!(refreshed["id_token"]["sub"], user["id"], "{label}");
    assert!(refreshed["id_token"].get("nonce").is_none(), "{label}");
    assert_eq!(refreshed["userinfo"], summary["userinfo"], "{label}");

    // the service agrees: the person let this client in
    let me = app.token(&email, PASSWORD).await;
    let grants: Value = app
        .get("/users/me/grants", Some(&me))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(grants.as_array().unwrap().len(), 1, "{label}: {grants}");
    assert_eq!(grants[0]["client_id"], client_id, "{label}");

    // RP-Initiated Logout with the library's URL (the latest ID token as the hint): the
    // browser's session ends and it is sent back with the state
    let logout = summary["logout_url"].as_str().unwrap();
    assert!(
        logout.starts_with(&format!("{}/oauth/logout?", app.address)),
        "{label}: {logout}"
    );
    assert_eq!(me_by_cookie(app, &cookie).await, 200, "{label}");
    let r = browse(app, logout, Some(&cookie)).await;
    assert_eq!(r.status(), 302, "{label}");
    let back = location(&r);
    assert!(back.starts_with(POST_LOGOUT), "{label}: {back}");
    assert_eq!(
        query_of(&back)["state"],
        summary["logout_state"].as_str().unwrap(),
        "{label}"
    );
    assert_eq!(
        me_by_cookie(app, &cookie).await,
        401,
        "{label}: the browser's session ended"
    );
}

/// `GET /users/me` as the browser: its status.
async fn me_by_cookie(app: &TestApp, cookie: &str) -> u16 {
    app.client
        .get(app.url("/users/me"))
        .header("cookie", format!("fastapiusersauth={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Authlib signs people in through the provider as a confidential client with
/// `client_secret_basic` (RS256, the default), a public client (`none` and PKCE, EdDSA)
/// and one with `client_secret_post` (ES256).
async fn a_python_relying_party_signs_in(backend: Backend) {
    let Some(python) = tokio::task::spawn_blocking(|| RELYING_PARTY.python())
        .await
        .unwrap()
    else {
        return;
    };
    let app = provider_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    for case in [
        Case {
            label: "confidential, client_secret_basic, RS256",
            auth_method: "client_secret_basic",
            alg: None,
            expected_alg: "RS256",
        },
        Case {
            label: "public, none, EdDSA",
            auth_method: "none",
            alg: Some("EdDSA"),
            expected_alg: "EdDSA",
        },
        Case {
            label: "confidential, client_secret_post, ES256",
            auth_method: "client_secret_post",
            alg: Some("ES256"),
            expected_alg: "ES256",
        },
    ] {
        sign_in_with(&app, &admin, &python, &case).await;
    }
}

both_backends!(a_python_relying_party_signs_in);
