//! The OAuth 2.1 / OpenID Connect provider (docs/oauth-provider.md): who may register
//! clients, and how long codes and the provider's tokens live. (`OAUTH_SUCCESS_REDIRECT_URL`
//! is the upstream sign-in's, in `providers.rs`.)

use super::variables::Variable;
use super::{Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::flag(
        "OAUTH_OPEN_REGISTRATION",
        false,
        "anyone may register a public client at POST /oauth/clients (native apps, MCP clients), under the per-IP limit",
    ),
    Variable::number(
        "OAUTH_CODE_LIFETIME_SECONDS",
        60,
        1..=600,
        "how long an authorization code can be exchanged",
    ),
    Variable::number(
        "OAUTH_ACCESS_TOKEN_LIFETIME_SECONDS",
        900,
        60..=86_400,
        "lifetime of the provider's access tokens and ID tokens",
    ),
];

#[derive(Debug, Clone)]
pub struct Provider {
    pub open_registration: bool,
    pub code_lifetime_seconds: i64,
    pub access_token_lifetime_seconds: i64,
}

impl Provider {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        Ok(Provider {
            open_registration: env.flag("OAUTH_OPEN_REGISTRATION")?,
            code_lifetime_seconds: env.number("OAUTH_CODE_LIFETIME_SECONDS")?,
            access_token_lifetime_seconds: env.number("OAUTH_ACCESS_TOKEN_LIFETIME_SECONDS")?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::settings::tests::settings;

    #[test]
    fn code_lifetime_is_one_to_six_hundred_seconds() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.provider.code_lifetime_seconds, 60);
        assert_eq!(s.provider.access_token_lifetime_seconds, 900);
        assert!(!s.provider.open_registration);
        for bad in ["0", "601", "x"] {
            let e = settings(&[("OAUTH_CODE_LIFETIME_SECONDS", bad)]).unwrap_err();
            assert_eq!(e.var, "OAUTH_CODE_LIFETIME_SECONDS");
        }
        let s = settings(&[("OAUTH_OPEN_REGISTRATION", "true")]).unwrap();
        assert!(s.provider.open_registration);
    }
}
