//! Sign-in with other accounts: Google (`GOOGLE_*`), the OpenID providers of
//! `OIDC_PROVIDERS` (each from its `OIDC_<NAME>_*`), GitHub (`GITHUB_*`), and what every
//! provider's sign-in shares (`OAUTH_*`).

use std::time::Duration;

use secrecy::SecretString;
use users_core::{ProviderKind, ProviderSettings};

use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::text(
        "GOOGLE_CLIENT_ID",
        WhenUnset::Described("the Google routes answer 404"),
        "the OAuth client ID",
        "the OAuth client of \"Sign in with Google\"",
    ),
    Variable::text(
        "GOOGLE_CLIENT_SECRET",
        WhenUnset::Described("required when GOOGLE_CLIENT_ID is set"),
        "the OAuth client secret",
        "the OAuth client of \"Sign in with Google\"",
    ),
    Variable::text(
        "GOOGLE_ISSUER_URL",
        WhenUnset::Value("https://accounts.google.com"),
        "an absolute https:// URL",
        "where Google's endpoints are discovered",
    ),
    Variable::flag(
        "GOOGLE_ASSOCIATE_BY_EMAIL",
        false,
        "a sign-in whose verified email matches a user links to that user",
    ),
    Variable::number(
        "GOOGLE_TIMEOUT_SECONDS",
        10,
        1..=120,
        "timeout of every call to Google",
    ),
    Variable::text(
        "OIDC_PROVIDERS",
        WhenUnset::Described("none"),
        "comma-separated names of 1 to 32 of a-z, 0-9 and -, not reserved",
        "the OpenID Connect providers besides Google",
    ),
    Variable::text(
        "OIDC_<NAME>_ISSUER_URL",
        WhenUnset::Required,
        "an absolute http(s) URL without a query",
        "the provider's issuer, where discovery starts",
    ),
    Variable::text(
        "OIDC_<NAME>_CLIENT_ID",
        WhenUnset::Required,
        "not blank",
        "the OAuth client at the provider",
    ),
    Variable::text(
        "OIDC_<NAME>_CLIENT_SECRET",
        WhenUnset::Required,
        "not blank",
        "the OAuth client at the provider",
    ),
    Variable::text(
        "OIDC_<NAME>_SCOPES",
        WhenUnset::Value("openid email profile"),
        "scopes separated by blanks or commas",
        "scopes every authorization asks for (openid is always added)",
    ),
    Variable::flag(
        "OIDC_<NAME>_ASSOCIATE_BY_EMAIL",
        false,
        "as GOOGLE_ASSOCIATE_BY_EMAIL, for this provider",
    ),
    Variable::text(
        "OIDC_<NAME>_LABEL",
        WhenUnset::Described("the name"),
        "1 to 64 characters",
        "button text, in GET /auth/providers",
    ),
    Variable::number(
        "OIDC_<NAME>_TIMEOUT_SECONDS",
        10,
        1..=120,
        "timeout of every call to the provider",
    ),
    Variable::text(
        "GITHUB_CLIENT_ID",
        WhenUnset::Described("the GitHub routes answer 404"),
        "the OAuth app's client ID",
        "the OAuth app of \"Sign in with GitHub\"",
    ),
    Variable::text(
        "GITHUB_CLIENT_SECRET",
        WhenUnset::Described("required when GITHUB_CLIENT_ID is set"),
        "the OAuth app's client secret",
        "the OAuth app of \"Sign in with GitHub\"",
    ),
    Variable::text(
        "GITHUB_URL",
        WhenUnset::Value(users_core::upstream::GITHUB_URL),
        "an absolute http(s) URL without a query",
        "GitHub's sign-in pages (a GitHub Enterprise Server's URL)",
    ),
    Variable::text(
        "GITHUB_API_URL",
        WhenUnset::Value(users_core::upstream::GITHUB_API_URL),
        "an absolute http(s) URL without a query",
        "GitHub's REST API (https://<host>/api/v3 for GitHub Enterprise Server)",
    ),
    Variable::flag(
        "GITHUB_ASSOCIATE_BY_EMAIL",
        false,
        "a sign-in whose primary verified email matches a user links to that user",
    ),
    Variable::number(
        "GITHUB_TIMEOUT_SECONDS",
        10,
        1..=120,
        "timeout of every call to GitHub",
    ),
    Variable::text(
        "OAUTH_SUCCESS_REDIRECT_URL",
        WhenUnset::Described("the callback answers JSON"),
        "an absolute http(s) URL without a #fragment",
        "where the sign-in callback redirects with #access_token=…",
    ),
    Variable::number(
        "OAUTH_STATE_LIFETIME_SECONDS",
        3600,
        60..=86_400,
        "how long an authorization may take",
    ),
];

