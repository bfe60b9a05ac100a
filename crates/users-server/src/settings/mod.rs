//! Configuration from the environment (docs/configuration.md), validated once at start.
//!
//! Every variable may also be given as `NAME_FILE`, the path of a file holding the
//! value (container secrets). A bad value stops the service with a message that names
//! the variable.
//!
//! One module per concern declares its variables (its rows of the table of variables,
//! `VARIABLES`; the row is defined in `variables.rs`) and reads and checks them
//! (`read`); [`Settings`] is all of them.

mod database;
mod env;
mod events;
mod http;
mod limits;
mod mail;
mod ops;
mod passwords;
mod provider;
mod providers;
mod second_factor;
mod sessions;
mod tokens;
mod traces;
mod variables;

use users_core::{CoreConfig, CoreSetup};

pub use database::Database;
pub use env::Env;
pub use events::Events;
pub use http::{origin_of, Http};
pub use limits::Limits;
pub use mail::Mail;
pub use ops::{LogFormat, Ops};
pub use passwords::Passwords;
pub use provider::Provider;
pub use providers::{issuer_variable, oidc_variable, Providers, RESERVED_PROVIDER_NAMES};
pub use second_factor::SecondFactor;
pub use sessions::Sessions;
pub use tokens::Tokens;
pub use traces::{Sampler, Traces};
pub use variables::{
    is_known_variable, variable, variables, Allowed, Variable, WhenUnset, PROVIDER_PLACEHOLDER,
};

/// A configuration error, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct SettingsError {
    pub var: String,
    pub message: String,
}

fn err(var: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        var: var.to_owned(),
        message: message.into(),
    }
}

/// Every setting, by concern.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: Database,
    pub http: Http,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub second_factor: SecondFactor,
    pub mail: Mail,
    pub providers: Providers,
    pub sessions: Sessions,
    pub limits: Limits,
    pub ops: Ops,
    pub traces: Traces,
    pub events: Events,
    pub provider: Provider,
}

