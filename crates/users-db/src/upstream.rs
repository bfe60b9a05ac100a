//! Accounts linked at identity providers, and pending authorizations.

use diesel::prelude::*;
use users_domain::UserId;

use crate::effects::{or_taken, transaction, Happened};
use crate::guards::{self, Cleared, Scope};
use crate::rows::session::EndSessions;
use crate::schema::{passkeys, upstream_identities, upstream_states, users as users_table};
use crate::users::{self, NewUser, StoredUser};
use crate::{DbConnection, Effects};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = upstream_identities)]
pub struct OAuthAccount {
    pub id: String,
    pub user_id: String,
    pub oauth_name: String,
    pub account_id: String,
    pub account_email: String,
}

/// The account `subject` at `provider`, if linked.
pub fn find_account(
    conn: &mut DbConnection,
    provider: &str,
    subject: &str,
) -> QueryResult<Option<OAuthAccount>> {
    upstream_identities::table
        .filter(upstream_identities::oauth_name.eq(provider))
        .filter(upstream_identities::account_id.eq(subject))
        .select(OAuthAccount::as_select())
        .first(conn)
        .optional()
}

/// Links an account to a user. A subject linked already (to anyone) is a unique violation.
/// The link records whether the provider said the email is verified, and whether the
/// user's address was unproven when it was made (a later proof by mail removes it
/// then, see [`crate::guards`]).
pub fn link(
    conn: &mut DbConnection,
    user_id: UserId,
    account: &ProviderAccount,
    now_ms: i64,
) -> QueryResult<()> {
    let unverified = guards::unverified(conn, user_id)?;
    diesel::insert_into(upstream_identities::table)
        .values((
            upstream_identities::id.eq(uuid::Uuid::new_v4().to_string()),
            upstream_identities::user_id.eq(user_id.to_string()),
            upstream_identities::oauth_name.eq(&account.provider),
            upstream_identities::account_id.eq(&account.subject),
            upstream_identities::account_email.eq(&account.email),
            upstream_identities::created_at.eq(now_ms),
            upstream_identities::updated_at.eq(now_ms),
            upstream_identities::unverified_at_setup.eq(unverified),
            upstream_identities::email_verified.eq(account.email_verified),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Refreshes the stored account email after a sign-in.
pub fn touch(conn: &mut DbConnection, id: &str, email: &str, now_ms: i64) -> QueryResult<()> {
    diesel::update(upstream_identities::table.find(id))
        .set((
            upstream_identities::account_email.eq(email),
            upstream_identities::updated_at.eq(now_ms),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The user the account `subject` at `provider` is linked to, if any; when `email` is
/// given, the stored account email is refreshed on the way.
pub fn linked_user(
    conn: &mut DbConnection,
    provider: &str,
    subject: &str,
    email: Option<&str>,
    now_ms: i64,
) -> QueryResult<Option<StoredUser>> {
    let Some(account) = find_account(conn, provider, subject)? else {
        return Ok(None);
    };
    if let Some(email) = email {
        touch(conn, &account.id, email, now_ms)?;
    }
    let id = UserId::parse_str(&account.user_id)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    users::find_by_id(conn, id)
}

/// What [`create_linked_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatedLinked {
    /// The new user, as stored.
    Created(StoredUser),
    /// The email, or the account, was taken meanwhile (a concurrent first sign-in of
    /// the same account, say): nothing was written.
    Taken,
}

impl Happened for CreatedLinked {
    fn happened(&self) -> bool {
        matches!(self, CreatedLinked::Created(_))
    }
}

/// Creates a user and links the account, with their effects, in one transaction.
pub fn create_linked_user(
    conn: &mut DbConnection,
    new: &NewUser,
    account: &ProviderAccount,
    effects: &Effects,
) -> QueryResult<CreatedLinked> {
    let created = transaction(conn, effects, |c| {
        users::insert(c, new)?;
        let id = UserId::parse_str(&new.id)
            .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
        link(c, id, account, new.created_at)?;
        let user = users::find_by_id(c, id)?.ok_or(diesel::result::Error::NotFound)?;
        Ok(CreatedLinked::Created(user))
    });
    or_taken(created, CreatedLinked::Taken)
}

/// An account at a provider, as a sign-in names it.
#[derive(Debug, Clone)]
pub struct ProviderAccount {
    /// The provider's key: `google`, `oidc:<name>`, `github`.
    pub provider: String,
    pub subject: String,
    /// The email the provider gave.
    pub email: String,
    /// Whether the provider said that email is verified.
    pub email_verified: bool,
}

/// A takeover by the owner of an address: the account was registered by someone who
/// never proved it, and a provider now proves it.
#[derive(Debug, Clone)]
pub struct Takeover {
    /// The unusable hash that replaces the earlier registrant's password.
    pub unusable_password: String,
    /// Every session of the user ends.
    pub end_sessions: EndSessions,
}

/// Links the account to an existing user found by a verified email. With `takeover`
/// (the user's address was never verified), the account proven by the provider takes it
/// over: everything the earlier registrant set up goes ([`guards::clear`] with
/// [`Scope::Everything`]: the password, identities, passkeys, TOTP, pending enrolments
/// and ceremonies), every session ends, earlier tokens are revoked and the user becomes
/// verified. `effects` gets what was cleared, so that each removal is recorded. One
/// transaction.
pub fn link_by_email(
    conn: &mut DbConnection,
    user_id: UserId,
    account: &ProviderAccount,
    takeover: Option<&Takeover>,
    now_ms: i64,
    effects: impl FnOnce(&Cleared) -> Result<Effects, String>,
) -> QueryResult<LinkedByEmail> {
    let linked = conn.transaction(|c| {
        users::lock(c, user_id)?;
        let mut cleared = Cleared::default();
        if let Some(takeover) = takeover {
            cleared = guards::clear(c, user_id, &Scope::Everything, now_ms)?;
            let changes = users::UserChanges {
                hashed_password: Some(takeover.unusable_password.clone()),
                is_verified: Some(true),
                tokens_valid_after: Some(now_ms),
                ..Default::default()
            };
            users::update(c, user_id, &changes, now_ms)?;
            crate::rows::session::end_all_in(c, &takeover.end_sessions)?;
        }
        link(c, user_id, account, now_ms)?;
        guards::effects_of(effects, &cleared)?.write(c)?;
        Ok(users::find_by_id(c, user_id)?.map_or(LinkedByEmail::NoSuchUser, LinkedByEmail::Linked))
    });
    or_taken(linked, LinkedByEmail::AccountTaken)
}

/// What [`link_by_email`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkedByEmail {
    /// The user as stored after.
    Linked(StoredUser),
    /// The user is gone: nothing was written.
    NoSuchUser,
    /// The provider account was linked meanwhile (to anyone): nothing was written.
    AccountTaken,
}

impl Happened for LinkedByEmail {
    fn happened(&self) -> bool {
        matches!(self, LinkedByEmail::Linked(_))
    }
}

/// What [`associate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Association {
    /// Newly linked to the user.
    Linked,
    /// Already linked to this very user: its stored email was refreshed.
    Refreshed,
    /// Linked to another user (or, by a request racing this one, meanwhile): nothing
    /// changed.
    LinkedToAnother,
}

impl Happened for Association {
    fn happened(&self) -> bool {
        *self == Association::Linked
    }
}

/// Links the account to `user_id` unless another user has it, with the effects of a new
/// link, in one transaction.
pub fn associate(
    conn: &mut DbConnection,
    user_id: UserId,
    account: &ProviderAccount,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<Association> {
    let (provider, subject, email) = (&account.provider, &account.subject, &account.email);
    let associated = conn.transaction(|c| {
        match users::lock(c, user_id).and_then(|_| find_account(c, provider, subject))? {
            Some(found) if found.user_id == user_id.to_string() => {
                touch(c, &found.id, email, now_ms)?;
                Ok(Association::Refreshed)
            }
            Some(_) => Ok(Association::LinkedToAnother),
            None => {
                link(c, user_id, account, now_ms)?;
                effects.write(c)?;
                Ok(Association::Linked)
            }
        }
    });
    or_taken(associated, Association::LinkedToAnother)
}

/// A pending authorization.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = upstream_states)]
pub struct PendingState {
    pub id: String,
    pub pkce_verifier: String,
    pub nonce: String,
    pub user_id: Option<String>,
    pub expires_at: i64,
    /// The name of the provider the authorization was started for.
    pub provider: String,
    /// The page of the service that started it (a path), where the callback returns
    /// with the cookie set; `None`: the callback answers as fastapi-users does.
    pub return_to: Option<String>,
}

pub fn save_state(conn: &mut DbConnection, state: &PendingState, now_ms: i64) -> QueryResult<()> {
    diesel::delete(upstream_states::table.filter(upstream_states::expires_at.lt(now_ms)))
        .execute(conn)?;
    diesel::insert_into(upstream_states::table)
        .values((
            upstream_states::id.eq(&state.id),
            upstream_states::pkce_verifier.eq(&state.pkce_verifier),
            upstream_states::nonce.eq(&state.nonce),
            upstream_states::user_id.eq(&state.user_id),
            upstream_states::expires_at.eq(state.expires_at),
            upstream_states::provider.eq(&state.provider),
            upstream_states::return_to.eq(&state.return_to),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Takes a pending authorization out: only the first caller gets it (single use).
pub fn take_state(conn: &mut DbConnection, id: &str) -> QueryResult<Option<PendingState>> {
    let Some(state) = upstream_states::table
        .find(id)
        .select(PendingState::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let deleted = diesel::delete(upstream_states::table.find(id)).execute(conn)?;
    Ok((deleted == 1).then_some(state))
}

/// An account at a provider as its user sees it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = upstream_identities)]
pub struct LinkedIdentity {
    /// The provider's key: `google`, `oidc:<name>`, `github`.
    pub oauth_name: String,
    pub account_id: String,
    pub account_email: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// The user's linked accounts, newest first.
pub fn identities_of(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Vec<LinkedIdentity>> {
    upstream_identities::table
        .filter(upstream_identities::user_id.eq(user_id.to_string()))
        .order((
            upstream_identities::created_at.desc(),
            upstream_identities::oauth_name.asc(),
            upstream_identities::account_id.asc(),
        ))
        .select(LinkedIdentity::as_select())
        .load(conn)
}

/// How many ways the user has to sign in: a usable password (a hash the service can
/// verify; the unusable ones given to accounts made through a provider start with `!`),
/// each linked account and each passkey.
pub fn sign_in_methods(conn: &mut DbConnection, user_id: UserId) -> QueryResult<i64> {
    let id = user_id.to_string();
    let passwords: i64 = users_table::table
        .filter(users_table::id.eq(&id))
        .filter(users_table::hashed_password.not_like("!%"))
        .count()
        .get_result(conn)?;
    let identities: i64 = upstream_identities::table
        .filter(upstream_identities::user_id.eq(&id))
        .count()
        .get_result(conn)?;
    let passkeys: i64 = passkeys::table
        .filter(passkeys::user_id.eq(&id))
        .count()
        .get_result(conn)?;
    Ok(passwords + identities + passkeys)
}

/// What [`unlink`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlink {
    /// Every account of the provider linked to the user is gone.
    Removed,
    /// The user has no account of this provider.
    NotLinked,
    /// Removing them would leave the user no way to sign in: nothing changed.
    LastSignInMethod,
}

impl Happened for Unlink {
    fn happened(&self) -> bool {
        *self == Unlink::Removed
    }
}

/// Removes the accounts of `provider` (a key) linked to the user (only the one of
/// `subject` when given), unless that would leave them no way to sign in; with its
/// effects, in one transaction. The user's row is touched first, so two removals for
/// one user run one after the other (each sees what the other left) on PostgreSQL as
/// on SQLite; a refusal rolls the touch back.
pub fn unlink(
    conn: &mut DbConnection,
    user_id: UserId,
    provider: &str,
    subject: Option<&str>,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<Unlink> {
    /// Why the transaction did not commit.
    enum Abort {
        Refused(Unlink),
        Db(diesel::result::Error),
    }
    impl From<diesel::result::Error> for Abort {
        fn from(e: diesel::result::Error) -> Self {
            Abort::Db(e)
        }
    }
    let id = user_id.to_string();
    let outcome = conn.transaction::<_, Abort, _>(|c| {
        let touched = diesel::update(users_table::table.find(&id))
            .set(users_table::updated_at.eq(now_ms))
            .execute(c)?;
        let linked: Vec<(String, String)> = upstream_identities::table
            .filter(upstream_identities::user_id.eq(&id))
            .filter(upstream_identities::oauth_name.eq(provider))
            .select((upstream_identities::id, upstream_identities::account_id))
            .load(c)?;
        let ids: Vec<String> = linked
            .into_iter()
            .filter(|(_, s)| subject.is_none_or(|wanted| wanted == s))
            .map(|(row, _)| row)
            .collect();
        if touched == 0 || ids.is_empty() {
            return Err(Abort::Refused(Unlink::NotLinked));
        }
        if sign_in_methods(c, user_id)? - (ids.len() as i64) < 1 {
            return Err(Abort::Refused(Unlink::LastSignInMethod));
        }
        diesel::delete(upstream_identities::table.filter(upstream_identities::id.eq_any(&ids)))
            .execute(c)?;
        effects.write(c)?;
        Ok(Unlink::Removed)
    });
    match outcome {
        Ok(done) | Err(Abort::Refused(done)) => Ok(done),
        Err(Abort::Db(e)) => Err(e),
    }
}
