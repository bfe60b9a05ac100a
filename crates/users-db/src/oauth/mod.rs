//! The provider's tables (docs/oauth-provider.md): registered clients, remembered
//! consents, authorization requests waiting for their person, single-use codes, grants
//! (a session of a person with a client) and revoked access tokens. What the JSON
//! columns hold is users-core's business; here they are text.

use diesel::prelude::*;
use users_domain::UserId;

use crate::effects::transaction;
use crate::schema::{oauth_clients, oauth_codes, oauth_consents, oauth_requests, sessions};
use crate::{DbConnection, Effects};

mod codes;
mod grants;
mod redeem_pg;
pub use codes::*;
pub use grants::*;

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
/// transaction. Two decisions for one person and client at the same moment both count:
/// on PostgreSQL the row is read locked, so the second waits for the first and adds to
/// what it wrote; when neither found a row, the one that loses the race to insert it
/// reads the winner's and adds to it (docs/oauth-provider.md#the-authorization-request).
fn remember_in(
    c: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    scopes: &str,
    now_ms: i64,
) -> QueryResult<()> {
    match remember_once(c, user_id, client_id, scopes, now_ms) {
        // another request inserted the row at the same moment: it is there now
        Err(e) if crate::is_unique_violation(&e) => {
            remember_once(c, user_id, client_id, scopes, now_ms)
        }
        done => done,
    }
}

fn remember_once(
    c: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    scopes: &str,
    now_ms: i64,
) -> QueryResult<()> {
    let row = oauth_consents::table
        .find((user_id, client_id))
        .select(oauth_consents::scopes);
    let before: Option<String> = match c {
        DbConnection::Postgresql(pg) => row.for_update().first(pg).optional()?,
        // the transaction began IMMEDIATE: it holds the file's write lock already
        DbConnection::Sqlite(_) => row.first(c).optional()?,
    };
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
    if before.is_some() {
        diesel::update(oauth_consents::table.find((user_id, client_id)))
            .set((
                oauth_consents::scopes.eq(&scopes),
                oauth_consents::last_used_at.eq(Some(now_ms)),
            ))
            .execute(c)?;
        return Ok(());
    }
    // in a savepoint: a unique violation leaves the enclosing transaction usable
    c.transaction(|c| {
        diesel::insert_into(oauth_consents::table)
            .values((
                oauth_consents::user_id.eq(user_id),
                oauth_consents::client_id.eq(client_id),
                oauth_consents::scopes.eq(&scopes),
                oauth_consents::granted_at.eq(now_ms),
                oauth_consents::last_used_at.eq(Some(now_ms)),
            ))
            .execute(c)
    })
    .map(|_| ())
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
