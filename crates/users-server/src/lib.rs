//! The `users` HTTP service on actix-web: fastapi-users-compatible registration, JWT
//! login/logout, `/users/me`, the admin routes, the mail flows and provider sign-in.
//!
//! This crate only parses, authenticates, calls one flow of `users-core` and maps its
//! outcome to a status and a `detail` (in `outcome.rs`, nowhere else).
//! [`startup::Application::build`] assembles everything (the core, routes, listener);
//! the binary and the integration tests both use it.

pub mod answers;
pub mod auth;
pub mod bodies;
pub mod cli;
pub mod client_ip;
pub mod codes;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod outcome;
pub mod rate_limit;
pub mod routes;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use settings::Settings;
pub use startup::{configure, Application};
