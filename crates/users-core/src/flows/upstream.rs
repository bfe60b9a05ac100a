//! Sign-in with an identity provider, and linking a provider account to the current
//! user (docs/providers.md), the same for every provider: PKCE S256, a state that is
//! signed, bound to the browser by a cookie and to the provider it was made for, and
//! usable once; for OpenID providers also a nonce and the id_token verified against the
//! provider's keys. The checks of a callback come in the order docs/providers.md gives.

use users_db::upstream::{
    self, Association, CreatedLinked, LinkedByEmail, PendingState, ProviderAccount, Takeover,
};
use users_db::users::{self, NewUser, StoredUser};
use users_db::DbError;
use users_domain::crypto::{constant_time_eq, random_token};
use users_domain::{EmailAddress, Timestamp, User, UserId};
use users_mail::SecurityChange;
use users_upstream::{Identity, OAuthError};

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::session::SignInMethod;
use crate::flows::sign_in::{self, FirstFactor, SignIn, Transport};
use crate::flows::unusable_password;
use crate::guards::Why;
use crate::outbox::notice;
use crate::tokens::{StateClaims, TokenError, STATE_AUDIENCE};
use crate::upstream::Provider;
use crate::{Core, Fault};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No provider of that name is configured.
    #[error("no such provider")]
    NotConfigured,
    /// The provider's configuration could not be loaded yet; the label names it.
    #[error("{0} sign-in is not ready: the provider's configuration could not be loaded yet")]
    NotReady(String),
    /// The provider sent the browser back with `?error=X`.
    #[error("the provider answered {0}")]
    Denied(String),
    #[error("no authorization code")]
    MissingCode,
    /// Missing, garbage or badly signed state.
    #[error("the state cannot be read")]
    StateUnreadable,
    #[error("the state has expired")]
    StateExpired,
    /// The browser's cookie does not match the state, or the state was used already.
    #[error("the state is not this browser's, or was used")]
    InvalidState,
    /// A sign-in state on the associate callback, or one made for another user.
    #[error("the state was made for another purpose")]
    WrongUser,
    #[error("the identity provider is unavailable")]
    ProviderUnavailable,
    #[error("the identity provider refused the code")]
    CodeRejected,
    #[error("the id_token failed verification")]
    InvalidIdToken,
    #[error("the provider gave no email")]
    NoEmail,
    /// The email belongs to a user this account is not linked to.
    #[error("a user with this email already exists")]
    UserAlreadyExists,
    /// The provider account is linked to another user.
    #[error("the account is linked to another user")]
    AccountAlreadyLinked,
    #[error("inactive user")]
    Inactive,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for UpstreamError {
    fn from(e: DbError) -> Self {
        UpstreamError::Fault(e.into())
    }
}

impl From<OAuthError> for UpstreamError {
    fn from(e: OAuthError) -> Self {
        tracing::warn!(error = %e, "sign-in with the provider failed");
        match e {
            OAuthError::Unavailable(_) | OAuthError::Discovery(_) => {
                UpstreamError::ProviderUnavailable
            }
            OAuthError::Rejected(_) => UpstreamError::CodeRejected,
            OAuthError::InvalidIdToken(_) => UpstreamError::InvalidIdToken,
        }
    }
}

fn provider<'a>(core: &'a Core, name: &str) -> Result<&'a Provider, UpstreamError> {
    core.providers.get(name).ok_or(UpstreamError::NotConfigured)
}

fn client(provider: &Provider) -> Result<users_upstream::ProviderClient, UpstreamError> {
    provider
        .client()
        .ok_or_else(|| UpstreamError::NotReady(provider.settings.label.clone()))
}

/// Where the browser goes, and what binds the authorization to it.
#[derive(Debug)]
pub struct Authorization {
    pub url: String,
    /// The value of the CSRF cookie to set; the state carries the same value.
    pub csrf: String,
    pub lifetime_seconds: i64,
}

