//! The OAuth 2.1 / OpenID Connect provider's routes (docs/oauth-provider.md): discovery,
//! client registration, the authorization request and its consent page, the token,
//! userinfo, introspection and revocation endpoints, sign-out, and the person's own
//! grants. Under `/oauth/` errors are OAuth's: `{"error", "error_description"}`
//! ([`OAuthReply`]), never `{"detail"}`; the person's grants under `/users/me` keep the
//! service's own shape.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use base64::Engine;
use serde_json::{json, Value};
use users_core::flows::auth;
use users_core::flows::oauth::authorize::{self, Authorized, ConsentError};
use users_core::flows::oauth::clients::{self, Client as OAuthClient, ClientAuth, Registrar};
use users_core::flows::oauth::resource::{self, SignedOut, UserinfoError};
use users_core::flows::oauth::{grants, token, OAuthError, Params};
use users_core::mail::escape_html as escape;
use users_core::Fault;

use crate::answers::{
    InvalidClient401, RegistryNoToken401, RegistryNotSuperuser403, UnknownClient404,
};
use crate::auth::{bearer_token, trusted_origin, CurrentUser, AUTH_COOKIE};
use crate::client_ip::Client;
use crate::error::{ApiError, ErrorDetail, OAuthErrorBody};
use crate::state::AppState;

/// An OAuth error as the wire carries it (RFC 6749 §5.2), with its status.
#[derive(Debug)]
pub struct OAuthReply(pub OAuthError);

impl std::fmt::Display for OAuthReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.code())
    }
}

impl From<OAuthError> for OAuthReply {
    fn from(e: OAuthError) -> Self {
        OAuthReply(e)
    }
}

impl From<Fault> for OAuthReply {
    fn from(e: Fault) -> Self {
        OAuthReply(OAuthError::Fault(e))
    }
}

impl ResponseError for OAuthReply {
    fn status_code(&self) -> StatusCode {
        match &self.0 {
            OAuthError::InvalidClient { .. } | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            OAuthError::InsufficientScope => StatusCode::FORBIDDEN,
            OAuthError::UnknownClient => StatusCode::NOT_FOUND,
            OAuthError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::Fault(Fault::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError::Fault(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let OAuthError::Fault(Fault::Internal(cause)) = &self.0 {
            tracing::error!(error = %cause, "an OAuth request failed");
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CACHE_CONTROL, "no-store"));
        resp.insert_header((header::PRAGMA, "no-cache"));
        match &self.0 {
            OAuthError::InvalidClient { basic: true } => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"oauth\""));
            }
            OAuthError::InvalidToken => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
            }
            OAuthError::InsufficientScope => {
                resp.insert_header((
                    header::WWW_AUTHENTICATE,
                    "Bearer error=\"insufficient_scope\"",
                ));
            }
            OAuthError::Limited { retry_after_secs } => {
                resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            OAuthError::Fault(_) => {
                resp.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        resp.json(json!({
            "error": self.0.code(),
            "error_description": self.0.description(),
        }))
    }
}

type OAuthResult = Result<HttpResponse, OAuthReply>;

/// A JSON answer that must not be cached (tokens, registrations).
fn no_store(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// The pairs of a query or form, repeats kept (a repeat is the flow's to refuse).
fn pairs(data: &[u8]) -> Params {
    Params(
        url::form_urlencoded::parse(data)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

/// The form of a POST: `application/x-www-form-urlencoded` only (RFC 6749 §3.2).
fn form(req: &HttpRequest, body: &[u8]) -> Result<Params, OAuthReply> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        )
        .into());
    }
    Ok(pairs(body))
}

/// The client authentication a request carries: HTTP Basic (RFC 6749 §2.3.1: each part
/// form-urlencoded) or the form's `client_id` / `client_secret`.
fn client_auth(req: &HttpRequest, params: &Params) -> Result<ClientAuth, OAuthReply> {
    let basic = match req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        None => None,
        Some(value) => {
            let (scheme, encoded) = value.trim().split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::InvalidClient { basic: false }.into());
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(OAuthError::InvalidClient { basic: true })?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or(OAuthError::InvalidClient { basic: true })?;
            let unescape = |s: &str| -> String {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((unescape(id), unescape(secret)))
        }
    };
    Ok(ClientAuth {
        basic,
        form_id: params.get("client_id").map(str::to_owned),
        form_secret: params.get("client_secret").map(str::to_owned),
    })
}

