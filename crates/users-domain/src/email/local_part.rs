//! The local part, before the `@`: an unquoted dot-atom of `atext` and non-ASCII
//! characters separated by single periods (quoted local parts are refused), put into
//! Unicode NFC and checked again, with the RFC 2142 role mailboxes (`postmaster` and
//! the like) lower-cased and every other local part keeping its case.

use unicode_normalization::UnicodeNormalization;

use super::chars::{check_unsafe_chars, list_displayed, ATEXT_SPECIALS};
use super::{EmailError, Result};

/// RFC 2142 role mailboxes, case-insensitive by definition: email-validator lower-cases them.
const CASE_INSENSITIVE_MAILBOX_NAMES: &[&str] = &[
    "info",
    "marketing",
    "sales",
    "support",
    "abuse",
    "noc",
    "security",
    "postmaster",
    "hostmaster",
    "usenet",
    "news",
    "webmaster",
    "www",
    "uucp",
    "ftp",
];

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c) || !c.is_ascii()
}

/// Validates the part before the `@` and returns its normalised form.
pub(super) fn validate_local_part(raw: &str) -> Result<String> {
    if raw.is_empty() {
        return Err(EmailError::new(
            "There must be something before the @-sign.",
        ));
    }
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        return Err(EmailError::new(
            "Quoting the part before the @-sign is not allowed here.",
        ));
    }
    check_dot_atom_local(raw)?;

    // RFC 6532 3.1: NFC. Normalisation can produce characters that are not allowed
    // (e.g. U+037E GREEK QUESTION MARK becomes ';'), so check again.
    let nfc: String = raw.nfc().collect();
    if nfc != raw {
        check_dot_atom_local(&nfc)
            .map_err(|e| EmailError::new(format!("After Unicode normalization: {}", e.reason)))?;
    }

    if nfc.is_ascii() && CASE_INSENSITIVE_MAILBOX_NAMES.contains(&nfc.to_ascii_lowercase().as_str())
    {
        Ok(nfc.to_ascii_lowercase())
    } else {
        Ok(nfc)
    }
}

/// The unquoted (dot-atom) local part rules, internationalised (RFC 5322 3.2.3, RFC 6531 3.3).
fn check_dot_atom_local(local: &str) -> Result<()> {
    let bad: Vec<char> = local
        .chars()
        .filter(|&c| !(is_atext(c) || c == '.'))
        .collect();
    if !bad.is_empty() {
        return Err(EmailError::new(format!(
            "The email address contains invalid characters before the @-sign: {}.",
            list_displayed(bad)
        )));
    }
    if local.ends_with('.') {
        return Err(EmailError::new(
            "An email address cannot have a period immediately before the @-sign.",
        ));
    }
    if local.starts_with('.') {
        return Err(EmailError::new(
            "An email address cannot start with a period.",
        ));
    }
    if local.contains("..") {
        return Err(EmailError::new(
            "An email address cannot have two periods in a row.",
        ));
    }
    if !local.is_ascii() {
        check_unsafe_chars(local)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::email::tests::{ok, reason};

    #[test]
    fn role_mailboxes_are_lower_cased() {
        assert_eq!(ok("Postmaster@Example.com"), "postmaster@example.com");
        assert_eq!(ok("INFO@example.com"), "info@example.com");
        assert_eq!(ok("Info2@example.com"), "Info2@example.com");
    }

    #[test]
    fn internationalised_local_part() {
        assert_eq!(ok("用户@example.com"), "用户@example.com");
        assert_eq!(ok("Jörg.Ñandú@example.com"), "Jörg.Ñandú@example.com");
        assert_eq!(ok("δοκιμή@παράδειγμα.δοκιμή"), "δοκιμή@παράδειγμα.δοκιμή");
    }

    #[test]
    fn local_part_is_nfc_normalised() {
        // 'e' + COMBINING ACUTE ACCENT becomes 'é'.
        assert_eq!(ok("jose\u{301}@example.com"), "jos\u{E9}@example.com");
        assert_eq!(
            reason("a\u{37E}b@example.com"),
            "After Unicode normalization: The email address contains invalid characters before the @-sign: ';'."
        );
    }

    #[test]
    fn quoted_local_part_refused() {
        assert_eq!(
            reason("\"john doe\"@example.com"),
            "Quoting the part before the @-sign is not allowed here."
        );
        assert_eq!(
            reason("\"john\"@example.com"),
            "Quoting the part before the @-sign is not allowed here."
        );
    }

    #[test]
    fn periods_in_local_part() {
        assert_eq!(
            reason(".user@example.com"),
            "An email address cannot start with a period."
        );
        assert_eq!(
            reason("user.@example.com"),
            "An email address cannot have a period immediately before the @-sign."
        );
        assert_eq!(
            reason("us..er@example.com"),
            "An email address cannot have two periods in a row."
        );
        assert_eq!(
            reason(".@example.com"),
            "An email address cannot have a period immediately before the @-sign."
        );
    }
}
