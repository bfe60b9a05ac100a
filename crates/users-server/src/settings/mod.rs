//! Configuration from the environment (docs/configuration.md), validated once at start.
//!
//! Every variable may also be given as `NAME_FILE`, the path of a file holding the
//! value (container secrets). A bad value stops the service with a message that names
//! the variable.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use secrecy::SecretString;
use users_db::{DatabaseUrl, PoolOptions};
use users_domain::password::MIN_PASSWORD_LENGTH_RANGE;
use users_domain::PasswordPolicy;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

use users_core::signing::SigningAlgorithm;
use users_core::{
    Argon2Params, CoreConfig, CoreSetup, EventType, PasskeySettings, ProviderKind,
    ProviderSettings, WebhookSettings,
};

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub pool: PoolOptions,
    pub bind_addr: String,
    /// Base of mailed links and OAuth redirect URIs, without a trailing slash.
    pub public_url: String,
    /// `None`: generated once and kept in the database.
    pub jwt_secret: Option<SecretString>,
    pub jwt_lifetime_seconds: i64,
    pub jwt_algorithm: SigningAlgorithm,
    /// `JWT_PRIVATE_KEY`, already read and checked (its `Debug` shows the kid only).
    pub jwt_private_key: Option<users_core::signing::SigningKey>,
    pub jwks_publish_ahead_seconds: i64,
    pub password_policy: PasswordPolicy,
    pub argon2: Argon2Params,
    pub workers: Option<usize>,
    /// Product name in mails and pages.
    pub app_name: String,
    /// `None`: mail is written as `.eml` files into `mail_dir`.
    pub smtp_url: Option<SecretString>,
    pub mail_dir: std::path::PathBuf,
    pub mail_from: String,
    pub reset_password_url: String,
    pub verify_url: String,
    pub reset_token_lifetime_seconds: i64,
    pub verify_token_lifetime_seconds: i64,
    /// "Sign in with Google": set when `GOOGLE_CLIENT_ID` is.
    pub google: Option<ProviderSettings>,
    /// The OpenID providers of `OIDC_PROVIDERS`, in its order.
    pub oidc_providers: Vec<ProviderSettings>,
    /// "Sign in with GitHub": set when `GITHUB_CLIENT_ID` is.
    pub github: Option<ProviderSettings>,
    /// The OAuth callback redirects here with `#access_token=…` instead of answering JSON.
    pub oauth_success_redirect_url: Option<String>,
    pub oauth_state_lifetime_seconds: i64,
    pub session_lifetime_seconds: i64,
    pub session_idle_seconds: i64,
    pub refresh_reuse_interval_seconds: i64,
    pub mfa_issuer: String,
    /// `None`: passkeys are off (the public URL's host is an IP address and
    /// `WEBAUTHN_RP_ID` is unset).
    pub passkeys: Option<PasskeySettings>,
    /// Origins allowed by CORS (with credentials); empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// Consecutive failed logins of one account before 429s.
    pub login_max_failures: i64,
    /// Per client IP and route, on the unauthenticated POST routes, the OAuth authorize
    /// routes and callbacks; 0: off.
    pub rate_limit_per_ip_per_minute: i64,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::client_ip::Cidr>,
    pub rust_log: String,
    pub log_format: LogFormat,
    /// `WEBHOOK_URLS`, `WEBHOOK_SECRET`, `WEBHOOK_EVENTS` (the secret never shows in
    /// `Debug`).
    pub webhooks: WebhookSettings,
    pub audit_retention_days: i64,
    /// After SIGTERM: how long `/readyz` answers 503 while requests are still served,
    /// before the process stops accepting connections.
    pub shutdown_drain: Duration,
    /// `/metrics` answers only `Authorization: Bearer <this>`; `None`: it is public.
    pub metrics_token: Option<SecretString>,
}

/// Every variable the service reads (each may also be given as `NAME_FILE`).
pub const KNOWN_VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_TIMEOUT_SECONDS",
    "BIND_ADDR",
    "PUBLIC_URL",
    "JWT_SECRET",
    "JWT_LIFETIME_SECONDS",
    "JWT_ALGORITHM",
    "JWT_PRIVATE_KEY",
    "JWKS_PUBLISH_AHEAD_SECONDS",
    "PASSWORD_MIN_LENGTH",
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "WORKERS",
    "APP_NAME",
    "SMTP_URL",
    "MAIL_DIR",
    "MAIL_FROM",
    "RESET_PASSWORD_URL",
    "VERIFY_URL",
    "RESET_PASSWORD_TOKEN_LIFETIME_SECONDS",
    "VERIFY_TOKEN_LIFETIME_SECONDS",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "GOOGLE_ISSUER_URL",
    "GOOGLE_ASSOCIATE_BY_EMAIL",
    "GOOGLE_TIMEOUT_SECONDS",
    "OIDC_PROVIDERS",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "GITHUB_URL",
    "GITHUB_API_URL",
    "GITHUB_ASSOCIATE_BY_EMAIL",
    "GITHUB_TIMEOUT_SECONDS",
    "OAUTH_SUCCESS_REDIRECT_URL",
    "OAUTH_STATE_LIFETIME_SECONDS",
    "SESSION_LIFETIME_SECONDS",
    "SESSION_IDLE_SECONDS",
    "REFRESH_REUSE_INTERVAL_SECONDS",
    "MFA_ISSUER",
    "WEBAUTHN_RP_ID",
    "WEBAUTHN_ORIGIN",
    "CORS_ALLOWED_ORIGINS",
    "LOGIN_MAX_FAILURES",
    "RATE_LIMIT_PER_IP_PER_MINUTE",
    "TRUSTED_PROXIES",
    "WEBHOOK_URLS",
    "WEBHOOK_SECRET",
    "WEBHOOK_EVENTS",
    "AUDIT_RETENTION_DAYS",
    "SHUTDOWN_DRAIN_SECONDS",
    "METRICS_TOKEN",
    "LOG_FORMAT",
    "RUST_LOG",
];

/// The settings of each OpenID provider `<name>` of `OIDC_PROVIDERS` are the variables
/// `OIDC_<NAME>_<SUFFIX>` (see [`oidc_variable`]), with these suffixes.
pub const OIDC_PROVIDER_SUFFIXES: &[&str] = &[
    "ISSUER_URL",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "SCOPES",
    "ASSOCIATE_BY_EMAIL",
    "LABEL",
    "TIMEOUT_SECONDS",
];

