//! The person's own grants under `/users/me` (the service's `{"detail"}` shape).

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use users_core::flows::oauth::grants;

use crate::auth::CurrentUser;
use crate::client_ip::Client;
use crate::error::{ApiError, ErrorDetail};
use crate::state::AppState;

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
