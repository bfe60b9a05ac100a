//! The HTML pages mailed links open, so the flows work without a separate frontend:
//! server-rendered, no JavaScript, no external assets. The token is in the URL, so
//! pages are never cached, never framed, and send no Referer.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use users_core::flows::recovery::{self, ResetError, VerifyError};
use users_core::mail::escape_html as escape;

use crate::bodies::ResetPasswordForm;
use crate::client_ip::Client;
use crate::error::ApiError;
use crate::extract::{urlencoded, ValidatedForm};
use crate::state::AppState;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;\
color:#1f2328;margin:0;padding:2rem 1rem;overflow-wrap:anywhere}main{max-width:26rem;margin:0 auto;background:#fff;border-radius:8px;\
padding:2rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}h1{font-size:1.35rem;margin-top:0}label{display:block;\
margin:1rem 0 .3rem;font-weight:600}input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;\
border:1px solid #c9ccd1;border-radius:6px;font-size:1rem}button{margin-top:1.3rem;width:100%;padding:.7rem;\
border:0;border-radius:6px;background:#2557d6;color:#fff;font-size:1rem;cursor:pointer}.error{background:#fdecea;\
color:#8a1c12;padding:.7rem;border-radius:6px}.ok{background:#e7f6ec;color:#135c2c;padding:.7rem;border-radius:6px}\
.hint{color:#57606a;font-size:.9rem}ul.scopes{padding-left:1.2rem}ul.scopes li{margin:.3rem 0}\
button.secondary{background:#fff;color:#2557d6;border:1px solid #2557d6}";

fn page(status: actix_web::http::StatusCode, app: &str, title: &str, body: &str) -> HttpResponse {
    page_with(status, app, title, body, CSP, "no-referrer")
}

fn page_with(
    status: actix_web::http::StatusCode,
    app: &str,
    title: &str,
    body: &str,
    csp: &str,
    referrer: &str,
) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"{referrer}\"><title>{title} · {app}</title>\
         <style>{STYLE}</style></head><body><main><h1>{title}</h1>{body}</main></body></html>",
        title = escape(title),
        app = escape(app),
    );
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::REFERRER_POLICY, referrer))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// A page with a title and a body of HTML (the caller escapes what it puts in).
pub fn message_page(
    state: &AppState,
    status: actix_web::http::StatusCode,
    title: &str,
    body: &str,
) -> HttpResponse {
    page(status, &state.core.config.app_name, title, body)
}

/// The consent page: its form posts to this origin (which sends `Origin`, hence
/// `Referrer-Policy: same-origin`), and the answer redirects to the app, which the
/// form's CSP must allow (`form-action` covers the redirects of a submission).
pub fn consent_page(
    state: &AppState,
    title: &str,
    body: &str,
    redirect_target: &str,
) -> HttpResponse {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {redirect_target}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    page_with(
        actix_web::http::StatusCode::OK,
        &state.core.config.app_name,
        title,
        body,
        &csp,
        "same-origin",
    )
}

fn reset_form(state: &AppState, token: &str, error: Option<&str>) -> HttpResponse {
    let min = state.core.policy.min_length;
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"reset-password\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <label for=\"password\">New password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" required minlength=\"{min}\" maxlength=\"128\" autocomplete=\"new-password\" autofocus>\
         <label for=\"confirm\">Repeat the new password</label>\
         <input type=\"password\" id=\"confirm\" name=\"confirm\" required minlength=\"{min}\" maxlength=\"128\" autocomplete=\"new-password\">\
         <p class=\"hint\">At least {min} characters. Common passwords and passwords containing your email address are refused.</p>\
         <button type=\"submit\">Set new password</button></form>",
        token = escape(token),
    );
    let status = if error.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::BAD_REQUEST
    };
    page(
        status,
        &state.core.config.app_name,
        "Choose a new password",
        &body,
    )
}

fn bad_link(state: &AppState, what: &str) -> HttpResponse {
    page(
        actix_web::http::StatusCode::BAD_REQUEST,
        &state.core.config.app_name,
        "This link does not work",
        &format!(
            "<p class=\"error\">The link is invalid, has expired, or was already used.</p><p>{}</p>",
            escape(what)
        ),
    )
}

