//! The users table.

use diesel::prelude::*;
use users_domain::email::email_key;
use users_domain::{User, UserId};

use crate::effects::{or_taken, transaction, Happened};
use crate::guards::{self, Cleared};
use crate::rows::api_key::ApiKeyRow;
use crate::rows::session::SessionRow;
use crate::rows::user::UserRow;
use crate::schema::{api_keys, oauth_revoked, revoked_tokens, users};
use crate::{DbConnection, Effects};

pub use crate::rows::user::StoredUser;

/// A user to create. `email_key` is the lower-cased normalised email.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub email_key: String,
    pub hashed_password: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub is_verified: bool,
    pub tokens_valid_after: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl NewUser {
    /// `user`, with this password hash, created at `now_ms`. No token of theirs is
    /// refused for its age (`tokens_valid_after` 0).
    pub fn new(user: &User, hashed_password: String, now_ms: i64) -> NewUser {
        NewUser {
            id: user.id.to_string(),
            email: user.email.clone(),
            email_key: email_key(&user.email),
            hashed_password,
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            is_verified: user.is_verified,
            tokens_valid_after: 0,
            created_at: now_ms,
            updated_at: now_ms,
        }
    }
}

/// Fields to change; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<String>,
    pub email_key: Option<String>,
    pub hashed_password: Option<String>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
    pub tokens_valid_after: Option<i64>,
    pub updated_at: Option<i64>,
}

impl UserChanges {
    fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.email_key.is_none()
            && self.hashed_password.is_none()
            && self.is_active.is_none()
            && self.is_superuser.is_none()
            && self.is_verified.is_none()
            && self.tokens_valid_after.is_none()
    }
}

/// The first statement of a transaction that reads before it writes, about one user: on
/// SQLite it takes the write lock (waiting for it, as `busy_timeout` allows) before
/// anything is read, so the transaction never fails for a write another connection
/// committed after its first read; on PostgreSQL it serialises the changes of one
/// user. Returns whether the user exists.
pub(crate) fn lock(conn: &mut DbConnection, id: UserId) -> QueryResult<bool> {
    diesel::update(users::table.find(id.to_string()))
        .set(users::updated_at.eq(users::updated_at))
        .execute(conn)
        .map(|n| n > 0)
}

/// Inserts a user. A duplicate email surfaces as a unique violation
/// (see [`crate::is_unique_violation`]); nothing is written then.
pub fn insert(conn: &mut DbConnection, new: &NewUser) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(new)
        .execute(conn)
        .map(|_| ())
}

/// What [`create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// Another user has the email (in any case): nothing was written.
    EmailTaken,
}

impl Happened for Created {
    fn happened(&self) -> bool {
        *self == Created::Created
    }
}

/// Creates a user with its effects, in one transaction.
pub fn create(conn: &mut DbConnection, new: &NewUser, effects: &Effects) -> QueryResult<Created> {
    let created = transaction(conn, effects, |c| insert(c, new).map(|()| Created::Created));
    or_taken(created, Created::EmailTaken)
}

pub fn find_by_id(conn: &mut DbConnection, id: UserId) -> QueryResult<Option<StoredUser>> {
    users::table
        .find(id.to_string())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(StoredUser::try_from)
        .transpose()
}

pub fn find_by_email_key(conn: &mut DbConnection, key: &str) -> QueryResult<Option<StoredUser>> {
    users::table
        .filter(users::email_key.eq(key))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(StoredUser::try_from)
        .transpose()
}

/// What the check of an access token needs to know, found in one round trip.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    pub user: StoredUser,
    /// That very token was revoked (logout of a token without a session).
    pub revoked: bool,
    /// The token's session, if it names one that belongs to the user.
    pub session: Option<SessionRow>,
    /// The API key, when the credential is one (it is found with its user).
    pub api_key: Option<ApiKeyRow>,
}

/// What one request presents: an access token (its [`TokenKey`]), or an API key (its
/// SHA-256, hex), whose user is found through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Token(TokenKey),
    ApiKey {
        key_hash: String,
    },
    /// An access token of the OAuth provider's grant (docs/oauth-provider.md): its user
    /// and the grant's session, as a token of a session, and whether its `jti` was
    /// revoked (`TokenCheck::revoked`).
    Grant {
        key: TokenKey,
        jti: String,
    },
}