/// Names an OpenID provider may not take: other routes under `/auth/`, and the
/// providers configured by their own variables.
pub const RESERVED_PROVIDER_NAMES: &[&str] = &[
    "jwt",
    "cookie",
    "google",
    "github",
    "associate",
    "mfa",
    "passkeys",
    "sessions",
];

/// `OIDC_<NAME>_<SUFFIX>` of the provider `name`: upper-cased, `-` as `_`.
pub fn oidc_variable(name: &str, suffix: &str) -> String {
    format!(
        "OIDC_{}_{suffix}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// The variable naming the issuer of the provider `name` (in start-up errors).
pub fn issuer_variable(name: &str) -> String {
    match name {
        "google" => "GOOGLE_ISSUER_URL".to_owned(),
        "github" => "GITHUB_URL".to_owned(),
        other => oidc_variable(other, "ISSUER_URL"),
    }
}

/// Whether the service reads `var` (or `var` is the `_FILE` variant of one it reads):
/// one of [`KNOWN_VARIABLES`], or a setting of some OpenID provider.
pub fn is_known_variable(var: &str) -> bool {
    let known = |v: &str| KNOWN_VARIABLES.contains(&v) || is_oidc_provider_variable(v);
    known(var) || var.strip_suffix("_FILE").is_some_and(known)
}

/// `OIDC_<NAME>_<SUFFIX>` for a `<NAME>` some provider name could have.
fn is_oidc_provider_variable(var: &str) -> bool {
    let Some(rest) = var.strip_prefix("OIDC_") else {
        return false;
    };
    OIDC_PROVIDER_SUFFIXES.iter().any(|suffix| {
        rest.strip_suffix(suffix)
            .and_then(|r| r.strip_suffix('_'))
            .is_some_and(|name| {
                (1..=32).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
    })
}

/// Whether `name` may name an OpenID provider: `[a-z0-9-]{1,32}`, not reserved.
fn provider_name_problem(name: &str) -> Option<String> {
    let shaped = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !shaped {
        return Some(format!(
            "`{name}` is not a provider name: 1 to 32 of a-z, 0-9 and -"
        ));
    }
    if RESERVED_PROVIDER_NAMES.contains(&name) {
        return Some(format!(
            "`{name}` is reserved; choose another name (reserved: {})",
            RESERVED_PROVIDER_NAMES.join(", ")
        ));
    }
    None
}

/// An absolute http(s) URL without a trailing slash, or an error naming `var`.
fn base_url(var: &str, value: &str) -> Result<String, SettingsError> {
    let url = value.trim().trim_end_matches('/').to_owned();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#', ' '])) {
        return Err(err(
            var,
            format!("`{url}` is not an absolute https:// URL without a query"),
        ));
    }
    Ok(url)
}

/// The default `DATABASE_URL`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://users.db";
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8000";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env { lookup: &lookup };

        let database_url = env.get("DATABASE_URL")?;
        let database_url =
            DatabaseUrl::parse(database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL))
                .map_err(|m| err("DATABASE_URL", m))?;
        let pool = PoolOptions {
            max_connections: env.parse_in("DATABASE_MAX_CONNECTIONS", 10, 1..=1000)?,
            acquire_timeout: Duration::from_secs(env.parse_in(
                "DATABASE_TIMEOUT_SECONDS",
                5,
                1..=300,
            )?),
            ..PoolOptions::default()
        };

        let bind_addr = env
            .get("BIND_ADDR")?
            .unwrap_or_else(|| DEFAULT_BIND_ADDR.to_owned());
        let resolved: Vec<SocketAddr> = bind_addr
            .to_socket_addrs()
            .map_err(|e| {
                err(
                    "BIND_ADDR",
                    format!("`{bind_addr}` is not a host:port address ({e})"),
                )
            })?
            .collect();
        if resolved.is_empty() {
            return Err(err(
                "BIND_ADDR",
                format!("`{bind_addr}` resolves to no address"),
            ));
        }

        let public_url = match env.get("PUBLIC_URL")? {
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
                    return Err(err(
                        "PUBLIC_URL",
                        "must be an absolute http:// or https:// URL",
                    ));
                }
                url
            }
            None => format!("http://{bind_addr}"),
        };

        let jwt_secret = match env.get("JWT_SECRET")? {
            Some(s) if s.is_empty() => {
                return Err(err(
                    "JWT_SECRET",
                    "is empty; unset it to have one generated, or set a long random value",
                ))
            }
            Some(s) => {
                if s.len() < 32 {
                    tracing::warn!("JWT_SECRET is shorter than 32 bytes; use a long random value");
                }
                Some(SecretString::from(s))
            }
            None => None,
        };
        let jwt_lifetime_seconds =
            env.parse_in("JWT_LIFETIME_SECONDS", 3600i64, 60..=30 * 86_400)?;
        let jwt_algorithm = match env.get("JWT_ALGORITHM")?.map(|s| s.trim().to_owned()) {
            None => SigningAlgorithm::Hs256,
            Some(a) if a.is_empty() => SigningAlgorithm::Hs256,
            Some(a) => SigningAlgorithm::parse(&a).ok_or_else(|| {
                err(
                    "JWT_ALGORITHM",
                    format!("`{a}` is not one of: HS256, EdDSA, ES256, RS256"),
                )
            })?,
        };
        let jwt_private_key = match env.get("JWT_PRIVATE_KEY")?.filter(|k| !k.trim().is_empty()) {
            None => None,
            Some(_) if jwt_algorithm == SigningAlgorithm::Hs256 => {
                return Err(err(
                    "JWT_PRIVATE_KEY",
                    "is set, but JWT_ALGORITHM is HS256 (which signs with JWT_SECRET): set JWT_ALGORITHM to EdDSA, ES256 or RS256",
                ))
            }
            Some(pem) => Some(
                users_core::signing::load_private_key(&pem, jwt_algorithm)
                    .map_err(|e| err("JWT_PRIVATE_KEY", e.to_string()))?,
            ),
        };
        let jwks_publish_ahead_seconds =
            env.parse_in("JWKS_PUBLISH_AHEAD_SECONDS", 600i64, 0..=7 * 86_400)?;

        let min_length = env.parse_in("PASSWORD_MIN_LENGTH", 12usize, MIN_PASSWORD_LENGTH_RANGE)?;

        let defaults = Argon2Params::default();
        let argon2 = Argon2Params {
            memory_kib: env.parse_in(
                "ARGON2_MEMORY_KIB",
                defaults.memory_kib,
                8..=4 * 1024 * 1024,
            )?,
            iterations: env.parse_in("ARGON2_ITERATIONS", defaults.iterations, 1..=100)?,
            parallelism: env.parse_in("ARGON2_PARALLELISM", defaults.parallelism, 1..=64)?,
        };
        if argon2.memory_kib < 8 * argon2.parallelism {
            return Err(err(
                "ARGON2_MEMORY_KIB",
                "must be at least 8 × ARGON2_PARALLELISM",
            ));
        }

        let workers = match env.get("WORKERS")? {
            None => None,
            Some(_) => Some(env.parse_in("WORKERS", 1usize, 1..=256)?),
        };

        let app_name = env
            .get("APP_NAME")?
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "users".to_owned());
        if app_name.is_empty() || app_name.len() > 100 {
            return Err(err("APP_NAME", "must be 1 to 100 characters"));
        }
        let mfa_issuer = env
            .get("MFA_ISSUER")?
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| app_name.clone());
        if mfa_issuer.is_empty() || mfa_issuer.len() > 100 || mfa_issuer.contains(':') {
            return Err(err(
                "MFA_ISSUER",
                "must be 1 to 100 characters without a colon",
            ));
        }
        let passkeys = passkey_settings(&env, &public_url, &app_name)?;
        let smtp_url = env
            .get("SMTP_URL")?
            .filter(|s| !s.trim().is_empty())
            .map(SecretString::from);
        let mail_dir =
            std::path::PathBuf::from(env.get("MAIL_DIR")?.unwrap_or_else(|| "mail".to_owned()));
        let mail_from = env
            .get("MAIL_FROM")?
            .unwrap_or_else(|| "users <noreply@localhost>".to_owned());
        let link_base = |var: &str, default_path: &str| -> Result<String, SettingsError> {
            match env.get(var)? {
                Some(url) => {
                    let url = url.trim().to_owned();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(err(var, "must be an absolute http:// or https:// URL"));
                    }
                    Ok(url)
                }
                None => Ok(format!("{public_url}{default_path}")),
            }
        };
        let reset_password_url = link_base("RESET_PASSWORD_URL", "/reset-password")?;
        let verify_url = link_base("VERIFY_URL", "/verify")?;
        let reset_token_lifetime_seconds = env.parse_in(
            "RESET_PASSWORD_TOKEN_LIFETIME_SECONDS",
            3600i64,
            60..=7 * 86_400,
        )?;
        let verify_token_lifetime_seconds =
            env.parse_in("VERIFY_TOKEN_LIFETIME_SECONDS", 3600i64, 60..=30 * 86_400)?;

        let google = match env
            .get("GOOGLE_CLIENT_ID")?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(client_id) => {
                let client_secret = env
                    .get("GOOGLE_CLIENT_SECRET")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        err(
                            "GOOGLE_CLIENT_SECRET",
                            "is required when GOOGLE_CLIENT_ID is set",
                        )
                    })?;
                let issuer_url = env
                    .get("GOOGLE_ISSUER_URL")?
                    .map(|s| s.trim().trim_end_matches('/').to_owned())
                    .unwrap_or_else(|| "https://accounts.google.com".to_owned());
                if !(issuer_url.starts_with("https://") || issuer_url.starts_with("http://")) {
                    return Err(err("GOOGLE_ISSUER_URL", "must be an absolute https:// URL"));
                }
                Some(ProviderSettings {
                    name: "google".to_owned(),
                    key: "google".to_owned(),
                    label: "Google".to_owned(),
                    kind: ProviderKind::OpenId { scopes: Vec::new() },
                    client_id,
                    client_secret: SecretString::from(client_secret),
                    issuer_url,
                    associate_by_email: env.parse_bool("GOOGLE_ASSOCIATE_BY_EMAIL", false)?,
                    timeout: Duration::from_secs(env.parse_in(
                        "GOOGLE_TIMEOUT_SECONDS",
                        10,
                        1..=120,
                    )?),
                })
            }
        };
        let oidc_providers = oidc_providers(&env)?;
        let github = github(&env)?;
        let oauth_success_redirect_url = match env.get("OAUTH_SUCCESS_REDIRECT_URL")? {
            Some(url) if !url.trim().is_empty() => {
                let url = url.trim().to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('#')
                {
                    return Err(err(
                        "OAUTH_SUCCESS_REDIRECT_URL",
                        "must be an absolute http(s) URL without a #fragment",
                    ));
                }
                Some(url)
            }
            _ => None,
        };
        let oauth_state_lifetime_seconds =
            env.parse_in("OAUTH_STATE_LIFETIME_SECONDS", 3600i64, 60..=86_400)?;
        let session_lifetime_seconds = env.parse_in(
            "SESSION_LIFETIME_SECONDS",
            30 * 86_400i64,
            300..=366 * 86_400,
        )?;
        let session_idle_seconds =
            env.parse_in("SESSION_IDLE_SECONDS", 7 * 86_400i64, 300..=366 * 86_400)?;
        let refresh_reuse_interval_seconds =
            env.parse_in("REFRESH_REUSE_INTERVAL_SECONDS", 10i64, 0..=300)?;

        let mut cors_allowed_origins = Vec::new();
        for origin in env
            .get("CORS_ALLOWED_ORIGINS")?
            .unwrap_or_default()
            .split(',')
        {
            let origin = origin.trim().trim_end_matches('/');
            if origin.is_empty() {
                continue;
            }
            let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin["https://".len().min(origin.len())..].contains('/');
            if !valid || origin == "*" {
                return Err(err(
                    "CORS_ALLOWED_ORIGINS",
                    format!("`{origin}` is not an origin like https://app.example.com (scheme, host, optional port; no path, no *)"),
                ));
            }
            cors_allowed_origins.push(origin.to_owned());
        }

        let login_max_failures = env.parse_in("LOGIN_MAX_FAILURES", 10i64, 1..=100)?;
        let rate_limit_per_ip_per_minute =
            env.parse_in("RATE_LIMIT_PER_IP_PER_MINUTE", 60i64, 0..=1_000_000)?;
        let mut trusted_proxies = Vec::new();
        for cidr in env
            .get("TRUSTED_PROXIES")?
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            trusted_proxies.push(crate::client_ip::Cidr::parse(cidr).ok_or_else(|| {
                err(
                    "TRUSTED_PROXIES",
                    format!(
                        "`{cidr}` is not an IP address or CIDR block (e.g. 10.0.0.0/8, ::1/128)"
                    ),
                )
            })?);
        }

        let log_format = match env.get("LOG_FORMAT")?.as_deref().map(str::trim) {
            None | Some("") | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("`{other}` is not one of: pretty, json"),
                ))
            }
        };
        let rust_log = env.get("RUST_LOG")?.unwrap_or_else(|| "info".to_owned());
        let webhooks = webhook_settings(&env)?;
        let audit_retention_days = env.parse_in("AUDIT_RETENTION_DAYS", 90i64, 0..=36_500)?;
        let shutdown_drain =
            Duration::from_secs(env.parse_in("SHUTDOWN_DRAIN_SECONDS", 5u64, 0..=300)?);
        let metrics_token = match env.get("METRICS_TOKEN")? {
            // `Bearer ` and nothing would do, which is no protection
            Some(t) if t.trim().is_empty() => {
                return Err(err(
                    "METRICS_TOKEN",
                    "is empty; unset it to leave /metrics public, or set a long random value",
                ))
            }
            // a header cannot carry surrounding blanks (and `bearer_token` trims them)
            Some(t) => Some(SecretString::from(t.trim().to_owned())),
            None => None,
        };

        Ok(Settings {
            database_url,
            pool,
            bind_addr,
            public_url,
            jwt_secret,
            jwt_lifetime_seconds,
            jwt_algorithm,
            jwt_private_key,
            jwks_publish_ahead_seconds,
            password_policy: PasswordPolicy { min_length },
            argon2,
            workers,
            app_name,
            smtp_url,
            mail_dir,
            mail_from,
            reset_password_url,
            verify_url,
            reset_token_lifetime_seconds,
            verify_token_lifetime_seconds,
            google,
            oidc_providers,
            github,
            oauth_success_redirect_url,
            oauth_state_lifetime_seconds,
            session_lifetime_seconds,
            session_idle_seconds,
            refresh_reuse_interval_seconds,
            mfa_issuer,
            passkeys,
            cors_allowed_origins,
            login_max_failures,
            rate_limit_per_ip_per_minute,
            trusted_proxies,
            rust_log,
            log_format,
            webhooks,
            audit_retention_days,
            shutdown_drain,
            metrics_token,
        })
    }

    /// Every configured provider: Google, the OpenID providers, GitHub.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderSettings> {
        self.google
            .iter()
            .chain(&self.oidc_providers)
            .chain(&self.github)
    }

    /// Whether the argon2 parameters are below OWASP's minimum (worth a warning).
    pub fn argon2_below_owasp(&self) -> bool {
        self.argon2.below_owasp()
    }

    /// The origin (`scheme://host[:port]`) of `PUBLIC_URL`.
    pub fn public_origin(&self) -> &str {
        origin_of(&self.public_url).unwrap_or(&self.public_url)
    }

    /// Whether a browser request from `origin` may act with the session cookie: the
    /// service's own origin, or one allowed by CORS.
    pub fn is_trusted_origin(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        origin == self.public_origin() || self.cors_allowed_origins.iter().any(|o| o == origin)
    }

    /// What the flows need of these settings.
    pub fn core_setup(&self) -> CoreSetup {
        CoreSetup {
            database_url: self.database_url.clone(),
            pool: self.pool.clone(),
            jwt_secret: self.jwt_secret.clone(),
            argon2: self.argon2,
            policy: self.password_policy,
            config: CoreConfig {
                app_name: self.app_name.clone(),
                public_url: self.public_url.clone(),
                access_token_lifetime_seconds: self.jwt_lifetime_seconds,
                reset_password_url: self.reset_password_url.clone(),
                verify_url: self.verify_url.clone(),
                reset_token_lifetime_seconds: self.reset_token_lifetime_seconds,
                verify_token_lifetime_seconds: self.verify_token_lifetime_seconds,
                oauth_state_lifetime_seconds: self.oauth_state_lifetime_seconds,
                login_max_failures: self.login_max_failures,
                rate_limit_per_ip_per_minute: self.rate_limit_per_ip_per_minute,
                session_lifetime_seconds: self.session_lifetime_seconds,
                session_idle_seconds: self.session_idle_seconds,
                refresh_reuse_interval_seconds: self.refresh_reuse_interval_seconds,
                mfa_issuer: self.mfa_issuer.clone(),
                audit_retention_days: self.audit_retention_days,
            },
            providers: self.providers().cloned().collect(),
            passkeys: self.passkeys.clone(),
            jwt_algorithm: self.jwt_algorithm,
            jwt_private_key: self.jwt_private_key.clone(),
            jwks_publish_ahead_seconds: self.jwks_publish_ahead_seconds,
            webhooks: self.webhooks.clone(),
        }
    }
}

