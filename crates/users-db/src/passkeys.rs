//! Passkeys (WebAuthn credentials) and the ceremonies in progress. A ceremony's state is
//! kept here, not in a process, so any replica finishes what another started; taking it
//! deletes it, so a challenge works once.

use diesel::prelude::*;
use users_domain::UserId;

use crate::effects::{or_taken, transaction, Happened};
use crate::rows::session::EndSessions;
use crate::schema::{passkeys, users, webauthn_challenges};
use crate::{DbConnection, Effects};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    /// base64url of the credential id.
    pub credential_id: String,
    pub name: String,
    /// The credential as webauthn-rs serialises it (public key material only).
    pub credential: String,
    pub sign_count: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Adds a passkey, with its effects, marked when the user's address is unproven (see
/// [`crate::guards`]). The user's first passkey also ends `first_ends` (the user's
/// other sessions, as enabling TOTP does) and revokes tokens without a session issued
/// before it.
pub fn add(
    conn: &mut DbConnection,
    row: &PasskeyRow,
    first_ends: &EndSessions,
    effects: &Effects,
) -> QueryResult<Added> {
    let added = conn.transaction(|c| {
        let user_id = first_ends.user_id;
        crate::users::lock(c, user_id)?;
        let had: i64 = passkeys::table
            .filter(passkeys::user_id.eq(&row.user_id))
            .count()
            .get_result(c)?;
        let unverified = crate::guards::unverified(c, user_id)?;
        diesel::insert_into(passkeys::table)
            .values((row, passkeys::unverified_at_setup.eq(unverified)))
            .execute(c)?;
        let first = had == 0;
        if first {
            crate::rows::session::end_all_in(c, first_ends)?;
            diesel::update(users::table.find(user_id.to_string()))
                .set(users::tokens_valid_after.eq(first_ends.now_ms))
                .execute(c)?;
        }
        effects.write(c)?;
        Ok(if first { Added::First } else { Added::Another })
    });
    or_taken(added, Added::AlreadyRegistered)
}

/// What [`add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The user's first passkey: their other sessions ended.
    First,
    Another,
    /// This authenticator's credential is registered already: nothing was written.
    AlreadyRegistered,
}

impl Happened for Added {
    fn happened(&self) -> bool {
        *self != Added::AlreadyRegistered
    }
}

/// The user's passkeys, oldest first.
pub fn of_user(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Vec<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id.to_string()))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(PasskeyRow::as_select())
        .load(conn)
}

pub fn by_credential(
    conn: &mut DbConnection,
    credential_id: &str,
) -> QueryResult<Option<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(PasskeyRow::as_select())
        .first(conn)
        .optional()
}

/// Removes one of the user's passkeys, with its effects; `false` when they have none
/// with that id.
pub fn remove(
    conn: &mut DbConnection,
    user_id: UserId,
    id: &str,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        diesel::delete(
            passkeys::table
                .find(id)
                .filter(passkeys::user_id.eq(user_id.to_string())),
        )
        .execute(c)
        .map(|n| n > 0)
    })
}

/// Records a successful assertion: the new signature counter, the updated credential.
/// Refused (`false`) when the counter did not move forward (a cloned authenticator; or a
/// replay racing this one), unless both are 0 (authenticators without a counter).
pub fn record_use(
    conn: &mut DbConnection,
    id: &str,
    counter: i64,
    credential: &str,
    now_ms: i64,
) -> QueryResult<bool> {
    let changes = (
        passkeys::sign_count.eq(counter),
        passkeys::credential.eq(credential),
        passkeys::last_used_at.eq(Some(now_ms)),
    );
    let n = if counter == 0 {
        // no counter at all: it must never have had one
        diesel::update(
            passkeys::table
                .find(id)
                .filter(passkeys::sign_count.eq(0i64)),
        )
        .set(changes)
        .execute(conn)?
    } else {
        diesel::update(
            passkeys::table
                .find(id)
                .filter(passkeys::sign_count.lt(counter)),
        )
        .set(changes)
        .execute(conn)?
    };
    Ok(n > 0)
}

/// A ceremony in progress.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webauthn_challenges)]
pub struct Ceremony {
    pub id: String,
    /// `register`, `login` (discoverable) or `mfa` (a second step).
    pub kind: String,
    /// The user a registration or a second step is for.
    pub user_id: Option<String>,
    /// The mfa challenge a second step belongs to.
    pub mfa_id: Option<String>,
    /// webauthn-rs's serialised state.
    pub state: String,
    pub expires_at: i64,
}

pub fn save_ceremony(conn: &mut DbConnection, row: &Ceremony, now_ms: i64) -> QueryResult<()> {
    diesel::delete(webauthn_challenges::table.filter(webauthn_challenges::expires_at.lt(now_ms)))
        .execute(conn)?;
    diesel::insert_into(webauthn_challenges::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Takes a live ceremony out: only the first caller gets it.
pub fn take_ceremony(
    conn: &mut DbConnection,
    id: &str,
    now_ms: i64,
) -> QueryResult<Option<Ceremony>> {
    let Some(row) = webauthn_challenges::table
        .find(id)
        .select(Ceremony::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let deleted = diesel::delete(webauthn_challenges::table.find(id)).execute(conn)?;
    Ok((deleted == 1 && row.expires_at > now_ms).then_some(row))
}
