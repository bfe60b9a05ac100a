//! What the per-request check of an access token or an API key reads: the user, the
//! session, the revocation or the key, one credential at a time or a batch in one
//! round trip (docs/sessions-and-tokens.md).

use diesel::prelude::*;
use users_domain::UserId;

use crate::rows::api_key::ApiKeyRow;
use crate::rows::session::SessionRow;
use crate::rows::user::UserRow;
use crate::schema::{api_keys, oauth_revoked, revoked_tokens, users};
use crate::DbConnection;

use crate::rows::user::StoredUser;

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
        .map(|(row, revoked, session)| token_check(row, revoked, session))
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

/// The check of a provider access token of a grant (userinfo, introspection): its user,
/// the grant's session and whether its `jti` was revoked, in one statement (as
/// [`find_for_token`]: the backend's own query type, a statement prepared once).
fn find_for_grant(
    conn: &mut DbConnection,
    key: &TokenKey,
    jti: &str,
) -> QueryResult<Option<TokenCheck>> {
    let TokenScope::Session(sid) = &key.scope else {
        // not made by the provider (a grant's token names its session): two statements
        let Some(mut check) = find_for_token(conn, key)? else {
            return Ok(None);
        };
        check.revoked = jti_revoked(conn, jti)?;
        return Ok(Some(check));
    };
    macro_rules! grant_query {
        ($conn:expr) => {{
            use crate::schema::sessions;
            users::table
                .left_join(
                    sessions::table.on(sessions::id
                        .eq(sid.clone())
                        .and(sessions::user_id.eq(users::id))),
                )
                .filter(users::id.eq(key.user_id.to_string()))
                .select((
                    UserRow::as_select(),
                    Option::<SessionRow>::as_select(),
                    diesel::dsl::exists(
                        oauth_revoked::table.filter(oauth_revoked::jti.eq(jti.to_owned())),
                    ),
                ))
                .first::<(UserRow, Option<SessionRow>, bool)>($conn)
                .optional()?
        }};
    }
    let found = match conn {
        DbConnection::Postgresql(c) => grant_query!(c),
        DbConnection::Sqlite(c) => grant_query!(c),
    };
    found
        .map(|(row, session, revoked)| token_check(row, revoked, session))
        .transpose()
}