/// Starts an authorization: a signed state holding a fresh CSRF value, a server-side
/// row holding the PKCE verifier and the nonce, and the provider's URL.
/// `for_user`: the current user, when linking an account to it. `return_to`: the page
/// of the service that started a sign-in (a path), where its callback returns with the
/// cookie set.
#[tracing::instrument(level = "debug", name = "upstream::begin", skip_all)]
pub async fn begin(
    core: &Core,
    provider_name: &str,
    for_user: Option<UserId>,
    redirect_uri: &str,
    extra_scopes: &[String],
    return_to: Option<String>,
    now: Timestamp,
) -> Result<Authorization, UpstreamError> {
    let provider = provider(core, provider_name)?;
    let client = client(provider)?;
    let lifetime = core.config.oauth_state_lifetime_seconds;
    let csrf = random_token(32);
    let (verifier, challenge) = users_upstream::pkce_pair();
    let pending = PendingState {
        id: random_token(32),
        pkce_verifier: verifier,
        nonce: users_upstream::random_nonce(),
        user_id: for_user.map(|u| u.to_string()),
        expires_at: now.plus_secs(lifetime).millis(),
        provider: provider.settings.name.clone(),
        return_to,
    };
    let claims = StateClaims {
        csrftoken: csrf.clone(),
        jti: Some(pending.id.clone()),
        sub: for_user.map(|u| u.to_string()),
        provider: Some(provider.settings.name.clone()),
        aud: STATE_AUDIENCE.to_owned(),
        exp: now.secs() + lifetime,
    };
    let signed = core.tokens.issue_state(&claims).map_err(Fault::internal)?;
    let nonce = pending.nonce.clone();
    core.store
        .run(move |c| upstream::save_state(c, &pending, now.millis()))
        .await?;
    let url = client.authorization_url(redirect_uri, &signed, &nonce, &challenge, extra_scopes);
    Ok(Authorization {
        url,
        csrf,
        lifetime_seconds: lifetime,
    })
}

/// What the provider's redirect brought back to the callback.
#[derive(Debug, Default)]
pub struct Callback {
    pub error: Option<String>,
    pub code: Option<String>,
    pub state: Option<String>,
    /// The CSRF cookie the browser sent.
    pub csrf_cookie: Option<String>,
}

/// A callback that passed its checks: the identity the provider vouches for, and the
/// page that started the sign-in, if one did.
#[derive(Debug)]
pub struct Finished {
    pub identity: Identity,
    pub return_to: Option<String>,
}

/// The checks of docs/providers.md, in order, then the exchange with the provider: the
/// verified identity. `for_user`: the current user on the associate callback.
#[tracing::instrument(level = "debug", name = "upstream::finish", skip_all)]
pub async fn finish(
    core: &Core,
    provider_name: &str,
    callback: Callback,
    for_user: Option<UserId>,
    redirect_uri: &str,
    now: Timestamp,
) -> Result<Finished, UpstreamError> {
    let provider = provider(core, provider_name)?;
    if let Some(error) = callback.error {
        return Err(UpstreamError::Denied(error));
    }
    let code = callback
        .code
        .filter(|c| !c.is_empty())
        .ok_or(UpstreamError::MissingCode)?;
    let raw_state = callback.state.ok_or(UpstreamError::StateUnreadable)?;
    let claims = core
        .tokens
        .decode_state(&raw_state, now)
        .map_err(|e| match e {
            TokenError::Expired => UpstreamError::StateExpired,
            TokenError::Invalid | TokenError::UnknownKey => UpstreamError::StateUnreadable,
        })?;
    let cookie = callback.csrf_cookie.unwrap_or_default();
    if cookie.is_empty() || !constant_time_eq(cookie.as_bytes(), claims.csrftoken.as_bytes()) {
        return Err(UpstreamError::InvalidState);
    }
    // A state made for another provider: its verifier and nonce are that provider's.
    if claims.provider.as_deref() != Some(provider.settings.name.as_str()) {
        return Err(UpstreamError::InvalidState);
    }
    // A sign-in state on the associate callback, or one made for another user, and
    // an association state on the sign-in callback, are all refused.
    if claims.sub != for_user.map(|u| u.to_string()) {
        return Err(UpstreamError::WrongUser);
    }
    let client = client(provider)?;
    let jti = claims.jti.ok_or(UpstreamError::InvalidState)?;
    let pending = core
        .store
        .run(move |c| upstream::take_state(c, &jti))
        .await?
        .filter(|p| {
            p.user_id == for_user.map(|u| u.to_string()) && p.provider == provider.settings.name
        })
        .ok_or(UpstreamError::InvalidState)?;
    let (identity, _tokens) = client
        .sign_in(
            &code,
            redirect_uri,
            &pending.pkce_verifier,
            &pending.nonce,
            now.secs(),
        )
        .await?;
    if identity.email.as_deref().is_none_or(str::is_empty) {
        return Err(UpstreamError::NoEmail);
    }
    Ok(Finished {
        identity,
        return_to: pending.return_to,
    })
}

