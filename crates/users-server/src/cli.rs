//! The commands of the `users-server` binary besides serving.
//! `users-server create-user --email E --password P [--superuser] [--verified]` works
//! while the server runs (same database) and prints the user's JSON on stdout;
//! `import-fastapi-users` is in [`import`].

pub mod import;

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
  users-server rotate-signing-key   make a new access-token signing key (JWT_ALGORITHM
                                    EdDSA, ES256 or RS256): published at once, signing
                                    from JWKS_PUBLISH_AHEAD_SECONDS later
  users-server import-fastapi-users --from URL [--dry-run] [--batch-size N]
                                    import the users and OAuth accounts of a
                                    fastapi-users database; URL is the app's SQLAlchemy
                                    URL (sqlite+aiosqlite:///./app.db,
                                    postgresql+asyncpg://user:pass@host/db)
  users-server openapi              print the OpenAPI document (JSON)
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

/// `users-server rotate-signing-key`; returns the process exit code.
pub async fn rotate_signing_key_command(settings: Settings) -> u8 {
    if settings.tokens.jwt_algorithm == users_core::signing::SigningAlgorithm::Hs256 {
        eprintln!("error: JWT_ALGORITHM is HS256: access tokens are signed with JWT_SECRET; set JWT_ALGORITHM to EdDSA, ES256 or RS256 to use signing keys");
        return 2;
    }
    if settings.tokens.jwt_private_key.is_some() {
        eprintln!("error: JWT_PRIVATE_KEY is set: that key signs; rotate by giving it a new key");
        return 2;
    }
    let now = SystemClock.now();
    let core = match Core::build(settings.core_setup(), now).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let Some(ring) = &core.tokens.ring else {
        eprintln!("error: no signing keys are configured");
        return 1;
    };
    match ring.rotate(now).await {
        Ok((kid, active_from)) => {
            println!(
                "{}",
                serde_json::json!({"kid": kid, "signs_from": active_from, "published_from": now})
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
