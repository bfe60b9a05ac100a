//! How passwords are checked and hashed: `PASSWORD_MIN_LENGTH`, `ARGON2_*`.

use users_core::Argon2Params;
use users_domain::password::MIN_PASSWORD_LENGTH_RANGE;
use users_domain::PasswordPolicy;

use super::{err, Env, SettingsError};

#[derive(Debug, Clone)]
pub struct Passwords {
    pub password_policy: PasswordPolicy,
    pub argon2: Argon2Params,
}

impl Passwords {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let min_length = env.parse_in("PASSWORD_MIN_LENGTH", 12usize, MIN_PASSWORD_LENGTH_RANGE)?;
        let defaults = Argon2Params::default();
        let argon2 = Argon2Params {
            memory_kib: env.parse_in(
                "ARGON2_MEMORY_KIB",
                defaults.memory_kib,
                8..=4 * 1024 * 1024,
            )?,
            iterations: env.parse_in("ARGON2_ITERATIONS", defaults.iterations, 1..=100)?,
            parallelism: env.parse_in("ARGON2_PARALLELISM", defaults.parallelism, 1..=64)?,
        };
        if argon2.memory_kib < 8 * argon2.parallelism {
            return Err(err(
                "ARGON2_MEMORY_KIB",
                "must be at least 8 × ARGON2_PARALLELISM",
            ));
        }
        Ok(Passwords {
            password_policy: PasswordPolicy { min_length },
            argon2,
        })
    }

    /// Whether the argon2 parameters are below OWASP's minimum (worth a warning).
    pub fn argon2_below_owasp(&self) -> bool {
        self.argon2.below_owasp()
    }
}
