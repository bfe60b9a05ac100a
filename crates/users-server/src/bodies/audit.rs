//! The audit log: its query, an event as answered and a page of them.

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{Fields, Validated};

/// `GET /audit` and `GET /users/me/events`: which events, and where the page begins.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this user's events (ignored by `/users/me/events`).
    #[param(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<users_domain::UserId>,
    /// Only events of this type (e.g. `user.login_failed`).
    #[param(rename = "type", value_type = Option<String>)]
    pub kind: Option<users_core::EventType>,
    /// Only events older than this one: the previous page's `next_before`.
    pub before: Option<String>,
    /// Events per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

impl Validated for AuditQuery {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let user_id = f.optional_str("user_id").map(|u| match u {
            None => Some(None),
            Some(u) => match users_domain::UserId::parse_str(u.trim()) {
                Ok(id) => Some(Some(id)),
                Err(_) => {
                    f.refuse("user_id", "must be a user id (a UUID)");
                    None
                }
            },
        });
        let kind = f.optional_str("type").map(|t| match t {
            None => Some(None),
            Some(t) => match users_core::EventType::parse(t.trim()) {
                Some(k) => Some(Some(k)),
                None => {
                    f.refuse("type", &format!("`{t}` is not an event type"));
                    None
                }
            },
        });
        let before = f.optional_str("before");
        let limit = f.optional_int("limit", 1, users_core::flows::audit::MAX_LIMIT);
        Some(AuditQuery {
            user_id: user_id??,
            kind: kind??,
            before: before?,
            limit: limit?,
        })
    }
}

/// An audit event (docs/audit-and-webhooks.md). `data` holds names and reasons, never a
/// secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventRead {
    /// A UUIDv7: later events have greater ids.
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: users_domain::Timestamp,
    /// `user.registered`, `user.login_failed`, … (see the catalogue in
    /// docs/audit-and-webhooks.md).
    #[serde(rename = "type")]
    pub kind: String,
    /// The user the event is about; null for a sign-in with an unknown email.
    #[schema(format = Uuid)]
    pub user_id: Option<String>,
    /// The superuser who did it, when not the user.
    #[schema(format = Uuid)]
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<users_core::events::StoredEvent> for EventRead {
    fn from(e: users_core::events::StoredEvent) -> Self {
        EventRead {
            id: e.id,
            at: e.at,
            kind: e.kind,
            user_id: e.user_id,
            actor_id: e.actor_id,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            data: e.data,
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    pub items: Vec<EventRead>,
    /// Pass as `before` for the next page; null on the last page.
    pub next_before: Option<String>,
}
