//! An authorization request's checks: its client and redirect URI first (until they
//! are known good, errors are a page), then everything else (errors go back to the
//! client).

use users_domain::oauth::{is_s256_challenge, redirect_uri_matches};

use super::Authorized;
use crate::flows::oauth::clients::{self, Client};
use crate::flows::oauth::{scopes_of, within, Params};
use crate::{Core, Fault};

/// An authorization request whose client and redirect URI are known good: every
/// further error can go back to the client.
#[derive(Debug, Clone)]
pub(super) struct Bound {
    pub(super) client: Client,
    pub(super) redirect_uri: String,
    pub(super) redirect_uri_given: bool,
    pub(super) state: Option<String>,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub(super) struct Valid {
    pub(super) bound: Bound,
    pub(super) scopes: Vec<String>,
    pub(super) code_challenge: String,
    pub(super) nonce: Option<String>,
    pub(super) resource: Option<String>,
    pub(super) prompt_none: bool,
    pub(super) prompt_login: bool,
    pub(super) prompt_consent: bool,
    pub(super) max_age: Option<i64>,
    pub(super) login_hint: Option<String>,
}

/// An error to send back to the client.
pub(super) struct Back(pub(super) &'static str, pub(super) String);

pub(super) fn back(code: &'static str, description: impl Into<String>) -> Back {
    Back(code, description.into())
}

impl Bound {
    /// An error before the person answered: back to the client, or for a client
    /// registered without a token, a page (its redirect URIs are nobody's word).
    pub(super) fn refuse(&self, issuer: &str, e: Back) -> Authorized {
        if self.client.metadata.registered_openly {
            return Authorized::Page(format!("The request was refused: {} ({}).", e.1, e.0));
        }
        self.error(issuer, e)
    }

    pub(super) fn error(&self, issuer: &str, e: Back) -> Authorized {
        let mut pairs = vec![("error", e.0.to_owned()), ("error_description", e.1)];
        if let Some(s) = &self.state {
            pairs.push(("state", s.clone()));
        }
        pairs.push(("iss", issuer.to_owned()));
        Authorized::Redirect(with_query(&self.redirect_uri, &pairs))
    }
}

/// `uri` with `pairs` appended to its query.
pub(super) fn with_query(uri: &str, pairs: &[(&str, String)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// The client and redirect URI of a request, or the page that says why not.
pub(super) async fn bind(core: &Core, params: &Params) -> Result<Result<Bound, String>, Fault> {
    for name in ["client_id", "redirect_uri"] {
        if params.0.iter().filter(|(k, _)| k == name).count() > 1 {
            return Ok(Err(format!("The request names `{name}` more than once.")));
        }
    }
    let Some(client_id) = params.get("client_id") else {
        return Ok(Err("The request has no `client_id`.".into()));
    };
    let Some(client) = clients::get(core, client_id).await? else {
        return Ok(Err(
            "No application is registered with this client_id.".into()
        ));
    };
    let registered = &client.metadata.redirect_uris;
    let redirect_uri = match params.get("redirect_uri") {
        Some(asked) => match registered.iter().any(|r| redirect_uri_matches(r, asked)) {
            true => asked.to_owned(),
            false => {
                return Ok(Err(
                    "The redirect_uri is not one the application registered.".into(),
                ))
            }
        },
        None => match registered.as_slice() {
            [only] => only.clone(),
            _ => return Ok(Err(
                "The request has no redirect_uri, and the application registered more than one."
                    .into(),
            )),
        },
    };
    Ok(Ok(Bound {
        client,
        redirect_uri,
        redirect_uri_given: params.get("redirect_uri").is_some(),
        state: params.get("state").map(str::to_owned),
    }))
}

/// Checks the rest of a bound request.
pub(super) fn validate(bound: Bound, params: &Params) -> Result<Valid, Box<(Bound, Back)>> {
    match check(&bound, params) {
        Ok(with_bound) => Ok(with_bound(bound)),
        Err(e) => Err(Box::new((bound, e))),
    }
}

/// [`validate`]'s checks, in the order their errors are answered; what passed, waiting
/// for its `bound`.
fn check(bound: &Bound, params: &Params) -> Result<impl FnOnce(Bound) -> Valid, Back> {
    if let Some(name) = params.repeated() {
        return Err(back("invalid_request", format!("`{name}` is repeated")));
    }
    check_response_type(bound, params)?;
    let code_challenge = check_pkce(params)?.to_owned();
    let scopes = check_scopes(bound, params)?;
    let resource = check_resource(params)?;
    let prompts: Vec<&str> = params
        .get("prompt")
        .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if let Some(p) = prompts
        .iter()
        .find(|p| !matches!(**p, "none" | "login" | "consent" | "select_account"))
    {
        return Err(back(
            "invalid_request",
            format!("prompt `{p}` is not supported"),
        ));
    }
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err(back(
            "invalid_request",
            "prompt `none` goes with no other value",
        ));
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(back(
                    "invalid_request",
                    "`max_age` must be a whole number of seconds",
                ))
            }
        },
    };
    let nonce = params.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(back("invalid_request", "`nonce` is too long"));
    }
    let prompt_login = prompts.contains(&"login");
    let prompt_consent = prompts.contains(&"consent");
    let login_hint = params.get("login_hint").map(str::to_owned);
    Ok(move |bound| Valid {
        bound,
        scopes,
        code_challenge,
        nonce,
        resource,
        prompt_none,
        prompt_login,
        prompt_consent,
        max_age,
        login_hint,
    })
}

