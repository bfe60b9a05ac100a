//! The OAuth 2.1 / OpenID Connect provider (docs/oauth-provider.md), judged by an
//! independent relying party: the `openidconnect` crate configures itself from the
//! discovery document alone, checks the ID token (signature from the JWKS, `iss`,
//! `aud`, `nonce`, `at_hash`) and speaks PKCE. The browser's part (the cookie, the
//! consent form) is played by hand over HTTP; the hosted pages' scripts have their own
//! browser test.

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// An app whose PUBLIC_URL is its real address, so discovery and `iss` agree.
pub(crate) async fn provider_app(backend: Backend) -> TestApp {
    provider_app_with(backend, |_| {}).await
}

async fn provider_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> TestApp {
    let port = free_port();
    spawn_app_with(backend, move |env| {
        env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("PUBLIC_URL".into(), format!("http://127.0.0.1:{port}"));
        configure(env);
    })
    .await
}

pub(crate) async fn register_client(app: &TestApp, admin: &str, body: Value) -> Value {
    let r = app.post_json("/oauth/clients", &body, Some(admin)).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{body}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

/// Signs in on the browser's side: the `fastapiusersauth` cookie's value.
pub(crate) async fn browser_cookie(app: &TestApp, email: &str) -> String {
    browser_cookie_with(app, email, PASSWORD).await
}

/// A GET as the browser: with the cookie, no redirect followed.
pub(crate) async fn browse(app: &TestApp, url: &str, cookie: Option<&str>) -> reqwest::Response {
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        app.url(url)
    };
    let mut req = app.client.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("fastapiusersauth={c}"));
    }
    req.send().await.unwrap()
}

pub(crate) fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {}", r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The hidden input `name` of a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Answers the consent page the browser was sent to.
pub(crate) async fn decide(
    app: &TestApp,
    consent_url: &str,
    cookie: &str,
    decision: &str,
) -> reqwest::Response {
    let page = browse(app, consent_url, Some(cookie)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/oauth/consent\">"),
        "{html}"
    );
    assert!(html.contains("value=\"allow\"") && html.contains("value=\"deny\""));
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf"));
    app.client
        .post(app.url("/oauth/consent"))
        .header("cookie", format!("fastapiusersauth={cookie}"))
        .header("origin", &app.address)
        .form(&[
            ("request", request.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap()
}

fn claims_of(jwt: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let raw = jwt.split('.').nth(i).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(raw)
                .unwrap(),
        )
        .unwrap()
    };
    (part(0), part(1))
}

