//! Integration tests: the real server on a random port, over HTTP, on SQLite and on
//! PostgreSQL. One binary (see users-server's Cargo.toml).

// Tests stand outside the service: they read the real clock to date the tokens and
// times they make (the service itself takes `now` as a parameter, see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

// The stand-ins of the outside world (users-testkit), under the names the tests use.
use users_testkit::{
    authenticator, github_provider, oidc_provider, otlp_receiver, smtp_sink, totp, webhook_receiver,
};

mod helpers;
mod provider_flow;
mod venvs;

mod admin;
mod api_keys;
mod browser;
mod cli;
mod consistency;
mod cross_site;
mod dependencies;
mod deploy;
mod docs;
mod events;
mod faults;
mod forwarded_for;
mod github;
mod google;
mod guessing;
mod identities;
mod import;
mod jwks;
mod lengths;
mod limits;
mod login;
mod mail;
mod mfa;
mod oauth_provider;
mod ops;
mod passkeys;
mod processes;
mod providers;
mod python_relying_party;
mod register;
mod replicas;
mod roles;
mod sessions;
mod structure;
mod takeover;
mod tokens;
mod traces;
mod users_me;
