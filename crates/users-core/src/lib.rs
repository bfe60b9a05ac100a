//! The flows of the `users` service: registration, sign-in and the per-request check,
//! account changes, password reset and email verification, sign-in with an identity
//! provider, and the worker that turns outbox rows into mails.
//!
//! Each flow takes its inputs and `now` as parameters and returns a domain outcome (a
//! `thiserror` enum per flow); it owns the rules and the order of the checks. It never
//! sees HTTP: the web layer parses, authenticates, calls one flow and maps its outcome
//! to a status and a `detail`. Every multi-row change is one `users-db` function, so a
//! flow never opens a transaction itself. The clock is never read here: callers pass
//! `now`, background work gets a [`users_domain::Clock`].

pub mod config;
pub mod counters;
pub mod fault;
pub mod flows;
pub mod hashing;
pub mod outbox;
pub mod providers;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod worker;

use std::sync::Arc;

use users_domain::PasswordPolicy;

pub use config::CoreConfig;
pub use counters::Counters;
pub use fault::Fault;
pub use hashing::{Argon2Params, PasswordHasher};
pub use outbox::OutboxSignal;
pub use providers::{ProviderKind, ProviderSettings, Providers};
pub use startup::{CoreSetup, StartupError};
pub use store::Store;
pub use tokens::JwtKeys;

/// Everything the flows need. Cheap to clone; built once at start by [`Core::build`].
#[derive(Debug, Clone)]
pub struct Core {
    pub store: Store,
    pub hasher: PasswordHasher,
    pub tokens: JwtKeys,
    pub refresh_key: tokens::RefreshKey,
    pub policy: PasswordPolicy,
    pub config: Arc<CoreConfig>,
    pub counters: Arc<Counters>,
    /// Wakes the outbox worker when a flow queued a mail.
    pub outbox: OutboxSignal,
    pub providers: Providers,
}
