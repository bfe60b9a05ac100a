//! Roles and permissions (docs/roles-and-api-keys.md): superusers define roles (a name,
//! a description, permissions) and give them to users; access tokens carry the names of
//! a user's roles from their next sign-in or refresh on. The functions a caller outside
//! the first-party routes needs (the OAuth provider) are [`permissions_of`] and
//! [`role_names_of`].

use users_db::roles::{self, Created, RoleChanges, RoleRow, SetRoles};
use users_db::DbError;
use users_domain::{Timestamp, UserId};

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::{Core, Fault};

/// A role as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub description: String,
    /// Sorted, without duplicates.
    pub permissions: Vec<String>,
}

impl From<RoleRow> for Role {
    fn from(row: RoleRow) -> Role {
        Role {
            permissions: row.permission_list(),
            name: row.name,
            description: row.description,
        }
    }
}

/// The roles of a user: their names, and the union of their permissions (both sorted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserRoles {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

impl UserRoles {
    fn of(rows: &[RoleRow]) -> UserRoles {
        let roles = rows.iter().map(|r| r.name.clone()).collect();
        let mut permissions: Vec<String> = rows.iter().flat_map(|r| r.permission_list()).collect();
        permissions.sort_unstable();
        permissions.dedup();
        UserRoles { roles, permissions }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("a role has this name already")]
    AlreadyExists,
    #[error("no such role")]
    NotFound,
    /// Setting a user's roles: the first of the names that is no role.
    #[error("no such role: {0}")]
    UnknownRole(String),
    #[error("no such user")]
    NoSuchUser,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for RoleError {
    fn from(e: DbError) -> Self {
        RoleError::Fault(e.into())
    }
}

/// What a new role is.
#[derive(Debug, Clone)]
pub struct NewRole {
    /// Checked by the caller (`users_domain::access::is_valid_name`).
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

/// Creates a role (`role.created`, by `actor`).
#[tracing::instrument(level = "debug", name = "roles::create", skip_all)]
pub async fn create(
    core: &Core,
    new: NewRole,
    actor: UserId,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Role, RoleError> {
    let row = RoleRow {
        name: new.name.clone(),
        description: new.description,
        permissions: roles::join(&new.permissions),
        created_at: now.millis(),
        updated_at: now.millis(),
    };
    let event = Event::new(EventType::RoleCreated, None)
        .by(Some(actor))
        .with("name", new.name);
    let change = Change::new(vec![event], client, now);
    let stored = row.clone();
    match core
        .apply(change, move |c, raised| {
            roles::create(c, &stored, raised.effects())
        })
        .await?
    {
        Created::Created => Ok(Role::from(row)),
        Created::Exists => Err(RoleError::AlreadyExists),
    }
}

/// Every role, by name.
#[tracing::instrument(level = "debug", name = "roles::list", skip_all)]
pub async fn list(core: &Core) -> Result<Vec<Role>, Fault> {
    let rows = core.store.run(roles::list).await?;
    Ok(rows.into_iter().map(Role::from).collect())
}

#[tracing::instrument(level = "debug", name = "roles::get", skip_all)]
pub async fn get(core: &Core, name: &str) -> Result<Role, RoleError> {
    let name = name.to_owned();
    core.store
        .run(move |c| roles::find(c, &name))
        .await?
        .map(Role::from)
        .ok_or(RoleError::NotFound)
}

/// Changes the fields given (`role.updated`, by `actor`).
#[tracing::instrument(level = "debug", name = "roles::update", skip_all)]
pub async fn update(
    core: &Core,
    name: &str,
    description: Option<String>,
    permissions: Option<Vec<String>>,
    actor: UserId,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Role, RoleError> {
    let changes = RoleChanges {
        description,
        permissions: permissions.as_deref().map(roles::join),
    };
    let event = Event::new(EventType::RoleUpdated, None)
        .by(Some(actor))
        .with("name", name);
    let change = Change::new(vec![event], client, now);
    let name = name.to_owned();
    core.apply(change, move |c, raised| {
        roles::update(c, &name, &changes, now.millis(), raised.effects())
    })
    .await?
    .map(Role::from)
    .ok_or(RoleError::NotFound)
}

/// Deletes a role (`role.deleted`, by `actor`): its users lose it, and their next
/// refresh carries it no more.
#[tracing::instrument(level = "debug", name = "roles::delete", skip_all)]
pub async fn delete(
    core: &Core,
    name: &str,
    actor: UserId,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), RoleError> {
    let event = Event::new(EventType::RoleDeleted, None)
        .by(Some(actor))
        .with("name", name);
    let change = Change::new(vec![event], client, now);
    let name = name.to_owned();
    let deleted = core
        .apply(change, move |c, raised| {
            roles::delete(c, &name, raised.effects())
        })
        .await?;
    if deleted {
        Ok(())
    } else {
        Err(RoleError::NotFound)
    }
}

/// The roles of a user and the union of their permissions.
#[tracing::instrument(level = "debug", name = "roles::of_user", skip_all)]
pub async fn of_user(core: &Core, user: UserId) -> Result<UserRoles, Fault> {
    let rows = core.store.run(move |c| roles::of_user(c, user)).await?;
    Ok(UserRoles::of(&rows))
}

/// Replaces the roles of a user (`user.roles_changed`, by `actor`); an unknown name
/// changes nothing.
#[tracing::instrument(level = "debug", name = "roles::set_for_user", skip_all)]
pub async fn set_for_user(
    core: &Core,
    user: UserId,
    names: Vec<String>,
    actor: UserId,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<UserRoles, RoleError> {
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let event = Event::new(EventType::UserRolesChanged, Some(user))
        .by(Some(actor))
        .with("roles", sorted);
    let change = Change::new(vec![event], client, now);
    match core
        .apply(change, move |c, raised| {
            roles::set_for_user(c, user, &names, raised.effects())
        })
        .await?
    {
        SetRoles::Set(rows) => Ok(UserRoles::of(&rows)),
        SetRoles::NoSuchUser => Err(RoleError::NoSuchUser),
        SetRoles::UnknownRole(name) => Err(RoleError::UnknownRole(name)),
    }
}

/// The permissions of a user: the union of those of their roles, sorted. For the OAuth
/// provider: a permission is a scope the user may be granted.
#[tracing::instrument(level = "debug", name = "roles::permissions_of", skip_all)]
pub async fn permissions_of(core: &Core, user: UserId) -> Result<Vec<String>, Fault> {
    Ok(of_user(core, user).await?.permissions)
}

/// The names of the roles of a user, sorted: the `roles` claim.
#[tracing::instrument(level = "debug", name = "roles::role_names_of", skip_all)]
pub async fn role_names_of(core: &Core, user: UserId) -> Result<Vec<String>, Fault> {
    Ok(core.store.run(move |c| roles::names_of(c, user)).await?)
}
