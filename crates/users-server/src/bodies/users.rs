//! The users' own bodies: registration, changes, the user as answered, the list of users
//! and its query.

use secrecy::SecretString;
use serde::Serialize;
use users_domain::{EmailAddress, User};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{Fields, Validated};

/// Registration (`UserCreate`). `is_active`, `is_superuser` and `is_verified` are
/// type-checked and ignored: a new user is always active, not superuser, not verified.
#[derive(ToSchema)]
pub struct UserCreate {
    #[schema(value_type = String, format = Email)]
    pub email: EmailAddress,
    #[schema(value_type = String)]
    pub password: SecretString,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
}

impl Validated for UserCreate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let email = f.required_email("email");
        let password = f.required_password("password");
        let is_active = f.optional_bool("is_active");
        let is_superuser = f.optional_bool("is_superuser");
        let is_verified = f.optional_bool("is_verified");
        Some(UserCreate {
            email: email?,
            password: password?,
            is_active: is_active?,
            is_superuser: is_superuser?,
            is_verified: is_verified?,
        })
    }
}

/// A change to a user (`UserUpdate`). On `/users/me` only `email` and `password` are
/// used; a superuser's `PATCH /users/{id}` may set every field.
#[derive(ToSchema)]
pub struct UserUpdate {
    #[schema(value_type = Option<String>, format = Email)]
    pub email: Option<EmailAddress>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
}

impl Validated for UserUpdate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let password = f.optional_password("password");
        let email = f.optional_email("email");
        let is_active = f.optional_bool("is_active");
        let is_superuser = f.optional_bool("is_superuser");
        let is_verified = f.optional_bool("is_verified");
        Some(UserUpdate {
            email: email?,
            password: password?,
            is_active: is_active?,
            is_superuser: is_superuser?,
            is_verified: is_verified?,
        })
    }
}

impl From<UserUpdate> for users_core::flows::account::Changes {
    fn from(u: UserUpdate) -> Self {
        users_core::flows::account::Changes {
            email: u.email,
            password: u.password,
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            is_verified: u.is_verified,
        }
    }
}

pub const DEFAULT_PER_PAGE: i64 = 50;
pub const MAX_PER_PAGE: i64 = 100;

/// `GET /users?page=&per_page=&email=`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// 1-based page (default 1).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// Users per page (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
    /// Only users whose email contains this (case-insensitive, literal).
    pub email: Option<String>,
}

impl Validated for UsersQuery {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let page = f.optional_int("page", 1, 1_000_000);
        let per_page = f.optional_int("per_page", 1, MAX_PER_PAGE);
        let email = f.optional_str("email");
        Some(UsersQuery {
            page: page?,
            per_page: per_page?,
            email: email?,
        })
    }
}

/// A user (`UserRead`): exactly these five fields, never password material.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRead {
    #[schema(value_type = String, format = Uuid)]
    pub id: users_domain::UserId,
    #[schema(format = Email)]
    pub email: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub is_verified: bool,
}

impl From<User> for UserRead {
    fn from(u: User) -> Self {
        UserRead {
            id: u.id,
            email: u.email,
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            is_verified: u.is_verified,
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsersPage {
    pub items: Vec<UserRead>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}
