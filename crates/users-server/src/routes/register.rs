use actix_web::{web, HttpRequest, HttpResponse};

use crate::accounts::{create_user, CreateError};
use crate::body::{read_json_object, Fields};
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /auth/register` {email, password}: 201 User.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = crate::openapi::UserCreate, responses((status = 201, description = "Created", body = crate::openapi::UserRead), (status = 400, description = "REGISTER_INVALID_PASSWORD {code, reason} or REGISTER_USER_ALREADY_EXISTS", body = crate::openapi::BadRequestBody), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
#[tracing::instrument(name = "register", skip_all)]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    crate::limits::limit_ip(&state, &req, "register").await?;
    let obj = read_json_object(payload).await?;
    let mut f = Fields::json(&obj);
    let email = f.required_email("email");
    let password = f.required_password("password");
    // Part of fastapi-users' UserCreate, so type-checked, but a new user is always
    // active, not superuser and not verified, whatever the request says.
    let _ = f.optional_bool("is_active");
    let _ = f.optional_bool("is_superuser");
    let _ = f.optional_bool("is_verified");
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal("validated fields missing"));
    };
    match create_user(&state, email, password, false, false).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "user registered");
            crate::metrics::Metrics::inc(&state.metrics.registrations);
            Ok(HttpResponse::Created().json(user))
        }
        Err(CreateError::InvalidPassword(reason)) => Err(ApiError::InvalidPassword {
            code: "REGISTER_INVALID_PASSWORD",
            reason,
        }),
        Err(CreateError::AlreadyExists) => {
            Err(ApiError::BadRequest("REGISTER_USER_ALREADY_EXISTS"))
        }
        Err(CreateError::Api(e)) => Err(e),
    }
}