/// What one access-token check asks: the user the token names, and either the session
/// it names or, for a token without a session (minted by fastapi-users), the token's
/// hash to look for among the revoked ones. A token with a session ends with its
/// session and is never revoked alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    pub user_id: UserId,
    pub scope: TokenScope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// The session id (`sid`).
    Session(String),
    /// The token's SHA-256 (hex).
    Unscoped { token_hash: String },
}

impl TokenKey {
    fn session_id(&self) -> Option<&str> {
        match &self.scope {
            TokenScope::Session(sid) => Some(sid),
            TokenScope::Unscoped { .. } => None,
        }
    }
}

/// The query of one key, on a connection of a concrete backend: its type, and so its
/// prepared statement, is the same for every call, and Diesel finds the statement by
/// that type without building the SQL again (through the `MultiConnection` it would
/// be built on every call).
macro_rules! token_query {
    ($conn:expr, $user:expr, $scope:expr) => {{
        use crate::schema::sessions;
        let user = $user.to_string();
        match $scope {
            TokenScope::Session(sid) => users::table
                .left_join(
                    sessions::table.on(sessions::id
                        .eq(sid.clone())
                        .and(sessions::user_id.eq(users::id))),
                )
                .filter(users::id.eq(user))
                .select((UserRow::as_select(), Option::<SessionRow>::as_select()))
                .first::<(UserRow, Option<SessionRow>)>($conn)
                .optional()?
                .map(|(row, session)| (row, false, session)),
            TokenScope::Unscoped { token_hash } => users::table
                .filter(users::id.eq(user))
                .select((
                    UserRow::as_select(),
                    diesel::dsl::exists(
                        revoked_tokens::table
                            .filter(revoked_tokens::token_hash.eq(token_hash.clone())),
                    ),
                ))
                .first::<(UserRow, bool)>($conn)
                .optional()?
                .map(|(row, revoked)| (row, revoked, None)),
        }
    }};
}

/// The user an access token names, with the session it names or whether it was
/// revoked: one statement for the check made on every authenticated request.
pub fn find_for_token(conn: &mut DbConnection, key: &TokenKey) -> QueryResult<Option<TokenCheck>> {
    let found = match conn {
        DbConnection::Postgresql(c) => token_query!(c, key.user_id, &key.scope),
        DbConnection::Sqlite(c) => token_query!(c, key.user_id, &key.scope),
    };
    found
        .map(|(row, revoked, session)| {
            StoredUser::try_from(row).map(|user| TokenCheck {
                user,
                revoked,
                session,
                api_key: None,
            })
        })
        .transpose()
}

/// Whether a provider access token's `jti` was revoked (as `oauth::is_revoked`).
fn jti_revoked(conn: &mut DbConnection, jti: &str) -> QueryResult<bool> {
    oauth_revoked::table
        .find(jti)
        .select(oauth_revoked::jti)
        .first::<String>(conn)
        .optional()
        .map(|r| r.is_some())
}

/// The user of an API key, with the key: one statement (a key names no session).
pub fn find_for_api_key(
    conn: &mut DbConnection,
    key_hash: &str,
) -> QueryResult<Option<TokenCheck>> {
    macro_rules! api_key_query {
        ($conn:expr) => {
            users::table
                .inner_join(api_keys::table.on(api_keys::user_id.eq(users::id)))
                .filter(api_keys::key_hash.eq(key_hash.to_owned()))
                .select((UserRow::as_select(), ApiKeyRow::as_select()))
                .first::<(UserRow, ApiKeyRow)>($conn)
                .optional()?
        };
    }
    let found = match conn {
        DbConnection::Postgresql(c) => api_key_query!(c),
        DbConnection::Sqlite(c) => api_key_query!(c),
    };
    found
        .map(|(row, key)| {
            StoredUser::try_from(row).map(|user| TokenCheck {
                user,
                revoked: false,
                session: None,
                api_key: Some(key),
            })
        })
        .transpose()
}

/// [`find_for_credentials`] for access tokens only.
pub fn find_for_tokens(
    conn: &mut DbConnection,
    keys: &[TokenKey],
) -> QueryResult<Vec<Option<TokenCheck>>> {
    let credentials: Vec<Credential> = keys.iter().cloned().map(Credential::Token).collect();
    find_for_credentials(conn, &credentials)
}

diesel::define_sql_function! {
    /// PostgreSQL's `array_agg` over text: `NULL` for no rows.
    #[aggregate]
    fn array_agg(x: diesel::sql_types::Text) -> diesel::sql_types::Nullable<diesel::sql_types::Array<diesel::sql_types::Text>>;
}

