//! Creating an account.

use secrecy::{ExposeSecret, SecretString};
use users_db::users::{self, Created, NewUser};
use users_db::DbError;
use users_domain::{EmailAddress, Timestamp, User, UserId};

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::{Core, Counters, Fault};

/// A new account. Through the API it is always active, not superuser and not
/// verified; the command line may create superusers and verified users.
pub struct NewAccount {
    pub email: EmailAddress,
    pub password: SecretString,
    pub is_superuser: bool,
    pub is_verified: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The password policy refused the password; the reason is for the user.
    #[error("password refused: {0}")]
    InvalidPassword(String),
    #[error("a user with this email already exists")]
    AlreadyExists,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for RegisterError {
    fn from(e: DbError) -> Self {
        RegisterError::Fault(e.into())
    }
}

/// Password policy first, then the (case-insensitive) duplicate check, then the hash,
/// then one INSERT; a racing duplicate is caught by the unique index and writes nothing.
#[tracing::instrument(level = "debug", name = "register::register", skip_all)]
pub async fn register(
    core: &Core,
    account: NewAccount,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<User, RegisterError> {
    let NewAccount {
        email,
        password,
        is_superuser,
        is_verified,
    } = account;
    core.policy
        .check(password.expose_secret(), email.as_str())
        .map_err(|r| RegisterError::InvalidPassword(r.reason()))?;
    let lookup_key = email.key();
    let exists = core
        .store
        .run(move |c| users::find_by_email_key(c, &lookup_key).map(|u| u.is_some()))
        .await?;
    if exists {
        return Err(RegisterError::AlreadyExists);
    }
    let hashed_password = core.hasher.hash(password).await.map_err(Fault::from)?;
    let user = User {
        id: UserId::new_v4(),
        email: email.into_string(),
        is_active: true,
        is_superuser,
        is_verified,
    };
    let row = NewUser::new(&user, hashed_password, now.millis());
    let event = Event::new(EventType::UserRegistered, Some(user.id)).with("method", "password");
    let change = Change::new(vec![event], client, now);
    let created = core
        .apply(change, move |c, raised| {
            users::create(c, &row, raised.effects())
        })
        .await?;
    if created == Created::EmailTaken {
        return Err(RegisterError::AlreadyExists);
    }
    tracing::info!(user_id = %user.id, "user registered");
    Counters::inc(&core.counters.registrations);
    Ok(user)
}