fn cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(AUTH_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

// ---- discovery ----

/// The discovery document (OpenID Connect Discovery 1.0, RFC 8414).
pub fn discovery_document(state: &AppState) -> Value {
    let issuer = state.core.config.public_url.clone();
    let at = |path: &str| format!("{issuer}{path}");
    json!({
        "issuer": issuer,
        "authorization_endpoint": at("/oauth/authorize"),
        "token_endpoint": at("/oauth/token"),
        "userinfo_endpoint": at("/oauth/userinfo"),
        "jwks_uri": at("/.well-known/jwks.json"),
        "registration_endpoint": at("/oauth/clients"),
        "introspection_endpoint": at("/oauth/introspect"),
        "revocation_endpoint": at("/oauth/revoke"),
        "end_session_endpoint": at("/oauth/logout"),
        "scopes_supported": users_domain::oauth::STANDARD_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": clients::ID_TOKEN_ALGORITHMS,
        "token_endpoint_auth_methods_supported": clients::AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr",
            "acr", "email", "email_verified", "roles",
        ],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    operation_id = "oauth_discovery",
    tag = "oauth",
    responses((status = 200, description = "The provider's discovery document", body = Object))
)]
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(discovery_document(&state))
}

// ---- clients ----

fn client_json(client: &OAuthClient, secret: Option<&str>, state: &AppState) -> Value {
    let mut out = serde_json::to_value(&client.metadata).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut out {
        map.insert("client_id".into(), json!(client.client_id));
        map.insert(
            "client_id_issued_at".into(),
            json!(client.created_at.secs()),
        );
        if let Some(s) = secret {
            map.insert("client_secret".into(), json!(s));
        }
        if clients::has_secret(client) {
            map.insert("client_secret_expires_at".into(), json!(0));
        }
        map.insert(
            "registration_client_uri".into(),
            json!(format!(
                "{}/oauth/clients/{}",
                state.core.config.public_url, client.client_id
            )),
        );
    }
    out
}

/// The superuser of a registration's `Authorization: Bearer`, as OAuth answers it:
/// no or a bad token 401 `invalid_token`, a non-superuser 403 `insufficient_scope`.
async fn superuser(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<users_domain::UserId>, OAuthReply> {
    let Some(token) = bearer_token(req.head()) else {
        return Ok(None);
    };
    match auth::authenticate(&state.core, token, state.now()).await {
        // not an API key: the provider's routes take none (docs/roles-and-api-keys.md)
        Ok(a) if a.by_api_key() => Err(OAuthError::InvalidToken.into()),
        Ok(a) if a.user().is_superuser => Ok(Some(a.user().id)),
        Ok(_) => Err(OAuthError::InsufficientScope.into()),
        Err(auth::AuthError::Unauthorized) => Err(OAuthError::InvalidToken.into()),
        Err(auth::AuthError::Fault(f)) => Err(f.into()),
    }
}

async fn require_superuser(
    state: &AppState,
    req: &HttpRequest,
) -> Result<users_domain::UserId, OAuthReply> {
    superuser(state, req)
        .await?
        .ok_or_else(|| OAuthError::InvalidToken.into())
}

fn json_body(body: &[u8]) -> Result<Value, OAuthReply> {
    serde_json::from_slice(body)
        .map_err(|e| OAuthError::InvalidClientMetadata(format!("the body is not JSON: {e}")).into())
}

/// `POST /oauth/clients`: registers a client (RFC 7591).
#[utoipa::path(
    post,
    path = "/oauth/clients",
    operation_id = "oauth_register_client",
    tag = "oauth",
    security(("bearer" = [])),
    request_body(content = Object, description = "Client metadata (RFC 7591)"),
    responses(
        (status = 201, description = "Registered; `client_secret` is shown once", body = Object),
        (status = 400, description = "`invalid_redirect_uri` or `invalid_client_metadata`", body = OAuthErrorBody),
        RegistryNoToken401,
        RegistryNotSuperuser403,
    )
)]
pub async fn register_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    body: web::Bytes,
) -> OAuthResult {
    let by = match superuser(&state, &req).await? {
        Some(id) => Registrar::Superuser(id),
        None => Registrar::Anyone,
    };
    let body = json_body(&body)?;
    let registered = clients::register(&state.core, by, &body, &from, state.now()).await?;
    Ok(no_store(
        StatusCode::CREATED,
        &client_json(
            &registered.client,
            registered.client_secret.as_deref(),
            &state,
        ),
    ))
}

