//! Integration tests: the real server on a random port, over HTTP, on SQLite and on
//! PostgreSQL. One binary (see users-server's Cargo.toml).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authenticator;
mod github_provider;
mod helpers;
mod oidc_provider;
mod provider_flow;
mod smtp_sink;
mod totp;
mod webhook_receiver;

mod admin;
mod browser;
mod cli;
mod consistency;
mod dependencies;
mod deploy;
mod events;
mod faults;
mod github;
mod google;
mod identities;
mod import;
mod jwks;
mod limits;
mod login;
mod mail;
mod mfa;
mod ops;
mod passkeys;
mod processes;
mod providers;
mod register;
mod replicas;
mod sessions;
mod tokens;
mod users_me;
