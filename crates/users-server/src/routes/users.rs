use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use users_core::db::StoredUser;
use users_core::flows::account::{self, Actor};
use users_domain::UserId;

use crate::answers::{Forbidden403, Unauthorized401, UnknownUser404, Validation422};
use crate::auth::{app_state, refuse, CurrentUser};
use crate::bodies::{UserRead, UserUpdate, UsersPage, UsersQuery, DEFAULT_PER_PAGE};
use crate::client_ip::Client;
use crate::error::ApiError;
use crate::extract::{ValidatedJson, ValidatedQuery};
use crate::outcome::{api_key_not_allowed, SignInWrite, UpdateRefused};
use crate::state::AppState;

/// The user a superuser route names by `{id}`, loaded by [`target_user`].
#[derive(Debug, Clone)]
pub struct TargetUser(pub StoredUser);

/// Route middleware of `/users/{id}`, inside `superuser`: 404 for a malformed or
/// unknown id, before the body is read (fastapi-users' `get_user_or_404` dependency).
pub async fn target_user<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match load_target(&req).await {
        Ok(target) => {
            req.extensions_mut().insert(target);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(refuse(req, e)),
    }
}

async fn load_target(req: &ServiceRequest) -> Result<TargetUser, ApiError> {
    let state = app_state(req)?;
    let id = req
        .match_info()
        .get("id")
        .and_then(|raw| UserId::parse_str(raw).ok())
        .ok_or(ApiError::NotFound)?;
    let target = account::find(&state.core, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(TargetUser(target))
}

impl FromRequest for TargetUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<TargetUser>()
                .cloned()
                .ok_or_else(|| ApiError::internal("route not wrapped in `target_user`")),
        )
    }
}

/// `GET /users/me`.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The current user", body = UserRead),
        Unauthorized401,
    )
)]
pub async fn me(user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(UserRead::from(user.user().clone()))
}

/// `PATCH /users/me` {email?, password?}: the flags in the body are ignored.
#[utoipa::path(
    patch,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "Updated", body = UserRead),
        UpdateRefused,
        Unauthorized401,
        SignInWrite,
        Validation422,
    )
)]
#[tracing::instrument(name = "update_me", skip_all)]
pub async fn update_me(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<UserUpdate>,
) -> Result<HttpResponse, ApiError> {
    // the email and the password are how the person signs in: not an API key's to change
    if user.by_api_key() && (body.email.is_some() || body.password.is_some()) {
        return Err(api_key_not_allowed());
    }
    let updated = account::update(
        &state.core,
        &user.stored,
        body.into(),
        Actor::Owner,
        &client,
        state.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(UserRead::from(updated)))
}

/// `GET /users/{id}` (superuser).
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 200, description = "The user", body = UserRead),
        Unauthorized401,
        Forbidden403,
        UnknownUser404,
    )
)]
pub async fn get_user(target: TargetUser) -> HttpResponse {
    HttpResponse::Ok().json(UserRead::from(target.0.user))
}

/// `PATCH /users/{id}` (superuser): every field may be set; not the email or the password
/// with an API key (docs/roles-and-api-keys.md).
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "Updated", body = UserRead),
        UpdateRefused,
        Unauthorized401,
        Forbidden403,
        SignInWrite,
        UnknownUser404,
        Validation422,
    )
)]
#[tracing::instrument(name = "update_user", skip_all)]
pub async fn patch_user(
    state: web::Data<AppState>,
    admin: CurrentUser,
    target: TargetUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<UserUpdate>,
) -> Result<HttpResponse, ApiError> {
    // a leaked superuser's key must not become every account: setting someone's email or
    // password is how one takes their account over
    if admin.by_api_key() && (body.email.is_some() || body.password.is_some()) {
        return Err(api_key_not_allowed());
    }
    let actor = Actor::Superuser(admin.user().id);
    let updated = account::update(
        &state.core,
        &target.0,
        body.into(),
        actor,
        &client,
        state.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(UserRead::from(updated)))
}

/// `DELETE /users/{id}` (superuser): 204.
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        Unauthorized401,
        Forbidden403,
        UnknownUser404,
    )
)]
#[tracing::instrument(name = "delete_user", skip_all)]
pub async fn delete_user(
    state: web::Data<AppState>,
    admin: CurrentUser,
    target: TargetUser,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let id = target.0.user.id;
    if account::delete(&state.core, id, admin.user().id, &client, state.now()).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `GET /users?page=&per_page=&email=` (superuser): a page of users in creation order,
/// optionally only those whose email contains `email` (case-insensitive).
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    security(("bearer" = [])),
    params(UsersQuery),
    responses(
        (status = 200, description = "A page of users in creation order", body = UsersPage),
        Unauthorized401,
        Forbidden403,
        Validation422,
    )
)]
pub async fn list_users(
    state: web::Data<AppState>,
    ValidatedQuery(query): ValidatedQuery<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
    let (items, total) = account::list(&state.core, query.email, page, per_page).await?;
    Ok(HttpResponse::Ok().json(UsersPage {
        items: items.into_iter().map(UserRead::from).collect(),
        total,
        page,
        per_page,
    }))
}