/// `GET /oauth/clients`: every client, without secrets (superusers).
#[utoipa::path(
    get,
    path = "/oauth/clients",
    operation_id = "oauth_list_clients",
    tag = "oauth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The registered clients", body = [Object]),
        RegistryNoToken401,
        RegistryNotSuperuser403,
    )
)]
pub async fn list_clients(state: web::Data<AppState>, req: HttpRequest) -> OAuthResult {
    require_superuser(&state, &req).await?;
    let all = clients::list(&state.core).await?;
    let body: Vec<Value> = all.iter().map(|c| client_json(c, None, &state)).collect();
    Ok(no_store(StatusCode::OK, &body))
}

/// `GET /oauth/clients/{client_id}`.
#[utoipa::path(
    get,
    path = "/oauth/clients/{client_id}",
    operation_id = "oauth_get_client",
    tag = "oauth",
    security(("bearer" = [])),
    params(("client_id" = String, Path)),
    responses(
        (status = 200, description = "The client's metadata", body = Object),
        RegistryNoToken401,
        RegistryNotSuperuser403,
        UnknownClient404,
    )
)]
pub async fn get_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> OAuthResult {
    require_superuser(&state, &req).await?;
    let client = clients::get(&state.core, &id)
        .await?
        .ok_or(OAuthError::UnknownClient)?;
    Ok(no_store(
        StatusCode::OK,
        &client_json(&client, None, &state),
    ))
}

/// `PUT /oauth/clients/{client_id}`: replaces the metadata (RFC 7592).
#[utoipa::path(
    put,
    path = "/oauth/clients/{client_id}",
    operation_id = "oauth_replace_client",
    tag = "oauth",
    security(("bearer" = [])),
    params(("client_id" = String, Path)),
    request_body(content = Object, description = "Client metadata (RFC 7591)"),
    responses(
        (status = 200, description = "The new metadata", body = Object),
        (status = 400, description = "`invalid_redirect_uri` or `invalid_client_metadata`", body = OAuthErrorBody),
        RegistryNoToken401,
        RegistryNotSuperuser403,
        UnknownClient404,
    )
)]
pub async fn replace_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    id: web::Path<String>,
    body: web::Bytes,
) -> OAuthResult {
    let by = require_superuser(&state, &req).await?;
    let body = json_body(&body)?;
    let replaced = clients::replace(&state.core, by, &id, &body, &from, state.now()).await?;
    Ok(no_store(
        StatusCode::OK,
        &client_json(&replaced.client, replaced.client_secret.as_deref(), &state),
    ))
}

