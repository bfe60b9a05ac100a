//! The password policy: which new passwords the service accepts.
//!
//! A password is refused when it is shorter than the configured minimum, longer than
//! [`MAX_PASSWORD_LENGTH`], contains the account's email address, or is one of the
//! most common passwords (the bundled `data/common-passwords.txt`, see
//! `data/README.md`). Lengths count Unicode scalar values (Rust `char`s); nothing is
//! trimmed or truncated.

use std::collections::HashSet;
use std::sync::OnceLock;

/// The longest password accepted, in characters.
pub const MAX_PASSWORD_LENGTH: usize = 128;

/// The values a deployment may configure as the minimum length.
pub const MIN_PASSWORD_LENGTH_RANGE: std::ops::RangeInclusive<usize> = 8..=64;

/// The bundled list of common passwords: one per line, lower-case, most common first.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// The rules a new password must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// The shortest password accepted, in characters. Deployments keep it within
    /// [`MIN_PASSWORD_LENGTH_RANGE`].
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: 12 }
    }
}

/// Why a password was refused. The `Display` text is the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    #[error("Password should be at least {min} characters long.")]
    TooShort { min: usize },
    #[error("Password should be at most {max} characters long.")]
    TooLong { max: usize },
    #[error("Password should not contain the email address.")]
    ContainsEmail,
    #[error("Password is too common; choose one that is harder to guess.")]
    TooCommon,
}

