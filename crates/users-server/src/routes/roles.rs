//! Roles and the roles of users (docs/roles-and-api-keys.md): superusers only, but a
//! user's own view at `/users/me/roles`.

use actix_web::{web, HttpResponse};
use users_core::flows::roles::{self, NewRole};

use crate::answers::{Forbidden403, Unauthorized401, UnknownUser404, Validation422};
use crate::auth::CurrentUser;
use crate::bodies::{RoleCreate, RoleRead, RoleUpdate, UserRolesRead, UserRolesUpdate};
use crate::client_ip::Client;
use crate::error::{ApiError, UnknownRoleError};
use crate::extract::ValidatedJson;
use crate::outcome::{RoleCreateRefused, RoleUnknown};
use crate::routes::users::TargetUser;
use crate::state::AppState;

/// `POST /roles` (superuser): 201 the role.
#[utoipa::path(
    post,
    path = "/roles",
    operation_id = "create_role",
    tag = "roles",
    security(("bearer" = [])),
    request_body = RoleCreate,
    responses(
        (status = 201, description = "Created", body = RoleRead),
        RoleCreateRefused,
        Unauthorized401,
        Forbidden403,
        Validation422,
    )
)]
#[tracing::instrument(name = "create_role", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    admin: CurrentUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<RoleCreate>,
) -> Result<HttpResponse, ApiError> {
    let new = NewRole {
        name: body.name,
        description: body.description.unwrap_or_default(),
        permissions: body.permissions.unwrap_or_default(),
    };
    let role = roles::create(&state.core, new, admin.user().id, &client, state.now()).await?;
    Ok(HttpResponse::Created().json(RoleRead::from(role)))
}

/// `GET /roles` (superuser): every role, by name.
#[utoipa::path(
    get,
    path = "/roles",
    operation_id = "list_roles",
    tag = "roles",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every role, sorted by name", body = [RoleRead]),
        Unauthorized401,
        Forbidden403,
    )
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = roles::list(&state.core).await?;
    Ok(HttpResponse::Ok().json(all.into_iter().map(RoleRead::from).collect::<Vec<_>>()))
}

/// `GET /roles/{name}` (superuser).
#[utoipa::path(
    get,
    path = "/roles/{name}",
    operation_id = "get_role",
    tag = "roles",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The role's name")),
    responses(
        (status = 200, description = "The role", body = RoleRead),
        Unauthorized401,
        Forbidden403,
        RoleUnknown,
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let role = roles::get(&state.core, &name).await?;
    Ok(HttpResponse::Ok().json(RoleRead::from(role)))
}

/// `PATCH /roles/{name}` (superuser): the fields given.
#[utoipa::path(
    patch,
    path = "/roles/{name}",
    operation_id = "update_role",
    tag = "roles",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The role's name")),
    request_body = RoleUpdate,
    responses(
        (status = 200, description = "The role as changed", body = RoleRead),
        Unauthorized401,
        Forbidden403,
        RoleUnknown,
        Validation422,
    )
)]
#[tracing::instrument(name = "update_role", skip_all)]
pub async fn update(
    state: web::Data<AppState>,
    admin: CurrentUser,
    name: web::Path<String>,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<RoleUpdate>,
) -> Result<HttpResponse, ApiError> {
    let role = roles::update(
        &state.core,
        &name,
        body.description,
        body.permissions,
        admin.user().id,
        &client,
        state.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(RoleRead::from(role)))
}

/// `DELETE /roles/{name}` (superuser): 204; its users lose it.
#[utoipa::path(
    delete,
    path = "/roles/{name}",
    operation_id = "delete_role",
    tag = "roles",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The role's name")),
    responses(
        (status = 204, description = "Deleted"),
        Unauthorized401,
        Forbidden403,
        RoleUnknown,
    )
)]
#[tracing::instrument(name = "delete_role", skip_all)]
pub async fn delete(
    state: web::Data<AppState>,
    admin: CurrentUser,
    name: web::Path<String>,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    roles::delete(&state.core, &name, admin.user().id, &client, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /users/me/roles`: the caller's roles and permissions.
#[utoipa::path(
    get,
    path = "/users/me/roles",
    operation_id = "my_roles",
    tag = "roles",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's roles and the union of their permissions", body = UserRolesRead),
        Unauthorized401,
    )
)]
pub async fn mine(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    let held = roles::of_user(&state.core, user.user().id).await?;
    Ok(HttpResponse::Ok().json(UserRolesRead::from(held)))
}

/// `GET /users/{id}/roles` (superuser).
#[utoipa::path(
    get,
    path = "/users/{id}/roles",
    operation_id = "user_roles",
    tag = "roles",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 200, description = "The user's roles and the union of their permissions", body = UserRolesRead),
        Unauthorized401,
        Forbidden403,
        UnknownUser404,
    )
)]
pub async fn of_user(
    state: web::Data<AppState>,
    target: TargetUser,
) -> Result<HttpResponse, ApiError> {
    let held = roles::of_user(&state.core, target.0.user.id).await?;
    Ok(HttpResponse::Ok().json(UserRolesRead::from(held)))
}

/// `PUT /users/{id}/roles` (superuser): replaces the user's roles; an unknown name
/// changes nothing.
#[utoipa::path(
    put,
    path = "/users/{id}/roles",
    operation_id = "set_user_roles",
    tag = "roles",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    request_body = UserRolesUpdate,
    responses(
        (status = 200, description = "The user's roles from now on", body = UserRolesRead),
        (
            status = 400,
            description = "`{\"detail\": {\"code\": \"ROLE_NOT_FOUND\", \"role\": …}}`: a name \
                is no role (the first such is named); nothing changed",
            body = UnknownRoleError
        ),
        Unauthorized401,
        Forbidden403,
        UnknownUser404,
        Validation422,
    )
)]
#[tracing::instrument(name = "set_user_roles", skip_all)]
pub async fn set_for_user(
    state: web::Data<AppState>,
    admin: CurrentUser,
    target: TargetUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<UserRolesUpdate>,
) -> Result<HttpResponse, ApiError> {
    let held = roles::set_for_user(
        &state.core,
        target.0.user.id,
        body.roles,
        admin.user().id,
        &client,
        state.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(UserRolesRead::from(held)))
}