/// `DELETE /oauth/clients/{client_id}`: every grant and token of the client ends.
#[utoipa::path(
    delete,
    path = "/oauth/clients/{client_id}",
    operation_id = "oauth_delete_client",
    tag = "oauth",
    security(("bearer" = [])),
    params(("client_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        RegistryNoToken401,
        RegistryNotSuperuser403,
        UnknownClient404,
    )
)]
pub async fn delete_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    id: web::Path<String>,
) -> OAuthResult {
    let by = require_superuser(&state, &req).await?;
    if !clients::delete(&state.core, by, &id, &from, state.now()).await? {
        return Err(OAuthError::UnknownClient.into());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /oauth/clients/{client_id}/secret`: a new secret; the old one stops at once.
#[utoipa::path(
    post,
    path = "/oauth/clients/{client_id}/secret",
    operation_id = "oauth_rotate_secret",
    tag = "oauth",
    security(("bearer" = [])),
    params(("client_id" = String, Path)),
    responses(
        (status = 200, description = "The client with its new `client_secret`", body = Object),
        (status = 400, description = "`invalid_client_metadata`: a public client", body = OAuthErrorBody),
        RegistryNoToken401,
        RegistryNotSuperuser403,
        UnknownClient404,
    )
)]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    id: web::Path<String>,
) -> OAuthResult {
    let by = require_superuser(&state, &req).await?;
    let rotated = clients::rotate_secret(&state.core, by, &id, &from, state.now()).await?;
    Ok(no_store(
        StatusCode::OK,
        &client_json(&rotated.client, rotated.client_secret.as_deref(), &state),
    ))
}

fn roles_json(roles: &clients::ClientRoles) -> Value {
    json!({"roles": roles.roles, "permissions": roles.permissions})
}

/// `GET /oauth/clients/{client_id}/roles`: what the client's own tokens may hold.
#[utoipa::path(
    get,
    path = "/oauth/clients/{client_id}/roles",
    operation_id = "oauth_client_roles",
    tag = "oauth",
    security(("bearer" = [])),
    params(("client_id" = String, Path)),
    responses(
        (status = 200, description = "`{\"roles\": [names], \"permissions\": [union]}`", body = Object),
        RegistryNoToken401,
        RegistryNotSuperuser403,
        UnknownClient404,
    )
)]
pub async fn client_roles(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> OAuthResult {
    require_superuser(&state, &req).await?;
    let roles = clients::roles_of(&state.core, &id).await?;
    Ok(no_store(StatusCode::OK, &roles_json(&roles)))
}

/// `PUT /oauth/clients/{client_id}/roles` `{"roles": [names]}`: replaces the set.
#[utoipa::path(
    put,
    path = "/oauth/clients/{client_id}/roles",
    operation_id = "oauth_set_client_roles",
    tag = "oauth",
    security(("bearer" = [])),
    params(("client_id" = String, Path)),
    request_body(content = Object, description = "`{\"roles\": [names]}`"),
    responses(
        (status = 200, description = "`{\"roles\": [names], \"permissions\": [union]}`", body = Object),
        (status = 400, description = "`invalid_request`: an unknown role, or not a list of names", body = OAuthErrorBody),
        RegistryNoToken401,
        RegistryNotSuperuser403,
        UnknownClient404,
    )
)]
pub async fn set_client_roles(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    id: web::Path<String>,
    body: web::Bytes,
) -> OAuthResult {
    let by = require_superuser(&state, &req).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| OAuthError::InvalidRequest(format!("the body is not JSON: {e}")))?;
    let names: Vec<String> = body
        .get("roles")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .ok_or_else(|| OAuthError::InvalidRequest("`roles` must be a list of role names".into()))?;
    let roles = clients::set_roles(&state.core, by, &id, names, &from, state.now()).await?;
    Ok(no_store(StatusCode::OK, &roles_json(&roles)))
}

// ---- authorization and consent ----

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, to.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

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

// ---- token, userinfo, introspection, revocation, sign-out ----

/// `POST /oauth/token`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    operation_id = "oauth_token_endpoint",
    tag = "oauth",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "`grant_type` and its parameters (RFC 6749 §4)"),
    responses(
        (status = 200, description = "The tokens", body = Object),
        (status = 400, description = "`invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `invalid_target`", body = OAuthErrorBody),
        InvalidClient401,
    )
)]
#[tracing::instrument(name = "oauth_token", skip_all)]
pub async fn token_endpoint(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    body: web::Bytes,
) -> OAuthResult {
    let params = form(&req, &body)?;
    let auth = client_auth(&req, &params)?;
    let answer = token::token(&state.core, params, auth, &from, state.now()).await?;
    Ok(no_store(StatusCode::OK, &answer))
}

/// `GET|POST /oauth/userinfo`.
#[utoipa::path(
    get,
    path = "/oauth/userinfo",
    operation_id = "oauth_userinfo",
    tag = "oauth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`sub`, and with scope `email` `email` and `email_verified`", body = Object),
        (status = 401, description = "`invalid_token`: expired, revoked, of an ended grant or session, of an inactive user, or not ours", body = OAuthErrorBody),
        (status = 403, description = "`insufficient_scope`: no `openid`", body = OAuthErrorBody),
    )
)]
pub async fn userinfo(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> OAuthResult {
    let token = match bearer_token(req.head()) {
        Some(t) => t,
        // RFC 6750 §2.2: the token in a form body of a POST
        None if req.method() == actix_web::http::Method::POST => form(&req, &body)
            .ok()
            .and_then(|p| p.get("access_token").map(str::to_owned))
            .ok_or(OAuthError::InvalidToken)?,
        None => return Err(OAuthError::InvalidToken.into()),
    };
    match resource::userinfo(&state.core, &token, state.now()).await {
        Ok(claims) => Ok(no_store(StatusCode::OK, &claims)),
        Err(UserinfoError::InvalidToken) => Err(OAuthError::InvalidToken.into()),
        Err(UserinfoError::InsufficientScope) => Err(OAuthError::InsufficientScope.into()),
        Err(UserinfoError::Fault(f)) => Err(f.into()),
    }
}

/// `POST /oauth/introspect` (RFC 7662).
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    operation_id = "oauth_introspect",
    tag = "oauth",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "`token`, optional `token_type_hint`"),
    responses(
        (status = 200, description = "`{\"active\": true, …}` or `{\"active\": false}`", body = Object),
        (status = 400, description = "`invalid_request`, `unauthorized_client`", body = OAuthErrorBody),
        InvalidClient401,
    )
)]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    body: web::Bytes,
) -> OAuthResult {
    let params = form(&req, &body)?;
    let auth = client_auth(&req, &params)?;
    let answer = resource::introspect(&state.core, params, auth, &from, state.now()).await?;
    Ok(no_store(StatusCode::OK, &answer))
}

