//! The mail outbox worker.
//!
//! Routes only write rows (in the transaction of the change that causes the mail);
//! this worker, running inside every server process, claims due rows with a lease,
//! turns them into mails, delivers them, and records the outcome. Temporary failures
//! are retried with exponential backoff for 24 hours; a sent row loses its body.
//!
//! Forgot-password and verification requests are stored as *intents* holding only the
//! address, for every address, known or not: the request does the same work and takes
//! the same time either way, and the worker decides whether a mail goes out.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use users_db::outbox;
use users_db::users::{self, StoredUser};
use users_domain::email::email_key;
use users_mail::{Email, MailError};

use crate::state::{now_ms, AppState};
use crate::tokens::{ResetClaims, VerifyClaims};

/// How long a claimed row stays reserved for its worker.
const LEASE_MS: i64 = 120_000;
/// How long a mail is retried before it is given up.
const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;
const MAX_BACKOFF_MS: i64 = 10 * 60 * 1000;
const BATCH: i64 = 20;
const POLL: Duration = Duration::from_secs(1);
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// What an outbox row holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboxItem {
    /// A composed mail.
    Email { email: Email },
    /// Send a reset link if the address belongs to an active user.
    ForgotPassword { email: String },
    /// Send a verification link if the address belongs to an active, unverified user.
    RequestVerify { email: String },
}

impl OutboxItem {
    pub fn kind(&self) -> &'static str {
        match self {
            OutboxItem::Email { .. } => "email",
            OutboxItem::ForgotPassword { .. } => "forgot_password",
            OutboxItem::RequestVerify { .. } => "request_verify",
        }
    }
}

/// Writes an item into the outbox on `conn` (inside the caller's transaction).
pub fn enqueue(
    conn: &mut users_db::DbConnection,
    item: &OutboxItem,
) -> Result<(), users_db::DbError> {
    let payload = serde_json::to_string(item)
        .map_err(|e| users_db::DbError::Other(format!("cannot serialise an outbox item: {e}")))?;
    let id = uuid::Uuid::new_v4().to_string();
    outbox::enqueue(conn, &id, item.kind(), &payload, now_ms())?;
    Ok(())
}

/// Delay before attempt `attempts + 1`: 1 s, 2 s, 4 s, … up to 10 minutes.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 30) as u32;
    1000i64.saturating_mul(1i64 << exp).min(MAX_BACKOFF_MS)
}

/// Handle to wake the worker when a route queued something.
#[derive(Debug, Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub struct OutboxWorker {
    state: AppState,
    id: String,
}

enum Outcome {
    Send(Email),
    Drop,
}

