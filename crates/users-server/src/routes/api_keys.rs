//! API keys (docs/roles-and-api-keys.md): the caller's own, and a superuser's view of
//! anyone's. Making and revoking keys changes how the person signs in, so an API key
//! may do neither (the `no_api_key` middleware answers 403 `API_KEY_NOT_ALLOWED`).

use actix_web::{web, HttpResponse};
use users_core::flows::api_keys::{self, NewApiKey};

use crate::answers::{Forbidden403, Unauthorized401, UnknownUser404, Validation422};
use crate::auth::CurrentUser;
use crate::bodies::{ApiKeyCreate, ApiKeyCreated, ApiKeyRead};
use crate::client_ip::Client;
use crate::error::{ApiError, ErrorDetail};
use crate::extract::ValidatedJson;
use crate::outcome::{ApiKeyCreateRefused, SignInWriteCrossSite};
use crate::routes::users::TargetUser;
use crate::state::AppState;

/// `POST /users/me/api-keys`: 201 the key, shown this once.
#[utoipa::path(
    post,
    path = "/users/me/api-keys",
    operation_id = "create_api_key",
    tag = "api-keys",
    security(("bearer" = [])),
    request_body = ApiKeyCreate,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = ApiKeyCreated),
        ApiKeyCreateRefused,
        Unauthorized401,
        SignInWriteCrossSite,
        Validation422,
        crate::answers::Locked429,
    )
)]
#[tracing::instrument(name = "create_api_key", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<ApiKeyCreate>,
) -> Result<HttpResponse, ApiError> {
    let new = NewApiKey {
        name: body.name,
        permissions: body.permissions,
        expires_in_days: body.expires_in_days,
        password: body.password,
    };
    let created = api_keys::create(&state.core, &user, new, &client, state.now()).await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(ApiKeyCreated::from(created)))
}

/// `GET /users/me/api-keys`: the caller's keys, newest first.
#[utoipa::path(
    get,
    path = "/users/me/api-keys",
    operation_id = "list_api_keys",
    tag = "api-keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's keys, newest first (never the key)", body = [ApiKeyRead]),
        Unauthorized401,
    )
)]
pub async fn list(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    let keys = api_keys::list(&state.core, user.user().id).await?;
    Ok(HttpResponse::Ok().json(keys.into_iter().map(ApiKeyRead::from).collect::<Vec<_>>()))
}

/// `DELETE /users/me/api-keys/{id}`: 204; the key stops at once.
#[utoipa::path(
    delete,
    path = "/users/me/api-keys/{id}",
    operation_id = "revoke_api_key",
    tag = "api-keys",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        Unauthorized401,
        SignInWriteCrossSite,
        (status = 404, description = "`Not Found`: the caller has no key with this id", body = ErrorDetail),
    )
)]
#[tracing::instrument(name = "revoke_api_key", skip_all)]
pub async fn revoke(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let owner = user.user().id;
    api_keys::revoke(&state.core, owner, &id, None, &client, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /users/{id}/api-keys` (superuser): that user's keys, newest first.
#[utoipa::path(
    get,
    path = "/users/{id}/api-keys",
    operation_id = "list_user_api_keys",
    tag = "api-keys",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 200, description = "The user's keys, newest first (never the key)", body = [ApiKeyRead]),
        Unauthorized401,
        Forbidden403,
        UnknownUser404,
    )
)]
pub async fn list_of_user(
    state: web::Data<AppState>,
    target: TargetUser,
) -> Result<HttpResponse, ApiError> {
    let keys = api_keys::list(&state.core, target.0.user.id).await?;
    Ok(HttpResponse::Ok().json(keys.into_iter().map(ApiKeyRead::from).collect::<Vec<_>>()))
}

/// `DELETE /users/{id}/api-keys/{key_id}` (superuser): 204.
#[utoipa::path(
    delete,
    path = "/users/{id}/api-keys/{key_id}",
    operation_id = "revoke_user_api_key",
    tag = "api-keys",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The user's id (a UUID)"),
        ("key_id" = String, Path, description = "The key's id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        Unauthorized401,
        Forbidden403,
        (status = 404, description = "`Not Found`: unknown user, or no key of theirs has this id", body = ErrorDetail),
    )
)]
#[tracing::instrument(name = "revoke_user_api_key", skip_all)]
pub async fn revoke_of_user(
    state: web::Data<AppState>,
    admin: CurrentUser,
    target: TargetUser,
    path: web::Path<(String, String)>,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let by = Some(admin.user().id);
    let owner = target.0.user.id;
    let (_, key_id) = path.into_inner();
    api_keys::revoke(&state.core, owner, &key_id, by, &client, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}
