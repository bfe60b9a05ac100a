//! A client's registered metadata (RFC 7591 §2): what a registration may send, its
//! checks and defaults (docs/oauth-provider.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use users_domain::oauth::{check_redirect_uri, parse_scope, DEFAULT_CLIENT_SCOPE, STANDARD_SCOPES};

use crate::flows::oauth::{
    OAuthError, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
};

/// The client authentication methods.
pub const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];
/// The algorithms an ID token may be signed with.
pub const ID_TOKEN_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
const GRANT_TYPES: [&str; 3] = [
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_CLIENT_CREDENTIALS,
];

/// A client's registered metadata, as answered (every value, defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub scope: String,
    pub post_logout_redirect_uris: Vec<String>,
    pub id_token_signed_response_alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    pub skip_consent: bool,
    /// Registered without a token (`OAUTH_OPEN_REGISTRATION`): its redirect URIs are
    /// nobody's word, so the authorization request's errors are a page, never a
    /// redirect there (RFC 9700 §4.11.2). A superuser's replacement vouches for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub registered_openly: bool,
}

/// What a registration may send; anything else is ignored (RFC 7591 §2).
#[derive(Debug, Deserialize)]
struct Requested {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    post_logout_redirect_uris: Option<Vec<String>>,
    id_token_signed_response_alg: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    skip_consent: Option<bool>,
}

pub(super) fn metadata_error(message: impl Into<String>) -> OAuthError {
    OAuthError::InvalidClientMetadata(message.into())
}

fn http_url(field: &str, value: &str) -> Result<(), OAuthError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => Ok(()),
        _ => Err(metadata_error(format!("`{field}` must be an http(s) URL"))),
    }
}

impl ClientMetadata {
    /// Reads and checks a registration's JSON body. `extra_scopes`: the scopes beyond
    /// the standard ones that a client may be registered for (the roles' permissions).
    pub fn from_json(body: &Value, extra_scopes: &[String]) -> Result<ClientMetadata, OAuthError> {
        if !body.is_object() {
            return Err(metadata_error("the body must be a JSON object"));
        }
        let r: Requested = serde_json::from_value(body.clone())
            .map_err(|e| metadata_error(format!("a field has the wrong type: {e}")))?;
        let (grant_types, response_types) =
            grant_and_response_types(r.grant_types, r.response_types)?;
        let method = r
            .token_endpoint_auth_method
            .unwrap_or_else(|| "client_secret_basic".to_owned());
        if !AUTH_METHODS.contains(&method.as_str()) {
            return Err(metadata_error(format!(
                "unknown token_endpoint_auth_method `{method}`"
            )));
        }
        let redirect_uris = checked_redirect_uris(r.redirect_uris, "redirect URI")?;
        let post_logout_redirect_uris =
            checked_redirect_uris(r.post_logout_redirect_uris, "post-logout redirect URI")?;
        if grant_types.iter().any(|g| g == GRANT_AUTHORIZATION_CODE) && redirect_uris.is_empty() {
            return Err(metadata_error(
                "`redirect_uris` is required for the authorization_code grant",
            ));
        }
        if method == "none" && grant_types.iter().any(|g| g == GRANT_CLIENT_CREDENTIALS) {
            return Err(metadata_error(
                "a public client (token_endpoint_auth_method none) cannot use client_credentials",
            ));
        }
        let scopes = client_scopes(r.scope, extra_scopes)?;
        let alg = r
            .id_token_signed_response_alg
            .unwrap_or_else(|| "RS256".to_owned());
        if !ID_TOKEN_ALGORITHMS.contains(&alg.as_str()) {
            return Err(metadata_error(format!(
                "id_token_signed_response_alg `{alg}` is not one of RS256, ES256, EdDSA"
            )));
        }
        for (field, value) in [("client_uri", &r.client_uri), ("logo_uri", &r.logo_uri)] {
            if let Some(v) = value {
                http_url(field, v)?;
            }
        }
        if let Some(name) = &r.client_name {
            if name.trim().is_empty() || name.chars().count() > 200 {
                return Err(metadata_error("`client_name` must be 1 to 200 characters"));
            }
        }
        Ok(ClientMetadata {
            redirect_uris,
            client_name: r.client_name,
            grant_types,
            response_types,
            token_endpoint_auth_method: method,
            scope: scopes.join(" "),
            post_logout_redirect_uris,
            id_token_signed_response_alg: alg,
            client_uri: r.client_uri,
            logo_uri: r.logo_uri,
            skip_consent: r.skip_consent.unwrap_or(false),
            registered_openly: false,
        })
    }

    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == "none"
    }

    pub fn has_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    /// The scopes the client may ask for.
    pub fn scopes(&self) -> Vec<String> {
        parse_scope(&self.scope).unwrap_or_default()
    }

    /// What people see it as: its name, else its id.
    pub fn display_name<'a>(&'a self, client_id: &'a str) -> &'a str {
        self.client_name.as_deref().unwrap_or(client_id)
    }
}

/// The grant types of a registration (the authorization code without any), and its
/// response types (`code` for that grant without any).
fn grant_and_response_types(
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
) -> Result<(Vec<String>, Vec<String>), OAuthError> {
    let grant_types = grant_types.unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.to_owned()]);
    if let Some(g) = grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(metadata_error(format!("unknown grant type `{g}`")));
    }
    let response_types = response_types.unwrap_or_else(|| {
        if grant_types.iter().any(|g| g == GRANT_AUTHORIZATION_CODE) {
            vec!["code".to_owned()]
        } else {
            Vec::new()
        }
    });
    if let Some(t) = response_types.iter().find(|t| *t != "code") {
        return Err(metadata_error(format!(
            "unknown response type `{t}` (only `code`)"
        )));
    }
    Ok((grant_types, response_types))
}

/// Redirect URIs of a registration, each checked; `what` names them in the error.
fn checked_redirect_uris(uris: Option<Vec<String>>, what: &str) -> Result<Vec<String>, OAuthError> {
    let uris = uris.unwrap_or_default();
    for uri in &uris {
        check_redirect_uri(uri)
            .map_err(|e| OAuthError::InvalidRedirectUri(format!("{what} `{uri}` {e}")))?;
    }
    Ok(uris)
}

/// The scopes of a registration (the default without any): standard ones and the
/// permissions of roles (`extra_scopes`) only.
fn client_scopes(
    scope: Option<String>,
    extra_scopes: &[String],
) -> Result<Vec<String>, OAuthError> {
    let scope = scope.unwrap_or_else(|| DEFAULT_CLIENT_SCOPE.to_owned());
    let scopes =
        parse_scope(&scope).ok_or_else(|| metadata_error("`scope` is not a list of scopes"))?;
    if let Some(s) = scopes
        .iter()
        .find(|s| !STANDARD_SCOPES.contains(&s.as_str()) && !extra_scopes.contains(s))
    {
        return Err(metadata_error(format!(
            "scope `{s}` is neither a standard scope nor a permission of a role"
        )));
    }
    Ok(scopes)
}
