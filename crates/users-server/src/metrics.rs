//! Prometheus metrics, kept in process and rendered in the text exposition format at
//! `/metrics`. Routes are labelled by their pattern (`/users/{id}`), never the raw
//! path, so ids do not explode the number of series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use users_core::Counters;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A counter family: name, help text, and each labelled series.
type Family<'a> = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'a AtomicU64)>,
);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Gauges read at scrape time.
pub struct Gauges {
    pub outbox_pending: Option<i64>,
    pub webhooks_pending: Option<i64>,
    pub pool_connections: u32,
    pub pool_idle: u32,
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_owned(), method.to_owned(), status))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_owned()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// The text exposition of the request metrics, the flows' counters and `gauges`.
    pub fn render(&self, c: &Counters, gauges: &Gauges) -> String {
        let mut out = String::new();
        self.write_requests(&mut out);
        self.write_latency(&mut out);
        let counters = account_and_mail_counters(c)
            .into_iter()
            .chain(session_and_check_counters(c));
        for (name, help, series) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (labels, v) in series {
                let v = Counters::get(v);
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP users_events_total Audit events written by this process, by type."
        );
        let _ = writeln!(out, "# TYPE users_events_total counter");
        for (kind, n) in c.events_by_type() {
            let _ = writeln!(out, "users_events_total{{type=\"{kind}\"}} {n}");
        }
        write_gauges(&mut out, gauges);
        out
    }

    /// `users_http_requests_total`, by route pattern, method and status.
    fn write_requests(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP users_http_requests_total HTTP requests by route pattern, method and status."
        );
        let _ = writeln!(out, "# TYPE users_http_requests_total counter");
        if let Ok(r) = self.requests.lock() {
            for ((route, method, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "users_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    label(route),
                    label(method)
                );
            }
        }
    }

    /// `users_http_request_duration_seconds`, a histogram per route pattern.
    fn write_latency(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP users_http_request_duration_seconds HTTP request latency by route pattern."
        );
        let _ = writeln!(out, "# TYPE users_http_request_duration_seconds histogram");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                let route = label(route);
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "users_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(out, "users_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(
                    out,
                    "users_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "users_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
    }
}

/// The flows' counters of accounts and mail, in the order they are rendered.
fn account_and_mail_counters(c: &Counters) -> [Family<'_>; 6] {
    [
    (
        "users_logins_total",
        "Password logins by outcome.",
        vec![
            ("result=\"success\"", &c.logins_succeeded),
            ("result=\"failure\"", &c.logins_failed),
        ],
    ),
    (
        "users_registrations_total",
        "Users registered (API and command line).",
        vec![("", &c.registrations)],
    ),
    (
        "users_mails_queued_total",
        "Mails (and mail requests) written to the outbox.",
        vec![("", &c.mails_queued)],
    ),
    (
        "users_mails_sent_total",
        "Mails accepted by the mail server or written to MAIL_DIR.",
        vec![("", &c.mails_sent)],
    ),
    (
        "users_mails_failed_total",
        "Mails given up.",
        vec![("", &c.mails_failed)],
    ),
    (
        "users_mails_over_quota_total",
        "Reset and verification mails not sent: the address had its quota in the last 15 minutes.",
        vec![("", &c.mails_over_quota)],
    ),
    ]
}