/// `WEBHOOK_URLS` (comma-separated http(s) URLs), `WEBHOOK_SECRET` (`whsec_<base64>`,
/// required with URLs) and `WEBHOOK_EVENTS` (comma-separated types, or `*`).
fn webhook_settings(env: &Env<'_>) -> Result<WebhookSettings, SettingsError> {
    let mut urls = Vec::new();
    for u in env
        .get("WEBHOOK_URLS")?
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        let parsed = url::Url::parse(u).ok().filter(|p| {
            matches!(p.scheme(), "http" | "https") && p.host_str().is_some_and(|h| !h.is_empty())
        });
        if parsed.is_none() {
            return Err(err(
                "WEBHOOK_URLS",
                format!("`{u}` is not an absolute http:// or https:// URL"),
            ));
        }
        urls.push(u.to_owned());
    }
    let secret = match env.get("WEBHOOK_SECRET")?.filter(|s| !s.trim().is_empty()) {
        Some(value) => users_core::webhooks::parse_secret(&value)
            .map_err(|e| err("WEBHOOK_SECRET", e))?,
        None if !urls.is_empty() => {
            return Err(err(
                "WEBHOOK_SECRET",
                "is required with WEBHOOK_URLS: a random key as `whsec_` and its base64 (e.g. `whsec_$(openssl rand -base64 32)`)",
            ))
        }
        None => Vec::new(),
    };
    if !secret.is_empty() && secret.len() < 24 {
        tracing::warn!("WEBHOOK_SECRET is shorter than 24 bytes; use a longer random key");
    }
    let events = match env.get("WEBHOOK_EVENTS")?.as_deref().map(str::trim) {
        None | Some("") | Some("*") => None,
        Some(list) => {
            let mut types = Vec::new();
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let t = EventType::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                    err(
                        "WEBHOOK_EVENTS",
                        format!(
                            "`{name}` is not an event type; the types are: {}",
                            known.join(", ")
                        ),
                    )
                })?;
                types.push(t);
            }
            Some(types)
        }
    };
    Ok(WebhookSettings {
        urls,
        events,
        secret,
    })
}

