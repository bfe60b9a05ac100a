//! The outbox workers, running inside every server process, one per channel (mail,
//! webhooks): each claims due rows of its channel with a lease, delivers them, and
//! records the outcome. Temporary failures are retried with exponential backoff for 24
//! hours; a delivered row loses its body. Once an hour the mail worker also forgets
//! what has outlived its use (finished outbox rows, old rate-limit windows, old
//! sessions, audit events past `AUDIT_RETENTION_DAYS`).
//!
//! Forgot-password and verification requests are stored as *intents* holding only the
//! address, for every address, known or not: the request does the same work and takes
//! the same time either way. The worker hands them to `flows::recovery`, which decides
//! whether a mail goes out (and records the request's event, once, when it does).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;
use users_db::outbox;
use users_domain::{Clock, Timestamp};
use users_mail::{MailError, Mailer};

use crate::events::WebhookDelivery;
use crate::flows::recovery::{self, Held, Resolved};
use crate::outbox::{Channel, OutboxItem};
use crate::{Core, Counters};

/// How long a claimed row stays reserved for its worker. The worker renews the lease
/// every [`RENEW_EVERY`] while the delivery runs (an SMTP send may take up to
/// [`SEND_TIMEOUT`]), so the lease only needs to outlast a few renewals; it is what a
/// row held by a process that died (SIGKILL, a lost machine) waits before another
/// worker takes it.
const LEASE_MS: i64 = 15_000;
/// How often a worker renews the lease of the row it is delivering, and how long one
/// renewal may take: three fit in a lease, so one that fails or times out does not
/// lose the row.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long a mail is retried before it is given up.
const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;
const MAX_BACKOFF_MS: i64 = 10 * 60 * 1000;
const BATCH: i64 = 20;
const POLL: Duration = Duration::from_secs(1);
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Delay before attempt `attempts + 1`: 1 s, 2 s, 4 s, … up to 10 minutes.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 30) as u32;
    1000i64.saturating_mul(1i64 << exp).min(MAX_BACKOFF_MS)
}

/// What the worker needs: the flows' `Core` (a request resolved at send time is a
/// change like any other), where mails go, and the clock.
pub struct WorkerDeps {
    pub core: Core,
    pub mailer: Mailer,
    pub clock: Arc<dyn Clock>,
}

pub struct OutboxWorker {
    deps: Arc<WorkerDeps>,
    id: String,
    channel: Channel,
    http: reqwest::Client,
}

impl OutboxWorker {
    pub fn new(deps: Arc<WorkerDeps>, channel: Channel) -> Result<Self, String> {
        Ok(OutboxWorker {
            deps,
            id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            channel,
            http: crate::webhooks::client()?,
        })
    }

    fn name(&self) -> &'static str {
        match self.channel {
            Channel::Mail => "mail",
            Channel::Webhooks => "webhook",
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        match self.channel {
            Channel::Mail => {
                tracing::info!(mailer = %self.deps.mailer.describe(), "mail outbox worker started")
            }
            Channel::Webhooks => {
                tracing::info!(
                    receivers = self.core().webhooks.urls.len(),
                    "webhook outbox worker started"
                )
            }
        }
        let signal = self.core().outbox.clone();
        let mut last_purge = 0i64;
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.run_once(&shutdown).await;
            let now = self.now().millis();
            if self.channel == Channel::Mail && now - last_purge > 3600 * 1000 {
                last_purge = now;
                self.purge(now).await;
            }
            tokio::select! {
                _ = signal.woken(self.channel) => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(channel = self.name(), "outbox worker stopped");
    }

    fn now(&self) -> Timestamp {
        self.deps.clock.now()
    }

    fn core(&self) -> &Core {
        &self.deps.core
    }

    async fn purge(&self, now: i64) {
        let week_ago = now - 7 * 24 * 3600 * 1000;
        let _ = self
            .core()
            .store
            .run(move |c| outbox::purge_finished(c, week_ago))
            .await;
        let day_ago = now - 24 * 3600 * 1000;
        let _ = self
            .core()
            .store
            .run(move |c| users_db::limits::purge(c, day_ago))
            .await;
        let _ = self
            .core()
            .store
            .run(move |c| outbox::purge_mail_sends(c, day_ago))
            .await;
        // ended or expired sessions are kept a week, so a late refresh of one is told
        // apart from garbage in the logs
        let _ = self
            .core()
            .store
            .run(move |c| users_db::sessions::purge(c, week_ago))
            .await;
        let days = self.core().config.audit_retention_days;
        if days > 0 {
            let before = now - days.saturating_mul(24 * 3600 * 1000);
            match self
                .core()
                .store
                .run(move |c| users_db::audit::purge(c, before))
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::info!(events = n, "audit events past retention forgotten")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot forget old audit events"),
            }
        }
    }

