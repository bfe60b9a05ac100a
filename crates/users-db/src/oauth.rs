//! The provider's tables (docs/oauth-provider.md): registered clients, remembered
//! consents, authorization requests waiting for their person, single-use codes, grants
//! (a session of a person with a client) and revoked access tokens. What the JSON
//! columns hold is users-core's business; here they are text.

use diesel::prelude::*;
use users_domain::UserId;

use crate::effects::transaction;
use crate::rows::session::SessionRow;
use crate::rows::user::{StoredUser, UserRow};
use crate::schema::{
    oauth_clients, oauth_codes, oauth_consents, oauth_grants, oauth_requests, oauth_revoked,
    sessions, users,
};
use crate::sessions::NewSession;
use crate::{DbConnection, Effects};

/// The `method` of the session of a grant to `client_id`.
pub fn grant_method(client_id: &str) -> String {
    format!("oauth:{client_id}")
}

// ---- clients ----

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_clients)]
pub struct ClientRow {
    pub client_id: String,
    /// SHA-256 (hex) of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn insert_client(
    conn: &mut DbConnection,
    row: &ClientRow,
    effects: &Effects,
) -> QueryResult<()> {
    transaction(conn, effects, |c| {
        diesel::insert_into(oauth_clients::table)
            .values(row)
            .execute(c)
            .map(|_| ())
    })
}

pub fn find_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<Option<ClientRow>> {
    oauth_clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()
}

/// The rows of `client_ids`, in their order (`None` for an unknown one): on PostgreSQL
/// one statement (`= ANY($1)`), on SQLite, in-process, one lookup each.
pub fn find_clients(
    conn: &mut DbConnection,
    client_ids: &[String],
) -> QueryResult<Vec<Option<ClientRow>>> {
    let pg = match conn {
        DbConnection::Postgresql(pg) if client_ids.len() > 1 => pg,
        _ => return client_ids.iter().map(|id| find_client(conn, id)).collect(),
    };
    let mut ids = client_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // `any` rather than `eq_any`: a static query type, so a statement prepared once
    #[allow(deprecated)]
    let rows: Vec<ClientRow> = oauth_clients::table
        .filter(oauth_clients::client_id.eq(diesel::dsl::any(ids)))
        .select(ClientRow::as_select())
        .load(pg)?;
    Ok(client_ids
        .iter()
        .map(|id| rows.iter().find(|r| &r.client_id == id).cloned())
        .collect())
}

pub fn list_clients(conn: &mut DbConnection) -> QueryResult<Vec<ClientRow>> {
    oauth_clients::table
        .order((
            oauth_clients::created_at.asc(),
            oauth_clients::client_id.asc(),
        ))
        .select(ClientRow::as_select())
        .load(conn)
}

/// Replaces a client's metadata (and, with `secret_hash: Some`, its secret); `false`
/// for an unknown client.
pub fn update_client(
    conn: &mut DbConnection,
    client_id: &str,
    metadata: Option<&str>,
    secret_hash: Option<Option<&str>>,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let target = oauth_clients::table.find(client_id);
        let mut n = diesel::update(target)
            .set(oauth_clients::updated_at.eq(now_ms))
            .execute(c)?;
        if n == 0 {
            return Ok(false);
        }
        if let Some(m) = metadata {
            n = diesel::update(target)
                .set(oauth_clients::metadata.eq(m))
                .execute(c)?;
        }
        if let Some(h) = secret_hash {
            n = diesel::update(target)
                .set(oauth_clients::secret_hash.eq(h))
                .execute(c)?;
        }
        Ok(n > 0)
    })
}

/// Deletes a client: every grant of it ends, its consents, requests and codes go.
pub fn delete_client(
    conn: &mut DbConnection,
    client_id: &str,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        end_grants_in(c, client_id, None, now_ms, "client_deleted")?;
        diesel::delete(oauth_consents::table.filter(oauth_consents::client_id.eq(client_id)))
            .execute(c)?;
        diesel::delete(oauth_requests::table.filter(oauth_requests::client_id.eq(client_id)))
            .execute(c)?;
        diesel::delete(oauth_codes::table.filter(oauth_codes::client_id.eq(client_id)))
            .execute(c)?;
        let n = diesel::delete(oauth_clients::table.find(client_id)).execute(c)?;
        Ok(n > 0)
    })
}

/// Ends the live grant sessions of `client_id` (of one user, or of everyone).
fn end_grants_in(
    c: &mut DbConnection,
    client_id: &str,
    user_id: Option<&str>,
    now_ms: i64,
    reason: &str,
) -> QueryResult<usize> {
    let method = grant_method(client_id);
    let ended = (
        sessions::ended_at.eq(Some(now_ms)),
        sessions::end_reason.eq(Some(reason)),
    );
    let live = sessions::table
        .filter(sessions::method.eq(method))
        .filter(sessions::ended_at.is_null());
    match user_id {
        Some(u) => diesel::update(live.filter(sessions::user_id.eq(u)))
            .set(ended)
            .execute(c),
        None => diesel::update(live).set(ended).execute(c),
    }
}

