//! The check every authenticated request makes ("this token's user, session and
//! revocation"), coalesced: requests that need it at the same moment share one
//! blocking call and one database round trip.
//!
//! A request queues its key. When fewer than `slots` batches are running, it also
//! starts a runner, which takes everything queued, looks it all up in one call, answers
//! each request and, while more are queued, goes on with them; otherwise the running
//! runners pick it up. So a lone request is sent at once, and under load each round
//! trip serves everything that arrived during the previous one.
//!
//! Consistency: a runner takes a request only before starting the statement that
//! answers it, so a change committed before the request was queued (a deactivation, a
//! revocation, an ended session) is always seen.
//!
//! A request waits in the queue as long as it would wait for a connection of its own
//! (the pool's timeout), then is told the service is busy; a runner skips requests
//! whose caller has stopped waiting.

use std::sync::{Arc, Mutex};

use crate::{Counters, Fault, Store};
use tokio::sync::oneshot;
use users_db::sessions::Liveness;
use users_db::users::{Credential, TokenCheck};

/// A session's last use is written at most this often (a busy session is not written
/// on every request).
pub const TOUCH_EVERY_MS: i64 = 60_000;
/// The most keys one statement carries.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Option<TokenCheck>, Fault>>;

struct Waiting {
    ticket: u64,
    key: Credential,
    now_ms: i64,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    running: usize,
    tickets: u64,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct TokenLookups {
    store: Store,
    queue: Arc<Mutex<Queue>>,
    slots: usize,
    idle_ms: i64,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for TokenLookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLookups")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl TokenLookups {
    /// `slots`: how many batches may run at once (each holds one connection while it
    /// runs); `idle_ms`: a session unused this long has ended.
    pub fn new(store: Store, slots: usize, idle_ms: i64, counters: Arc<Counters>) -> TokenLookups {
        TokenLookups {
            store,
            queue: Arc::new(Mutex::new(Queue::default())),
            slots: slots.max(1),
            idle_ms,
            counters,
        }
    }

    /// The user, revocation and session of an access token, or the user and key of an
    /// API key, as committed when this was called; the use of the session or key is
    /// recorded (about once a minute) on the way.
    pub async fn check(&self, key: Credential, now_ms: i64) -> Result<Option<TokenCheck>, Fault> {
        match self.queue_and_wait(key.clone(), now_ms).await {
            // the runner went away unanswered: it ran on the runtime of another HTTP
            // worker, which stops when it has no connections left (at shutdown, while
            // this one still serves). Queued again, this request starts a runner here.
            Err(Dropped) => self
                .queue_and_wait(key, now_ms)
                .await
                .map_err(|Dropped| Fault::internal("the lookup was dropped"))?,
            Ok(answer) => answer,
        }
    }

    async fn queue_and_wait(
        &self,
        key: Credential,
        now_ms: i64,
    ) -> Result<Result<Option<TokenCheck>, Fault>, Dropped> {
        let (reply, mut answer) = oneshot::channel();
        let (start, ticket) = {
            let Ok(mut q) = self.queue.lock() else {
                return Ok(Err(Fault::internal("the lookup queue is poisoned")));
            };
            q.tickets = q.tickets.wrapping_add(1);
            let ticket = q.tickets;
            q.waiting.push(Waiting {
                ticket,
                key,
                now_ms,
                reply,
            });
            let start = q.running < self.slots;
            if start {
                q.running += 1;
            }
            (start, ticket)
        };
        if start {
            // Outside every span: a batch answers several requests, and is in none of
            // their traces (docs/operations.md#traces).
            tokio::spawn(self.clone().run());
        }
        // Behind batches that do not end (a lock, a stalled database), a request waits
        // in the queue no longer than it would wait for a connection of its own
        // (DATABASE_TIMEOUT_SECONDS); once its batch has started, it waits for it.
        let wait = self.store.wait();
        if let Ok(answered) = tokio::time::timeout(wait, &mut answer).await {
            return answered.map_err(|_| Dropped);
        }
        let still_queued = match self.queue.lock() {
            Ok(mut q) => match q.waiting.iter().position(|w| w.ticket == ticket) {
                Some(at) => {
                    q.waiting.remove(at);
                    true
                }
                None => false,
            },
            Err(_) => false,
        };
        if still_queued {
            return Ok(Err(Fault::from(users_db::DbError::Busy(wait))));
        }
        answer.await.map_err(|_| Dropped)
    }

    /// Runs batches until nothing is queued.
    async fn run(self) {
        // gives the slot back if this ends early: the runtime it runs on may drop it
        let mut slot = Slot {
            queue: &self.queue,
            returned: false,
        };
        loop {
            let batch = {
                let Ok(mut q) = self.queue.lock() else {
                    return;
                };
                // a request whose client left is not looked up
                q.waiting.retain(|w| !w.reply.is_closed());
                if q.waiting.is_empty() {
                    // under the lock, so a request queued after this starts a runner
                    q.running -= 1;
                    slot.returned = true;
                    return;
                }
                let n = q.waiting.len().min(MAX_BATCH);
                q.waiting.drain(..n).collect::<Vec<_>>()
            };
            if let Err(fault) = self.answer(batch).await {
                // the database is failing: what waits behind this batch would wait as
                // long again for the same answer
                let queued = match self.queue.lock() {
                    Ok(mut q) => std::mem::take(&mut q.waiting),
                    Err(_) => return,
                };
                for waiting in queued {
                    let _ = waiting.reply.send(Err(fault.clone()));
                }
            }
        }
    }

    /// Answers every request of `batch`; the fault when the lookup failed.
    async fn answer(&self, batch: Vec<Waiting>) -> Result<(), Fault> {
        Counters::inc(&self.counters.token_check_batches);
        self.counters
            .token_checks
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let now_ms = batch.iter().map(|w| w.now_ms).max().unwrap_or_default();
        let (keys, replies): (Vec<Credential>, Vec<Reply>) =
            batch.into_iter().map(|w| (w.key, w.reply)).unzip();
        let idle_ms = self.idle_ms;
        // Where writers take turns (SQLite), the read runs beside the writer and what is
        // due is written in a turn of its own; elsewhere both in one call, as one trip.
        let inline = !self.store.takes_turns();
        let found = match self
            .store
            .read(move |c| -> Result<_, users_db::DbError> {
                let (found, due) = read_batch(c, &keys, now_ms, idle_ms)?;
                if inline {
                    touch(c, &due, now_ms)?;
                    return Ok((found, Due::default()));
                }
                Ok((found, due))
            })
            .await
        {
            Ok((found, due)) => {
                self.touch_in_turn(due, now_ms).await;
                Ok(found)
            }
            Err(e) => Err(e),
        };
        match found {
            Ok(found) => {
                for (reply, check) in replies.into_iter().zip(found) {
                    let _ = reply.send(Ok(check));
                }
                Ok(())
            }
            Err(e) => {
                let fault = Fault::from(e);
                for reply in replies {
                    let _ = reply.send(Err(fault.clone()));
                }
                Err(fault)
            }
        }
    }

    /// Writes the last use of what `due` names in a writers' turn (nothing when nothing
    /// is due). A failure is logged, not answered: the checks read fine, and a last use
    /// written late only brings an idle session's end nearer; the next check retries it.
    async fn touch_in_turn(&self, due: Due, now_ms: i64) {
        if due.is_empty() {
            return;
        }
        if let Err(e) = self.store.run(move |c| touch(c, &due, now_ms)).await {
            tracing::warn!(error = %e, "the last use of sessions or API keys was not written");
        }
    }
}

/// Writes the last use of what `due` names.
fn touch(c: &mut users_db::DbConnection, due: &Due, now_ms: i64) -> Result<(), users_db::DbError> {
    let stale = now_ms - TOUCH_EVERY_MS;
    if !due.sessions.is_empty() {
        users_db::sessions::touch_many(c, &due.sessions, now_ms, stale)?;
    }
    if !due.api_keys.is_empty() {
        users_db::api_keys::touch_many(c, &due.api_keys, now_ms, stale)?;
    }
    Ok(())
}

/// The sessions and API keys a batch found in use whose last use is older than
/// [`TOUCH_EVERY_MS`]: written after the read, as the writer they are (on SQLite they take
/// the writers' turn, docs/operations.md#sqlite-writers), before the batch is answered.
#[derive(Default)]
struct Due {
    sessions: Vec<String>,
    api_keys: Vec<String>,
}

impl Due {
    fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.api_keys.is_empty()
    }
}

