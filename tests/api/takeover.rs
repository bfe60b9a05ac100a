//! Who keeps what when an address is proven (docs/security.md): a provider that
//! proves the address of an account registered by someone else takes the account with
//! nothing the earlier registrant set up; a proof by mail removes what was set up while
//! the address was unproven. Also unlinking one identity by its subject, the notice
//! mails of security changes, and re-authentication for passkey changes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::authenticator::Authenticator;
use crate::both_backends;
use crate::github_provider::{GithubProvider, GithubUser};
use crate::helpers::*;
use crate::oidc_provider::{Identity, OidcProvider};
use crate::provider_flow::*;
use crate::smtp_sink::{ReceivedMail, SmtpSink};
use crate::totp;

const WAIT: Duration = Duration::from_secs(20);
const NEW_PASSWORD: &str = "the owner's own long passphrase";
/// What the notices are signed with (APP_NAME's default).
const PRODUCT: &str = "users";

/// One app with everything an account can gather: an OpenID provider `corp` that links
/// by verified email, GitHub (linking by email off: accounts there are linked by
/// associate), passkeys on `localhost`, and mail into a sink.
struct Stage {
    app: TestApp,
    /// The browser origin the passkeys are made on.
    origin: String,
    corp: OidcProvider,
    github: GithubProvider,
    sink: SmtpSink,
}

async fn stage(backend: Backend) -> Stage {
    let corp = OidcProvider::start().await;
    let github = GithubProvider::start().await;
    let sink = SmtpSink::start().await;
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let (public, smtp) = (origin.clone(), sink.url());
    let app = spawn_app_with(backend, |env| {
        env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("PUBLIC_URL".into(), public);
        env.insert("WEBAUTHN_RP_ID".into(), "localhost".into());
        env.insert("SMTP_URL".into(), smtp);
        configure_oidc(env, "corp", &corp);
        env.insert("OIDC_CORP_ASSOCIATE_BY_EMAIL".into(), "true".into());
        configure_github(env, &github);
    })
    .await;
    Stage {
        app,
        origin,
        corp,
        github,
        sink,
    }
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

async fn user_id(app: &TestApp, token: &str) -> String {
    let (status, me) = json_of(app.me(token).await).await;
    assert_eq!(status, 200, "{me}");
    me["id"].as_str().unwrap().to_owned()
}

async fn identities(app: &TestApp, token: &str) -> Value {
    let (status, list) = json_of(app.get("/users/me/identities", Some(token)).await).await;
    assert_eq!(status, 200, "{list}");
    list
}

/// (provider, subject) of each linked identity, as listed (newest first).
async fn linked(app: &TestApp, token: &str) -> Vec<(String, String)> {
    identities(app, token)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["provider"].as_str().unwrap().to_owned(),
                i["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// (type, data) of the user's events, oldest first.
async fn events(app: &TestApp, token: &str) -> Vec<(String, Value)> {
    app.events("/users/me/events", token)
        .await
        .into_iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["data"].clone()))
        .collect()
}

fn with_reason<'a>(events: &'a [(String, Value)], reason: &str) -> Vec<&'a (String, Value)> {
    events
        .iter()
        .filter(|(_, d)| d["reason"] == reason)
        .collect()
}

/// The app's now, in Unix seconds (its clock may have been moved forward).
fn now_secs(app: &TestApp) -> u64 {
    users_domain::Clock::now(&*app.clock).secs() as u64
}

/// `POST /auth/passkeys/register/options` with `body` (`{}`, or `{"password": …}`).
async fn passkey_options(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post_json("/auth/passkeys/register/options", body, Some(token))
        .await
}

