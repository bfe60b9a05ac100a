//! A read that many requests make at the same moment, coalesced the way the token check
//! is (`lookup.rs`): a request queues its key; when fewer than `slots` batches run, it
//! starts a runner, which takes everything queued, reads it all in one blocking call
//! and answers each request, and goes on while more is queued. The provider reads its
//! clients' rows this way on every token, introspection and revocation request
//! (docs/oauth-provider.md): nothing is kept between batches, so a client rotated or
//! deleted before a request was queued is seen so by that request, on every replica.
//!
//! A request waits in the queue as long as it would wait for a connection of its own
//! (the pool's timeout), then is told the service is busy; a runner skips requests
//! whose caller has stopped waiting; a request whose runner was dropped (its HTTP
//! worker's runtime stopped) queues itself again.
//!
//! A batch may also write ([`Coalesced::writing`]): the refresh-token rotations that
//! arrive together are committed in one transaction (docs/sessions-and-tokens.md#rotations);
//! such a batch takes the SQLite writers' turn like any other write.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use users_db::{DbConnection, DbError};

use crate::{Fault, Store};

/// The most keys one call reads.
const MAX_READ_BATCH: usize = 512;

/// Reads (for a writing batch: writes) the answers of `keys`, one per key, in their order.
pub type ReadBatch<K, V> = fn(&mut DbConnection, &[K]) -> Result<Vec<V>, DbError>;

type Reply<V> = oneshot::Sender<Result<V, Fault>>;

struct Waiting<K, V> {
    ticket: u64,
    key: K,
    reply: Reply<V>,
}

struct Queue<K, V> {
    waiting: Vec<Waiting<K, V>>,
    running: usize,
    tickets: u64,
}

/// Cheap to clone.
pub struct Coalesced<K, V> {
    store: Store,
    queue: Arc<Mutex<Queue<K, V>>>,
    slots: usize,
    read: ReadBatch<K, V>,
    /// Whether a batch may write (and so takes the SQLite writers' turn).
    writes: bool,
    max_batch: usize,
}

impl<K, V> Clone for Coalesced<K, V> {
    fn clone(&self) -> Self {
        Coalesced {
            store: self.store.clone(),
            queue: self.queue.clone(),
            slots: self.slots,
            read: self.read,
            writes: self.writes,
            max_batch: self.max_batch,
        }
    }
}

impl<K, V> std::fmt::Debug for Coalesced<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesced")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

/// A runner went away without answering.
struct Dropped;

impl<K, V> Coalesced<K, V>
where
    K: Clone + Send + 'static,
    V: Send + 'static,
{
    /// `slots`: how many batches may run at once (each holds one connection).
    pub fn new(store: Store, slots: usize, read: ReadBatch<K, V>) -> Coalesced<K, V> {
        Coalesced {
            store,
            queue: Arc::new(Mutex::new(Queue {
                waiting: Vec::new(),
                running: 0,
                tickets: 0,
            })),
            slots: slots.max(1),
            read,
            writes: false,
            max_batch: MAX_READ_BATCH,
        }
    }

    /// Batches that write: `batch` runs under the SQLite writers' turn, on at most
    /// `max_batch` keys a call (what one transaction holds locked).
    pub fn writing(
        store: Store,
        slots: usize,
        max_batch: usize,
        batch: ReadBatch<K, V>,
    ) -> Coalesced<K, V> {
        Coalesced {
            writes: true,
            max_batch: max_batch.max(1),
            ..Coalesced::new(store, slots, batch)
        }
    }

    /// The answer of `key`, as committed when this was called.
    pub async fn get(&self, key: K) -> Result<V, Fault> {
        match self.queue_and_wait(key.clone()).await {
            Ok(answer) => answer,
            // its runner ran on the runtime of another HTTP worker, which stopped:
            // queued again, this request starts a runner here
            Err(Dropped) => self
                .queue_and_wait(key)
                .await
                .map_err(|Dropped| Fault::internal("the read was dropped"))?,
        }
    }

    async fn queue_and_wait(&self, key: K) -> Result<Result<V, Fault>, Dropped> {
        let (reply, mut answer) = oneshot::channel();
        let (start, ticket) = {
            let Ok(mut q) = self.queue.lock() else {
                return Ok(Err(Fault::internal("the read queue is poisoned")));
            };
            q.tickets = q.tickets.wrapping_add(1);
            let ticket = q.tickets;
            q.waiting.push(Waiting { ticket, key, reply });
            let start = q.running < self.slots;
            if start {
                q.running += 1;
            }
            (start, ticket)
        };
        if start {
            // outside every span: a batch answers several requests
            tokio::spawn(self.clone().run());
        }
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
            return Ok(Err(Fault::from(DbError::Busy(wait))));
        }
        answer.await.map_err(|_| Dropped)
    }

    /// Runs batches until nothing is queued.
    async fn run(self) {
        let mut slot = Slot {
            queue: &self.queue,
            returned: false,
        };
        loop {
            let batch = {
                let Ok(mut q) = self.queue.lock() else {
                    return;
                };
                q.waiting.retain(|w| !w.reply.is_closed());
                if q.waiting.is_empty() {
                    // under the lock, so a request queued after this starts a runner
                    q.running -= 1;
                    slot.returned = true;
                    return;
                }
                let n = q.waiting.len().min(self.max_batch);
                q.waiting.drain(..n).collect::<Vec<_>>()
            };
            let (keys, replies): (Vec<K>, Vec<Reply<V>>) =
                batch.into_iter().map(|w| (w.key, w.reply)).unzip();
            let read = self.read;
            let n = keys.len();
            let call = move |c: &mut DbConnection| read(c, &keys);
            let found = if self.writes {
                self.store.run(call).await
            } else {
                self.store.read(call).await
            };
            let found = found.map_err(Fault::from).and_then(|found| {
                if found.len() == n {
                    Ok(found)
                } else {
                    Err(Fault::internal("a batch read answered another count"))
                }
            });
            match found {
                Ok(found) => {
                    for (reply, value) in replies.into_iter().zip(found) {
                        let _ = reply.send(Ok(value));
                    }
                }
                Err(fault) => {
                    // the database is failing: what waits behind would wait as long
                    // again for the same answer
                    let queued = match self.queue.lock() {
                        Ok(mut q) => std::mem::take(&mut q.waiting),
                        Err(_) => Vec::new(),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(fault.clone()));
                    }
                    for waiting in queued {
                        let _ = waiting.reply.send(Err(fault.clone()));
                    }
                }
            }
        }
    }
}

/// A runner's slot, given back by the runner when the queue is empty, or here when the
/// runner was dropped: then what is queued is let go too (each request queues itself
/// again on its own runtime).
struct Slot<'a, K, V> {
    queue: &'a Mutex<Queue<K, V>>,
    returned: bool,
}

impl<K, V> Drop for Slot<'_, K, V> {
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
