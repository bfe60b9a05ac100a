//! The second factor (docs/second-factor.md): TOTP, recovery codes, and the sign-ins
//! waiting for their second step. Every change that touches more than one row (confirming
//! TOTP with its recovery codes and the sessions it ends, resetting every factor) is one
//! function and one transaction here.

use diesel::prelude::*;
use users_domain::UserId;

use crate::effects::transaction;
use crate::rows::session::EndSessions;
use crate::schema::{mfa_challenges, passkeys, recovery_codes, sessions, totp_factors, users};
use crate::{DbConnection, Effects};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = totp_factors)]
pub struct TotpRow {
    pub user_id: String,
    pub secret_sealed: String,
    pub pending_session_id: Option<String>,
    pub confirmed_at: Option<i64>,
    pub last_step: i64,
    pub created_at: i64,
}

impl TotpRow {
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

pub fn totp_of(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Option<TotpRow>> {
    totp_factors::table
        .find(user_id.to_string())
        .select(TotpRow::as_select())
        .first(conn)
        .optional()
}

/// Starts (or restarts) a pending TOTP enrolment bound to the session that asked; refused
/// (`false`) when the user has a confirmed one.
pub fn start_totp(
    conn: &mut DbConnection,
    user_id: UserId,
    secret_sealed: &str,
    session_id: Option<&str>,
    now_ms: i64,
) -> QueryResult<bool> {
    conn.transaction(|c| {
        crate::users::lock(c, user_id)?;
        if totp_of(c, user_id)?.is_some_and(|t| t.is_confirmed()) {
            return Ok(false);
        }
        diesel::delete(totp_factors::table.find(user_id.to_string())).execute(c)?;
        diesel::insert_into(totp_factors::table)
            .values((
                totp_factors::user_id.eq(user_id.to_string()),
                totp_factors::secret_sealed.eq(secret_sealed),
                totp_factors::pending_session_id.eq(session_id),
                totp_factors::last_step.eq(0i64),
                totp_factors::created_at.eq(now_ms),
            ))
            .execute(c)?;
        Ok(true)
    })
}

/// What confirming TOTP changes, besides the factor itself.
#[derive(Debug, Clone)]
pub struct TotpConfirmation {
    /// The session that started the enrolment: it must be the one confirming.
    pub session_id: Option<String>,
    /// The time step of the code that confirmed it (used up).
    pub step: i64,
    /// Hashes of the new recovery codes (the old set goes).
    pub recovery_code_hashes: Vec<String>,
    /// The user's other sessions end; the confirming one becomes `aal` 2.
    pub end_others: EndSessions,
    pub now_ms: i64,
}

/// Confirms a pending enrolment of the same session, with its recovery codes, the
/// confirming session raised to `aal` 2 and the others ended: one transaction.
/// `false` when there is no such pending enrolment.
pub fn confirm_totp(
    conn: &mut DbConnection,
    user_id: UserId,
    confirmation: &TotpConfirmation,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let pending = totp_factors::table
            .find(user_id.to_string())
            .filter(totp_factors::confirmed_at.is_null())
            .filter(
                totp_factors::pending_session_id
                    .eq(confirmation.session_id.clone().unwrap_or_default()),
            );
        let n = diesel::update(pending)
            .set((
                totp_factors::confirmed_at.eq(Some(confirmation.now_ms)),
                totp_factors::last_step.eq(confirmation.step),
                totp_factors::pending_session_id.eq(None::<String>),
            ))
            .execute(c)?;
        if n == 0 {
            return Ok(false);
        }
        // set up now: marked when the address is unproven (see `crate::guards`); and
        // tokens without a session issued before it stop working, as the user's other
        // sessions do
        let unverified = crate::guards::unverified(c, user_id)?;
        diesel::update(totp_factors::table.find(user_id.to_string()))
            .set(totp_factors::unverified_at_setup.eq(unverified))
            .execute(c)?;
        diesel::update(users::table.find(user_id.to_string()))
            .set(users::tokens_valid_after.eq(confirmation.now_ms))
            .execute(c)?;
        replace_codes_in(
            c,
            user_id,
            &confirmation.recovery_code_hashes,
            confirmation.now_ms,
        )?;
        if let Some(sid) = &confirmation.session_id {
            diesel::update(sessions::table.find(sid))
                .set(sessions::aal.eq(2i64))
                .execute(c)?;
        }
        crate::rows::session::end_all_in(c, &confirmation.end_others)?;
        Ok(true)
    })
}

/// Uses up a TOTP time step: `true` only if it is later than every step used before
/// (so a code is accepted once, even by two replicas at the same instant).
pub fn use_totp_step(conn: &mut DbConnection, user_id: UserId, step: i64) -> QueryResult<bool> {
    diesel::update(
        totp_factors::table
            .find(user_id.to_string())
            .filter(totp_factors::confirmed_at.is_not_null())
            .filter(totp_factors::last_step.lt(step)),
    )
    .set(totp_factors::last_step.eq(step))
    .execute(conn)
    .map(|n| n > 0)
}

/// Removes TOTP and the recovery codes, with the effects. `false` when there was no
/// confirmed TOTP.
pub fn disable_totp(
    conn: &mut DbConnection,
    user_id: UserId,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let n = diesel::delete(
            totp_factors::table
                .find(user_id.to_string())
                .filter(totp_factors::confirmed_at.is_not_null()),
        )
        .execute(c)?;
        if n == 0 {
            return Ok(false);
        }
        diesel::delete(
            recovery_codes::table.filter(recovery_codes::user_id.eq(user_id.to_string())),
        )
        .execute(c)?;
        Ok(true)
    })
}

