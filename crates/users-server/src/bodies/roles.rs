//! Roles and the roles of a user (docs/roles-and-api-keys.md).

use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::{Fields, Validated};

/// A role (`POST /roles`): a name and permissions in `[a-z0-9][a-z0-9_.:-]{0,63}`.
#[derive(ToSchema)]
pub struct RoleCreate {
    #[schema(pattern = "^[a-z0-9][a-z0-9_.:-]{0,63}$")]
    pub name: String,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<String>>,
}

impl Validated for RoleCreate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let name = f.required_access_name("name");
        let description = f.optional_text("description", 1000);
        let permissions = f.optional_access_names("permissions");
        Some(RoleCreate {
            name: name?,
            description: description?,
            permissions: permissions?,
        })
    }
}

/// A change to a role (`PATCH /roles/{name}`): the fields given.
#[derive(ToSchema)]
pub struct RoleUpdate {
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<String>>,
}

impl Validated for RoleUpdate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let description = f.optional_text("description", 1000);
        let permissions = f.optional_access_names("permissions");
        Some(RoleUpdate {
            description: description?,
            permissions: permissions?,
        })
    }
}

/// A role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleRead {
    pub name: String,
    pub description: String,
    /// Sorted.
    pub permissions: Vec<String>,
}

impl From<users_core::flows::roles::Role> for RoleRead {
    fn from(r: users_core::flows::roles::Role) -> Self {
        RoleRead {
            name: r.name,
            description: r.description,
            permissions: r.permissions,
        }
    }
}

/// The roles of a user and the union of their permissions (both sorted).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRolesRead {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

impl From<users_core::flows::roles::UserRoles> for UserRolesRead {
    fn from(r: users_core::flows::roles::UserRoles) -> Self {
        UserRolesRead {
            roles: r.roles,
            permissions: r.permissions,
        }
    }
}

/// `PUT /users/{id}/roles`: the user's roles from now on.
#[derive(ToSchema)]
pub struct UserRolesUpdate {
    pub roles: Vec<String>,
}

impl Validated for UserRolesUpdate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(UserRolesUpdate {
            roles: f.required_access_names("roles")?,
        })
    }
}
