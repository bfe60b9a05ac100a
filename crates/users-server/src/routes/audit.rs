//! The audit log (docs/audit-and-webhooks.md): every event for superusers, a user's own for
//! them.

use actix_web::{web, HttpResponse};
use users_core::flows::audit::{self, Filter, DEFAULT_LIMIT};

use crate::answers::{Forbidden403, Unauthorized401, Validation422};
use crate::auth::CurrentUser;
use crate::bodies::{AuditQuery, EventRead, EventsPage};
use crate::error::ApiError;
use crate::extract::ValidatedQuery;
use crate::state::AppState;

async fn page(state: &AppState, filter: Filter) -> Result<HttpResponse, ApiError> {
    let page = audit::list(&state.core, filter).await?;
    Ok(HttpResponse::Ok().json(EventsPage {
        items: page.items.into_iter().map(EventRead::from).collect(),
        next_before: page.next_before,
    }))
}

/// `GET /audit?user_id=&type=&before=&limit=` (superusers): events, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "list_audit_events",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events, newest first", body = EventsPage),
        Unauthorized401,
        Forbidden403,
        Validation422,
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    ValidatedQuery(q): ValidatedQuery<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = Filter {
        user_id: q.user_id,
        kind: q.kind,
        before: q.before,
        limit: q.limit.unwrap_or(DEFAULT_LIMIT),
    };
    page(&state, filter).await
}

/// `GET /users/me/events?type=&before=&limit=`: the caller's own events.
#[utoipa::path(
    get,
    path = "/users/me/events",
    operation_id = "list_my_events",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (
            status = 200,
            description = "A page of the caller's events, newest first",
            body = EventsPage
        ),
        Unauthorized401,
        Validation422,
    )
)]
pub async fn mine(
    state: web::Data<AppState>,
    user: CurrentUser,
    ValidatedQuery(q): ValidatedQuery<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = Filter {
        user_id: Some(user.user().id),
        kind: q.kind,
        before: q.before,
        limit: q.limit.unwrap_or(DEFAULT_LIMIT),
    };
    page(&state, filter).await
}