impl PasswordRejection {
    /// The message shown to the user.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

impl PasswordPolicy {
    /// Checks `password` for the account whose address is `email`.
    ///
    /// The checks run in this order and the first failure is returned: too short,
    /// too long, contains the email, too common. "Contains the email" compares
    /// lower-cased forms and looks for the whole address (trimmed) only, not for its
    /// local part; an empty `email` never matches.
    pub fn check(&self, password: &str, email: &str) -> Result<(), PasswordRejection> {
        let length = password.chars().count();
        if length < self.min_length {
            return Err(PasswordRejection::TooShort {
                min: self.min_length,
            });
        }
        if length > MAX_PASSWORD_LENGTH {
            return Err(PasswordRejection::TooLong {
                max: MAX_PASSWORD_LENGTH,
            });
        }
        let email = email.trim();
        if !email.is_empty() && password.to_lowercase().contains(&email.to_lowercase()) {
            return Err(PasswordRejection::ContainsEmail);
        }
        if is_common(password) {
            return Err(PasswordRejection::TooCommon);
        }
        Ok(())
    }
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// True when the password, compared case-insensitively, is on the bundled list of
/// common passwords.
pub fn is_common(password: &str) -> bool {
    common_passwords().contains(password.to_lowercase().as_str())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const EMAIL: &str = "alice@example.com";
    const GOOD: &str = "correct horse battery staple 42";

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn default_minimum_is_12_and_within_range() {
        assert_eq!(policy().min_length, 12);
        assert!(MIN_PASSWORD_LENGTH_RANGE.contains(&policy().min_length));
        assert_eq!(MAX_PASSWORD_LENGTH, 128);
    }

    #[test]
    fn uncommon_long_password_is_accepted() {
        assert_eq!(policy().check(GOOD, EMAIL), Ok(()));
        assert_eq!(policy().check("Zq7#vLp2!mWx9&Rt", EMAIL), Ok(()));
    }

    #[test]
    fn too_short() {
        assert_eq!(
            policy().check("Zq7#vLp2!mW", EMAIL),
            Err(PasswordRejection::TooShort { min: 12 })
        );
        assert_eq!(
            policy().check("", EMAIL),
            Err(PasswordRejection::TooShort { min: 12 })
        );
        let p = PasswordPolicy { min_length: 20 };
        assert_eq!(
            p.check("Zq7#vLp2!mWx9&Rt", EMAIL),
            Err(PasswordRejection::TooShort { min: 20 })
        );
    }

    #[test]
    fn length_boundaries_at_the_minimum_count_characters() {
        let p = PasswordPolicy { min_length: 8 };
        // Multi-byte characters count once each.
        assert_eq!(
            p.check("ä€𝄞ß水ç7", EMAIL),
            Err(PasswordRejection::TooShort { min: 8 })
        );
        assert_eq!(p.check("ä€𝄞ß水ç7é", EMAIL), Ok(()));
        assert!("ä€𝄞ß水ç7é".len() > 8);
        // min - 1 and min with ASCII, at the default.
        assert_eq!(
            policy().check(&"k".repeat(11), EMAIL),
            Err(PasswordRejection::TooShort { min: 12 })
        );
        assert_eq!(policy().check("kq8Fz!rT2wLx", EMAIL), Ok(()));
    }

    #[test]
    fn length_boundaries_at_the_maximum_count_characters() {
        // 128 characters, 4 octets each: accepted.
        let max: String = "𝄞ü€x".chars().cycle().take(128).collect();
        assert_eq!(max.chars().count(), 128);
        assert!(max.len() > 128);
        assert_eq!(policy().check(&max, EMAIL), Ok(()));
        // 129 characters: refused.
        let over: String = "𝄞ü€x".chars().cycle().take(129).collect();
        assert_eq!(
            policy().check(&over, EMAIL),
            Err(PasswordRejection::TooLong { max: 128 })
        );
    }

    #[test]
    fn no_trimming() {
        // 11 characters plus a space make 12.
        assert_eq!(policy().check(" kq8Fz!rT2wL", EMAIL), Ok(()));
    }

    #[test]
    fn contains_email_case_insensitively() {
        assert_eq!(
            policy().check("my alice@example.com pw", EMAIL),
            Err(PasswordRejection::ContainsEmail)
        );
        assert_eq!(
            policy().check("xxALICE@Example.COMxx", EMAIL),
            Err(PasswordRejection::ContainsEmail)
        );
        assert_eq!(
            policy().check("xxalice@example.comxx", " Alice@Example.com "),
            Err(PasswordRejection::ContainsEmail)
        );
        assert_eq!(
            policy().check("Ünïcode-ÄSE@beispiel.de!", "äse@beispiel.de"),
            Err(PasswordRejection::ContainsEmail)
        );
    }

    #[test]
    fn only_the_whole_email_counts() {
        // The local part alone is not checked.
        assert_eq!(policy().check("alice-in-wonderland-77", EMAIL), Ok(()));
        // An empty email never matches.
        assert_eq!(policy().check(GOOD, ""), Ok(()));
        assert_eq!(policy().check(GOOD, "   "), Ok(()));
    }

    #[test]
    fn too_common() {
        let p = PasswordPolicy { min_length: 8 };
        assert_eq!(
            p.check("password", EMAIL),
            Err(PasswordRejection::TooCommon)
        );
        assert_eq!(
            p.check("PassWord", EMAIL),
            Err(PasswordRejection::TooCommon)
        );
        assert_eq!(
            p.check("12345678", EMAIL),
            Err(PasswordRejection::TooCommon)
        );
        assert_eq!(
            policy().check("1qaz2wsx3edc", EMAIL),
            Err(PasswordRejection::TooCommon)
        );
        assert_eq!(
            policy().check("Q1W2E3R4T5Y6", EMAIL),
            Err(PasswordRejection::TooCommon)
        );
    }

    #[test]
    fn checks_run_in_order() {
        // Too short wins over contains-email and too-common.
        let p = PasswordPolicy { min_length: 30 };
        assert_eq!(
            p.check(EMAIL, EMAIL),
            Err(PasswordRejection::TooShort { min: 30 })
        );
        assert_eq!(
            PasswordPolicy { min_length: 9 }.check("password", "password"),
            Err(PasswordRejection::TooShort { min: 9 })
        );
        // Too long wins over contains-email.
        let long = format!("{EMAIL}{}", "z".repeat(120));
        assert_eq!(
            policy().check(&long, EMAIL),
            Err(PasswordRejection::TooLong { max: 128 })
        );
        // Contains-email wins over too-common.
        let p = PasswordPolicy { min_length: 8 };
        assert_eq!(
            p.check("password", "password"),
            Err(PasswordRejection::ContainsEmail)
        );
        assert_eq!(
            p.check("Password", "PASSWORD"),
            Err(PasswordRejection::ContainsEmail)
        );
    }

    #[test]
    fn reasons() {
        assert_eq!(
            PasswordRejection::TooShort { min: 12 }.reason(),
            "Password should be at least 12 characters long."
        );
        assert_eq!(
            PasswordRejection::TooLong { max: 128 }.reason(),
            "Password should be at most 128 characters long."
        );
        assert_eq!(
            PasswordRejection::ContainsEmail.reason(),
            "Password should not contain the email address."
        );
        assert_eq!(
            PasswordRejection::TooCommon.reason(),
            "Password is too common; choose one that is harder to guess."
        );
    }

    #[test]
    fn is_common_is_case_insensitive() {
        assert!(is_common("password"));
        assert!(is_common("PassWord"));
        assert!(is_common("PASSWORD"));
        assert!(is_common("123456"));
        assert!(is_common("qwerty"));
        assert!(!is_common("correct horse battery staple 42"));
        assert!(!is_common(""));
        assert!(!is_common(" password"));
    }

    #[test]
    fn list_is_large_lower_case_and_unique() {
        let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(lines.len() >= 10_000, "only {} entries", lines.len());
        assert!(COMMON_PASSWORDS.ends_with('\n'));
        assert!(lines
            .iter()
            .all(|l| !l.is_empty() && *l == l.to_lowercase()));
        assert!(lines.iter().all(|l| *l == l.trim()));
        assert_eq!(
            common_passwords().len(),
            lines.len(),
            "duplicates in the list"
        );
        // Rank order: the most common first.
        assert_eq!(&lines[..3], &["123456", "password", "12345678"]);
        // Every entry is found, whatever its case.
        assert!(lines
            .iter()
            .all(|l| is_common(l) && is_common(&l.to_uppercase())));
    }
}
