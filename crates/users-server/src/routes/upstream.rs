//! Sign-in with an identity provider and linking a provider account
//! (docs/providers.md): `/auth/{provider}/…` and `/auth/associate/{provider}/…` for every
//! configured provider. The rules and the order of the checks are the flow's (users-core
//! `flows::upstream`); here the query, the cookie and the answer's shape.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::guard::GuardContext;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use serde_json::json;
use users_core::flows::mfa::{MfaRequired, SignIn, Transport};
use users_core::flows::upstream::{self, Authorization, Callback};

use crate::answers::{NoProvider404, PerIp429, ProviderNotReady503, Unauthorized401};
use crate::auth::CurrentUser;
use crate::bodies::{AuthorizationUrl, BearerToken, ProviderRead, UserRead};
use crate::client_ip::Client;
use crate::codes::Code;
use crate::error::{ApiError, FieldError};
use crate::extract::urlencoded;
use crate::outcome::SignInWrite;
use crate::outcome::{AssociateCallbackRefused, CallbackRefused};
use crate::state::AppState;

pub const CSRF_COOKIE: &str = "fastapiusersoauthcsrf";

/// Guard of the provider routes: they exist only for configured providers, so any
/// other name is a plain 404 before anything else is checked.
pub fn configured_provider(ctx: &GuardContext<'_>) -> bool {
    let Some(state) = ctx.app_data::<web::Data<AppState>>() else {
        return false;
    };
    let path = ctx.head().uri.path();
    let name = match path.trim_start_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["auth", "associate", name, _] | ["auth", name, _] => name,
        _ => return false,
    };
    state.core.providers.get(name).is_some()
}

fn redirect_uri(state: &AppState, provider: &str, associate: bool) -> String {
    let base = &state.settings.http.public_url;
    if associate {
        format!("{base}/auth/associate/{provider}/callback")
    } else {
        format!("{base}/auth/{provider}/callback")
    }
}

/// `?return_to=/account`: a page of this service that starts a sign-in and wants it to
/// end there, with the cookie set by the callback. Only a path of this origin is taken
/// (`/…`, never `//host` or `/\host`), so the callback can never send the browser, or
/// a session, elsewhere.
fn return_to(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(path) = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 512
        && !path.chars().any(|c| c.is_control() || c == '\\');
    if !local {
        return Err(ApiError::Validation(vec![FieldError::new(
            "value_error",
            vec![json!("query"), json!("return_to")],
            "return_to must be a path of this service, such as /account",
            json!(path),
        )]));
    }
    Ok(Some(path))
}

/// `?scopes=a&scopes=b`: scopes to ask for besides the provider's defaults.
fn extra_scopes(req: &HttpRequest) -> Vec<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| k == "scopes" && !v.is_empty())
        .map(|(_, v)| v)
        .collect()
}

fn authorization_response(state: &AppState, authorization: Authorization) -> HttpResponse {
    let cookie = Cookie::build(CSRF_COOKIE, authorization.csrf)
        .http_only(true)
        .max_age(time::Duration::seconds(authorization.lifetime_seconds))
        .path("/")
        .same_site(SameSite::Lax)
        .secure(state.core.config.https())
        .finish();
    HttpResponse::Ok()
        .cookie(cookie)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(AuthorizationUrl {
            authorization_url: authorization.url,
        })
}

fn callback_of(req: &HttpRequest) -> Callback {
    let mut query = urlencoded(req.query_string().as_bytes());
    Callback {
        error: query.remove("error"),
        code: query.remove("code"),
        state: query.remove("state"),
        csrf_cookie: req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned()),
    }
}

fn clear_csrf_cookie(resp: &mut HttpResponseBuilder) {
    let mut gone = Cookie::build(CSRF_COOKIE, "")
        .path("/")
        .http_only(true)
        .finish();
    gone.make_removal();
    resp.cookie(gone);
}

