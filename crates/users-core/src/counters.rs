//! Counts of what the flows and the worker did, for `/metrics`. Plain atomics: the web
//! layer renders them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::events::EventType;

#[derive(Debug, Default)]
pub struct Counters {
    pub logins_succeeded: AtomicU64,
    pub logins_failed: AtomicU64,
    pub registrations: AtomicU64,
    pub mails_queued: AtomicU64,
    pub mails_sent: AtomicU64,
    pub mails_failed: AtomicU64,
    /// Reset and verification mails not sent: the address had its quota.
    pub mails_over_quota: AtomicU64,
    pub sessions_started: AtomicU64,
    /// Refreshes that rotated the token.
    pub refreshes_rotated: AtomicU64,
    /// A spent token within the reuse interval: answered with the current one.
    pub refreshes_converged: AtomicU64,
    /// A spent token after the interval: the session was ended.
    pub refresh_reuse_detected: AtomicU64,
    pub refreshes_invalid: AtomicU64,
    pub mfa_enabled: AtomicU64,
    /// Second steps (and code checks) that succeeded / failed.
    pub mfa_successes: AtomicU64,
    pub mfa_failures: AtomicU64,
    pub passkey_sign_ins: AtomicU64,
    pub passkey_failures: AtomicU64,
    /// Access-token checks, and the statements that answered them (coalesced).
    pub token_checks: AtomicU64,
    pub token_check_batches: AtomicU64,
    /// Audit events written, by type.
    events: Mutex<BTreeMap<&'static str, u64>>,
    pub webhooks_delivered: AtomicU64,
    /// Webhook deliveries given up after 24 hours of failures.
    pub webhooks_failed: AtomicU64,
}

impl Counters {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn count_events(&self, kinds: impl Iterator<Item = EventType>) {
        if let Ok(mut m) = self.events.lock() {
            for k in kinds {
                *m.entry(k.as_str()).or_default() += 1;
            }
        }
    }

    /// Events written by this process, by type (every type, zeros included).
    pub fn events_by_type(&self) -> Vec<(&'static str, u64)> {
        let counted = self.events.lock().map(|m| m.clone()).unwrap_or_default();
        EventType::ALL
            .iter()
            .map(|t| (t.as_str(), counted.get(t.as_str()).copied().unwrap_or(0)))
            .collect()
    }
}
