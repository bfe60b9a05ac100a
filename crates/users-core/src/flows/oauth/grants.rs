//! The person's side of the provider (docs/oauth-provider.md): the apps they let in
//! (`GET /users/me/grants`) and taking that back (`DELETE /users/me/grants/{client_id}`:
//! the consent is forgotten and every token of that app for them ends at once).

use users_db::oauth as db;
use users_domain::oauth::parse_scope;
use users_domain::{Timestamp, UserId};

use super::clients::ClientMetadata;
use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::{Core, Fault};

/// An app the person let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantInfo {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: Timestamp,
    /// The last use of any of its live grants (a refresh), else of the consent.
    pub last_used_at: Option<Timestamp>,
}

/// The person's consents, oldest first.
#[tracing::instrument(level = "debug", name = "oauth::grants::list", skip_all)]
pub async fn list(core: &Core, user_id: UserId) -> Result<Vec<GrantInfo>, Fault> {
    let (consents, uses) = core
        .store
        .run(move |c| {
            Ok::<_, users_db::DbError>((
                db::consents_of(c, user_id)?,
                db::grant_use_of(c, user_id)?,
            ))
        })
        .await?;
    let mut out = Vec::with_capacity(consents.len());
    for (consent, client) in consents {
        let metadata: ClientMetadata =
            serde_json::from_str(&client.metadata).map_err(Fault::internal)?;
        let used = uses
            .iter()
            .filter(|(id, _)| *id == consent.client_id)
            .map(|(_, at)| *at)
            .chain(consent.last_used_at)
            .max();
        out.push(GrantInfo {
            client_name: metadata.display_name(&consent.client_id).to_owned(),
            client_id: consent.client_id,
            scopes: parse_scope(&consent.scopes).unwrap_or_default(),
            granted_at: Timestamp::from_millis(consent.granted_at),
            last_used_at: used.map(Timestamp::from_millis),
        });
    }
    Ok(out)
}

/// Forgets the consent and ends the app's grants for the person; `false` when they had
/// neither.
#[tracing::instrument(level = "debug", name = "oauth::grants::revoke", skip_all)]
pub async fn revoke(
    core: &Core,
    user_id: UserId,
    client_id: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<bool, Fault> {
    let event =
        Event::new(EventType::OauthGrantRevoked, Some(user_id)).with("client_id", client_id);
    let change = Change::new(vec![event], client, now);
    let id = client_id.to_owned();
    let revoked = core
        .apply(change, move |c, raised| {
            db::revoke_consent(c, user_id, &id, now.millis(), raised.effects())
        })
        .await?;
    if revoked {
        tracing::info!(user_id = %user_id, client_id, "grant revoked by its person");
    }
    Ok(revoked)
}
