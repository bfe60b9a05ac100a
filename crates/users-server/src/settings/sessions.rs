//! How long sign-ins last: `SESSION_*`, `REFRESH_REUSE_INTERVAL_SECONDS`.

use super::variables::Variable;
use super::{Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::number(
        "SESSION_LIFETIME_SECONDS",
        30 * 86_400,
        300..=366 * 86_400,
        "a session ends this long after its sign-in, refreshes or not",
    ),
    Variable::number(
        "SESSION_IDLE_SECONDS",
        7 * 86_400,
        300..=366 * 86_400,
        "a session unused this long ends",
    ),
    Variable::number(
        "REFRESH_REUSE_INTERVAL_SECONDS",
        10,
        0..=300,
        "a spent refresh token presented again this soon gets the current one",
    ),
];

#[derive(Debug, Clone)]
pub struct Sessions {
    pub session_lifetime_seconds: i64,
    pub session_idle_seconds: i64,
    pub refresh_reuse_interval_seconds: i64,
}

impl Sessions {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        Ok(Sessions {
            session_lifetime_seconds: env.number("SESSION_LIFETIME_SECONDS")?,
            session_idle_seconds: env.number("SESSION_IDLE_SECONDS")?,
            refresh_reuse_interval_seconds: env.number("REFRESH_REUSE_INTERVAL_SECONDS")?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::settings::tests::settings;

    #[test]
    fn session_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.sessions.session_lifetime_seconds, 30 * 86_400);
        assert_eq!(s.sessions.session_idle_seconds, 7 * 86_400);
        assert_eq!(s.sessions.refresh_reuse_interval_seconds, 10);
    }
}
