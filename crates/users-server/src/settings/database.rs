//! Where the data is: `DATABASE_*`.

use std::time::Duration;

use users_db::{DatabaseUrl, PoolOptions};

use super::{err, Env, SettingsError};

/// The default `DATABASE_URL`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://users.db";

#[derive(Debug, Clone)]
pub struct Database {
    pub database_url: DatabaseUrl,
    pub pool: PoolOptions,
}

impl Database {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let database_url = env.get("DATABASE_URL")?;
        let database_url =
            DatabaseUrl::parse(database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL))
                .map_err(|m| err("DATABASE_URL", m))?;
        let pool = PoolOptions {
            max_connections: env.parse_in("DATABASE_MAX_CONNECTIONS", 10, 1..=1000)?,
            acquire_timeout: Duration::from_secs(env.parse_in(
                "DATABASE_TIMEOUT_SECONDS",
                5,
                1..=300,
            )?),
            ..PoolOptions::default()
        };
        Ok(Database { database_url, pool })
    }
}
