//! The OpenAPI 3 document (generated from the handlers' annotations and the body types
//! with utoipa) at `/openapi.json`, and Swagger UI at `/docs`, its assets served by the
//! service itself.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::bodies::{
    ApiKeyCreate, ApiKeyCreated, ApiKeyRead, AuthorizationUrl, BearerToken, CeremonyOptions,
    CodeRequest, EmailRequest, EventRead, EventsPage, IdentityRead, LoginForm, MfaStatus,
    MfaVerify, PasskeyLogin, PasskeyLoginOptions, PasskeyRead, PasskeyRegister, ProviderRead,
    Reauthentication, RecoveryCodes, RefreshRequest, RefreshableToken, ResetPassword,
    ResetPasswordForm, RoleCreate, RoleRead, RoleUpdate, SessionRead, TotpEnrolRequest,
    TotpEnrolment, UserCreate, UserRead, UserRolesRead, UserRolesUpdate, UserUpdate, UsersPage,
    VerifyToken,
};
use crate::error::{
    BadRequestBody, ErrorDetail, FieldError, MfaRequiredDetail, MfaRequiredError, Null,
    OAuthErrorBody, PasswordErrorDetail, PasswordRejection, UnknownRoleDetail, UnknownRoleError,
    ValidationError,
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
        description = "User accounts as a service, wire-compatible with fastapi-users 15: \
                       registration, JWT login, users/me, admin routes, password reset and \
                       verification by email, sign-in with identity providers."
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
        crate::routes::upstream::list_providers,
        crate::routes::upstream::authorize,
        crate::routes::upstream::callback,
        crate::routes::upstream::associate_authorize,
        crate::routes::upstream::associate_callback,
        crate::routes::identities::list_identities,
        crate::routes::identities::unlink_identity,
        crate::routes::identities::unlink_identity_subject,
        crate::routes::roles::create,
        crate::routes::roles::list,
        crate::routes::roles::get,
        crate::routes::roles::update,
        crate::routes::roles::delete,
        crate::routes::roles::mine,
        crate::routes::roles::of_user,
        crate::routes::roles::set_for_user,
        crate::routes::api_keys::create,
        crate::routes::api_keys::list,
        crate::routes::api_keys::revoke,
        crate::routes::api_keys::list_of_user,
        crate::routes::api_keys::revoke_of_user,
        crate::routes::pages::reset_page,
        crate::routes::pages::reset_submit,
        crate::routes::pages::verify_page,
        crate::routes::account::page,
        crate::routes::account::login,
        crate::routes::oauth::discovery,
        crate::routes::oauth::register_client,
        crate::routes::oauth::list_clients,
        crate::routes::oauth::get_client,
        crate::routes::oauth::replace_client,
        crate::routes::oauth::delete_client,
        crate::routes::oauth::rotate_secret,
        crate::routes::oauth::client_roles,
        crate::routes::oauth::set_client_roles,
        crate::routes::oauth::authorize,
        crate::routes::oauth::consent_page,
        crate::routes::oauth::consent_decide,
        crate::routes::oauth::token_endpoint,
        crate::routes::oauth::userinfo,
        crate::routes::oauth::introspect,
        crate::routes::oauth::revoke,
        crate::routes::oauth::logout,
        crate::routes::oauth::my_grants,
        crate::routes::oauth::revoke_grant,
        crate::routes::ops::healthz,
        crate::routes::ops::readyz,
        crate::routes::ops::jwks,
        crate::routes::ops::metrics,
    ),
    components(schemas(
        UserRead, UserCreate, UserUpdate, LoginForm, BearerToken, EmailRequest, ResetPassword,
        ResetPasswordForm, VerifyToken, ErrorDetail, OAuthErrorBody, PasswordRejection, PasswordErrorDetail,
        BadRequestBody, FieldError, ValidationError, UsersPage, AuthorizationUrl, Null,
        RefreshRequest, RefreshableToken, SessionRead, TotpEnrolRequest, TotpEnrolment,
        CodeRequest, RecoveryCodes, MfaStatus, MfaVerify, Reauthentication, MfaRequiredDetail,
        MfaRequiredError, CeremonyOptions, PasskeyRegister, PasskeyRead, PasskeyLoginOptions,
        PasskeyLogin, EventRead, EventsPage, ProviderRead, IdentityRead, RoleCreate, RoleUpdate,
        RoleRead, UserRolesRead, UserRolesUpdate, ApiKeyCreate, ApiKeyRead, ApiKeyCreated,
        UnknownRoleError, UnknownRoleDetail
    )),
    modifiers(&BearerAuth, &GoogleRoutes),
    tags(
        (name = "auth", description = "Registration, login and logout"),
        (name = "users", description = "The current user and the admin routes"),
        (name = "sessions", description = "Sessions (devices): list and end them"),
        (
            name = "mfa",
            description = "A second factor: TOTP, recovery codes, the second step of sign-in"
        ),
        (name = "passkeys", description = "Passkeys (WebAuthn): register, list, remove, sign in"),
        (name = "mail", description = "Password reset and email verification"),
        (
            name = "providers",
            description = "Sign in with an identity provider (Google, any OpenID Connect \
                           provider, GitHub), and linking and unlinking accounts"
        ),
        (
            name = "audit",
            description = "Security events: the audit log (webhooks carry the same events)"
        ),
        (
            name = "roles",
            description = "Roles and permissions (superusers), and a user's own roles"
        ),
        (
            name = "api-keys",
            description = "API keys: credentials for scripts and CI, accepted as `Bearer`"
        ),
        (name = "pages", description = "HTML pages the mailed links open"),
        (
            name = "oauth",
            description = "The OAuth 2.1 / OpenID Connect provider: discovery, clients, authorization, tokens, userinfo, introspection, revocation, sign-out, the person's grants (docs/oauth-provider.md)"
        ),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::codes::Code;
    use crate::outcome::{CallbackRefused, RegisterRefused};
    use utoipa::IntoResponses;

    /// The statuses under which the document mentions `` `text` `` in a response's
    /// description, and where.
    fn documented_under(doc: &serde_json::Value, text: &str) -> BTreeMap<String, Vec<String>> {
        let needle = format!("`{text}`");
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    let description = response["description"].as_str().unwrap_or_default();
                    if description.contains(&needle) {
                        let place = format!("{method} {path}");
                        found.entry(status.clone()).or_default().push(place);
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_code_is_documented_under_the_status_it_is_answered_with() {
        let doc = serde_json::to_value(document()).unwrap();
        for code in Code::ALL {
            let found = documented_under(&doc, code.as_str());
            let status = code.status().as_str().to_owned();
            assert!(
                found.contains_key(&status),
                "{code} ({status}) is in no {status} response of the OpenAPI document"
            );
            let elsewhere: Vec<_> = found.iter().filter(|(s, _)| **s != status).collect();
            assert!(
                elsewhere.is_empty(),
                "{code} is answered with {status} but documented under {elsewhere:?}"
            );
        }
    }

    /// The rows of docs/api.md's table of codes whose first cell is one code in
    /// backticks: the code and the status its second cell starts with.
    fn table_of_api_md() -> BTreeMap<String, u16> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
        let text = std::fs::read_to_string(path).unwrap();
        let section = text.split("\n## Every error code\n").nth(1).unwrap();
        let mut rows = BTreeMap::new();
        for line in section.lines().take_while(|l| !l.starts_with("## ")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, first, status, ..] = cells[..] else {
                continue;
            };
            let Some(code) = first.strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
                continue;
            };
            if code.contains('`') {
                continue;
            }
            let status = status.split_whitespace().next().unwrap_or_default();
            let previous = rows.insert(code.to_owned(), status.parse().unwrap());
            assert!(previous.is_none(), "docs/api.md lists {code} twice");
        }
        rows
    }

    #[test]
    fn docs_api_md_lists_every_code_with_its_status_and_no_other() {
        let table = table_of_api_md();
        assert!(
            table.len() > 20,
            "the table of codes was not found: {table:?}"
        );
        for code in Code::ALL {
            assert_eq!(
                table.get(code.as_str()),
                Some(&code.status().as_u16()),
                "docs/api.md's table row of {code}"
            );
        }
        let declared: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        for code in table.keys() {
            assert!(
                declared.contains(code.as_str()),
                "docs/api.md lists {code}, which outcome.rs does not declare"
            );
        }
    }

    #[test]
    fn a_set_of_codes_renders_one_response_per_status_with_the_body_of_its_codes() {
        let responses = CallbackRefused::responses();
        assert_eq!(responses.keys().collect::<Vec<_>>(), ["400", "502"]);
        let json = serde_json::to_value(&responses).unwrap();
        assert_eq!(
            json["400"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorDetail"
        );
        let description = json["400"]["description"].as_str().unwrap();
        assert!(
            description.starts_with("- the provider's own `error`"),
            "{description}"
        );
        assert!(description.contains(&format!(
            "- `OAUTH_INVALID_STATE`: {}",
            Code::OauthInvalidState.meaning()
        )));
        let json = serde_json::to_value(RegisterRefused::responses()).unwrap();
        assert_eq!(
            json["400"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/BadRequestBody"
        );
    }
}
