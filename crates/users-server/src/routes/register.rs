use actix_web::{web, HttpResponse};
use users_core::flows::register::{self, NewAccount};

use crate::answers::Validation422;
use crate::bodies::{UserCreate, UserRead};
use crate::client_ip::Client;
use crate::error::ApiError;
use crate::extract::ValidatedJson;
use crate::outcome::RegisterRefused;
use crate::state::AppState;

/// `POST /auth/register` {email, password}: 201 User.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = UserCreate,
    responses(
        (status = 201, description = "Created", body = UserRead),
        RegisterRefused,
        Validation422,
    )
)]
#[tracing::instrument(name = "register", skip_all)]
pub async fn register(
    state: web::Data<AppState>,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<UserCreate>,
) -> Result<HttpResponse, ApiError> {
    let account = NewAccount {
        email: body.email,
        password: body.password,
        is_superuser: false,
        is_verified: false,
    };
    let user = register::register(&state.core, account, &client, state.now()).await?;
    Ok(HttpResponse::Created().json(UserRead::from(user)))
}
