//! Reading a database that fastapi-users (fastapi-users-db-sqlalchemy) wrote: the
//! tables `user` and `oauth_account`, on SQLite or PostgreSQL. The database is not
//! ours: it is opened read-only (SQLite `mode=ro` and `query_only`; a PostgreSQL
//! session whose transactions are read-only) and only ever SELECTed from.
//!
//! On SQLite the ids are `CHAR(36)` text and the booleans 0/1; on PostgreSQL `uuid` and
//! `boolean`. The queries cast the ids to text so that one row type serves both; rows
//! come in id order, page by page (keyset), so a table of any size streams.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use secrecy::{ExposeSecret, SecretString};

use crate::{DatabaseUrl, DbConnection};

/// The columns of `user` the import reads.
pub const USER_COLUMNS: [&str; 6] = [
    "id",
    "email",
    "hashed_password",
    "is_active",
    "is_superuser",
    "is_verified",
];
/// The columns of `oauth_account` the import reads.
pub const OAUTH_ACCOUNT_COLUMNS: [&str; 5] =
    ["id", "user_id", "oauth_name", "account_id", "account_email"];

/// Translates the SQLAlchemy URL a fastapi-users app was configured with into a URL we
/// can open: `sqlite[+driver]:///relative.db`, `sqlite[+driver]:////abs/path.db`,
/// `postgresql[+driver]://user:pass@host:port/db` (asyncpg's `ssl=` query becomes
/// libpq's `sslmode=`), or `postgres://…` as it is.
pub fn translate_url(sqlalchemy_url: &str) -> Result<DatabaseUrl, String> {
    let url = sqlalchemy_url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(
            "expected an SQLAlchemy URL such as sqlite+aiosqlite:///./app.db or postgresql+asyncpg://user:pass@host/db"
                .into(),
        );
    };
    let dialect = scheme.split('+').next().unwrap_or_default();
    match dialect {
        "sqlite" => {
            let path = rest.split('?').next().unwrap_or_default();
            // SQLAlchemy: sqlite:// (nothing after) is an in-memory database, and the
            // path follows the third slash: sqlite:///rel.db, sqlite:////abs.db
            let Some(path) = path.strip_prefix('/') else {
                return Err(if path.is_empty() {
                    "sqlite:// alone is an in-memory database: give the file, sqlite:///./app.db (relative) or sqlite:////abs/app.db (absolute)".into()
                } else {
                    format!("a SQLite URL has no host: sqlite:///{path} for a relative path, sqlite:////{path} for an absolute one")
                });
            };
            if path.is_empty() || path == ":memory:" {
                return Err("an in-memory SQLite database holds no users: give the file, sqlite:///./app.db or sqlite:////abs/app.db".into());
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        }
        "postgresql" | "postgres" => {
            let (location, query) = match rest.split_once('?') {
                Some((l, q)) => (l, Some(q)),
                None => (rest, None),
            };
            let mut out = format!("postgres://{location}");
            if let Some(query) = query {
                let params: Vec<String> = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| match p.split_once('=') {
                        // asyncpg's ssl= is libpq's sslmode=
                        Some(("ssl", "true")) => "sslmode=require".to_owned(),
                        Some(("ssl", "false")) => "sslmode=disable".to_owned(),
                        Some(("ssl", mode)) => format!("sslmode={mode}"),
                        _ => p.to_owned(),
                    })
                    .collect();
                if !params.is_empty() {
                    out.push('?');
                    out.push_str(&params.join("&"));
                }
            }
            Ok(DatabaseUrl::Postgres(SecretString::from(out)))
        }
        other => Err(format!(
            "the `{other}` dialect is not supported: a fastapi-users database on SQLite or PostgreSQL is"
        )),
    }
}

/// Why a source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file or server cannot be opened (missing file, not a database, refused
    /// connection, bad credentials).
    #[error("{0}")]
    Open(String),
    /// It opens, but is not a fastapi-users database: a table or column is missing.
    #[error("{0}")]
    Schema(String),
    #[error("reading it failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// A row of `user`. Its `Debug` leaves the password hash out.
#[derive(Clone, QueryableByName)]
pub struct SourceUser {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Text)]
    pub hashed_password: String,
    #[diesel(sql_type = Bool)]
    pub is_active: bool,
    #[diesel(sql_type = Bool)]
    pub is_superuser: bool,
    #[diesel(sql_type = Bool)]
    pub is_verified: bool,
}

impl std::fmt::Debug for SourceUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceUser")
            .field("id", &self.id)
            .field("is_active", &self.is_active)
            .field("is_superuser", &self.is_superuser)
            .field("is_verified", &self.is_verified)
            .finish_non_exhaustive()
    }
}

/// A row of `oauth_account` (the provider's tokens are not read: we never store them).
#[derive(Debug, Clone, QueryableByName)]
pub struct SourceAccount {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = Text)]
    pub oauth_name: String,
    #[diesel(sql_type = Text)]
    pub account_id: String,
    #[diesel(sql_type = Text)]
    pub account_email: String,
}

