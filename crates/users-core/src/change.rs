//! How a flow writes a change: [`Core::apply`] raises the change's events (`events.rs`),
//! hands them with its other effects (a mail, the end of sessions) to the `users_db`
//! function that writes the change in one transaction, and, only if the change
//! happened (`users_db::Happened`), counts what it wrote and wakes the outbox workers.
//! A change that decides inside its transaction what it removes (`users_db::guards`)
//! builds its effects there, from what it removed ([`Raised::with_cleared`]), and is
//! counted the same way.

use std::sync::{Arc, Mutex};

use users_db::guards::Cleared;
use users_db::{DbConnection, DbError, Effects, Happened};
use users_domain::{Timestamp, UserId};

use crate::client::ClientInfo;
use crate::counters::Counters;
use crate::events::{self, Event, EventType, WebhookSettings};
use crate::guards::{self, Why};
use crate::outbox::{OutboxSignal, WEBHOOK_KIND};
use crate::{Core, Fault};

/// What a change raises: its events, recorded as coming from `client` at `now`, and
/// the rest of its effects.
#[derive(Debug)]
pub(crate) struct Change<'a> {
    events: Vec<Event>,
    effects: Effects,
    client: &'a ClientInfo,
    now: Timestamp,
}

impl<'a> Change<'a> {
    pub(crate) fn new(events: Vec<Event>, client: &'a ClientInfo, now: Timestamp) -> Change<'a> {
        Change {
            events,
            effects: Effects::none(),
            client,
            now,
        }
    }

    /// The change also causes `effects` (a mail, the end of the user's sessions).
    pub(crate) fn and(mut self, effects: Effects) -> Change<'a> {
        self.effects = self.effects.and(effects);
        self
    }
}

/// A change's effects, as its `users_db` function gets them inside [`Core::apply`].
pub(crate) struct Raised {
    effects: Effects,
    /// For [`Raised::with_cleared`]: what the events of removals are raised with.
    webhooks: Arc<WebhookSettings>,
    client: ClientInfo,
    now: Timestamp,
    tally: Tally,
}

impl Raised {
    /// The effects of a change that knows them before it runs.
    pub(crate) fn effects(&self) -> &Effects {
        &self.effects
    }

    /// For a change that decides inside its transaction what it removes of `user`'s
    /// account (`users_db::guards`): its effects, and one event per thing removed.
    pub(crate) fn with_cleared(
        self,
        user: UserId,
        why: Why,
    ) -> impl FnOnce(&Cleared) -> Result<Effects, String> + Send + 'static {
        let Raised {
            effects: base,
            webhooks,
            client,
            now,
            tally,
        } = self;
        move |cleared: &Cleared| {
            let removed = guards::events(user, cleared, why);
            let more =
                events::effects(removed, &client, &webhooks, now).map_err(|e| e.to_string())?;
            let effects = base.and(more);
            tally.note(Queued::of(&effects));
            Ok(effects)
        }
    }
}

impl Core {
    /// Writes a change with `write` (a `users_db` function taking the change's
    /// effects): the events of `change` are raised first; once the change committed,
    /// and only if it happened, what it wrote is counted and the workers it gave work
    /// are woken.
    pub(crate) async fn apply<T, E, F>(&self, change: Change<'_>, write: F) -> Result<T, Fault>
    where
        T: Happened + Send + 'static,
        E: Into<DbError>,
        F: FnOnce(&mut DbConnection, Raised) -> Result<T, E> + Send + 'static,
    {
        let (client, now) = (change.client.clone(), change.now);
        let (effects, Committed(queued)) = self.raise(change)?;
        let tally = Tally::default();
        tally.note(queued);
        let raised = Raised {
            effects,
            webhooks: self.webhooks.clone(),
            client,
            now,
            tally: tally.clone(),
        };
        let outcome = self.store.run(move |c| write(c, raised)).await?;
        if outcome.happened() {
            tally.committed(&self.counters, &self.outbox);
        }
        Ok(outcome)
    }

    /// The effects of a change written in a batch with others' (a code's redemption,
    /// `Core::redemptions`), raised as [`Core::apply`] raises them, and what to count
    /// once the batch committed, if the change happened ([`Committed::count`]).
    pub(crate) fn raise(&self, change: Change<'_>) -> Result<(Effects, Committed), Fault> {
        let Change {
            events,
            effects,
            client,
            now,
        } = change;
        let effects = events::effects(events, client, &self.webhooks, now)?.and(effects);
        let queued = Queued::of(&effects);
        Ok((effects, Committed(queued)))
    }

    /// Stores `events` that go with no change of their own (a failed sign-in).
    pub(crate) async fn record(
        &self,
        events: Vec<Event>,
        client: &ClientInfo,
        now: Timestamp,
    ) -> Result<(), Fault> {
        self.apply(Change::new(events, client, now), |c, raised| {
            users_db::outbox::enqueue(c, raised.effects())
        })
        .await
    }
}

/// What a change queued, noted before it commits so that it is counted (and the
/// workers woken) only once it committed.
#[derive(Debug, Default)]
struct Queued {
    events: Vec<String>,
    mails: usize,
    webhooks: usize,
}

impl Queued {
    fn of(effects: &Effects) -> Queued {
        let webhooks = effects
            .outbox
            .iter()
            .filter(|r| r.kind == WEBHOOK_KIND)
            .count();
        Queued {
            events: effects
                .events
                .iter()
                .map(|e| e.event_type.clone())
                .collect(),
            mails: effects.outbox.len() - webhooks,
            webhooks,
        }
    }
}

/// What a change queued: noted before it runs, or, for a change that decides its
/// effects inside its transaction, there (hence shared with the blocking task).
#[derive(Debug, Clone, Default)]
struct Tally(Arc<Mutex<Option<Queued>>>);

impl Tally {
    fn note(&self, queued: Queued) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(queued);
        }
    }

    /// The change committed: counts what it wrote and wakes the workers it gave work.
    fn committed(self, counters: &Counters, signal: &OutboxSignal) {
        let Some(queued) = self.0.lock().ok().and_then(|mut slot| slot.take()) else {
            return;
        };
        queued.count(counters, signal);
    }
}

/// What a change written in a batch queued ([`Core::raise`]).
#[derive(Debug)]
pub(crate) struct Committed(Queued);

impl Committed {
    /// The batch committed and the change happened: counts what it wrote and wakes the
    /// workers it gave work.
    pub(crate) fn count(self, core: &Core) {
        self.0.count(&core.counters, &core.outbox);
    }
}

impl Queued {
    fn count(self, counters: &Counters, signal: &OutboxSignal) {
        let queued = self;
        counters.count_events(queued.events.iter().filter_map(|t| EventType::parse(t)));
        for _ in 0..queued.mails {
            Counters::inc(&counters.mails_queued);
        }
        if queued.mails > 0 {
            signal.wake();
        }
        if queued.webhooks > 0 {
            signal.wake_webhooks();
        }
    }
}
