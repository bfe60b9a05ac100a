//! Upstream providers: the authorization URL, the configured providers, the linked
//! identities.

use serde::Serialize;
use utoipa::ToSchema;

/// Where to send the browser to sign in at a provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationUrl {
    pub authorization_url: String,
}

/// A provider a user can sign in with (`GET /auth/providers`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderRead {
    /// The name in its routes: `google`, `github`, or a name of `OIDC_PROVIDERS`.
    pub name: String,
    /// Button text.
    pub label: String,
    /// `PUBLIC_URL/auth/<name>/authorize`: GET it for the authorization URL.
    pub authorize_url: String,
}

/// A provider account linked to the current user.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityRead {
    /// The provider's name, as in `GET /auth/providers` and its routes.
    pub provider: String,
    /// The account at the provider: the OpenID `sub`, or GitHub's numeric user id.
    pub subject: String,
    /// The email the provider gave at the last sign-in.
    pub email: String,
    #[schema(value_type = String, format = DateTime)]
    pub linked_at: users_domain::Timestamp,
}

impl From<users_core::flows::identities::IdentityInfo> for IdentityRead {
    fn from(i: users_core::flows::identities::IdentityInfo) -> Self {
        IdentityRead {
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            linked_at: i.linked_at,
        }
    }
}