/// The relying party of passkeys: `WEBAUTHN_RP_ID` (default: the public URL's host) and
/// `WEBAUTHN_ORIGIN` (default: the public URL's origin). Browsers refuse an IP address as
/// a relying party, so with an IP host and no `WEBAUTHN_RP_ID` passkeys are off.
fn passkey_settings(
    env: &Env<'_>,
    public_url: &str,
    app_name: &str,
) -> Result<Option<PasskeySettings>, SettingsError> {
    let configured_origin = env.get("WEBAUTHN_ORIGIN")?;
    let explicit_origin = configured_origin.is_some();
    let origin = match configured_origin {
        Some(o) => {
            let o = o.trim().trim_end_matches('/').to_owned();
            if origin_of(&o) != Some(o.as_str())
                || !(o.starts_with("http://") || o.starts_with("https://"))
            {
                return Err(err(
                    "WEBAUTHN_ORIGIN",
                    format!("`{o}` is not an origin like https://id.example.com (scheme, host, optional port; no path)"),
                ));
            }
            o
        }
        None => origin_of(public_url).unwrap_or(public_url).to_owned(),
    };
    let host_of = |origin: &str| -> String {
        let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
        match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
            None => authority.split(':').next().unwrap_or_default().to_owned(),
        }
    };
    let rp_id = match env.get("WEBAUTHN_RP_ID")? {
        Some(id) => {
            let id = id.trim().to_ascii_lowercase();
            if id.is_empty() || id.parse::<std::net::IpAddr>().is_ok() || id.contains(['/', ':']) {
                return Err(err(
                    "WEBAUTHN_RP_ID",
                    format!("`{id}` is not a host name (browsers refuse IP addresses)"),
                ));
            }
            id
        }
        None => {
            let host = host_of(&origin);
            if host.parse::<std::net::IpAddr>().is_ok() {
                return Ok(None);
            }
            host
        }
    };
    // `WEBAUTHN_RP_ID=localhost` alone on a public URL with an IP host (the default
    // http://127.0.0.1:8000): the browser is on http://localhost:8000
    let origin = if !explicit_origin && host_of(&origin).parse::<std::net::IpAddr>().is_ok() {
        let (scheme, authority) = origin.split_once("://").unwrap_or(("http", &origin));
        let port = authority
            .rsplit_once(':')
            .map(|(_, p)| format!(":{p}"))
            .unwrap_or_default();
        format!("{scheme}://{rp_id}{port}")
    } else {
        origin
    };
    let settings = PasskeySettings {
        rp_id,
        origin,
        rp_name: app_name.to_owned(),
    };
    settings
        .relying_party()
        .map_err(|message| err("WEBAUTHN_RP_ID", message))?;
    Ok(Some(settings))
}

