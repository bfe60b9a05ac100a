//! Counts of what the flows and the worker did, for `/metrics`. Plain atomics: the web
//! layer renders them.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    pub logins_succeeded: AtomicU64,
    pub logins_failed: AtomicU64,
    pub registrations: AtomicU64,
    pub mails_queued: AtomicU64,
    pub mails_sent: AtomicU64,
    pub mails_failed: AtomicU64,
}

impl Counters {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
