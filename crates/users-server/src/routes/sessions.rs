//! Devices: the user's live sessions, and ending them (docs/sessions-and-tokens.md).

use actix_web::{web, HttpResponse};
use users_core::flows::session::{self, Ending};

use crate::answers::{Forbidden403, Unauthorized401, UnknownUser404};
use crate::auth::CurrentUser;
use crate::bodies::SessionRead;
use crate::client_ip::Client;
use crate::error::{ApiError, ErrorDetail};
use crate::outcome::SignInWriteCrossSite;
use crate::routes::users::TargetUser;
use crate::state::AppState;

/// `GET /auth/sessions`: the caller's live sessions, newest first.
#[utoipa::path(
    get,
    path = "/auth/sessions",
    operation_id = "list_sessions",
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (
            status = 200,
            description = "Live sessions; `current` marks the caller's",
            body = [SessionRead]
        ),
        Unauthorized401,
    )
)]
pub async fn list(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    let sessions =
        session::list(&state.core, user.user().id, user.session_id(), state.now()).await?;
    Ok(HttpResponse::Ok().json(
        sessions
            .into_iter()
            .map(SessionRead::from)
            .collect::<Vec<_>>(),
    ))
}

/// `DELETE /auth/sessions`: signs out everywhere else. 204.
#[utoipa::path(
    delete,
    path = "/auth/sessions",
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every other session is ended"),
        Unauthorized401,
        SignInWriteCrossSite,
    )
)]
#[tracing::instrument(name = "end_other_sessions", skip_all)]
pub async fn end_others(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let ending = Ending {
        reason: "signed_out_elsewhere",
        by: None,
        client: &client,
    };
    let (id, current) = (user.user().id, user.session_id());
    session::end_all(&state.core, id, current, ending, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /auth/sessions/{id}`: ends one of the caller's sessions. 204; 404.
#[utoipa::path(
    delete,
    path = "/auth/sessions/{id}",
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended"),
        Unauthorized401,
        SignInWriteCrossSite,
        (
            status = 404,
            description = "`Not Found`: no live session of the caller has this id",
            body = ErrorDetail
        ),
    )
)]
#[tracing::instrument(name = "end_session", skip_all)]
pub async fn end_one(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let ending = Ending {
        reason: "signed_out_by_user",
        by: None,
        client: &client,
    };
    let ended = uuid::Uuid::parse_str(&id).is_ok()
        && session::end(&state.core, user.user().id, &id, ending, state.now()).await?;
    if ended {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `GET /users/{id}/sessions` (superuser): that user's live sessions.
#[utoipa::path(
    get,
    path = "/users/{id}/sessions",
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 200, description = "Live sessions (`current` is false)", body = [SessionRead]),
        Unauthorized401,
        Forbidden403,
        UnknownUser404,
    )
)]
pub async fn list_of_user(
    state: web::Data<AppState>,
    target: TargetUser,
) -> Result<HttpResponse, ApiError> {
    let sessions = session::list(&state.core, target.0.user.id, None, state.now()).await?;
    Ok(HttpResponse::Ok().json(
        sessions
            .into_iter()
            .map(SessionRead::from)
            .collect::<Vec<_>>(),
    ))
}

/// `DELETE /users/{id}/sessions` (superuser): ends every session of that user. 204.
#[utoipa::path(
    delete,
    path = "/users/{id}/sessions",
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (status = 204, description = "Every session of the user is ended"),
        Unauthorized401,
        Forbidden403,
        UnknownUser404,
    )
)]
#[tracing::instrument(name = "end_user_sessions", skip_all)]
pub async fn end_all_of_user(
    state: web::Data<AppState>,
    admin: CurrentUser,
    target: TargetUser,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let ending = Ending {
        reason: "ended_by_admin",
        by: Some(admin.user().id),
        client: &client,
    };
    session::end_all(&state.core, target.0.user.id, None, ending, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}
