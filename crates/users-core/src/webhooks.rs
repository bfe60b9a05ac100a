//! Webhooks (docs/audit-and-webhooks.md) the Standard Webhooks way: each attempt is a POST
//! of the event's JSON with `webhook-id` (the event id, the same on every attempt, so a
//! receiver drops repeats), `webhook-timestamp` (the attempt's Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the key
//! `WEBHOOK_SECRET` (`whsec_<base64>`). A 2xx answer is delivery; anything else, or no
//! answer within the timeout, is tried again later by the outbox worker.

use std::time::Duration;

use base64::Engine;

use crate::events::WebhookDelivery;
use crate::tokens::hmac256;

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

/// Why an attempt did not deliver (every reason is tried again).
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
    let answer = client
        .post(&delivery.url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", now_secs.to_string())
        .header("webhook-signature", sig)
        .body(delivery.body.clone())
        .send()
        .await
        .map_err(|e| AttemptFailed(describe(&e)))?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(AttemptFailed(format!(
            "the receiver answered {}",
            answer.status()
        )))
    }
}

/// A reqwest error without its URL's query (which could hold a token of the receiver).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match e.url() {
        Some(u) => format!("{kind}: {}://{}{}", u.scheme(), u.authority(), u.path()),
        None => kind.to_owned(),
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
    fn secrets_need_base64() {
        assert!(parse_secret("whsec_not base64!").is_err());
        assert!(parse_secret("whsec_").is_err());
        assert_eq!(parse_secret("AAEC").unwrap(), vec![0, 1, 2]);
    }
}