diesel::define_sql_function! {
    /// PostgreSQL's `array_cat` of text arrays, the second possibly `NULL` (then the first).
    #[sql_name = "array_cat"]
    fn array_cat_text(
        a: diesel::sql_types::Array<diesel::sql_types::Text>,
        b: diesel::sql_types::Nullable<diesel::sql_types::Array<diesel::sql_types::Text>>,
    ) -> diesel::sql_types::Array<diesel::sql_types::Text>;
}

/// [`find_for_token`] and [`find_for_api_key`] for many credentials at once, in the
/// order of `credentials`. On PostgreSQL one statement answers every one (users,
/// sessions and API keys by `= ANY($1)`; the users of the keys are found through the
/// keys' hashes in the same statement), and a second one the revocations, only when a
/// token without a session is among them (and one the revoked `jti`s of the provider's
/// access tokens, only when a grant's token is among them). On SQLite, in-process, each credential is its
/// own cached statement.
pub fn find_for_credentials(
    conn: &mut DbConnection,
    credentials: &[Credential],
) -> QueryResult<Vec<Option<TokenCheck>>> {
    use crate::schema::sessions;
    let pg = match conn {
        DbConnection::Postgresql(pg) if credentials.len() > 1 => pg,
        _ => {
            return credentials
                .iter()
                .map(|k| match k {
                    Credential::Token(key) => find_for_token(conn, key),
                    Credential::ApiKey { key_hash } => find_for_api_key(conn, key_hash),
                    Credential::Grant { key, jti } => {
                        let Some(mut check) = find_for_token(conn, key)? else {
                            return Ok(None);
                        };
                        check.revoked = jti_revoked(conn, jti)?;
                        Ok(Some(check))
                    }
                })
                .collect()
        }
    };
    let keys: Vec<&TokenKey> = credentials
        .iter()
        .filter_map(|c| match c {
            Credential::Token(k) | Credential::Grant { key: k, .. } => Some(k),
            Credential::ApiKey { .. } => None,
        })
        .collect();
    let mut key_hashes: Vec<String> = credentials
        .iter()
        .filter_map(|c| match c {
            Credential::ApiKey { key_hash } => Some(key_hash.clone()),
            Credential::Token(_) | Credential::Grant { .. } => None,
        })
        .collect();
    let jtis: Vec<String> = credentials
        .iter()
        .filter_map(|c| match c {
            Credential::Grant { jti, .. } => Some(jti.clone()),
            Credential::Token(_) | Credential::ApiKey { .. } => None,
        })
        .collect();
    key_hashes.sort_unstable();
    key_hashes.dedup();
    let mut user_ids: Vec<String> = keys.iter().map(|k| k.user_id.to_string()).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let mut session_ids: Vec<String> = keys
        .iter()
        .filter_map(|k| k.session_id().map(str::to_owned))
        .collect();
    session_ids.sort_unstable();
    session_ids.dedup();
    let rows: Vec<(UserRow, Option<SessionRow>, Option<ApiKeyRow>)> = if key_hashes.is_empty() {
        // `any` rather than `eq_any`: its query type is static, so the statement is
        // found by type, never rebuilt (`eq_any` builds the SQL to find it)
        #[allow(deprecated)]
        users::table
            .left_join(
                sessions::table.on(sessions::user_id
                    .eq(users::id)
                    .and(sessions::id.eq(diesel::dsl::any(session_ids)))),
            )
            .filter(users::id.eq(diesel::dsl::any(user_ids)))
            .select((UserRow::as_select(), Option::<SessionRow>::as_select()))
            .load::<(UserRow, Option<SessionRow>)>(pg)?
            .into_iter()
            .map(|(u, s)| (u, s, None))
            .collect()
    } else {
        // the users are those the tokens name and those of the keys, found through the
        // keys' hashes: one array, so the users' primary key answers both; typed, so the
        // statement is prepared once per connection like the one above
        let batch_keys = diesel::alias!(api_keys as batch_keys);
        #[allow(deprecated)]
        let of_keys = batch_keys
            .filter(
                batch_keys
                    .field(api_keys::key_hash)
                    .eq(diesel::dsl::any(key_hashes.clone())),
            )
            .select(array_agg(batch_keys.field(api_keys::user_id)))
            .single_value();
        #[allow(deprecated)]
        let users_of = users::id.eq(diesel::dsl::any(array_cat_text(user_ids, of_keys)));
        #[allow(deprecated)]
        users::table
            .left_join(
                sessions::table.on(sessions::user_id
                    .eq(users::id)
                    .and(sessions::id.eq(diesel::dsl::any(session_ids)))),
            )
            .left_join(
                api_keys::table.on(api_keys::user_id
                    .eq(users::id)
                    .and(api_keys::key_hash.eq(diesel::dsl::any(key_hashes)))),
            )
            .filter(users_of)
            .select((
                UserRow::as_select(),
                Option::<SessionRow>::as_select(),
                Option::<ApiKeyRow>::as_select(),
            ))
            .load(pg)?
    };
    let hashes: Vec<String> = keys
        .iter()
        .filter_map(|k| match &k.scope {
            TokenScope::Unscoped { token_hash } => Some(token_hash.clone()),
            TokenScope::Session(_) => None,
        })
        .collect();
    let revoked: std::collections::HashSet<String> = if hashes.is_empty() {
        Default::default()
    } else {
        #[allow(deprecated)]
        revoked_tokens::table
            .select(revoked_tokens::token_hash)
            .filter(revoked_tokens::token_hash.eq(diesel::dsl::any(hashes)))
            .load::<String>(pg)?
            .into_iter()
            .collect()
    };
    // the grants' access tokens revoked by their `jti` (a third statement, only when a
    // grant's token is in the batch)
    let revoked_jtis: std::collections::HashSet<String> = if jtis.is_empty() {
        Default::default()
    } else {
        #[allow(deprecated)]
        oauth_revoked::table
            .select(oauth_revoked::jti)
            .filter(oauth_revoked::jti.eq(diesel::dsl::any(jtis)))
            .load::<String>(pg)?
            .into_iter()
            .collect()
    };
    // each user's row, with the sessions the batch named for them; each key with its user
    let mut by_user: std::collections::HashMap<&str, (&UserRow, Vec<&SessionRow>)> =
        std::collections::HashMap::with_capacity(rows.len());
    let mut by_key: std::collections::HashMap<&str, (&UserRow, &ApiKeyRow)> =
        std::collections::HashMap::new();
    for (u, s, k) in &rows {
        let entry = by_user.entry(u.id.as_str()).or_insert((u, Vec::new()));
        entry.1.extend(s.as_ref());
        if let Some(k) = k {
            by_key.insert(k.key_hash.as_str(), (u, k));
        }
    }
    credentials
        .iter()
        .map(|c| {
            let (k, jti) = match c {
                Credential::Token(k) => (k, None),
                Credential::Grant { key, jti } => (key, Some(jti)),
                Credential::ApiKey { key_hash } => {
                    let Some((user, key)) = by_key.get(key_hash.as_str()) else {
                        return Ok(None);
                    };
                    return StoredUser::try_from((*user).clone()).map(|user| {
                        Some(TokenCheck {
                            user,
                            revoked: false,
                            session: None,
                            api_key: Some((*key).clone()),
                        })
                    });
                }
            };
            let Some((user, sessions)) = by_user.get(k.user_id.to_string().as_str()) else {
                return Ok(None);
            };
            let session = k
                .session_id()
                .and_then(|sid| sessions.iter().find(|s| s.id == sid))
                .map(|s| (*s).clone());
            let revoked = match &k.scope {
                TokenScope::Unscoped { token_hash } => revoked.contains(token_hash),
                TokenScope::Session(_) => jti.is_some_and(|j| revoked_jtis.contains(j)),
            };
            StoredUser::try_from((*user).clone()).map(|user| {
                Some(TokenCheck {
                    user,
                    revoked,
                    session,
                    api_key: None,
                })
            })
        })
        .collect()
}

