//! How passwords are checked and hashed: `PASSWORD_MIN_LENGTH`, `ARGON2_*`.

use users_core::Argon2Params;
use users_domain::password::MIN_PASSWORD_LENGTH_RANGE;
use users_domain::PasswordPolicy;

use super::variables::Variable;
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::number(
        "PASSWORD_MIN_LENGTH",
        12,
        *MIN_PASSWORD_LENGTH_RANGE.start() as i64..=*MIN_PASSWORD_LENGTH_RANGE.end() as i64,
        "minimum password length (the maximum is 128 characters)",
    ),
    // the defaults are Argon2Params::default(), OWASP's recommendation (a test checks)
    Variable::number(
        "ARGON2_MEMORY_KIB",
        19_456,
        8..=4 * 1024 * 1024,
        "argon2id memory of new hashes; at least 8 × ARGON2_PARALLELISM",
    ),
    Variable::number(
        "ARGON2_ITERATIONS",
        2,
        1..=100,
        "argon2id iterations of new hashes",
    ),
    Variable::number(
        "ARGON2_PARALLELISM",
        1,
        1..=64,
        "argon2id parallelism of new hashes",
    ),
];

#[derive(Debug, Clone)]
pub struct Passwords {
    pub password_policy: PasswordPolicy,
    pub argon2: Argon2Params,
}

impl Passwords {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let min_length = env.number("PASSWORD_MIN_LENGTH")?;
        let argon2 = Argon2Params {
            memory_kib: env.number("ARGON2_MEMORY_KIB")?,
            iterations: env.number("ARGON2_ITERATIONS")?,
            parallelism: env.number("ARGON2_PARALLELISM")?,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::settings::tests::settings;

    #[test]
    fn argon2_defaults_are_the_hashers() {
        assert_eq!(
            settings(&[]).unwrap().passwords.argon2,
            Argon2Params::default()
        );
    }
}
