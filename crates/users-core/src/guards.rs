//! The events of what an account loses at a takeover or at a proof by mail (see
//! `users_db::guards` and docs/security.md): one per removed identity, passkey and
//! factor, written in the transaction of the change that removed them (see
//! `change::Raised::with_cleared`).

use users_db::guards::Cleared;
use users_domain::UserId;

use crate::events::{Event, EventType};
use crate::upstream::name_of;

/// Why things were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A provider proved the address of an account whose registrant never did.
    TakenOver,
    /// A mail proved the address: what was set up before that goes.
    UnverifiedAtSetup,
}

impl Why {
    fn identity_reason(self) -> &'static str {
        match self {
            Why::TakenOver => "account_taken_over",
            Why::UnverifiedAtSetup => "unverified_at_link",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Why::TakenOver => "account_taken_over",
            Why::UnverifiedAtSetup => "unverified_at_setup",
        }
    }
}

/// One event per thing removed.
pub(crate) fn events(user: UserId, cleared: &Cleared, why: Why) -> Vec<Event> {
    let mut events = Vec::new();
    for (provider, subject) in &cleared.identities {
        events.push(
            Event::new(EventType::IdentityUnlinked, Some(user))
                .with("provider", name_of(provider))
                .with("subject", subject.clone())
                .with("reason", why.identity_reason()),
        );
    }
    for (id, name) in &cleared.passkeys {
        events.push(
            Event::new(EventType::PasskeyRemoved, Some(user))
                .with("passkey_id", id.clone())
                .with("name", name.clone())
                .with("reason", why.reason()),
        );
    }
    for (id, name) in &cleared.api_keys {
        events.push(
            Event::new(EventType::ApiKeyRevoked, Some(user))
                .with("api_key_id", id.clone())
                .with("name", name.clone())
                .with("reason", why.reason()),
        );
    }
    if cleared.totp {
        events.push(
            Event::new(EventType::MfaDisabled, Some(user))
                .with("method", "totp")
                .with("reason", why.reason()),
        );
    }
    events
}
