//! The mailed reset link in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them when missing).

use std::time::Duration;

use base64::Engine;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;
use crate::smtp_sink::SmtpSink;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free loopback port; killed on drop.
pub struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_driver() -> Option<Driver> {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        // CI installs the browser (.ci/run); a developer machine may not have it.
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromium-driver must be installed in CI"
        );
        eprintln!("SKIPPED: install Debian's chromium and chromium-driver to run the browser test");
        return None;
    }
    let port = free_port();
    let child = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}/status", driver.url))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(driver)
}

/// A headless Chromium session on the driver.
pub async fn browser(driver: &Driver) -> fantoccini::Client {
    // fantoccini's and reqwest's rustls features leave the provider ambiguous
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
        }),
    );
    ClientBuilder::rustls()
        .expect("tls")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("webdriver session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_link_works_in_a_browser() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(Backend::Sqlite, |env| {
        env.insert("SMTP_URL".into(), smtp);
    })
    .await;
    // mailed links must point at the running app
    assert!(app.address.starts_with("http://127.0.0.1:"));
    let email = unique_email();
    app.create_user(&email).await;
    let r = app
        .post_json("/auth/forgot-password", &json!({"email": email}), None)
        .await;
    assert_eq!(r.status(), 202);
    let mail = sink.wait_for(1, Duration::from_secs(20)).await.remove(0);
    let text = mail.text_body().unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/reset-password?token="))
        .expect("a link in the mail")
        .to_owned();
    // the app was started with PUBLIC_URL derived from BIND_ADDR (port 0): re-base the
    // link on the address the app actually listens on
    let path = &link[link.find("/reset-password").unwrap()..];
    let url = format!("{}{}", app.address, path);

    let client = browser(&driver).await;
    let result = async {
        client.goto(&url).await?;
        assert!(client.source().await?.contains("Choose a new password"));
        // too short: the browser itself refuses to submit (minlength), the page stays
        client
            .find(Locator::Css("#password"))
            .await?
            .send_keys("short one")
            .await?;
        client
            .find(Locator::Css("#confirm"))
            .await?
            .send_keys("short one")
            .await?;
        client
            .find(Locator::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
        assert!(
            client.current_url().await?.as_str().contains("token="),
            "not submitted"
        );
        // long enough but common: the server refuses it with the policy's reason
        for field in ["#password", "#confirm"] {
            let input = client.find(Locator::Css(field)).await?;
            input.clear().await?;
            input.send_keys("123qweasdzxc").await?;
        }
        client
            .find(Locator::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
        let error = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("p.error"))
            .await?;
        assert!(error.text().await?.contains("too common"));
        let new_password = "set in a real browser 42";
        client
            .find(Locator::Css("#password"))
            .await?
            .send_keys(new_password)
            .await?;
        client
            .find(Locator::Css("#confirm"))
            .await?
            .send_keys(new_password)
            .await?;
        client
            .find(Locator::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
        let done = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("p.ok"))
            .await?;
        assert!(done
            .text()
            .await?
            .contains("Your password has been changed"));
        assert!(client
            .find(Locator::Css("h1"))
            .await?
            .text()
            .await?
            .contains("Password changed"));
        Ok::<_, fantoccini::error::CmdError>(new_password)
    }
    .await;
    let _ = client.close().await;
    let new_password = result.expect("browser steps");
    app.token(&email, new_password).await;
    assert_eq!(app.login(&email, PASSWORD).await.status(), 400);
}