/// `response_type=code`, from a client registered for the authorization_code grant.
fn check_response_type(bound: &Bound, params: &Params) -> Result<(), Back> {
    match params.get("response_type") {
        None => return Err(back("invalid_request", "`response_type` is required")),
        Some("code") => {}
        Some(other) => {
            return Err(back(
                "unsupported_response_type",
                format!("response_type `{other}` is not supported (only `code`)"),
            ))
        }
    }
    if !bound
        .client
        .metadata
        .has_grant(crate::flows::oauth::GRANT_AUTHORIZATION_CODE)
    {
        return Err(back(
            "unauthorized_client",
            "the client is not registered for the authorization_code grant",
        ));
    }
    Ok(())
}

/// The PKCE challenge: S256 only.
fn check_pkce(params: &Params) -> Result<&str, Back> {
    let Some(challenge) = params.get("code_challenge") else {
        return Err(back(
            "invalid_request",
            "`code_challenge` is required (PKCE)",
        ));
    };
    match params.get("code_challenge_method") {
        Some("S256") => {}
        Some(other) => {
            return Err(back(
                "invalid_request",
                format!("code_challenge_method `{other}` is not supported (only S256)"),
            ))
        }
        None => {
            return Err(back(
                "invalid_request",
                "`code_challenge_method` must be S256",
            ))
        }
    }
    if !is_s256_challenge(challenge) {
        return Err(back(
            "invalid_request",
            "`code_challenge` is not the base64url SHA-256 of a verifier",
        ));
    }
    Ok(challenge)
}

/// The scopes asked for (all the client's without `scope`), within the client's.
fn check_scopes(bound: &Bound, params: &Params) -> Result<Vec<String>, Back> {
    let allowed = bound.client.metadata.scopes();
    let scopes = match params.get("scope") {
        Some(s) => scopes_of(s).map_err(|e| back("invalid_scope", e.description()))?,
        None => allowed.clone(),
    };
    within(&scopes, &allowed).map_err(|outside| {
        back(
            "invalid_scope",
            format!("the client may not ask for scope `{outside}`"),
        )
    })
}

/// The RFC 8707 `resource`: an absolute URI without a fragment, not the service's own.
fn check_resource(params: &Params) -> Result<Option<String>, Back> {
    let Some(r) = params.get("resource") else {
        return Ok(None);
    };
    if r.starts_with("fastapi-users:") {
        return Err(back("invalid_target", "this resource is the service's own"));
    }
    match url::Url::parse(r) {
        Ok(u) if u.fragment().is_none() => Ok(Some(r.to_owned())),
        _ => Err(back(
            "invalid_target",
            "`resource` must be an absolute URI without a fragment",
        )),
    }
}
