//! The provider accounts linked to the current user (docs/providers.md): list them,
//! unlink one provider's.

use actix_web::{web, HttpResponse};
use users_core::flows::identities;

use crate::answers::Unauthorized401;
use crate::auth::CurrentUser;
use crate::bodies::IdentityRead;
use crate::client_ip::Client;
use crate::error::{ApiError, ErrorDetail};
use crate::outcome::UnlinkRefused;
use crate::state::AppState;

/// `GET /users/me/identities`: the linked accounts, newest first.
#[utoipa::path(
    get,
    path = "/users/me/identities",
    tag = "providers",
    security(("bearer" = [])),
    responses(
        (
            status = 200,
            description = "The provider accounts linked to the current user, newest first",
            body = [IdentityRead]
        ),
        Unauthorized401,
    )
)]
pub async fn list_identities(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let linked = identities::list(&state.core, user.user().id).await?;
    Ok(HttpResponse::Ok().json(
        linked
            .into_iter()
            .map(IdentityRead::from)
            .collect::<Vec<_>>(),
    ))
}

/// `DELETE /users/me/identities/{provider}`: unlinks the provider's accounts. 204.
#[utoipa::path(
    delete,
    path = "/users/me/identities/{provider}",
    tag = "providers",
    security(("bearer" = [])),
    params(("provider" = String, Path, description = "The provider's name, as listed")),
    responses(
        (status = 204, description = "Unlinked"),
        UnlinkRefused,
        Unauthorized401,
        (
            status = 404,
            description = "`Not Found`: no account of this provider is linked to the user",
            body = ErrorDetail
        ),
    )
)]
#[tracing::instrument(name = "unlink_identity", skip_all)]
pub async fn unlink_identity(
    state: web::Data<AppState>,
    user: CurrentUser,
    provider: web::Path<String>,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    identities::unlink(
        &state.core,
        user.user().id,
        &provider,
        None,
        &client,
        state.now(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /users/me/identities/{provider}/{subject}`: unlinks one account of the
/// provider (the subject percent-encoded). 204.
#[utoipa::path(
    delete,
    path = "/users/me/identities/{provider}/{subject}",
    operation_id = "unlink_identity_subject",
    tag = "providers",
    security(("bearer" = [])),
    params(
        ("provider" = String, Path, description = "The provider's name, as listed"),
        (
            "subject" = String,
            Path,
            description = "The account's subject at the provider, as listed (percent-encoded)"
        ),
    ),
    responses(
        (status = 204, description = "Unlinked"),
        UnlinkRefused,
        Unauthorized401,
        (
            status = 404,
            description = "`Not Found`: no such account of this provider is linked to the user",
            body = ErrorDetail
        ),
    )
)]
#[tracing::instrument(name = "unlink_identity_subject", skip_all)]
pub async fn unlink_identity_subject(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let (provider, subject) = path.into_inner();
    identities::unlink(
        &state.core,
        user.user().id,
        &provider,
        Some(&subject),
        &client,
        state.now(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
