//! Grants (a session of a person with a client), their roles and revoked access
//! tokens (docs/oauth-provider.md).

use diesel::prelude::*;
use users_domain::UserId;

use super::*;
use crate::effects::transaction;
use crate::rows::session::SessionRow;
use crate::rows::user::{StoredUser, UserRow};
use crate::schema::{oauth_clients, oauth_grants, oauth_revoked, sessions, users};
use crate::{DbConnection, Effects};

/// A grant as a token check sees it: the grant, its session, its user, and whether the
/// access token `jti` (when given) was revoked.
#[derive(Debug, Clone)]
pub struct GrantState {
    pub grant: GrantRow,
    pub session: SessionRow,
    pub user: StoredUser,
    pub revoked: bool,
}

/// A grant's session with its grant row and user (for a refresh, the userinfo and the
/// introspection); `None` when there is no such grant.
pub fn find_grant(
    conn: &mut DbConnection,
    session_id: &str,
    jti: Option<&str>,
) -> QueryResult<Option<GrantState>> {
    let found: Option<(GrantRow, SessionRow, UserRow)> = oauth_grants::table
        .inner_join(sessions::table.inner_join(users::table))
        .filter(oauth_grants::session_id.eq(session_id))
        .select((
            GrantRow::as_select(),
            SessionRow::as_select(),
            UserRow::as_select(),
        ))
        .first(conn)
        .optional()?;
    let Some((grant, session, user)) = found else {
        return Ok(None);
    };
    let revoked = match jti {
        Some(j) => is_revoked(conn, j)?,
        None => false,
    };
    Ok(Some(GrantState {
        grant,
        session,
        user: user.try_into()?,
        revoked,
    }))
}

/// When each of the person's live grants to a client was last used, by client.
pub fn grant_use_of(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Vec<(String, i64)>> {
    oauth_grants::table
        .inner_join(sessions::table)
        .filter(oauth_grants::user_id.eq(user_id.to_string()))
        .filter(sessions::ended_at.is_null())
        .select((oauth_grants::client_id, sessions::last_used_at))
        .load(conn)
}

/// Records that a grant's session was used now (a refresh, a userinfo call).
pub fn touch_grant(conn: &mut DbConnection, session_id: &str, now_ms: i64) -> QueryResult<()> {
    diesel::update(sessions::table.find(session_id))
        .set(sessions::last_used_at.eq(now_ms))
        .execute(conn)
        .map(|_| ())
}

// ---- revoked access tokens ----

/// Revokes an access token by its `jti` until it expires anyway.
pub fn revoke_jti(
    conn: &mut DbConnection,
    jti: &str,
    expires_at: i64,
    now_ms: i64,
) -> QueryResult<()> {
    diesel::delete(oauth_revoked::table.filter(oauth_revoked::expires_at.le(now_ms)))
        .execute(conn)?;
    let inserted = diesel::insert_into(oauth_revoked::table)
        .values((
            oauth_revoked::jti.eq(jti),
            oauth_revoked::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if crate::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// For each (jti, client_id) of a client's own access token: whether it is live (its
/// `jti` not revoked, its client not deleted), in their order. On PostgreSQL two
/// statements (`= ANY($1)`), on SQLite, in-process, two lookups each.
pub fn client_tokens_live(
    conn: &mut DbConnection,
    tokens: &[(String, String)],
) -> QueryResult<Vec<bool>> {
    let pg = match conn {
        DbConnection::Postgresql(pg) if tokens.len() > 1 => pg,
        _ => {
            return tokens
                .iter()
                .map(|(jti, client_id)| {
                    Ok(!is_revoked(conn, jti)? && find_client(conn, client_id)?.is_some())
                })
                .collect()
        }
    };
    let jtis: Vec<String> = tokens.iter().map(|(j, _)| j.clone()).collect();
    let mut ids: Vec<String> = tokens.iter().map(|(_, c)| c.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    #[allow(deprecated)]
    let revoked: Vec<String> = oauth_revoked::table
        .filter(oauth_revoked::jti.eq(diesel::dsl::any(jtis)))
        .select(oauth_revoked::jti)
        .load(pg)?;
    #[allow(deprecated)]
    let clients: Vec<String> = oauth_clients::table
        .filter(oauth_clients::client_id.eq(diesel::dsl::any(ids)))
        .select(oauth_clients::client_id)
        .load(pg)?;
    Ok(tokens
        .iter()
        .map(|(jti, client_id)| !revoked.contains(jti) && clients.contains(client_id))
        .collect())
}

pub fn is_revoked(conn: &mut DbConnection, jti: &str) -> QueryResult<bool> {
    oauth_revoked::table
        .find(jti)
        .select(oauth_revoked::jti)
        .first::<String>(conn)
        .optional()
        .map(|r| r.is_some())
}

// ---- the roles of a client ----

/// What replacing a client's roles did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetClientRoles {
    /// Its roles now.
    Set(Vec<crate::roles::RoleRow>),
    NoSuchClient,
    /// The first name no role has; nothing changed.
    UnknownRole(String),
}

impl crate::Happened for SetClientRoles {
    fn happened(&self) -> bool {
        matches!(self, SetClientRoles::Set(_))
    }
}

/// The roles of a client, by name.
pub fn client_roles(
    conn: &mut DbConnection,
    client_id: &str,
) -> QueryResult<Vec<crate::roles::RoleRow>> {
    use crate::schema::{oauth_client_roles, roles};
    oauth_client_roles::table
        .inner_join(roles::table.on(roles::name.eq(oauth_client_roles::role_name)))
        .filter(oauth_client_roles::client_id.eq(client_id))
        .order(roles::name.asc())
        .select(crate::roles::RoleRow::as_select())
        .load(conn)
}

/// Replaces the roles of a client, in one transaction that starts with a write (the
/// client's row).
pub fn set_client_roles(
    conn: &mut DbConnection,
    client_id: &str,
    names: &[String],
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<SetClientRoles> {
    use crate::schema::{oauth_client_roles, roles};
    transaction(conn, effects, |c| {
        let found = diesel::update(oauth_clients::table.find(client_id))
            .set(oauth_clients::updated_at.eq(now_ms))
            .execute(c)?;
        if found == 0 {
            return Ok(SetClientRoles::NoSuchClient);
        }
        let known: Vec<String> = roles::table
            .filter(roles::name.eq_any(names))
            .select(roles::name)
            .load(c)?;
        if let Some(unknown) = names.iter().find(|n| !known.contains(n)) {
            return Ok(SetClientRoles::UnknownRole(unknown.clone()));
        }
        diesel::delete(
            oauth_client_roles::table.filter(oauth_client_roles::client_id.eq(client_id)),
        )
        .execute(c)?;
        let mut wanted: Vec<&String> = names.iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        for name in wanted {
            diesel::insert_into(oauth_client_roles::table)
                .values((
                    oauth_client_roles::client_id.eq(client_id),
                    oauth_client_roles::role_name.eq(name),
                ))
                .execute(c)?;
        }
        Ok(SetClientRoles::Set(client_roles(c, client_id)?))
    })
}
