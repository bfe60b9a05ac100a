//! What the flows need to know of the configuration. The web layer reads the
//! environment and fills this in; nothing here knows about variables or files.

/// Settings the flows and the worker read.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Product name in mails.
    pub app_name: String,
    /// Base of the service's own URLs, without a trailing slash.
    pub public_url: String,
    pub access_token_lifetime_seconds: i64,
    /// Where mailed links point; `?token=T` (or `&token=T`) is appended.
    pub reset_password_url: String,
    pub verify_url: String,
    pub reset_token_lifetime_seconds: i64,
    pub verify_token_lifetime_seconds: i64,
    pub oauth_state_lifetime_seconds: i64,
    /// Consecutive failed logins of one account before it is locked for a while.
    pub login_max_failures: i64,
    /// Requests per client IP and route per minute; 0: no limit.
    pub rate_limit_per_ip_per_minute: i64,
    /// A session ends this long after it started, whatever happens.
    pub session_lifetime_seconds: i64,
    /// A session unused for this long ends.
    pub session_idle_seconds: i64,
    /// A spent refresh token presented again this soon after its rotation gets the
    /// session's current one (two tabs refreshing at once); later, it is theft.
    pub refresh_reuse_interval_seconds: i64,
    /// The issuer shown by authenticator apps (`otpauth://totp/<issuer>:<email>`).
    pub mfa_issuer: String,
    /// Audit events older than this many days are forgotten; 0 keeps them forever.
    pub audit_retention_days: i64,
    /// `OAUTH_OPEN_REGISTRATION`: anyone may register a public client.
    pub oauth_open_registration: bool,
    /// `OAUTH_CODE_LIFETIME_SECONDS`.
    pub oauth_code_lifetime_seconds: i64,
    /// `OAUTH_ACCESS_TOKEN_LIFETIME_SECONDS`: the provider's access and ID tokens.
    pub oauth_access_token_lifetime_seconds: i64,
}

impl CoreConfig {
    /// What decides whether a session is live at `now`.
    pub fn liveness(&self, now: users_domain::Timestamp) -> users_db::sessions::Liveness {
        users_db::sessions::Liveness {
            now_ms: now.millis(),
            idle_ms: self.session_idle_seconds.saturating_mul(1000),
        }
    }

    /// Whether cookies the service sets must be `Secure`.
    pub fn https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}
