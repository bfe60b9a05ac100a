//! Single-use authorization codes and their redemption, which starts a grant
//! (docs/oauth-provider.md).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::IntoSql;

use super::*;
use crate::effects::transaction;
use crate::rows::user::{StoredUser, UserRow};
use crate::schema::{oauth_codes, oauth_grants, sessions, users};
use crate::sessions::NewSession;
use crate::{in_write_transaction, DbConnection, DbError, Effects};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_codes)]
pub struct CodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub data: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub grant_session_id: Option<String>,
}

/// What a code's issue writes besides the code: the consent it remembers, the request
/// it spends.
#[derive(Debug, Clone, Default)]
pub struct CodeIssue {
    /// (scopes) to remember for the code's (user, client).
    pub remember: Option<String>,
    /// The consent request the decision spent (`false` outcome when spent already).
    pub spend_request: Option<String>,
}

/// Stores a code, remembering the consent and spending the request in the same
/// transaction. `false`: the request was spent. A code alone (remembered consent, or a
/// client that skips it) is one statement, without a transaction. One issue in 256 (the
/// code's hash begins with `00`: random, the same odds on every replica) also drops the
/// codes a day past their expiry, which no exchange accepts anyway.
pub fn issue_code(
    conn: &mut DbConnection,
    row: &CodeRow,
    issue: &CodeIssue,
    effects: &Effects,
) -> QueryResult<bool> {
    let purge = purges(row);
    if issued_alone(row, issue) && effects.is_empty() {
        return insert_code(conn, row).map(|_| true);
    }
    transaction(conn, effects, |c| {
        if let Some(id) = &issue.spend_request {
            if !spend_request(c, id)? {
                return Ok(false);
            }
        }
        if purge {
            let day_ago = row.created_at - 86_400_000;
            diesel::delete(oauth_codes::table.filter(oauth_codes::expires_at.lt(day_ago)))
                .execute(c)?;
        }
        insert_code(c, row)?;
        if let Some(scopes) = &issue.remember {
            remember_in(c, &row.user_id, &row.client_id, scopes, row.created_at)?;
        }
        Ok(true)
    })
}

/// Whether this issue purges the codes a day past their expiry: one in 256 (the code's
/// hash begins with `00`).
fn purges(row: &CodeRow) -> bool {
    row.code_hash.starts_with("00")
}

/// Whether the code is all that `issue` stores (no consent remembered, no request
/// spent, no purge): then it may be stored with others' ([`insert_codes`]).
pub fn issued_alone(row: &CodeRow, issue: &CodeIssue) -> bool {
    issue.spend_request.is_none() && issue.remember.is_none() && !purges(row)
}

/// Stores the codes of `batch`, each all its issue stores ([`issued_alone`]), in one
/// transaction: one commit for the codes of concurrent authorizations
/// (docs/oauth-provider.md#how-a-code-is-issued). A batch of one is one statement
/// without a transaction. The answers (all `true`: stored) are in the order of `batch`;
/// a batch that fails stores none of them.
pub fn insert_codes(conn: &mut DbConnection, batch: &[CodeRow]) -> Result<Vec<bool>, DbError> {
    if let [one] = batch {
        insert_code(conn, one)?;
        return Ok(vec![true]);
    }
    in_write_transaction(conn, |c| {
        for row in batch {
            insert_code(c, row)?;
        }
        Ok(vec![true; batch.len()])
    })
}

/// Runs `$body` with `$c` the backend's own connection: Diesel finds the prepared
/// statement of a query by its type there, without building its SQL again (through the
/// `MultiConnection` it builds the SQL to look the statement up, every call).
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            DbConnection::Postgresql($c) => $body,
            DbConnection::Sqlite($c) => $body,
        }
    };
}

/// A new code's row: every column bound (none left to `DEFAULT`), so that the statement
/// stays prepared.
fn insert_code(conn: &mut DbConnection, row: &CodeRow) -> QueryResult<usize> {
    on_backend!(conn, c => diesel::insert_into(oauth_codes::table)
        .values((
            oauth_codes::code_hash.eq(&row.code_hash),
            oauth_codes::client_id.eq(&row.client_id),
            oauth_codes::user_id.eq(&row.user_id),
            oauth_codes::data.eq(&row.data),
            oauth_codes::created_at.eq(row.created_at),
            oauth_codes::expires_at.eq(row.expires_at),
            oauth_codes::used_at.eq(row.used_at),
            oauth_codes::grant_session_id.eq(row.grant_session_id.as_deref()),
        ))
        .execute(c))
}

pub fn find_code(conn: &mut DbConnection, code_hash: &str) -> QueryResult<Option<CodeRow>> {
    oauth_codes::table
        .find(code_hash)
        .select(CodeRow::as_select())
        .first(conn)
        .optional()
}

/// What a code exchange reads: the client's row, and when the code is that client's,
/// the code's row with its person's (`None` when the person is gone).
pub type ExchangeRows = (ClientRow, Option<(CodeRow, Option<StoredUser>)>);

