//! Security events (docs/audit-and-webhooks.md): raised by the flows, stored in the
//! transaction of the change they describe (through `users_db::Effects`), and delivered as
//! signed webhooks through the outbox. No event holds a password, a token, a hash or a
//! secret: `data` carries names and reasons only.

use serde::Serialize;
use serde_json::{json, Value};
use users_db::audit::AuditRow;
use users_db::outbox::NewOutboxRow;
use users_db::Effects;
use users_domain::{Timestamp, UserId};

use crate::client::ClientInfo;
use crate::outbox::WEBHOOK_KIND;
use crate::Fault;

/// Every type of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    UserRegistered,
    LoginSucceeded,
    LoginFailed,
    LoggedOut,
    SessionEnded,
    RefreshTokenReused,
    PasswordResetRequested,
    PasswordChanged,
    EmailVerificationRequested,
    EmailVerified,
    UserUpdated,
    UserDeleted,
    IdentityLinked,
    IdentityUnlinked,
    MfaEnabled,
    MfaDisabled,
    MfaRecoveryCodeUsed,
    PasskeyAdded,
    PasskeyRemoved,
    OauthClientCreated,
    OauthClientUpdated,
    OauthClientDeleted,
    OauthClientSecretRotated,
    OauthConsentGranted,
    OauthGrantRevoked,
    OauthCodeReused,
    RoleCreated,
    RoleUpdated,
    RoleDeleted,
    UserRolesChanged,
    ApiKeyCreated,
    ApiKeyRevoked,
}

impl EventType {
    pub const ALL: [EventType; 32] = [
        EventType::UserRegistered,
        EventType::LoginSucceeded,
        EventType::LoginFailed,
        EventType::LoggedOut,
        EventType::SessionEnded,
        EventType::RefreshTokenReused,
        EventType::PasswordResetRequested,
        EventType::PasswordChanged,
        EventType::EmailVerificationRequested,
        EventType::EmailVerified,
        EventType::UserUpdated,
        EventType::UserDeleted,
        EventType::IdentityLinked,
        EventType::IdentityUnlinked,
        EventType::MfaEnabled,
        EventType::MfaDisabled,
        EventType::MfaRecoveryCodeUsed,
        EventType::PasskeyAdded,
        EventType::PasskeyRemoved,
        EventType::OauthClientCreated,
        EventType::OauthClientUpdated,
        EventType::OauthClientDeleted,
        EventType::OauthClientSecretRotated,
        EventType::OauthConsentGranted,
        EventType::OauthGrantRevoked,
        EventType::OauthCodeReused,
        EventType::RoleCreated,
        EventType::RoleUpdated,
        EventType::RoleDeleted,
        EventType::UserRolesChanged,
        EventType::ApiKeyCreated,
        EventType::ApiKeyRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserRegistered => "user.registered",
            EventType::LoginSucceeded => "user.login_succeeded",
            EventType::LoginFailed => "user.login_failed",
            EventType::LoggedOut => "user.logged_out",
            EventType::SessionEnded => "session.ended",
            EventType::RefreshTokenReused => "refresh_token.reused",
            EventType::PasswordResetRequested => "password.reset_requested",
            EventType::PasswordChanged => "password.changed",
            EventType::EmailVerificationRequested => "email.verification_requested",
            EventType::EmailVerified => "email.verified",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeleted => "user.deleted",
            EventType::IdentityLinked => "identity.linked",
            EventType::IdentityUnlinked => "identity.unlinked",
            EventType::MfaEnabled => "mfa.enabled",
            EventType::MfaDisabled => "mfa.disabled",
            EventType::MfaRecoveryCodeUsed => "mfa.recovery_code_used",
            EventType::PasskeyAdded => "passkey.added",
            EventType::PasskeyRemoved => "passkey.removed",
            EventType::OauthClientCreated => "oauth.client_created",
            EventType::OauthClientUpdated => "oauth.client_updated",
            EventType::OauthClientDeleted => "oauth.client_deleted",
            EventType::OauthClientSecretRotated => "oauth.client_secret_rotated",
            EventType::OauthConsentGranted => "oauth.consent_granted",
            EventType::OauthGrantRevoked => "oauth.grant_revoked",
            EventType::OauthCodeReused => "oauth.code_reused",
            EventType::RoleCreated => "role.created",
            EventType::RoleUpdated => "role.updated",
            EventType::RoleDeleted => "role.deleted",
            EventType::UserRolesChanged => "user.roles_changed",
            EventType::ApiKeyCreated => "api_key.created",
            EventType::ApiKeyRevoked => "api_key.revoked",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// An event a flow raises.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub user_id: Option<UserId>,
    /// The superuser who did it, when not the user.
    pub actor_id: Option<UserId>,
    pub data: Value,
}

impl Event {
    pub fn new(kind: EventType, user_id: Option<UserId>) -> Event {
        Event {
            kind,
            user_id,
            actor_id: None,
            data: json!({}),
        }
    }

