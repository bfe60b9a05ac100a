//! `GET /account`: the page where a person uses their account (docs/second-factor.md): sign
//! in with a password, a passkey or a provider (with the second step when needed), add and
//! remove passkeys, turn on TOTP from a QR code and see the recovery codes once, make API
//! keys (each shown once, with a copy button) and revoke them, see the sessions and end
//! them, sign out. Server-rendered HTML with one script and one style
//! sheet of its own, inline and allowed by their hashes in the CSP: no CDN, nothing
//! external. The script talks to the JSON API with the cookie transport.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use base64::Engine;
use sha2::{Digest, Sha256};
use users_core::mail::escape_html as escape;

use crate::state::AppState;

const SCRIPT: &str = include_str!("../../assets/account.js");
const STYLE: &str = include_str!("../../assets/account.css");

fn sha256_b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

/// Scripts and styles by hash only; the page talks to its own origin only.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             connect-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
            sha256_b64(SCRIPT),
            sha256_b64(STYLE)
        )
    })
}

/// `GET /account`.
#[utoipa::path(
    get,
    path = "/account",
    tag = "pages",
    responses((status = 200, description = "The account page", content_type = "text/html"))
)]
pub async fn page(state: web::Data<AppState>) -> HttpResponse {
    render(&state, None)
}

/// Where the sign-in page goes once the person is signed in.
#[derive(Debug, Clone)]
pub struct SignInFor {
    /// A path of this service (the authorization request that sent the person here).
    pub return_to: String,
    pub login_hint: Option<String>,
}

/// A path of this service only (`/…`, never `//host` or `/\host`): the sign-in page
/// never sends the browser, or a session, elsewhere.
fn local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && !path.chars().any(|c| c.is_control() || c == '\\')
}

/// `GET /login?return_to=`: the hosted sign-in page of the provider
/// (docs/oauth-provider.md): the account page's sign-in (password, passkey, providers,
/// the second step, sign-up and forgot-password), which returns to `return_to`.
#[utoipa::path(
    get,
    path = "/login",
    operation_id = "login_page",
    tag = "pages",
    params(("return_to" = Option<String>, Query), ("login_hint" = Option<String>, Query)),
    responses((status = 200, description = "The sign-in page", content_type = "text/html"))
)]
pub async fn login(state: web::Data<AppState>, req: actix_web::HttpRequest) -> HttpResponse {
    let query = crate::extract::urlencoded(req.query_string().as_bytes());
    let signin = query
        .get("return_to")
        .filter(|p| local_path(p))
        .map(|p| SignInFor {
            return_to: p.clone(),
            login_hint: query.get("login_hint").cloned(),
        })
        .unwrap_or(SignInFor {
            return_to: "/account".into(),
            login_hint: query.get("login_hint").cloned(),
        });
    render(&state, Some(signin))
}

fn render(state: &AppState, signin: Option<SignInFor>) -> HttpResponse {
    let app = escape(&state.core.config.app_name);
    let passkeys_hidden = if state.core.webauthn.is_none() {
        " hidden"
    } else {
        ""
    };
    let body_data = match &signin {
        Some(s) => format!(
            " data-return-to=\"{}\" data-login-hint=\"{}\"",
            escape(&s.return_to),
            escape(s.login_hint.as_deref().unwrap_or_default())
        ),
        None => String::new(),
    };
    let signed_out = signed_out_sections(state, passkeys_hidden);
    let account = account_sections(passkeys_hidden);
    let html = format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Your account · {app}</title>
<style>{STYLE}</style></head>
<body{body_data}><main>
<header class="top"><h1>{app}</h1></header>
<p id="status" class="message" role="status" aria-live="polite" hidden></p>

{signed_out}{account}{ACCOUNT_LISTS}</main>
<script>{SCRIPT}</script>
</body></html>"##
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp()))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// A "Sign in with …" button per configured provider, in one row; nothing without any.
fn provider_buttons(state: &AppState) -> String {
    let mut providers = String::new();
    for name in state.core.providers.names() {
        let label = state
            .core
            .providers
            .get(name)
            .map(|p| p.settings.label.clone())
            .unwrap_or_else(|| name.to_owned());
        providers.push_str(&format!(
            "<button type=\"button\" class=\"secondary\" data-provider=\"{}\">Sign in with {}</button>",
            escape(name),
            escape(&label)
        ));
    }
    if providers.is_empty() {
        String::new()
    } else {
        format!("<div class=\"actions\">{providers}</div>")
    }
}

