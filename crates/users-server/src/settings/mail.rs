//! How mail leaves and where its links point: `SMTP_URL`, `MAIL_DIR`, `MAIL_FROM`,
//! `RESET_PASSWORD_URL`, `VERIFY_URL`.

use secrecy::SecretString;

use super::http::Http;
use super::{err, Env, SettingsError};

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
        let mail_dir =
            std::path::PathBuf::from(env.get("MAIL_DIR")?.unwrap_or_else(|| "mail".to_owned()));
        let mail_from = env
            .get("MAIL_FROM")?
            .unwrap_or_else(|| "users <noreply@localhost>".to_owned());
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
