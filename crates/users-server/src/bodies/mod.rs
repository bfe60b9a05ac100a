//! The request and response bodies of the API, one struct each (fastapi-users'
//! schemas), a module per area: requests are read through [`Validated`] and so answer
//! FastAPI-shaped 422s; every struct documents itself in the OpenAPI document through
//! `ToSchema`.
//!
//! [`Validated`]: crate::extract::Validated

mod api_keys;
mod audit;
mod auth;
mod identities;
mod mfa;
mod passkeys;
mod recovery;
mod roles;
mod users;

pub use api_keys::*;
pub use audit::*;
pub use auth::*;
pub use identities::*;
pub use mfa::*;
pub use passkeys::*;
pub use recovery::*;
pub use roles::*;
pub use users::*;
