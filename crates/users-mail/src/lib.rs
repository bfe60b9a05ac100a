//! Outgoing mail for the users service: the password-reset, address-verification and
//! password-changed mails (text and HTML, templates compiled in), and their delivery
//! over SMTP (plain, STARTTLS or implicit TLS) or, when no SMTP server is configured,
//! as `.eml` files in a folder so that a fresh checkout works without a mail server.

mod email;
mod mailer;

pub use email::{escape_html, Email, SecurityChange};
pub use mailer::{MailConfig, Mailer};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail configuration: {0}")]
    Config(String),
    /// Worth retrying: connection refused/timeout, SMTP 4xx, I/O error writing the folder.
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Not worth retrying: SMTP 5xx (e.g. recipient refused), a message that cannot be built.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}
