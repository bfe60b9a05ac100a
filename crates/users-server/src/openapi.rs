//! The OpenAPI 3 document (generated from the handlers' annotations and the body types
//! with utoipa) at `/openapi.json`, and Swagger UI at `/docs`, its assets served by the
//! service itself.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::bodies::{
    AuthorizationUrl, BearerToken, CeremonyOptions, CodeRequest, EmailRequest, EventRead,
    EventsPage, IdentityRead, LoginForm, MfaStatus, MfaVerify, PasskeyLogin, PasskeyLoginOptions,
    PasskeyRead, PasskeyRegister, ProviderRead, Reauthentication, RecoveryCodes, RefreshRequest,
    RefreshableToken, ResetPassword, ResetPasswordForm, SessionRead, TotpEnrolRequest,
    TotpEnrolment, UserCreate, UserRead, UserUpdate, UsersPage, VerifyToken,
};
use crate::error::{
    ApiError, BadRequestBody, ErrorDetail, FieldError, MfaRequiredDetail, MfaRequiredError, Null,
    PasswordErrorDetail, PasswordRejection, ValidationError,
};
use crate::outcome::{Body, Code};

// ---- Responses built from the codes ----------------------------------------------
//
// The `responses(...)` of a route name, besides its successes, sets of answers: those of
// `outcome.rs` list the codes a flow answers a route with, the shared ones below the
// answers that carry no code (401, 403, 404, 422, 429, 503). Each set renders its status,
// a description and the body's schema; a code's description is its declared meaning, so
// the document lists exactly what the declaration says. Two sets of one route must not
// share a status: the later one would replace the earlier.

/// A JSON error response: `description`, and a body of the component schema `schema`.
fn json_response(description: &str, schema: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
        .into()
}

/// One line of a description: the code, the shape of its body unless plain, its meaning.
fn code_line(code: Code) -> String {
    let shape = match code.body() {
        Body::Detail => "",
        Body::Password => " `{code, reason}`",
        Body::SecondStep => " `{code, mfa_token, methods}`",
    };
    format!("- `{code}`{shape}: {}", code.meaning())
}

/// The responses of `codes`, one per status: the description lists each code (after the
/// `notes` of that status, answers that carry no code of ours) with its meaning; the body
/// is `{"detail": "CODE"}`, or either that or a refused password's where one of the codes
/// is a refused password. (`LOGIN_MFA_REQUIRED`'s own body is named in its line; the
/// schema stays the `ErrorDetail` the document has always given for those 400s.)
pub fn code_responses(
    codes: &[Code],
    notes: &[(StatusCode, &str)],
) -> BTreeMap<String, RefOr<Response>> {
    let mut lines: BTreeMap<StatusCode, Vec<String>> = BTreeMap::new();
    for (status, note) in notes {
        lines.entry(*status).or_default().push(format!("- {note}"));
    }
    for code in codes {
        lines
            .entry(code.status())
            .or_default()
            .push(code_line(*code));
    }
    lines
        .into_iter()
        .map(|(status, lines)| {
            let password = codes
                .iter()
                .any(|c| c.status() == status && c.body() == Body::Password);
            let schema = if password {
                BadRequestBody::name()
            } else {
                ErrorDetail::name()
            };
            (
                status.as_str().to_owned(),
                json_response(&lines.join("\n"), &schema),
            )
        })
        .collect()
}

/// Declares unit types for `responses(...)`: each the answers of the listed [`Code`]s,
/// optionally with a note for an answer of one status that carries no code of ours
/// (`+ STATUS "note"`).
macro_rules! answers {
    ($(
        $(#[$doc:meta])*
        $name:ident = [$($code:ident),* $(,)?] $(+ $status:ident $note:expr)?;
    )*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> std::collections::BTreeMap<
                    String,
                    utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
                > {
                    $crate::openapi::code_responses(
                        &[$($crate::outcome::Code::$code),*],
                        &[$((actix_web::http::StatusCode::$status, $note))?],
                    )
                }
            }
        )*
    };
}
pub(crate) use answers;

/// Declares unit types for `responses(...)` whose one answer carries no code: a status,
/// the body's component schema, a description.
macro_rules! shared_answers {
    ($($(#[$doc:meta])* $name:ident = $status:ident, $schema:ty, $description:expr;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    let description: String = $description;
                    let status = StatusCode::$status.as_str().to_owned();
                    BTreeMap::from([(status, json_response(&description, &<$schema>::name()))])
                }
            }
        )*
    };
}

/// The line of an answer with a fixed `detail` word (`Unauthorized`, `Not Found`, …).
fn fixed(error: ApiError, when: &str) -> String {
    format!("`{}`: {when}", error.detail())
}

shared_answers! {
    /// 401 of a route for a signed-in caller (the Bearer token or the cookie).
    Unauthorized401 = UNAUTHORIZED, ErrorDetail, fixed(
        ApiError::Unauthorized,
        "missing, invalid, expired or revoked token; unknown or inactive user",
    );
    /// 403 of a superuser route.
    Forbidden403 = FORBIDDEN, ErrorDetail, fixed(
        ApiError::Forbidden,
        "the caller is not a superuser (checked before the id)",
    );
    /// 404 of a route naming a user by `{id}`.
    UnknownUser404 = NOT_FOUND, ErrorDetail, fixed(ApiError::NotFound, "unknown or malformed id");
    /// 404 of a provider route for a name no provider is configured under.
    NoProvider404 = NOT_FOUND, ErrorDetail, fixed(
        ApiError::NotFound,
        "no such provider is configured",
    );
    /// 422: a body, form or query that does not parse (FastAPI's list of problems).
    Validation422 = UNPROCESSABLE_ENTITY, ValidationError, "Malformed input".to_owned();
    /// 429 of a route counting failed attempts at the account's secrets.
    Locked429 = TOO_MANY_REQUESTS, ErrorDetail, "Too many failed attempts at this \
        account's password or codes: locked for a while (see `Retry-After`)".to_owned();
    /// 429 of a route with a per-IP budget.
    PerIp429 = TOO_MANY_REQUESTS, ErrorDetail, "Too many calls from this client IP \
        (`RATE_LIMIT_PER_IP_PER_MINUTE`); see `Retry-After`".to_owned();
    /// 503 of a provider route while its configuration (OpenID discovery) cannot be loaded.
    ProviderNotReady503 = SERVICE_UNAVAILABLE, ErrorDetail, "The provider's configuration \
        could not be loaded yet; see `Retry-After`".to_owned();
}

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
        UserRead, UserCreate, UserUpdate, LoginForm, BearerToken, EmailRequest, ResetPassword,
        ResetPasswordForm, VerifyToken, ErrorDetail, PasswordRejection, PasswordErrorDetail,
        BadRequestBody, FieldError, ValidationError, UsersPage, AuthorizationUrl, Null,
        RefreshRequest, RefreshableToken, SessionRead, TotpEnrolRequest, TotpEnrolment,
        CodeRequest, RecoveryCodes, MfaStatus, MfaVerify, Reauthentication, MfaRequiredDetail,
        MfaRequiredError, CeremonyOptions, PasskeyRegister, PasskeyRead, PasskeyLoginOptions,
        PasskeyLogin, EventRead, EventsPage, ProviderRead, IdentityRead
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::outcome::{CallbackRefused, RegisterRefused};

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
