//! Email addresses: validation and normalisation.
//!
//! The rules follow what the Python service accepts through pydantic's `EmailStr`,
//! i.e. the `email-validator` 2.x package called with `check_deliverability=False`
//! and its defaults otherwise (SMTPUTF8 allowed, quoted local parts, domain literals
//! and display names refused, special-use domains refused). The error reasons are
//! that package's human-readable messages, so API clients see the same text.
//!
//! What [`EmailAddress::parse`] does, in order:
//!
//! 1. Inputs longer than 2048 characters are refused (pydantic's own limit).
//! 2. A "pretty" address, `Name <addr>` or `"Name" <addr>` or `<addr>`, is reduced to
//!    the address between the angle brackets, as pydantic does before validating.
//! 3. Leading and trailing whitespace is stripped and the address is split at the
//!    last `@`.
//! 4. The local part must be an unquoted dot-atom: ASCII letters, digits and
//!    ``!#$%&'*+-/=?^_`{|}~``, plus any non-ASCII character that is not whitespace,
//!    a control, format or private-use character (and not a combining mark in first
//!    position), separated by single periods. It keeps its case (except for the RFC
//!    2142 role mailboxes such as `postmaster`, which are lower-cased as
//!    email-validator does) and is put into Unicode NFC.
//! 5. The domain goes through IDNA (UTS #46) mapping: it is lower-cased, put into
//!    NFC, and its Punycode labels are decoded. The normalised address carries the
//!    Unicode form of the domain (`me@ÖBB.AT` becomes `me@öbb.at`); the ASCII
//!    (Punycode) form must be a valid host name of at most 253 octets with labels of
//!    at most 63 octets, must contain a period, must end with a letter (every
//!    top-level domain does) and must not be a special-use name (`arpa`, `invalid`,
//!    `local`, `localhost`, `onion`, `test`, or a subdomain of one). Bracketed IP
//!    addresses are refused.
//! 6. The whole address may be at most 254 octets in UTF-8, checked on the input as
//!    given, on the normalised form and on the form with the ASCII domain.
//! 7. The local part is not limited to RFC 5321's 64 octets: email-validator checks
//!    that only in its strict mode, which pydantic does not use, and compatibility
//!    with pydantic wins here (the 254-octet total above still bounds it).
//!
//! Other differences from email-validator; they nearly always change only which
//! reason an invalid address is given, not whether it is accepted:
//!
//! - The address is split at the last `@`, where email-validator splits at the first
//!   one outside quotes: `a@b@example.com` is refused either way, for a character
//!   before the `@`-sign here and after it there.
//! - The `idna` crate implements UTS #46, email-validator uses IDNA 2008 tables.
//!   IDNA 2008's stricter repertoire (no symbols or punctuation such as emoji, and
//!   its contextual rules) is approximated here by general category plus the
//!   exceptions of RFC 5892; reasons for bidirectional-text and Punycode errors are
//!   less detailed.
//! - Unassigned code points are not detected in local parts; characters that are
//!   not letters, digits, punctuation or symbols are named `U+XXXX` in messages,
//!   except for a few well-known ones.
//! - A quoted local part is refused without first checking the characters inside
//!   the quotes.
//! - Carriage returns and line feeds are stripped like other whitespace at either
//!   end of the input; pydantic releases from 2.14 on refuse them outright.
//!
//! Where the steps live: this module holds the public types, steps 1 to 3 (input
//! length, display name, whitespace, the split at the `@`) and the length checks of
//! step 6; the submodule `local_part` holds step 4, `domain` step 5, and `chars` the
//! character classes both rely on (which characters are allowed, how they are named
//! in messages, the IDNA 2008 exceptions of RFC 5892).

mod chars;
mod domain;
mod local_part;

use std::fmt;

use chars::ATEXT_SPECIALS;
use domain::validate_domain;
use local_part::validate_local_part;

/// Maximum length of a whole address, in UTF-8 octets (RFC 5321 4.5.3.1.3, RFC 3696 errata).
const EMAIL_MAX_LENGTH: usize = 254;
/// pydantic refuses any input longer than this (in characters) before validating it.
const INPUT_MAX_CHARS: usize = 2048;

/// A syntactically valid email address, in its normalised form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

/// Why an email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct EmailError {
    /// A human-readable reason, worded as email-validator words it.
    pub reason: String,
}

impl EmailError {
    fn new(reason: impl Into<String>) -> Self {
        EmailError {
            reason: reason.into(),
        }
    }
}

type Result<T> = std::result::Result<T, EmailError>;