/// `GET /auth/providers`: the configured providers, for sign-in buttons.
#[utoipa::path(
    get,
    path = "/auth/providers",
    tag = "providers",
    responses(
        (
            status = 200,
            description = "The configured providers, in the order of the configuration \
                           (Google, OIDC_PROVIDERS, GitHub)",
            body = [ProviderRead]
        ),
    )
)]
pub async fn list_providers(state: web::Data<AppState>) -> HttpResponse {
    let base = &state.settings.http.public_url;
    let list: Vec<ProviderRead> = state
        .core
        .providers
        .iter()
        .map(|p| ProviderRead {
            name: p.settings.name.clone(),
            label: p.settings.label.clone(),
            authorize_url: format!("{base}/auth/{}/authorize", p.settings.name),
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// `GET /auth/{provider}/authorize[?scopes=…]`.
#[utoipa::path(
    get,
    path = "/auth/{provider}/authorize",
    tag = "providers",
    params(
        (
            "provider" = String,
            Path,
            description = "A configured provider: google, github, or a name of OIDC_PROVIDERS"
        ),
        ("scopes" = Option<Vec<String>>, Query, description = "Extra scopes"),
    ),
    responses(
        (
            status = 200,
            description = "The URL to send the browser to; sets the fastapiusersoauthcsrf cookie",
            body = AuthorizationUrl
        ),
        PerIp429,
        NoProvider404,
        ProviderNotReady503,
    )
)]
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let uri = redirect_uri(&state, &provider, false);
    let authorization = upstream::begin(
        &state.core,
        &provider,
        None,
        &uri,
        &extra_scopes(&req),
        return_to(&req)?,
        state.now(),
    )
    .await?;
    Ok(authorization_response(&state, authorization))
}

/// `GET /auth/associate/{provider}/authorize` (Bearer).
#[utoipa::path(
    get,
    path = "/auth/associate/{provider}/authorize",
    tag = "providers",
    security(("bearer" = [])),
    params(
        (
            "provider" = String,
            Path,
            description = "A configured provider: google, github, or a name of OIDC_PROVIDERS"
        ),
        ("scopes" = Option<Vec<String>>, Query, description = "Extra scopes"),
    ),
    responses(
        (
            status = 200,
            description = "The URL to send the browser to; sets the fastapiusersoauthcsrf cookie",
            body = AuthorizationUrl
        ),
        Unauthorized401,
        SignInWrite,
        PerIp429,
        NoProvider404,
        ProviderNotReady503,
    )
)]
pub async fn associate_authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let uri = redirect_uri(&state, &provider, true);
    let authorization = upstream::begin(
        &state.core,
        &provider,
        Some(user.user().id),
        &uri,
        &extra_scopes(&req),
        return_to(&req)?,
        state.now(),
    )
    .await?;
    Ok(authorization_response(&state, authorization))
}

/// `GET /auth/{provider}/callback?code&state`: 200 Token (or a redirect, see
/// `OAUTH_SUCCESS_REDIRECT_URL`).
#[utoipa::path(
    get,
    path = "/auth/{provider}/callback",
    tag = "providers",
    params(
        (
            "provider" = String,
            Path,
            description = "A configured provider: google, github, or a name of OIDC_PROVIDERS"
        ),
        ("code" = Option<String>, Query),
        ("state" = Option<String>, Query),
        ("error" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "Signed in", body = BearerToken),
        (
            status = 302,
            description = "Signed in; redirect to OAUTH_SUCCESS_REDIRECT_URL#access_token=…"
        ),
        CallbackRefused,
        NoProvider404,
        ProviderNotReady503,
    )
)]
#[tracing::instrument(name = "oauth_callback", skip_all)]
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: Client,
    provider: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let uri = redirect_uri(&state, &provider, false);
    let finished =
        upstream::finish(&state.core, &provider, callback_of(&req), None, &uri, now).await?;
    if let Some(page) = finished.return_to {
        let outcome = upstream::sign_in(
            &state.core,
            &provider,
            finished.identity,
            &client.0,
            Transport::Cookie,
            now,
        )
        .await;
        return Ok(back_to_page(&state, &page, outcome.map_err(ApiError::from)));
    }
    let outcome = upstream::sign_in(
        &state.core,
        &provider,
        finished.identity,
        &client.0,
        Transport::Bearer,
        now,
    )
    .await?;
    let signed_in = match outcome {
        SignIn::Done(grant) => grant,
        SignIn::SecondFactor(required) => return mfa_required(&state, required),
    };
    let token = signed_in.access_token;
    let mut resp = match &state.settings.providers.oauth_success_redirect_url {
        Some(url) => {
            let mut r = HttpResponse::Found();
            r.insert_header((
                header::LOCATION,
                format!("{url}#access_token={token}&token_type=bearer"),
            ));
            r
        }
        None => HttpResponse::Ok(),
    };
    resp.insert_header((header::CACHE_CONTROL, "no-store"));
    clear_csrf_cookie(&mut resp);
    Ok(match &state.settings.providers.oauth_success_redirect_url {
        Some(_) => resp.finish(),
        None => resp.json(BearerToken::new(token)),
    })
}