// ---- consents ----

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = oauth_consents)]
pub struct ConsentRow {
    pub user_id: String,
    pub client_id: String,
    pub scopes: String,
    pub granted_at: i64,
    pub last_used_at: Option<i64>,
}

pub fn find_consent(
    conn: &mut DbConnection,
    user_id: UserId,
    client_id: &str,
) -> QueryResult<Option<ConsentRow>> {
    oauth_consents::table
        .find((user_id.to_string(), client_id))
        .select(ConsentRow::as_select())
        .first(conn)
        .optional()
}

/// The person's consents with their clients' metadata, oldest first.
pub fn consents_of(
    conn: &mut DbConnection,
    user_id: UserId,
) -> QueryResult<Vec<(ConsentRow, ClientRow)>> {
    oauth_consents::table
        .inner_join(oauth_clients::table)
        .filter(oauth_consents::user_id.eq(user_id.to_string()))
        .order(oauth_consents::granted_at.asc())
        .select((ConsentRow::as_select(), ClientRow::as_select()))
        .load(conn)
}

/// Remembers `scopes` for (user, client), added to what was allowed before, inside a
/// transaction.
fn remember_in(
    c: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    scopes: &str,
    now_ms: i64,
) -> QueryResult<()> {
    let before: Option<String> = oauth_consents::table
        .find((user_id, client_id))
        .select(oauth_consents::scopes)
        .first(c)
        .optional()?;
    let mut all: Vec<&str> = before
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    for s in scopes.split(' ').filter(|s| !s.is_empty()) {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    let scopes = all.join(" ");
    let scopes = scopes.as_str();
    let update = |c: &mut DbConnection| {
        diesel::update(oauth_consents::table.find((user_id, client_id)))
            .set((
                oauth_consents::scopes.eq(scopes),
                oauth_consents::last_used_at.eq(Some(now_ms)),
            ))
            .execute(c)
    };
    if update(c)? > 0 {
        return Ok(());
    }
    let inserted = c.transaction(|c| {
        diesel::insert_into(oauth_consents::table)
            .values((
                oauth_consents::user_id.eq(user_id),
                oauth_consents::client_id.eq(client_id),
                oauth_consents::scopes.eq(scopes),
                oauth_consents::granted_at.eq(now_ms),
                oauth_consents::last_used_at.eq(Some(now_ms)),
            ))
            .execute(c)
    });
    match inserted {
        Ok(_) => Ok(()),
        // another request remembered it at the same moment
        Err(e) if crate::is_unique_violation(&e) => update(c).map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Forgets the consent of (user, client) and ends every grant of that client for the
/// person; `false` when there was neither.
pub fn revoke_consent(
    conn: &mut DbConnection,
    user_id: UserId,
    client_id: &str,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<bool> {
    let uid = user_id.to_string();
    transaction(conn, effects, |c| {
        let forgotten =
            diesel::delete(oauth_consents::table.find((uid.as_str(), client_id))).execute(c)?;
        let ended = end_grants_in(c, client_id, Some(&uid), now_ms, "grant_revoked")?;
        diesel::delete(
            oauth_codes::table
                .filter(oauth_codes::user_id.eq(&uid))
                .filter(oauth_codes::client_id.eq(client_id)),
        )
        .execute(c)?;
        Ok(forgotten + ended > 0)
    })
}

// ---- requests ----

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_requests)]
pub struct RequestRow {
    pub id: String,
    /// `login` or `consent`.
    pub kind: String,
    pub client_id: String,
    pub params: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub csrf: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Stores a request, dropping the expired ones.
pub fn insert_request(conn: &mut DbConnection, row: &RequestRow, now_ms: i64) -> QueryResult<()> {
    diesel::delete(oauth_requests::table.filter(oauth_requests::expires_at.le(now_ms)))
        .execute(conn)?;
    diesel::insert_into(oauth_requests::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// A live request of `kind`.
pub fn find_request(
    conn: &mut DbConnection,
    id: &str,
    kind: &str,
    now_ms: i64,
) -> QueryResult<Option<RequestRow>> {
    oauth_requests::table
        .find(id)
        .filter(oauth_requests::kind.eq(kind))
        .filter(oauth_requests::expires_at.gt(now_ms))
        .select(RequestRow::as_select())
        .first(conn)
        .optional()
}

/// Spends a request: `false` when another request spent it first.
pub fn spend_request(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(oauth_requests::table.find(id))
        .execute(conn)
        .map(|n| n > 0)
}

// ---- codes ----

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

// ---- grants ----

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
