//! Where the data is: `DATABASE_*`.

use std::time::Duration;

use users_core::db::{DatabaseUrl, PoolOptions};

use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::text(
        "DATABASE_URL",
        // a SQLite file in the working directory
        WhenUnset::Value("sqlite://users.db"),
        "sqlite://<path> or postgres://user:pass@host:port/db",
        "the database; migrations run at start",
    ),
    Variable::number(
        "DATABASE_MAX_CONNECTIONS",
        10,
        1..=1000,
        "connection pool size",
    ),
    Variable::number(
        "DATABASE_TIMEOUT_SECONDS",
        5,
        1..=300,
        "how long a request waits for a connection before a 503",
    ),
];

#[derive(Debug, Clone)]
pub struct Database {
    pub database_url: DatabaseUrl,
    pub pool: PoolOptions,
}

impl Database {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let database_url =
            DatabaseUrl::parse(&env.text("DATABASE_URL")?).map_err(|m| err("DATABASE_URL", m))?;
        let pool = PoolOptions {
            max_connections: env.number("DATABASE_MAX_CONNECTIONS")?,
            acquire_timeout: Duration::from_secs(env.number("DATABASE_TIMEOUT_SECONDS")?),
            ..PoolOptions::default()
        };
        Ok(Database { database_url, pool })
    }
}
