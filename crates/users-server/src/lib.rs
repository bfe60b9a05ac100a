//! The `users` HTTP service: fastapi-users-compatible registration, JWT login/logout,
//! `/users/me` and the admin routes, on actix-web.
//!
//! [`startup::Application::build`] assembles everything (database, migrations, secret,
//! hasher, routes, listener); the binary and the integration tests both use it.

pub mod accounts;
pub mod auth;
pub mod body;
pub mod cli;
pub mod error;
pub mod google;
pub mod hashing;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tokens;

pub use settings::Settings;
pub use startup::{configure, Application};
