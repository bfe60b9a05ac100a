//! Registered clients (RFC 7591 / 7592 shapes; docs/oauth-provider.md): registration by
//! a superuser (or, with `OAUTH_OPEN_REGISTRATION`, anyone, public clients only), the
//! superuser's list, replacement, deletion and secret rotation, and client
//! authentication at the token, introspection and revocation endpoints. A secret is
//! 256 random bits kept as its SHA-256: checking it costs a hash, not a slow KDF.

use serde_json::Value;
use users_db::oauth::{self as db, ClientRow};
use users_domain::crypto::{constant_time_eq, random_token, token_hash};
use users_domain::{Timestamp, UserId};

use super::OAuthError;
use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::throttle::{self, ThrottleError};
use crate::{Core, Fault};

mod metadata;
use metadata::metadata_error;
pub use metadata::{ClientMetadata, AUTH_METHODS, ID_TOKEN_ALGORITHMS};

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub metadata: ClientMetadata,
    pub created_at: Timestamp,
    secret_hash: Option<String>,
}

impl Client {
    fn from_row(row: ClientRow) -> Result<Client, Fault> {
        let metadata = serde_json::from_str(&row.metadata).map_err(Fault::internal)?;
        Ok(Client {
            client_id: row.client_id,
            metadata,
            created_at: Timestamp::from_millis(row.created_at),
            secret_hash: row.secret_hash,
        })
    }
}

/// A registration's answer: the client, and its secret (shown once).
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    pub client_secret: Option<String>,
}

/// Who registers: a superuser, or anyone under `OAUTH_OPEN_REGISTRATION`.
#[derive(Debug, Clone, Copy)]
pub enum Registrar {
    Superuser(UserId),
    Anyone,
}