impl EmailAddress {
    /// Validates `input` and returns its normalised form; see the module documentation.
    pub fn parse(input: &str) -> std::result::Result<EmailAddress, EmailError> {
        if input.chars().count() > INPUT_MAX_CHARS {
            return Err(EmailError::new(format!(
                "Length must not exceed {INPUT_MAX_CHARS} characters"
            )));
        }
        let address = strip_display_name(input).unwrap_or(input);
        let address = address.trim_matches(is_space);

        let Some((local_raw, domain_raw)) = address.rsplit_once('@') else {
            return Err(missing_at_sign(address));
        };

        let local = validate_local_part(local_raw)?;

        if domain_raw.is_empty() {
            return Err(EmailError::new("There must be something after the @-sign."));
        }
        if domain_raw.starts_with('[') && domain_raw.ends_with(']') {
            return Err(EmailError::new(
                "A bracketed IP address after the @-sign is not allowed here.",
            ));
        }
        let domain = validate_domain(domain_raw)?;

        let normalised = format!("{local}@{}", domain.unicode);
        check_length(&format!("{local_raw}@{domain_raw}"), None)?;
        check_length(&normalised, Some("after normalization"))?;
        check_length(
            &format!("{local}@{}", domain.ascii),
            Some("when the part after the @-sign is converted to IDNA ASCII"),
        )?;
        Ok(EmailAddress(normalised))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised address, by value.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The case-insensitive lookup key: the normalised address, lower-cased (Unicode).
    pub fn key(&self) -> String {
        email_key(&self.0)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The lookup key for any stored or raw address string: trimmed and lower-cased
/// (Unicode lower case). Used for searching and for detecting duplicates; for an
/// [`EmailAddress`] it equals [`EmailAddress::key`].
pub fn email_key(normalised: &str) -> String {
    normalised.trim().to_lowercase()
}

// ---------------------------------------------------------------------------
// Input framing
// ---------------------------------------------------------------------------

/// Whitespace as Python's `str.isspace` / regex `\s` sees it (close enough: Rust's
/// `White_Space` plus the ASCII information separators).
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A character of an unquoted display name in pydantic's pretty-address pattern.
fn is_display_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.' || ATEXT_SPECIALS.contains(c)
}

/// pydantic accepts `Name <addr>`, `"Name" <addr>` and `<addr>` (optionally surrounded
/// by whitespace) and validates only `addr`. Returns `addr` when `input` has that shape.
fn strip_display_name(input: &str) -> Option<&str> {
    let s = input.trim_start_matches(is_space);
    // Everything up to the final '>' that is followed only by whitespace.
    let body = s.trim_end_matches(is_space).strip_suffix('>')?;
    // The address between '<' (at byte `open`) and the final '>': at least one
    // character, no line break (the pattern's `.` does not match one).
    let address_after = |open: usize| -> Option<&str> {
        let address = body.get(open + 1..)?;
        (!address.is_empty() && !address.contains('\n')).then_some(address)
    };
    let first = s.chars().next()?;
    if first == '<' {
        address_after(0)
    } else if first == '"' {
        // A quoted name: the quotes may enclose anything, and the pattern is greedy,
        // so try the closing quotes from the last one backwards.
        let quotes: Vec<usize> = body.match_indices('"').map(|(i, _)| i).collect();
        quotes.into_iter().rev().filter(|&q| q >= 2).find_map(|q| {
            let rest = &body[q + 1..];
            let gap = rest.len() - rest.trim_start_matches(is_space).len();
            let open = q + 1 + gap;
            if body[open..].starts_with('<') {
                address_after(open)
            } else {
                None
            }
        })
    } else if is_display_name_char(first) {
        // Words of name characters separated by whitespace, then '<'.
        let open = body.find(|c: char| !(is_display_name_char(c) || is_space(c)))?;
        if body[open..].starts_with('<') {
            address_after(open)
        } else {
            None
        }
    } else {
        None
    }
}

fn missing_at_sign(address: &str) -> EmailError {
    if address.contains('\u{FF20}') {
        EmailError::new(
            "The email address has the \"full-width\" at-sign (@) character instead of a regular at-sign.",
        )
    } else if address.contains('\u{FE6B}') {
        EmailError::new(
            "The email address has the \"small commercial at\" character instead of a regular at-sign.",
        )
    } else {
        EmailError::new("An email address must have an @-sign.")
    }
}

// ---------------------------------------------------------------------------
// Whole-address length
// ---------------------------------------------------------------------------

/// `(N characters too many)`, with email-validator's singular/plural.
fn too_many(diff: usize, unit: &str) -> String {
    let s = if diff > 1 { "s" } else { "" };
    format!("({diff} {unit}{s} too many)")
}

/// The whole address must fit in 254 octets of UTF-8 (SMTPUTF8 counts octets).
/// `form` names the transformation that produced `address` (`None` for the input).
fn check_length(address: &str, form: Option<&str>) -> Result<()> {
    let octets = address.len();
    if octets <= EMAIL_MAX_LENGTH {
        return Ok(());
    }
    let diff = octets - EMAIL_MAX_LENGTH;
    let s = if diff > 1 { "s" } else { "" };
    let reason = match form {
        Some(form) => format!("{form} ({diff} byte{s} too many)"),
        None if address.is_ascii() => too_many(diff, "character"),
        None => {
            // At least this many characters must go, at most `diff`.
            let widest = address.chars().map(char::len_utf8).max().unwrap_or(1);
            let fewest = (diff / widest).max(1);
            if fewest == diff {
                format!("({diff} character{s} too many)")
            } else {
                format!("({fewest}-{diff} character{s} too many)")
            }
        }
    };
    Err(EmailError::new(format!(
        "The email address is too long {reason}."
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) fn ok(input: &str) -> String {
        match EmailAddress::parse(input) {
            Ok(e) => e.into_string(),
            Err(e) => panic!("{input:?} was refused: {}", e.reason),
        }
    }

    pub(super) fn reason(input: &str) -> String {
        match EmailAddress::parse(input) {
            Ok(e) => panic!("{input:?} was accepted as {e}"),
            Err(e) => e.reason,
        }
    }

    // --- accepted addresses and normalisation ---

    #[test]
    fn plain_ascii_addresses() {
        assert_eq!(ok("user@example.com"), "user@example.com");
        assert_eq!(
            ok("first.last+tag@mail.example.org"),
            "first.last+tag@mail.example.org"
        );
        assert_eq!(ok("a@b.co"), "a@b.co");
        assert_eq!(
            ok("x_y-z@sub-domain.example.io"),
            "x_y-z@sub-domain.example.io"
        );
        assert_eq!(
            ok("!#$%&'*+-/=?^_`{|}~@example.com"),
            "!#$%&'*+-/=?^_`{|}~@example.com"
        );
        assert_eq!(ok("1234@123.example.com"), "1234@123.example.com");
    }

    #[test]
    fn local_part_keeps_case_domain_is_lower_cased() {
        assert_eq!(ok("Me@Example.COM"), "Me@example.com");
        assert_eq!(ok("JOHN.Smith@EXAMPLE.ORG"), "JOHN.Smith@example.org");
    }

    #[test]
    fn surrounding_whitespace_is_stripped() {
        assert_eq!(ok("  user@example.com \t\n"), "user@example.com");
        assert_eq!(ok("\u{A0}user@example.com\u{3000}"), "user@example.com");
    }

    #[test]
    fn display_names_are_dropped_as_pydantic_does() {
        assert_eq!(ok("John Doe <john@example.com>"), "john@example.com");
        assert_eq!(ok("<john@example.com>"), "john@example.com");
        assert_eq!(
            ok("  \"Doe, John\" <john@Example.com>  "),
            "john@example.com"
        );
        assert_eq!(ok("\"a <b> c\" <john@example.com>"), "john@example.com");
        assert_eq!(ok("John Q. Public <JQP@Example.com>"), "JQP@example.com");
        // Not the pretty form: the angle brackets are then invalid characters.
        assert!(EmailAddress::parse("John, Doe <john@example.com>").is_err());
        assert!(EmailAddress::parse("<>").is_err());
    }

    #[test]
    fn key_is_unicode_lower_case() {
        let e = EmailAddress::parse("Jörg.ÅSE@Example.com").unwrap();
        assert_eq!(e.as_str(), "Jörg.ÅSE@example.com");
        assert_eq!(e.key(), "jörg.åse@example.com");
        assert_eq!(e.to_string(), "Jörg.ÅSE@example.com");
        assert_eq!(email_key("  Jörg.ÅSE@Example.com "), "jörg.åse@example.com");
        assert_eq!(email_key(e.as_str()), e.key());
    }

    // --- splitting ---

    #[test]
    fn at_sign_required() {
        assert_eq!(
            reason("user.example.com"),
            "An email address must have an @-sign."
        );
        assert_eq!(reason(""), "An email address must have an @-sign.");
        assert_eq!(reason("   "), "An email address must have an @-sign.");
        assert_eq!(
            reason("user＠example.com"),
            "The email address has the \"full-width\" at-sign (@) character instead of a regular at-sign."
        );
    }

    #[test]
    fn something_before_and_after_the_at_sign() {
        assert_eq!(
            reason("@example.com"),
            "There must be something before the @-sign."
        );
        assert_eq!(reason("@"), "There must be something before the @-sign.");
        assert_eq!(reason("user@"), "There must be something after the @-sign.");
        assert_eq!(
            reason("user@   "),
            "There must be something after the @-sign."
        );
    }

    #[test]
    fn splits_on_the_last_at_sign() {
        assert_eq!(
            reason("a@b@example.com"),
            "The email address contains invalid characters before the @-sign: '@'."
        );
    }

    #[test]
    fn domain_literals_refused() {
        let msg = "A bracketed IP address after the @-sign is not allowed here.";
        assert_eq!(reason("user@[192.168.0.1]"), msg);
        assert_eq!(reason("user@[IPv6:2001:db8::1]"), msg);
        assert_eq!(
            reason("user@[example.com"),
            "The part after the @-sign contains invalid characters: '['."
        );
    }

    // --- whole length ---

    #[test]
    fn long_local_parts_are_accepted_like_pydantic() {
        // email-validator checks RFC 5321's 64 octets only in strict mode, which
        // pydantic's EmailStr does not use; the 254-octet total still applies.
        let long = "a".repeat(100);
        assert_eq!(
            ok(&format!("{long}@example.com")),
            format!("{long}@example.com")
        );
        assert!(reason(&format!("{}@example.com", "a".repeat(250)))
            .starts_with("The email address is too long"));
    }

    #[test]
    fn total_length() {
        // 64 + 1 + 189 = 254 octets: the maximum.
        let local = "a".repeat(64);
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        let max = format!("{local}@{domain}");
        assert_eq!(max.len(), 254);
        assert_eq!(ok(&max), max);
        let over = format!(
            "{local}@{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(59)
        );
        assert_eq!(over.len(), 256);
        assert_eq!(
            reason(&over),
            "The email address is too long (2 characters too many)."
        );
    }

    #[test]
    fn total_length_counts_octets() {
        // 32 two-octet characters make a 64-octet local part; the domain is 190 octets.
        let local = "é".repeat(32);
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(58)
        );
        let addr = format!("{local}@{domain}");
        assert_eq!(addr.len(), 255);
        assert_eq!(
            reason(&addr),
            "The email address is too long (1 character too many)."
        );
    }

    #[test]
    fn total_length_after_idna_encoding() {
        // The Unicode form fits (239 octets) but the Punycode form does not (257).
        let label = format!("ü{}", "a".repeat(54));
        let addr = format!("{}@{label}.{label}.{label}.com", "a".repeat(64));
        assert_eq!(addr.len(), 239);
        assert_eq!(
            reason(&addr),
            "The email address is too long when the part after the @-sign is converted to IDNA ASCII (3 bytes too many)."
        );
    }

    #[test]
    fn overlong_input_refused_early() {
        let huge = format!("{}@example.com", "a".repeat(3000));
        assert_eq!(reason(&huge), "Length must not exceed 2048 characters");
    }

    #[test]
    fn normalised_forms_are_fixed_points() {
        for input in [
            "Me@Example.COM",
            "user@XN--BCHER-KVA.example",
            "me@ÖBB.AT",
            "jose\u{301}@example.com",
            "Postmaster@Example.com",
            "user@例え。テスト.jp",
        ] {
            let once = ok(input);
            assert_eq!(ok(&once), once, "{input}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics_and_is_idempotent(input in any::<String>()) {
            if let Ok(e) = EmailAddress::parse(&input) {
                let again = EmailAddress::parse(e.as_str()).map(EmailAddress::into_string);
                prop_assert_eq!(again, Ok(e.into_string()));
            }
        }

        #[test]
        fn address_like_inputs_are_idempotent(
            local in "[a-zA-Z0-9._%+ü\u{301}\u{37E}-]{1,20}",
            labels in proptest::collection::vec("[a-zA-Z0-9äöüÄÖÜß-]{1,12}", 1..4),
            tld in "[a-zA-Zé]{2,6}",
        ) {
            let input = format!("{local}@{}.{tld}", labels.join("."));
            if let Ok(e) = EmailAddress::parse(&input) {
                prop_assert_eq!(e.key(), email_key(e.as_str()));
                let again = EmailAddress::parse(e.as_str()).map(EmailAddress::into_string);
                prop_assert_eq!(again, Ok(e.into_string()));
            }
        }
    }
}