/// Registers a passkey of `device` for the holder of `token`, re-authenticated by a
/// recent sign-in (no password): the passkey's JSON.
async fn add_passkey(app: &TestApp, token: &str, device: &mut Authenticator, name: &str) -> Value {
    let (status, opts) = json_of(passkey_options(app, token, &json!({})).await).await;
    assert_eq!(status, 200, "{opts}");
    let credential = device.register(&opts);
    let (status, passkey) = json_of(
        app.post_json(
            "/auth/passkeys/register",
            &json!({"challenge_id": opts["challenge_id"], "name": name, "credential": credential}),
            Some(token),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{passkey}");
    passkey
}

/// `POST /auth/passkeys/register` with `body` (`{challenge_id, name, credential,
/// password?}`).
async fn finish_registration(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post_json("/auth/passkeys/register", &body, Some(token))
        .await
}

/// A passwordless sign-in with `device`: the response.
async fn passkey_sign_in(app: &TestApp, device: &mut Authenticator) -> reqwest::Response {
    let (status, opts) = json_of(
        app.post_json("/auth/passkeys/login/options", &json!({}), None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{opts}");
    let credential = device.assert(&opts);
    app.post_json(
        "/auth/passkeys/login",
        &json!({"challenge_id": opts["challenge_id"], "credential": credential}),
        None,
    )
    .await
}

/// A passwordless sign-in with `device`, asking for a refresh token: the answer.
async fn passkey_sign_in_offline(app: &TestApp, device: &mut Authenticator) -> Value {
    let (status, opts) = json_of(
        app.post_json("/auth/passkeys/login/options", &json!({}), None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{opts}");
    let credential = device.assert(&opts);
    let (status, body) = json_of(
        app.post_json(
            "/auth/passkeys/login",
            &json!({"challenge_id": opts["challenge_id"], "credential": credential, "scope": "offline_access"}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `DELETE /auth/passkeys/{id}` with a JSON body (`{}`, or `{"password": …}`).
async fn remove_passkey(app: &TestApp, token: &str, id: &str, body: &Value) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/auth/passkeys/{id}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Turns TOTP on from the session of `token`, re-authenticated by `password` (the
/// account's own) or, without one, by the session's recent sign-in: (secret, recovery
/// codes, the confirming code).
async fn enable_totp(
    app: &TestApp,
    token: &str,
    password: Option<&str>,
) -> (String, Vec<String>, String) {
    let body = match password {
        Some(p) => json!({ "password": p }),
        None => json!({}),
    };
    let (status, enrolment) =
        json_of(app.post_json("/auth/mfa/totp", &body, Some(token)).await).await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let code = totp::code(&secret, now_secs(app));
    let (status, confirmed) = json_of(
        app.post_json(
            "/auth/mfa/totp/confirm",
            &json!({"code": code}),
            Some(token),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes, code)
}

/// Asks for a mail of `subject` to `email` and returns the token of its `path` link.
async fn mailed_token(
    stage: &Stage,
    request: &str,
    email: &str,
    subject: &str,
    path: &str,
) -> String {
    assert_json(
        stage
            .app
            .post_json(request, &json!({ "email": email }), None)
            .await,
        202,
        Value::Null,
    )
    .await;
    let mail = stage.sink.wait_for_subject(subject, WAIT).await;
    assert_eq!(mail.rcpt_to, vec![email.to_owned()]);
    mail.link_token(path)
        .unwrap_or_else(|| panic!("a {path} link in {:?}", mail.text_body()))
}

/// A path segment: every byte but the unreserved ones percent-encoded (RFC 3986).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Someone registers the owner's address first and sets up everything they can: a
/// password, their own GitHub account, TOTP, a passkey. The owner then signs in with a
/// provider that proves the address: the account is theirs, and none of it stays.
async fn a_provider_proving_the_address_takes_the_account_over_entirely(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let owners_address = unique_email();

    // the squatter
    let squatter_user = app.create_user(&owners_address).await;
    let account_id = squatter_user["id"].as_str().unwrap().to_owned();
    let squatter = app.token(&owners_address, PASSWORD).await;
    let squatters_github = unique_email();
    stage
        .github
        .set_user(GithubUser::new(31337, &squatters_github));
    assert_eq!(
        associate(app, "github", &stage.github, &squatter)
            .await
            .status(),
        200
    );
    let (secret, recovery, _) = enable_totp(app, &squatter, Some(PASSWORD)).await;
    let mut device = Authenticator::new(&stage.origin);
    let passkey = add_passkey(app, &squatter, &mut device, "Squatter's key").await;
    // a session that lasts: the passkey's sign-in with a refresh token
    let refresh_token = passkey_sign_in_offline(app, &mut device).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // a password sign-in waiting for its second step, with a code ready
    let (status, first_step) = json_of(app.login(&owners_address, PASSWORD).await).await;
    assert_eq!(
        (status, &first_step["detail"]["code"]),
        (400, &json!("LOGIN_MFA_REQUIRED"))
    );
    let mfa_token = first_step["detail"]["mfa_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(Duration::from_secs(30));
    let next_code = totp::code(&secret, now_secs(app));
    // a registration ceremony left open: it must not be finishable later
    let (status, pending) = json_of(passkey_options(app, &squatter, &json!({})).await).await;
    assert_eq!(status, 200, "{pending}");
    let mut other_device = Authenticator::new(&stage.origin);
    let pending_credential = other_device.register(&pending);
    assert_json(
        app.get("/auth/mfa", Some(&squatter)).await,
        200,
        json!({"totp": true, "passkeys": 1, "recovery_codes_left": 10}),
    )
    .await;

    // the owner, proven by corp; the account has a second factor, yet the owner gets a
    // token at once: the factor was the squatter's, and it is gone
    stage
        .corp
        .set_identity(Identity::new("owner-at-corp", &owners_address));
    let owner = token_of(sign_in(app, "corp", &stage.corp).await).await;
    let (_, me) = json_of(app.me(&owner).await).await;
    assert_eq!(me["id"], account_id.as_str(), "the same account");
    assert_eq!(me["is_verified"], true);

    // nothing of the squatter's works any more
    assert_eq!(app.me(&squatter).await.status(), 401, "their session ended");
    assert_json(
        app.refresh(&refresh_token).await,
        400,
        json!({"detail": "REFRESH_TOKEN_INVALID"}),
    )
    .await;
    assert_json(
        app.post_json(
            "/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "code": next_code}),
            None,
        )
        .await,
        400,
        json!({"detail": "MFA_TOKEN_INVALID"}),
    )
    .await;
    assert_json(
        app.login(&owners_address, PASSWORD).await,
        400,
        json!({"detail": "LOGIN_BAD_CREDENTIALS"}),
    )
    .await;
    assert_json(
        passkey_sign_in(app, &mut device).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    // their GitHub account is no way into this account: it makes one of its own
    let theirs = token_of(sign_in(app, "github", &stage.github).await).await;
    let (_, their_me) = json_of(app.me(&theirs).await).await;
    assert_ne!(their_me["id"], account_id.as_str());
    assert_eq!(their_me["email"], squatters_github.as_str());
    // the open ceremony went with the rest, even for the account's own session
    assert_json(
        app.post_json(
            "/auth/passkeys/register",
            &json!({"challenge_id": pending["challenge_id"], "name": "x", "credential": pending_credential}),
            Some(&owner),
        )
        .await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;

    // what the owner sees
    assert_eq!(
        linked(app, &owner).await,
        [("corp".to_owned(), "owner-at-corp".to_owned())]
    );
    assert_json(
        app.get("/auth/mfa", Some(&owner)).await,
        200,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}),
    )
    .await;
    assert_json(
        app.get("/auth/passkeys", Some(&owner)).await,
        200,
        json!([]),
    )
    .await;

    // each removal is recorded, with the link that caused it
    let log = events(app, &owner).await;
    let taken = with_reason(&log, "account_taken_over");
    let expected = [
        (
            "identity.unlinked".to_owned(),
            json!({"provider": "github", "subject": "31337", "reason": "account_taken_over"}),
        ),
        (
            "passkey.removed".to_owned(),
            json!({"passkey_id": passkey["id"], "name": "Squatter's key", "reason": "account_taken_over"}),
        ),
        (
            "mfa.disabled".to_owned(),
            json!({"method": "totp", "reason": "account_taken_over"}),
        ),
    ];
    for e in &expected {
        assert!(taken.contains(&e), "{e:?} in {log:#?}");
    }
    assert_eq!(taken.len(), expected.len(), "{taken:#?}");
    assert!(
        log.contains(&(
            "identity.linked".to_owned(),
            json!({"provider": "corp", "via": "email", "password_removed": true})
        )),
        "{log:#?}"
    );
    // and no event holds a secret
    let text = serde_json::to_string(&app.events("/users/me/events", &owner).await).unwrap();
    let mut secrets = vec![
        PASSWORD.to_owned(),
        secret,
        squatter,
        owner,
        refresh_token,
        mfa_token,
    ];
    secrets.extend(recovery);
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "{s} in the events");
    }
    // the address is told of the link that took the account
    let mail = stage
        .sink
        .wait_for_subject(
            &format!("A corp account was linked to your {PRODUCT} account"),
            WAIT,
        )
        .await;
    assert_eq!(mail.rcpt_to, vec![owners_address]);
}

/// A provider that does not vouch for the address makes an account with it; the
/// address's owner resets the password by mail: the provider's identity goes, and the
/// provider account no longer reaches the owner's account.
async fn a_reset_by_mail_unlinks_an_identity_linked_unverified(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let owners_address = unique_email();
    let unproven = Identity {
        sub: "squatter-at-corp".to_owned(),
        email: Some(owners_address.clone()),
        email_verified: false,
    };
    stage.corp.set_identity(unproven);
    let squatter = token_of(sign_in(app, "corp", &stage.corp).await).await;
    let account_id = user_id(app, &squatter).await;
    assert_eq!(linked(app, &squatter).await.len(), 1);
    // and a second factor of the squatter's, both kinds (no password: a recent sign-in)
    enable_totp(app, &squatter, None).await;
    let mut device = Authenticator::new(&stage.origin);
    let passkey = add_passkey(app, &squatter, &mut device, "Their key").await;

    // the owner of the address, through the mailed link
    let token = mailed_token(
        &stage,
        "/auth/forgot-password",
        &owners_address,
        "Reset your",
        "/reset-password",
    )
    .await;
    assert_json(
        app.post_json(
            "/auth/reset-password",
            &json!({"token": token, "password": NEW_PASSWORD}),
            None,
        )
        .await,
        200,
        Value::Null,
    )
    .await;
    // one step: the factors were the squatter's
    let (status, signed_in) = json_of(app.login(&owners_address, NEW_PASSWORD).await).await;
    assert_eq!(status, 200, "{signed_in}");
    let owner = signed_in["access_token"].as_str().unwrap().to_owned();
    assert_eq!(user_id(app, &owner).await, account_id);
    assert_eq!(app.me(&squatter).await.status(), 401);
    assert_eq!(identities(app, &owner).await, json!([]));
    assert_json(
        app.get("/auth/mfa", Some(&owner)).await,
        200,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}),
    )
    .await;
    assert_json(
        passkey_sign_in(app, &mut device).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    let log = events(app, &owner).await;
    assert_eq!(
        with_reason(&log, "unverified_at_link"),
        [&(
            "identity.unlinked".to_owned(),
            json!({"provider": "corp", "subject": "squatter-at-corp", "reason": "unverified_at_link"})
        )]
    );
    assert_eq!(
        with_reason(&log, "unverified_at_setup"),
        [
            &(
                "passkey.removed".to_owned(),
                json!({"passkey_id": passkey["id"], "name": "Their key", "reason": "unverified_at_setup"})
            ),
            &(
                "mfa.disabled".to_owned(),
                json!({"method": "totp", "reason": "unverified_at_setup"})
            )
        ]
    );

    // the squatter's provider account: the address is someone's, and unproven by corp
    assert_json(
        sign_in(app, "corp", &stage.corp).await,
        400,
        json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}),
    )
    .await;
}

/// A user sets things up before verifying their address: on verification, the passkey
/// and an identity of another address go; the identity that proves the same address
/// stays; no session ends.
async fn verification_by_mail_removes_what_was_set_up_unverified(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let account_id = user["id"].as_str().unwrap().to_owned();
    let token = app.token(&email, PASSWORD).await;
    enable_totp(app, &token, Some(PASSWORD)).await;
    let mut device = Authenticator::new(&stage.origin);
    let passkey = add_passkey(app, &token, &mut device, "Early key").await;
    // a second session, signed in with that passkey
    let second = token_of_passkey(passkey_sign_in(app, &mut device).await).await;
    stage
        .corp
        .set_identity(Identity::new("same-address", &email));
    assert_eq!(
        associate(app, "corp", &stage.corp, &token).await.status(),
        200
    );
    let elsewhere = unique_email();
    stage.github.set_user(GithubUser::new(4711, &elsewhere));
    assert_eq!(
        associate(app, "github", &stage.github, &token)
            .await
            .status(),
        200
    );
    let sessions_before = session_ids(app, &token).await;
    assert_eq!(sessions_before.len(), 2);

    let verify = mailed_token(
        &stage,
        "/auth/request-verify-token",
        &email,
        "Verify your email",
        "/verify",
    )
    .await;
    let (status, verified) = json_of(
        app.post_json("/auth/verify", &json!({"token": verify}), None)
            .await,
    )
    .await;
    assert_eq!((status, &verified["is_verified"]), (200, &json!(true)));

    // no session ended
    assert_eq!(user_id(app, &token).await, account_id);
    assert_eq!(user_id(app, &second).await, account_id);
    assert_eq!(session_ids(app, &token).await, sessions_before);
    // the factors and GitHub went; corp, which proves this very address, stayed
    assert_json(
        app.get("/auth/mfa", Some(&token)).await,
        200,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}),
    )
    .await;
    assert_json(
        passkey_sign_in(app, &mut device).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    assert_eq!(
        linked(app, &token).await,
        [("corp".to_owned(), "same-address".to_owned())]
    );
    let by_corp = token_of(sign_in(app, "corp", &stage.corp).await).await;
    assert_eq!(user_id(app, &by_corp).await, account_id);
    let by_github = token_of(sign_in(app, "github", &stage.github).await).await;
    assert_ne!(user_id(app, &by_github).await, account_id);

    let log = events(app, &token).await;
    let removed = with_reason(&log, "unverified_at_setup");
    assert_eq!(
        removed,
        [
            &(
                "passkey.removed".to_owned(),
                json!({"passkey_id": passkey["id"], "name": "Early key", "reason": "unverified_at_setup"})
            ),
            &(
                "mfa.disabled".to_owned(),
                json!({"method": "totp", "reason": "unverified_at_setup"})
            )
        ]
    );
    let unlinked = with_reason(&log, "unverified_at_link");
    assert_eq!(
        unlinked,
        [&(
            "identity.unlinked".to_owned(),
            json!({"provider": "github", "subject": "4711", "reason": "unverified_at_link"})
        )]
    );
}

/// The access token of a passkey sign-in.
async fn token_of_passkey(resp: reqwest::Response) -> String {
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn session_ids(app: &TestApp, token: &str) -> Vec<String> {
    let (status, sessions) = json_of(app.get("/auth/sessions", Some(token)).await).await;
    assert_eq!(status, 200, "{sessions}");
    let mut ids: Vec<String> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Two accounts at one provider, linked to one user: the subject's route unlinks one
/// of them, the provider's route every one.
async fn one_account_of_a_provider_is_unlinked_by_its_subject(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let (user, token) = app.user_with_token().await;
    // a subject as Auth0 makes them, with a slash, a space and a percent sign besides:
    // each must be percent-encoded in the path
    let awkward = "auth0|5f3a/b c%41";
    for sub in [awkward, "plain-subject"] {
        stage.corp.set_identity(Identity::new(sub, &unique_email()));
        assert_json(
            associate(app, "corp", &stage.corp, &token).await,
            200,
            user.clone(),
        )
        .await;
    }
    assert_eq!(linked(app, &token).await.len(), 2);

    // another user's account at corp: not theirs to unlink
    let (_, stranger) = app.user_with_token().await;
    stage
        .corp
        .set_identity(Identity::new("strangers-subject", &unique_email()));
    assert_eq!(
        associate(app, "corp", &stage.corp, &stranger)
            .await
            .status(),
        200
    );

    let not_found = json!({"detail": "Not Found"});
    for unknown in [
        "nobody",
        "auth0|5f3a",
        "plain-subject-2",
        "strangers-subject",
    ] {
        let path = format!("/users/me/identities/corp/{}", encode_segment(unknown));
        assert_json(app.delete(&path, &token).await, 404, not_found.clone()).await;
    }
    let path = format!("/users/me/identities/corp/{}", encode_segment(awkward));
    assert_eq!(app.delete(&path, &token).await.status(), 204);
    assert_eq!(
        linked(app, &token).await,
        [("corp".to_owned(), "plain-subject".to_owned())]
    );
    assert_json(app.delete(&path, &token).await, 404, not_found.clone()).await;
    // the other provider's route for the same subject: nothing of GitHub is linked
    let github_path = format!(
        "/users/me/identities/github/{}",
        encode_segment("plain-subject")
    );
    assert_json(app.delete(&github_path, &token).await, 404, not_found).await;
    assert_eq!(
        linked(app, &stranger).await,
        [("corp".to_owned(), "strangers-subject".to_owned())]
    );
    let log = events(app, &token).await;
    assert!(
        log.contains(&(
            "identity.unlinked".to_owned(),
            json!({"provider": "corp", "subject": awkward})
        )),
        "{log:#?}"
    );

    // the unlinked account signs in to a user of its own; the other still to this one
    stage.corp.set_identity(Identity {
        sub: awkward.to_owned(),
        email: Some(unique_email()),
        email_verified: true,
    });
    let t = token_of(sign_in(app, "corp", &stage.corp).await).await;
    assert_ne!(user_id(app, &t).await, user["id"].as_str().unwrap());
    stage
        .corp
        .set_identity(Identity::new("plain-subject", &unique_email()));
    let t = token_of(sign_in(app, "corp", &stage.corp).await).await;
    assert_eq!(user_id(app, &t).await, user["id"].as_str().unwrap());

    // the provider's route still unlinks every account of the provider
    stage
        .corp
        .set_identity(Identity::new("third-subject", &unique_email()));
    assert_eq!(
        associate(app, "corp", &stage.corp, &token).await.status(),
        200
    );
    assert_eq!(linked(app, &token).await.len(), 2);
    assert_eq!(
        app.delete("/users/me/identities/corp", &token)
            .await
            .status(),
        204
    );
    assert_eq!(identities(app, &token).await, json!([]));
}

/// An account made through a provider has one way in; a passkey is a second one, so
/// the identity may then go.
async fn a_passkey_counts_as_a_way_to_sign_in(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    stage
        .corp
        .set_identity(Identity::new("made-at-corp", &unique_email()));
    let token = token_of(sign_in(app, "corp", &stage.corp).await).await;
    let account_id = user_id(app, &token).await;
    let path = "/users/me/identities/corp/made-at-corp";
    let last = json!({"detail": "IDENTITY_LAST_SIGN_IN_METHOD"});
    assert_json(app.delete(path, &token).await, 400, last.clone()).await;
    assert_json(
        app.delete("/users/me/identities/corp", &token).await,
        400,
        last,
    )
    .await;
    assert_eq!(linked(app, &token).await.len(), 1);

    let mut device = Authenticator::new(&stage.origin);
    add_passkey(app, &token, &mut device, "Only key").await;
    assert_eq!(app.delete(path, &token).await.status(), 204);
    assert_eq!(identities(app, &token).await, json!([]));
    // the passkey is the way in now
    let by_passkey = token_of_passkey(passkey_sign_in(app, &mut device).await).await;
    assert_eq!(user_id(app, &by_passkey).await, account_id);
}

/// Reads a notice about `subject` and checks it went to `to` and holds no secret.
async fn notice(stage: &Stage, subject: &str, to: &str, secrets: &[String]) -> ReceivedMail {
    let mail = stage.sink.wait_for_subject(subject, WAIT).await;
    assert_eq!(mail.rcpt_to, vec![to.to_owned()], "{subject}");
    let text = mail.text_body().unwrap();
    let html = mail.html_body().unwrap();
    for part in [&mail.data, &text, &html] {
        for s in secrets {
            assert!(!part.contains(s.as_str()), "{s:?} in the mail {subject:?}");
        }
        assert!(
            !part.contains("token="),
            "a link with a token in {subject:?}"
        );
    }
    assert!(
        text.contains("Forgot password"),
        "what to do if it was not you"
    );
    mail
}

/// Each change to how an account is signed in to is mailed to its owner; an email
/// change to both addresses. No notice carries a token, a password or a code.
async fn security_changes_are_mailed_without_secrets(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let email = unique_email();
    app.create_user(&email).await;
    let token = app.token(&email, PASSWORD).await;
    let mut secrets = vec![PASSWORD.to_owned(), token.clone()];

    let (secret, recovery, code) = enable_totp(app, &token, Some(PASSWORD)).await;
    secrets.extend([secret.clone(), code]);
    secrets.extend(recovery);
    let mut device = Authenticator::new(&stage.origin);
    let passkey = add_passkey(app, &token, &mut device, "Laptop").await;
    let passkey_id = passkey["id"].as_str().unwrap();
    assert_eq!(
        remove_passkey(app, &token, passkey_id, &json!({}))
            .await
            .status(),
        204
    );
    // a code of the next step: the confirming one is spent
    app.clock.advance(Duration::from_secs(30));
    let code = totp::code(&secret, now_secs(app));
    secrets.push(code.clone());
    let r = app
        .client
        .delete(app.url("/auth/mfa/totp"))
        .bearer_auth(&token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    stage
        .github
        .set_user(GithubUser::new(90210, &unique_email()));
    assert_eq!(
        associate(app, "github", &stage.github, &token)
            .await
            .status(),
        200
    );

    let added = notice(
        &stage,
        &format!("A passkey was added to your {PRODUCT} account"),
        &email,
        &secrets,
    )
    .await;
    assert!(added.text_body().unwrap().contains("\"Laptop\""));
    notice(
        &stage,
        &format!("A passkey was removed from your {PRODUCT} account"),
        &email,
        &secrets,
    )
    .await;
    notice(
        &stage,
        &format!("Two-step sign-in was turned on for your {PRODUCT} account"),
        &email,
        &secrets,
    )
    .await;
    notice(
        &stage,
        &format!("Two-step sign-in was turned off for your {PRODUCT} account"),
        &email,
        &secrets,
    )
    .await;
    notice(
        &stage,
        &format!("A GitHub account was linked to your {PRODUCT} account"),
        &email,
        &secrets,
    )
    .await;

    // a new address: the old one hears of it with the new one masked, the new one too
    let new_email = format!("newbox-{}@mail.example.org", uuid::Uuid::new_v4().simple());
    assert_eq!(
        app.patch("/users/me", &token, &json!({"email": new_email}))
            .await
            .status(),
        200
    );
    let mut no_new_address = secrets.clone();
    no_new_address.push(new_email.clone());
    let from = notice(
        &stage,
        &format!("The email address of your {PRODUCT} account was changed"),
        &email,
        &no_new_address,
    )
    .await;
    assert!(
        from.text_body().unwrap().contains("n***@mail.example.org"),
        "{:?}",
        from.text_body()
    );
    let to = notice(
        &stage,
        &format!("This is now the email address of your {PRODUCT} account"),
        &new_email,
        &secrets,
    )
    .await;
    assert!(to.text_body().unwrap().contains(&new_email));

    // exactly one of each: seven notices, nothing else went out
    let all = stage.sink.wait_for(7, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stage.sink.messages().len(),
        7,
        "{:?}",
        all.iter().map(ReceivedMail::subject).collect::<Vec<_>>()
    );
}

/// Adding or removing a passkey needs the password, or a sign-in of the last ten
/// minutes; the first passkey ends the user's other sessions.
async fn passkey_changes_need_a_recent_sign_in_or_the_password(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let email = unique_email();
    app.create_user(&email).await;
    let token = app.token(&email, PASSWORD).await;
    let other = app.token(&email, PASSWORD).await;
    let offline = app.login_offline(&email, PASSWORD).await;
    let refresh_token = offline["refresh_token"].as_str().unwrap();
    let wrong = json!({"password": "not the password at all"});
    let right = json!({"password": PASSWORD});
    let required = json!({"detail": "REAUTHENTICATION_REQUIRED"});
    let bad_password = json!({"detail": "MFA_BAD_PASSWORD"});

    // a session of a moment ago needs no password
    assert_eq!(passkey_options(app, &token, &json!({})).await.status(), 200);
    assert_json(
        passkey_options(app, &token, &wrong).await,
        400,
        bad_password.clone(),
    )
    .await;

    // ten minutes on, the session alone is not enough
    app.clock.advance(Duration::from_secs(601));
    assert_json(
        passkey_options(app, &token, &json!({})).await,
        400,
        required.clone(),
    )
    .await;
    assert_json(
        passkey_options(app, &token, &wrong).await,
        400,
        bad_password.clone(),
    )
    .await;
    // a refresh renews the token, not the sign-in
    let (status, refreshed) = json_of(app.refresh(refresh_token).await).await;
    assert_eq!(status, 200, "{refreshed}");
    let refreshed_access = refreshed["access_token"].as_str().unwrap();
    let next_refresh = refreshed["refresh_token"].as_str().unwrap();
    assert_json(
        passkey_options(app, refreshed_access, &json!({})).await,
        400,
        required.clone(),
    )
    .await;
    // finishing a registration asks again
    let (status, opts) = json_of(passkey_options(app, &token, &right).await).await;
    assert_eq!(status, 200, "{opts}");
    let credential = Authenticator::new(&stage.origin).register(&opts);
    let finish = |body: Value| finish_registration(app, &token, body);
    let mut body =
        json!({"challenge_id": opts["challenge_id"], "name": "Key", "credential": credential});
    assert_json(finish(body.clone()).await, 400, required.clone()).await;
    body["password"] = wrong["password"].clone();
    assert_json(finish(body.clone()).await, 400, bad_password.clone()).await;

    // with the password: registered; the other session ends, this one does not
    assert_eq!(app.me(&other).await.status(), 200, "still signed in");
    assert_eq!(app.me(refreshed_access).await.status(), 200);
    let (status, opts) = json_of(passkey_options(app, &token, &right).await).await;
    assert_eq!(status, 200, "{opts}");
    let mut device = Authenticator::new(&stage.origin);
    let credential = device.register(&opts);
    let (status, first) = json_of(
        finish(json!({"challenge_id": opts["challenge_id"], "name": "Key", "credential": credential, "password": PASSWORD}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        app.me(&other).await.status(),
        401,
        "the other session ended"
    );
    assert_eq!(app.me(refreshed_access).await.status(), 401);
    assert_json(
        app.refresh(next_refresh).await,
        400,
        json!({"detail": "REFRESH_TOKEN_INVALID"}),
    )
    .await;
    assert_eq!(
        app.me(&token).await.status(),
        200,
        "the current one did not"
    );

    // a fresh sign-in (with the passkey) adds and removes without the password, and
    // a second passkey ends no session
    let fresh = token_of_passkey(passkey_sign_in(app, &mut device).await).await;
    let mut spare = Authenticator::new(&stage.origin);
    let second = add_passkey(app, &fresh, &mut spare, "Spare").await;
    assert_eq!(app.me(&token).await.status(), 200);
    assert_eq!(
        remove_passkey(app, &fresh, second["id"].as_str().unwrap(), &json!({}))
            .await
            .status(),
        204
    );

    // ten minutes on, removing needs the password again
    app.clock.advance(Duration::from_secs(601));
    let id = first["id"].as_str().unwrap();
    assert_json(
        remove_passkey(app, &fresh, id, &json!({})).await,
        400,
        required,
    )
    .await;
    assert_json(
        remove_passkey(app, &fresh, id, &wrong).await,
        400,
        bad_password,
    )
    .await;
    assert_json(
        app.get("/auth/mfa", Some(&fresh)).await,
        200,
        json!({"totp": false, "passkeys": 1, "recovery_codes_left": 0}),
    )
    .await;
    assert_eq!(remove_passkey(app, &fresh, id, &right).await.status(), 204);
    assert_json(
        app.get("/auth/passkeys", Some(&fresh)).await,
        200,
        json!([]),
    )
    .await;
}

/// Only an unverified account's proof by mail removes anything: an account a superuser
/// verified keeps what was set up before, through a later password reset.
async fn a_reset_of_a_verified_account_removes_nothing(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let (_, admin) = app.superuser_with_token().await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let token = app.token(&email, PASSWORD).await;
    enable_totp(app, &token, Some(PASSWORD)).await;
    let mut device = Authenticator::new(&stage.origin);
    add_passkey(app, &token, &mut device, "Key").await;
    stage
        .github
        .set_user(GithubUser::new(2024, &unique_email()));
    assert_eq!(
        associate(app, "github", &stage.github, &token)
            .await
            .status(),
        200
    );
    let (status, verified) = json_of(
        app.patch(
            &format!("/users/{}", user["id"].as_str().unwrap()),
            &admin,
            &json!({"is_verified": true}),
        )
        .await,
    )
    .await;
    assert_eq!((status, &verified["is_verified"]), (200, &json!(true)));

    // the owner forgot the password
    let reset = mailed_token(
        &stage,
        "/auth/forgot-password",
        &email,
        "Reset your",
        "/reset-password",
    )
    .await;
    assert_json(
        app.post_json(
            "/auth/reset-password",
            &json!({"token": reset, "password": NEW_PASSWORD}),
            None,
        )
        .await,
        200,
        Value::Null,
    )
    .await;
    let owner = token_of_passkey(passkey_sign_in(app, &mut device).await).await;
    assert_json(
        app.get("/auth/mfa", Some(&owner)).await,
        200,
        json!({"totp": true, "passkeys": 1, "recovery_codes_left": 10}),
    )
    .await;
    assert_eq!(
        linked(app, &owner).await,
        [("github".to_owned(), "2024".to_owned())]
    );
    let (status, first_step) = json_of(app.login(&email, NEW_PASSWORD).await).await;
    assert_eq!(
        (status, &first_step["detail"]["code"]),
        (400, &json!("LOGIN_MFA_REQUIRED")),
        "TOTP stays"
    );
    let log = events(app, &owner).await;
    assert!(
        with_reason(&log, "unverified_at_setup").is_empty(),
        "{log:#?}"
    );
    assert!(
        with_reason(&log, "unverified_at_link").is_empty(),
        "{log:#?}"
    );
}

both_backends!(
    a_provider_proving_the_address_takes_the_account_over_entirely,
    a_reset_by_mail_unlinks_an_identity_linked_unverified,
    verification_by_mail_removes_what_was_set_up_unverified,
    one_account_of_a_provider_is_unlinked_by_its_subject,
    a_passkey_counts_as_a_way_to_sign_in,
    security_changes_are_mailed_without_secrets,
    passkey_changes_need_a_recent_sign_in_or_the_password,
    a_reset_of_a_verified_account_removes_nothing,
);

/// A new API key of the holder of `token` (re-authenticated by the recent sign-in): its
/// JSON, with the key.
async fn make_api_key(app: &TestApp, token: &str, name: &str) -> Value {
    let (status, made) = json_of(
        app.post_json("/users/me/api-keys", &json!({ "name": name }), Some(token))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{made}");
    made
}

/// A squatter's API key goes with the rest at a takeover (docs/roles-and-api-keys.md).
async fn a_takeover_revokes_every_api_key(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let owners_address = unique_email();
    app.create_user(&owners_address).await;
    let squatter = app.token(&owners_address, PASSWORD).await;
    let made = make_api_key(app, &squatter, "squatter's script").await;
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&key).await.status(), 200);

    stage
        .corp
        .set_identity(Identity::new("owner-at-corp", &owners_address));
    let owner = token_of(sign_in(app, "corp", &stage.corp).await).await;
    assert_json(app.me(&key).await, 401, json!({"detail": "Unauthorized"})).await;
    assert_json(
        app.get("/users/me/api-keys", Some(&owner)).await,
        200,
        json!([]),
    )
    .await;
    let log = events(app, &owner).await;
    let revoked: Vec<_> = with_reason(&log, "account_taken_over")
        .into_iter()
        .filter(|(t, _)| t == "api_key.revoked")
        .collect();
    assert_eq!(
        revoked,
        [&(
            "api_key.revoked".to_owned(),
            json!({"api_key_id": made["id"], "name": "squatter's script", "reason": "account_taken_over"})
        )]
    );
}

/// A proof by mail revokes the keys made while the account was unverified; a key made
/// afterwards survives, a password reset included.
async fn a_proof_by_mail_revokes_the_api_keys_made_unverified(backend: Backend) {
    let stage = stage(backend).await;
    let app = &stage.app;
    let email = unique_email();
    app.create_user(&email).await;
    let token = app.token(&email, PASSWORD).await;
    let early = make_api_key(app, &token, "early").await;
    let early_key = early["key"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&early_key).await.status(), 200);

    let verify = mailed_token(
        &stage,
        "/auth/request-verify-token",
        &email,
        "Verify your email",
        "/verify",
    )
    .await;
    let (status, _) = json_of(
        app.post_json("/auth/verify", &json!({"token": verify}), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.me(&early_key).await.status(),
        401,
        "made while unverified"
    );
    assert_eq!(
        app.me(&token).await.status(),
        200,
        "a verification ends no session"
    );
    let log = events(app, &token).await;
    let revoked: Vec<_> = with_reason(&log, "unverified_at_setup")
        .into_iter()
        .filter(|(t, _)| t == "api_key.revoked")
        .collect();
    assert_eq!(
        revoked,
        [&(
            "api_key.revoked".to_owned(),
            json!({"api_key_id": early["id"], "name": "early", "reason": "unverified_at_setup"})
        )]
    );

    let later = make_api_key(app, &token, "later").await;
    let later_key = later["key"].as_str().unwrap().to_owned();
    let reset = mailed_token(
        &stage,
        "/auth/forgot-password",
        &email,
        "Reset your",
        "/reset-password",
    )
    .await;
    let r = app
        .post_json(
            "/auth/reset-password",
            &json!({"token": reset, "password": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.me(&token).await.status(),
        401,
        "a reset ends the sessions"
    );
    assert_eq!(
        app.me(&later_key).await.status(),
        200,
        "keys survive a reset"
    );
}

both_backends!(
    a_takeover_revokes_every_api_key,
    a_proof_by_mail_revokes_the_api_keys_made_unverified,
);
