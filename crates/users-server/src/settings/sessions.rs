//! How long sign-ins last: `SESSION_*`, `REFRESH_REUSE_INTERVAL_SECONDS`.

use super::{Env, SettingsError};

#[derive(Debug, Clone)]
pub struct Sessions {
    pub session_lifetime_seconds: i64,
    pub session_idle_seconds: i64,
    pub refresh_reuse_interval_seconds: i64,
}

impl Sessions {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        Ok(Sessions {
            session_lifetime_seconds: env.parse_in(
                "SESSION_LIFETIME_SECONDS",
                30 * 86_400i64,
                300..=366 * 86_400,
            )?,
            session_idle_seconds: env.parse_in(
                "SESSION_IDLE_SECONDS",
                7 * 86_400i64,
                300..=366 * 86_400,
            )?,
            refresh_reuse_interval_seconds: env.parse_in(
                "REFRESH_REUSE_INTERVAL_SECONDS",
                10i64,
                0..=300,
            )?,
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