/// The id and email of a `user` row: what finding duplicates needs.
#[derive(Debug, Clone, QueryableByName)]
pub struct SourceEmail {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub email: String,
}

/// Users in id order, and the OAuth accounts of exactly those users.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub users: Vec<SourceUser>,
    pub accounts: Vec<SourceAccount>,
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
}

/// A fastapi-users database, open read-only, its tables checked.
pub struct Source {
    conn: DbConnection,
    /// An app without the OAuth extension has no `oauth_account` table.
    has_oauth_accounts: bool,
}

impl Source {
    /// Opens the database read-only and checks that `user` (and `oauth_account`, when
    /// there is one) has every column the import reads.
    pub fn open(url: &DatabaseUrl) -> Result<Source, SourceError> {
        let mut conn = match url {
            DatabaseUrl::Sqlite(path) => open_sqlite(path)?,
            DatabaseUrl::Postgres(secret) => {
                let mut pg =
                    diesel::PgConnection::establish(secret.expose_secret()).map_err(|e| {
                        SourceError::Open(format!("cannot connect to {}: {e}", url.redacted()))
                    })?;
                pg.batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
                DbConnection::Postgresql(pg)
            }
        };
        let user_columns = columns(&mut conn, "user").map_err(|e| match url {
            DatabaseUrl::Sqlite(path) => {
                SourceError::Open(format!("{} is not a SQLite database: {e}", path.display()))
            }
            DatabaseUrl::Postgres(_) => SourceError::Query(e),
        })?;
        if user_columns.is_empty() {
            return Err(SourceError::Schema(
                "not a fastapi-users database: it has no table \"user\"".into(),
            ));
        }
        check_columns("user", &user_columns, &USER_COLUMNS)?;
        let oauth_columns = columns(&mut conn, "oauth_account")?;
        let has_oauth_accounts = !oauth_columns.is_empty();
        if has_oauth_accounts {
            check_columns("oauth_account", &oauth_columns, &OAUTH_ACCOUNT_COLUMNS)?;
        }
        Ok(Source {
            conn,
            has_oauth_accounts,
        })
    }

    /// Whether the database has an `oauth_account` table (the OAuth extension).
    pub fn has_oauth_accounts(&self) -> bool {
        self.has_oauth_accounts
    }

    /// Every user's id and email, for finding the emails that differ only in case.
    pub fn emails(&mut self) -> Result<Vec<SourceEmail>, SourceError> {
        Ok(
            diesel::sql_query("SELECT CAST(id AS TEXT) AS id, email FROM \"user\"")
                .load(&mut self.conn)?,
        )
    }

    /// The next `limit` users in id order after the id `after` (from the start when
    /// `None`), with their OAuth accounts.
    pub fn page(&mut self, after: Option<&str>, limit: usize) -> Result<Page, SourceError> {
        let pg = matches!(self.conn, DbConnection::Postgresql(_));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let select = "SELECT CAST(id AS TEXT) AS id, email, hashed_password, is_active, \
                      is_superuser, is_verified FROM \"user\"";
        let users: Vec<SourceUser> = match (after, pg) {
            (None, true) => diesel::sql_query(format!("{select} ORDER BY id LIMIT $1"))
                .bind::<BigInt, _>(limit)
                .load(&mut self.conn)?,
            (None, false) => diesel::sql_query(format!("{select} ORDER BY id LIMIT ?"))
                .bind::<BigInt, _>(limit)
                .load(&mut self.conn)?,
            // uuid order is the order of the lower-case text form
            (Some(after), true) => diesel::sql_query(format!(
                "{select} WHERE id > CAST($1 AS uuid) ORDER BY id LIMIT $2"
            ))
            .bind::<Text, _>(after)
            .bind::<BigInt, _>(limit)
            .load(&mut self.conn)?,
            (Some(after), false) => {
                diesel::sql_query(format!("{select} WHERE id > ? ORDER BY id LIMIT ?"))
                    .bind::<Text, _>(after)
                    .bind::<BigInt, _>(limit)
                    .load(&mut self.conn)?
            }
        };
        let accounts = match users.last() {
            Some(last) if self.has_oauth_accounts => self.accounts_between(after, &last.id, pg)?,
            _ => Vec::new(),
        };
        Ok(Page { users, accounts })
    }

