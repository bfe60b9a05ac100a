//! Discovery: the provider's metadata document.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use users_core::flows::oauth::clients;

use crate::state::AppState;

/// The discovery document (OpenID Connect Discovery 1.0, RFC 8414).
pub fn discovery_document(state: &AppState) -> Value {
    let issuer = state.core.config.public_url.clone();
    let at = |path: &str| format!("{issuer}{path}");
    json!({
        "issuer": issuer,
        "authorization_endpoint": at("/oauth/authorize"),
        "token_endpoint": at("/oauth/token"),
        "userinfo_endpoint": at("/oauth/userinfo"),
        "jwks_uri": at("/.well-known/jwks.json"),
        "registration_endpoint": at("/oauth/clients"),
        "introspection_endpoint": at("/oauth/introspect"),
        "revocation_endpoint": at("/oauth/revoke"),
        "end_session_endpoint": at("/oauth/logout"),
        "scopes_supported": users_domain::oauth::STANDARD_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": clients::ID_TOKEN_ALGORITHMS,
        "token_endpoint_auth_methods_supported": clients::AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr",
            "acr", "email", "email_verified", "roles",
        ],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    operation_id = "oauth_discovery",
    tag = "oauth",
    responses((status = 200, description = "The provider's discovery document", body = Object))
)]
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(discovery_document(&state))
}