fn query_token(req: &HttpRequest) -> Option<String> {
    urlencoded(req.query_string().as_bytes())
        .remove("token")
        .filter(|t| !t.is_empty())
}

/// `GET /reset-password?token=`: the new-password form.
#[utoipa::path(
    get,
    path = "/reset-password",
    tag = "pages",
    params(("token" = Option<String>, Query)),
    responses(
        (status = 200, description = "The new-password form", content_type = "text/html"),
        (status = 400, description = "No token", content_type = "text/html"),
    )
)]
pub async fn reset_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match query_token(&req) {
        Some(token) => reset_form(&state, &token, None),
        None => bad_link(
            &state,
            "Request a new password-reset email and open the link it holds.",
        ),
    }
}

/// `POST /reset-password` (the form): completes the reset and shows the outcome.
#[utoipa::path(
    post,
    path = "/reset-password",
    tag = "pages",
    request_body(
        content = ResetPasswordForm,
        content_type = "application/x-www-form-urlencoded"
    ),
    responses(
        (status = 200, description = "Password changed", content_type = "text/html"),
        (status = 400, description = "Refused, with the reason", content_type = "text/html"),
    )
)]
#[tracing::instrument(name = "reset_password_page", skip_all)]
pub async fn reset_submit(
    state: web::Data<AppState>,
    Client(client): Client,
    ValidatedForm(form): ValidatedForm<ResetPasswordForm>,
) -> Result<HttpResponse, ApiError> {
    let Some(token) = form.token else {
        return Ok(bad_link(
            &state,
            "Request a new password-reset email and open the link it holds.",
        ));
    };
    let Some(password) = form.password else {
        return Ok(reset_form(&state, &token, Some("Enter a new password.")));
    };
    if form
        .confirm
        .is_some_and(|c| c.expose_secret() != password.expose_secret())
    {
        return Ok(reset_form(
            &state,
            &token,
            Some("The two passwords differ."),
        ));
    }
    Ok(
        match recovery::reset_password(&state.core, &token, password, &client, state.now()).await {
            Ok(()) => page(
                actix_web::http::StatusCode::OK,
                &state.core.config.app_name,
                "Password changed",
                "<p class=\"ok\" role=\"status\">Your password has been changed. You can now sign in with it.</p>\
                 <p class=\"hint\">Every session signed in with the old password has been signed out.</p>",
            ),
            Err(ResetError::InvalidPassword(reason)) => reset_form(&state, &token, Some(&reason)),
            Err(ResetError::BadToken) => bad_link(&state, "Request a new password-reset email."),
            Err(e @ ResetError::Fault(_)) => return Err(e.into()),
        },
    )
}

/// `GET /verify?token=`: verifies the email and shows the outcome.
#[utoipa::path(
    get,
    path = "/verify",
    tag = "pages",
    params(("token" = Option<String>, Query)),
    responses(
        (status = 200, description = "Verified", content_type = "text/html"),
        (status = 400, description = "Bad link", content_type = "text/html"),
    )
)]
#[tracing::instrument(name = "verify_page", skip_all)]
pub async fn verify_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let Some(token) = query_token(&req) else {
        return Ok(bad_link(
            &state,
            "Request a new verification email and open the link it holds.",
        ));
    };
    Ok(match recovery::verify_email(&state.core, &token, &client, state.now()).await {
        Ok(_) => page(
            actix_web::http::StatusCode::OK,
            &state.core.config.app_name,
            "Email verified",
            "<p class=\"ok\" role=\"status\">Thank you: your email address is verified.</p>",
        ),
        Err(VerifyError::AlreadyVerified) => page(
            actix_web::http::StatusCode::OK,
            &state.core.config.app_name,
            "Email already verified",
            "<p class=\"ok\" role=\"status\">Your email address was already verified. Nothing else to do.</p>",
        ),
        Err(VerifyError::BadToken) => bad_link(&state, "Request a new verification email."),
        Err(e @ VerifyError::Fault(_)) => return Err(e.into()),
    })
}
