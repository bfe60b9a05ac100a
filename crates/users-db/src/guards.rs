//! What an account loses when its address is proven to belong to someone else than the
//! person who set it up (docs/security.md): at a takeover by a provider that proves the
//! address, everything the earlier registrant set up; at a proof by mail (a completed
//! reset or verification), what was set up while the address was unproven. These run
//! inside the transaction of the change that proves the address, so the account is
//! never seen half cleared.

use diesel::prelude::*;
use users_domain::UserId;

use crate::schema::{
    api_keys, mfa_challenges, oauth_codes, oauth_consents, passkeys, recovery_codes, sessions,
    totp_factors, upstream_identities, users, webauthn_challenges,
};
use crate::DbConnection;

/// What is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A takeover: every identity, passkey and factor, whenever it was set up.
    Everything,
    /// A proof by mail: what was set up while the account was unverified, except an
    /// identity whose provider verified an email equal to the account's (`email_key`).
    SetUpUnverified { email_key: String },
}

/// What was removed, for the events that record it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleared {
    /// Unlinked identities: (provider key, subject).
    pub identities: Vec<(String, String)>,
    /// Removed passkeys: (id, name).
    pub passkeys: Vec<(String, String)>,
    /// A confirmed TOTP (with its recovery codes) was removed.
    pub totp: bool,
    /// Revoked API keys: (id, name).
    pub api_keys: Vec<(String, String)>,
}

impl Cleared {
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
            && self.passkeys.is_empty()
            && !self.totp
            && self.api_keys.is_empty()
    }
}

/// Removes what `scope` names from the user's account, and every pending enrolment and
/// ceremony (they are worthless without the removed factors and sessions, and one made
/// by the earlier registrant must not finish later). Call inside a transaction.
pub fn clear(
    conn: &mut DbConnection,
    user_id: UserId,
    scope: &Scope,
    now_ms: i64,
) -> QueryResult<Cleared> {
    let id = user_id.to_string();
    let identities = clear_identities(conn, &id, scope)?;
    let passkeys = clear_passkeys(conn, &id, scope)?;
    let totp = clear_totp(conn, &id, scope)?;
    end_grants(conn, &id, scope, now_ms)?;
    let api_keys = revoke_api_keys(conn, &id, scope)?;
    diesel::delete(webauthn_challenges::table.filter(webauthn_challenges::user_id.eq(&id)))
        .execute(conn)?;
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(&id))).execute(conn)?;
    Ok(Cleared {
        identities,
        passkeys,
        totp,
        api_keys,
    })
}

/// The identities `scope` names, unlinked: (provider key, subject) of each.
fn clear_identities(
    conn: &mut DbConnection,
    id: &str,
    scope: &Scope,
) -> QueryResult<Vec<(String, String)>> {
    let mut removed = Vec::new();
    let identities: Vec<(String, String, String, String, bool, bool)> = upstream_identities::table
        .filter(upstream_identities::user_id.eq(id))
        .order(upstream_identities::created_at.asc())
        .select((
            upstream_identities::id,
            upstream_identities::oauth_name,
            upstream_identities::account_id,
            upstream_identities::account_email,
            upstream_identities::unverified_at_setup,
            upstream_identities::email_verified,
        ))
        .load(conn)?;
    for (row_id, provider, subject, email, unverified, email_verified) in identities {
        let goes = match scope {
            Scope::Everything => true,
            Scope::SetUpUnverified { email_key } => {
                let owners = email_verified && users_domain::email::email_key(&email) == *email_key;
                unverified && !owners
            }
        };
        if goes {
            diesel::delete(upstream_identities::table.find(&row_id)).execute(conn)?;
            removed.push((provider, subject));
        }
    }
    Ok(removed)
}

/// The passkeys `scope` names, removed: (id, name) of each.
fn clear_passkeys(
    conn: &mut DbConnection,
    id: &str,
    scope: &Scope,
) -> QueryResult<Vec<(String, String)>> {
    let keys = passkeys::table
        .filter(passkeys::user_id.eq(id))
        .into_boxed();
    let keys = match scope {
        Scope::Everything => keys,
        Scope::SetUpUnverified { .. } => keys.filter(passkeys::unverified_at_setup.eq(true)),
    };
    let removed: Vec<(String, String)> = keys
        .select((passkeys::id, passkeys::name))
        .order(passkeys::created_at.asc())
        .load(conn)?;
    for (key_id, _) in &removed {
        diesel::delete(passkeys::table.find(key_id)).execute(conn)?;
    }
    Ok(removed)
}

/// The TOTP factor (with its recovery codes) when `scope` names it or it is pending;
/// whether a confirmed one went.
fn clear_totp(conn: &mut DbConnection, id: &str, scope: &Scope) -> QueryResult<bool> {
    let totp: Option<(Option<i64>, bool)> = totp_factors::table
        .find(id)
        .select((
            totp_factors::confirmed_at,
            totp_factors::unverified_at_setup,
        ))
        .first(conn)
        .optional()?;
    if let Some((confirmed_at, unverified)) = totp {
        let pending = confirmed_at.is_none();
        let goes = pending || matches!(scope, Scope::Everything) || unverified;
        if goes {
            diesel::delete(totp_factors::table.find(id)).execute(conn)?;
            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id)))
                .execute(conn)?;
            return Ok(!pending);
        }
    }
    Ok(false)
}