/// What a person who is not signed in sees: sign-in, sign-up, forgot-password and the
/// second step.
fn signed_out_sections(state: &AppState, passkeys_hidden: &str) -> String {
    let providers = provider_buttons(state);
    let min = state.core.policy.min_length;
    format!(
        r##"<section id="signin" class="card" aria-labelledby="signin-heading" hidden>
  <h2 id="signin-heading" tabindex="-1">Sign in</h2>
  <form id="signin-form">
    <label for="email">Email</label>
    <input id="email" name="username" type="email" autocomplete="username webauthn" required>
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required>
    <div class="actions"><button type="submit">Sign in</button></div>
  </form>
  <p class="divider">or</p>
  <div class="actions"{passkeys_hidden}><button type="button" id="signin-passkey" class="secondary">Sign in with a passkey</button></div>
  {providers}
  <p class="links"><a href="#signup" id="to-signup">Create an account</a> · <a href="#forgot" id="to-forgot">Forgot your password?</a></p>
</section>

<section id="signup" class="card" aria-labelledby="signup-heading" hidden>
  <h2 id="signup-heading" tabindex="-1">Create an account</h2>
  <form id="signup-form">
    <label for="signup-email">Email</label>
    <input id="signup-email" type="email" autocomplete="email" required>
    <label for="signup-password">Password</label>
    <input id="signup-password" type="password" autocomplete="new-password" minlength="{min}" maxlength="128" required>
    <p class="hint">At least {min} characters. Common passwords and passwords containing your email address are refused.</p>
    <div class="actions"><button type="submit">Create the account</button><button type="button" class="secondary back-to-signin">Back to sign in</button></div>
  </form>
</section>

<section id="forgot" class="card" aria-labelledby="forgot-heading" hidden>
  <h2 id="forgot-heading" tabindex="-1">Forgot your password?</h2>
  <form id="forgot-form">
    <label for="forgot-email">Email</label>
    <input id="forgot-email" type="email" autocomplete="email" required>
    <p class="hint">If an account has this address, a mail with a link to choose a new password is on its way.</p>
    <div class="actions"><button type="submit">Send the link</button><button type="button" class="secondary back-to-signin">Back to sign in</button></div>
  </form>
</section>

<section id="second-step" class="card" aria-labelledby="second-heading" hidden>
  <h2 id="second-heading" tabindex="-1">One more step</h2>
  <p class="hint">Your account has two-step verification. Confirm it is you.</p>
  <form id="mfa-totp">
    <label for="mfa-code">Code from your authenticator app</label>
    <input id="mfa-code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="8">
    <div class="actions"><button type="submit">Continue</button></div>
  </form>
  <form id="mfa-recovery">
    <label for="mfa-recovery-code">Or a recovery code</label>
    <input id="mfa-recovery-code" type="text" autocomplete="off" spellcheck="false">
    <div class="actions"><button type="submit" class="secondary">Use the recovery code</button></div>
  </form>
  <div class="actions">
    <button type="button" id="mfa-passkey" class="secondary"{passkeys_hidden}>Use a passkey</button>
    <button type="button" id="mfa-cancel" class="secondary">Cancel</button>
  </div>
</section>

"##
    )
}

