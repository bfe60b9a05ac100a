//! The consent page and the person's decision.

use users_db::oauth::{self as db, CodeIssue, RequestRow};
use users_db::sessions::SessionRow;
use users_domain::crypto::constant_time_eq;
use users_domain::{Timestamp, UserId};

use super::request::{back, bind, validate, Valid};
use super::{browser_session, issue_code, Authorized};
use crate::client::ClientInfo;
use crate::flows::oauth::Params;
use crate::{Core, Fault};

/// What the consent page shows.
#[derive(Debug, Clone)]
pub struct ConsentView {
    pub request_id: String,
    pub csrf: String,
    pub client_name: String,
    pub client_uri: Option<String>,
    /// The host the person will be sent back to.
    pub redirect_host: String,
    /// Where the decision redirects, as a CSP source: the redirect URI's origin, or its
    /// scheme (`com.example.app:`) for a native app.
    pub redirect_target: String,
    pub scopes: Vec<String>,
    pub user_email: String,
}

/// Why the consent page cannot be shown or answered.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Unknown, expired or answered already.
    #[error("this request has expired or was answered already")]
    Expired,
    /// The browser is not signed in as the person the request is for.
    #[error("not signed in as the person this request is for")]
    NotSignedIn,
    /// The form's CSRF token is not the request's.
    #[error("the form does not belong to this request")]
    Forged,
    #[error(transparent)]
    Fault(#[from] Fault),
}

async fn consent_request(
    core: &Core,
    request_id: &str,
    cookie: Option<String>,
    now: Timestamp,
) -> Result<(RequestRow, Valid, UserId, SessionRow), ConsentError> {
    let id = request_id.to_owned();
    let now_ms = now.millis();
    let row = core
        .store
        .run(move |c| db::find_request(c, &id, "consent", now_ms))
        .await
        .map_err(Fault::from)?
        .ok_or(ConsentError::Expired)?;
    let (user_id, session) = browser_session(core, cookie, now)
        .await?
        .ok_or(ConsentError::NotSignedIn)?;
    if row.user_id.as_deref() != Some(user_id.to_string().as_str()) {
        return Err(ConsentError::NotSignedIn);
    }
    let params: Params = serde_json::from_str(&row.params).map_err(Fault::internal)?;
    let bound = match bind(core, &params).await? {
        Ok(b) => b,
        Err(_) => return Err(ConsentError::Expired),
    };
    let valid = validate(bound, &params).map_err(|_| ConsentError::Expired)?;
    Ok((row, valid, user_id, session))
}

/// `GET /oauth/consent?request=`.
#[tracing::instrument(level = "debug", name = "oauth::authorize::consent_view", skip_all)]
pub async fn consent_view(
    core: &Core,
    request_id: &str,
    cookie: Option<String>,
    now: Timestamp,
) -> Result<ConsentView, ConsentError> {
    let (row, valid, user_id, _) = consent_request(core, request_id, cookie, now).await?;
    let user = core
        .store
        .run(move |c| users_db::users::find_by_id(c, user_id))
        .await
        .map_err(Fault::from)?
        .ok_or(ConsentError::NotSignedIn)?;
    let metadata = &valid.bound.client.metadata;
    Ok(ConsentView {
        request_id: row.id,
        csrf: row.csrf.unwrap_or_default(),
        client_name: metadata
            .display_name(&valid.bound.client.client_id)
            .to_owned(),
        client_uri: metadata.client_uri.clone(),
        redirect_host: url::Url::parse(&valid.bound.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| valid.bound.redirect_uri.clone()),
        redirect_target: url::Url::parse(&valid.bound.redirect_uri)
            .map(|u| match u.scheme() {
                "http" | "https" => u.origin().ascii_serialization(),
                scheme => format!("{scheme}:"),
            })
            .unwrap_or_default(),
        scopes: valid.scopes,
        user_email: user.user.email,
    })
}

/// `POST /oauth/consent`: the person's decision. Answers the redirect to the client.
#[tracing::instrument(level = "debug", name = "oauth::authorize::decide", skip_all)]
pub async fn decide(
    core: &Core,
    request_id: &str,
    csrf: &str,
    allow: bool,
    cookie: Option<String>,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<String, ConsentError> {
    let (row, valid, user_id, session) = consent_request(core, request_id, cookie, now).await?;
    let expected = row.csrf.clone().unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), csrf.as_bytes()) {
        return Err(ConsentError::Forged);
    }
    let issuer = core.config.public_url.clone();
    if !allow {
        let id = row.id.clone();
        let spent = core
            .store
            .run(move |c| db::spend_request(c, &id))
            .await
            .map_err(Fault::from)?;
        if !spent {
            return Err(ConsentError::Expired);
        }
        return match valid.bound.error(
            &issuer,
            back("access_denied", "the person did not allow the request"),
        ) {
            Authorized::Redirect(to) => Ok(to),
            _ => Err(ConsentError::Expired),
        };
    }
    let issue = CodeIssue {
        remember: Some(valid.scopes.join(" ")),
        spend_request: Some(row.id.clone()),
    };
    match issue_code(core, &valid, user_id, &session, issue, client, now).await? {
        Some(Authorized::Redirect(to)) => Ok(to),
        _ => Err(ConsentError::Expired),
    }
}