/// The read of a batch: what each key names, and what is due a touch.
fn read_batch(
    c: &mut users_db::DbConnection,
    keys: &[Credential],
    now_ms: i64,
    idle_ms: i64,
) -> Result<(Vec<Option<TokenCheck>>, Due), users_db::DbError> {
    let found = users_db::users::find_for_credentials(c, keys)?;
    let stale = now_ms - TOUCH_EVERY_MS;
    let at = Liveness { now_ms, idle_ms };
    let sessions = found
        .iter()
        .flatten()
        .filter_map(|check| check.session.as_ref())
        .filter(|s| s.is_live(at) && s.last_used_at < stale)
        .map(|s| s.id.clone());
    // a key's use, as a session's: at most once a minute, and only for a key that is
    // still good
    let api_keys = found
        .iter()
        .flatten()
        .filter_map(|check| check.api_key.as_ref())
        .filter(|k| !k.is_expired(now_ms) && k.last_used_at.is_none_or(|t| t < stale))
        .map(|k| k.id.clone());
    let due = Due {
        sessions: sorted(sessions),
        api_keys: sorted(api_keys),
    };
    Ok((found, due))
}

fn sorted(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A runner went away without answering.
struct Dropped;

/// A runner's slot, given back by the runner when the queue is empty, or here when the
/// runner was dropped: then what is queued is let go too, and each request queues
/// itself again on its own runtime (no runner may be left to take it).
struct Slot<'a> {
    queue: &'a Mutex<Queue>,
    returned: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.returned {
            return;
        }
        let mut q = match self.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        q.running = q.running.saturating_sub(1);
        q.waiting.clear();
    }
}