    /// The accounts of the users whose id is in (`after`, `last`]: those of one page.
    fn accounts_between(
        &mut self,
        after: Option<&str>,
        last: &str,
        pg: bool,
    ) -> Result<Vec<SourceAccount>, SourceError> {
        let select = "SELECT CAST(id AS TEXT) AS id, CAST(user_id AS TEXT) AS user_id, \
                      oauth_name, account_id, account_email FROM oauth_account";
        let order = "ORDER BY user_id, oauth_name, account_id, id";
        Ok(match (after, pg) {
            (None, true) => diesel::sql_query(format!(
                "{select} WHERE user_id <= CAST($1 AS uuid) {order}"
            ))
            .bind::<Text, _>(last)
            .load(&mut self.conn)?,
            (None, false) => diesel::sql_query(format!("{select} WHERE user_id <= ? {order}"))
                .bind::<Text, _>(last)
                .load(&mut self.conn)?,
            (Some(after), true) => diesel::sql_query(format!(
                "{select} WHERE user_id > CAST($1 AS uuid) AND user_id <= CAST($2 AS uuid) {order}"
            ))
            .bind::<Text, _>(after)
            .bind::<Text, _>(last)
            .load(&mut self.conn)?,
            (Some(after), false) => diesel::sql_query(format!(
                "{select} WHERE user_id > ? AND user_id <= ? {order}"
            ))
            .bind::<Text, _>(after)
            .bind::<Text, _>(last)
            .load(&mut self.conn)?,
        })
    }
}

/// Opens a SQLite file read-only: a missing file is an error, never a new empty
/// database, and no statement can write.
fn open_sqlite(path: &Path) -> Result<DbConnection, SourceError> {
    if !path.is_file() {
        return Err(SourceError::Open(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let absolute = std::path::absolute(path)
        .map_err(|e| SourceError::Open(format!("{}: {e}", path.display())))?;
    let absolute = absolute
        .to_str()
        .ok_or_else(|| SourceError::Open(format!("{}: not valid UTF-8", path.display())))?;
    // an SQLite URI: these three characters would end or escape the path
    let escaped = absolute
        .replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23");
    let mut conn = diesel::SqliteConnection::establish(&format!("file:{escaped}?mode=ro"))
        .map_err(|e| SourceError::Open(format!("cannot open {}: {e}", path.display())))?;
    conn.batch_execute("PRAGMA query_only = ON; PRAGMA busy_timeout = 10000;")?;
    Ok(DbConnection::Sqlite(conn))
}

/// The column names of `table` (none: there is no such table).
fn columns(conn: &mut DbConnection, table: &str) -> QueryResult<Vec<String>> {
    let rows: Vec<Column> = match conn {
        DbConnection::Sqlite(_) => diesel::sql_query("SELECT name FROM pragma_table_info(?)")
            .bind::<Text, _>(table)
            .load(conn)?,
        DbConnection::Postgresql(_) => diesel::sql_query(
            "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind::<Text, _>(table)
        .load(conn)?,
    };
    Ok(rows.into_iter().map(|c| c.name).collect())
}

fn check_columns(table: &str, have: &[String], needed: &[&str]) -> Result<(), SourceError> {
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|n| !have.iter().any(|h| h.eq_ignore_ascii_case(n)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SourceError::Schema(format!(
            "not a fastapi-users database: the table \"{table}\" has no column {}",
            missing
                .iter()
                .map(|m| format!("\"{m}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sqlite(url: &str) -> PathBuf {
        match translate_url(url).unwrap() {
            DatabaseUrl::Sqlite(p) => p,
            DatabaseUrl::Postgres(_) => panic!("{url} is SQLite"),
        }
    }

    fn postgres(url: &str) -> String {
        match translate_url(url).unwrap() {
            DatabaseUrl::Postgres(s) => s.expose_secret().to_owned(),
            DatabaseUrl::Sqlite(_) => panic!("{url} is PostgreSQL"),
        }
    }

    #[test]
    fn sqlalchemy_sqlite_urls_name_the_file() {
        assert_eq!(
            sqlite("sqlite+aiosqlite:///./app.db"),
            PathBuf::from("./app.db")
        );
        assert_eq!(sqlite("sqlite:///app.db"), PathBuf::from("app.db"));
        assert_eq!(
            sqlite("sqlite:////abs/app.db"),
            PathBuf::from("/abs/app.db")
        );
        assert_eq!(
            sqlite("sqlite+pysqlite:////abs/app.db?check_same_thread=false"),
            PathBuf::from("/abs/app.db")
        );
        for bad in ["sqlite://", "sqlite:///:memory:", "sqlite://host/app.db"] {
            assert!(translate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sqlalchemy_postgres_urls_become_libpq_urls() {
        assert_eq!(
            postgres("postgresql+asyncpg://user:pass@host/db"),
            "postgres://user:pass@host/db"
        );
        assert_eq!(
            postgres("postgresql://u@h:5433/db"),
            "postgres://u@h:5433/db"
        );
        assert_eq!(postgres("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            postgres("postgresql+asyncpg://u@h/db?ssl=true&application_name=x"),
            "postgres://u@h/db?sslmode=require&application_name=x"
        );
        assert!(translate_url("mysql+aiomysql://u@h/db").is_err());
        assert!(translate_url("app.db").is_err());
    }

    #[test]
    fn a_missing_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let err = Source::open(&DatabaseUrl::Sqlite(path.clone()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("no such file"), "{err}");
        assert!(!path.exists());
    }
}
