//! Writing imported users and their linked accounts, a batch at a time: one
//! transaction per batch, insert-if-absent, an outcome per row. Running a batch again
//! changes nothing it wrote the first time, so an interrupted import is finished by
//! running it again.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::schema::{upstream_identities, users};
use crate::users::NewUser;
use crate::{is_unique_violation, DbConnection};

/// Rows per multi-row INSERT: 10 columns a row stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters per statement.
const ROWS_PER_INSERT: usize = 1000;

/// A race with a writer outside the import (a registration taking the same email
/// between the check and the insert) fails the batch's transaction; it is run again.
const ATTEMPTS: usize = 3;

/// A user to import, with the provider accounts linked to it.
#[derive(Debug, Clone)]
pub struct ImportUser {
    pub user: NewUser,
    pub accounts: Vec<ImportAccount>,
}

/// An account at a provider, keyed by (`provider`, `subject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportAccount {
    /// `google`, `oidc:<name>`.
    pub provider: String,
    pub subject: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOutcome {
    /// Inserted (or, without writing, would be).
    Imported,
    /// A user with this id is there already: left as it is.
    AlreadyPresent,
    /// Another user (this id) has the email: not imported.
    EmailTaken { by: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountOutcome {
    Imported,
    /// Linked to this very user already.
    AlreadyLinked,
    /// Linked to another user (this id): not linked.
    LinkedToAnother {
        user_id: String,
    },
}

/// What happened to one [`ImportUser`]: its accounts' outcomes in their order, none
/// when the user itself was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOutcome {
    pub user: UserOutcome,
    pub accounts: Vec<AccountOutcome>,
}

/// The batch on a concrete connection (multi-row INSERTs do not go through the
/// MultiConnection).
macro_rules! batch {
    ($c:expr, $rows:expr, $write:expr, $now_ms:expr) => {{
        let c = $c;
        let rows: &[ImportUser] = $rows;
        let ids: Vec<&str> = rows.iter().map(|r| r.user.id.as_str()).collect();
        let present: HashSet<String> = users::table
            .filter(users::id.eq_any(&ids))
            .select(users::id)
            .load::<String>(c)?
            .into_iter()
            .collect();
        let keys: Vec<&str> = rows.iter().map(|r| r.user.email_key.as_str()).collect();
        let mut holders: HashMap<String, String> = users::table
            .filter(users::email_key.eq_any(&keys))
            .select((users::email_key, users::id))
            .load::<(String, String)>(c)?
            .into_iter()
            .collect();

        let mut outcomes = Vec::with_capacity(rows.len());
        let mut new_users = Vec::new();
        for row in rows {
            let user = &row.user;
            let outcome = if present.contains(&user.id) {
                UserOutcome::AlreadyPresent
            } else if let Some(by) = holders.get(&user.email_key) {
                UserOutcome::EmailTaken { by: by.clone() }
            } else {
                holders.insert(user.email_key.clone(), user.id.clone());
                new_users.push(user.clone());
                UserOutcome::Imported
            };
            outcomes.push(outcome);
        }

        let subjects: Vec<&str> = rows
            .iter()
            .flat_map(|r| r.accounts.iter().map(|a| a.subject.as_str()))
            .collect();
        let mut linked: HashMap<(String, String), String> = if subjects.is_empty() {
            HashMap::new()
        } else {
            upstream_identities::table
                .filter(upstream_identities::account_id.eq_any(&subjects))
                .select((
                    upstream_identities::oauth_name,
                    upstream_identities::account_id,
                    upstream_identities::user_id,
                ))
                .load::<(String, String, String)>(c)?
                .into_iter()
                .map(|(p, s, u)| ((p, s), u))
                .collect()
        };
        let mut new_accounts = Vec::new();
        let mut results = Vec::with_capacity(rows.len());
        for (row, user) in rows.iter().zip(outcomes) {
            let mut accounts = Vec::new();
            if !matches!(user, UserOutcome::EmailTaken { .. }) {
                for account in &row.accounts {
                    let key = (account.provider.clone(), account.subject.clone());
                    accounts.push(match linked.get(&key) {
                        Some(owner) if *owner == row.user.id => AccountOutcome::AlreadyLinked,
                        Some(owner) => AccountOutcome::LinkedToAnother {
                            user_id: owner.clone(),
                        },
                        None => {
                            linked.insert(key, row.user.id.clone());
                            new_accounts.push((
                                upstream_identities::id.eq(uuid::Uuid::new_v4().to_string()),
                                upstream_identities::user_id.eq(row.user.id.clone()),
                                upstream_identities::oauth_name.eq(account.provider.clone()),
                                upstream_identities::account_id.eq(account.subject.clone()),
                                upstream_identities::account_email.eq(account.email.clone()),
                                upstream_identities::created_at.eq($now_ms),
                                upstream_identities::updated_at.eq($now_ms),
                            ));
                            AccountOutcome::Imported
                        }
                    });
                }
            }
            results.push(RowOutcome { user, accounts });
        }

        if $write {
            for chunk in new_users.chunks(ROWS_PER_INSERT) {
                diesel::insert_into(users::table).values(chunk).execute(c)?;
            }
            for chunk in new_accounts.chunks(ROWS_PER_INSERT) {
                diesel::insert_into(upstream_identities::table)
                    .values(chunk)
                    .execute(c)?;
            }
        }
        Ok::<_, diesel::result::Error>(results)
    }};
}

/// Imports `rows` in one transaction: a user whose id is present is left as it is (its
/// accounts are still linked when absent), one whose email another user has is not
/// imported, the others are inserted with their accounts. With `write` false nothing
/// is written and the outcomes say what would have happened.
pub fn import_batch(
    conn: &mut DbConnection,
    rows: &[ImportUser],
    write: bool,
    now_ms: i64,
) -> QueryResult<Vec<RowOutcome>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match conn {
            // IMMEDIATE: the batch reads, then writes; a deferred transaction would
            // fail (not wait) when another writer committed in between.
            DbConnection::Sqlite(c) if write => {
                c.immediate_transaction(|c| batch!(c, rows, write, now_ms))
            }
            DbConnection::Sqlite(c) => c.transaction(|c| batch!(c, rows, write, now_ms)),
            DbConnection::Postgresql(c) => c.transaction(|c| batch!(c, rows, write, now_ms)),
        };
        match outcome {
            Err(e) if is_unique_violation(&e) && attempt < ATTEMPTS => continue,
            outcome => return outcome,
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Whether the service's tables exist in this database (a dry run against a database
/// nothing was migrated into yet must not create them).
pub fn has_schema(conn: &mut DbConnection) -> QueryResult<bool> {
    let sql = match conn {
        DbConnection::Sqlite(_) => {
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'users'"
        }
        DbConnection::Postgresql(_) => {
            "SELECT count(*) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'users'"
        }
    };
    let count: Count = diesel::sql_query(sql).get_result(conn)?;
    Ok(count.n > 0)
}
