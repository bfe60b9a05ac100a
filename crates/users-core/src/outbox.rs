//! What the outbox holds: mails to send, requests for mails (forgot-password and
//! verification) that the worker resolves at send time, and webhook deliveries
//! (`events.rs`). Rows are written in the
//! transaction of the change that causes them (see `users_db::Effects`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use users_db::outbox::NewOutboxRow;
use users_db::Effects;
use users_domain::Timestamp;
use users_mail::{Email, SecurityChange};

use crate::client::ClientInfo;
use crate::{Core, Fault};

/// What an outbox row holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboxItem {
    /// A composed mail.
    Email { email: Email },
    /// Send a reset link if the address belongs to an active user.
    ForgotPassword {
        email: String,
        /// Who asked: the `password.reset_requested` event records it.
        #[serde(default)]
        client: ClientInfo,
        /// Whether that event is written already (a retried mail writes it once).
        #[serde(default)]
        announced: bool,
    },
    /// Send a verification link if the address belongs to an active, unverified user.
    RequestVerify {
        email: String,
        #[serde(default)]
        client: ClientInfo,
        #[serde(default)]
        announced: bool,
    },
}

impl OutboxItem {
    pub fn kind(&self) -> &'static str {
        match self {
            OutboxItem::Email { .. } => "email",
            OutboxItem::ForgotPassword { .. } => "forgot_password",
            OutboxItem::RequestVerify { .. } => "request_verify",
        }
    }

    /// The row to write for this item.
    pub fn row(&self, now: Timestamp) -> Result<NewOutboxRow, Fault> {
        let payload = serde_json::to_string(self)
            .map_err(|e| Fault::Internal(format!("cannot serialise an outbox item: {e}")))?;
        Ok(NewOutboxRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind: self.kind().to_owned(),
            payload,
            created_at: now.millis(),
        })
    }

    /// Effects holding just this item.
    pub fn effects(&self, now: Timestamp) -> Result<Effects, Fault> {
        Ok(Effects::none().with_outbox(self.row(now)?))
    }
}

/// The mail telling the account's owner of a change, as effects of that change.
pub(crate) fn notice(
    core: &Core,
    to: &str,
    change: SecurityChange,
    now: Timestamp,
) -> Result<Effects, Fault> {
    let email = Email::security_notice(&core.config.app_name, to, &change);
    OutboxItem::Email { email }.effects(now)
}

/// The kind of the rows of webhook deliveries (their payload: `events::WebhookDelivery`).
pub const WEBHOOK_KIND: &str = "webhook";

/// The outbox's two channels, each with its own worker, so that a slow webhook
/// receiver never delays a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Mail,
    Webhooks,
}

impl Channel {
    /// The kinds of outbox rows of this channel.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Channel::Mail => &["email", "forgot_password", "request_verify"],
            Channel::Webhooks => &[WEBHOOK_KIND],
        }
    }
}

/// Wakes a worker when a flow queued something for it.
#[derive(Debug, Clone, Default)]
pub struct OutboxSignal {
    mail: Arc<Notify>,
    webhooks: Arc<Notify>,
}

impl OutboxSignal {
    /// A mail was queued.
    pub fn wake(&self) {
        self.mail.notify_one();
    }

    /// A webhook delivery was queued.
    pub fn wake_webhooks(&self) {
        self.webhooks.notify_one();
    }

    pub async fn woken(&self, channel: Channel) {
        match channel {
            Channel::Mail => self.mail.notified().await,
            Channel::Webhooks => self.webhooks.notified().await,
        }
    }
}

/// `base?token=T` (or `&token=T` when the base has a query already).
pub fn with_token(base: &str, token: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_get_the_token_appended() {
        assert_eq!(
            with_token("https://a.example/reset", "T"),
            "https://a.example/reset?token=T"
        );
        assert_eq!(
            with_token("https://a.example/#/reset?x=1", "T"),
            "https://a.example/#/reset?x=1&token=T"
        );
    }
}
