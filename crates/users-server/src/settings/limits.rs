//! How much guessing is allowed: `LOGIN_MAX_FAILURES`, `RATE_LIMIT_PER_IP_PER_MINUTE`.

use super::variables::Variable;
use super::{Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::number(
        "LOGIN_MAX_FAILURES",
        10,
        1..=100,
        "consecutive failed logins of one account before 429s",
    ),
    Variable::number(
        "RATE_LIMIT_PER_IP_PER_MINUTE",
        60,
        0..=1_000_000,
        "requests per client IP and route per minute on the unauthenticated routes; 0: off",
    ),
];

#[derive(Debug, Clone)]
pub struct Limits {
    /// Consecutive failed logins of one account before 429s.
    pub login_max_failures: i64,
    /// Per client IP and route, on the unauthenticated POST routes, the OAuth authorize
    /// routes and callbacks; 0: off.
    pub rate_limit_per_ip_per_minute: i64,
}

impl Limits {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        Ok(Limits {
            login_max_failures: env.number("LOGIN_MAX_FAILURES")?,
            rate_limit_per_ip_per_minute: env.number("RATE_LIMIT_PER_IP_PER_MINUTE")?,
        })
    }
}
