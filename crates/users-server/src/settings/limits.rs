//! How much guessing is allowed: `LOGIN_MAX_FAILURES`, `RATE_LIMIT_PER_IP_PER_MINUTE`.

use super::{Env, SettingsError};

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
            login_max_failures: env.parse_in("LOGIN_MAX_FAILURES", 10i64, 1..=100)?,
            rate_limit_per_ip_per_minute: env.parse_in(
                "RATE_LIMIT_PER_IP_PER_MINUTE",
                60i64,
                0..=1_000_000,
            )?,
        })
    }
}