/// The OpenID providers of `OIDC_PROVIDERS` (comma-separated names), each from its
/// `OIDC_<NAME>_*` variables.
fn oidc_providers(env: &Env<'_>) -> Result<Vec<ProviderSettings>, SettingsError> {
    let listed = env.get("OIDC_PROVIDERS")?.unwrap_or_default();
    let mut providers: Vec<ProviderSettings> = Vec::new();
    for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if let Some(problem) = provider_name_problem(name) {
            return Err(err("OIDC_PROVIDERS", problem));
        }
        if providers.iter().any(|p| p.name == name) {
            return Err(err("OIDC_PROVIDERS", format!("`{name}` is listed twice")));
        }
        let var = |suffix: &str| oidc_variable(name, suffix);
        let required = |suffix: &str| -> Result<String, SettingsError> {
            let v = var(suffix);
            env.get(&v)?
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    err(
                        &v,
                        format!("is required for the provider `{name}` of OIDC_PROVIDERS"),
                    )
                })
        };
        let issuer_url = base_url(&var("ISSUER_URL"), &required("ISSUER_URL")?)?;
        let client_id = required("CLIENT_ID")?;
        let client_secret = SecretString::from(required("CLIENT_SECRET")?);
        let scopes: Vec<String> = env
            .get(&var("SCOPES"))?
            .unwrap_or_else(|| "openid email profile".to_owned())
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if scopes.is_empty() {
            return Err(err(
                &var("SCOPES"),
                "is empty; unset it for `openid email profile`",
            ));
        }
        let label = match env.get(&var("LABEL"))?.map(|l| l.trim().to_owned()) {
            None => name.to_owned(),
            Some(l) if l.is_empty() || l.chars().count() > 64 => {
                return Err(err(&var("LABEL"), "must be 1 to 64 characters"))
            }
            Some(l) => l,
        };
        providers.push(ProviderSettings {
            name: name.to_owned(),
            key: users_core::providers::key_of(name),
            label,
            kind: ProviderKind::OpenId { scopes },
            issuer_url,
            client_id,
            client_secret,
            associate_by_email: env.parse_bool(&var("ASSOCIATE_BY_EMAIL"), false)?,
            timeout: Duration::from_secs(env.parse_in(&var("TIMEOUT_SECONDS"), 10, 1..=120)?),
        });
    }
    Ok(providers)
}

/// "Sign in with GitHub", when `GITHUB_CLIENT_ID` is set.
fn github(env: &Env<'_>) -> Result<Option<ProviderSettings>, SettingsError> {
    let Some(client_id) = env
        .get("GITHUB_CLIENT_ID")?
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    let client_secret = env
        .get("GITHUB_CLIENT_SECRET")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            err(
                "GITHUB_CLIENT_SECRET",
                "is required when GITHUB_CLIENT_ID is set",
            )
        })?;
    let web_url = base_url(
        "GITHUB_URL",
        &env.get("GITHUB_URL")?
            .unwrap_or_else(|| users_core::providers::GITHUB_URL.to_owned()),
    )?;
    let api_url = base_url(
        "GITHUB_API_URL",
        &env.get("GITHUB_API_URL")?
            .unwrap_or_else(|| users_core::providers::GITHUB_API_URL.to_owned()),
    )?;
    Ok(Some(ProviderSettings {
        name: "github".to_owned(),
        key: "github".to_owned(),
        label: "GitHub".to_owned(),
        kind: ProviderKind::Github { api_url },
        issuer_url: web_url,
        client_id,
        client_secret: SecretString::from(client_secret),
        associate_by_email: env.parse_bool("GITHUB_ASSOCIATE_BY_EMAIL", false)?,
        timeout: Duration::from_secs(env.parse_in("GITHUB_TIMEOUT_SECONDS", 10, 1..=120)?),
    }))
}

