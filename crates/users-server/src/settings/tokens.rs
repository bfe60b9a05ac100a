//! What signs tokens and how long they live: `JWT_*`, `JWKS_PUBLISH_AHEAD_SECONDS`, and
//! the lifetimes of the mailed reset and verification tokens.

use secrecy::SecretString;
use users_core::signing::{SigningAlgorithm, SigningKey};

use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::text(
        "JWT_SECRET",
        WhenUnset::Described("generated once and stored in the database"),
        "not empty; 32 bytes or more (shorter ones are warned about)",
        "HS256 secret of every token",
    ),
    Variable::number(
        "JWT_LIFETIME_SECONDS",
        3600,
        60..=30 * 86_400,
        "access-token lifetime",
    ),
    Variable::one_of(
        "JWT_ALGORITHM",
        "HS256",
        &["HS256", "EdDSA", "ES256", "RS256"],
        "what signs access tokens",
    ),
    Variable::text(
        "JWT_PRIVATE_KEY",
        WhenUnset::Described("generated once, kept in the database"),
        "an unencrypted PKCS#8 PEM of JWT_ALGORITHM's kind",
        "the private key of an asymmetric JWT_ALGORITHM",
    ),
    Variable::number(
        "JWKS_PUBLISH_AHEAD_SECONDS",
        600,
        0..=7 * 86_400,
        "how long a new key is published before it signs",
    ),
    Variable::number(
        "RESET_PASSWORD_TOKEN_LIFETIME_SECONDS",
        3600,
        60..=7 * 86_400,
        "lifetime of the mailed password-reset token",
    ),
    Variable::number(
        "VERIFY_TOKEN_LIFETIME_SECONDS",
        3600,
        60..=30 * 86_400,
        "lifetime of the mailed verification token",
    ),
];

#[derive(Debug, Clone)]
pub struct Tokens {
    /// `None`: generated once and kept in the database.
    pub jwt_secret: Option<SecretString>,
    pub jwt_lifetime_seconds: i64,
    pub jwt_algorithm: SigningAlgorithm,
    /// `JWT_PRIVATE_KEY`, already read and checked (its `Debug` shows the kid only).
    pub jwt_private_key: Option<SigningKey>,
    pub jwks_publish_ahead_seconds: i64,
    pub reset_token_lifetime_seconds: i64,
    pub verify_token_lifetime_seconds: i64,
}

impl Tokens {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let jwt_secret = jwt_secret(env)?;
        let jwt_lifetime_seconds = env.number("JWT_LIFETIME_SECONDS")?;
        let algorithm = env.choice("JWT_ALGORITHM")?;
        // the row's words are the names `parse` knows; a word it lacks is this program's
        // mistake, told like a bad value
        let jwt_algorithm = SigningAlgorithm::parse(algorithm).ok_or_else(|| {
            err(
                "JWT_ALGORITHM",
                format!("`{algorithm}` is not a signing algorithm this build knows"),
            )
        })?;
        let jwt_private_key = jwt_private_key(env, jwt_algorithm)?;
        let jwks_publish_ahead_seconds = env.number("JWKS_PUBLISH_AHEAD_SECONDS")?;
        let reset_token_lifetime_seconds = env.number("RESET_PASSWORD_TOKEN_LIFETIME_SECONDS")?;
        let verify_token_lifetime_seconds = env.number("VERIFY_TOKEN_LIFETIME_SECONDS")?;
        Ok(Tokens {
            jwt_secret,
            jwt_lifetime_seconds,
            jwt_algorithm,
            jwt_private_key,
            jwks_publish_ahead_seconds,
            reset_token_lifetime_seconds,
            verify_token_lifetime_seconds,
        })
    }
}

fn jwt_secret(env: &Env<'_>) -> Result<Option<SecretString>, SettingsError> {
    match env.get("JWT_SECRET")? {
        Some(s) if s.is_empty() => Err(err(
            "JWT_SECRET",
            "is empty; unset it to have one generated, or set a long random value",
        )),
        Some(s) => {
            if s.len() < 32 {
                tracing::warn!("JWT_SECRET is shorter than 32 bytes; use a long random value");
            }
            Ok(Some(SecretString::from(s)))
        }
        None => Ok(None),
    }
}

fn jwt_private_key(
    env: &Env<'_>,
    jwt_algorithm: SigningAlgorithm,
) -> Result<Option<SigningKey>, SettingsError> {
    match env.get("JWT_PRIVATE_KEY")?.filter(|k| !k.trim().is_empty()) {
        None => Ok(None),
        Some(_) if jwt_algorithm == SigningAlgorithm::Hs256 => Err(err(
            "JWT_PRIVATE_KEY",
            "is set, but JWT_ALGORITHM is HS256 (which signs with JWT_SECRET): set JWT_ALGORITHM to EdDSA, ES256 or RS256",
        )),
        Some(pem) => users_core::signing::load_private_key(&pem, jwt_algorithm)
            .map(Some)
            .map_err(|e| err("JWT_PRIVATE_KEY", e.to_string())),
    }
}