/// Ends the grants of the provider and forgets the consents and unredeemed codes.
fn end_grants(conn: &mut DbConnection, id: &str, scope: &Scope, now_ms: i64) -> QueryResult<()> {
    // the apps let in while the address was unproven (at a takeover: by the earlier
    // registrant) are not the owner's: their consents, unredeemed codes and grants go
    diesel::delete(oauth_consents::table.filter(oauth_consents::user_id.eq(id))).execute(conn)?;
    diesel::delete(oauth_codes::table.filter(oauth_codes::user_id.eq(id))).execute(conn)?;
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(id))
            .filter(sessions::ended_at.is_null())
            .filter(sessions::method.like(crate::rows::session::GRANT_METHOD_LIKE)),
    )
    .set((
        sessions::ended_at.eq(Some(now_ms)),
        sessions::end_reason.eq(Some(match scope {
            Scope::Everything => "account_taken_over",
            Scope::SetUpUnverified { .. } => "unverified_at_setup",
        })),
    ))
    .execute(conn)?;
    Ok(())
}

/// The API keys `scope` names, revoked: (id, name) of each.
fn revoke_api_keys(
    conn: &mut DbConnection,
    id: &str,
    scope: &Scope,
) -> QueryResult<Vec<(String, String)>> {
    let keys = api_keys::table
        .filter(api_keys::user_id.eq(id))
        .into_boxed();
    let keys = match scope {
        Scope::Everything => keys,
        Scope::SetUpUnverified { .. } => keys.filter(api_keys::unverified_at_setup.eq(true)),
    };
    let revoked: Vec<(String, String)> = keys
        .select((api_keys::id, api_keys::name))
        .order(api_keys::created_at.asc())
        .load(conn)?;
    for (key_id, _) in &revoked {
        diesel::delete(api_keys::table.find(key_id)).execute(conn)?;
    }
    Ok(revoked)
}

/// Whether the user's address is unproven now: what is set up now is marked so.
pub(crate) fn unverified(conn: &mut DbConnection, user_id: UserId) -> QueryResult<bool> {
    let verified: Option<bool> = users::table
        .find(user_id.to_string())
        .select(users::is_verified)
        .first(conn)
        .optional()?;
    Ok(verified == Some(false))
}

/// A proof by mail of the user's address: when the account is unverified, clears what
/// was set up while it was ([`Scope::SetUpUnverified`] with the user's current
/// address). A verified account (a superuser may have verified it) loses nothing.
pub fn clear_unproven(
    conn: &mut DbConnection,
    user_id: UserId,
    now_ms: i64,
) -> QueryResult<Cleared> {
    let user: Option<(String, bool)> = users::table
        .find(user_id.to_string())
        .select((users::email_key, users::is_verified))
        .first(conn)
        .optional()?;
    match user {
        Some((email_key, false)) => {
            clear(conn, user_id, &Scope::SetUpUnverified { email_key }, now_ms)
        }
        _ => Ok(Cleared::default()),
    }
}

/// A verification by mail, which has just marked the account verified: clears what was
/// set up while it was not.
pub fn clear_at_verification(
    conn: &mut DbConnection,
    user_id: UserId,
    now_ms: i64,
) -> QueryResult<Cleared> {
    let key: Option<String> = users::table
        .find(user_id.to_string())
        .select(users::email_key)
        .first(conn)
        .optional()?;
    match key {
        Some(email_key) => clear(conn, user_id, &Scope::SetUpUnverified { email_key }, now_ms),
        None => Ok(Cleared::default()),
    }
}

/// The account is verified by other means than a mail (a superuser): what was set up
/// until now is the owner's, and no later proof removes it.
pub(crate) fn vouch_for_setup(conn: &mut DbConnection, user_id: UserId) -> QueryResult<()> {
    let id = user_id.to_string();
    diesel::update(upstream_identities::table.filter(upstream_identities::user_id.eq(&id)))
        .set(upstream_identities::unverified_at_setup.eq(false))
        .execute(conn)?;
    diesel::update(passkeys::table.filter(passkeys::user_id.eq(&id)))
        .set(passkeys::unverified_at_setup.eq(false))
        .execute(conn)?;
    diesel::update(totp_factors::table.find(&id))
        .set(totp_factors::unverified_at_setup.eq(false))
        .execute(conn)?;
    diesel::update(api_keys::table.filter(api_keys::user_id.eq(&id)))
        .set(api_keys::unverified_at_setup.eq(false))
        .execute(conn)?;
    Ok(())
}

/// The effects a change builds from what it cleared (its events); a failure to build
/// them aborts the change's transaction.
pub(crate) fn effects_of(
    build: impl FnOnce(&Cleared) -> Result<crate::Effects, String>,
    cleared: &Cleared,
) -> QueryResult<crate::Effects> {
    build(cleared).map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))
}