/// The scopes beyond the standard ones a client may be registered for: the roles'
/// permissions (docs/roles-and-api-keys.md).
pub(crate) async fn known_permissions(core: &Core) -> Result<Vec<String>, Fault> {
    let roles = crate::flows::roles::list(core).await?;
    let mut all: Vec<String> = roles.into_iter().flat_map(|r| r.permissions).collect();
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

/// The roles of a client (what its client-credentials tokens may hold): their names
/// and the union of their permissions, both sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRoles {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

impl ClientRoles {
    fn of(rows: &[users_db::roles::RoleRow]) -> ClientRoles {
        let roles = rows.iter().map(|r| r.name.clone()).collect();
        let mut permissions: Vec<String> = rows.iter().flat_map(|r| r.permission_list()).collect();
        permissions.sort_unstable();
        permissions.dedup();
        ClientRoles { roles, permissions }
    }
}

/// `GET /oauth/clients/{client_id}/roles`.
#[tracing::instrument(level = "debug", name = "oauth::clients::roles_of", skip_all)]
pub async fn roles_of(core: &Core, client_id: &str) -> Result<ClientRoles, OAuthError> {
    if get(core, client_id).await?.is_none() {
        return Err(OAuthError::UnknownClient);
    }
    let id = client_id.to_owned();
    let rows = core.store.run(move |c| db::client_roles(c, &id)).await?;
    Ok(ClientRoles::of(&rows))
}

/// `PUT /oauth/clients/{client_id}/roles`: replaces the set; an unknown role is
/// `invalid_request` and nothing changes.
#[tracing::instrument(level = "debug", name = "oauth::clients::set_roles", skip_all)]
pub async fn set_roles(
    core: &Core,
    by: UserId,
    client_id: &str,
    names: Vec<String>,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<ClientRoles, OAuthError> {
    let event = Event::new(EventType::OauthClientUpdated, None)
        .by(Some(by))
        .with("client_id", client_id)
        .with("roles", names.clone());
    let change = Change::new(vec![event], client, now);
    let id = client_id.to_owned();
    let set = core
        .apply(change, move |c, raised| {
            db::set_client_roles(c, &id, &names, now.millis(), raised.effects())
        })
        .await?;
    match set {
        db::SetClientRoles::Set(rows) => Ok(ClientRoles::of(&rows)),
        db::SetClientRoles::NoSuchClient => Err(OAuthError::UnknownClient),
        db::SetClientRoles::UnknownRole(name) => Err(OAuthError::InvalidRequest(format!(
            "no role is named `{name}`"
        ))),
    }
}

fn new_secret() -> (String, String) {
    let secret = random_token(32);
    let hash = token_hash(&secret);
    (secret, hash)
}

/// `POST /oauth/clients`.
#[tracing::instrument(level = "debug", name = "oauth::clients::register", skip_all)]
pub async fn register(
    core: &Core,
    by: Registrar,
    body: &Value,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Registered, OAuthError> {
    let extra = known_permissions(core).await?;
    let mut metadata = ClientMetadata::from_json(body, &extra)?;
    let actor = match by {
        Registrar::Superuser(id) => Some(id),
        Registrar::Anyone => {
            if !core.config.oauth_open_registration {
                return Err(OAuthError::InvalidToken);
            }
            if !metadata.is_public() {
                return Err(metadata_error(
                    "open registration is for public clients only (token_endpoint_auth_method none)",
                ));
            }
            if metadata.skip_consent {
                return Err(metadata_error(
                    "a client registered without a token cannot skip consent",
                ));
            }
            metadata.registered_openly = true;
            None
        }
    };
    // the provider's keys exist, and are published, before any token they sign
    core.keys.ensure_all(now).await?;
    let client_id = random_token(16);
    let (client_secret, secret_hash) = if metadata.is_public() {
        (None, None)
    } else {
        let (s, h) = new_secret();
        (Some(s), Some(h))
    };
    let row = ClientRow {
        client_id: client_id.clone(),
        secret_hash: secret_hash.clone(),
        metadata: serde_json::to_string(&metadata).map_err(Fault::internal)?,
        created_at: now.millis(),
        updated_at: now.millis(),
    };
    let event = Event::new(EventType::OauthClientCreated, None)
        .by(actor)
        .with("client_id", client_id.clone())
        .with("client_name", metadata.client_name.clone());
    let change = Change::new(vec![event], client, now);
    core.apply(change, move |c, raised| {
        db::insert_client(c, &row, raised.effects())
    })
    .await?;
    tracing::info!(client_id = %client_id, "OAuth client registered");
    Ok(Registered {
        client: Client {
            client_id,
            metadata,
            created_at: now,
            secret_hash,
        },
        client_secret,
    })
}

/// A client by its id, read fresh (coalesced with the other requests' client reads: one
/// trip for all that arrive together, beside SQLite's writer).
#[tracing::instrument(level = "debug", name = "oauth::clients::get", skip_all)]
pub async fn get(core: &Core, client_id: &str) -> Result<Option<Client>, Fault> {
    let row = core.client_rows.get(client_id.to_owned()).await?;
    row.map(Client::from_row).transpose()
}

/// Every client, oldest first.
#[tracing::instrument(level = "debug", name = "oauth::clients::list", skip_all)]
pub async fn list(core: &Core) -> Result<Vec<Client>, Fault> {
    let rows = core.store.run(db::list_clients).await?;
    rows.into_iter().map(Client::from_row).collect()
}

/// `PUT /oauth/clients/{client_id}`: replaces the metadata (the secret stays; a client
/// made public loses it, one made confidential gets one, answered once).
#[tracing::instrument(level = "debug", name = "oauth::clients::replace", skip_all)]
pub async fn replace(
    core: &Core,
    by: UserId,
    client_id: &str,
    body: &Value,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Registered, OAuthError> {
    let existing = get(core, client_id)
        .await?
        .ok_or(OAuthError::UnknownClient)?;
    let extra = known_permissions(core).await?;
    let metadata = ClientMetadata::from_json(body, &extra)?;
    let (client_secret, secret_hash) = match (metadata.is_public(), &existing.secret_hash) {
        (true, _) => (None, Some(None)),
        (false, Some(_)) => (None, None),
        (false, None) => {
            let (s, h) = new_secret();
            (Some(s), Some(Some(h)))
        }
    };
    let json = serde_json::to_string(&metadata).map_err(Fault::internal)?;
    let event = Event::new(EventType::OauthClientUpdated, None)
        .by(Some(by))
        .with("client_id", client_id);
    let change = Change::new(vec![event], client, now);
    let id = client_id.to_owned();
    let hash = secret_hash.clone();
    let updated = core
        .apply(change, move |c, raised| {
            db::update_client(
                c,
                &id,
                Some(&json),
                hash.as_ref().map(|h| h.as_deref()),
                now.millis(),
                raised.effects(),
            )
        })
        .await?;
    if !updated {
        return Err(OAuthError::UnknownClient);
    }
    Ok(Registered {
        client: Client {
            client_id: client_id.to_owned(),
            metadata,
            created_at: existing.created_at,
            secret_hash: match secret_hash {
                Some(h) => h,
                None => existing.secret_hash,
            },
        },
        client_secret,
    })
}

/// `DELETE /oauth/clients/{client_id}`: every grant and token of the client ends.
#[tracing::instrument(level = "debug", name = "oauth::clients::delete", skip_all)]
pub async fn delete(
    core: &Core,
    by: UserId,
    client_id: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<bool, Fault> {
    let event = Event::new(EventType::OauthClientDeleted, None)
        .by(Some(by))
        .with("client_id", client_id);
    let change = Change::new(vec![event], client, now);
    let id = client_id.to_owned();
    core.apply(change, move |c, raised| {
        db::delete_client(c, &id, now.millis(), raised.effects())
    })
    .await
}

/// `POST /oauth/clients/{client_id}/secret`: a new secret; the old one stops at once.
#[tracing::instrument(level = "debug", name = "oauth::clients::rotate_secret", skip_all)]
pub async fn rotate_secret(
    core: &Core,
    by: UserId,
    client_id: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Registered, OAuthError> {
    let existing = get(core, client_id)
        .await?
        .ok_or(OAuthError::UnknownClient)?;
    if existing.metadata.is_public() {
        return Err(metadata_error("a public client has no secret"));
    }
    let (secret, hash) = new_secret();
    let event = Event::new(EventType::OauthClientSecretRotated, None)
        .by(Some(by))
        .with("client_id", client_id);
    let change = Change::new(vec![event], client, now);
    let (id, h) = (client_id.to_owned(), hash.clone());
    let updated = core
        .apply(change, move |c, raised| {
            db::update_client(c, &id, None, Some(Some(&h)), now.millis(), raised.effects())
        })
        .await?;
    if !updated {
        return Err(OAuthError::UnknownClient);
    }
    Ok(Registered {
        client: Client {
            secret_hash: Some(hash),
            ..existing
        },
        client_secret: Some(secret),
    })
}

/// How a client presented itself at the token, introspection or revocation endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    /// From HTTP Basic (`client_secret_basic`).
    pub basic: Option<(String, String)>,
    /// `client_id` of the form.
    pub form_id: Option<String>,
    /// `client_secret` of the form (`client_secret_post`).
    pub form_secret: Option<String>,
}

/// Authenticates a client strictly by the method it was registered with. A failure
/// counts toward the caller's per-IP budget (`oauth-client-auth`).
#[tracing::instrument(level = "debug", name = "oauth::clients::authenticate", skip_all)]
pub async fn authenticate(
    core: &Core,
    auth: &ClientAuth,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<Client, OAuthError> {
    let presented = Presented::of(auth)?;
    // read fresh for every request (a rotated or deleted client stops at once), in one
    // trip with the other requests' that arrive together
    let row = core.client_rows.get(presented.id.clone()).await?;
    authenticate_with(core, auth, &presented, row, from, now).await
}

/// [`authenticate`], with the client's row read by the caller (in the same trip as what
/// else the request reads, e.g. introspection).
pub(crate) async fn authenticate_with(
    core: &Core,
    auth: &ClientAuth,
    presented: &Presented,
    row: Option<ClientRow>,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<Client, OAuthError> {
    match presented.judge(row)? {
        Some(client) => Ok(client),
        None => {
            if let Some(ip) = &from.ip {
                if let Err(ThrottleError::Limited(l)) =
                    throttle::hit(core, "oauth-client-auth", ip, now).await
                {
                    return Err(OAuthError::Limited {
                        retry_after_secs: l.retry_after_secs,
                    });
                }
            }
            Err(OAuthError::InvalidClient {
                basic: auth.basic.is_some(),
            })
        }
    }
}

/// The client authentication a request presents: which client, its secret if any, and
/// so which method.
#[derive(Debug)]
pub(crate) struct Presented {
    pub(crate) id: String,
    secret: Option<String>,
    method: &'static str,
}

/// The longest client id looked up (the ids this service issues are far shorter).
const MAX_CLIENT_ID_LEN: usize = 255;

impl Presented {
    /// What `auth` presents; two ways at once, or none at all, are refused here.
    pub(crate) fn of(auth: &ClientAuth) -> Result<Presented, OAuthError> {
        let (id, secret, method) = match (&auth.basic, &auth.form_secret) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::InvalidRequest(
                    "use one way of client authentication, not two".into(),
                ))
            }
            (Some((id, secret)), None) => {
                if auth.form_id.as_deref().is_some_and(|f| f != id) {
                    return Err(OAuthError::InvalidRequest(
                        "`client_id` differs from the one of the Authorization header".into(),
                    ));
                }
                (id.clone(), Some(secret.clone()), "client_secret_basic")
            }
            (None, Some(secret)) => match &auth.form_id {
                Some(id) => (id.clone(), Some(secret.clone()), "client_secret_post"),
                None => {
                    return Err(OAuthError::InvalidRequest(
                        "`client_secret` without `client_id`".into(),
                    ))
                }
            },
            (None, None) => match &auth.form_id {
                Some(id) => (id.clone(), None, "none"),
                None => {
                    return Err(OAuthError::InvalidClient { basic: false });
                }
            },
        };
        // no client has such an id (ours are short and printable): refused before any
        // read, so that it cannot fail the reads it would be batched with (PostgreSQL
        // refuses a NUL byte in text)
        if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN || id.chars().any(char::is_control) {
            return Err(OAuthError::InvalidClient {
                basic: method == "client_secret_basic",
            });
        }
        Ok(Presented { id, secret, method })
    }

    /// The client, when `row` is the presented client's and the presented method and
    /// secret are its own.
    fn judge(&self, row: Option<ClientRow>) -> Result<Option<Client>, Fault> {
        let Some(row) = row.filter(|r| r.client_id == self.id) else {
            return Ok(None);
        };
        let client = Client::from_row(row)?;
        if client.metadata.token_endpoint_auth_method != self.method {
            return Ok(None);
        }
        let ok = match (&self.secret, &client.secret_hash) {
            (None, None) => true,
            (Some(s), Some(h)) => constant_time_eq(token_hash(s).as_bytes(), h.as_bytes()),
            _ => false,
        };
        Ok(ok.then_some(client))
    }
}

/// Whether `secret_hash` is kept (never answered).
pub fn has_secret(client: &Client) -> bool {
    client.secret_hash.is_some()
}
