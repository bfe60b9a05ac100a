//! The authorization request and the consent page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use users_core::flows::oauth::authorize::{self, Authorized, ConsentError};
use users_core::mail::escape_html as escape;

use super::*;
use crate::auth::trusted_origin;
use crate::client_ip::Client;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /oauth/authorize`.
#[utoipa::path(
    get,
    path = "/oauth/authorize",
    operation_id = "oauth_authorize",
    tag = "oauth",
    params(
        ("response_type" = String, Query), ("client_id" = String, Query),
        ("redirect_uri" = Option<String>, Query), ("scope" = Option<String>, Query),
        ("state" = Option<String>, Query), ("nonce" = Option<String>, Query),
        ("code_challenge" = String, Query), ("code_challenge_method" = String, Query),
        ("prompt" = Option<String>, Query), ("max_age" = Option<i64>, Query),
        ("login_hint" = Option<String>, Query), ("resource" = Option<String>, Query),
    ),
    responses(
        (status = 302, description = "To the client (a code or an error), the sign-in page or the consent page"),
        (status = 400, description = "Unknown client or unregistered redirect URI: a page, no redirect", content_type = "text/html"),
    )
)]
#[tracing::instrument(name = "oauth_authorize", skip_all)]
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = pairs(req.query_string().as_bytes());
    let outcome = authorize::authorize(&state.core, query, cookie(&req), state.now()).await?;
    Ok(match outcome {
        Authorized::Page(why) => crate::routes::pages::message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in request does not work",
            &why,
        ),
        Authorized::Redirect(to) => redirect(&to),
        Authorized::SignIn {
            return_to,
            login_hint,
        } => {
            let mut url = format!(
                "{}/login?return_to={}",
                state.core.config.public_url,
                encode(&return_to)
            );
            if let Some(hint) = login_hint {
                url.push_str(&format!("&login_hint={}", encode(&hint)));
            }
            redirect(&url)
        }
        Authorized::Consent { request_id } => redirect(&format!(
            "{}/oauth/consent?request={}",
            state.core.config.public_url,
            encode(&request_id)
        )),
    })
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The words of a scope on the consent page.
fn scope_words(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account's id)".into(),
        "email" => "See your email address".into(),
        "profile" => "See your basic profile".into(),
        "offline_access" => "Stay signed in when you are away (a refresh token)".into(),
        "roles" => "See your roles".into(),
        other => format!("Use the permission “{other}”"),
    }
}

fn consent_error_page(state: &AppState, e: ConsentError) -> Result<HttpResponse, ApiError> {
    let (status, text) = match e {
        ConsentError::Expired => (
            StatusCode::BAD_REQUEST,
            "This request has expired or was answered already. Go back to the application and start again.",
        ),
        ConsentError::NotSignedIn => (
            StatusCode::FORBIDDEN,
            "You are not signed in as the person this request is for.",
        ),
        ConsentError::Forged => (
            StatusCode::FORBIDDEN,
            "This form does not belong to this request.",
        ),
        ConsentError::Fault(f) => return Err(f.into()),
    };
    Ok(crate::routes::pages::message_page(
        state,
        status,
        "Cannot continue",
        text,
    ))
}

/// `GET /oauth/consent?request=`: the consent page.
#[utoipa::path(
    get,
    path = "/oauth/consent",
    operation_id = "oauth_consent_page",
    tag = "oauth",
    params(("request" = String, Query)),
    responses(
        (status = 200, description = "The consent page", content_type = "text/html"),
        (status = 400, description = "Expired or answered request", content_type = "text/html"),
        (status = 403, description = "Signed in as someone else, or not at all", content_type = "text/html"),
    )
)]
pub async fn consent_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = pairs(req.query_string().as_bytes());
    let id = query.get("request").unwrap_or_default().to_owned();
    let view = match authorize::consent_view(&state.core, &id, cookie(&req), state.now()).await {
        Ok(v) => v,
        Err(e) => return consent_error_page(&state, e),
    };
    let scopes: String = view
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", escape(&scope_words(s))))
        .collect();
    let site = view
        .client_uri
        .as_ref()
        .map(|u| format!(" (<span class=\"hint\">{}</span>)", escape(u)))
        .unwrap_or_default();
    let body = format!(
        "<p><strong>{client}</strong>{site} asks to sign you in as <strong>{email}</strong> and to:</p>\
         <ul class=\"scopes\">{scopes}</ul>\
         <p class=\"hint\">You will be sent back to <strong>{host}</strong>. You can remove this access later on your account page.</p>\
         <form method=\"post\" action=\"/oauth/consent\">\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>\
         </form>",
        client = escape(&view.client_name),
        email = escape(&view.user_email),
        host = escape(&view.redirect_host),
        request = escape(&view.request_id),
        csrf = escape(&view.csrf),
    );
    Ok(crate::routes::pages::consent_page(
        &state,
        &format!("Allow {}?", view.client_name),
        &body,
        &view.redirect_target,
    ))
}

/// `POST /oauth/consent`: the decision (form fields `request`, `csrf`, `decision`).
#[utoipa::path(
    post,
    path = "/oauth/consent",
    operation_id = "oauth_consent_decide",
    tag = "oauth",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "`request`, `csrf`, `decision` (`allow` or `deny`)"),
    responses(
        (status = 302, description = "Back to the client with a code, or `access_denied`"),
        (status = 400, description = "Expired or answered request", content_type = "text/html"),
        (status = 403, description = "Another origin, a forged form, or another person", content_type = "text/html"),
    )
)]
#[tracing::instrument(name = "oauth_consent", skip_all)]
pub async fn consent_decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    if !trusted_origin(req.headers(), &state) {
        return consent_error_page(&state, ConsentError::Forged);
    }
    let fields = pairs(&body);
    let (Some(id), Some(csrf), Some(decision)) = (
        fields.get("request"),
        fields.get("csrf"),
        fields.get("decision"),
    ) else {
        return consent_error_page(&state, ConsentError::Forged);
    };
    let allow = match decision {
        "allow" => true,
        "deny" => false,
        _ => return consent_error_page(&state, ConsentError::Forged),
    };
    match authorize::decide(
        &state.core,
        id,
        csrf,
        allow,
        cookie(&req),
        &from,
        state.now(),
    )
    .await
    {
        Ok(to) => Ok(redirect(&to)),
        Err(e) => consent_error_page(&state, e),
    }
}
