//! The provider accounts linked to a user (docs/providers.md): listing them, and
//! unlinking a provider unless that would leave the user no way to sign in.

use users_db::upstream::{self, Unlink};
use users_db::DbError;
use users_domain::{Timestamp, UserId};

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::upstream::{key_of, name_of};
use crate::{Core, Fault};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The user has no account of that provider.
    #[error("no identity of this provider is linked")]
    NotLinked,
    /// It is the user's last way to sign in (no usable password, other identity or
    /// passkey).
    #[error("the last way to sign in cannot be removed")]
    LastSignInMethod,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for IdentityError {
    fn from(e: DbError) -> Self {
        IdentityError::Fault(e.into())
    }
}

/// A linked account, as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityInfo {
    /// The provider's name, as in its routes: `google`, `github`, or an OpenID
    /// provider's name.
    pub provider: String,
    /// The account at the provider: `sub`, or GitHub's numeric id.
    pub subject: String,
    /// The email the provider gave at the last sign-in.
    pub email: String,
    pub linked_at: Timestamp,
}

/// The user's linked accounts, newest first.
#[tracing::instrument(level = "debug", name = "identities::list", skip_all)]
pub async fn list(core: &Core, user: UserId) -> Result<Vec<IdentityInfo>, Fault> {
    let rows = core
        .store
        .run(move |c| upstream::identities_of(c, user))
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| IdentityInfo {
            provider: name_of(&row.oauth_name).to_owned(),
            subject: row.account_id,
            email: row.account_email,
            linked_at: Timestamp::from_millis(row.created_at),
        })
        .collect())
}

/// Unlinks every account of the provider named `provider` from the user, or only the
/// one of `subject` when given. A provider no longer configured can still be unlinked.
#[tracing::instrument(level = "debug", name = "identities::unlink", skip_all)]
pub async fn unlink(
    core: &Core,
    user: UserId,
    provider: &str,
    subject: Option<&str>,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), IdentityError> {
    let key = key_of(provider);
    let mut event = Event::new(EventType::IdentityUnlinked, Some(user)).with("provider", provider);
    if let Some(subject) = subject {
        event = event.with("subject", subject);
    }
    let change = Change::new(vec![event], client, now);
    let subject = subject.map(str::to_owned);
    let result = core
        .apply(change, move |c, raised| {
            upstream::unlink(
                c,
                user,
                &key,
                subject.as_deref(),
                now.millis(),
                raised.effects(),
            )
        })
        .await?;
    match result {
        Unlink::Removed => {
            tracing::info!(user_id = %user, provider = %provider, "provider account unlinked");
            Ok(())
        }
        Unlink::NotLinked => Err(IdentityError::NotLinked),
        Unlink::LastSignInMethod => Err(IdentityError::LastSignInMethod),
    }
}