    pub fn by(mut self, actor: Option<UserId>) -> Event {
        self.actor_id = actor.filter(|a| Some(*a) != self.user_id);
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Event {
        if let Value::Object(map) = &mut self.data {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// An event as stored and as delivered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: String,
    pub at: Timestamp,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: Option<String>,
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub data: Value,
}

impl From<AuditRow> for StoredEvent {
    fn from(r: AuditRow) -> Self {
        StoredEvent {
            id: r.id,
            at: Timestamp::from_millis(r.at),
            kind: r.event_type,
            user_id: r.user_id,
            actor_id: r.actor_id,
            ip: r.ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            data: serde_json::from_str(&r.data).unwrap_or(Value::Null),
        }
    }
}

/// Where webhooks go, and which events.
#[derive(Clone, Default)]
pub struct WebhookSettings {
    pub urls: Vec<String>,
    /// `None`: every type.
    pub events: Option<Vec<EventType>>,
    /// The `whsec_…` key, decoded.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("urls", &self.urls)
            .field("events", &self.events)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl WebhookSettings {
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    fn wants(&self, kind: EventType) -> bool {
        !self.urls.is_empty() && self.events.as_ref().is_none_or(|e| e.contains(&kind))
    }
}

/// What a webhook outbox row holds: where it goes and the exact body to sign.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct WebhookDelivery {
    pub url: String,
    /// The event id: the `webhook-id` of every attempt.
    pub event_id: String,
    pub body: String,
    /// The W3C trace context of the request that raised the event, when traces are
    /// exported: the delivery continues that trace (docs/operations.md#traces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace_context: Vec<(String, String)>,
}

/// The rows of `events`, and a webhook delivery per (event, URL) that wants it.
pub fn effects(
    events: Vec<Event>,
    client: &ClientInfo,
    webhooks: &WebhookSettings,
    now: Timestamp,
) -> Result<Effects, Fault> {
    let mut effects = Effects::none();
    // the trace context, read once and only for an event that goes out as a webhook
    let mut trace_context: Option<Vec<(String, String)>> = None;
    for event in events {
        let stored = StoredEvent {
            id: uuid::Uuid::now_v7().to_string(),
            at: now,
            kind: event.kind.as_str().to_owned(),
            user_id: event.user_id.map(|u| u.to_string()),
            actor_id: event.actor_id.map(|u| u.to_string()),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            request_id: client.request_id.clone(),
            data: event.data,
        };
        if webhooks.wants(event.kind) {
            let body = serde_json::to_string(&json!({
                "type": stored.kind,
                "timestamp": stored.at,
                "data": stored,
            }))
            .map_err(Fault::internal)?;
            for url in &webhooks.urls {
                let delivery = WebhookDelivery {
                    url: url.clone(),
                    event_id: stored.id.clone(),
                    body: body.clone(),
                    trace_context: trace_context
                        .get_or_insert_with(users_domain::trace_context::headers)
                        .clone(),
                };
                effects.outbox.push(NewOutboxRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    kind: WEBHOOK_KIND.to_owned(),
                    payload: serde_json::to_string(&delivery).map_err(Fault::internal)?,
                    created_at: now.millis(),
                });
            }
        }
        effects.events.push(AuditRow {
            id: stored.id,
            at: now.millis(),
            event_type: stored.kind,
            user_id: stored.user_id,
            actor_id: stored.actor_id,
            ip: stored.ip,
            user_agent: stored.user_agent,
            request_id: stored.request_id,
            data: stored.data.to_string(),
        });
    }
    Ok(effects)
}