/// The cookie transport in a real browser: sign in with the cookie, a page load carries
/// it (and scripts cannot read it), sign out clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_works_in_a_browser() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let public = base.clone();
    let app = spawn_app_with(Backend::Sqlite, |env| {
        env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("PUBLIC_URL".into(), public);
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    let client = browser(&driver).await;
    let result = async {
        // a page of the service's own origin, then the form posted as a page would
        client.goto(&format!("{base}/healthz")).await?;
        let status = client
            .execute_async(
                "const [email, password, done] = arguments;\
                 fetch('/auth/cookie/login', {method: 'POST', body: new URLSearchParams({username: email, password})})\
                   .then(r => done(r.status), e => done(String(e)));",
                vec![json!(email), json!(PASSWORD)],
            )
            .await?;
        assert_eq!(status, json!(204));
        let cookies = client.get_all_cookies().await?;
        let cookie = cookies
            .iter()
            .find(|c| c.name() == "fastapiusersauth")
            .expect("the browser keeps the session cookie");
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.path(), Some("/"));
        let visible = client.execute("return document.cookie;", vec![]).await?;
        assert!(
            !visible.as_str().unwrap_or_default().contains("fastapiusersauth"),
            "HttpOnly: scripts cannot read it"
        );
        // a page load carries the cookie
        client.goto(&format!("{base}/users/me")).await?;
        assert!(client.source().await?.contains(&email), "signed in");
        // sign out from the page: the same-origin POST passes the CSRF check
        client.goto(&format!("{base}/healthz")).await?;
        let status = client
            .execute_async(
                "const [done] = arguments;\
                 fetch('/auth/cookie/logout', {method: 'POST'}).then(r => done(r.status), e => done(String(e)));",
                vec![],
            )
            .await?;
        assert_eq!(status, json!(204));
        let cookies = client.get_all_cookies().await?;
        assert!(
            cookies.iter().all(|c| c.name() != "fastapiusersauth"),
            "sign-out cleared the cookie"
        );
        client.goto(&format!("{base}/users/me")).await?;
        assert!(client.source().await?.contains("Unauthorized"));
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    result.expect("browser steps");
}

/// A ChromeDriver WebAuthn command (fantoccini has none of its own).
#[derive(Debug)]
struct WebAuthnCommand {
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}

/// A virtual platform authenticator holding passkeys, with user verification.
async fn add_virtual_authenticator(
    client: &fantoccini::Client,
) -> Result<String, fantoccini::error::CmdError> {
    let id = client
        .issue_cmd(WebAuthnCommand {
            method: http::Method::POST,
            path: "webauthn/authenticator".into(),
            body: Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
                "automaticPresenceSimulation": true
            })),
        })
        .await?;
    Ok(id.as_str().unwrap_or_default().to_owned())
}

async fn shown(
    client: &fantoccini::Client,
    id: &str,
) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("#{id}:not([hidden])")))
        .await
}

/// Saves what the browser shows at `width` into target/account-screenshots (copied into
/// docs/ for docs/second-factor.md).
async fn screenshot(
    client: &fantoccini::Client,
    width: u32,
    name: &str,
) -> Result<(), fantoccini::error::CmdError> {
    client.set_window_size(width, 1400).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let png = client.screenshot().await?;
    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR"))),
    )
    .join("account-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(dir.join(format!("{name}-{width}.png")), png).expect("screenshot");
    Ok(())
}