/// A token's check from its user's row, whether it was revoked, and its session.
fn token_check(
    row: UserRow,
    revoked: bool,
    session: Option<SessionRow>,
) -> QueryResult<TokenCheck> {
    StoredUser::try_from(row).map(|user| TokenCheck {
        user,
        revoked,
        session,
        api_key: None,
    })
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
/// token without a session is among them. The revoked `jti`s of the provider's access
/// tokens, when a grant's token is among them, come with the first statement in a batch
/// without API keys, and in one of their own otherwise. On SQLite, in-process, each
/// credential is its own cached statement.
pub fn find_for_credentials(
    conn: &mut DbConnection,
    credentials: &[Credential],
) -> QueryResult<Vec<Option<TokenCheck>>> {
    let pg = match conn {
        DbConnection::Postgresql(pg) if credentials.len() > 1 => pg,
        _ => {
            return credentials
                .iter()
                .map(|k| match k {
                    Credential::Token(key) => find_for_token(conn, key),
                    Credential::ApiKey { key_hash } => find_for_api_key(conn, key_hash),
                    Credential::Grant { key, jti } => find_for_grant(conn, key, jti),
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
    // the grants' access tokens revoked by their `jti`: read by the batch's statement
    // when the batch has no API key, else by one more statement (none without a grant's)
    let (rows, inline_jtis) = load_batch(pg, user_ids, session_ids, key_hashes, &jtis)?;
    let revoked = load_revoked(pg, &keys)?;
    let revoked_jtis = match inline_jtis {
        Some(found) => found,
        None => load_revoked_jtis(pg, jtis)?,
    };
    answer_batch(credentials, &rows, &revoked, &revoked_jtis)
}

/// A user, with a session and an API key of the batch (each row one of each at most).
type BatchRow = (UserRow, Option<SessionRow>, Option<ApiKeyRow>);

/// [`find_for_credentials`]'s one statement on PostgreSQL: the users the tokens name and
/// those of the keys, each with the sessions and keys the batch names; for a batch of
/// tokens only, with `jtis`, also which of those are revoked (`Some`: read here).
fn load_batch(
    pg: &mut diesel::PgConnection,
    user_ids: Vec<String>,
    session_ids: Vec<String>,
    key_hashes: Vec<String>,
    jtis: &[String],
) -> QueryResult<(Vec<BatchRow>, Option<std::collections::HashSet<String>>)> {
    use crate::schema::sessions;
    if key_hashes.is_empty() && !jtis.is_empty() {
        return load_batch_with_jtis(pg, user_ids, session_ids, jtis);
    }
    let rows = if key_hashes.is_empty() {
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
    Ok((rows, None))
}

/// [`load_batch`] for a batch of tokens only, with provider access tokens among them:
/// the revoked among `jtis` as one more column of every row (a subquery, the same array
/// in each), so no second statement.
fn load_batch_with_jtis(
    pg: &mut diesel::PgConnection,
    user_ids: Vec<String>,
    session_ids: Vec<String>,
    jtis: &[String],
) -> QueryResult<(Vec<BatchRow>, Option<std::collections::HashSet<String>>)> {
    use crate::schema::sessions;
    #[allow(deprecated)]
    let revoked_of = oauth_revoked::table
        .filter(oauth_revoked::jti.eq(diesel::dsl::any(jtis.to_vec())))
        .select(array_agg(oauth_revoked::jti))
        .single_value();
    #[allow(deprecated)]
    let rows = users::table
        .left_join(
            sessions::table.on(sessions::user_id
                .eq(users::id)
                .and(sessions::id.eq(diesel::dsl::any(session_ids)))),
        )
        .filter(users::id.eq(diesel::dsl::any(user_ids)))
        .select((
            UserRow::as_select(),
            Option::<SessionRow>::as_select(),
            revoked_of,
        ))
        .load::<(UserRow, Option<SessionRow>, Option<Vec<String>>)>(pg)?;
    let revoked: std::collections::HashSet<String> = rows
        .first()
        .and_then(|r| r.2.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let rows = rows.into_iter().map(|(u, s, _)| (u, s, None)).collect();
    Ok((rows, Some(revoked)))
}

/// Which of the batch's tokens without a session are revoked (no statement when none).
fn load_revoked(
    pg: &mut diesel::PgConnection,
    keys: &[&TokenKey],
) -> QueryResult<std::collections::HashSet<String>> {
    let hashes: Vec<String> = keys
        .iter()
        .filter_map(|k| match &k.scope {
            TokenScope::Unscoped { token_hash } => Some(token_hash.clone()),
            TokenScope::Session(_) => None,
        })
        .collect();
    Ok(if hashes.is_empty() {
        Default::default()
    } else {
        #[allow(deprecated)]
        revoked_tokens::table
            .select(revoked_tokens::token_hash)
            .filter(revoked_tokens::token_hash.eq(diesel::dsl::any(hashes)))
            .load::<String>(pg)?
            .into_iter()
            .collect()
    })
}

/// Which of the batch's provider access tokens are revoked by their `jti` (no statement
/// when the batch has none).
fn load_revoked_jtis(
    pg: &mut diesel::PgConnection,
    jtis: Vec<String>,
) -> QueryResult<std::collections::HashSet<String>> {
    Ok(if jtis.is_empty() {
        Default::default()
    } else {
        #[allow(deprecated)]
        oauth_revoked::table
            .select(oauth_revoked::jti)
            .filter(oauth_revoked::jti.eq(diesel::dsl::any(jtis)))
            .load::<String>(pg)?
            .into_iter()
            .collect()
    })
}

/// The answer to each credential of the batch, in order, from the rows loaded for it.
fn answer_batch(
    credentials: &[Credential],
    rows: &[BatchRow],
    revoked: &std::collections::HashSet<String>,
    revoked_jtis: &std::collections::HashSet<String>,
) -> QueryResult<Vec<Option<TokenCheck>>> {
    // each user's row, with the sessions the batch named for them; each key with its user
    let mut by_user: std::collections::HashMap<&str, (&UserRow, Vec<&SessionRow>)> =
        std::collections::HashMap::with_capacity(rows.len());
    let mut by_key: std::collections::HashMap<&str, (&UserRow, &ApiKeyRow)> =
        std::collections::HashMap::new();
    for (u, s, k) in rows {
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