#[derive(Debug, Clone)]
pub struct Providers {
    /// "Sign in with Google": set when `GOOGLE_CLIENT_ID` is.
    pub google: Option<ProviderSettings>,
    /// The OpenID providers of `OIDC_PROVIDERS`, in its order.
    pub oidc_providers: Vec<ProviderSettings>,
    /// "Sign in with GitHub": set when `GITHUB_CLIENT_ID` is.
    pub github: Option<ProviderSettings>,
    /// The OAuth callback redirects here with `#access_token=…` instead of answering JSON.
    pub oauth_success_redirect_url: Option<String>,
    pub oauth_state_lifetime_seconds: i64,
}

impl Providers {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let google = google(env)?;
        let oidc_providers = oidc_providers(env)?;
        let github = github(env)?;
        let oauth_success_redirect_url = match env.get("OAUTH_SUCCESS_REDIRECT_URL")? {
            Some(url) if !url.trim().is_empty() => {
                let url = url.trim().to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('#')
                {
                    return Err(err(
                        "OAUTH_SUCCESS_REDIRECT_URL",
                        "must be an absolute http(s) URL without a #fragment",
                    ));
                }
                Some(url)
            }
            _ => None,
        };
        let oauth_state_lifetime_seconds = env.number("OAUTH_STATE_LIFETIME_SECONDS")?;
        Ok(Providers {
            google,
            oidc_providers,
            github,
            oauth_success_redirect_url,
            oauth_state_lifetime_seconds,
        })
    }

    /// Every configured provider: Google, the OpenID providers, GitHub.
    pub fn all(&self) -> impl Iterator<Item = &ProviderSettings> {
        self.google
            .iter()
            .chain(&self.oidc_providers)
            .chain(&self.github)
    }
}

/// Names an OpenID provider may not take: other routes under `/auth/`, and the
/// providers configured by their own variables.
pub const RESERVED_PROVIDER_NAMES: &[&str] = &[
    "jwt",
    "cookie",
    "google",
    "github",
    "associate",
    "mfa",
    "passkeys",
    "sessions",
];

/// `OIDC_<NAME>_<SUFFIX>` of the provider `name`: upper-cased, `-` as `_`.
pub fn oidc_variable(name: &str, suffix: &str) -> String {
    format!(
        "OIDC_{}_{suffix}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// The variable naming the issuer of the provider `name` (in start-up errors).
pub fn issuer_variable(name: &str) -> String {
    match name {
        "google" => "GOOGLE_ISSUER_URL".to_owned(),
        "github" => "GITHUB_URL".to_owned(),
        other => oidc_variable(other, "ISSUER_URL"),
    }
}

/// Whether `name` may name an OpenID provider: `[a-z0-9-]{1,32}`, not reserved.
fn provider_name_problem(name: &str) -> Option<String> {
    let shaped = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !shaped {
        return Some(format!(
            "`{name}` is not a provider name: 1 to 32 of a-z, 0-9 and -"
        ));
    }
    if RESERVED_PROVIDER_NAMES.contains(&name) {
        return Some(format!(
            "`{name}` is reserved; choose another name (reserved: {})",
            RESERVED_PROVIDER_NAMES.join(", ")
        ));
    }
    None
}

/// An absolute http(s) URL without a trailing slash, or an error naming `var`.
fn base_url(var: &str, value: &str) -> Result<String, SettingsError> {
    let url = value.trim().trim_end_matches('/').to_owned();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#', ' '])) {
        return Err(err(
            var,
            format!("`{url}` is not an absolute https:// URL without a query"),
        ));
    }
    Ok(url)
}

/// A client ID: `var` when set and not blank.
fn client_id(env: &Env<'_>, var: &str) -> Result<Option<String>, SettingsError> {
    Ok(env
        .get(var)?
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty()))
}

