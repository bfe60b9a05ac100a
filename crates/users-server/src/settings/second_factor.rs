//! The second factor: the issuer authenticator apps show for TOTP (`MFA_ISSUER`) and the
//! relying party of passkeys (`WEBAUTHN_RP_ID`, `WEBAUTHN_ORIGIN`).

use users_core::PasskeySettings;

use super::http::{origin_of, Http};
use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::text(
        "MFA_ISSUER",
        WhenUnset::Described("APP_NAME"),
        "1 to 100 characters without a colon",
        "the issuer authenticator apps show for TOTP",
    ),
    Variable::text(
        "WEBAUTHN_RP_ID",
        // browsers refuse an IP address: then passkeys are off
        WhenUnset::Described("PUBLIC_URL's host"),
        "a host name: PUBLIC_URL's host or a parent domain of it",
        "the passkeys' relying party",
    ),
    Variable::text(
        "WEBAUTHN_ORIGIN",
        WhenUnset::Described("PUBLIC_URL's origin"),
        "an origin (scheme, host, optional port)",
        "where browsers run the passkey ceremonies",
    ),
];

#[derive(Debug, Clone)]
pub struct SecondFactor {
    pub mfa_issuer: String,
    /// `None`: passkeys are off (the public URL's host is an IP address and
    /// `WEBAUTHN_RP_ID` is unset).
    pub passkeys: Option<PasskeySettings>,
}

impl SecondFactor {
    /// The issuer defaults to the product name, the relying party to the public URL.
    pub fn read(env: &Env<'_>, http: &Http) -> Result<Self, SettingsError> {
        let mfa_issuer = env
            .get("MFA_ISSUER")?
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| http.app_name.clone());
        if mfa_issuer.is_empty() || mfa_issuer.len() > 100 || mfa_issuer.contains(':') {
            return Err(err(
                "MFA_ISSUER",
                "must be 1 to 100 characters without a colon",
            ));
        }
        Ok(SecondFactor {
            mfa_issuer,
            passkeys: passkey_settings(env, &http.public_url, &http.app_name)?,
        })
    }
}

/// The relying party of passkeys: `WEBAUTHN_RP_ID` (default: the public URL's host) and
/// `WEBAUTHN_ORIGIN` (default: the public URL's origin). Browsers refuse an IP address as
/// a relying party, so with an IP host and no `WEBAUTHN_RP_ID` passkeys are off.
fn passkey_settings(
    env: &Env<'_>,
    public_url: &str,
    app_name: &str,
) -> Result<Option<PasskeySettings>, SettingsError> {
    let configured_origin = webauthn_origin(env)?;
    let explicit_origin = configured_origin.is_some();
    let origin =
        configured_origin.unwrap_or_else(|| origin_of(public_url).unwrap_or(public_url).to_owned());
    let rp_id = match env.get("WEBAUTHN_RP_ID")? {
        Some(id) => {
            let id = id.trim().to_ascii_lowercase();
            if id.is_empty() || id.parse::<std::net::IpAddr>().is_ok() || id.contains(['/', ':']) {
                return Err(err(
                    "WEBAUTHN_RP_ID",
                    format!("`{id}` is not a host name (browsers refuse IP addresses)"),
                ));
            }
            id
        }
        None => {
            let host = host_of(&origin);
            if host.parse::<std::net::IpAddr>().is_ok() {
                return Ok(None);
            }
            host
        }
    };
    // `WEBAUTHN_RP_ID=localhost` alone on a public URL with an IP host (the default
    // http://127.0.0.1:8000): the browser is on http://localhost:8000
    let origin = if !explicit_origin && host_of(&origin).parse::<std::net::IpAddr>().is_ok() {
        let (scheme, authority) = origin.split_once("://").unwrap_or(("http", &origin));
        let port = authority
            .rsplit_once(':')
            .map(|(_, p)| format!(":{p}"))
            .unwrap_or_default();
        format!("{scheme}://{rp_id}{port}")
    } else {
        origin
    };
    let settings = PasskeySettings {
        rp_id,
        origin,
        rp_name: app_name.to_owned(),
    };
    settings
        .relying_party()
        .map_err(|message| err("WEBAUTHN_RP_ID", message))?;
    Ok(Some(settings))
}

/// `WEBAUTHN_ORIGIN` when set: an origin, without a path.
fn webauthn_origin(env: &Env<'_>) -> Result<Option<String>, SettingsError> {
    let Some(o) = env.get("WEBAUTHN_ORIGIN")? else {
        return Ok(None);
    };
    let o = o.trim().trim_end_matches('/').to_owned();
    if origin_of(&o) != Some(o.as_str()) || !(o.starts_with("http://") || o.starts_with("https://"))
    {
        return Err(err(
            "WEBAUTHN_ORIGIN",
            format!("`{o}` is not an origin like https://id.example.com (scheme, host, optional port; no path)"),
        ));
    }
    Ok(Some(o))
}

/// The host of an origin, without the brackets of an IPv6 address.
fn host_of(origin: &str) -> String {
    let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
        None => authority.split(':').next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::settings::tests::settings;

    #[test]
    fn passkeys_need_a_host_name() {
        let s = settings(&[]).unwrap();
        assert!(
            s.second_factor.passkeys.is_none(),
            "127.0.0.1 cannot be a relying party"
        );
        let s = settings(&[("PUBLIC_URL", "https://id.example.com/users")]).unwrap();
        let p = s.second_factor.passkeys.unwrap();
        assert_eq!(
            (p.rp_id.as_str(), p.origin.as_str()),
            ("id.example.com", "https://id.example.com")
        );
        let s = settings(&[
            ("WEBAUTHN_RP_ID", "localhost"),
            ("WEBAUTHN_ORIGIN", "http://localhost:9000"),
        ])
        .unwrap();
        let p = s.second_factor.passkeys.unwrap();
        assert_eq!(
            (p.rp_id.as_str(), p.origin.as_str()),
            ("localhost", "http://localhost:9000")
        );
        // the RP ID alone, with the default public URL: the same port on that host
        let p = settings(&[("WEBAUTHN_RP_ID", "localhost")])
            .unwrap()
            .second_factor
            .passkeys
            .unwrap();
        assert_eq!(p.origin, "http://localhost:8000");
        let s = settings(&[
            ("PUBLIC_URL", "https://id.example.com"),
            ("WEBAUTHN_RP_ID", "example.com"),
        ])
        .unwrap();
        assert_eq!(
            s.second_factor.passkeys.unwrap().rp_id,
            "example.com",
            "a parent domain"
        );
        for (var, vars) in [
            (
                "WEBAUTHN_RP_ID",
                vec![
                    ("PUBLIC_URL", "https://id.example.com"),
                    ("WEBAUTHN_RP_ID", "other.example"),
                ],
            ),
            ("WEBAUTHN_RP_ID", vec![("WEBAUTHN_RP_ID", "127.0.0.1")]),
            (
                "WEBAUTHN_ORIGIN",
                vec![("WEBAUTHN_ORIGIN", "https://id.example.com/path")],
            ),
            ("MFA_ISSUER", vec![("MFA_ISSUER", "a:b")]),
        ] {
            assert_eq!(settings(&vars).unwrap_err().var, var);
        }
        assert_eq!(
            settings(&[("APP_NAME", "Acme")])
                .unwrap()
                .second_factor
                .mfa_issuer,
            "Acme"
        );
    }
}
