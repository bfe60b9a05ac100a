//! The mailed reset link in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them when missing).

use std::time::Duration;

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
