//! How the service is reached and named, and whom it trusts: where it listens, its
//! public URL and product name, its worker threads, the browser origins allowed by CORS
//! and the proxies whose `X-Forwarded-For` is believed.

use std::net::{SocketAddr, ToSocketAddrs};

use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::text(
        "BIND_ADDR",
        WhenUnset::Value("127.0.0.1:8000"),
        "host:port",
        "listen address",
    ),
    Variable::text(
        "PUBLIC_URL",
        WhenUnset::Described("http://<BIND_ADDR>"),
        "an absolute http:// or https:// URL",
        "base URL of the links the service hands out",
    ),
    Variable::text(
        "APP_NAME",
        WhenUnset::Value("users"),
        "1 to 100 characters",
        "product name shown in mails and pages",
    ),
    Variable::optional_number(
        "WORKERS",
        "the number of CPU cores",
        1..=256,
        "HTTP worker threads",
    ),
    Variable::text(
        "CORS_ALLOWED_ORIGINS",
        WhenUnset::Described("none: no CORS headers"),
        "comma-separated origins (scheme, host, optional port)",
        "origins allowed to call the API from a browser, with credentials",
    ),
    Variable::text(
        "TRUSTED_PROXIES",
        WhenUnset::Described("none"),
        "comma-separated IPs or CIDRs",
        "reverse proxies whose X-Forwarded-For is believed",
    ),
];

#[derive(Debug, Clone)]
pub struct Http {
    pub bind_addr: String,
    /// Base of mailed links and OAuth redirect URIs, without a trailing slash.
    pub public_url: String,
    /// Product name in mails and pages.
    pub app_name: String,
    pub workers: Option<usize>,
    /// Origins allowed by CORS (with credentials); empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::client_ip::Cidr>,
}

impl Http {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let bind_addr = bind_addr(env)?;
        let public_url = match env.get("PUBLIC_URL")? {
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
                    return Err(err(
                        "PUBLIC_URL",
                        "must be an absolute http:// or https:// URL",
                    ));
                }
                url
            }
            None => format!("http://{bind_addr}"),
        };
        let workers = env.optional_number("WORKERS")?;
        let app_name = env.text("APP_NAME")?.trim().to_owned();
        if app_name.is_empty() || app_name.len() > 100 {
            return Err(err("APP_NAME", "must be 1 to 100 characters"));
        }
        Ok(Http {
            bind_addr,
            public_url,
            app_name,
            workers,
            cors_allowed_origins: cors_allowed_origins(env)?,
            trusted_proxies: trusted_proxies(env)?,
        })
    }

    /// The origin (`scheme://host[:port]`) of `PUBLIC_URL`.
    pub fn public_origin(&self) -> &str {
        origin_of(&self.public_url).unwrap_or(&self.public_url)
    }

    /// Whether a browser request from `origin` may act with the session cookie: the
    /// service's own origin, or one allowed by CORS.
    pub fn is_trusted_origin(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        origin == self.public_origin() || self.cors_allowed_origins.iter().any(|o| o == origin)
    }
}

/// `BIND_ADDR`, checked to resolve now rather than when the listener opens.
fn bind_addr(env: &Env<'_>) -> Result<String, SettingsError> {
    let bind_addr = env.text("BIND_ADDR")?;
    let resolved: Vec<SocketAddr> = bind_addr
        .to_socket_addrs()
        .map_err(|e| {
            err(
                "BIND_ADDR",
                format!("`{bind_addr}` is not a host:port address ({e})"),
            )
        })?
        .collect();
    if resolved.is_empty() {
        return Err(err(
            "BIND_ADDR",
            format!("`{bind_addr}` resolves to no address"),
        ));
    }
    Ok(bind_addr)
}

fn cors_allowed_origins(env: &Env<'_>) -> Result<Vec<String>, SettingsError> {
    let mut cors_allowed_origins = Vec::new();
    for origin in env
        .get("CORS_ALLOWED_ORIGINS")?
        .unwrap_or_default()
        .split(',')
    {
        let origin = origin.trim().trim_end_matches('/');
        if origin.is_empty() {
            continue;
        }
        let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin["https://".len().min(origin.len())..].contains('/');
        if !valid || origin == "*" {
            return Err(err(
                "CORS_ALLOWED_ORIGINS",
                format!("`{origin}` is not an origin like https://app.example.com (scheme, host, optional port; no path, no *)"),
            ));
        }
        cors_allowed_origins.push(origin.to_owned());
    }
    Ok(cors_allowed_origins)
}

fn trusted_proxies(env: &Env<'_>) -> Result<Vec<crate::client_ip::Cidr>, SettingsError> {
    let mut trusted_proxies = Vec::new();
    for cidr in env
        .get("TRUSTED_PROXIES")?
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        trusted_proxies.push(crate::client_ip::Cidr::parse(cidr).ok_or_else(|| {
            err(
                "TRUSTED_PROXIES",
                format!("`{cidr}` is not an IP address or CIDR block (e.g. 10.0.0.0/8, ::1/128)"),
            )
        })?);
    }
    Ok(trusted_proxies)
}

/// `scheme://authority` of an absolute URL (an `Origin` header, or a `Referer`).
pub fn origin_of(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (end > 0).then(|| &url[..scheme_end + 3 + end])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::settings::tests::settings;

    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            origin_of("https://id.example.com/users/x?y#z"),
            Some("https://id.example.com")
        );
        assert_eq!(
            origin_of("http://localhost:8000"),
            Some("http://localhost:8000")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("https://"), None);
        let s = settings(&[
            ("PUBLIC_URL", "https://id.example.com/base"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com"),
        ])
        .unwrap();
        assert!(s.http.is_trusted_origin("https://id.example.com"));
        assert!(s.http.is_trusted_origin("https://app.example.com"));
        assert!(!s.http.is_trusted_origin("https://evil.example.com"));
        assert!(!s.http.is_trusted_origin("http://id.example.com"));
    }
}