/// [`ExchangeRows`] in one statement; `None` for an unknown client. The query's type is
/// the backend's own, so its prepared statement is found without building the SQL
/// again (as `users::credentials`' token check).
pub fn find_exchange(
    conn: &mut DbConnection,
    client_id: &str,
    code_hash: &str,
) -> QueryResult<Option<ExchangeRows>> {
    macro_rules! exchange_query {
        ($conn:expr) => {
            oauth_clients::table
                .left_join(
                    oauth_codes::table.on(oauth_codes::code_hash
                        .eq(code_hash.to_owned())
                        .and(oauth_codes::client_id.eq(oauth_clients::client_id))),
                )
                .left_join(users::table.on(users::id.eq(oauth_codes::user_id)))
                .filter(oauth_clients::client_id.eq(client_id.to_owned()))
                .select((
                    ClientRow::as_select(),
                    Option::<CodeRow>::as_select(),
                    Option::<UserRow>::as_select(),
                ))
                .first::<(ClientRow, Option<CodeRow>, Option<UserRow>)>($conn)
                .optional()?
        };
    }
    let found = match conn {
        DbConnection::Postgresql(c) => exchange_query!(c),
        DbConnection::Sqlite(c) => exchange_query!(c),
    };
    let Some((client, code, user)) = found else {
        return Ok(None);
    };
    let code = match code {
        Some(code) => Some((code, user.map(StoredUser::try_from).transpose()?)),
        None => None,
    };
    Ok(Some((client, code)))
}

/// A grant to start: its session and what it was granted.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = oauth_grants)]
pub struct GrantRow {
    pub session_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub resource: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
}

/// What redeeming a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The code was live and unused: its grant started.
    Started,
    /// Unknown or expired.
    Invalid,
    /// Used before: the grant it started (if any) has been ended now.
    Replayed { grant_session_id: Option<String> },
}

/// What "happened" means for the effects handed in: the replay they describe.
impl crate::Happened for Redeemed {
    fn happened(&self) -> bool {
        matches!(self, Redeemed::Replayed { .. })
    }
}

/// One code to redeem (docs/oauth-provider.md#how-a-code-is-redeemed): the grant it
/// starts (its session, `session`, and the grant's row, `grant`, of the same id) while the
/// browser session it was issued in is live, and `replayed`, the effects (events) written
/// when the code was used before.
#[derive(Debug, Clone)]
pub struct Redemption {
    pub code_hash: String,
    pub browser_session: String,
    pub now_ms: i64,
    pub session: NewSession,
    pub grant: GrantRow,
    pub replayed: Effects,
}

/// Redeems a code in one transaction (on PostgreSQL, when the code is unused, in one
/// statement): marks it used and starts its grant (the session and the grant row), or,
/// for a code used before, ends the grant it started and writes `replayed` (the events
/// of the replay).
/// The browser session the code was issued in must still be live: a sign-out, a
/// password change or a takeover in between makes the code worthless (it is spent).
pub fn redeem_code(conn: &mut DbConnection, r: &Redemption) -> QueryResult<Redeemed> {
    if let DbConnection::Postgresql(pg) = conn {
        if let Some(decided) = redeem_by_statement(pg, r)? {
            return Ok(decided);
        }
        // not marked: spent, expired or unknown, told apart below
        return conn.transaction(|c| spent_or_invalid(c, r));
    }
    conn.transaction(|c| redeem_in(c, r))
}

/// Redeems the codes of `batch` in one transaction (one commit for all), each as
/// [`redeem_code`] would alone, in the order of their hashes (two batches, here or on
/// another replica, take the codes' rows in one order: they never wait on each other in
/// a circle); two of one code in a batch are decided in their order in `batch`, the
/// second a replay of the first. The answers are in the order of `batch`. A batch of
/// one is [`redeem_code`]. A batch that fails writes nothing of any of its codes.
pub fn redeem_codes(
    conn: &mut DbConnection,
    batch: &[Redemption],
) -> Result<Vec<Redeemed>, DbError> {
    if let [one] = batch {
        return Ok(vec![redeem_code(conn, one)?]);
    }
    let mut order: Vec<usize> = (0..batch.len()).collect();
    // stable: two of one code keep their order
    order.sort_by(|&a, &b| batch[a].code_hash.cmp(&batch[b].code_hash));
    in_write_transaction(conn, |c| {
        let mut answers = vec![Redeemed::Invalid; batch.len()];
        for &i in &order {
            let r = &batch[i];
            answers[i] = match c {
                DbConnection::Postgresql(pg) => match redeem_by_statement(pg, r)? {
                    Some(decided) => decided,
                    None => spent_or_invalid(c, r)?,
                },
                DbConnection::Sqlite(_) => redeem_in(c, r)?,
            };
        }
        Ok(answers)
    })
}

/// PostgreSQL: the redemption's one statement (`redeem_pg.rs`); `None` when it did not
/// mark the code (and wrote nothing).
fn redeem_by_statement(
    pg: &mut diesel::PgConnection,
    r: &Redemption,
) -> QueryResult<Option<Redeemed>> {
    // the statement inserts the grant under the session it starts
    debug_assert_eq!(r.grant.session_id, r.session.id);
    let statement = super::redeem_pg::RedeemStatement {
        code_hash: &r.code_hash,
        browser_session: &r.browser_session,
        now_ms: r.now_ms,
        session: &r.session,
        grant: &r.grant,
    };
    Ok(super::redeem_pg::redeem(pg, statement)?.map(|started| {
        if started {
            Redeemed::Started
        } else {
            Redeemed::Invalid
        }
    }))
}

