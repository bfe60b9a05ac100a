//! Persistence for the `users` service.
//!
//! One Diesel [`DbConnection`] (a `MultiConnection` over PostgreSQL and SQLite) so a
//! single binary serves `sqlite://` and `postgres://` URLs; an r2d2 pool whose manager
//! picks the backend from the URL scheme; migrations for both backends embedded in the
//! binary and run at start; repository functions that take `&mut DbConnection` and
//! return `QueryResult`. Blocking by nature: callers run these off the async executor.

pub mod admin;
pub mod api_keys;
pub mod audit;
mod effects;
pub mod fastapi_users;
pub mod guards;
pub mod import;
pub mod limits;
pub mod mfa;
pub mod oauth;
pub mod outbox;
pub mod passkeys;
mod pool;
pub mod revocations;
pub mod roles;
mod rows;
pub mod schema;
pub mod sessions;
pub mod shared;
pub mod sign_in;
pub mod signing_keys;
pub mod upstream;
pub mod users;

pub use effects::{Effects, Happened};

pub use pool::{
    check_ready, in_write_transaction, is_transaction_conflict, is_unique_violation,
    migration_names, run_migrations, Conn, Database, DatabaseUrl, DbConnection, DbError, Manager,
    PoolOptions, PooledConnection,
};
