//! Webhooks (docs/audit-and-webhooks.md) the Standard Webhooks way: each attempt is a POST
//! of the event's JSON with `webhook-id` (the event id, the same on every attempt, so a
//! receiver drops repeats), `webhook-timestamp` (the attempt's Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the key
//! `WEBHOOK_SECRET` (`whsec_<base64>`). A 2xx answer is delivery; anything else, or no
//! answer within the timeout, is tried again later by the outbox worker.

use std::time::Duration;

use base64::Engine;

use crate::events::WebhookDelivery;
use users_domain::crypto::hmac256;

/// How long one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads `WEBHOOK_SECRET`: `whsec_` and the base64 of the key (the prefix may be left
/// out, as Standard Webhooks libraries allow).
pub fn parse_secret(value: &str) -> Result<Vec<u8>, String> {
    let b64 = value.trim().strip_prefix("whsec_").unwrap_or(value.trim());
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "must be `whsec_` followed by the base64 of a random key".to_owned())?;
    if key.is_empty() {
        return Err("the key is empty".to_owned());
    }
    Ok(key)
}

/// `v1,<base64 signature>` of one attempt.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mac = hmac256(
        secret,
        &[
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body.as_bytes(),
        ],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// Why an attempt did not deliver (every reason is tried again). It names the receiver
/// by its host alone: it is logged and kept in the outbox row's `last_error`, and a
/// receiver's URL may carry its token in the path or the query.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AttemptFailed(pub String);

/// The HTTP client of every attempt: no redirects (a receiver answers itself), no
/// cookies, a short timeout.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("users-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// One attempt at delivering `delivery`, signed now.
pub async fn attempt(
    client: &reqwest::Client,
    secret: &[u8],
    delivery: &WebhookDelivery,
    now_secs: i64,
) -> Result<(), AttemptFailed> {
    let sig = signature(secret, &delivery.event_id, now_secs, &delivery.body);
    let host = host_of(&delivery.url);
    let mut request = client.post(&delivery.url);
    // the trace this attempt belongs to (nothing while traces are off)
    for (name, value) in users_domain::trace_context::headers() {
        request = request.header(name, value);
    }
    let answer = request
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", now_secs.to_string())
        .header("webhook-signature", sig)
        .body(delivery.body.clone())
        .send()
        .await
        .map_err(|e| AttemptFailed(format!("{host}: {}", describe(e))))?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(AttemptFailed(format!(
            "{host}: the receiver answered {}",
            answer.status()
        )))
    }
}

/// The host (and port, if the URL names one) of a receiver's URL: never its path or
/// query, nor the `user:password@` an authority may hold.
pub fn host_of(url: &str) -> String {
    let parsed = reqwest::Url::parse(url).ok();
    match parsed.as_ref().map(|u| (u.host_str(), u.port())) {
        Some((Some(host), Some(port))) => format!("{host}:{port}"),
        Some((Some(host), None)) => host.to_owned(),
        _ => "(a URL without a host)".to_owned(),
    }
}

/// What went wrong, without the URL: reqwest's errors print the whole URL, so this
/// says the kind of failure, the error stripped of its URL, and the I/O error beneath
/// it if there is one ("Connection refused"), whose text holds no URL.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    let mut io = None;
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<std::io::Error>() {
            io = Some(found);
        }
        cause = c.source();
    }
    match io {
        Some(io) => format!("{kind}: {e} ({io})"),
        None => format!("{kind}: {e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        let secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn receivers_are_named_by_their_host_only() {
        for (url, host) in [
            (
                "https://hooks.example.com/t/0123secret?token=abc",
                "hooks.example.com",
            ),
            ("http://127.0.0.1:9000/hook/secret", "127.0.0.1:9000"),
            (
                "https://user:pass@hooks.example.com:8443/x?y=z",
                "hooks.example.com:8443",
            ),
            ("http://[2001:db8::1]:8080/p?q", "[2001:db8::1]:8080"),
            ("https://hooks.example.com:443/x", "hooks.example.com"),
            ("not a url/secret", "(a URL without a host)"),
        ] {
            assert_eq!(host_of(url), host, "{url}");
        }
    }

    /// A receiver that refuses the connection: the failure names the host, says why,
    /// and holds nothing of the path or the query.
    #[tokio::test]
    async fn a_failed_attempt_names_the_host_only() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let delivery = WebhookDelivery {
            url: format!("http://127.0.0.1:{port}/hooks/path-secret?token=query-secret"),
            event_id: "evt".to_owned(),
            body: "{}".to_owned(),
            trace_context: Vec::new(),
        };
        let failed = attempt(&client().unwrap(), b"key", &delivery, 0)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            failed.starts_with(&format!("127.0.0.1:{port}: cannot connect")),
            "{failed}"
        );
        assert!(
            !failed.contains("secret") && !failed.contains("/hooks"),
            "{failed}"
        );
    }

    #[test]
    fn secrets_need_base64() {
        assert!(parse_secret("whsec_not base64!").is_err());
        assert!(parse_secret("whsec_").is_err());
        assert_eq!(parse_secret("AAEC").unwrap(), vec![0, 1, 2]);
    }
}