    /// Delivers every row that is due now, one at a time, until `shutdown` turns true
    /// (the rest stays for another worker); returns how many rows it handled.
    pub async fn run_once(&self, shutdown: &watch::Receiver<bool>) -> usize {
        let now = self.now().millis();
        let kinds = self.channel.kinds();
        let due = match self
            .core()
            .store
            .run(move |c| outbox::due(c, kinds, now, BATCH))
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
            if *shutdown.borrow() {
                break;
            }
            let worker = self.id.clone();
            let claim_id = id.clone();
            let now = self.now().millis();
            let row = match self
                .core()
                .store
                .run(move |c| outbox::claim(c, &claim_id, &worker, now, LEASE_MS))
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

    /// Delivers a claimed row, renewing its lease until the outcome is recorded.
    async fn deliver(&self, row: outbox::OutboxRow) {
        let span = tracing::info_span!("outbox", id = %row.id, kind = %row.kind, attempt = row.attempts + 1);
        // a webhook's delivery belongs to the trace of the request that raised its event
        if self.channel == Channel::Webhooks {
            let delivery: Option<WebhookDelivery> = row
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok());
            if let Some(d) = delivery.filter(|d| !d.trace_context.is_empty()) {
                users_domain::trace_context::continue_from(
                    &span,
                    d.trace_context
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
        }
        let renewing = self.keep_lease(row.id.clone()).instrument(span.clone());
        let delivering = async {
            match self.channel {
                Channel::Mail => self.deliver_mail(row).await,
                Channel::Webhooks => self.deliver_webhook(row).await,
            }
        }
        .instrument(span);
        tokio::select! {
            biased;
            () = delivering => {}
            () = renewing => {}
        }
    }

    /// Renews the lease on row `id` every [`RENEW_EVERY`], each attempt bounded by
    /// [`RENEW_EVERY`] itself (a busy pool or a slow database does not delay the next
    /// one). Returns, which ends the delivery, once the row is no longer this worker's:
    /// another worker took it, or renewals failed until the lease lapsed, so another
    /// worker may take it. The row's new holder delivers it; stopping here keeps the
    /// mail from being sent twice, unless this worker's send had already gone out.
    async fn keep_lease(&self, id: String) {
        let mut ticks = tokio::time::interval(RENEW_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; the claim just set the lease
        let mut held_until = self.now().millis() + LEASE_MS;
        loop {
            ticks.tick().await;
            let (row, worker) = (id.clone(), self.id.clone());
            let now = self.now().millis();
            let renewal = self
                .core()
                .store
                .run(move |c| outbox::renew(c, &row, &worker, now, LEASE_MS));
            match tokio::time::timeout(RENEW_EVERY, renewal).await {
                Ok(Ok(true)) => held_until = now + LEASE_MS,
                Ok(Ok(false)) => {
                    tracing::warn!("another worker took the row being delivered; stopping");
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the lease of an outbox row"),
                Err(_) => tracing::warn!("renewing the lease of an outbox row timed out"),
            }
            // the next attempt would come too late: the row may already be someone else's
            if self.now().millis() + RENEW_EVERY.as_millis() as i64 >= held_until {
                tracing::warn!("the lease of the row being delivered lapsed; stopping");
                return;
            }
        }
    }

    async fn deliver_webhook(&self, row: outbox::OutboxRow) {
        let delivery: Option<WebhookDelivery> = row
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        let Some(delivery) = delivery else {
            self.finish_failed(&row, "unreadable outbox payload").await;
            return;
        };
        let attempt = crate::webhooks::attempt(
            &self.http,
            &self.core().webhooks.secret,
            &delivery,
            self.now().secs(),
        )
        .await;
        match attempt {
            Ok(()) => {
                if self.mark_sent(&row).await {
                    Counters::inc(&self.core().counters.webhooks_delivered);
                    tracing::info!(event_id = %delivery.event_id, "webhook delivered");
                }
            }
            Err(e) => self.finish_retry(&row, &e.to_string()).await,
        }
    }

    /// Records a delivery; `false` (logged) when that failed.
    async fn mark_sent(&self, row: &outbox::OutboxRow) -> bool {
        let (id, worker) = (row.id.clone(), self.id.clone());
        let now = self.now().millis();
        match self
            .core()
            .store
            .run(move |c| outbox::mark_sent(c, &id, &worker, now))
            .await
        {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(
                    "delivered, but another worker had taken the row; it may be delivered again"
                );
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "delivered but not recorded; it may be delivered again");
                false
            }
        }
    }

    async fn deliver_mail(&self, row: outbox::OutboxRow) {
        let item: Option<OutboxItem> = row
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        let Some(item) = item else {
            self.finish_failed(&row, "unreadable outbox payload").await;
            return;
        };
        let held = Held {
            row: &row.id,
            worker: &self.id,
        };
        let now = self.now();
        // a request for a mail is resolved now: its user, its token, its event
        let resolved = match item {
            OutboxItem::Email { email } => Ok(Resolved::Send(email)),
            OutboxItem::ForgotPassword {
                email,
                client,
                announced,
            } => recovery::resolve_reset(self.core(), &held, email, client, announced, now).await,
            OutboxItem::RequestVerify {
                email,
                client,
                announced,
            } => {
                recovery::resolve_verification(self.core(), &held, email, client, announced, now)
                    .await
            }
        };
        let email = match resolved {
            Err(e) => {
                self.finish_retry(&row, &e).await;
                return;
            }
            Ok(Resolved::Drop) => {
                let (id, worker) = (row.id.clone(), self.id.clone());
                let _ = self
                    .core()
                    .store
                    .run(move |c| outbox::mark_dropped(c, &id, &worker))
                    .await;
                tracing::info!("no mail to send for this request");
                return;
            }
            Ok(Resolved::Send(email)) => email,
        };
        // the row's id names the mail: sent twice (a crash before `mark_sent`), it is
        // recognisably the same mail. The send is a task of its own, which this waits
        // for: a send given up (the timeout, or a lost lease ending this delivery) runs
        // on to lettre's own end, since a send cut off midway would return its
        // connection to the pool in the middle of a transaction.
        let send = {
            let (mailer, id) = (self.deps.mailer.clone(), row.id.clone());
            tokio::spawn(async move { mailer.send_as(&email, &id).await })
        };
        let sent = match tokio::time::timeout(SEND_TIMEOUT, send).await {
            Ok(Ok(sent)) => Ok(sent),
            Ok(Err(joined)) => Ok(Err(MailError::Transient(format!(
                "the send failed: {joined}"
            )))),
            Err(elapsed) => Err(elapsed),
        };
        match sent {
            Ok(Ok(())) => {
                if self.mark_sent(&row).await {
                    Counters::inc(&self.core().counters.mails_sent);
                    tracing::info!("mail sent")
                }
            }
            Ok(Err(MailError::Transient(e))) => self.finish_retry(&row, &e).await,
            Ok(Err(e)) => self.finish_failed(&row, &e.to_string()).await,
            Err(_) => self.finish_retry(&row, "timed out").await,
        }
    }

    async fn finish_retry(&self, row: &outbox::OutboxRow, error: &str) {
        let now = self.now().millis();
        if now - row.created_at >= GIVE_UP_AFTER_MS {
            self.finish_failed(row, &format!("still failing after 24 h: {error}"))
                .await;
            return;
        }
        let next = now + backoff_ms(row.attempts);
        let (id, worker, err) = (row.id.clone(), self.id.clone(), error.to_owned());
        let _ = self
            .core()
            .store
            .run(move |c| outbox::mark_retry(c, &id, &worker, next, &err))
            .await;
        tracing::warn!(error = %error, retry_in_ms = next - now, channel = self.name(), "delivery failed; will retry");
    }

    async fn finish_failed(&self, row: &outbox::OutboxRow, error: &str) {
        let (id, worker, err) = (row.id.clone(), self.id.clone(), error.to_owned());
        let now = self.now().millis();
        let _ = self
            .core()
            .store
            .run(move |c| outbox::mark_failed(c, &id, &worker, now, &err))
            .await;
        match self.channel {
            Channel::Mail => Counters::inc(&self.core().counters.mails_failed),
            Channel::Webhooks => Counters::inc(&self.core().counters.webhooks_failed),
        }
        tracing::error!(error = %error, channel = self.name(), "delivery given up");
    }
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
}
