//! The HTTP routes (docs/api.md).

pub mod account;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod identities;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod ops;
pub mod pages;
pub mod passkeys;
pub mod register;
pub mod roles;
pub mod sessions;
pub mod upstream;
pub mod users;

use actix_web::HttpResponse;

use crate::error::ApiError;

/// Any path the service does not have.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// A known path with a method it does not take.
pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
