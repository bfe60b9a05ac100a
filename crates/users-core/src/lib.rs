//! The flows of the `users` service: registration, sign-in and the per-request check,
//! account changes, password reset and email verification, sign-in with an identity
//! provider, sessions, the second factor, the audit events every flow raises, and the
//! workers that turn outbox rows into mails and webhook deliveries.
//!
//! Each flow takes its inputs and `now` as parameters and returns a domain outcome (a
//! `thiserror` enum per flow); it owns the rules and the order of the checks. It never
//! sees HTTP: the web layer parses, authenticates, calls one flow and maps its outcome
//! to a status and a `detail`. Every multi-row change is one `users-db` function, so a
//! flow never opens a transaction itself. The clock is never read here: callers pass
//! `now`, background work gets a [`users_domain::Clock`].

mod change;
pub mod client;
pub mod coalesce;
pub mod config;
pub mod counters;
pub mod events;
pub mod fault;
pub mod flows;
mod guards;
pub mod hashing;
pub mod keyring;
pub mod lookup;
pub mod ops;
pub mod outbox;
pub mod rotations;
pub mod sealing;
pub mod signing;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod upstream;
pub mod webhooks;
pub mod worker;

use std::sync::Arc;

use users_domain::PasswordPolicy;

/// The types of the database layer the web layer names (settings, the current user): it
/// reaches the database only through this crate (ARCHITECTURE.md).
pub mod db {
    pub use users_db::users::StoredUser;
    pub use users_db::{DatabaseUrl, PoolOptions};
}

/// The mail layer as the web layer sees it: building the mailer from its settings, and
/// the HTML escaping the pages share with the mails.
pub mod mail {
    pub use users_mail::{escape_html, MailConfig, MailError, Mailer};
}

pub use config::CoreConfig;
pub use counters::Counters;
pub use events::{Event, EventType, WebhookSettings};
pub use fault::Fault;
pub use hashing::{Argon2Params, PasswordHasher};
pub use outbox::OutboxSignal;
pub use startup::{CoreSetup, PasskeySettings, StartupError};
pub use store::Store;
pub use tokens::JwtKeys;
pub use upstream::{ProviderKind, ProviderSettings, Providers};

/// Everything the flows need. Cheap to clone; built once at start by [`Core::build`].
#[derive(Debug, Clone)]
pub struct Core {
    pub store: Store,
    pub hasher: PasswordHasher,
    pub tokens: JwtKeys,
    pub refresh_key: tokens::RefreshKey,
    pub sealer: sealing::Sealer,
    /// `None` when passkeys are not configured (their routes answer 503).
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    pub policy: PasswordPolicy,
    pub config: Arc<CoreConfig>,
    pub counters: Arc<Counters>,
    /// Wakes the outbox worker when a flow queued a mail.
    pub outbox: OutboxSignal,
    pub providers: Providers,
    /// Where events are POSTed.
    pub webhooks: Arc<events::WebhookSettings>,
    /// The per-request token check, coalesced across concurrent requests.
    pub lookups: lookup::TokenLookups,
    /// The provider's signing keys, one ring per algorithm (docs/oauth-provider.md).
    pub keys: Arc<keyring::KeyRings>,
    /// Refresh-token rotations, committed together (`rotations.rs`).
    pub rotations: coalesce::Coalesced<rotations::Rotating, rotations::Step>,
    /// The provider's code redemptions, committed together (docs/oauth-provider.md#how-a-code-is-redeemed).
    pub redemptions: coalesce::Coalesced<users_db::oauth::Redemption, users_db::oauth::Redeemed>,
    /// The provider's new codes, stored together (docs/oauth-provider.md#how-a-code-is-issued).
    pub code_issues: coalesce::Coalesced<users_db::oauth::CodeRow, bool>,
    /// The provider's client rows, read coalesced across concurrent requests.
    pub client_rows: coalesce::Coalesced<String, Option<users_db::oauth::ClientRow>>,
    /// Whether clients' own access tokens (jti, client_id) are live, read coalesced.
    pub client_tokens: coalesce::Coalesced<(String, String), bool>,
    /// The provider's access tokens whose signature was checked here (`tokens::provider`).
    pub(crate) verified_tokens: Arc<tokens::VerifiedTokens>,
}
