//! The OpenAPI responses of the routes, built from the declaration of the codes
//! (`codes.rs`): sets of answers a route names in its `responses(...)`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoResponses, ToSchema};

use crate::codes::{Body, Code};
use crate::error::{ApiError, BadRequestBody, ErrorDetail, OAuthErrorBody, ValidationError};

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
                    $crate::answers::code_responses(
                        &[$($crate::codes::Code::$code),*],
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
    /// 401 of the provider's client registry (OAuth's shape).
    RegistryNoToken401 = UNAUTHORIZED, OAuthErrorBody,
        "`invalid_token`: no superuser's access token (an API key is not one)".to_owned();
    /// 403 of the provider's client registry.
    RegistryNotSuperuser403 = FORBIDDEN, OAuthErrorBody,
        "`insufficient_scope`: the caller is not a superuser".to_owned();
    /// 404 of a registry route naming a client by `{client_id}`.
    UnknownClient404 = NOT_FOUND, OAuthErrorBody,
        "`invalid_client_id`: no client has this id".to_owned();
    /// 401 of the token, introspection and revocation endpoints.
    InvalidClient401 = UNAUTHORIZED, OAuthErrorBody,
        "`invalid_client`: client authentication failed (`WWW-Authenticate: Basic` when \
        Basic was used)".to_owned();
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
