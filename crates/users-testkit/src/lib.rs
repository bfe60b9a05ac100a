//! The outside world as the tests of `users` meet it, for real over the loopback: an SMTP
//! sink that speaks SMTP, an OpenID provider and a GitHub with their real protocols and
//! paths, a webhook receiver that checks Standard Webhooks signatures, an OTLP/HTTP receiver
//! that decodes exported traces, a software WebAuthn
//! authenticator, and RFC 6238 codes. Shared by the API tests and the crates' own tests as
//! a dev-dependency (never part of the service).

// Test support: a stand-in that cannot do what a test asked of it should stop the test
// at once, and it dates what it signs by the real clock (the service takes `now`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

pub mod authenticator;
pub mod github_provider;
pub mod oidc_provider;
pub mod otlp_receiver;
pub mod smtp_sink;
pub mod totp;
pub mod webhook_receiver;