/// Applies `changes`; returns whether the user exists. A new email that another user
/// already has surfaces as a unique violation and changes nothing.
pub fn update(
    conn: &mut DbConnection,
    id: UserId,
    changes: &UserChanges,
    now_ms: i64,
) -> QueryResult<bool> {
    if changes.is_empty() {
        return Ok(find_by_id(conn, id)?.is_some());
    }
    let changes = UserChanges {
        updated_at: Some(now_ms),
        ..changes.clone()
    };
    let n = diesel::update(users::table.find(id.to_string()))
        .set(&changes)
        .execute(conn)?;
    Ok(n > 0)
}

/// What [`apply_update`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    /// The user as stored afterwards.
    Updated(StoredUser),
    /// No such user: nothing was written.
    NoSuchUser,
    /// The new email belongs to another user: nothing was written.
    EmailTaken,
}

impl Happened for Updated {
    fn happened(&self) -> bool {
        matches!(self, Updated::Updated(_))
    }
}

/// Applies `changes` and its effects in one transaction.
pub fn apply_update(
    conn: &mut DbConnection,
    id: UserId,
    changes: &UserChanges,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<Updated> {
    let updated = transaction(conn, effects, |c| {
        if !update(c, id, changes, now_ms)? {
            return Ok(Updated::NoSuchUser);
        }
        if changes.is_verified == Some(true) {
            guards::vouch_for_setup(c, id)?;
        }
        Ok(find_by_id(c, id)?.map_or(Updated::NoSuchUser, Updated::Updated))
    });
    or_taken(updated, Updated::EmailTaken)
}

/// Replaces the password hash only if it is still `old` (a re-hash at login must not
/// overwrite a password changed meanwhile). Does not revoke tokens: same password.
pub fn replace_hash_if_unchanged(
    conn: &mut DbConnection,
    id: UserId,
    old: &str,
    new: &str,
) -> QueryResult<bool> {
    let n = diesel::update(
        users::table
            .find(id.to_string())
            .filter(users::hashed_password.eq(old)),
    )
    .set(users::hashed_password.eq(new))
    .execute(conn)?;
    Ok(n > 0)
}

/// Sets a new password if the current hash is still `old` (a reset token is bound to
/// it), revoking every access token issued before `now_ms`, with its effects, in one
/// transaction. The reset proves the address: what was set up while it was unproven
/// goes with it ([`guards::clear_unproven`]), and `effects` gets what was cleared.
/// Returns whether it changed (a token used meanwhile changes nothing).
pub fn reset_password_if_unchanged(
    conn: &mut DbConnection,
    id: UserId,
    old: &str,
    new: &str,
    now_ms: i64,
    effects: impl FnOnce(&Cleared) -> Result<Effects, String>,
) -> QueryResult<bool> {
    conn.transaction(|c| {
        let n = diesel::update(
            users::table
                .find(id.to_string())
                .filter(users::hashed_password.eq(old)),
        )
        .set((
            users::hashed_password.eq(new),
            users::tokens_valid_after.eq(now_ms),
            users::updated_at.eq(now_ms),
        ))
        .execute(c)?;
        if n == 0 {
            return Ok(false);
        }
        let cleared = guards::clear_unproven(c, id, now_ms)?;
        guards::effects_of(effects, &cleared)?.write(c)?;
        Ok(true)
    })
}

/// Marks a user verified, with its effects; returns whether it changed anything. The
/// verification proves the address: what was set up while it was unproven goes with it
/// ([`guards::clear_unproven`]), and `effects` gets what was cleared.
pub fn mark_verified(
    conn: &mut DbConnection,
    id: UserId,
    now_ms: i64,
    effects: impl FnOnce(&Cleared) -> Result<Effects, String>,
) -> QueryResult<bool> {
    conn.transaction(|c| {
        let n = diesel::update(
            users::table
                .find(id.to_string())
                .filter(users::is_verified.eq(false)),
        )
        .set((users::is_verified.eq(true), users::updated_at.eq(now_ms)))
        .execute(c)?;
        if n == 0 {
            return Ok(false);
        }
        let cleared = guards::clear_at_verification(c, id, now_ms)?;
        guards::effects_of(effects, &cleared)?.write(c)?;
        Ok(true)
    })
}

/// Deletes a user (their revoked tokens and linked accounts go with them), with its
/// effects. Returns whether it existed.
pub fn delete(conn: &mut DbConnection, id: UserId, effects: &Effects) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let n = diesel::delete(users::table.find(id.to_string())).execute(c)?;
        Ok(n > 0)
    })
}

/// One page of users in a stable order (creation time, then id), optionally only those
/// whose email contains `email_contains` (case-insensitive), with the total count.
pub fn list(
    conn: &mut DbConnection,
    email_contains: Option<&str>,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<StoredUser>, i64)> {
    let pattern = email_contains.map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
    let mut count_q = users::table.into_boxed();
    let mut page_q = users::table.into_boxed();
    if let Some(p) = &pattern {
        count_q = count_q.filter(users::email_key.like(p.clone()).escape('\\'));
        page_q = page_q.filter(users::email_key.like(p.clone()).escape('\\'));
    }
    let total: i64 = count_q.count().get_result(conn)?;
    let rows: Vec<UserRow> = page_q
        .order((users::created_at.asc(), users::id.asc()))
        .offset(offset)
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)?;
    let users = rows
        .into_iter()
        .map(StoredUser::try_from)
        .collect::<QueryResult<Vec<_>>>()?;
    Ok((users, total))
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Number of users (used by the CLI and tests).
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}