/// `POST /oauth/revoke` (RFC 7009).
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    operation_id = "oauth_revoke",
    tag = "oauth",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "`token`, optional `token_type_hint`"),
    responses(
        (status = 200, description = "Revoked, or not a token of this client (the same answer)"),
        (status = 400, description = "`invalid_request`", body = OAuthErrorBody),
        InvalidClient401,
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    body: web::Bytes,
) -> OAuthResult {
    let params = form(&req, &body)?;
    let auth = client_auth(&req, &params)?;
    resource::revoke(&state.core, params, auth, &from, state.now()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `GET /oauth/logout` (RP-Initiated Logout 1.0).
#[utoipa::path(
    get,
    path = "/oauth/logout",
    operation_id = "oauth_logout",
    tag = "oauth",
    params(
        ("id_token_hint" = Option<String>, Query),
        ("post_logout_redirect_uri" = Option<String>, Query),
        ("state" = Option<String>, Query),
    ),
    responses(
        (status = 302, description = "Signed out; back to the client's registered URI"),
        (status = 200, description = "Signed out; a page", content_type = "text/html"),
        (status = 400, description = "No ID token of the browser's person: not signed out", content_type = "text/html"),
    )
)]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
) -> Result<HttpResponse, ApiError> {
    let params = pairs(req.query_string().as_bytes());
    let outcome = resource::logout(&state.core, params, cookie(&req), &from, state.now()).await?;
    let expired = crate::routes::auth::auth_cookie(&state, "\"\"", 0);
    let mut resp = match outcome {
        SignedOut::Redirect(to) => redirect(&to),
        SignedOut::Page => crate::routes::pages::message_page(
            &state,
            StatusCode::OK,
            "Signed out",
            "<p class=\"ok\" role=\"status\">You are signed out.</p>",
        ),
        SignedOut::NotSignedOut => {
            return Ok(crate::routes::pages::message_page(
                &state,
                StatusCode::BAD_REQUEST,
                "Not signed out",
                "<p class=\"error\">This sign-out request did not come with a sign-in of yours, so \
                 nothing was changed. To sign out, use <a href=\"/account\">your account page</a>.</p>",
            ))
        }
    };
    if let Ok(v) = header::HeaderValue::from_str(&expired) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

// ---- the person's grants ----

/// `GET /users/me/grants`: the apps the caller let in.
#[utoipa::path(
    get,
    path = "/users/me/grants",
    operation_id = "oauth_my_grants",
    tag = "oauth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`[{client_id, client_name, scopes, granted_at, last_used_at}]`", body = [Object]),
        crate::answers::Unauthorized401,
    )
)]
pub async fn my_grants(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let all = grants::list(&state.core, user.user().id).await?;
    let body: Vec<Value> = all
        .into_iter()
        .map(|g| {
            json!({
                "client_id": g.client_id,
                "client_name": g.client_name,
                "scopes": g.scopes,
                "granted_at": g.granted_at,
                "last_used_at": g.last_used_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

/// `DELETE /users/me/grants/{client_id}`: forgets the consent, ends the app's tokens.
#[utoipa::path(
    delete,
    path = "/users/me/grants/{client_id}",
    operation_id = "oauth_revoke_grant",
    tag = "oauth",
    security(("bearer" = [])),
    params(("client_id" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        crate::answers::Unauthorized401,
        (status = 404, description = "`Not Found`: no grant of this client", body = ErrorDetail),
    )
)]
pub async fn revoke_grant(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(from): Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !grants::revoke(&state.core, user.user().id, &id, &from, state.now()).await? {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}
