//! The OpenAPI 3 document (generated from the handlers' annotations and the body types
//! with utoipa) at `/openapi.json`, and Swagger UI at `/docs`, its assets served by the
//! service itself.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::bodies::{
    AuthorizationUrl, BearerToken, CeremonyOptions, CodeRequest, EmailRequest, EventRead,
    EventsPage, IdentityRead, LoginForm, MfaStatus, MfaVerify, PasskeyLogin, PasskeyLoginOptions,
    PasskeyRead, PasskeyRegister, ProviderRead, Reauthentication, RecoveryCodes, RefreshRequest,
    RefreshableToken, ResetPassword, ResetPasswordForm, SessionRead, TotpEnrolRequest,
    TotpEnrolment, UserCreate, UserRead, UserUpdate, UsersPage, VerifyToken,
};
use crate::error::{
    BadRequestBody, ErrorDetail, FieldError, MfaRequiredDetail, MfaRequiredError, Null,
    PasswordErrorDetail, PasswordRejection, ValidationError,
};

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

/// The provider routes are documented once with a `{provider}` path parameter; the
/// contract's Google routes are listed as such too (a concrete path is matched before a
/// templated one), so a client generated from the document has them by name.
struct GoogleRoutes;

impl Modify for GoogleRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let templated = [
            "/auth/{provider}/authorize",
            "/auth/{provider}/callback",
            "/auth/associate/{provider}/authorize",
            "/auth/associate/{provider}/callback",
        ];
        for path in templated {
            let Some(mut item) = openapi.paths.paths.get(path).cloned() else {
                continue;
            };
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                if let Some(params) = &mut op.parameters {
                    params.retain(|p| p.name != "provider");
                }
                op.operation_id = op.operation_id.as_ref().map(|id| format!("google_{id}"));
                op.summary = Some(format!(
                    "{} (Google)",
                    op.summary.clone().unwrap_or_default()
                ));
            }
            openapi
                .paths
                .paths
                .insert(path.replace("{provider}", "google"), item);
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "users",
        description = "User accounts as a service, wire-compatible with fastapi-users 15: registration, JWT login, users/me, admin routes, password reset and verification by email, sign-in with identity providers."
    ),
    paths(
        crate::routes::register::register,
        crate::routes::auth::login,
        crate::routes::auth::logout,
        crate::routes::auth::refresh,
        crate::routes::auth::cookie_login,
        crate::routes::auth::cookie_logout,
        crate::routes::mfa::totp_enrol,
        crate::routes::mfa::totp_confirm,
        crate::routes::mfa::totp_disable,
        crate::routes::mfa::recovery_codes,
        crate::routes::mfa::status,
        crate::routes::mfa::verify,
        crate::routes::mfa::reset,
        crate::routes::passkeys::register_options,
        crate::routes::passkeys::register,
        crate::routes::passkeys::list,
        crate::routes::passkeys::remove,
        crate::routes::passkeys::login_options,
        crate::routes::passkeys::login,
        crate::routes::sessions::list,
        crate::routes::sessions::end_others,
        crate::routes::sessions::end_one,
        crate::routes::sessions::list_of_user,
        crate::routes::sessions::end_all_of_user,
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
        crate::routes::audit::list,
        crate::routes::audit::mine,
        crate::routes::oauth::list_providers,
        crate::routes::oauth::authorize,
        crate::routes::oauth::callback,
        crate::routes::oauth::associate_authorize,
        crate::routes::oauth::associate_callback,
        crate::routes::identities::list_identities,
        crate::routes::identities::unlink_identity,
        crate::routes::identities::unlink_identity_subject,
        crate::routes::pages::reset_page,
        crate::routes::pages::reset_submit,
        crate::routes::pages::verify_page,
        crate::routes::account::page,
        crate::routes::ops::healthz,
        crate::routes::ops::readyz,
        crate::routes::ops::jwks,
        crate::routes::ops::metrics,
    ),
    components(schemas(
        UserRead, UserCreate, UserUpdate, LoginForm, BearerToken, EmailRequest, ResetPassword, ResetPasswordForm,
        VerifyToken, ErrorDetail, PasswordRejection, PasswordErrorDetail, BadRequestBody, FieldError, ValidationError,
        UsersPage, AuthorizationUrl, Null, RefreshRequest, RefreshableToken, SessionRead,
        TotpEnrolRequest, TotpEnrolment, CodeRequest, RecoveryCodes, MfaStatus, MfaVerify, Reauthentication,
        MfaRequiredDetail, MfaRequiredError, CeremonyOptions, PasskeyRegister, PasskeyRead,
        PasskeyLoginOptions, PasskeyLogin, EventRead, EventsPage, ProviderRead, IdentityRead
    )),
    modifiers(&BearerAuth, &GoogleRoutes),
    tags(
        (name = "auth", description = "Registration, login and logout"),
        (name = "users", description = "The current user and the admin routes"),
        (name = "sessions", description = "Sessions (devices): list and end them"),
        (name = "mfa", description = "A second factor: TOTP, recovery codes, the second step of sign-in"),
        (name = "passkeys", description = "Passkeys (WebAuthn): register, list, remove, sign in"),
        (name = "mail", description = "Password reset and email verification"),
        (name = "providers", description = "Sign in with an identity provider (Google, any OpenID Connect provider, GitHub), and linking and unlinking accounts"),
        (name = "audit", description = "Security events: the audit log (webhooks carry the same events)"),
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