/// A redemption inside a transaction, statement by statement: the code's conditional
/// `UPDATE`, then the grant's session and row, or what a code that was not marked is.
fn redeem_in(c: &mut DbConnection, r: &Redemption) -> QueryResult<Redeemed> {
    let marked = diesel::update(
        oauth_codes::table
            .find(&r.code_hash)
            .filter(oauth_codes::used_at.is_null())
            .filter(oauth_codes::expires_at.gt(r.now_ms)),
    )
    .set((
        oauth_codes::used_at.eq(Some(r.now_ms)),
        oauth_codes::grant_session_id.eq(Some(&r.session.id)),
    ))
    .execute(c)?;
    if marked == 0 {
        return spent_or_invalid(c, r);
    }
    if start_if_live(c, &r.browser_session, r.now_ms, &r.session)? == 0 {
        return Ok(Redeemed::Invalid);
    }
    insert_grant(c, &r.grant)?;
    Ok(Redeemed::Started)
}

/// A code that was not marked, inside a transaction: one used before is a replay (the
/// grant it started ends, the replay's events are written); otherwise it is unknown or
/// expired.
fn spent_or_invalid(c: &mut DbConnection, r: &Redemption) -> QueryResult<Redeemed> {
    let row: Option<(Option<i64>, Option<String>)> = oauth_codes::table
        .find(&r.code_hash)
        .select((oauth_codes::used_at, oauth_codes::grant_session_id))
        .first(c)
        .optional()?;
    let Some((Some(_), grant_session_id)) = row else {
        return Ok(Redeemed::Invalid);
    };
    if let Some(sid) = &grant_session_id {
        diesel::update(
            sessions::table
                .find(sid)
                .filter(sessions::ended_at.is_null()),
        )
        .set((
            sessions::ended_at.eq(Some(r.now_ms)),
            sessions::end_reason.eq(Some("code_reused")),
        ))
        .execute(c)?;
    }
    r.replayed.write(c)?;
    Ok(Redeemed::Replayed { grant_session_id })
}

/// Inserts the grant's session only while the browser session `browser` is live, in one
/// statement (`INSERT … SELECT … FROM sessions AS browser WHERE …`): the number of rows
/// inserted, 0 when the browser session has ended or expired. Every value is bound, so
/// the statement stays prepared.
fn start_if_live(
    conn: &mut DbConnection,
    browser: &str,
    now_ms: i64,
    s: &NewSession,
) -> QueryResult<usize> {
    let live = diesel::alias!(sessions as browser);
    macro_rules! statement {
        () => {
            diesel::insert_into(sessions::table)
                .values(
                    live.filter(live.field(sessions::id).eq(browser.to_owned()))
                        .filter(live.field(sessions::ended_at).is_null())
                        .filter(live.field(sessions::expires_at).gt(now_ms))
                        .select((
                            s.id.clone().into_sql::<Text>(),
                            s.user_id.clone().into_sql::<Text>(),
                            s.created_at.into_sql::<BigInt>(),
                            s.last_used_at.into_sql::<BigInt>(),
                            s.expires_at.into_sql::<BigInt>(),
                            s.ip.clone().into_sql::<Nullable<Text>>(),
                            s.user_agent.clone().into_sql::<Nullable<Text>>(),
                            s.method.clone().into_sql::<Text>(),
                            s.aal.into_sql::<BigInt>(),
                            s.refresh_key_salt.clone().into_sql::<Nullable<Text>>(),
                            s.second_factor.clone().into_sql::<Nullable<Text>>(),
                        )),
                )
                .into_columns((
                    sessions::id,
                    sessions::user_id,
                    sessions::created_at,
                    sessions::last_used_at,
                    sessions::expires_at,
                    sessions::ip,
                    sessions::user_agent,
                    sessions::method,
                    sessions::aal,
                    sessions::refresh_key_salt,
                    sessions::second_factor,
                ))
        };
    }
    on_backend!(conn, c => statement!().execute(c))
}

/// A grant's row, every column bound (see [`insert_code`]).
fn insert_grant(conn: &mut DbConnection, g: &GrantRow) -> QueryResult<usize> {
    on_backend!(conn, c => diesel::insert_into(oauth_grants::table)
        .values((
            oauth_grants::session_id.eq(&g.session_id),
            oauth_grants::client_id.eq(&g.client_id),
            oauth_grants::user_id.eq(&g.user_id),
            oauth_grants::scope.eq(&g.scope),
            oauth_grants::resource.eq(g.resource.as_deref()),
            oauth_grants::auth_time.eq(g.auth_time),
            oauth_grants::amr.eq(&g.amr),
            oauth_grants::created_at.eq(g.created_at),
        ))
        .execute(c))
}
