//! Both backends carry the same migrations, and the SQLite one applies cleanly (and
//! idempotently) to a fresh file with the connection settings we rely on.

// Tests stand outside the service: they read the real clock to date the tokens and
// times they make (the service itself takes `now` as a parameter, see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use users_db::{migration_names, Database, DatabaseUrl, DbConnection, PoolOptions};

#[test]
fn both_backends_have_the_same_migrations() {
    let (sqlite, postgres) = migration_names();
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
}

#[derive(QueryableByName)]
struct Mode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = BigInt)]
    foreign_keys: i64,
}

#[test]
fn sqlite_files_get_wal_foreign_keys_and_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url =
        DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("u.db").display())).unwrap();
    let db = Database::connect_and_migrate(url.clone(), &PoolOptions::default()).unwrap();
    // running again is a no-op
    Database::connect_and_migrate(url, &PoolOptions::default()).unwrap();
    let mut conn = db.get().unwrap();
    let DbConnection::Sqlite(lite) = &mut **conn else {
        panic!("sqlite expected")
    };
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result(lite)
        .unwrap();
    assert_eq!(mode.journal_mode, "wal");
    let fk: Flag = diesel::sql_query("PRAGMA foreign_keys")
        .get_result(lite)
        .unwrap();
    assert_eq!(fk.foreign_keys, 1);
    assert_eq!(users_db::users::count(&mut conn).unwrap(), 0);
}

#[test]
fn database_urls_are_parsed_and_redacted() {
    assert!(DatabaseUrl::parse("sqlite://users.db").unwrap().is_sqlite());
    assert!(DatabaseUrl::parse("sqlite:///var/lib/users/users.db")
        .unwrap()
        .is_sqlite());
    assert!(DatabaseUrl::parse("sqlite://").is_err());
    assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
    assert!(DatabaseUrl::parse("mysql://x").is_err());
    let pg =
        DatabaseUrl::parse("postgres://app:s3cr3t@db.internal:5432/users?sslmode=require").unwrap();
    assert_eq!(pg.redacted(), "postgres://db.internal:5432/users");
    assert!(!format!("{pg:?}").contains("s3cr3t"));
}

#[test]
fn a_missing_folder_is_a_clear_error() {
    let url = DatabaseUrl::parse("sqlite:///nonexistent-folder-for-users-tests/u.db").unwrap();
    let err = Database::connect_lazy(url, &PoolOptions::default()).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
