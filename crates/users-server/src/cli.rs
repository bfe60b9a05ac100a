//! The commands of the `users-server` binary besides serving.
//! `users-server create-user --email E --password P [--superuser] [--verified]` works
//! while the server runs (same database) and prints the user's JSON on stdout;
//! `import-fastapi-users` is in [`import`]; `healthcheck` is the container image's
//! HEALTHCHECK (the image has no curl).

pub mod import;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use users_core::flows::register::{self, NewAccount, RegisterError};
use users_core::Core;
use users_domain::{Clock, EmailAddress};

use crate::settings::Settings;
use crate::state::SystemClock;

pub const USAGE: &str = "usage:
  users-server                      serve the API (configured by the environment)
  users-server create-user --email E --password P [--superuser] [--verified]
                                    create a user; prints it as JSON
  users-server rotate-signing-key   make new signing keys (the access tokens' with
                                    JWT_ALGORITHM EdDSA, ES256 or RS256, and the OAuth
                                    provider's): published at once, signing from
                                    JWKS_PUBLISH_AHEAD_SECONDS later
  users-server import-fastapi-users --from URL [--dry-run] [--batch-size N]
                                    import the users and OAuth accounts of a
                                    fastapi-users database; URL is the app's SQLAlchemy
                                    URL (sqlite+aiosqlite:///./app.db,
                                    postgresql+asyncpg://user:pass@host/db)
  users-server openapi              print the OpenAPI document (JSON)
  users-server healthcheck          GET /healthz on BIND_ADDR's port (on loopback when
                                    BIND_ADDR is 0.0.0.0 or [::]); exit 0 on 200, else 1
The password may also be given in the environment as USERS_CREATE_PASSWORD, so it
stays out of the shell history and the process list.";

/// A command's arguments as flags: `--name value`, `--name=value`, or a bare `--switch`.
pub(crate) struct Flags<'a> {
    args: std::slice::Iter<'a, String>,
    /// The value given after `=` to the flag just read.
    inline: Option<&'a str>,
}