/// The rows of every section, in the order they are read: the table of variables.
const SECTIONS: &[&[Variable]] = &[
    database::VARIABLES,
    http::VARIABLES,
    tokens::VARIABLES,
    passwords::VARIABLES,
    second_factor::VARIABLES,
    mail::VARIABLES,
    providers::VARIABLES,
    sessions::VARIABLES,
    limits::VARIABLES,
    ops::VARIABLES,
    traces::VARIABLES,
    events::VARIABLES,
    provider::VARIABLES,
];

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests). The first
    /// bad value stops the reading; the sections are read in this order.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env::new(&lookup);
        let database = Database::read(&env)?;
        let http = Http::read(&env)?;
        let tokens = Tokens::read(&env)?;
        let passwords = Passwords::read(&env)?;
        let second_factor = SecondFactor::read(&env, &http)?;
        let mail = Mail::read(&env, &http)?;
        let providers = Providers::read(&env)?;
        let sessions = Sessions::read(&env)?;
        let limits = Limits::read(&env)?;
        let ops = Ops::read(&env)?;
        let traces = Traces::read(&env)?;
        let events = Events::read(&env)?;
        let provider = Provider::read(&env)?;
        Ok(Settings {
            database,
            http,
            tokens,
            passwords,
            second_factor,
            mail,
            providers,
            sessions,
            limits,
            ops,
            traces,
            events,
            provider,
        })
    }

    /// What the flows need of these settings.
    pub fn core_setup(&self) -> CoreSetup {
        CoreSetup {
            database_url: self.database.database_url.clone(),
            pool: self.database.pool.clone(),
            jwt_secret: self.tokens.jwt_secret.clone(),
            argon2: self.passwords.argon2,
            policy: self.passwords.password_policy,
            config: CoreConfig {
                app_name: self.http.app_name.clone(),
                public_url: self.http.public_url.clone(),
                access_token_lifetime_seconds: self.tokens.jwt_lifetime_seconds,
                reset_password_url: self.mail.reset_password_url.clone(),
                verify_url: self.mail.verify_url.clone(),
                reset_token_lifetime_seconds: self.tokens.reset_token_lifetime_seconds,
                verify_token_lifetime_seconds: self.tokens.verify_token_lifetime_seconds,
                oauth_state_lifetime_seconds: self.providers.oauth_state_lifetime_seconds,
                login_max_failures: self.limits.login_max_failures,
                rate_limit_per_ip_per_minute: self.limits.rate_limit_per_ip_per_minute,
                session_lifetime_seconds: self.sessions.session_lifetime_seconds,
                session_idle_seconds: self.sessions.session_idle_seconds,
                refresh_reuse_interval_seconds: self.sessions.refresh_reuse_interval_seconds,
                mfa_issuer: self.second_factor.mfa_issuer.clone(),
                audit_retention_days: self.events.audit_retention_days,
                oauth_open_registration: self.provider.open_registration,
                oauth_code_lifetime_seconds: self.provider.code_lifetime_seconds,
                oauth_access_token_lifetime_seconds: self.provider.access_token_lifetime_seconds,
            },
            providers: self.providers.all().cloned().collect(),
            passkeys: self.second_factor.passkeys.clone(),
            jwt_algorithm: self.tokens.jwt_algorithm,
            jwt_private_key: self.tokens.jwt_private_key.clone(),
            jwks_publish_ahead_seconds: self.tokens.jwks_publish_ahead_seconds,
            webhooks: self.events.webhooks.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;
    use users_core::Argon2Params;

    /// The settings of exactly these variables.
    pub(crate) fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_contracts() {
        let s = settings(&[]).unwrap();
        assert!(s.database.database_url.is_sqlite());
        assert_eq!(s.http.bind_addr, "127.0.0.1:8000");
        assert_eq!(s.http.public_url, "http://127.0.0.1:8000");
        assert!(s.tokens.jwt_secret.is_none());
        assert_eq!(s.tokens.jwt_lifetime_seconds, 3600);
        assert_eq!(s.passwords.password_policy.min_length, 12);
        assert_eq!(
            s.passwords.argon2,
            Argon2Params {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        assert_eq!(s.ops.log_format, LogFormat::Pretty);
        assert!(s.mail.smtp_url.is_none());
        assert_eq!(s.mail.mail_dir, std::path::PathBuf::from("mail"));
        assert_eq!(s.mail.mail_from, "users <noreply@localhost>");
        assert_eq!(
            s.mail.reset_password_url,
            "http://127.0.0.1:8000/reset-password"
        );
        assert_eq!(s.mail.verify_url, "http://127.0.0.1:8000/verify");
        let s = settings(&[("PUBLIC_URL", "https://id.example.com/")]).unwrap();
        assert_eq!(
            s.mail.reset_password_url,
            "https://id.example.com/reset-password"
        );
        assert!(!s.passwords.argon2_below_owasp());
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("PASSWORD_MIN_LENGTH", "7"),
            ("PASSWORD_MIN_LENGTH", "65"),
            ("PASSWORD_MIN_LENGTH", "twelve"),
            ("JWT_LIFETIME_SECONDS", "-1"),
            ("DATABASE_URL", "mysql://x"),
            ("BIND_ADDR", "nonsense"),
            ("PUBLIC_URL", "example.com"),
            ("LOG_FORMAT", "xml"),
            ("ARGON2_PARALLELISM", "0"),
            ("JWT_SECRET", ""),
            ("RESET_PASSWORD_URL", "/relative"),
            ("VERIFY_URL", "ftp://x"),
            ("GOOGLE_CLIENT_ID", "id-without-secret"),
            ("OAUTH_SUCCESS_REDIRECT_URL", "https://app.example.com/#/x"),
            ("CORS_ALLOWED_ORIGINS", "https://a.example.com,*"),
            ("CORS_ALLOWED_ORIGINS", "https://a.example.com/app"),
            ("LOGIN_MAX_FAILURES", "0"),
            ("LOGIN_MAX_FAILURES", "101"),
            ("RATE_LIMIT_PER_IP_PER_MINUTE", "-1"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "proxy.internal"),
            ("SESSION_LIFETIME_SECONDS", "10"),
            ("JWT_ALGORITHM", "none"),
            ("JWT_ALGORITHM", "HS512"),
            ("JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----"),
            ("JWKS_PUBLISH_AHEAD_SECONDS", "-5"),
            ("SESSION_IDLE_SECONDS", "forever"),
            ("REFRESH_REUSE_INTERVAL_SECONDS", "-1"),
            ("METRICS_TOKEN", ""),
            ("METRICS_TOKEN", "  "),
        ] {
            let e = settings(&[(var, value)]).unwrap_err();
            let expected = if var == "GOOGLE_CLIENT_ID" {
                "GOOGLE_CLIENT_SECRET"
            } else {
                var
            };
            assert_eq!(e.var, expected, "{value}: {e}");
            assert!(e.to_string().starts_with(expected));
        }
    }

    #[test]
    fn known_variables_are_exactly_those_read() {
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|k| {
            asked.borrow_mut().insert(k.to_owned());
            match k {
                "GOOGLE_CLIENT_ID" | "GITHUB_CLIENT_ID" => Some("id".to_owned()),
                "GOOGLE_CLIENT_SECRET" | "GITHUB_CLIENT_SECRET" => Some("secret".to_owned()),
                "OIDC_PROVIDERS" => Some("corp,key-cloak".to_owned()),
                "OIDC_CORP_ISSUER_URL" | "OIDC_KEY_CLOAK_ISSUER_URL" => {
                    Some("https://id.example.com".to_owned())
                }
                k if k.starts_with("OIDC_") && k.ends_with("_CLIENT_ID") => Some("id".to_owned()),
                k if k.starts_with("OIDC_") && k.ends_with("_CLIENT_SECRET") => {
                    Some("secret".to_owned())
                }
                _ => None,
            }
        })
        .unwrap();
        let asked: std::collections::BTreeSet<String> = asked
            .into_inner()
            .into_iter()
            .filter(|k| !k.ends_with("_FILE"))
            .collect();
        // The fixed variables, and every setting of each provider of OIDC_PROVIDERS.
        let mut known = std::collections::BTreeSet::new();
        for v in variables() {
            if v.is_pattern() {
                for name in ["CORP", "KEY_CLOAK"] {
                    known.insert(v.name.replace(PROVIDER_PLACEHOLDER, name));
                }
            } else {
                known.insert(v.name.to_owned());
            }
        }
        assert_eq!(asked, known);
        assert!(asked.iter().all(|v| is_known_variable(v)));
    }

    /// Every provider configured, so that their variables are read.
    fn every_provider() -> Vec<(&'static str, &'static str)> {
        vec![
            ("GOOGLE_CLIENT_ID", "id"),
            ("GOOGLE_CLIENT_SECRET", "secret"),
            ("GITHUB_CLIENT_ID", "id"),
            ("GITHUB_CLIENT_SECRET", "secret"),
            ("OIDC_PROVIDERS", "corp"),
            ("OIDC_CORP_ISSUER_URL", "https://id.example.com"),
            ("OIDC_CORP_CLIENT_ID", "id"),
            ("OIDC_CORP_CLIENT_SECRET", "secret"),
        ]
    }

    #[test]
    fn a_rows_default_is_what_unset_means() {
        let base = every_provider();
        let unset = format!("{:?}", settings(&base).unwrap());
        for v in variables() {
            let Some(default) = v.shown_default() else {
                continue;
            };
            let var = v.name.replace(PROVIDER_PLACEHOLDER, "CORP");
            let mut vars = base.clone();
            vars.push((&var, &default));
            let set = settings(&vars).unwrap_or_else(|e| panic!("{var}={default}: {e}"));
            assert_eq!(
                format!("{set:?}"),
                unset,
                "{var}={default} is not its default"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = settings(&[
            ("JWT_SECRET", "very-secret-value-0123456789abcdef"),
            (
                "DATABASE_URL",
                "postgres://app:hunter2hunter2@db:5432/users",
            ),
        ])
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("very-secret-value"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("smtp-pass-4242"), "{dbg}");
        let s = settings(&[
            ("GOOGLE_CLIENT_ID", "cid"),
            ("GOOGLE_CLIENT_SECRET", "google-secret-77"),
        ])
        .unwrap();
        assert!(!format!("{s:?}").contains("google-secret-77"));
        let g = s.providers.google.unwrap();
        assert_eq!(g.issuer_url, "https://accounts.google.com");
        assert!(!g.associate_by_email);
        let e = settings(&[
            ("GOOGLE_CLIENT_ID", "c"),
            ("GOOGLE_CLIENT_SECRET", "s"),
            ("GOOGLE_ASSOCIATE_BY_EMAIL", "maybe"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "GOOGLE_ASSOCIATE_BY_EMAIL");
    }
}
