//! Roles and the roles of users (docs/roles-and-api-keys.md). A role's permissions are
//! stored space-separated: a permission's alphabet has no space.

use diesel::prelude::*;
use users_domain::UserId;

use crate::effects::{or_taken, transaction, Happened};
use crate::schema::{roles, user_roles};
use crate::{DbConnection, Effects};

/// A role as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = roles)]
pub struct RoleRow {
    pub name: String,
    pub description: String,
    /// Space-separated (see [`join`], [`split`]).
    pub permissions: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RoleRow {
    pub fn permission_list(&self) -> Vec<String> {
        split(&self.permissions)
    }
}

/// Permissions as stored: sorted, without duplicates, space-separated.
pub fn join(permissions: &[String]) -> String {
    let mut all: Vec<&str> = permissions.iter().map(String::as_str).collect();
    all.sort_unstable();
    all.dedup();
    all.join(" ")
}

/// The permissions of a stored list.
pub fn split(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_owned).collect()
}

/// What [`create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// A role has this name already: nothing was written.
    Exists,
}

impl Happened for Created {
    fn happened(&self) -> bool {
        *self == Created::Created
    }
}

/// Creates a role, with its effects.
pub fn create(conn: &mut DbConnection, row: &RoleRow, effects: &Effects) -> QueryResult<Created> {
    let created = transaction(conn, effects, |c| {
        diesel::insert_into(roles::table)
            .values(row)
            .execute(c)
            .map(|_| Created::Created)
    });
    or_taken(created, Created::Exists)
}

/// Every role, by name.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<RoleRow>> {
    roles::table
        .order(roles::name.asc())
        .select(RoleRow::as_select())
        .load(conn)
}

pub fn find(conn: &mut DbConnection, name: &str) -> QueryResult<Option<RoleRow>> {
    roles::table
        .find(name)
        .select(RoleRow::as_select())
        .first(conn)
        .optional()
}

/// What changes in a role; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RoleChanges {
    pub description: Option<String>,
    /// Space-separated, as stored.
    pub permissions: Option<String>,
}

/// Applies `changes` with its effects; the role afterwards, `None` for an unknown name
/// (then nothing is written).
pub fn update(
    conn: &mut DbConnection,
    name: &str,
    changes: &RoleChanges,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<Option<RoleRow>> {
    transaction(conn, effects, |c| {
        let n = diesel::update(roles::table.find(name))
            .set((
                changes
                    .description
                    .as_ref()
                    .map(|d| roles::description.eq(d.clone())),
                changes
                    .permissions
                    .as_ref()
                    .map(|p| roles::permissions.eq(p.clone())),
                roles::updated_at.eq(now_ms),
            ))
            .execute(c)?;
        if n == 0 {
            return Ok(None);
        }
        find(c, name)
    })
}

/// Deletes a role (users holding it lose it), with its effects; whether it existed.
pub fn delete(conn: &mut DbConnection, name: &str, effects: &Effects) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        diesel::delete(user_roles::table.filter(user_roles::role_name.eq(name))).execute(c)?;
        let n = diesel::delete(roles::table.find(name)).execute(c)?;
        Ok(n > 0)
    })
}

/// The roles a user holds, by name.
pub fn of_user(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Vec<RoleRow>> {
    user_roles::table
        .inner_join(roles::table)
        .filter(user_roles::user_id.eq(user_id.to_string()))
        .order(roles::name.asc())
        .select(RoleRow::as_select())
        .load(conn)
}

/// The names of the roles a user holds, sorted: what an access token carries. One
/// statement on the user_roles table alone.
pub fn names_of(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Vec<String>> {
    user_roles::table
        .filter(user_roles::user_id.eq(user_id.to_string()))
        .order(user_roles::role_name.asc())
        .select(user_roles::role_name)
        .load(conn)
}

/// What [`set_for_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRoles {
    /// The user holds exactly these roles now.
    Set(Vec<RoleRow>),
    NoSuchUser,
    /// The first of the names that is no role: nothing was written.
    UnknownRole(String),
}

impl Happened for SetRoles {
    fn happened(&self) -> bool {
        matches!(self, SetRoles::Set(_))
    }
}

/// Replaces the roles of a user with `names`, with its effects, in one transaction.
pub fn set_for_user(
    conn: &mut DbConnection,
    user_id: UserId,
    names: &[String],
    effects: &Effects,
) -> QueryResult<SetRoles> {
    transaction(conn, effects, |c| {
        if !crate::users::lock(c, user_id)? {
            return Ok(SetRoles::NoSuchUser);
        }
        let known: Vec<String> = roles::table
            .filter(roles::name.eq_any(names))
            .select(roles::name)
            .load(c)?;
        if let Some(unknown) = names.iter().find(|n| !known.contains(n)) {
            return Ok(SetRoles::UnknownRole(unknown.clone()));
        }
        let id = user_id.to_string();
        diesel::delete(user_roles::table.filter(user_roles::user_id.eq(&id))).execute(c)?;
        let mut wanted: Vec<&String> = names.iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        for name in wanted {
            diesel::insert_into(user_roles::table)
                .values((user_roles::user_id.eq(&id), user_roles::role_name.eq(name)))
                .execute(c)?;
        }
        Ok(SetRoles::Set(of_user(c, user_id)?))
    })
}