/// The account page in Chromium with a virtual authenticator: sign in with a password,
/// add a passkey, sign out, sign in with the passkey alone; turn on TOTP from the
/// secret the page shows; sign out and in with password and TOTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_works_with_passkeys_and_totp() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let public = base.clone();
    let app = spawn_app_with(Backend::Sqlite, |env| {
        env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("PUBLIC_URL".into(), public);
        env.insert("WEBAUTHN_RP_ID".into(), "localhost".into());
        env.insert("APP_NAME".into(), "Acme".into());
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    let client = browser(&driver).await;
    let result = async {
        add_virtual_authenticator(&client).await?;
        client.set_window_size(1280, 1400).await?;
        client.goto(&format!("{base}/account")).await?;
        shown(&client, "signin").await?;
        screenshot(&client, 360, "sign-in").await?;
        screenshot(&client, 1280, "sign-in").await?;

        // a password
        client
            .find(Locator::Css("#email"))
            .await?
            .send_keys(&email)
            .await?;
        client
            .find(Locator::Css("#password"))
            .await?
            .send_keys(PASSWORD)
            .await?;
        client
            .find(Locator::Css("#signin-form button[type=submit]"))
            .await?
            .click()
            .await?;
        shown(&client, "account").await?;
        assert_eq!(
            client.find(Locator::Css("#who")).await?.text().await?,
            email
        );

        // a passkey, from the virtual authenticator
        client
            .find(Locator::Css("#passkey-name"))
            .await?
            .send_keys("Chromium")
            .await?;
        client
            .find(Locator::Css("#passkey-add button[type=submit]"))
            .await?
            .click()
            .await?;
        let first = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#passkey-list li"))
            .await?;
        assert!(first.text().await?.contains("Chromium"));
        client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#session-list li"))
            .await?;
        screenshot(&client, 360, "account").await?;
        screenshot(&client, 1280, "account").await?;

        // sign out, and in with the passkey alone
        client.find(Locator::Css("#signout")).await?.click().await?;
        shown(&client, "signin").await?;
        client
            .find(Locator::Css("#signin-passkey"))
            .await?
            .click()
            .await?;
        shown(&client, "account").await?;
        assert_eq!(
            client.find(Locator::Css("#who")).await?.text().await?,
            email
        );

        // TOTP from the secret the page shows
        client
            .find(Locator::Css("#totp-password"))
            .await?
            .send_keys(PASSWORD)
            .await?;
        client
            .find(Locator::Css("#totp-start button[type=submit]"))
            .await?
            .click()
            .await?;
        let secret = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#totp-setup:not([hidden]) #totp-secret"))
            .await?
            .text()
            .await?;
        assert_eq!(secret.len(), 32, "{secret}");
        assert!(
            client.find(Locator::Css("#totp-qr svg")).await.is_ok(),
            "the QR code is drawn"
        );
        screenshot(&client, 360, "totp").await?;
        let now = users_domain::Clock::now(&*app.clock).secs() as u64;
        client
            .find(Locator::Css("#totp-confirm-code"))
            .await?
            .send_keys(&crate::totp::code(&secret, now))
            .await?;
        client
            .find(Locator::Css("#totp-confirm button[type=submit]"))
            .await?
            .click()
            .await?;
        shown(&client, "totp-codes").await?;
        let codes = client.find_all(Locator::Css("#totp-code-list li")).await?;
        assert_eq!(codes.len(), 10);
        client
            .find(Locator::Css("#totp-done"))
            .await?
            .click()
            .await?;

        // sign out; in again with the password and a code
        client.find(Locator::Css("#signout")).await?.click().await?;
        shown(&client, "signin").await?;
        client.find(Locator::Css("#email")).await?.clear().await?;
        client
            .find(Locator::Css("#email"))
            .await?
            .send_keys(&email)
            .await?;
        client
            .find(Locator::Css("#password"))
            .await?
            .send_keys(PASSWORD)
            .await?;
        client
            .find(Locator::Css("#signin-form button[type=submit]"))
            .await?
            .click()
            .await?;
        shown(&client, "second-step").await?;
        assert!(client
            .find(Locator::Css("#mfa-passkey:not([hidden])"))
            .await
            .is_ok());
        screenshot(&client, 360, "second-step").await?;
        app.clock.advance(Duration::from_secs(30));
        let now = users_domain::Clock::now(&*app.clock).secs() as u64;
        client
            .find(Locator::Css("#mfa-code"))
            .await?
            .send_keys(&crate::totp::code(&secret, now))
            .await?;
        client
            .find(Locator::Css("#mfa-totp button[type=submit]"))
            .await?
            .click()
            .await?;
        shown(&client, "account").await?;
        assert_eq!(
            client.find(Locator::Css("#who")).await?.text().await?,
            email
        );
        let state = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#totp-on:not([hidden])"))
            .await;
        assert!(state.is_ok(), "TOTP shows as on");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    result.expect("browser steps");
    // what the browser did, seen from the API
    let token = {
        let r = app.login(&email, PASSWORD).await;
        assert_eq!(r.status(), 400, "two steps now");
        r
    };
    drop(token);
}

/// The account page takes no token from its URL (a crafted link must not sign the
/// browser in to someone else's account), and a provider sign-in it starts ends with
/// the cookie the callback set: no token in any URL or in the page's storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_takes_no_token_from_its_url() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let provider = crate::oidc_provider::OidcProvider::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let public = base.clone();
    let app = spawn_app_with(Backend::Sqlite, |env| {
        env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("PUBLIC_URL".into(), public);
        crate::provider_flow::configure_oidc(env, "corp", &provider);
        env.insert("OIDC_CORP_LABEL".into(), "Corp".into());
    })
    .await;
    // someone else's valid token, planted in a link
    let (_, planted) = app.user_with_token().await;
    let email = unique_email();
    provider.set_identity(crate::oidc_provider::Identity::new("browser-user", &email));
    let client = browser(&driver).await;
    let result = async {
        client
            .goto(&format!("{base}/account#access_token={planted}&token_type=bearer"))
            .await?;
        shown(&client, "signin").await?;
        client
            .goto(&format!("{base}/account?access_token={planted}"))
            .await?;
        shown(&client, "signin").await?;

        // "Sign in with Corp": the provider consents at once and sends the browser back
        client
            .find(Locator::Css("button[data-provider=corp]"))
            .await?
            .click()
            .await?;
        shown(&client, "account").await?;
        assert_eq!(
            client.find(Locator::Css("#who")).await?.text().await?,
            email
        );
        let url = client.current_url().await?;
        assert_eq!(url.as_str(), format!("{base}/account"), "nothing in the URL");
        let stored = client
            .execute(
                "return JSON.stringify([sessionStorage.length, localStorage.length, document.cookie]);",
                vec![],
            )
            .await?;
        assert_eq!(stored, json!("[0,0,\"\"]"), "no token a script can read");
        let cookies = client.get_all_cookies().await?;
        let session = cookies
            .iter()
            .find(|c| c.name() == "fastapiusersauth")
            .expect("the callback set the session cookie");
        assert_eq!(session.http_only(), Some(true));
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    result.expect("browser steps");
}

/// The API keys of the account page in Chromium: create one (shown once), copy it to the
/// clipboard, see it listed by name and prefix, use it over HTTP, revoke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_makes_copies_and_revokes_api_keys() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let public = base.clone();
    let app = spawn_app_with(Backend::Sqlite, |env| {
        env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("PUBLIC_URL".into(), public);
        env.insert("WEBAUTHN_RP_ID".into(), "localhost".into());
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    let client = browser(&driver).await;
    let result = async {
        client.goto(&format!("{base}/account")).await?;
        shown(&client, "signin").await?;
        client
            .find(Locator::Css("#email"))
            .await?
            .send_keys(&email)
            .await?;
        client
            .find(Locator::Css("#password"))
            .await?
            .send_keys(PASSWORD)
            .await?;
        client
            .find(Locator::Css("#signin-form button[type=submit]"))
            .await?
            .click()
            .await?;
        shown(&client, "account").await?;
        shown(&client, "key-none").await?;
        // (on the page's origin) the page may write to the clipboard, and the test reads it back
        for name in ["clipboard-read", "clipboard-write"] {
            client
                .issue_cmd(WebAuthnCommand {
                    method: http::Method::POST,
                    path: "permissions".into(),
                    body: Some(json!({"descriptor": {"name": name}, "state": "granted"})),
                })
                .await?;
        }

        // create: a sign-in of a moment ago needs no password
        client
            .find(Locator::Css("#key-name"))
            .await?
            .send_keys("CI")
            .await?;
        client
            .find(Locator::Css("#key-add button[type=submit]"))
            .await?
            .click()
            .await?;
        shown(&client, "key-new").await?;
        let key = client
            .find(Locator::Css("#key-value"))
            .await?
            .text()
            .await?;
        assert!(key.starts_with("usr_") && key.len() == 44, "{key}");
        screenshot(&client, 360, "api-key").await?;
        let listed = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#key-list li"))
            .await?
            .text()
            .await?;
        assert!(
            listed.contains("CI") && listed.contains(&key[..12]),
            "{listed}"
        );
        assert!(
            !listed.contains(&key[12..]),
            "the list shows the prefix only"
        );

        // copy
        client
            .find(Locator::Css("#key-copy"))
            .await?
            .click()
            .await?;
        // the status said "created" already: wait for it to change
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut status = String::new();
        while std::time::Instant::now() < deadline {
            status = client.find(Locator::Css("#status")).await?.text().await?;
            if status != "API key created. Copy it now: it is shown only this once." {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, "Copied.");
        let copied = client
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 navigator.clipboard.readText().then(done, () => done(null));",
                vec![],
            )
            .await?;
        assert_eq!(copied, json!(key), "the clipboard holds the key");
        client
            .find(Locator::Css("#key-done"))
            .await?
            .click()
            .await?;
        assert_eq!(
            client
                .find(Locator::Css("#key-value"))
                .await?
                .text()
                .await?,
            "",
            "the key is not kept on the page"
        );

        // the key works, until it is revoked from the page
        assert_eq!(app.me(&key).await.status(), 200);
        client
            .find(Locator::Css("#key-list li button"))
            .await?
            .click()
            .await?;
        shown(&client, "key-none").await?;
        assert_eq!(app.me(&key).await.status(), 401);
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    result.expect("browser steps");
}

/// "Sign in with <the app>" in Chromium: an app's authorization request sends the browser
/// to the hosted sign-in page; password and TOTP there, then the consent page, then back
/// to the app with a code whose ID token says how the person signed in
/// (docs/oauth-provider.md). Screenshots of both pages at 360 and 1280 px.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_signs_a_person_in_through_the_hosted_pages() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let (app, base, callback, client_id, secret) = hosted_app(false).await;
    let (email, totp_secret, _, _) = crate::mfa::user_with_totp(&app).await;
    let verifier = "a-verifier-of-the-app-that-is-long-enough-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let authorize = format!(
        "{base}/oauth/authorize?response_type=code&client_id={client_id}&scope=openid%20email&state=st-1&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256"
    );
    let browser_client = browser(&driver).await;
    let c = &browser_client;
    let result = async {
        c.set_window_size(1280, 1400).await?;
        c.goto(&authorize).await?;
        shown(c, "signin").await?;
        assert!(c
            .current_url()
            .await?
            .as_str()
            .starts_with(&format!("{base}/login")));
        screenshot(c, 360, "oauth-login").await?;
        screenshot(c, 1280, "oauth-login").await?;
        c.find(Locator::Css("#email"))
            .await?
            .send_keys(&email)
            .await?;
        c.find(Locator::Css("#password"))
            .await?
            .send_keys(PASSWORD)
            .await?;
        c.find(Locator::Css("#signin-form button[type=submit]"))
            .await?
            .click()
            .await?;
        shown(c, "second-step").await?;
        let code = crate::mfa::fresh_code(&app, &totp_secret);
        c.find(Locator::Css("#mfa-code"))
            .await?
            .send_keys(&code)
            .await?;
        c.find(Locator::Css("#mfa-totp button[type=submit]"))
            .await?
            .click()
            .await?;
        // back to the request, then to the consent page
        let allow = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("button[value=allow]"))
            .await?;
        assert!(c
            .current_url()
            .await?
            .as_str()
            .contains("/oauth/consent?request="));
        let text = c.find(Locator::Css("main")).await?.text().await?;
        assert!(text.contains("Invoices") && text.contains(&email), "{text}");
        screenshot(c, 360, "oauth-consent").await?;
        screenshot(c, 1280, "oauth-consent").await?;
        allow.click().await?;
        let mut landed = String::new();
        for _ in 0..50 {
            landed = c.current_url().await?.to_string();
            if landed.starts_with(&callback) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok::<String, fantoccini::error::CmdError>(landed)
    }
    .await;
    let _ = browser_client.close().await;
    let landed = result.expect("the browser flow");
    assert!(landed.starts_with(&callback), "{landed}");
    let q: std::collections::HashMap<String, String> = url::Url::parse(&landed)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(q["state"], "st-1");
    let claims = id_token_of(
        &app,
        (&client_id, &secret),
        q["code"].as_str(),
        &callback,
        verifier,
    )
    .await;
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "2");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], email.as_str());
}