/// A client secret, which a client ID `id_var` requires.
fn client_secret(env: &Env<'_>, var: &str, id_var: &str) -> Result<SecretString, SettingsError> {
    env.get(var)?
        .filter(|s| !s.is_empty())
        .map(SecretString::from)
        .ok_or_else(|| err(var, format!("is required when {id_var} is set")))
}

/// "Sign in with Google", when `GOOGLE_CLIENT_ID` is set.
fn google(env: &Env<'_>) -> Result<Option<ProviderSettings>, SettingsError> {
    let Some(client_id) = client_id(env, "GOOGLE_CLIENT_ID")? else {
        return Ok(None);
    };
    let client_secret = client_secret(env, "GOOGLE_CLIENT_SECRET", "GOOGLE_CLIENT_ID")?;
    let issuer_url = env
        .text("GOOGLE_ISSUER_URL")?
        .trim()
        .trim_end_matches('/')
        .to_owned();
    if !(issuer_url.starts_with("https://") || issuer_url.starts_with("http://")) {
        return Err(err("GOOGLE_ISSUER_URL", "must be an absolute https:// URL"));
    }
    Ok(Some(ProviderSettings {
        name: "google".to_owned(),
        key: "google".to_owned(),
        label: "Google".to_owned(),
        kind: ProviderKind::OpenId { scopes: Vec::new() },
        client_id,
        client_secret,
        issuer_url,
        associate_by_email: env.flag("GOOGLE_ASSOCIATE_BY_EMAIL")?,
        timeout: Duration::from_secs(env.number("GOOGLE_TIMEOUT_SECONDS")?),
    }))
}

/// The OpenID providers of `OIDC_PROVIDERS` (comma-separated names), each from its
/// `OIDC_<NAME>_*` variables.
fn oidc_providers(env: &Env<'_>) -> Result<Vec<ProviderSettings>, SettingsError> {
    let listed = env.get("OIDC_PROVIDERS")?.unwrap_or_default();
    let mut providers: Vec<ProviderSettings> = Vec::new();
    for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if let Some(problem) = provider_name_problem(name) {
            return Err(err("OIDC_PROVIDERS", problem));
        }
        if providers.iter().any(|p| p.name == name) {
            return Err(err("OIDC_PROVIDERS", format!("`{name}` is listed twice")));
        }
        providers.push(oidc_provider(env, name)?);
    }
    Ok(providers)
}

/// The OpenID provider `name` of `OIDC_PROVIDERS`, from its `OIDC_<NAME>_*` variables.
fn oidc_provider(env: &Env<'_>, name: &str) -> Result<ProviderSettings, SettingsError> {
    let var = |suffix: &str| oidc_variable(name, suffix);
    let required = |suffix: &str| -> Result<String, SettingsError> {
        let v = var(suffix);
        env.get(&v)?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                err(
                    &v,
                    format!("is required for the provider `{name}` of OIDC_PROVIDERS"),
                )
            })
    };
    let issuer_url = base_url(&var("ISSUER_URL"), &required("ISSUER_URL")?)?;
    let client_id = required("CLIENT_ID")?;
    let client_secret = SecretString::from(required("CLIENT_SECRET")?);
    let scopes: Vec<String> = env
        .text(&var("SCOPES"))?
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err(err(
            &var("SCOPES"),
            "is empty; unset it for `openid email profile`",
        ));
    }
    let label = match env.get(&var("LABEL"))?.map(|l| l.trim().to_owned()) {
        None => name.to_owned(),
        Some(l) if l.is_empty() || l.chars().count() > 64 => {
            return Err(err(&var("LABEL"), "must be 1 to 64 characters"))
        }
        Some(l) => l,
    };
    Ok(ProviderSettings {
        name: name.to_owned(),
        key: users_core::upstream::key_of(name),
        label,
        kind: ProviderKind::OpenId { scopes },
        issuer_url,
        client_id,
        client_secret,
        associate_by_email: env.flag(&var("ASSOCIATE_BY_EMAIL"))?,
        timeout: Duration::from_secs(env.number(&var("TIMEOUT_SECONDS"))?),
    })
}

