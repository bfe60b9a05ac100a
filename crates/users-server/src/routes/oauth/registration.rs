//! Client registration and management (RFC 7591, RFC 7592), and a client's roles.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use users_core::flows::auth;
use users_core::flows::oauth::clients::{self, Client as OAuthClient, Registrar};
use users_core::flows::oauth::OAuthError;

use super::*;
use crate::answers::{RegistryNoToken401, RegistryNotSuperuser403, UnknownClient404};
use crate::auth::bearer_token;
use crate::client_ip::Client;
use crate::error::OAuthErrorBody;
use crate::state::AppState;

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