impl<'a> Flags<'a> {
    pub(crate) fn new(args: &'a [String]) -> Flags<'a> {
        Flags {
            args: args.iter(),
            inline: None,
        }
    }

    /// The next flag (or stray argument), without its `=value`.
    pub(crate) fn next_flag(&mut self) -> Option<&'a str> {
        let arg = self.args.next()?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg.as_str(), None),
        };
        self.inline = inline;
        Some(flag)
    }

    /// The value of the flag just read: after its `=`, or the next argument.
    pub(crate) fn value(&mut self, flag: &str) -> Result<String, String> {
        self.inline
            .take()
            .or_else(|| self.args.next().map(String::as_str))
            .map(str::to_owned)
            .ok_or_else(|| format!("{flag} needs a value"))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct CreateUserArgs {
    pub email: String,
    pub password: String,
    pub superuser: bool,
    pub verified: bool,
}

pub fn parse_create_user(
    args: &[String],
    env_password: Option<String>,
) -> Result<CreateUserArgs, String> {
    let mut email = None;
    let mut password = None;
    let mut superuser = false;
    let mut verified = false;
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        match flag {
            "--email" => email = Some(flags.value(flag)?),
            "--password" => password = Some(flags.value(flag)?),
            "--superuser" => superuser = true,
            "--verified" => verified = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(CreateUserArgs {
        email: email.ok_or("--email is required")?,
        password: password.or(env_password).ok_or("--password is required")?,
        superuser,
        verified,
    })
}

/// Runs the command; returns the process exit code.
pub async fn create_user_command(settings: Settings, args: CreateUserArgs) -> u8 {
    let email = match EmailAddress::parse(&args.email) {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "error: --email: value is not a valid email address: {}",
                e.reason
            );
            return 2;
        }
    };
    let core = match Core::build(settings.core_setup(), SystemClock.now()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let account = NewAccount {
        email,
        password: SecretString::from(args.password),
        is_superuser: args.superuser,
        is_verified: args.verified,
    };
    match register::register(&core, account, &Default::default(), SystemClock.now()).await {
        Ok(user) => match serde_json::to_string(&crate::bodies::UserRead::from(user)) {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        Err(RegisterError::InvalidPassword(reason)) => {
            eprintln!("error: --password refused: {reason}");
            1
        }
        Err(RegisterError::AlreadyExists) => {
            eprintln!("error: a user with this email already exists");
            1
        }
        Err(RegisterError::Fault(e)) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `users-server rotate-signing-key`; returns the process exit code. Rotates every key
/// kept in the database: the access tokens' (an asymmetric `JWT_ALGORITHM` without
/// `JWT_PRIVATE_KEY`) and the provider's (docs/oauth-provider.md). One JSON line: the
/// access tokens' new `kid` and `signs_from` when there is one, and `provider`, each
/// algorithm's new key.
pub async fn rotate_signing_key_command(settings: Settings) -> u8 {
    let now = SystemClock.now();
    let configured = settings.tokens.jwt_private_key.is_some();
    let hs256 = settings.tokens.jwt_algorithm == users_core::signing::SigningAlgorithm::Hs256;
    let core = match Core::build(settings.core_setup(), now).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut out = serde_json::Map::new();
    let mut provider = Vec::new();
    let first_party = |ring: &std::sync::Arc<users_core::keyring::KeyRing>| {
        core.tokens
            .ring
            .as_ref()
            .is_some_and(|r| std::sync::Arc::ptr_eq(r, ring))
    };
    // the key given in JWT_PRIVATE_KEY is the operator's to change; a ring without keys
    // (no OAuth client registered yet) makes its first when it is needed
    let kept = core
        .keys
        .all()
        .iter()
        .filter(|r| r.has_keys() && !(configured && first_party(r)));
    for ring in kept {
        match ring.rotate(now).await {
            Ok((kid, active_from)) => {
                if first_party(ring) {
                    out.insert("kid".into(), serde_json::json!(kid));
                    out.insert("signs_from".into(), serde_json::json!(active_from));
                }
                provider.push(serde_json::json!({
                    "algorithm": ring.algorithm.name(),
                    "kid": kid,
                    "signs_from": active_from,
                }));
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    }
    if provider.is_empty() {
        if configured {
            eprintln!(
                "error: JWT_PRIVATE_KEY is set: that key signs; rotate by giving it a new key"
            );
        } else if hs256 {
            eprintln!("error: JWT_ALGORITHM is HS256: access tokens are signed with JWT_SECRET; set JWT_ALGORITHM to EdDSA, ES256 or RS256 to use signing keys (the OAuth provider's keys are made with its first client)");
        } else {
            eprintln!("error: no signing keys are kept");
        }
        return 2;
    }
    if configured {
        eprintln!("note: JWT_PRIVATE_KEY is set: that key signs the access tokens; rotate it by giving a new one (the provider's other keys are rotated)");
    }
    out.insert("published_from".into(), serde_json::json!(now));
    out.insert("provider".into(), serde_json::Value::Array(provider));
    println!("{}", serde_json::Value::Object(out));
    0
}

/// How long `users-server healthcheck` waits for the answer, connecting included.
pub const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(4);

/// `users-server healthcheck`: GET `/healthz` on the port of `bind_addr` (the loopback
/// address of its family when it is a wildcard address); 0 when it answers 200, 1
/// otherwise, with the reason on stderr.
pub fn healthcheck_command(bind_addr: &str, timeout: Duration) -> u8 {
    match check_health(bind_addr, timeout) {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("unhealthy: {reason}");
            1
        }
    }
}

fn check_health(bind_addr: &str, timeout: Duration) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = bind_addr
        .to_socket_addrs()
        .map_err(|e| format!("BIND_ADDR `{bind_addr}`: {e}"))?
        .collect();
    let mut reason = format!("BIND_ADDR `{bind_addr}` resolves to no address");
    for mut addr in addrs {
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        match healthz_status(addr, timeout) {
            Ok(200) => return Ok(()),
            Ok(status) => reason = format!("GET http://{addr}/healthz answered {status}"),
            Err(e) => reason = format!("GET http://{addr}/healthz: {e}"),
        }
    }
    Err(reason)
}

/// The status code of `GET /healthz` on `addr`, read from the status line.
fn healthz_status(addr: SocketAddr, timeout: Duration) -> std::io::Result<u16> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
    };
    let mut stream = TcpStream::connect_timeout(&addr, left()?)?;
    stream.set_write_timeout(Some(left()?))?;
    stream.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        stream.set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|s| s.parse().ok())) {
        (Some(version), Some(status)) if version.starts_with("HTTP/") => Ok(status),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP answer: `{}`", line.escape_debug()),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A one-connection HTTP server on loopback that answers `response`; its port.
    fn answer_once(response: &'static str) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 256];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                request.extend_from_slice(&buf[..n]);
            }
            assert!(request.starts_with(b"GET /healthz HTTP/1.1\r\n"));
            stream.write_all(response.as_bytes()).unwrap();
        });
        port
    }

    #[test]
    fn healthcheck_asks_healthz_on_the_bind_port_via_loopback() {
        let port = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(
            healthcheck_command(&format!("0.0.0.0:{port}"), HEALTHCHECK_TIMEOUT),
            0
        );
        let port = answer_once("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            check_health(&format!("127.0.0.1:{port}"), HEALTHCHECK_TIMEOUT),
            Ok(())
        );
    }

    #[test]
    fn healthcheck_fails_on_another_status_no_server_or_no_answer() {
        let port = answer_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let e = check_health(&format!("0.0.0.0:{port}"), HEALTHCHECK_TIMEOUT).unwrap_err();
        assert!(e.contains("answered 503"), "{e}");
        assert_eq!(
            healthcheck_command(&format!("127.0.0.1:{port}"), HEALTHCHECK_TIMEOUT),
            1
        );

        let port = answer_once("SSH-2.0-nope\r\n");
        let e = check_health(&format!("127.0.0.1:{port}"), HEALTHCHECK_TIMEOUT).unwrap_err();
        assert!(e.contains("not an HTTP answer"), "{e}");

        // Nothing listens on a port just freed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert_eq!(
            healthcheck_command(&format!("127.0.0.1:{port}"), HEALTHCHECK_TIMEOUT),
            1
        );

        // A server that accepts and never answers: the timeout ends the wait.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = Instant::now();
        let e = check_health(&format!("127.0.0.1:{port}"), Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{e}");
        drop(silent);
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags_in_both_forms() {
        let a = parse_create_user(
            &args(&["--email", "a@example.com", "--password=pw", "--superuser"]),
            None,
        )
        .unwrap();
        assert_eq!(
            a,
            CreateUserArgs {
                email: "a@example.com".into(),
                password: "pw".into(),
                superuser: true,
                verified: false
            }
        );
        let a = parse_create_user(
            &args(&["--email=a@example.com", "--verified"]),
            Some("env-pw".into()),
        )
        .unwrap();
        assert_eq!(a.password, "env-pw");
        assert!(a.verified);
    }

    #[test]
    fn refuses_missing_and_unknown_arguments() {
        assert!(parse_create_user(&args(&["--password", "x"]), None)
            .unwrap_err()
            .contains("--email"));
        assert!(
            parse_create_user(&args(&["--email", "a@example.com"]), None)
                .unwrap_err()
                .contains("--password")
        );
        assert!(parse_create_user(&args(&["--email"]), None)
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_create_user(&args(&["--admin"]), None)
            .unwrap_err()
            .contains("--admin"));
    }
}
