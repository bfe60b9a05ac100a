//! Operations on a database server rather than on the service's tables: creating and
//! dropping PostgreSQL databases, and a plain SQL session. Used by the test harness and
//! operational tooling, so that no crate above this one needs Diesel.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::{DatabaseUrl, DbConnection, DbError};

/// Creates the database `name` on the PostgreSQL server at `server_url`
/// (`postgres://user@host:port`, no database part).
pub fn create_postgres_database(server_url: &str, name: &str) -> Result<(), DbError> {
    let mut admin = admin_connection(server_url)?;
    admin.batch_execute(&format!("CREATE DATABASE \"{}\"", quote_ident(name)))?;
    Ok(())
}

/// Drops the database `name` (and every connection to it), if it exists.
pub fn drop_postgres_database(server_url: &str, name: &str) -> Result<(), DbError> {
    let mut admin = admin_connection(server_url)?;
    admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        quote_ident(name)
    ))?;
    Ok(())
}

fn admin_connection(server_url: &str) -> Result<diesel::PgConnection, DbError> {
    let url = format!("{}/postgres", server_url.trim_end_matches('/'));
    diesel::PgConnection::establish(&url).map_err(|e| DbError::Open(e.to_string()))
}

fn quote_ident(name: &str) -> String {
    name.replace('"', "\"\"")
}

/// One connection of its own to a database of either backend, for statements the
/// repository functions do not offer (locks in fault tests, say).
pub struct SqlSession {
    conn: DbConnection,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl SqlSession {
    pub fn open(url: &str) -> Result<SqlSession, DbError> {
        let parsed = DatabaseUrl::parse(url).map_err(DbError::Open)?;
        let conn = match parsed {
            DatabaseUrl::Sqlite(path) => DbConnection::Sqlite(
                diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(|e| DbError::Open(e.to_string()))?,
            ),
            DatabaseUrl::Postgres(_) => DbConnection::Postgresql(
                diesel::PgConnection::establish(url).map_err(|e| DbError::Open(e.to_string()))?,
            ),
        };
        Ok(SqlSession { conn })
    }

    /// Runs statements separated by `;`.
    pub fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.batch_execute(sql)?;
        Ok(())
    }

    /// The single integer a query such as `SELECT count(*) AS n FROM …` answers; the
    /// column must be named `n`.
    pub fn count(&mut self, sql: &str) -> Result<i64, DbError> {
        let row: Count = diesel::sql_query(sql).get_result(&mut self.conn)?;
        Ok(row.n)
    }

    /// The connection, for the repository functions of this crate.
    pub fn connection(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}
