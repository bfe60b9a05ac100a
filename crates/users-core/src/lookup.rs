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

use std::sync::{Arc, Mutex};

use crate::{Counters, Fault, Store};
use tokio::sync::oneshot;
use users_db::sessions::Liveness;
use users_db::users::{TokenCheck, TokenKey};

/// A session's last use is written at most this often (a busy session is not written
/// on every request).
pub const TOUCH_EVERY_MS: i64 = 60_000;
/// The most keys one statement carries.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Option<TokenCheck>, Fault>>;

struct Waiting {
    key: TokenKey,
    now_ms: i64,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    running: usize,
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

    /// The user, revocation and session of `key`, as committed when this was called;
    /// the session's use is recorded (about once a minute) on the way.
    pub async fn check(&self, key: TokenKey, now_ms: i64) -> Result<Option<TokenCheck>, Fault> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = self
                .queue
                .lock()
                .map_err(|_| Fault::internal("the lookup queue is poisoned"))?;
            q.waiting.push(Waiting { key, now_ms, reply });
            let start = q.running < self.slots;
            if start {
                q.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(self.clone().run());
        }
        answer
            .await
            .map_err(|_| Fault::internal("the lookup was dropped"))?
    }

    /// Runs batches until nothing is queued.
    async fn run(self) {
        loop {
            let batch = {
                let Ok(mut q) = self.queue.lock() else {
                    return;
                };
                if q.waiting.is_empty() {
                    q.running -= 1;
                    return;
                }
                let n = q.waiting.len().min(MAX_BATCH);
                q.waiting.drain(..n).collect::<Vec<_>>()
            };
            self.answer(batch).await;
        }
    }

    async fn answer(&self, batch: Vec<Waiting>) {
        Counters::inc(&self.counters.token_check_batches);
        self.counters
            .token_checks
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let keys: Vec<TokenKey> = batch.iter().map(|w| w.key.clone()).collect();
        let now_ms = batch.iter().map(|w| w.now_ms).max().unwrap_or_default();
        let idle_ms = self.idle_ms;
        let found = self
            .store
            .run(move |c| {
                let found = users_db::users::find_for_tokens(c, &keys)?;
                let stale = now_ms - TOUCH_EVERY_MS;
                let at = Liveness { now_ms, idle_ms };
                let mut touch: Vec<String> = found
                    .iter()
                    .flatten()
                    .filter_map(|check| check.session.as_ref())
                    .filter(|s| s.is_live(at) && s.last_used_at < stale)
                    .map(|s| s.id.clone())
                    .collect();
                if !touch.is_empty() {
                    touch.sort_unstable();
                    touch.dedup();
                    users_db::sessions::touch_many(c, &touch, now_ms, stale)?;
                }
                Ok(found)
            })
            .await;
        match found {
            Ok(found) => {
                for (waiting, check) in batch.into_iter().zip(found) {
                    let _ = waiting.reply.send(Ok(check));
                }
            }
            Err(e) => {
                let fault = Fault::from(e);
                for waiting in batch {
                    let _ = waiting.reply.send(Err(fault.clone()));
                }
            }
        }
    }
}
