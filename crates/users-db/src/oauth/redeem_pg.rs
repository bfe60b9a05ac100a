//! A code's redemption on PostgreSQL in one statement (docs/oauth-provider.md#how-a-code-is-redeemed):
//! the code's conditional `UPDATE`, the grant's session `INSERT … SELECT` from the live
//! browser session, and the grant's `INSERT`, as data-modifying `WITH` clauses of one
//! statement that commits alone. Diesel prepares it once per connection (a query type
//! of its own, every value bound), where the same three statements in a transaction
//! are five round trips, three of them parsed and planned on every call.
//!
//! Only a code that is marked here is decided here; any other (spent, expired,
//! unknown) goes on to the transaction of `codes::redeem_code`, which tells a replay
//! from an unknown code and ends what a replay started.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable, Text};

use super::GrantRow;
use crate::sessions::NewSession;

/// The statement's values; see the module's doc.
pub(super) struct RedeemStatement<'a> {
    pub code_hash: &'a str,
    pub browser_session: &'a str,
    pub now_ms: i64,
    pub session: &'a NewSession,
    pub grant: &'a GrantRow,
}

impl QueryId for RedeemStatement<'_> {
    type QueryId = RedeemStatement<'static>;
    // one SQL text for every value: PostgreSQL's prepared statement is reused
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for RedeemStatement<'_> {
    /// (codes marked, sessions started): (1, 1) started; (1, 0) the code is spent on a
    /// browser session that has ended; (0, 0) nothing was written.
    type SqlType = (BigInt, BigInt);
}

impl RunQueryDsl<PgConnection> for RedeemStatement<'_> {}

/// Binds `value`s of SQL type `ty`, separated by commas (a row of an `INSERT … SELECT`).
macro_rules! binds {
    ($out:ident, $($ty:ty => $value:expr),+ $(,)?) => {{
        let mut first = true;
        $(
            if !std::mem::take(&mut first) {
                $out.push_sql(", ");
            }
            $out.push_bind_param::<$ty, _>($value)?;
        )+
    }};
}

impl QueryFragment<Pg> for RedeemStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (s, g) = (self.session, self.grant);
        out.push_sql("WITH marked AS (UPDATE oauth_codes SET used_at = ");
        out.push_bind_param::<BigInt, _>(&self.now_ms)?;
        out.push_sql(", grant_session_id = ");
        out.push_bind_param::<Text, _>(&s.id)?;
        out.push_sql(" WHERE code_hash = ");
        out.push_bind_param::<Text, _>(&self.code_hash)?;
        out.push_sql(" AND used_at IS NULL AND expires_at > ");
        out.push_bind_param::<BigInt, _>(&self.now_ms)?;
        out.push_sql(
            " RETURNING code_hash), started AS (INSERT INTO sessions (id, user_id, \
             created_at, last_used_at, expires_at, ip, user_agent, method, aal, \
             refresh_key_salt, second_factor) SELECT ",
        );
        binds!(out,
            Text => &s.id,
            Text => &s.user_id,
            BigInt => &s.created_at,
            BigInt => &s.last_used_at,
            BigInt => &s.expires_at,
            Nullable<Text> => &s.ip,
            Nullable<Text> => &s.user_agent,
            Text => &s.method,
            BigInt => &s.aal,
            Nullable<Text> => &s.refresh_key_salt,
            Nullable<Text> => &s.second_factor,
        );
        out.push_sql(" FROM marked, sessions AS browser WHERE browser.id = ");
        out.push_bind_param::<Text, _>(&self.browser_session)?;
        out.push_sql(" AND browser.ended_at IS NULL AND browser.expires_at > ");
        out.push_bind_param::<BigInt, _>(&self.now_ms)?;
        out.push_sql(
            " RETURNING id), granted AS (INSERT INTO oauth_grants (session_id, client_id, \
             user_id, scope, resource, auth_time, amr, created_at) SELECT id, ",
        );
        binds!(out,
            Text => &g.client_id,
            Text => &g.user_id,
            Text => &g.scope,
            Nullable<Text> => &g.resource,
            BigInt => &g.auth_time,
            Text => &g.amr,
            BigInt => &g.created_at,
        );
        out.push_sql(
            " FROM started) SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM started)",
        );
        Ok(())
    }
}

/// Runs the statement: `Some(started)` when it marked the code (then it decided the
/// redemption and committed), `None` when it wrote nothing.
pub(super) fn redeem(c: &mut PgConnection, st: RedeemStatement<'_>) -> QueryResult<Option<bool>> {
    let (marked, started): (i64, i64) = st.get_result(c)?;
    Ok((marked == 1).then_some(started == 1))
}
