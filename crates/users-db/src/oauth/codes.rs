//! Single-use authorization codes and their redemption, which starts a grant
//! (docs/oauth-provider.md).

use diesel::prelude::*;

use super::*;
use crate::effects::transaction;
use crate::schema::{oauth_codes, oauth_grants, sessions};
use crate::sessions::NewSession;
use crate::{DbConnection, Effects};

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

/// Stores a code (dropping codes a day past their expiry), remembering the consent and
/// spending the request in the same transaction. `false`: the request was spent.
pub fn issue_code(
    conn: &mut DbConnection,
    row: &CodeRow,
    issue: &CodeIssue,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        if let Some(id) = &issue.spend_request {
            if !spend_request(c, id)? {
                return Ok(false);
            }
        }
        let day_ago = row.created_at - 86_400_000;
        diesel::delete(oauth_codes::table.filter(oauth_codes::expires_at.lt(day_ago)))
            .execute(c)?;
        diesel::insert_into(oauth_codes::table)
            .values(row)
            .execute(c)?;
        if let Some(scopes) = &issue.remember {
            remember_in(c, &row.user_id, &row.client_id, scopes, row.created_at)?;
        }
        Ok(true)
    })
}

pub fn find_code(conn: &mut DbConnection, code_hash: &str) -> QueryResult<Option<CodeRow>> {
    oauth_codes::table
        .find(code_hash)
        .select(CodeRow::as_select())
        .first(conn)
        .optional()
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

/// Redeems a code in one transaction: marks it used and starts its grant (the session
/// and the grant row), or, for a code used before, ends the grant it started and
/// writes `replayed` (the events of the replay).
/// The browser session the code was issued in must still be live: a sign-out, a
/// password change or a takeover in between makes the code worthless (it is spent).
pub fn redeem_code(
    conn: &mut DbConnection,
    code_hash: &str,
    browser_session: &str,
    now_ms: i64,
    session: &NewSession,
    grant: &GrantRow,
    replayed: &Effects,
) -> QueryResult<Redeemed> {
    conn.transaction(|c| {
        let marked = diesel::update(
            oauth_codes::table
                .find(code_hash)
                .filter(oauth_codes::used_at.is_null())
                .filter(oauth_codes::expires_at.gt(now_ms)),
        )
        .set((
            oauth_codes::used_at.eq(Some(now_ms)),
            oauth_codes::grant_session_id.eq(Some(&session.id)),
        ))
        .execute(c)?;
        if marked == 1 {
            let issuer_live = sessions::table
                .find(browser_session)
                .filter(sessions::ended_at.is_null())
                .filter(sessions::expires_at.gt(now_ms))
                .select(sessions::id)
                .first::<String>(c)
                .optional()?
                .is_some();
            if !issuer_live {
                return Ok(Redeemed::Invalid);
            }
            diesel::insert_into(sessions::table)
                .values(session)
                .execute(c)?;
            diesel::insert_into(oauth_grants::table)
                .values(grant)
                .execute(c)?;
            return Ok(Redeemed::Started);
        }
        let row: Option<(Option<i64>, Option<String>)> = oauth_codes::table
            .find(code_hash)
            .select((oauth_codes::used_at, oauth_codes::grant_session_id))
            .first(c)
            .optional()?;
        match row {
            Some((Some(_), grant_session_id)) => {
                if let Some(sid) = &grant_session_id {
                    diesel::update(
                        sessions::table
                            .find(sid)
                            .filter(sessions::ended_at.is_null()),
                    )
                    .set((
                        sessions::ended_at.eq(Some(now_ms)),
                        sessions::end_reason.eq(Some("code_reused")),
                    ))
                    .execute(c)?;
                }
                replayed.write(c)?;
                Ok(Redeemed::Replayed { grant_session_id })
            }
            _ => Ok(Redeemed::Invalid),
        }
    })
}