fn replace_codes_in(
    conn: &mut DbConnection,
    user_id: UserId,
    hashes: &[String],
    now_ms: i64,
) -> QueryResult<()> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id.to_string())))
        .execute(conn)?;
    for hash in hashes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::code_hash.eq(hash),
                recovery_codes::user_id.eq(user_id.to_string()),
                recovery_codes::created_at.eq(now_ms),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// A new set of recovery codes; the old set dies.
pub fn replace_recovery_codes(
    conn: &mut DbConnection,
    user_id: UserId,
    hashes: &[String],
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<()> {
    transaction(conn, effects, |c| {
        replace_codes_in(c, user_id, hashes, now_ms)
    })
}

/// Uses up a recovery code (with its effects, e.g. the notice mail): `true` only for an
/// unused code of this user.
pub fn use_recovery_code(
    conn: &mut DbConnection,
    user_id: UserId,
    code_hash: &str,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        diesel::update(
            recovery_codes::table
                .find(code_hash)
                .filter(recovery_codes::user_id.eq(user_id.to_string()))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(Some(now_ms)))
        .execute(c)
        .map(|n| n > 0)
    })
}

pub fn recovery_codes_left(conn: &mut DbConnection, user_id: UserId) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id.to_string()))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

/// The factors a user has: confirmed TOTP, passkeys, unused recovery codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Factors {
    pub totp: bool,
    pub passkeys: i64,
    pub recovery_codes_left: i64,
}

impl Factors {
    /// Whether sign-ins need a second step.
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

pub fn factors_of(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Factors> {
    let totp = totp_of(conn, user_id)?.is_some_and(|t| t.is_confirmed());
    let passkeys = passkeys::table
        .filter(passkeys::user_id.eq(user_id.to_string()))
        .count()
        .get_result(conn)?;
    Ok(Factors {
        totp,
        passkeys,
        recovery_codes_left: recovery_codes_left(conn, user_id)?,
    })
}

/// Removes every factor of a user (TOTP, recovery codes, passkeys) and ends their
/// sessions, with the effects: one transaction. `false` when there is no such user.
pub fn reset(conn: &mut DbConnection, end: &EndSessions, effects: &Effects) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let id = end.user_id;
        if !crate::users::lock(c, id)? {
            return Ok(false);
        }
        diesel::delete(totp_factors::table.find(id.to_string())).execute(c)?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id.to_string())))
            .execute(c)?;
        diesel::delete(passkeys::table.filter(passkeys::user_id.eq(id.to_string()))).execute(c)?;
        crate::rows::session::end_all_in(c, end)?;
        Ok(true)
    })
}

/// A first factor waiting for its second (the row of an mfa_token).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_challenges)]
pub struct MfaChallenge {
    /// The SHA-256 of the mfa_token.
    pub id: String,
    pub user_id: String,
    pub method: String,
    /// `jwt` or `cookie`: what the second step answers.
    pub transport: String,
    pub offline_access: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub failures: i64,
    pub expires_at: i64,
}

/// Stores a first factor waiting for its second; `give_back`: the attempt the first
/// factor reserved against the account's lock, given back in the same write (a correct
/// password neither clears nor adds to the count while the second step is pending).
pub fn create_challenge(
    conn: &mut DbConnection,
    row: &MfaChallenge,
    now_ms: i64,
    give_back: Option<(&str, &crate::limits::Reserved)>,
) -> QueryResult<()> {
    conn.transaction(|c| {
        diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(now_ms)))
            .execute(c)?;
        diesel::insert_into(mfa_challenges::table)
            .values(row)
            .execute(c)?;
        if let Some((key, reserved)) = give_back {
            crate::limits::undo_attempt(c, key, reserved)?;
        }
        Ok(())
    })
}

/// The live challenge of this id.
pub fn find_challenge(
    conn: &mut DbConnection,
    id: &str,
    now_ms: i64,
) -> QueryResult<Option<MfaChallenge>> {
    mfa_challenges::table
        .find(id)
        .filter(mfa_challenges::expires_at.gt(now_ms))
        .select(MfaChallenge::as_select())
        .first(conn)
        .optional()
}

/// Reserves one attempt at the live challenge `id`, atomically: the attempt counter moves
/// on only while it is below `max`, so however many codes arrive at once, at most `max`
/// are ever evaluated against one mfa_token. The challenge as it stands after, or
/// `None` (expired, spent, or out of attempts).
pub fn reserve_attempt(
    conn: &mut DbConnection,
    id: &str,
    now_ms: i64,
    max: i64,
) -> QueryResult<Option<MfaChallenge>> {
    conn.transaction(|c| {
        let n = diesel::update(
            mfa_challenges::table
                .find(id)
                .filter(mfa_challenges::expires_at.gt(now_ms))
                .filter(mfa_challenges::failures.lt(max)),
        )
        .set(mfa_challenges::failures.eq(mfa_challenges::failures + 1i64))
        .execute(c)?;
        if n == 0 {
            return Ok(None);
        }
        mfa_challenges::table
            .find(id)
            .select(MfaChallenge::as_select())
            .first(c)
            .optional()
    })
}

/// After a wrong code: the challenge goes once its attempts are used up.
pub fn drop_if_exhausted(conn: &mut DbConnection, id: &str, max: i64) -> QueryResult<()> {
    diesel::delete(
        mfa_challenges::table
            .find(id)
            .filter(mfa_challenges::failures.ge(max)),
    )
    .execute(conn)
    .map(|_| ())
}

/// Spends the challenge: only the first caller gets `true` (single use).
pub fn spend_challenge(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(mfa_challenges::table.find(id))
        .execute(conn)
        .map(|n| n > 0)
}
