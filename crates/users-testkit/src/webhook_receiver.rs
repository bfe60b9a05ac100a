//! A webhook receiver on loopback, as a product would run one: it checks each
//! delivery's Standard Webhooks signature with its own HMAC-SHA256 (nothing of the
//! service's code), answers 401 to a bad one, and can be told to fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One delivery attempt as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub body: String,
    /// Whether the signature verified.
    pub signed: bool,
    /// Whether the receiver answered 2xx.
    pub accepted: bool,
    /// The W3C `traceparent` header, if the attempt carried one.
    pub traceparent: Option<String>,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    deliveries: Mutex<Vec<Delivery>>,
    failures_left: AtomicUsize,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

/// The signature Standard Webhooks defines, computed here independently.
pub fn sign(secret_b64: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret_b64.trim_start_matches("whsec_"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
    secret: web::Data<String>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let body = String::from_utf8_lossy(&body).into_owned();
    let expected = sign(&secret, &id, &timestamp, &body);
    // the header may carry several space-separated signatures
    let signed = header("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()));
    let failing = shared
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let accepted = signed && !failing && header("content-type") == "application/json";
    let traceparent = Some(header("traceparent")).filter(|t| !t.is_empty());
    shared.deliveries.lock().expect("lock").push(Delivery {
        id,
        timestamp,
        body,
        signed,
        accepted,
        traceparent,
    });
    if !signed {
        HttpResponse::Unauthorized().finish()
    } else if !accepted {
        HttpResponse::ServiceUnavailable().finish()
    } else {
        HttpResponse::NoContent().finish()
    }
}

impl Receiver {
    /// A receiver on a random port.
    pub async fn start(secret: &str) -> Receiver {
        Receiver::start_on(0, secret).await
    }

    /// A receiver on `port` (a URL the service was given while nothing listened). It
    /// answers at `url` and at every other path of its address.
    pub async fn start_on(port: u16, secret: &str) -> Receiver {
        let shared = web::Data::new(Shared::default());
        let secret = web::Data::new(secret.to_owned());
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(secret.clone())
                // any path: a receiver's URL may carry its own token
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", port))
        .expect("bind the receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            shared: shared.into_inner(),
            handle,
        }
    }

    /// Answers 503 to the next `n` deliveries.
    pub fn fail_next(&self, n: usize) {
        self.shared.failures_left.store(n, Ordering::SeqCst);
    }

    /// Every attempt so far.
    pub fn attempts(&self) -> Vec<Delivery> {
        self.shared.deliveries.lock().expect("lock").clone()
    }

    /// The deliveries answered 2xx.
    pub fn accepted(&self) -> Vec<Delivery> {
        self.attempts().into_iter().filter(|d| d.accepted).collect()
    }

    /// Waits until `n` deliveries were accepted; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} of {n} webhooks arrived: {:?}",
                    accepted.len(),
                    self.attempts()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // the stop command is sent now; its completion is not awaited
        drop(self.handle.stop(false));
    }
}
