//! The events of what an account loses at a takeover or at a proof by mail (see
//! `users_db::guards` and docs/security.md): one per removed identity, passkey and
//! factor, written in the transaction of the change that removed them.

use std::sync::{Arc, Mutex};

use users_db::guards::Cleared;
use users_db::Effects;
use users_domain::{Timestamp, UserId};

use crate::client::ClientInfo;
use crate::events::{Event, EventType, Queued};
use crate::providers::name_of;
use crate::Core;

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
    if cleared.totp {
        events.push(
            Event::new(EventType::MfaDisabled, Some(user))
                .with("method", "totp")
                .with("reason", why.reason()),
        );
    }
    events
}

/// What a change that may clear an account writes: `base`, and the events of whatever
/// it cleared; for the `users_db` functions that decide inside their transaction. The
/// [`Tally`] holds what was queued, to count once the change committed.
pub(crate) fn with_cleared(
    core: &Core,
    user: UserId,
    why: Why,
    base: Effects,
    client: &ClientInfo,
    now: Timestamp,
) -> (
    impl FnOnce(&Cleared) -> Result<Effects, String> + Send + 'static,
    Tally,
) {
    let (core, client) = (core.clone(), client.clone());
    let tally = Tally::default();
    let noted = tally.clone();
    let build = move |cleared: &Cleared| {
        let more = core
            .raise(events(user, cleared, why), &client, now)
            .map_err(|e| e.to_string())?;
        let effects = base.and(more);
        noted.note(Queued::of(&effects));
        Ok(effects)
    };
    (build, tally)
}

/// What a change with effects decided inside its transaction queued.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally(Arc<Mutex<Option<Queued>>>);

impl Tally {
    fn note(&self, queued: Queued) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(queued);
        }
    }

    /// After the change committed: counts what it wrote and wakes the workers.
    pub(crate) fn committed(self, core: &Core) {
        let queued = self.0.lock().ok().and_then(|mut slot| slot.take());
        if let Some(queued) = queued {
            core.committed(queued);
        }
    }
}