/// Signs in the user a verified identity belongs to: the linked one; else, when the
/// provider allows linking by email and the provider says the email is verified, the
/// user with that email; else a new user, created with the link in one transaction.
#[tracing::instrument(level = "debug", name = "upstream::sign_in", skip_all)]
pub async fn sign_in(
    core: &Core,
    provider_name: &str,
    identity: Identity,
    client: &ClientInfo,
    transport: Transport,
    now: Timestamp,
) -> Result<SignIn, UpstreamError> {
    let provider = provider(core, provider_name)?;
    let user = user_for(core, provider, identity, client, now).await?;
    if !user.is_active {
        return Err(UpstreamError::Inactive);
    }
    let (id, name) = (user.id, provider.settings.name.clone());
    let method = SignInMethod {
        name: provider.settings.key.clone(),
        aal: 1,
        second_factor: None,
    };
    let first = FirstFactor {
        user,
        method,
        client: client.clone(),
        offline_access: false,
        transport,
        factors: None,
        attempt: None,
    };
    let outcome = sign_in::complete_first_factor(core, first, now).await?;
    tracing::info!(user_id = %id, provider = %name, "signed in with a provider");
    Ok(outcome)
}

async fn user_for(
    core: &Core,
    provider: &Provider,
    identity: Identity,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<User, UpstreamError> {
    let email = EmailAddress::parse(identity.email.as_deref().unwrap_or_default())
        .map_err(|_| UpstreamError::NoEmail)?;
    let account = ProviderAccount {
        provider: provider.settings.key.clone(),
        subject: identity.subject,
        email: email.as_str().to_owned(),
        email_verified: identity.email_verified,
    };

    // 1. a linked account
    let (k, s, e) = (
        account.provider.clone(),
        account.subject.clone(),
        account.email.clone(),
    );
    let linked: Option<StoredUser> = core
        .store
        .run(move |c| upstream::linked_user(c, &k, &s, Some(&e), now.millis()))
        .await?;
    if let Some(user) = linked {
        return Ok(user.user);
    }

    // 2. an existing user with that email
    let email_key = email.key();
    let existing = core
        .store
        .run(move |c| users::find_by_email_key(c, &email_key))
        .await?;
    if let Some(existing) = existing {
        return link_by_email(core, provider, existing, account, client, now).await;
    }

    // 3. a new user, linked
    sign_up(core, provider, email, account, client, now).await
}

/// Links the account to the user who has its email, when the provider allows it and
/// says the email is verified.
async fn link_by_email(
    core: &Core,
    provider: &Provider,
    existing: StoredUser,
    account: ProviderAccount,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<User, UpstreamError> {
    if !provider.settings.associate_by_email || !account.email_verified {
        return Err(UpstreamError::UserAlreadyExists);
    }
    if !existing.user.is_active {
        return Err(UpstreamError::Inactive);
    }
    let id = existing.user.id;
    // Someone may have registered this address before its owner (pre-account
    // takeover): the owner, proven by the provider, takes the account, and nothing
    // the earlier registrant set up stays (docs/security.md).
    let takeover = (!existing.user.is_verified).then(|| Takeover {
        unusable_password: unusable_password(),
        end_sessions: super::account::end_every_session(id, now, "account_taken_over"),
    });
    let event = Event::new(EventType::IdentityLinked, Some(id))
        .with("provider", provider.settings.name.clone())
        .with("via", "email")
        .with("password_removed", takeover.is_some());
    let linked_notice = SecurityChange::ProviderLinked {
        provider: provider.settings.label.clone(),
    };
    let notice = notice(core, &existing.user.email, linked_notice, now)?;
    let change = Change::new(vec![event], client, now).and(notice);
    let linked = core
        .apply(change, move |c, raised| {
            let effects = raised.with_cleared(id, Why::TakenOver);
            upstream::link_by_email(c, id, &account, takeover.as_ref(), now.millis(), effects)
        })
        .await?;
    match linked {
        LinkedByEmail::Linked(u) => {
            tracing::info!(user_id = %id, taken_over = !existing.user.is_verified,
                "provider account linked by verified email");
            Ok(u.user)
        }
        LinkedByEmail::NoSuchUser | LinkedByEmail::AccountTaken => {
            Err(UpstreamError::UserAlreadyExists)
        }
    }
}

/// A new user with the provider's (verified or not) email, linked to the account.
async fn sign_up(
    core: &Core,
    provider: &Provider,
    email: EmailAddress,
    account: ProviderAccount,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<User, UpstreamError> {
    let new_id = UserId::new_v4();
    let user = User {
        id: new_id,
        email: email.into_string(),
        is_active: true,
        is_superuser: false,
        is_verified: false,
    };
    let new = NewUser::new(&user, unusable_password(), now.millis());
    let events = vec![
        // the method as sessions name it (`oidc:<name>`); the provider as routes do
        Event::new(EventType::UserRegistered, Some(new_id))
            .with("method", provider.settings.key.clone()),
        Event::new(EventType::IdentityLinked, Some(new_id))
            .with("provider", provider.settings.name.clone())
            .with("via", "sign_up"),
    ];
    let (key, subject) = (account.provider.clone(), account.subject.clone());
    let created = core
        .apply(Change::new(events, client, now), move |c, raised| {
            upstream::create_linked_user(c, &new, &account, raised.effects())
        })
        .await?;
    match created {
        CreatedLinked::Created(user) => {
            tracing::info!(user_id = %user.user.id, "user created through a provider");
            Ok(user.user)
        }
        // a concurrent first sign-in of the same account, or the email taken meanwhile
        CreatedLinked::Taken => {
            let raced = core
                .store
                .run(move |c| upstream::linked_user(c, &key, &subject, None, now.millis()))
                .await?;
            raced
                .map(|u| u.user)
                .ok_or(UpstreamError::UserAlreadyExists)
        }
    }
}

/// Links the provider account of a verified identity to `user` (the current user),
/// without touching their email.
#[tracing::instrument(level = "debug", name = "upstream::associate", skip_all)]
pub async fn associate(
    core: &Core,
    provider_name: &str,
    user: &User,
    identity: Identity,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<User, UpstreamError> {
    let provider = provider(core, provider_name)?;
    let id = user.id;
    let event = Event::new(EventType::IdentityLinked, Some(id))
        .with("provider", provider.settings.name.clone())
        .with("via", "associate");
    let linked_notice = SecurityChange::ProviderLinked {
        provider: provider.settings.label.clone(),
    };
    let change =
        Change::new(vec![event], client, now).and(notice(core, &user.email, linked_notice, now)?);
    let account = ProviderAccount {
        provider: provider.settings.key.clone(),
        subject: identity.subject,
        email: identity.email.unwrap_or_default(),
        email_verified: identity.email_verified,
    };
    let result = core
        .apply(change, move |c, raised| {
            upstream::associate(c, id, &account, now.millis(), raised.effects())
        })
        .await?;
    match result {
        Association::Linked => {
            tracing::info!(user_id = %id, provider = %provider.settings.name, "provider account linked");
            Ok(user.clone())
        }
        Association::Refreshed => {
            tracing::info!(user_id = %id, provider = %provider.settings.name, "provider account linked");
            Ok(user.clone())
        }
        Association::LinkedToAnother => Err(UpstreamError::AccountAlreadyLinked),
    }
}
