//! How mail leaves and where its links point: `SMTP_URL`, `MAIL_DIR`, `MAIL_FROM`,
//! `RESET_PASSWORD_URL`, `VERIFY_URL`.

use secrecy::SecretString;

use super::http::Http;
use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::text(
        "SMTP_URL",
        WhenUnset::Described("mail is written as .eml files into MAIL_DIR"),
        "smtp://host:port, smtp://host:port?tls=starttls or smtps://user:pass@host:465",
        "the SMTP server",
    ),
    Variable::text(
        "MAIL_DIR",
        WhenUnset::Value("mail"),
        "a folder (created)",
        "where .eml files go when SMTP_URL is unset",
    ),
    Variable::text(
        "MAIL_FROM",
        WhenUnset::Value("users <noreply@localhost>"),
        "a mailbox",
        "From: of every mail",
    ),
    Variable::text(
        "RESET_PASSWORD_URL",
        WhenUnset::Described("PUBLIC_URL/reset-password"),
        "an absolute http:// or https:// URL",
        "where the mailed reset link points",
    ),
    Variable::text(
        "VERIFY_URL",
        WhenUnset::Described("PUBLIC_URL/verify"),
        "an absolute http:// or https:// URL",
        "where the mailed verification link points",
    ),
];

#[derive(Debug, Clone)]
pub struct Mail {
    /// `None`: mail is written as `.eml` files into `mail_dir`.
    pub smtp_url: Option<SecretString>,
    pub mail_dir: std::path::PathBuf,
    pub mail_from: String,
    pub reset_password_url: String,
    pub verify_url: String,
}

impl Mail {
    /// The links default to pages under the public URL of `http`.
    pub fn read(env: &Env<'_>, http: &Http) -> Result<Self, SettingsError> {
        let smtp_url = env
            .get("SMTP_URL")?
            .filter(|s| !s.trim().is_empty())
            .map(SecretString::from);
        let mail_dir = std::path::PathBuf::from(env.text("MAIL_DIR")?);
        let mail_from = env.text("MAIL_FROM")?;
        Ok(Mail {
            smtp_url,
            mail_dir,
            mail_from,
            reset_password_url: link_base(env, http, "RESET_PASSWORD_URL", "/reset-password")?,
            verify_url: link_base(env, http, "VERIFY_URL", "/verify")?,
        })
    }
}

/// Where a mailed link points: `var`, or the service's own page at `default_path`.
fn link_base(
    env: &Env<'_>,
    http: &Http,
    var: &str,
    default_path: &str,
) -> Result<String, SettingsError> {
    match env.get(var)? {
        Some(url) => {
            let url = url.trim().to_owned();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err(var, "must be an absolute http:// or https:// URL"));
            }
            Ok(url)
        }
        None => Ok(format!("{}{default_path}", http.public_url)),
    }
}