/// The end of a sign-in a page started: back to the page, with the session cookie set
/// here (the state cookie bound the flow to this browser); a second step's mfa_token in
/// an HttpOnly cookie and the methods in the query (`?mfa=totp,passkey`); a refusal as
/// `?error=CODE`. No token ever travels through the URL (docs/security.md).
fn back_to_page(state: &AppState, page: &str, outcome: Result<SignIn, ApiError>) -> HttpResponse {
    let with = |key: &str, value: &str| {
        let sep = if page.contains('?') { '&' } else { '?' };
        let value: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        format!("{page}{sep}{key}={value}")
    };
    let mut resp = HttpResponse::Found();
    resp.insert_header((header::CACHE_CONTROL, "no-store"));
    clear_csrf_cookie(&mut resp);
    match outcome {
        Ok(SignIn::Done(grant)) => {
            let lifetime = state.core.tokens.access_lifetime_seconds;
            resp.insert_header((
                header::SET_COOKIE,
                crate::routes::auth::auth_cookie(state, &grant.access_token, lifetime),
            ));
            resp.insert_header((header::LOCATION, page.to_owned()));
        }
        Ok(SignIn::SecondFactor(required)) => {
            resp.cookie(crate::auth::mfa_cookie(state, &required.mfa_token));
            resp.insert_header((header::LOCATION, with("mfa", &required.methods.join(","))));
        }
        Err(e) => {
            let code = e.code().unwrap_or("SIGN_IN_FAILED").to_owned();
            resp.insert_header((header::LOCATION, with("error", &code)));
        }
    }
    resp.finish()
}

/// The user has a second factor: 400 `LOGIN_MFA_REQUIRED`; or, with
/// `OAUTH_SUCCESS_REDIRECT_URL`, a redirect there with
/// `#error=LOGIN_MFA_REQUIRED&mfa_token=…&methods=…` (a browser cannot read a 400).
fn mfa_required(state: &AppState, required: MfaRequired) -> Result<HttpResponse, ApiError> {
    match &state.settings.providers.oauth_success_redirect_url {
        None => Err(required.into()),
        Some(url) => {
            let mut resp = HttpResponse::Found();
            resp.insert_header((
                header::LOCATION,
                format!(
                    "{url}#error={}&mfa_token={}&methods={}",
                    Code::LoginMfaRequired,
                    required.mfa_token,
                    required.methods.join(",")
                ),
            ));
            resp.insert_header((header::CACHE_CONTROL, "no-store"));
            clear_csrf_cookie(&mut resp);
            Ok(resp.finish())
        }
    }
}

/// `GET /auth/associate/{provider}/callback?code&state` (Bearer): 200 the current user.
#[utoipa::path(
    get,
    path = "/auth/associate/{provider}/callback",
    tag = "providers",
    security(("bearer" = [])),
    params(
        (
            "provider" = String,
            Path,
            description = "A configured provider: google, github, or a name of OIDC_PROVIDERS"
        ),
        ("code" = Option<String>, Query),
        ("state" = Option<String>, Query),
        ("error" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "Linked; the current user", body = UserRead),
        AssociateCallbackRefused,
        Unauthorized401,
        SignInWrite,
        NoProvider404,
        ProviderNotReady503,
    )
)]
#[tracing::instrument(name = "oauth_associate_callback", skip_all)]
pub async fn associate_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
    user: CurrentUser,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let id = user.user().id;
    let uri = redirect_uri(&state, &provider, true);
    let finished = upstream::finish(
        &state.core,
        &provider,
        callback_of(&req),
        Some(id),
        &uri,
        now,
    )
    .await?;
    let linked = upstream::associate(
        &state.core,
        &provider,
        user.user(),
        finished.identity,
        &client,
        now,
    )
    .await;
    let mut resp = match (finished.return_to, linked) {
        (Some(page), Ok(_)) => {
            let mut r = HttpResponse::Found();
            r.insert_header((header::LOCATION, page));
            r
        }
        (Some(page), Err(e)) => {
            let code = ApiError::from(e).code().unwrap_or("LINK_FAILED").to_owned();
            let sep = if page.contains('?') { '&' } else { '?' };
            let mut r = HttpResponse::Found();
            r.insert_header((header::LOCATION, format!("{page}{sep}error={code}")));
            r
        }
        (None, Ok(linked)) => {
            let mut r = HttpResponse::Ok();
            clear_csrf_cookie(&mut r);
            return Ok(r.json(UserRead::from(linked)));
        }
        (None, Err(e)) => return Err(e.into()),
    };
    clear_csrf_cookie(&mut resp);
    Ok(resp.finish())
}
