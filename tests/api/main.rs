//! Integration tests: the real server on a random port, over HTTP, on SQLite and on
//! PostgreSQL. One binary (see users-server's Cargo.toml).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod oidc_provider;
mod smtp_sink;

mod admin;
mod browser;
mod cli;
mod deploy;
mod faults;
mod google;
mod import;
mod limits;
mod login;
mod mail;
mod ops;
mod processes;
mod register;
mod sessions;
mod tokens;
mod users_me;