impl OutboxWorker {
    pub fn new(state: AppState) -> Self {
        OutboxWorker {
            state,
            id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(mailer = %self.state.mailer.describe(), "mail outbox worker started");
        let signal = self.state.outbox_signal.clone();
        let mut last_purge = 0i64;
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.run_once().await;
            let now = now_ms();
            if now - last_purge > 3600 * 1000 {
                last_purge = now;
                let week_ago = now - 7 * 24 * 3600 * 1000;
                let _ = self
                    .state
                    .db(move |c| Ok(outbox::purge_finished(c, week_ago)?))
                    .await;
                let day_ago = now - 24 * 3600 * 1000;
                let _ = self
                    .state
                    .db(move |c| Ok(users_db::limits::purge(c, day_ago)?))
                    .await;
            }
            tokio::select! {
                _ = signal.0.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("mail outbox worker stopped");
    }

    /// Delivers every row that is due now; returns how many rows it handled.
    pub async fn run_once(&self) -> usize {
        let due = match self
            .state
            .db(|c| Ok(outbox::due(c, now_ms(), BATCH)?))
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                return 0;
            }
        };
        let mut handled = 0;
        for id in due {
            let worker = self.id.clone();
            let claim_id = id.clone();
            let row = match self
                .state
                .db(move |c| Ok(outbox::claim(c, &claim_id, &worker, now_ms(), LEASE_MS)?))
                .await
            {
                Ok(Some(row)) => row,
                Ok(None) => continue, // another worker has it
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim an outbox row");
                    continue;
                }
            };
            handled += 1;
            self.deliver(row).await;
        }
        handled
    }

    async fn deliver(&self, row: outbox::OutboxRow) {
        let span = tracing::info_span!("outbox", id = %row.id, kind = %row.kind, attempt = row.attempts + 1);
        let _enter = span.enter();
        let item: Option<OutboxItem> = row
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        let Some(item) = item else {
            self.finish_failed(&row, "unreadable outbox payload").await;
            return;
        };
        let outcome = match self.resolve(item).await {
            Ok(o) => o,
            Err(e) => {
                self.finish_retry(&row, &e).await;
                return;
            }
        };
        let email = match outcome {
            Outcome::Drop => {
                let (id, worker) = (row.id.clone(), self.id.clone());
                let _ = self
                    .state
                    .db(move |c| Ok(outbox::mark_dropped(c, &id, &worker)?))
                    .await;
                tracing::info!("no mail to send for this request");
                return;
            }
            Outcome::Send(email) => email,
        };
        let sent = tokio::time::timeout(SEND_TIMEOUT, self.state.mailer.send(&email)).await;
        match sent {
            Ok(Ok(())) => {
                let (id, worker) = (row.id.clone(), self.id.clone());
                match self
                    .state
                    .db(move |c| Ok(outbox::mark_sent(c, &id, &worker, now_ms())?))
                    .await
                {
                    Ok(_) => {
                        crate::metrics::Metrics::inc(&self.state.metrics.mails_sent);
                        tracing::info!("mail sent")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "mail sent but not recorded; it may be sent again")
                    }
                }
            }
            Ok(Err(MailError::Transient(e))) => self.finish_retry(&row, &e).await,
            Ok(Err(e)) => self.finish_failed(&row, &e.to_string()).await,
            Err(_) => self.finish_retry(&row, "timed out").await,
        }
    }

    async fn finish_retry(&self, row: &outbox::OutboxRow, error: &str) {
        let now = now_ms();
        if now - row.created_at >= GIVE_UP_AFTER_MS {
            self.finish_failed(row, &format!("still failing after 24 h: {error}"))
                .await;
            return;
        }
        let next = now + backoff_ms(row.attempts);
        let (id, worker, err) = (row.id.clone(), self.id.clone(), error.to_owned());
        let _ = self
            .state
            .db(move |c| Ok(outbox::mark_retry(c, &id, &worker, next, &err)?))
            .await;
        tracing::warn!(error = %error, retry_in_ms = next - now, "mail delivery failed; will retry");
    }

    async fn finish_failed(&self, row: &outbox::OutboxRow, error: &str) {
        let (id, worker, err) = (row.id.clone(), self.id.clone(), error.to_owned());
        let _ = self
            .state
            .db(move |c| Ok(outbox::mark_failed(c, &id, &worker, now_ms(), &err)?))
            .await;
        tracing::error!(error = %error, "mail given up");
    }

    /// Turns an item into the mail to send now (tokens are minted at send time).
    async fn resolve(&self, item: OutboxItem) -> Result<Outcome, String> {
        match item {
            OutboxItem::Email { email } => Ok(Outcome::Send(email)),
            OutboxItem::ForgotPassword { email } => {
                let Some(user) = self.lookup(&email).await? else {
                    return Ok(Outcome::Drop);
                };
                if !user.user.is_active {
                    return Ok(Outcome::Drop);
                }
                let s = &self.state.settings;
                let fgpt = self
                    .state
                    .hasher
                    .hash(SecretString::from(user.hashed_password.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
                let claims = ResetClaims {
                    sub: user.user.id.to_string(),
                    password_fgpt: fgpt,
                    aud: crate::tokens::RESET_AUDIENCE.to_owned(),
                    exp: now_ms() / 1000 + s.reset_token_lifetime_seconds,
                };
                let token = self.state.jwt.encode(&claims).map_err(|e| e.to_string())?;
                let link = with_token(&s.reset_password_url, &token);
                Ok(Outcome::Send(Email::reset_password(
                    &s.app_name,
                    &user.user.email,
                    &link,
                    minutes(s.reset_token_lifetime_seconds),
                )))
            }
            OutboxItem::RequestVerify { email } => {
                let Some(user) = self.lookup(&email).await? else {
                    return Ok(Outcome::Drop);
                };
                if !user.user.is_active || user.user.is_verified {
                    return Ok(Outcome::Drop);
                }
                let s = &self.state.settings;
                let claims = VerifyClaims {
                    sub: user.user.id.to_string(),
                    email: user.user.email.clone(),
                    aud: crate::tokens::VERIFY_AUDIENCE.to_owned(),
                    exp: now_ms() / 1000 + s.verify_token_lifetime_seconds,
                };
                let token = self.state.jwt.encode(&claims).map_err(|e| e.to_string())?;
                let link = with_token(&s.verify_url, &token);
                Ok(Outcome::Send(Email::verify_email(
                    &s.app_name,
                    &user.user.email,
                    &link,
                    minutes(s.verify_token_lifetime_seconds),
                )))
            }
        }
    }

    async fn lookup(&self, email: &str) -> Result<Option<StoredUser>, String> {
        let key = email_key(email);
        self.state
            .db(move |c| Ok(users::find_by_email_key(c, &key)?))
            .await
            .map_err(|e| e.to_string())
    }
}

fn minutes(seconds: i64) -> u64 {
    (seconds.max(60) / 60) as u64
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
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(1), 2000);
        assert_eq!(backoff_ms(5), 32_000);
        assert_eq!(backoff_ms(20), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(1000), MAX_BACKOFF_MS);
    }

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