/// `scheme://authority` of an absolute URL (an `Origin` header, or a `Referer`).
pub fn origin_of(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (end > 0).then(|| &url[..scheme_end + 3 + end])
}

struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    /// `NAME`, or the content of the file named by `NAME_FILE` (a trailing newline is
    /// dropped). Setting both is an error: one of them would be silently ignored.
    fn get(&self, name: &str) -> Result<Option<String>, SettingsError> {
        let file_var = format!("{name}_FILE");
        let direct = (self.lookup)(name);
        let file = (self.lookup)(&file_var).filter(|f| !f.is_empty());
        match (direct, file) {
            (Some(_), Some(_)) => Err(err(
                name,
                format!("both {name} and {file_var} are set; set only one"),
            )),
            (Some(v), None) => Ok(Some(v)),
            (None, Some(path)) => {
                let content = std::fs::read_to_string(&path)
                    .map_err(|e| err(&file_var, format!("cannot read `{path}`: {e}")))?;
                let value = content.strip_suffix('\n').unwrap_or(&content);
                let value = value.strip_suffix('\r').unwrap_or(value);
                Ok(Some(value.to_owned()))
            }
            (None, None) => Ok(None),
        }
    }

    fn parse_bool(&self, name: &str, default: bool) -> Result<bool, SettingsError> {
        match self.get(name)?.map(|s| s.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(default),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(err(name, format!("`{v}` is not a boolean (true or false)"))),
        }
    }

    fn parse_in<T>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.get(name)? else {
            return Ok(default);
        };
        let value: T = raw
            .trim()
            .parse()
            .map_err(|_| err(name, format!("`{raw}` is not a whole number")))?;
        if !range.contains(&value) {
            return Err(err(
                name,
                format!(
                    "{value} is out of range: must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_contracts() {
        let s = settings(&[]).unwrap();
        assert!(s.database_url.is_sqlite());
        assert_eq!(s.bind_addr, "127.0.0.1:8000");
        assert_eq!(s.public_url, "http://127.0.0.1:8000");
        assert!(s.jwt_secret.is_none());
        assert_eq!(s.jwt_lifetime_seconds, 3600);
        assert_eq!(s.password_policy.min_length, 12);
        assert_eq!(
            s.argon2,
            Argon2Params {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.smtp_url.is_none());
        assert_eq!(s.mail_dir, std::path::PathBuf::from("mail"));
        assert_eq!(s.mail_from, "users <noreply@localhost>");
        assert_eq!(s.reset_password_url, "http://127.0.0.1:8000/reset-password");
        assert_eq!(s.verify_url, "http://127.0.0.1:8000/verify");
        let s = settings(&[("PUBLIC_URL", "https://id.example.com/")]).unwrap();
        assert_eq!(
            s.reset_password_url,
            "https://id.example.com/reset-password"
        );
        assert!(!s.argon2_below_owasp());
    }

    #[test]
    fn passkeys_need_a_host_name() {
        let s = settings(&[]).unwrap();
        assert!(s.passkeys.is_none(), "127.0.0.1 cannot be a relying party");
        let s = settings(&[("PUBLIC_URL", "https://id.example.com/users")]).unwrap();
        let p = s.passkeys.unwrap();
        assert_eq!(
            (p.rp_id.as_str(), p.origin.as_str()),
            ("id.example.com", "https://id.example.com")
        );
        let s = settings(&[
            ("WEBAUTHN_RP_ID", "localhost"),
            ("WEBAUTHN_ORIGIN", "http://localhost:9000"),
        ])
        .unwrap();
        let p = s.passkeys.unwrap();
        assert_eq!(
            (p.rp_id.as_str(), p.origin.as_str()),
            ("localhost", "http://localhost:9000")
        );
        // the RP ID alone, with the default public URL: the same port on that host
        let p = settings(&[("WEBAUTHN_RP_ID", "localhost")])
            .unwrap()
            .passkeys
            .unwrap();
        assert_eq!(p.origin, "http://localhost:8000");
        let s = settings(&[
            ("PUBLIC_URL", "https://id.example.com"),
            ("WEBAUTHN_RP_ID", "example.com"),
        ])
        .unwrap();
        assert_eq!(s.passkeys.unwrap().rp_id, "example.com", "a parent domain");
        for (var, vars) in [
            (
                "WEBAUTHN_RP_ID",
                vec![
                    ("PUBLIC_URL", "https://id.example.com"),
                    ("WEBAUTHN_RP_ID", "other.example"),
                ],
            ),
            ("WEBAUTHN_RP_ID", vec![("WEBAUTHN_RP_ID", "127.0.0.1")]),
            (
                "WEBAUTHN_ORIGIN",
                vec![("WEBAUTHN_ORIGIN", "https://id.example.com/path")],
            ),
            ("MFA_ISSUER", vec![("MFA_ISSUER", "a:b")]),
        ] {
            assert_eq!(settings(&vars).unwrap_err().var, var);
        }
        assert_eq!(
            settings(&[("APP_NAME", "Acme")]).unwrap().mfa_issuer,
            "Acme"
        );
    }

    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            origin_of("https://id.example.com/users/x?y#z"),
            Some("https://id.example.com")
        );
        assert_eq!(
            origin_of("http://localhost:8000"),
            Some("http://localhost:8000")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("https://"), None);
        let s = settings(&[
            ("PUBLIC_URL", "https://id.example.com/base"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com"),
        ])
        .unwrap();
        assert!(s.is_trusted_origin("https://id.example.com"));
        assert!(s.is_trusted_origin("https://app.example.com"));
        assert!(!s.is_trusted_origin("https://evil.example.com"));
        assert!(!s.is_trusted_origin("http://id.example.com"));
        let s = settings(&[]).unwrap();
        assert_eq!(s.session_lifetime_seconds, 30 * 86_400);
        assert_eq!(s.session_idle_seconds, 7 * 86_400);
        assert_eq!(s.refresh_reuse_interval_seconds, 10);
    }

    #[test]
    fn webhooks_need_urls_a_secret_and_known_types() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let s = settings(&[
            (
                "WEBHOOK_URLS",
                "https://a.example.com/hook, http://10.0.0.2:9000/x",
            ),
            ("WEBHOOK_SECRET", secret),
            ("WEBHOOK_EVENTS", "user.registered,user.login_failed"),
        ])
        .unwrap();
        assert_eq!(s.webhooks.urls.len(), 2);
        assert_eq!(s.webhooks.secret.len(), 24);
        assert_eq!(
            s.webhooks.events,
            Some(vec![EventType::UserRegistered, EventType::LoginFailed])
        );
        assert!(!format!("{s:?}").contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let s = settings(&[
            ("WEBHOOK_URLS", "https://a.example.com/hook"),
            ("WEBHOOK_SECRET", secret),
            ("WEBHOOK_EVENTS", "*"),
        ])
        .unwrap();
        assert_eq!(s.webhooks.events, None, "every type");
        let s = settings(&[]).unwrap();
        assert!(!s.webhooks.enabled());
        assert_eq!(s.audit_retention_days, 90);
        assert_eq!(s.shutdown_drain, Duration::from_secs(5));
        let s = settings(&[("SHUTDOWN_DRAIN_SECONDS", "0")]).unwrap();
        assert_eq!(s.shutdown_drain, Duration::ZERO);
        for (var, vars) in [
            (
                "WEBHOOK_SECRET",
                vec![("WEBHOOK_URLS", "https://a.example.com/hook")],
            ),
            (
                "WEBHOOK_SECRET",
                vec![
                    ("WEBHOOK_URLS", "https://a.example.com/hook"),
                    ("WEBHOOK_SECRET", "whsec_not base64"),
                ],
            ),
            (
                "WEBHOOK_URLS",
                vec![
                    ("WEBHOOK_URLS", "a.example.com/hook"),
                    ("WEBHOOK_SECRET", secret),
                ],
            ),
            (
                "WEBHOOK_URLS",
                vec![
                    ("WEBHOOK_URLS", "ftp://a.example.com/"),
                    ("WEBHOOK_SECRET", secret),
                ],
            ),
            (
                "WEBHOOK_EVENTS",
                vec![("WEBHOOK_EVENTS", "user.registered,user.nonsense")],
            ),
            ("AUDIT_RETENTION_DAYS", vec![("AUDIT_RETENTION_DAYS", "-1")]),
            (
                "SHUTDOWN_DRAIN_SECONDS",
                vec![("SHUTDOWN_DRAIN_SECONDS", "301")],
            ),
        ] {
            assert_eq!(settings(&vars).unwrap_err().var, var, "{vars:?}");
        }
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
    fn the_metrics_token_is_a_secret_from_the_variable_or_its_file() {
        assert!(settings(&[]).unwrap().metrics_token.is_none());
        let token = "metrics-token-6f1d2c9b8a7e";
        let s = settings(&[("METRICS_TOKEN", token)]).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(s.metrics_token.as_ref().unwrap()),
            token
        );
        assert!(!format!("{s:?}").contains(token), "never in Debug");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metrics_token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        let s = settings(&[("METRICS_TOKEN_FILE", file.to_str().unwrap())]).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(s.metrics_token.as_ref().unwrap()),
            token
        );
        let both = settings(&[
            ("METRICS_TOKEN", token),
            ("METRICS_TOKEN_FILE", file.to_str().unwrap()),
        ]);
        assert_eq!(both.unwrap_err().var, "METRICS_TOKEN");
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
        let mut known: std::collections::BTreeSet<String> =
            KNOWN_VARIABLES.iter().map(|s| s.to_string()).collect();
        for name in ["corp", "key-cloak"] {
            for suffix in OIDC_PROVIDER_SUFFIXES {
                known.insert(oidc_variable(name, suffix));
            }
        }
        assert_eq!(asked, known);
        assert!(asked.iter().all(|v| is_known_variable(v)));
    }

    #[test]
    fn the_oidc_family_is_known_by_its_pattern() {
        for var in [
            "OIDC_PROVIDERS",
            "OIDC_CORP_ISSUER_URL",
            "OIDC_KEY_CLOAK_CLIENT_SECRET",
            "OIDC_KEY_CLOAK_CLIENT_SECRET_FILE",
            "OIDC_A1_LABEL",
            "GITHUB_API_URL",
            "GITHUB_CLIENT_SECRET_FILE",
        ] {
            assert!(is_known_variable(var), "{var}");
        }
        for var in [
            "OIDC_ISSUER_URL",
            "OIDC_CORP_ISSUER",
            "OIDC_corp_LABEL",
            "OIDC_CORP_LABEL_X",
            "GITHUB_SCOPES",
            "OIDC_PROVIDERS_FILE_FILE",
        ] {
            assert!(!is_known_variable(var), "{var}");
        }
        assert_eq!(oidc_variable("key-cloak", "LABEL"), "OIDC_KEY_CLOAK_LABEL");
    }

    fn with_corp(extra: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut vars = vec![
            ("OIDC_PROVIDERS", "corp"),
            (
                "OIDC_CORP_ISSUER_URL",
                "https://login.example.com/realms/corp/",
            ),
            ("OIDC_CORP_CLIENT_ID", "users"),
            ("OIDC_CORP_CLIENT_SECRET", "corp-secret-31"),
        ];
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push((k, v));
        }
        vars.retain(|(_, v)| *v != "<unset>");
        settings(&vars)
    }

    #[test]
    fn openid_providers_are_read_with_their_defaults() {
        let s = with_corp(&[]).unwrap();
        let corp = &s.oidc_providers[0];
        assert_eq!(corp.name, "corp");
        assert_eq!(corp.key, "oidc:corp");
        assert_eq!(corp.label, "corp");
        assert_eq!(corp.issuer_url, "https://login.example.com/realms/corp");
        assert_eq!(
            corp.kind,
            ProviderKind::OpenId {
                scopes: vec!["openid".into(), "email".into(), "profile".into()]
            }
        );
        assert!(!corp.associate_by_email);
        assert!(!format!("{s:?}").contains("corp-secret-31"));
        let s = with_corp(&[
            ("OIDC_CORP_LABEL", "Corporate login"),
            ("OIDC_CORP_SCOPES", "openid email groups"),
            ("OIDC_CORP_ASSOCIATE_BY_EMAIL", "true"),
        ])
        .unwrap();
        let corp = &s.oidc_providers[0];
        assert_eq!(corp.label, "Corporate login");
        assert!(corp.associate_by_email);
        assert_eq!(
            corp.kind,
            ProviderKind::OpenId {
                scopes: vec!["openid".into(), "email".into(), "groups".into()]
            }
        );
        let names: Vec<_> = settings(&[
            ("OIDC_PROVIDERS", " b-2 , a1 "),
            ("OIDC_B_2_ISSUER_URL", "https://b.example.com"),
            ("OIDC_B_2_CLIENT_ID", "b"),
            ("OIDC_B_2_CLIENT_SECRET", "b"),
            ("OIDC_A1_ISSUER_URL", "https://a.example.com"),
            ("OIDC_A1_CLIENT_ID", "a"),
            ("OIDC_A1_CLIENT_SECRET", "a"),
            ("GOOGLE_CLIENT_ID", "g"),
            ("GOOGLE_CLIENT_SECRET", "g"),
            ("GITHUB_CLIENT_ID", "h"),
            ("GITHUB_CLIENT_SECRET", "h"),
        ])
        .unwrap()
        .providers()
        .map(|p| p.name.clone())
        .collect();
        assert_eq!(names, ["google", "b-2", "a1", "github"]);
    }

    #[test]
    fn provider_errors_name_the_variable() {
        for (extra, var) in [
            (
                vec![("OIDC_CORP_CLIENT_ID", "<unset>")],
                "OIDC_CORP_CLIENT_ID",
            ),
            (
                vec![("OIDC_CORP_CLIENT_SECRET", "")],
                "OIDC_CORP_CLIENT_SECRET",
            ),
            (
                vec![("OIDC_CORP_ISSUER_URL", "<unset>")],
                "OIDC_CORP_ISSUER_URL",
            ),
            (
                vec![("OIDC_CORP_ISSUER_URL", "login.example.com")],
                "OIDC_CORP_ISSUER_URL",
            ),
            (
                vec![("OIDC_CORP_ASSOCIATE_BY_EMAIL", "maybe")],
                "OIDC_CORP_ASSOCIATE_BY_EMAIL",
            ),
            (vec![("OIDC_CORP_SCOPES", " ")], "OIDC_CORP_SCOPES"),
            (vec![("OIDC_CORP_LABEL", "")], "OIDC_CORP_LABEL"),
            (
                vec![("OIDC_CORP_TIMEOUT_SECONDS", "0")],
                "OIDC_CORP_TIMEOUT_SECONDS",
            ),
            (vec![("OIDC_PROVIDERS", "corp,corp")], "OIDC_PROVIDERS"),
            (vec![("GITHUB_CLIENT_ID", "h")], "GITHUB_CLIENT_SECRET"),
            (
                vec![
                    ("GITHUB_CLIENT_ID", "h"),
                    ("GITHUB_CLIENT_SECRET", "s"),
                    ("GITHUB_API_URL", "api.github.com"),
                ],
                "GITHUB_API_URL",
            ),
            (
                vec![
                    ("GITHUB_CLIENT_ID", "h"),
                    ("GITHUB_CLIENT_SECRET", "s"),
                    ("GITHUB_URL", "ftp://github.com"),
                ],
                "GITHUB_URL",
            ),
        ] {
            let e = with_corp(&extra).unwrap_err();
            assert_eq!(e.var, var, "{extra:?}: {e}");
            assert!(e.to_string().starts_with(var), "{e}");
        }
        for name in [
            "Corp",
            "corp_1",
            "",
            "jwt",
            "cookie",
            "google",
            "github",
            "associate",
            "mfa",
            "passkeys",
            "sessions",
            &"x".repeat(33),
            "a b",
        ] {
            if name.is_empty() {
                continue; // an empty entry is skipped, not an error
            }
            let e = with_corp(&[("OIDC_PROVIDERS", name)]).unwrap_err();
            assert_eq!(e.var, "OIDC_PROVIDERS", "{name}: {e}");
        }
        assert!(with_corp(&[("OIDC_PROVIDERS", "corp,")]).is_ok());
        assert!(with_corp(&[("OIDC_PROVIDERS", "")])
            .unwrap()
            .oidc_providers
            .is_empty());
        let e = with_corp(&[("OIDC_CORP_CLIENT_ID", "<unset>")]).unwrap_err();
        assert!(!e.to_string().contains("corp-secret-31"), "{e}");
    }

    #[test]
    fn github_defaults_and_enterprise_urls() {
        let s = settings(&[
            ("GITHUB_CLIENT_ID", "Iv1.x"),
            ("GITHUB_CLIENT_SECRET", "gh-secret-9"),
        ])
        .unwrap();
        let g = s.github.as_ref().unwrap();
        assert_eq!((g.name.as_str(), g.key.as_str()), ("github", "github"));
        assert_eq!(g.issuer_url, "https://github.com");
        assert_eq!(
            g.kind,
            ProviderKind::Github {
                api_url: "https://api.github.com".into()
            }
        );
        assert!(!format!("{s:?}").contains("gh-secret-9"));
        let s = settings(&[
            ("GITHUB_CLIENT_ID", "Iv1.x"),
            ("GITHUB_CLIENT_SECRET", "s"),
            ("GITHUB_URL", "https://ghe.example.com/"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3"),
            ("GITHUB_ASSOCIATE_BY_EMAIL", "true"),
        ])
        .unwrap();
        let g = s.github.unwrap();
        assert_eq!(g.issuer_url, "https://ghe.example.com");
        assert!(g.associate_by_email);
        assert_eq!(issuer_variable("github"), "GITHUB_URL");
        assert_eq!(issuer_variable("google"), "GOOGLE_ISSUER_URL");
        assert_eq!(issuer_variable("my-idp"), "OIDC_MY_IDP_ISSUER_URL");
    }

    #[test]
    fn file_variants_are_read_and_conflicts_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret-from-a-file\n").unwrap();
        let p = path.to_str().unwrap();
        let s = settings(&[("JWT_SECRET_FILE", p)]).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(s.jwt_secret.unwrap().expose_secret(), "s3cret-from-a-file");
        let e = settings(&[("JWT_SECRET_FILE", p), ("JWT_SECRET", "x")]).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET");
        let e = settings(&[("PASSWORD_MIN_LENGTH_FILE", "/nonexistent/file")]).unwrap_err();
        assert_eq!(e.var, "PASSWORD_MIN_LENGTH_FILE");
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
        let g = s.google.unwrap();
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