/// The same with a passkey (Chromium's virtual authenticator): added on the account page,
/// then used on the hosted sign-in page an app sent the browser to; the ID token says
/// `hwk`. The account page then lists the app among the connected apps (screenshots).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_signs_a_person_in_with_a_passkey() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let (app, base, callback, client_id, secret) = hosted_app(true).await;
    let email = unique_email();
    app.create_user(&email).await;
    let verifier = "another-verifier-of-the-app-long-enough-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let authorize = format!(
        "{base}/oauth/authorize?response_type=code&client_id={client_id}&scope=openid&state=st-2&code_challenge={challenge}&code_challenge_method=S256"
    );
    let browser_client = browser(&driver).await;
    let c = &browser_client;
    let result = async {
        add_virtual_authenticator(c).await?;
        c.set_window_size(1280, 1400).await?;
        // a passkey, added on the account page, then signed out
        c.goto(&format!("{base}/account")).await?;
        shown(c, "signin").await?;
        c.find(Locator::Css("#email"))
            .await?
            .send_keys(&email)
            .await?;
        c.find(Locator::Css("#password"))
            .await?
            .send_keys(PASSWORD)
            .await?;
        c.find(Locator::Css("#signin-form button[type=submit]"))
            .await?
            .click()
            .await?;
        shown(c, "account").await?;
        c.find(Locator::Css("#passkey-name"))
            .await?
            .send_keys("Chromium")
            .await?;
        c.find(Locator::Css("#passkey-add button[type=submit]"))
            .await?
            .click()
            .await?;
        c.wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#passkey-list li"))
            .await?;
        c.find(Locator::Css("#signout")).await?.click().await?;
        shown(c, "signin").await?;
        // the app sends the browser to sign in: the passkey alone
        c.goto(&authorize).await?;
        shown(c, "signin").await?;
        c.find(Locator::Css("#signin-passkey"))
            .await?
            .click()
            .await?;
        let allow = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("button[value=allow]"))
            .await?;
        allow.click().await?;
        let mut landed = String::new();
        for _ in 0..50 {
            landed = c.current_url().await?.to_string();
            if landed.starts_with(&callback) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // the account page lists the app
        c.goto(&format!("{base}/account")).await?;
        let app_item = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#app-list li"))
            .await?;
        assert!(app_item.text().await?.contains("Invoices"));
        for width in [360, 1280] {
            c.set_window_size(width, 1400).await?;
            c.execute(
                "document.getElementById('sessions-heading').scrollIntoView()",
                vec![],
            )
            .await?;
            screenshot(c, width, "connected-apps").await?;
        }
        Ok::<String, fantoccini::error::CmdError>(landed)
    }
    .await;
    let _ = browser_client.close().await;
    let landed = result.expect("the browser flow");
    assert!(landed.starts_with(&callback), "{landed}");
    let code = url::Url::parse(&landed)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let claims = id_token_of(
        &app,
        (&client_id, &secret),
        code.as_str(),
        &callback,
        verifier,
    )
    .await;
    assert_eq!(claims["amr"], json!(["hwk"]));
    assert_eq!(claims["acr"], "2");
}

