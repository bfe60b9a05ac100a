//! Where security events go: how long the audit log keeps them
//! (`AUDIT_RETENTION_DAYS`) and the webhooks they are POSTed to (`WEBHOOK_*`).

use users_core::{EventType, WebhookSettings};

use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::number(
        "AUDIT_RETENTION_DAYS",
        90,
        0..=36_500,
        "security events older than this are forgotten; 0 keeps them forever",
    ),
    Variable::text(
        "WEBHOOK_URLS",
        WhenUnset::Described("none: no webhooks"),
        "comma-separated http(s) URLs",
        "where every security event is POSTed",
    ),
    Variable::text(
        "WEBHOOK_SECRET",
        WhenUnset::Described("required with WEBHOOK_URLS"),
        "whsec_ and the base64 of a random key",
        "the key webhooks are signed with",
    ),
    Variable::text(
        "WEBHOOK_EVENTS",
        // `*` and a blank value mean the same
        WhenUnset::Value("*"),
        "comma-separated event types, or *",
        "which event types are POSTed",
    ),
];

#[derive(Debug, Clone)]
pub struct Events {
    /// `WEBHOOK_URLS`, `WEBHOOK_SECRET`, `WEBHOOK_EVENTS` (the secret never shows in
    /// `Debug`).
    pub webhooks: WebhookSettings,
    pub audit_retention_days: i64,
}

impl Events {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let webhooks = webhook_settings(env)?;
        let audit_retention_days = env.number("AUDIT_RETENTION_DAYS")?;
        Ok(Events {
            webhooks,
            audit_retention_days,
        })
    }
}

/// `WEBHOOK_URLS` (comma-separated http(s) URLs), `WEBHOOK_SECRET` (`whsec_<base64>`,
/// required with URLs) and `WEBHOOK_EVENTS` (comma-separated types, or `*`).
fn webhook_settings(env: &Env<'_>) -> Result<WebhookSettings, SettingsError> {
    let urls = webhook_urls(env)?;
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
    Ok(WebhookSettings {
        urls,
        events: webhook_events(env)?,
        secret,
    })
}

fn webhook_urls(env: &Env<'_>) -> Result<Vec<String>, SettingsError> {
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
    Ok(urls)
}

/// `None`: every type.
fn webhook_events(env: &Env<'_>) -> Result<Option<Vec<EventType>>, SettingsError> {
    let list = env.text("WEBHOOK_EVENTS")?;
    let list = list.trim();
    if list.is_empty() || list == "*" {
        return Ok(None);
    }
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
    Ok(Some(types))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::settings::tests::settings;

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
        assert_eq!(s.events.webhooks.urls.len(), 2);
        assert_eq!(s.events.webhooks.secret.len(), 24);
        assert_eq!(
            s.events.webhooks.events,
            Some(vec![EventType::UserRegistered, EventType::LoginFailed])
        );
        assert!(!format!("{s:?}").contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let s = settings(&[
            ("WEBHOOK_URLS", "https://a.example.com/hook"),
            ("WEBHOOK_SECRET", secret),
            ("WEBHOOK_EVENTS", "*"),
        ])
        .unwrap();
        assert_eq!(s.events.webhooks.events, None, "every type");
        let s = settings(&[]).unwrap();
        assert!(!s.events.webhooks.enabled());
        assert_eq!(s.events.audit_retention_days, 90);
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
        ] {
            assert_eq!(settings(&vars).unwrap_err().var, var, "{vars:?}");
        }
    }
}