/// The flows' counters of sessions, second factors, token checks and webhooks, rendered
/// after [`account_and_mail_counters`].
fn session_and_check_counters(c: &Counters) -> [Family<'_>; 9] {
    [
    (
        "users_sessions_started_total",
        "Sessions started (sign-ins of every kind).",
        vec![("", &c.sessions_started)],
    ),
    (
        "users_refreshes_total",
        "Refresh-token requests by outcome: rotated; converged (a spent token within the reuse interval got the current one); reused (a spent token later: the session was ended, theft suspected); invalid.",
        vec![
            ("result=\"rotated\"", &c.refreshes_rotated),
            ("result=\"converged\"", &c.refreshes_converged),
            ("result=\"reused\"", &c.refresh_reuse_detected),
            ("result=\"invalid\"", &c.refreshes_invalid),
        ],
    ),
    (
        "users_mfa_enabled_total",
        "TOTP enrolments confirmed.",
        vec![("", &c.mfa_enabled)],
    ),
    (
        "users_mfa_checks_total",
        "Second-factor checks (sign-in second steps, and codes to disable TOTP or renew recovery codes) by outcome.",
        vec![
            ("result=\"success\"", &c.mfa_successes),
            ("result=\"failure\"", &c.mfa_failures),
        ],
    ),
    (
        "users_passkey_sign_ins_total",
        "Passwordless sign-ins with a passkey by outcome.",
        vec![
            ("result=\"success\"", &c.passkey_sign_ins),
            ("result=\"failure\"", &c.passkey_failures),
        ],
    ),
    (
        "users_token_checks_total",
        "Access-token checks (user, session, revocation) made against the database.",
        vec![("", &c.token_checks)],
    ),
    (
        "users_token_check_batches_total",
        "Statements that answered those checks: concurrent checks share one.",
        vec![("", &c.token_check_batches)],
    ),
    (
        "users_webhooks_delivered_total",
        "Webhook deliveries a receiver answered with 2xx.",
        vec![("", &c.webhooks_delivered)],
    ),
    (
        "users_webhooks_failed_total",
        "Webhook deliveries given up after 24 hours of failures.",
        vec![("", &c.webhooks_failed)],
    ),
    ]
}

/// The outbox and pool gauges, read at scrape time.
fn write_gauges(out: &mut String, gauges: &Gauges) {
    let _ = writeln!(
        out,
        "# HELP users_outbox_pending Mails waiting in the outbox (all replicas)."
    );
    let _ = writeln!(out, "# TYPE users_outbox_pending gauge");
    if let Some(n) = gauges.outbox_pending {
        let _ = writeln!(out, "users_outbox_pending {n}");
    }
    let _ = writeln!(
        out,
        "# HELP users_webhooks_pending Webhook deliveries waiting in the outbox (all replicas)."
    );
    let _ = writeln!(out, "# TYPE users_webhooks_pending gauge");
    if let Some(n) = gauges.webhooks_pending {
        let _ = writeln!(out, "users_webhooks_pending {n}");
    }
    let _ = writeln!(
        out,
        "# HELP users_db_pool_connections Database connections of this process by state."
    );
    let _ = writeln!(out, "# TYPE users_db_pool_connections gauge");
    let in_use = gauges.pool_connections.saturating_sub(gauges.pool_idle);
    let _ = writeln!(
        out,
        "users_db_pool_connections{{state=\"in_use\"}} {in_use}"
    );
    let _ = writeln!(
        out,
        "users_db_pool_connections{{state=\"idle\"}} {}",
        gauges.pool_idle
    );
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let c = Counters::default();
        m.observe_request("/users/{id}", "GET", 200, 0.003);
        m.observe_request("/users/{id}", "GET", 200, 0.2);
        Counters::inc(&c.logins_failed);
        let text = m.render(
            &c,
            &Gauges {
                outbox_pending: Some(2),
                webhooks_pending: Some(0),
                pool_connections: 3,
                pool_idle: 1,
            },
        );
        assert!(text.contains(
            "users_http_requests_total{route=\"/users/{id}\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "users_http_request_duration_seconds_bucket{route=\"/users/{id}\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "users_http_request_duration_seconds_bucket{route=\"/users/{id}\",le=\"0.25\"} 2"
        ));
        assert!(text.contains("users_http_request_duration_seconds_count{route=\"/users/{id}\"} 2"));
        assert!(text.contains("users_logins_total{result=\"failure\"} 1"));
        assert!(text.contains("users_outbox_pending 2"));
        assert!(text.contains("users_webhooks_pending 0"));
        assert!(text.contains("users_events_total{type=\"user.login_failed\"} 0"));
        assert!(text.contains("users_db_pool_connections{state=\"in_use\"} 2"));
    }
}