/// An app for the hosted pages' browser tests: PUBLIC_URL on `localhost` (passkeys on
/// with `passkeys`), and a client "Invoices" whose callback is a port nothing listens on
/// (the browser's address bar tells where it went). (app, base URL, callback, id, secret)
async fn hosted_app(passkeys: bool) -> (TestApp, String, String, String, String) {
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let public = base.clone();
    let app = spawn_app_with(Backend::Sqlite, move |env| {
        env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("PUBLIC_URL".into(), public);
        env.insert("APP_NAME".into(), "Acme".into());
        if passkeys {
            env.insert("WEBAUTHN_RP_ID".into(), "localhost".into());
        }
    })
    .await;
    let (_, admin) = app.superuser_with_token().await;
    let callback = format!("http://127.0.0.1:{}/callback", free_port());
    let r = app
        .post_json(
            "/oauth/clients",
            &json!({"client_name": "Invoices", "redirect_uris": [callback], "scope": "openid email"}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status(), 201);
    let client: serde_json::Value = r.json().await.unwrap();
    let (client_id, secret) = (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    );
    (app, base, callback, client_id, secret)
}

/// The app's side: the code exchanged (200), and the claims of its ID token.
async fn id_token_of(
    app: &TestApp,
    (client_id, secret): (&str, &str),
    code: &str,
    callback: &str,
    verifier: &str,
) -> serde_json::Value {
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", callback),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: serde_json::Value = r.json().await.unwrap();
    let payload = tokens["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
