//! The OpenAPI 3 document (generated from the handlers' annotations with utoipa) at
//! `/openapi.json`, and Swagger UI at `/docs`, its assets served by the service itself.
//!
//! The handlers parse bodies by hand (to answer FastAPI-shaped 422s), so the request
//! and response shapes are described by the documentation-only types below.

#![allow(dead_code)] // the types exist for their schemas

use actix_web::{web, HttpResponse};
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

/// A user.
#[derive(ToSchema)]
pub struct UserRead {
    #[schema(value_type = String, format = Uuid)]
    id: String,
    #[schema(format = Email)]
    email: String,
    is_active: bool,
    is_superuser: bool,
    is_verified: bool,
}

/// Registration. `is_active`, `is_superuser` and `is_verified` are accepted and ignored.
#[derive(ToSchema)]
pub struct UserCreate {
    #[schema(format = Email)]
    email: String,
    #[schema(min_length = 1)]
    password: String,
    is_active: Option<bool>,
    is_superuser: Option<bool>,
    is_verified: Option<bool>,
}

/// A change to a user. On `/users/me` only `email` and `password` are used.
#[derive(ToSchema)]
pub struct UserUpdate {
    #[schema(format = Email)]
    email: Option<String>,
    #[schema(min_length = 1)]
    password: Option<String>,
    is_active: Option<bool>,
    is_superuser: Option<bool>,
    is_verified: Option<bool>,
}

/// An OAuth2 password form.
#[derive(ToSchema)]
pub struct LoginForm {
    /// The email.
    #[schema(min_length = 1)]
    username: String,
    #[schema(min_length = 1)]
    password: String,
    #[schema(pattern = "^password$")]
    grant_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An access token.
#[derive(ToSchema)]
pub struct BearerResponse {
    access_token: String,
    /// Always `bearer`.
    token_type: String,
}

#[derive(ToSchema)]
pub struct EmailBody {
    #[schema(format = Email)]
    email: String,
}

#[derive(ToSchema)]
pub struct ResetPasswordBody {
    #[schema(min_length = 1)]
    token: String,
    #[schema(min_length = 1)]
    password: String,
}

#[derive(ToSchema)]
pub struct VerifyBody {
    #[schema(min_length = 1)]
    token: String,
}

/// `{"detail": "CODE"}`.
#[derive(ToSchema)]
pub struct ErrorDetail {
    detail: String,
}

#[derive(ToSchema)]
pub struct PasswordRejection {
    code: String,
    reason: String,
}

/// A refused password: `{"detail": {"code", "reason"}}`.
#[derive(ToSchema)]
pub struct PasswordErrorDetail {
    detail: PasswordRejection,
}

/// Either kind of 400 body.
pub struct BadRequestBody;

impl PartialSchema for BadRequestBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name("ErrorDetail"))
            .item(Ref::from_schema_name("PasswordErrorDetail"))
            .into()
    }
}

impl ToSchema for BadRequestBody {}

/// One problem of a 422: `type`, `loc` (strings and indexes), `msg`, the `input` that
/// was refused (any JSON value), and sometimes a `ctx`.
pub struct ValidationErrorItem;

impl PartialSchema for ValidationErrorItem {
    fn schema() -> RefOr<Schema> {
        let any = || Schema::from(ObjectBuilder::new().schema_type(SchemaType::AnyValue));
        ObjectBuilder::new()
            .property("type", ObjectBuilder::new().schema_type(Type::String))
            .property(
                "loc",
                ArrayBuilder::new().items(
                    OneOfBuilder::new()
                        .item(ObjectBuilder::new().schema_type(Type::String))
                        .item(ObjectBuilder::new().schema_type(Type::Integer)),
                ),
            )
            .property("msg", ObjectBuilder::new().schema_type(Type::String))
            .property("input", any())
            .property("ctx", ObjectBuilder::new().schema_type(Type::Object))
            .required("type")
            .required("loc")
            .required("msg")
            .required("input")
            .into()
    }
}

impl ToSchema for ValidationErrorItem {}

/// FastAPI's 422.
#[derive(ToSchema)]
pub struct ValidationError {
    detail: Vec<ValidationErrorItem>,
}

/// A page of users.
#[derive(ToSchema)]
pub struct UserPage {
    items: Vec<UserRead>,
    total: i64,
    page: i64,
    per_page: i64,
}

#[derive(ToSchema)]
pub struct AuthorizationUrl {
    authorization_url: String,
}

/// The JSON value `null`.
pub struct Null;

impl PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for Null {}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "users",
        description = "User accounts as a service, wire-compatible with fastapi-users 15: registration, JWT login, users/me, admin routes, password reset and verification by email, Sign in with Google."
    ),
    paths(
        crate::routes::register::register,
        crate::routes::auth::login,
        crate::routes::auth::logout,
        crate::routes::mail::forgot_password,
        crate::routes::mail::reset,
        crate::routes::mail::request_verify_token,
        crate::routes::mail::verify,
        crate::routes::users::me,
        crate::routes::users::update_me,
        crate::routes::users::get_user,
        crate::routes::users::patch_user,
        crate::routes::users::delete_user,
        crate::routes::users::list_users,
        crate::routes::google::authorize,
        crate::routes::google::callback,
        crate::routes::google::associate_authorize,
        crate::routes::google::associate_callback,
        crate::routes::pages::reset_page,
        crate::routes::pages::reset_submit,
        crate::routes::pages::verify_page,
        crate::routes::ops::healthz,
        crate::routes::ops::readyz,
        crate::routes::ops::metrics,
    ),
    components(schemas(
        UserRead, UserCreate, UserUpdate, LoginForm, BearerResponse, EmailBody, ResetPasswordBody, VerifyBody,
        ErrorDetail, PasswordRejection, PasswordErrorDetail, BadRequestBody, ValidationErrorItem, ValidationError,
        UserPage, AuthorizationUrl, Null
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration, login and logout"),
        (name = "users", description = "The current user and the admin routes"),
        (name = "mail", description = "Password reset and email verification"),
        (name = "google", description = "Sign in with Google (OpenID Connect)"),
        (name = "pages", description = "HTML pages the mailed links open"),
        (name = "operations", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Swagger UI at `/docs/`, loading `/openapi.json`; assets compiled into the binary.
pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", document())
}

/// `GET /docs` → `/docs/`.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("location", "/docs/"))
        .finish()
}

pub fn configure_docs(cfg: &mut web::ServiceConfig) {
    cfg.service(swagger_ui())
        .service(web::resource("/docs").route(web::get().to(docs_redirect)));
}
