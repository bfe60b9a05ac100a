//! One module per flow. Each public function takes what the caller parsed, and `now`,
//! and returns the flow's own outcome enum; the order of the checks is the flow's.

pub mod account;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod identities;
pub mod import;
pub mod mfa;
pub mod oauth;
pub mod passkeys;
pub mod reauth;
pub mod recovery;
pub mod register;
pub mod roles;
pub mod session;
pub mod sign_in;
pub mod upstream;

use users_domain::crypto::random_token;

/// A password hash no password matches (not a PHC string): such an account signs in
/// through its provider, or after a password reset.
pub(crate) fn unusable_password() -> String {
    format!("!unusable-{}", random_token(24))
}
