//! Traces over OpenTelemetry (docs/operations.md#traces): the real binary exports its
//! spans to a loopback OTLP/HTTP receiver, which decodes them. Each request is a span
//! with its flow and the flow's database calls below it; a caller's `traceparent` is
//! continued, and the calls the service makes (webhooks, providers) carry the trace on;
//! no password, token or secret is in anything exported; and without the variable
//! nothing is.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::oidc_provider::OidcProvider;
use crate::otlp_receiver::{Receiver as Otlp, Span};
use crate::provider_flow::configure_oidc;
use crate::webhook_receiver::Receiver as Hooks;

const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The caller's trace, as a W3C `traceparent`: version, trace id, parent span id, flags.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// A second caller's trace, for the sign-in at a provider.
const PROVIDER_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{CALLER_SPAN}-01")
}

fn env_with(
    database: &TestDatabase,
    hooks: &Hooks,
    provider: &OidcProvider,
) -> HashMap<String, String> {
    let mut env = process_env(&database.url);
    env.insert("WEBHOOK_URLS".into(), hooks.url.clone());
    env.insert("WEBHOOK_SECRET".into(), HOOK_SECRET.into());
    env.insert("WEBHOOK_EVENTS".into(), "user.registered".into());
    configure_oidc(&mut env, "corp", provider);
    env
}

/// The only span of `spans` named `name` in trace `trace_id`.
fn one<'a>(spans: &'a [Span], trace_id: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} in {trace_id}: {:#?}",
        spans
            .iter()
            .map(|s| (&s.name, &s.trace_id))
            .collect::<Vec<_>>()
    );
    found[0]
}

/// The spans of a trace, for a failure's message.
fn trace<'a>(spans: &'a [Span], trace_id: &str) -> Vec<(&'a str, &'a str, &'a str)> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| {
            (
                s.name.as_str(),
                s.span_id.as_str(),
                s.parent_span_id.as_str(),
            )
        })
        .collect()
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
        .collect()
}