/// The signed-in person's account, passkeys and second factor.
fn account_sections(passkeys_hidden: &str) -> String {
    format!(
        r##"<div id="account" hidden>
  <section class="card" aria-labelledby="account-heading">
    <h2 id="account-heading" tabindex="-1">Your account</h2>
    <p>Signed in as <strong id="who"></strong>.</p>
    <div class="actions"><button type="button" id="signout" class="secondary">Sign out</button></div>
  </section>

  <section id="passkeys" class="card" aria-labelledby="passkeys-heading"{passkeys_hidden}>
    <h2 id="passkeys-heading">Passkeys</h2>
    <p class="hint">Sign in with your device's screen lock or a security key instead of a password.</p>
    <p id="passkey-none" class="hint">No passkeys yet.</p>
    <ul id="passkey-list" class="items"></ul>
    <form id="passkey-add">
      <label for="passkey-name">Name of the new passkey (optional)</label>
      <input id="passkey-name" type="text" maxlength="64" placeholder="e.g. Laptop">
      <label for="passkey-password">Your password, to add or remove a passkey (not needed within 10 minutes of signing in)</label>
      <input id="passkey-password" type="password" autocomplete="current-password">
      <div class="actions"><button type="submit">Add a passkey</button></div>
    </form>
  </section>

  <section id="totp" class="card" aria-labelledby="totp-heading">
    <h2 id="totp-heading">Two-step verification</h2>
    <p>Authenticator app: <span id="totp-state"></span></p>
    <form id="totp-start" hidden>
      <label for="totp-password">Your password (not needed within 10 minutes of signing in)</label>
      <input id="totp-password" type="password" autocomplete="current-password">
      <div class="actions"><button type="submit">Set up an authenticator app</button></div>
    </form>
    <div id="totp-setup" hidden>
      <form id="totp-confirm">
        <p>Scan this code with your authenticator app, or type the key below into it.</p>
        <div id="totp-qr" class="qr" role="img" aria-label="QR code of the authenticator key"></div>
        <code id="totp-secret" class="secret"></code>
        <label for="totp-confirm-code">The six-digit code the app shows</label>
        <input id="totp-confirm-code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="8">
        <div class="actions"><button type="submit">Turn on</button></div>
      </form>
      <div id="totp-codes" hidden>
        <h3 id="totp-codes-heading" tabindex="-1">Your recovery codes</h3>
        <p>Each works once, if you lose your authenticator. Keep them somewhere safe: they are shown only now.</p>
        <ol id="totp-code-list" class="codes"></ol>
        <div class="actions"><button type="button" id="totp-done">I have saved them</button></div>
      </div>
    </div>
    <form id="totp-manage">
      <div id="totp-on" hidden>
        <label for="totp-manage-code">A code from your app, or a recovery code</label>
        <input id="totp-manage-code" type="text" autocomplete="off" spellcheck="false">
        <div class="actions">
          <button type="submit" id="totp-new-codes" class="secondary">New recovery codes</button>
          <button type="submit" id="totp-off" class="danger">Turn off</button>
        </div>
      </div>
    </form>
  </section>

"##
    )
}

/// The signed-in person's API keys, sessions and connected apps (the end of the account
/// part the script fills in).
const ACCOUNT_LISTS: &str = r##"  <section id="api-keys" class="card" aria-labelledby="keys-heading">
    <h2 id="keys-heading">API keys</h2>
    <p class="hint">For scripts and CI: a key acts as you until you revoke it, but cannot change how you sign in.</p>
    <p id="key-none" class="hint">No API keys yet.</p>
    <ul id="key-list" class="items"></ul>
    <div id="key-new" hidden>
      <h3 id="key-new-heading" tabindex="-1">Your new key</h3>
      <p>Copy it now: it is shown only this once.</p>
      <code id="key-value" class="secret"></code>
      <div class="actions">
        <button type="button" id="key-copy">Copy</button>
        <button type="button" id="key-done" class="secondary">Done</button>
      </div>
    </div>
    <form id="key-add">
      <label for="key-name">Name of the new key</label>
      <input id="key-name" type="text" maxlength="100" required placeholder="e.g. CI">
      <label for="key-password">Your password, to create a key (not needed within 10 minutes of signing in)</label>
      <input id="key-password" type="password" autocomplete="current-password">
      <div class="actions"><button type="submit">Create a key</button></div>
    </form>
  </section>

  <section class="card" aria-labelledby="sessions-heading">
    <h2 id="sessions-heading">Where you are signed in</h2>
    <ul id="session-list" class="items"></ul>
    <div class="actions"><button type="button" id="sessions-others" class="secondary">Sign out everywhere else</button></div>
  </section>

  <section class="card" aria-labelledby="apps-heading">
    <h2 id="apps-heading">Connected apps</h2>
    <p class="hint">Apps you allowed to sign you in. Removing one signs it out and forgets what you allowed.</p>
    <p id="apps-none" class="hint">No connected apps.</p>
    <ul id="app-list" class="items"></ul>
  </section>
</div>
"##;