/// "Sign in with GitHub", when `GITHUB_CLIENT_ID` is set.
fn github(env: &Env<'_>) -> Result<Option<ProviderSettings>, SettingsError> {
    let Some(client_id) = client_id(env, "GITHUB_CLIENT_ID")? else {
        return Ok(None);
    };
    let client_secret = client_secret(env, "GITHUB_CLIENT_SECRET", "GITHUB_CLIENT_ID")?;
    let web_url = base_url("GITHUB_URL", &env.text("GITHUB_URL")?)?;
    let api_url = base_url("GITHUB_API_URL", &env.text("GITHUB_API_URL")?)?;
    Ok(Some(ProviderSettings {
        name: "github".to_owned(),
        key: "github".to_owned(),
        label: "GitHub".to_owned(),
        kind: ProviderKind::Github { api_url },
        issuer_url: web_url,
        client_id,
        client_secret,
        associate_by_email: env.flag("GITHUB_ASSOCIATE_BY_EMAIL")?,
        timeout: Duration::from_secs(env.number("GITHUB_TIMEOUT_SECONDS")?),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::settings::tests::settings;
    use crate::settings::{Settings, SettingsError};

    fn with_corp(extra: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut vars = vec![
            ("OIDC_PROVIDERS", "corp"),
            (
                "OIDC_CORP_ISSUER_URL",
                "https://login.example.com/realms/corp/",
            ),
            ("OIDC_CORP_CLIENT_ID", "users"),
            ("OIDC_CORP_CLIENT_SECRET", "corp-secret-31"),
        ];
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push((k, v));
        }
        vars.retain(|(_, v)| *v != "<unset>");
        settings(&vars)
    }

    #[test]
    fn openid_providers_are_read_with_their_defaults() {
        let s = with_corp(&[]).unwrap();
        let corp = &s.providers.oidc_providers[0];
        assert_eq!(corp.name, "corp");
        assert_eq!(corp.key, "oidc:corp");
        assert_eq!(corp.label, "corp");
        assert_eq!(corp.issuer_url, "https://login.example.com/realms/corp");
        assert_eq!(
            corp.kind,
            ProviderKind::OpenId {
                scopes: vec!["openid".into(), "email".into(), "profile".into()]
            }
        );
        assert!(!corp.associate_by_email);
        assert!(!format!("{s:?}").contains("corp-secret-31"));
        let s = with_corp(&[
            ("OIDC_CORP_LABEL", "Corporate login"),
            ("OIDC_CORP_SCOPES", "openid email groups"),
            ("OIDC_CORP_ASSOCIATE_BY_EMAIL", "true"),
        ])
        .unwrap();
        let corp = &s.providers.oidc_providers[0];
        assert_eq!(corp.label, "Corporate login");
        assert!(corp.associate_by_email);
        assert_eq!(
            corp.kind,
            ProviderKind::OpenId {
                scopes: vec!["openid".into(), "email".into(), "groups".into()]
            }
        );
        let names: Vec<_> = settings(&[
            ("OIDC_PROVIDERS", " b-2 , a1 "),
            ("OIDC_B_2_ISSUER_URL", "https://b.example.com"),
            ("OIDC_B_2_CLIENT_ID", "b"),
            ("OIDC_B_2_CLIENT_SECRET", "b"),
            ("OIDC_A1_ISSUER_URL", "https://a.example.com"),
            ("OIDC_A1_CLIENT_ID", "a"),
            ("OIDC_A1_CLIENT_SECRET", "a"),
            ("GOOGLE_CLIENT_ID", "g"),
            ("GOOGLE_CLIENT_SECRET", "g"),
            ("GITHUB_CLIENT_ID", "h"),
            ("GITHUB_CLIENT_SECRET", "h"),
        ])
        .unwrap()
        .providers
        .all()
        .map(|p| p.name.clone())
        .collect();
        assert_eq!(names, ["google", "b-2", "a1", "github"]);
    }

    #[test]
    fn provider_errors_name_the_variable() {
        for (extra, var) in [
            (
                vec![("OIDC_CORP_CLIENT_ID", "<unset>")],
                "OIDC_CORP_CLIENT_ID",
            ),
            (
                vec![("OIDC_CORP_CLIENT_SECRET", "")],
                "OIDC_CORP_CLIENT_SECRET",
            ),
            (
                vec![("OIDC_CORP_ISSUER_URL", "<unset>")],
                "OIDC_CORP_ISSUER_URL",
            ),
            (
                vec![("OIDC_CORP_ISSUER_URL", "login.example.com")],
                "OIDC_CORP_ISSUER_URL",
            ),
            (
                vec![("OIDC_CORP_ASSOCIATE_BY_EMAIL", "maybe")],
                "OIDC_CORP_ASSOCIATE_BY_EMAIL",
            ),
            (vec![("OIDC_CORP_SCOPES", " ")], "OIDC_CORP_SCOPES"),
            (vec![("OIDC_CORP_LABEL", "")], "OIDC_CORP_LABEL"),
            (
                vec![("OIDC_CORP_TIMEOUT_SECONDS", "0")],
                "OIDC_CORP_TIMEOUT_SECONDS",
            ),
            (vec![("OIDC_PROVIDERS", "corp,corp")], "OIDC_PROVIDERS"),
            (vec![("GITHUB_CLIENT_ID", "h")], "GITHUB_CLIENT_SECRET"),
            (
                vec![
                    ("GITHUB_CLIENT_ID", "h"),
                    ("GITHUB_CLIENT_SECRET", "s"),
                    ("GITHUB_API_URL", "api.github.com"),
                ],
                "GITHUB_API_URL",
            ),
            (
                vec![
                    ("GITHUB_CLIENT_ID", "h"),
                    ("GITHUB_CLIENT_SECRET", "s"),
                    ("GITHUB_URL", "ftp://github.com"),
                ],
                "GITHUB_URL",
            ),
        ] {
            let e = with_corp(&extra).unwrap_err();
            assert_eq!(e.var, var, "{extra:?}: {e}");
            assert!(e.to_string().starts_with(var), "{e}");
        }
        for name in [
            "Corp",
            "corp_1",
            "",
            "jwt",
            "cookie",
            "google",
            "github",
            "associate",
            "mfa",
            "passkeys",
            "sessions",
            &"x".repeat(33),
            "a b",
        ] {
            if name.is_empty() {
                continue; // an empty entry is skipped, not an error
            }
            let e = with_corp(&[("OIDC_PROVIDERS", name)]).unwrap_err();
            assert_eq!(e.var, "OIDC_PROVIDERS", "{name}: {e}");
        }
        assert!(with_corp(&[("OIDC_PROVIDERS", "corp,")]).is_ok());
        assert!(with_corp(&[("OIDC_PROVIDERS", "")])
            .unwrap()
            .providers
            .oidc_providers
            .is_empty());
        let e = with_corp(&[("OIDC_CORP_CLIENT_ID", "<unset>")]).unwrap_err();
        assert!(!e.to_string().contains("corp-secret-31"), "{e}");
    }

    #[test]
    fn github_defaults_and_enterprise_urls() {
        let s = settings(&[
            ("GITHUB_CLIENT_ID", "Iv1.x"),
            ("GITHUB_CLIENT_SECRET", "gh-secret-9"),
        ])
        .unwrap();
        let g = s.providers.github.as_ref().unwrap();
        assert_eq!((g.name.as_str(), g.key.as_str()), ("github", "github"));
        assert_eq!(g.issuer_url, "https://github.com");
        assert_eq!(
            g.kind,
            ProviderKind::Github {
                api_url: "https://api.github.com".into()
            }
        );
        assert!(!format!("{s:?}").contains("gh-secret-9"));
        let s = settings(&[
            ("GITHUB_CLIENT_ID", "Iv1.x"),
            ("GITHUB_CLIENT_SECRET", "s"),
            ("GITHUB_URL", "https://ghe.example.com/"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3"),
            ("GITHUB_ASSOCIATE_BY_EMAIL", "true"),
        ])
        .unwrap();
        let g = s.providers.github.unwrap();
        assert_eq!(g.issuer_url, "https://ghe.example.com");
        assert!(g.associate_by_email);
        assert_eq!(issuer_variable("github"), "GITHUB_URL");
        assert_eq!(issuer_variable("google"), "GOOGLE_ISSUER_URL");
        assert_eq!(issuer_variable("my-idp"), "OIDC_MY_IDP_ISSUER_URL");
    }
}