async fn token_form(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app.client.post(app.url("/oauth/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

async fn oauth_error(r: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert!(body.get("detail").is_none());
    body
}

async fn userinfo(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/oauth/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, client: (&str, &str), token: &str) -> Value {
    let r = app
        .client
        .post(app.url("/oauth/introspect"))
        .basic_auth(client.0, Some(client.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The whole authorization code flow with a strict relying party: sign-in page, consent,
/// code, ID token checked by the library, PKCE; then what the tokens open and how they end.
async fn a_strict_relying_party_signs_in(backend: Backend) {
    let app = provider_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let registered = register_client(
        &app,
        &admin,
        json!({
            "client_name": "Invoices",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid email offline_access",
        }),
    )
    .await;
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(registered["client_secret_expires_at"], 0);
    assert_eq!(registered["skip_consent"], false);

    // the relying party knows only the issuer
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.address.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // not signed in: the hosted sign-in page, which comes back to a marker of this request
    let r = browse(&app, auth_url.as_str(), None).await;
    assert_eq!(r.status(), 302);
    let to_login = location(&r);
    assert!(
        to_login.starts_with(&format!("{}/login?return_to=", app.address)),
        "{to_login}"
    );
    let return_to = query_of(&to_login)["return_to"].clone();
    assert!(
        return_to.starts_with("/oauth/authorize?login_request="),
        "{return_to}"
    );
    let login_page = browse(&app, &to_login, None).await;
    assert_eq!(login_page.status(), 200);
    let html = login_page.text().await.unwrap();
    assert!(
        html.contains("data-return-to=\"/oauth/authorize?login_request="),
        "{html}"
    );
    assert!(html.contains("id=\"to-signup\"") && html.contains("id=\"to-forgot\""));

    let email = unique_email();
    let user = app.create_user(&email).await;
    let cookie = browser_cookie(&app, &email).await;
    let r = browse(&app, &return_to, Some(&cookie)).await;
    assert_eq!(r.status(), 302);
    let consent_url = location(&r);
    assert!(
        consent_url.starts_with(&format!("{}/oauth/consent?request=", app.address)),
        "{consent_url}"
    );

    // a form posted from elsewhere is refused
    let page = browse(&app, &consent_url, Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Invoices") && page.contains("127.0.0.1"),
        "{page}"
    );
    let forged = app
        .client
        .post(app.url("/oauth/consent"))
        .header("cookie", format!("fastapiusersauth={cookie}"))
        .header("origin", "https://evil.example")
        .form(&[
            ("request", hidden(&page, "request")),
            ("csrf", hidden(&page, "csrf")),
            ("decision", "allow".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let wrong_csrf = app
        .client
        .post(app.url("/oauth/consent"))
        .header("cookie", format!("fastapiusersauth={cookie}"))
        .header("origin", &app.address)
        .form(&[
            ("request", hidden(&page, "request")),
            ("csrf", "nope".into()),
            ("decision", "allow".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_csrf.status(), 403);

    let r = decide(&app, &consent_url, &cookie, "allow").await;
    assert_eq!(r.status(), 302);
    let back = location(&r);
    assert!(back.starts_with(REDIRECT), "{back}");
    let q = query_of(&back);
    assert_eq!(q["state"], *state.secret());
    assert_eq!(q["iss"], app.address, "RFC 9207");
    // the request id was single use
    assert_eq!(decide_again(&app, &consent_url, &cookie).await, 400);

    let tokens = rp
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token with openid");
    let verifier = rp.id_token_verifier();
    let id_claims = id_token
        .claims(&verifier, &nonce)
        .expect("the ID token checks out");
    assert_eq!(id_claims.subject().as_str(), user["id"].as_str().unwrap());
    assert_eq!(id_claims.email().map(|e| e.as_str()), Some(email.as_str()));
    let expected = id_claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected);
    let access = tokens.access_token().secret().clone();
    let refresh = tokens
        .refresh_token()
        .expect("offline_access")
        .secret()
        .clone();

    // RFC 9068 access tokens; the grant is its own session
    let (header, at) = claims_of(&access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(at["client_id"], client_id);
    assert_eq!(at["aud"], client_id);
    assert_eq!(at["sub"], user["id"]);
    assert_eq!(at["scope"], "openid email offline_access");
    assert_eq!(at["amr"], json!(["pwd"]));
    assert_eq!(at["acr"], "1");
    let (_, idc) = claims_of(&id_token.to_string());
    assert_eq!(idc["sid"], at["sid"]);
    assert!(idc["auth_time"].as_i64().unwrap() <= idc["iat"].as_i64().unwrap());
    let me_token = app.token(&email, PASSWORD).await;
    let devices: Value = app
        .get("/auth/sessions", Some(&me_token))
        .await
        .json()
        .await
        .unwrap();
    let grant_session = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["method"] == format!("oauth:{client_id}"))
        .expect("the grant in the devices list")
        .clone();
    assert_eq!(grant_session["id"], at["sid"]);

    // not a token of the service's own routes
    assert_eq!(app.me(&access).await.status(), 401);
    let r = userinfo(&app, &access).await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(
        info,
        json!({"sub": user["id"], "email": email, "email_verified": false})
    );

    // introspection of both tokens
    let i = introspect(&app, (&client_id, &secret), &access).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["username"], email.as_str());
    assert_eq!(i["token_type"], "access_token");
    let i = introspect(&app, (&client_id, &secret), &refresh).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["token_type"], "refresh_token");
    let i = introspect(&app, (&client_id, &secret), "not-a-token").await;
    assert_eq!(i, json!({"active": false}));
    // one of the service's own tokens
    let i = introspect(&app, (&client_id, &secret), &me_token).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["sub"], user["id"]);

    // a refresh rotates; it may narrow the scope, never widen it
    let r = token_form(
        &app,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    assert_eq!(rotated["scope"], "openid");
    assert!(rotated["id_token"].is_string());
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    let r = token_form(
        &app,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
            ("scope", "openid profile"),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_scope").await;
    // a refused refresh spends nothing: past the reuse interval, the token still works
    app.clock.advance(Duration::from_secs(11));
    // the two kinds of refresh token never cross
    let r = app.refresh(&refresh2).await;
    assert_eq!(r.status(), 400);
    let first_party = app.login_offline(&email, PASSWORD).await;
    let r = token_form(
        &app,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                first_party["refresh_token"].as_str().unwrap(),
            ),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    // another client's refresh token
    let other = register_client(&app, &admin, json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"]})).await;
    let r = token_form(
        &app,
        Some((
            other["client_id"].as_str().unwrap(),
            other["client_secret"].as_str().unwrap(),
        )),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;

    // "sign out everywhere else" leaves the apps the person let in
    let r = app
        .client
        .delete(app.url("/auth/sessions"))
        .bearer_auth(&me_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = token_form(
        &app,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "the grant survives DELETE /auth/sessions");
    let rotated: Value = r.json().await.unwrap();
    let access3 = rotated["access_token"].as_str().unwrap().to_owned();
    let refresh3 = rotated["refresh_token"].as_str().unwrap().to_owned();

    // revocation: an access token stops at once, a refresh token ends its grant
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("token", access3.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(userinfo(&app, &access3).await.status(), 401);
    assert_eq!(
        introspect(&app, (&client_id, &secret), &access3).await,
        json!({"active": false})
    );
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("token", "unknown")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "unknown tokens get the same answer");

    // the person's view: the grant, then its removal
    let me_token = app.token(&email, PASSWORD).await;
    let grants: Value = app
        .get("/users/me/grants", Some(&me_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(grants.as_array().unwrap().len(), 1, "{grants}");
    assert_eq!(grants[0]["client_id"], client_id);
    assert_eq!(grants[0]["client_name"], "Invoices");
    assert_eq!(
        grants[0]["scopes"],
        json!(["openid", "email", "offline_access"])
    );
    let r = app
        .delete(&format!("/users/me/grants/{client_id}"), &me_token)
        .await;
    assert_eq!(r.status(), 204);
    let r = token_form(
        &app,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh3),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(
        app.delete(&format!("/users/me/grants/{client_id}"), &me_token)
            .await
            .status(),
        404
    );
    // the consent was forgotten: the next authorization asks again (the browser signs in
    // again: "sign out everywhere else" above ended its session)
    let cookie = browser_cookie(&app, &email).await;
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let r = browse(&app, url.as_str(), Some(&cookie)).await;
    assert!(location(&r).contains("/oauth/consent?request="));

    let types = app.event_types(&admin, user["id"].as_str().unwrap()).await;
    for t in ["oauth.consent_granted", "oauth.grant_revoked"] {
        assert!(types.iter().any(|e| e == t), "{t} in {types:?}");
    }
}

async fn decide_again(app: &TestApp, consent_url: &str, cookie: &str) -> u16 {
    browse(app, consent_url, Some(cookie))
        .await
        .status()
        .as_u16()
}

/// A code comes once: the second time it is `invalid_grant`, and what the first time
/// gave is ended (RFC 6749 §4.1.2), with an event.
async fn a_replayed_code_ends_its_grant(backend: Backend) {
    let app = provider_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let client = register_client(
        &app,
        &admin,
        json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"], "skip_consent": true}),
    )
    .await;
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let email = unique_email();
    let user = app.create_user(&email).await;
    let cookie = browser_cookie(&app, &email).await;
    let verifier = "v".repeat(50);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=openid%20offline_access&state=s1&code_challenge={challenge}&code_challenge_method=S256",
        urlencoding(REDIRECT)
    );
    // skip_consent: straight back with a code
    let r = browse(&app, &authorize, Some(&cookie)).await;
    let q = query_of(&location(&r));
    let code = q["code"].clone();
    // a wrong verifier does not spend it
    let r = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &"w".repeat(50)),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    let first = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 900);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await.status(), 200);
    // no email scope: no email claims
    let info: Value = userinfo(&app, access).await.json().await.unwrap();
    assert_eq!(info, json!({"sub": user["id"]}));

    let again = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    oauth_error(again, 400, "invalid_grant").await;
    let r = userinfo(&app, access).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let r = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    let types = app.event_types(&admin, user["id"].as_str().unwrap()).await;
    assert!(types.iter().any(|t| t == "oauth.code_reused"), "{types:?}");

    // a password change ends the grants too
    let r = browse(&app, &authorize, Some(&cookie)).await;
    let code = query_of(&location(&r))["code"].clone();
    let tokens: Value = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let me = app.token(&email, PASSWORD).await;
    let r = app
        .patch(
            "/users/me",
            &me,
            &json!({"password": "another long passphrase 42"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(
        userinfo(&app, tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );

    // a code expires after OAUTH_CODE_LIFETIME_SECONDS
    let cookie = browser_cookie_with(&app, &email, "another long passphrase 42").await;
    let r = browse(&app, &authorize, Some(&cookie)).await;
    let code = query_of(&location(&r))["code"].clone();
    app.clock.advance(Duration::from_secs(61));
    let r = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
}

async fn browser_cookie_with(app: &TestApp, email: &str, password: &str) -> String {
    let r = app
        .client
        .post(app.url("/auth/cookie/login"))
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    set.split(';')
        .next()
        .unwrap()
        .trim_start_matches("fastapiusersauth=")
        .to_owned()
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Registration's checks and who may register; the authorization request's errors, which
/// never redirect to an unregistered URI; client credentials; client authentication.
async fn clients_and_errors(backend: Backend) {
    let app = provider_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let (_, plain) = app.user_with_token().await;
    let body = json!({"redirect_uris": [REDIRECT]});
    let r = app.post_json("/oauth/clients", &body, None).await;
    oauth_error(r, 401, "invalid_token").await;
    let r = app.post_json("/oauth/clients", &body, Some(&plain)).await;
    oauth_error(r, 403, "insufficient_scope").await;
    // a superuser's API key is not accepted on the provider's routes
    let r = app
        .post_json(
            "/users/me/api-keys",
            &json!({"name": "ops", "password": PASSWORD}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.post_json("/oauth/clients", &body, Some(&key)).await;
    oauth_error(r, 401, "invalid_token").await;
    for (bad, error) in [
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#x"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": ["/cb"]}), "invalid_redirect_uri"),
        (
            json!({"grant_types": ["authorization_code"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "scope": "openid admin:everything"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "https://app.example/cb"}),
            "invalid_client_metadata",
        ),
    ] {
        let r = app.post_json("/oauth/clients", &bad, Some(&admin)).await;
        oauth_error(r, 400, error).await;
    }
    // a native app's private-use scheme and a loopback redirect on any port
    let native = register_client(
        &app,
        &admin,
        json!({"redirect_uris": ["com.example.app:/cb", "http://127.0.0.1/cb"], "token_endpoint_auth_method": "none", "id_token_signed_response_alg": "EdDSA"}),
    )
    .await;
    assert!(native.get("client_secret").is_none());
    let nid = native["client_id"].as_str().unwrap();
    let list: Value = app
        .get("/oauth/clients", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.get("client_secret").is_none()));
    assert_eq!(
        app.get("/oauth/clients/nope", Some(&admin)).await.status(),
        404
    );

    // errors that cannot be trusted to a redirect are a page
    let r = browse(
        &app,
        "/oauth/authorize?response_type=code&client_id=nope",
        None,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let r = browse(
        &app,
        &format!(
            "/oauth/authorize?response_type=code&client_id={nid}&redirect_uri={}",
            urlencoding("https://evil.example/cb")
        ),
        None,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // the rest go back with error, state and iss
    let loopback = urlencoding("http://127.0.0.1:53111/cb");
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    for (query, error) in [
        (format!("response_type=code&client_id={nid}&redirect_uri={loopback}&state=x"), "invalid_request"),
        (format!("response_type=code&client_id={nid}&redirect_uri={loopback}&state=x&code_challenge={challenge}&code_challenge_method=plain"), "invalid_request"),
        (format!("response_type=token&client_id={nid}&redirect_uri={loopback}&state=x&code_challenge={challenge}&code_challenge_method=S256"), "unsupported_response_type"),
        (format!("response_type=code&client_id={nid}&redirect_uri={loopback}&state=x&code_challenge={challenge}&code_challenge_method=S256&scope=openid%20invoices:write"), "invalid_scope"),
        (format!("response_type=code&client_id={nid}&redirect_uri={loopback}&state=x&code_challenge={challenge}&code_challenge_method=S256&prompt=none"), "login_required"),
        (format!("response_type=code&client_id={nid}&redirect_uri={loopback}&state=x&state=y&code_challenge={challenge}&code_challenge_method=S256"), "invalid_request"),
        (format!("response_type=code&client_id={nid}&redirect_uri={loopback}&state=x&code_challenge={challenge}&code_challenge_method=S256&resource=fastapi-users:auth"), "invalid_target"),
    ] {
        let r = browse(&app, &format!("/oauth/authorize?{query}"), None).await;
        assert_eq!(r.status(), 302, "{query}");
        let to = location(&r);
        assert!(to.starts_with("http://127.0.0.1:53111/cb?"), "{to}");
        let q = query_of(&to);
        assert_eq!(q["error"], error, "{query}");
        assert!(q.contains_key("error_description"));
        assert_eq!(q["iss"], app.address);
        assert!(q["state"] == "x" || error == "invalid_request");
    }
    // deny: access_denied
    let email = unique_email();
    app.create_user(&email).await;
    let cookie = browser_cookie(&app, &email).await;
    let r = browse(&app, &format!("/oauth/authorize?response_type=code&client_id={nid}&redirect_uri={loopback}&state=x&code_challenge={challenge}&code_challenge_method=S256&scope=openid"), Some(&cookie)).await;
    let consent = location(&r);
    let r = decide(&app, &consent, &cookie, "deny").await;
    assert_eq!(query_of(&location(&r))["error"], "access_denied");
    // prompt=none with no consent yet: consent_required
    let r = browse(&app, &format!("/oauth/authorize?response_type=code&client_id={nid}&redirect_uri={loopback}&state=x&code_challenge={challenge}&code_challenge_method=S256&scope=openid&prompt=none"), Some(&cookie)).await;
    assert_eq!(query_of(&location(&r))["error"], "consent_required");

    // a public client's code with EdDSA ID tokens, verified with the JWKS alone
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let r = browse(&app, &format!("/oauth/authorize?response_type=code&client_id={nid}&redirect_uri={loopback}&state=x&code_challenge={challenge}&code_challenge_method=S256&scope=openid%20email&nonce=n-1"), Some(&cookie)).await;
    let r = decide(&app, &location(&r), &cookie, "allow").await;
    let code = query_of(&location(&r))["code"].clone();
    let r = token_form(
        &app,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", nid),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:53111/cb"),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh_token grant"
    );
    let jwks: JwkSet = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&[nid]);
    v.set_issuer(&[&app.address]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], email.as_str());
    let access = tokens["access_token"].as_str().unwrap();
    let (ah, _) = claims_of(access);
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(ah["kid"].as_str().unwrap()).unwrap())
        .unwrap();
    assert!(
        jsonwebtoken::decode::<Value>(access, &key, &v).is_ok(),
        "the access token verifies offline too"
    );

    // client credentials: a confidential client registered for it
    let service = register_client(&app, &admin, json!({"grant_types": ["client_credentials"], "scope": "openid", "token_endpoint_auth_method": "client_secret_post"})).await;
    let (sid, ssecret) = (
        service["client_id"].as_str().unwrap(),
        service["client_secret"].as_str().unwrap(),
    );
    let r = token_form(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sid),
            ("client_secret", ssecret),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let cc: Value = r.json().await.unwrap();
    assert!(cc.get("refresh_token").is_none() && cc.get("id_token").is_none());
    let (_, claims) = claims_of(cc["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], sid);
    assert!(claims.get("sid").is_none());
    let r = token_form(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sid),
            ("client_secret", ssecret),
            ("scope", "openid"),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_scope").await;
    // a client id no client can have (a NUL byte, which PostgreSQL refuses in text; too
    // long) is invalid_client without a read, and fails no other request of its batch:
    // good and bad requests at once each get their own answer
    let long = "c".repeat(300);
    let mut calls = Vec::new();
    let app_ref = &app;
    for i in 0..12 {
        let bad_id = if i % 4 == 1 { long.as_str() } else { "x\u{0}y" };
        let (id, secret) = if i % 2 == 0 {
            (sid, ssecret)
        } else {
            (bad_id, "s")
        };
        let form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        calls.push(async move { (i % 2 == 0, token_form(app_ref, None, &form).await) });
    }
    for (good, r) in futures_util::future::join_all(calls).await {
        if good {
            assert_eq!(r.status(), 200);
        } else {
            oauth_error(r, 401, "invalid_client").await;
        }
    }
    // the method as registered: Basic for a client_secret_post client is refused
    let r = token_form(
        &app,
        Some((sid, ssecret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let r = oauth_error_keep(r, 401).await;
    assert_eq!(r.0, "Basic realm=\"oauth\"");
    let r = token_form(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sid),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    oauth_error(r, 401, "invalid_client").await;
    let r = token_form(
        &app,
        None,
        &[("grant_type", "client_credentials"), ("client_id", nid)],
    )
    .await;
    oauth_error(r, 400, "unauthorized_client").await;
    let r = token_form(
        &app,
        None,
        &[("grant_type", "password"), ("client_id", nid)],
    )
    .await;
    oauth_error(r, 400, "unsupported_grant_type").await;
    let r = app.post_raw("/oauth/token", "application/json", "{}").await;
    oauth_error(r, 400, "invalid_request").await;

    // a new secret: the old one stops at once
    let r = app
        .client
        .post(app.url(&format!("/oauth/clients/{sid}/secret")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    let r = token_form(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sid),
            ("client_secret", ssecret),
        ],
    )
    .await;
    oauth_error(r, 401, "invalid_client").await;
    let r = token_form(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sid),
            ("client_secret", new_secret),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let cc: Value = r.json().await.unwrap();
    let i = introspect_post(
        &app,
        (sid, new_secret),
        cc["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(i["active"], true);
    assert_eq!(i["sub"], sid);
    assert!(i.get("username").is_none());
    // deleting the client ends what it holds
    let r = app.delete(&format!("/oauth/clients/{nid}"), &admin).await;
    assert_eq!(r.status(), 204);
    assert_eq!(userinfo(&app, access).await.status(), 401);
    assert_eq!(
        app.delete(&format!("/oauth/clients/{nid}"), &admin)
            .await
            .status(),
        404
    );

    // discovery, both documents
    let d: Value = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    let d2: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d, d2);
    assert_eq!(d["issuer"], app.address);
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
}

async fn oauth_error_keep(r: reqwest::Response, status: u16) -> (String, Value) {
    assert_eq!(r.status().as_u16(), status);
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (www, r.json().await.unwrap())
}

async fn introspect_post(app: &TestApp, client: (&str, &str), token: &str) -> Value {
    let r = app
        .client
        .post(app.url("/oauth/introspect"))
        .form(&[
            ("token", token),
            ("client_id", client.0),
            ("client_secret", client.1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// `prompt=login` and `max_age` send a signed-in person to sign in again, and a sign-in
/// made for the request is not asked for twice; `auth_time` is that sign-in's.
async fn prompt_login_and_max_age(backend: Backend) {
    let app = provider_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let client = register_client(
        &app,
        &admin,
        json!({"redirect_uris": [REDIRECT], "skip_consent": true}),
    )
    .await;
    let id = client["client_id"].as_str().unwrap();
    let email = unique_email();
    app.create_user(&email).await;
    let cookie = browser_cookie(&app, &email).await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let base = format!("/oauth/authorize?response_type=code&client_id={id}&code_challenge={challenge}&code_challenge_method=S256&scope=openid");
    // signed in and no prompt: a code at once
    let r = browse(&app, &base, Some(&cookie)).await;
    assert!(query_of(&location(&r)).contains_key("code"));
    for extra in ["&prompt=login", "&max_age=0"] {
        app.clock.advance(Duration::from_secs(2));
        let r = browse(&app, &format!("{base}{extra}"), Some(&cookie)).await;
        let to = location(&r);
        assert!(to.contains("/login?return_to="), "{extra}: {to}");
        let return_to = query_of(&to)["return_to"].clone();
        // the old session does not satisfy it
        let r = browse(&app, &return_to, Some(&cookie)).await;
        assert!(location(&r).contains("/login?return_to="), "{extra}");
        // a sign-in made after the request does, once
        let fresh = browser_cookie(&app, &email).await;
        let r = browse(&app, &return_to, Some(&fresh)).await;
        let back = location(&r);
        assert!(
            back.starts_with(REDIRECT) && back.contains("code="),
            "{extra}: {back}"
        );
    }
}

/// What was let in while the address was unproven goes when the address is proven by
/// mail (docs/security.md): the consent, the grant, and a code not yet redeemed; a code
/// is also worthless once the sign-in it was issued in has ended.
async fn a_proof_by_mail_ends_what_was_let_in_unverified(backend: Backend) {
    let app = provider_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let client = register_client(
        &app,
        &admin,
        json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"], "scope": "openid offline_access"}),
    )
    .await;
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let email = unique_email();
    let user = app.create_user(&email).await;
    let cookie = browser_cookie(&app, &email).await;
    let verifier = "v".repeat(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={id}&scope=openid%20offline_access&code_challenge={challenge}&code_challenge_method=S256"
    );
    let r = browse(&app, &authorize, Some(&cookie)).await;
    let r = decide(&app, &location(&r), &cookie, "allow").await;
    let code = query_of(&location(&r))["code"].clone();
    let tokens: Value = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    // remembered now: the next code comes without a page; it is not redeemed yet
    let r = browse(&app, &authorize, Some(&cookie)).await;
    let pending = query_of(&location(&r))["code"].clone();

    let uid = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    let now = users_domain::Clock::now(&*app.clock);
    let token = app
        .core
        .tokens
        .issue_verify(uid, &email, now.plus_secs(600))
        .unwrap();
    let r = app
        .post_json("/auth/verify", &json!({"token": token}), None)
        .await;
    assert_eq!(r.status(), 200);

    let r = token_form(
        &app,
        Some((id, secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    let r = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &pending),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    let me = app.token(&email, PASSWORD).await;
    let grants: Value = app
        .get("/users/me/grants", Some(&me))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(grants, json!([]));

    // a code issued in a session that has since ended is worthless
    let cookie = browser_cookie(&app, &email).await;
    let r = browse(&app, &authorize, Some(&cookie)).await;
    let r = decide(&app, &location(&r), &cookie, "allow").await;
    let code = query_of(&location(&r))["code"].clone();
    let r = app
        .client
        .post(app.url("/auth/cookie/logout"))
        .header("cookie", format!("fastapiusersauth={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = token_form(
        &app,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
}

/// `OAUTH_OPEN_REGISTRATION`: anyone registers a public client, never a confidential one
/// or one that skips consent; its authorization errors are a page, never a redirect to
/// URIs nobody vouched for.
async fn open_registration(backend: Backend) {
    let app = provider_app_with(backend, |env| {
        env.insert("OAUTH_OPEN_REGISTRATION".into(), "true".into());
    })
    .await;
    let r = app
        .post_json(
            "/oauth/clients",
            &json!({"redirect_uris": ["https://evil.example/cb"]}),
            None,
        )
        .await;
    oauth_error(r, 400, "invalid_client_metadata").await;
    let r = app.post_json("/oauth/clients", &json!({"redirect_uris": ["https://evil.example/cb"], "token_endpoint_auth_method": "none", "skip_consent": true}), None).await;
    oauth_error(r, 400, "invalid_client_metadata").await;
    let r = app.post_json("/oauth/clients", &json!({"redirect_uris": ["https://evil.example/cb"], "token_endpoint_auth_method": "none"}), None).await;
    assert_eq!(r.status(), 201);
    let client: Value = r.json().await.unwrap();
    let id = client["client_id"].as_str().unwrap();
    assert!(client.get("client_secret").is_none());
    assert_eq!(client["registered_openly"], true);
    for query in ["", "&response_type=code", "&response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&prompt=none"] {
        let r = browse(&app, &format!("/oauth/authorize?client_id={id}{query}"), None).await;
        assert_eq!(r.status(), 400, "{query}");
        assert!(r.headers().get("location").is_none(), "{query}");
    }
}

/// A first-party client (consent skipped) and a person signed in to the hosted pages,
/// for tests of a code's redemption.
struct CodeSetup {
    id: String,
    secret: String,
    user: Value,
    cookie: String,
    verifier: String,
}

impl CodeSetup {
    async fn new(app: &TestApp, admin: &str) -> CodeSetup {
        let client = register_client(
            app,
            admin,
            json!({"redirect_uris": [REDIRECT], "skip_consent": true}),
        )
        .await;
        let email = unique_email();
        let user = app.create_user(&email).await;
        CodeSetup {
            id: client["client_id"].as_str().unwrap().to_owned(),
            secret: client["client_secret"].as_str().unwrap().to_owned(),
            user,
            cookie: browser_cookie(app, &email).await,
            verifier: "r".repeat(43),
        }
    }

    /// A new code, from `/oauth/authorize` with the person's cookie.
    async fn code(&self, app: &TestApp) -> String {
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            <sha2::Sha256 as sha2::Digest>::digest(self.verifier.as_bytes()),
        );
        let id = &self.id;
        let r = browse(app, &format!("/oauth/authorize?response_type=code&client_id={id}&scope=openid&code_challenge={challenge}&code_challenge_method=S256"), Some(&self.cookie)).await;
        query_of(&location(&r))["code"].clone()
    }
}

/// Two replicas redeem one code at the same instant: exactly one gets tokens.
async fn replicas_redeem_a_code_once(backend: Backend) {
    let app = provider_app(backend).await;
    let replica = spawn_app_on(backend, app.database.clone(), |_| {}).await;
    let (_, admin) = app.superuser_with_token().await;
    let setup = CodeSetup::new(&app, &admin).await;
    let (id, secret, verifier) = (setup.id.as_str(), setup.secret.as_str(), &setup.verifier);
    for _ in 0..5 {
        let code = setup.code(&app).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let (a, b) = tokio::join!(
            token_form(&app, Some((id, secret)), &form),
            token_form(&replica, Some((id, secret)), &form)
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "one redemption wins");
    }
}

/// Authorizations and exchanges that arrive together are stored and redeemed in batches
/// (docs/oauth-provider.md#how-a-code-is-issued, #how-a-code-is-redeemed), each as it
/// would be alone: twelve codes issued at once, then redeemed at once, four of them twice: every code once gives tokens that work, and the
/// second of a pair is refused and ends what the first one gave, with its event.
async fn codes_redeemed_together_stay_single_use(backend: Backend) {
    let app = provider_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let setup = CodeSetup::new(&app, &admin).await;
    let (id, secret, verifier, user) = (
        setup.id.as_str(),
        setup.secret.as_str(),
        &setup.verifier,
        &setup.user,
    );
    // authorized together too: their codes are stored in batches
    // (docs/oauth-provider.md#how-a-code-is-issued)
    let codes: Vec<String> =
        futures_util::future::join_all((0..12).map(|_| setup.code(&app))).await;
    let distinct: std::collections::HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 12, "{codes:?}");
    // codes 0..4 twice, interleaved with the others
    let sent: Vec<usize> = (0..12).chain(0..4).collect();
    let calls = sent.iter().map(|&i| {
        let (app, code, verifier) = (&app, codes[i].clone(), verifier.clone());
        async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier.as_str()),
            ];
            let r = token_form(app, Some((id, secret)), &form).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (i, status, body)
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    for code in 0..12 {
        let of: Vec<&(usize, u16, Value)> = answers.iter().filter(|a| a.0 == code).collect();
        let mut statuses: Vec<u16> = of.iter().map(|a| a.1).collect();
        statuses.sort();
        let twice = code < 4;
        let expected: &[u16] = if twice { &[200, 400] } else { &[200] };
        assert_eq!(statuses, expected, "code {code}: {of:?}");
        let granted = of.iter().find(|a| a.1 == 200).unwrap();
        let access = granted.2["access_token"].as_str().unwrap();
        let info = userinfo(&app, access).await.status().as_u16();
        // the replay of a pair ended the grant its first exchange started
        assert_eq!(info, if twice { 401 } else { 200 }, "code {code}");
        if twice {
            let refused = of.iter().find(|a| a.1 == 400).unwrap();
            assert_eq!(refused.2["error"], "invalid_grant", "{refused:?}");
        }
    }
    let types = app.event_types(&admin, user["id"].as_str().unwrap()).await;
    let reused = types.iter().filter(|t| *t == "oauth.code_reused").count();
    assert_eq!(reused, 4, "{types:?}");
}

/// §15 in the provider: a permission is a scope held only when the person's (or, for
/// client credentials, the client's) roles grant it, dropped otherwise and the answer
/// says what was issued; scope `roles` adds the claim; a change shows from the next
/// refresh; an API key is exchanged (RFC 8693) for an access token verified offline.
async fn permissions_are_scopes(backend: Backend) {
    let app = provider_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let r = app.post_json("/roles", &json!({"name": "billing", "description": "Invoices", "permissions": ["invoices:read", "invoices:write"]}), Some(&admin)).await;
    assert_eq!(r.status(), 201);
    let r = app
        .post_json(
            "/oauth/clients",
            &json!({"redirect_uris": [REDIRECT], "scope": "openid payroll:read"}),
            Some(&admin),
        )
        .await;
    oauth_error(r, 400, "invalid_client_metadata").await;
    let client = register_client(
        &app,
        &admin,
        json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token", "client_credentials"], "scope": "openid roles offline_access invoices:read invoices:write", "skip_consent": true}),
    )
    .await;
    let (id, secret) = (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    );
    let email = unique_email();
    let user = app.create_user(&email).await;
    let cookie = browser_cookie(&app, &email).await;
    let verifier = "p".repeat(50);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let r = browse(&app, &format!("/oauth/authorize?response_type=code&client_id={id}&scope=openid%20roles%20offline_access%20invoices:read&code_challenge={challenge}&code_challenge_method=S256"), Some(&cookie)).await;
    let code = query_of(&location(&r))["code"].clone();
    let r = token_form(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    // no role yet: the permission is dropped, and the answer says so
    assert_eq!(tokens["scope"], "openid roles offline_access");
    let (_, at) = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(at["roles"], json!([]));
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // a role given: the next refresh holds the permission and names the role
    let uid = user["id"].as_str().unwrap();
    let r = app
        .client
        .put(app.url(&format!("/users/{uid}/roles")))
        .bearer_auth(&admin)
        .json(&json!({"roles": ["billing"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = token_form(
        &app,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["scope"], "openid roles offline_access invoices:read");
    let (_, at) = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(at["roles"], json!(["billing"]));
    let (_, idt) = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(idt["roles"], json!(["billing"]));
    let info: Value = userinfo(&app, tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["roles"], json!(["billing"]));
    // taken away: gone from the next refresh
    let r = app
        .client
        .put(app.url(&format!("/users/{uid}/roles")))
        .bearer_auth(&admin)
        .json(&json!({"roles": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = token_form(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["scope"], "openid roles offline_access");

    // client credentials: what the client's roles grant
    let r: Value = token_form(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "invoices:read"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["scope"], "", "no role: nothing of what was asked is left");
    let r = app
        .client
        .put(app.url(&format!("/oauth/clients/{id}/roles")))
        .bearer_auth(&admin)
        .json(&json!({"roles": ["nope"]}))
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request").await;
    let r = app
        .client
        .put(app.url(&format!("/oauth/clients/{id}/roles")))
        .bearer_auth(&admin)
        .json(&json!({"roles": ["billing"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let roles: Value = r.json().await.unwrap();
    assert_eq!(
        roles,
        json!({"roles": ["billing"], "permissions": ["invoices:read", "invoices:write"]})
    );
    let r: Value = token_form(
        &app,
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "invoices:read"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["scope"], "invoices:read");
    let r = app
        .client
        .get(app.url("/oauth/clients/nope/roles"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    oauth_error(r, 404, "invalid_client_id").await;

    // an API key for an access token (RFC 8693), verified with the JWKS alone
    let r = app
        .client
        .put(app.url(&format!("/users/{uid}/roles")))
        .bearer_auth(&admin)
        .json(&json!({"roles": ["billing"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me = app.token(&email, PASSWORD).await;
    let r = app
        .post_json(
            "/users/me/api-keys",
            &json!({"name": "ci", "permissions": ["invoices:read"], "password": PASSWORD}),
            Some(&me),
        )
        .await;
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let exchange = |scope: Option<&'static str>, subject: String| {
        let mut form = vec![
            (
                "grant_type".to_owned(),
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
            ),
            ("subject_token".to_owned(), subject),
            (
                "subject_token_type".to_owned(),
                "urn:users:params:oauth:token-type:api-key".to_owned(),
            ),
            ("resource".to_owned(), "https://invoices.example".to_owned()),
        ];
        if let Some(s) = scope {
            form.push(("scope".to_owned(), s.to_owned()));
        }
        app.client.post(app.url("/oauth/token")).form(&form).send()
    };
    let r = exchange(None, key.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let issued: Value = r.json().await.unwrap();
    assert_eq!(
        issued["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(issued["scope"], "invoices:read");
    let access = issued["access_token"].as_str().unwrap();
    let jwks: JwkSet = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let key_jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&["https://invoices.example"]);
    v.set_issuer(&[&app.address]);
    let claims = jsonwebtoken::decode::<Value>(
        access,
        &jsonwebtoken::DecodingKey::from_jwk(key_jwk).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(
        app.me(access).await.status(),
        401,
        "not a token of the service's own routes"
    );
    let keys: Value = app
        .get("/users/me/api-keys", Some(&me))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        keys[0]["last_used_at"].is_string(),
        "the exchange records the key's use: {keys}"
    );
    let r = exchange(Some("invoices:write"), key.clone()).await.unwrap();
    oauth_error(r, 400, "invalid_scope").await;
    let mut bad = key.clone();
    bad.pop();
    bad.push(if key.ends_with('0') { '1' } else { '0' });
    let r = exchange(None, bad).await.unwrap();
    oauth_error(r, 400, "invalid_request").await;
}

/// Consent given through one replica holds on the other: the second authorization,
/// served by the other process, goes straight back with a code.
async fn consent_holds_across_replicas(backend: Backend) {
    let app = provider_app(backend).await;
    let replica = spawn_app_on(backend, app.database.clone(), |_| {}).await;
    let (_, admin) = app.superuser_with_token().await;
    let client = register_client(&app, &admin, json!({"redirect_uris": [REDIRECT]})).await;
    let id = client["client_id"].as_str().unwrap();
    let email = unique_email();
    app.create_user(&email).await;
    let cookie = browser_cookie(&app, &email).await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let path = format!("/oauth/authorize?response_type=code&client_id={id}&scope=openid&code_challenge={challenge}&code_challenge_method=S256");
    let r = browse(&app, &path, Some(&cookie)).await;
    let r = decide(&app, &location(&r), &cookie, "allow").await;
    assert!(query_of(&location(&r)).contains_key("code"));
    let r = browse(&replica, &path, Some(&cookie)).await;
    let back = location(&r);
    assert!(
        back.starts_with(REDIRECT) && query_of(&back).contains_key("code"),
        "{back}"
    );
}

crate::both_backends!(
    consent_holds_across_replicas,
    permissions_are_scopes,
    open_registration,
    a_proof_by_mail_ends_what_was_let_in_unverified,
    replicas_redeem_a_code_once,
    codes_redeemed_together_stay_single_use,
    a_strict_relying_party_signs_in,
    a_replayed_code_ends_its_grant,
    clients_and_errors,
    prompt_login_and_max_age,
);