async fn traces_follow_a_request_and_hold_no_secret(backend: Backend) {
    let database = TestDatabase::new(backend);
    let otlp = Otlp::start().await;
    let hooks = Hooks::start(HOOK_SECRET).await;
    let provider = OidcProvider::start().await;
    let mut env = env_with(&database, &hooks, &provider);
    env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp.endpoint.clone());
    env.insert("OTEL_SERVICE_NAME".into(), "users-under-test".into());
    let server = ServerProcess::start(&env);
    let client = reqwest::Client::new();
    let email = unique_email();
    let password = "a password that is never exported 7c1e";

    // a registration, in the caller's trace
    let r = client
        .post(server.url("/auth/register"))
        .header("traceparent", traceparent(TRACE_ID))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let delivery = hooks.wait_for(1, Duration::from_secs(20)).await.remove(0);
    // sign-in, and the user's own page, with the token in the header
    let r = client
        .post(server.url("/auth/jwt/login"))
        .form(&[("username", email.as_str()), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token: Value = r.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let r = client
        .get(server.url("/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // a sign-in at the provider, in another caller's trace
    let r = client
        .get(server.url("/auth/corp/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let (code, state) = provider
        .authorize(body["authorization_url"].as_str().unwrap())
        .await;
    let r = client
        .get(server.url("/auth/corp/callback"))
        .query(&[("code", code.as_str()), ("state", state.as_str())])
        .header("cookie", cookie)
        .header("traceparent", traceparent(PROVIDER_TRACE_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // SIGTERM: what is still buffered is exported before the process ends
    assert!(server.terminate().success());
    let spans = otlp.spans();
    assert!(otlp.exports() > 0);

    // the request span continues the caller's trace, under the caller's span
    let request = one(&spans, TRACE_ID, "POST /auth/register");
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!(request.service_name.as_deref(), Some("users-under-test"));
    assert_eq!(request.attribute("http.request.method"), Some("POST"));
    assert_eq!(request.attribute("url.path"), Some("/auth/register"));
    assert_eq!(request.attribute("http.route"), Some("/auth/register"));
    assert_eq!(request.attribute("http.response.status_code"), Some("201"));
    // request → the route's handler → flow → database
    let handler = one(&spans, TRACE_ID, "register");
    assert_eq!(handler.parent_span_id, request.span_id);
    let flow = one(&spans, TRACE_ID, "register::register");
    assert_eq!(
        flow.parent_span_id,
        handler.span_id,
        "{:#?}",
        trace(&spans, TRACE_ID)
    );
    let below = children(&spans, flow);
    let db: Vec<&&Span> = below.iter().filter(|s| s.name == "db").collect();
    assert!(!db.is_empty(), "no database call below {flow:?}");
    let system = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    };
    for call in &db {
        assert_eq!(call.name, "db");
        assert_eq!(call.kind, 3, "a client span");
        assert_eq!(call.attribute("db.system.name"), Some(system));
    }
    // the webhook of the registration carries the same trace on
    let carried = delivery.traceparent.as_deref().expect("a traceparent");
    let parts: Vec<&str> = carried.split('-').collect();
    assert_eq!(parts.len(), 4, "{carried}");
    assert_eq!(parts[1], TRACE_ID, "{carried}");
    let outbox = one(&spans, TRACE_ID, "outbox");
    assert_eq!(parts[2], outbox.span_id, "{carried}");
    assert_eq!(outbox.parent_span_id, flow.span_id, "raised by the flow");

    // every request has its span; the login's is a trace of its own
    let login = spans
        .iter()
        .find(|s| s.name == "POST /auth/jwt/login")
        .expect("the login's span");
    assert_ne!(login.trace_id, TRACE_ID);
    assert!(login.parent_span_id.is_empty(), "{login:?}");
    let login_flow = one(&spans, &login.trace_id, "auth::login");
    assert_eq!(
        login_flow.parent_span_id,
        one(&spans, &login.trace_id, "login").span_id
    );
    assert_eq!(
        one(&spans, &login.trace_id, "login").parent_span_id,
        login.span_id
    );
    assert!(children(&spans, login_flow).iter().any(|s| s.name == "db"));
    let me = spans
        .iter()
        .find(|s| s.name == "GET /users/me")
        .expect("the span of /users/me");
    assert_eq!(me.attribute("http.response.status_code"), Some("200"));
    assert_eq!(me.attribute("http.route"), Some("/users/me"));
    assert_eq!(me.kind, 2, "a server span");
    assert!(me.parent_span_id.is_empty(), "{me:?}");
    // the request and its flow, and nothing else (the token check's batch has no span)
    let me_flow = one(&spans, &me.trace_id, "auth::authenticate");
    assert_eq!(me_flow.parent_span_id, me.span_id);
    assert_eq!(me_flow.kind, 1, "an internal span");
    assert_eq!(
        trace(&spans, &me.trace_id).len(),
        2,
        "{:#?}",
        trace(&spans, &me.trace_id)
    );

    // the provider's token endpoint was called in the callback's trace
    let exchange = provider.token_requests().pop().expect("a token request");
    let carried = exchange.get("traceparent").expect("a traceparent");
    assert_eq!(
        carried.split('-').nth(1),
        Some(PROVIDER_TRACE_ID),
        "{carried}"
    );
    one(&spans, PROVIDER_TRACE_ID, "GET /auth/{provider}/callback");

    // the receiver sees what it is sent (the check below can fail) ...
    assert!(otlp.contains("users-under-test"));
    assert!(otlp.contains("/auth/register"));
    // ... and no secret: not the password, the token (whole or its signature), the
    // provider's code, client secret or the signing secret of the webhooks
    let signature = token.rsplit('.').next().unwrap();
    for secret in [
        password,
        token.as_str(),
        signature,
        code.as_str(),
        OidcProvider::CLIENT_SECRET,
        HOOK_SECRET,
        &email,
    ] {
        assert!(!otlp.contains(secret), "{secret} was exported");
    }
}

/// Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is exported, even to where the
/// OpenTelemetry SDK would look by itself, and no call carries a `traceparent`.
async fn without_the_endpoint_nothing_is_exported(backend: Backend) {
    let database = TestDatabase::new(backend);
    let otlp = Otlp::start().await;
    let hooks = Hooks::start(HOOK_SECRET).await;
    let provider = OidcProvider::start().await;
    let mut env = env_with(&database, &hooks, &provider);
    env.insert(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(),
        format!("{}/v1/traces", otlp.endpoint),
    );
    let server = ServerProcess::start(&env);
    let r = reqwest::Client::new()
        .post(server.url("/auth/register"))
        .header("traceparent", traceparent(TRACE_ID))
        .json(&json!({"email": unique_email(), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let delivery = hooks.wait_for(1, Duration::from_secs(20)).await.remove(0);
    assert_eq!(delivery.traceparent, None);
    assert!(server.terminate().success());
    assert_eq!(otlp.exports(), 0);
}

both_backends!(
    traces_follow_a_request_and_hold_no_secret,
    without_the_endpoint_nothing_is_exported
);
