//! The current user, from a Bearer access token, loaded on every request so that
//! deactivation, deletion, promotion and revocation apply to existing tokens at once.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use users_db::users::StoredUser;
use users_domain::UserId;

use crate::error::ApiError;
use crate::state::{now_ms, AppState};
use crate::tokens::{token_hash, AccessClaims};

/// An authenticated, active user and the token that proved it.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub stored: StoredUser,
    pub token: String,
    pub claims: AccessClaims,
}

impl CurrentUser {
    pub fn require_superuser(&self) -> Result<(), ApiError> {
        if self.stored.user.is_superuser {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

pub async fn authenticate(state: &AppState, token: String) -> Result<CurrentUser, ApiError> {
    let now = now_ms();
    let claims = state
        .jwt
        .decode_access(&token, now)
        .map_err(|_| ApiError::Unauthorized)?;
    let id = UserId::parse_str(&claims.sub).map_err(|_| ApiError::Unauthorized)?;
    let hash = token_hash(&token);
    let found = state
        .db(move |conn| Ok(users_db::users::find_for_token(conn, id, &hash)?))
        .await?;
    let Some((stored, revoked)) = found else {
        return Err(ApiError::Unauthorized);
    };
    if revoked || !stored.user.is_active {
        return Err(ApiError::Unauthorized);
    }
    if claims.issued_at_ms(state.jwt.access_lifetime_seconds) < stored.tokens_valid_after {
        return Err(ApiError::Unauthorized);
    }
    Ok(CurrentUser {
        stored,
        token,
        claims,
    })
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let token = token.ok_or(ApiError::Unauthorized)?;
            authenticate(&state, token).await
        })
    }
}
