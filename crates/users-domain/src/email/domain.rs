//! The domain, after the `@`: IDNA (UTS #46) mapping and Punycode, the IDNA 2008
//! label rules as email-validator applies them, host-name syntax (periods, hyphens,
//! ASCII letters, digits), the length limits of the whole domain (253 octets) and of
//! each label (63 octets), the top-level domain, and the special-use names refused.

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_normalization::UnicodeNormalization;

use super::chars::{
    check_unsafe_chars, code_point, idna2008_context_ok, is_idna2008_like, list_displayed,
};
use super::{too_many, EmailError, Result};

/// Maximum length of a domain name, in octets (RFC 1035 2.3.4).
const DOMAIN_MAX_LENGTH: usize = 253;
/// Maximum length of one label of a domain name, in octets (RFC 1035 2.3.1).
const DNS_LABEL_MAX_LENGTH: usize = 63;

/// Special-use and reserved domain names (IANA registry, as selected by
/// email-validator): the name itself and all its subdomains are refused.
const SPECIAL_USE_DOMAIN_NAMES: &[&str] =
    &["arpa", "invalid", "local", "localhost", "onion", "test"];

pub(super) struct Domain {
    /// The form used in the normalised address: Unicode, lower-case, NFC.
    pub(super) unicode: String,
    /// The IDNA ASCII (Punycode) form.
    pub(super) ascii: String,
}

fn invalid_domain_chars(chars: impl IntoIterator<Item = char>, after_mapping: bool) -> EmailError {
    let when = if after_mapping {
        " after Unicode normalization"
    } else {
        ""
    };
    EmailError::new(format!(
        "The part after the @-sign contains invalid characters{when}: {}.",
        list_displayed(chars)
    ))
}

/// The IDNA 2008 rules on one (mapped, non-ASCII) label, in the order and with the
/// wording of the Python `idna` package that email-validator uses.
fn check_idna2008_label(label: &str) -> Result<()> {
    let chars: Vec<char> = label.chars().collect();
    if chars.get(2) == Some(&'-') && chars.get(3) == Some(&'-') {
        return Err(idna_invalid(
            "Label has disallowed hyphens in 3rd and 4th position",
        ));
    }
    if chars.first().copied().is_some_and(is_combining_mark) {
        return Err(idna_invalid(
            "Label begins with an illegal combining character",
        ));
    }
    for (i, &c) in chars.iter().enumerate() {
        if !is_idna2008_like(c) {
            return Err(idna_invalid(&format!(
                "Codepoint {} at position {} of '{label}' not allowed",
                code_point(c),
                i + 1
            )));
        }
        if !idna2008_context_ok(&chars, i) {
            return Err(idna_invalid(&format!(
                "Codepoint {} not allowed at position {} in '{label}'",
                code_point(c),
                i + 1
            )));
        }
    }
    Ok(())
}

fn idna_invalid(detail: &str) -> EmailError {
    EmailError::new(format!("The part after the @-sign is invalid ({detail})."))
}

/// Whether UTS #46 disallows `c` wherever it stands. Tried alone and after a
/// right-to-left letter, so that a character that needs a right-to-left label, or a
/// combining mark, does not count as disallowed.
fn uts46_disallows(uts46: &Uts46, c: char) -> bool {
    [String::from(c), format!("\u{5D0}{c}")]
        .iter()
        .all(|label| {
            uts46
                .to_unicode(label.as_bytes(), AsciiDenyList::EMPTY, Hyphens::Allow)
                .1
                .is_err()
        })
}

/// A character whose compatibility decomposition contains a full stop (e.g. '⒈'):
/// UTS #46 would turn it into a label separator. The full-width full stop is a
/// legitimate separator and is allowed.
fn decomposes_to_period(c: char) -> bool {
    if c.is_ascii() || c == '\u{FF0E}' {
        return false;
    }
    let mut found = false;
    decompose_compatible(c, |d| found |= d == '.');
    found
}

fn is_ascii_hostname_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.'
}

/// A valid ASCII host name (RFC 952, RFC 1123 2.1): LDH labels separated by single
/// periods, no label starting or ending with a hyphen.
fn is_ascii_hostname(s: &str) -> bool {
    s.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

pub(super) fn validate_domain(raw: &str) -> Result<Domain> {
    check_raw(raw)?;
    // UTS #46 mapping (lower case, NFC, label separators to '.') and Punycode
    // decoding. The `idna` crate also validates here (bidirectional text, joiners,
    // Punycode); email-validator does that later, after its checks on periods and
    // hyphens, so a failure is only reported after those checks.
    let uts46 = Uts46::new();
    let (mapped, status) = uts46.to_unicode(raw.as_bytes(), AsciiDenyList::EMPTY, Hyphens::Allow);
    if status.is_err() {
        if let Some((position, c)) = raw
            .chars()
            .enumerate()
            .find(|&(_, c)| uts46_disallows(&uts46, c))
        {
            return Err(EmailError::new(format!(
                "The part after the @-sign contains invalid characters (Codepoint {} not allowed at position {} in '{raw}').",
                code_point(c),
                position + 1
            )));
        }
    }
    let idna_failed = status.is_err();
    let mapped = mapped.into_owned();

    check_mapped(&mapped)?;
    if idna_failed {
        return Err(idna_failure(raw));
    }
    for label in mapped.split('.').filter(|label| !label.is_ascii()) {
        check_idna2008_label(label)?;
    }

    let ascii = uts46
        .to_ascii(
            mapped.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map_err(|_| EmailError::new("The part after the @-sign is not valid IDNA."))?
        .into_owned();
    if !is_ascii_hostname(&ascii) {
        return Err(EmailError::new(
            "The email address contains invalid characters after the @-sign after IDNA encoding.",
        ));
    }

    check_ascii(&ascii, raw)?;
    let unicode = if ascii.contains("xn--") {
        // The canonical Unicode form, from the ASCII form.
        let (unicode, status) =
            uts46.to_unicode(ascii.as_bytes(), AsciiDenyList::EMPTY, Hyphens::Allow);
        if status.is_err() {
            return Err(EmailError::new(
                "The part after the @-sign is not valid IDNA.",
            ));
        }
        unicode.into_owned()
    } else {
        ascii.clone()
    };
    Ok(Domain { unicode, ascii })
}

/// What the domain as typed may not hold: more than 255 characters, ASCII other than
/// letters, digits, hyphens and periods, unsafe characters, what decomposes to a period.
fn check_raw(raw: &str) -> Result<()> {
    let chars = raw.chars().count();
    if chars > DOMAIN_MAX_LENGTH {
        return Err(EmailError::new(format!(
            "The email address is too long after the @-sign {}.",
            too_many(chars - DOMAIN_MAX_LENGTH, "character")
        )));
    }

    let bad: Vec<char> = raw
        .chars()
        .filter(|&c| c.is_ascii() && !is_ascii_hostname_char(c))
        .collect();
    if !bad.is_empty() {
        return Err(invalid_domain_chars(bad, false));
    }
    check_unsafe_chars(raw)?;
    let bad: Vec<char> = raw.chars().filter(|&c| decomposes_to_period(c)).collect();
    if !bad.is_empty() {
        return Err(invalid_domain_chars(bad, false));
    }
    Ok(())
}

/// The domain after the UTS #46 mapping: host name characters, the dot-atom rules, and
/// no reserved LDH label.
fn check_mapped(mapped: &str) -> Result<()> {
    let bad: Vec<char> = mapped
        .chars()
        .filter(|&c| c.is_ascii() && !is_ascii_hostname_char(c))
        .collect();
    if !bad.is_empty() {
        return Err(invalid_domain_chars(bad, true));
    }

    check_dot_atom_domain(mapped)?;

    // RFC 5890 reserved LDH labels: "??--" other than Punycode's "xn--".
    for label in mapped.split('.') {
        let mut it = label.chars();
        let (a, b, c, d) = (it.next(), it.next(), it.next(), it.next());
        let is_xn = matches!((a, b), (Some('x' | 'X'), Some('n' | 'N')));
        if a.is_some() && b.is_some() && c == Some('-') && d == Some('-') && !is_xn {
            return Err(EmailError::new(
                "An email address cannot have two letters followed by two dashes immediately after the @-sign or after a period, except Punycode.",
            ));
        }
    }
    Ok(())
}

/// Why a domain the UTS #46 mapping refused is not valid IDNA, as email-validator says
/// it: a label's own rule when one is broken, else the plain refusal.
fn idna_failure(raw: &str) -> EmailError {
    let leading_mark = raw
        .split(['.', '\u{3002}', '\u{FF0E}', '\u{FF61}'])
        .any(|label| label.chars().next().is_some_and(is_combining_mark));
    if leading_mark {
        return idna_invalid("Label begins with an illegal combining character");
    }
    // A label may still break a rule that email-validator checks before the
    // bidirectional-text rule. The mapped output marks errors with U+FFFD, so
    // approximate the mapping (lower case and NFC) on the input instead.
    for label in raw.split(['.', '\u{3002}', '\u{FF0E}', '\u{FF61}']) {
        let label: String = label.to_lowercase().nfc().collect();
        if !label.is_ascii() {
            if let Err(e) = check_idna2008_label(&label) {
                return e;
            }
        }
    }
    EmailError::new("The part after the @-sign is not valid IDNA.")
}

/// The ASCII (Punycode) form: its length, its labels' lengths, a period, a top-level
/// domain, and no special-use name.
fn check_ascii(ascii: &str, raw: &str) -> Result<()> {
    if ascii.len() > DOMAIN_MAX_LENGTH {
        let diff = ascii.len() - DOMAIN_MAX_LENGTH;
        let reason = if ascii == raw {
            too_many(diff, "character")
        } else {
            let s = if diff == 1 { "" } else { "s" };
            format!("({diff} byte{s} too many after IDNA encoding)")
        };
        return Err(EmailError::new(format!(
            "The email address is too long after the @-sign {reason}."
        )));
    }
    if let Some(label) = ascii.split('.').find(|l| l.len() > DNS_LABEL_MAX_LENGTH) {
        return Err(EmailError::new(format!(
            "After the @-sign, periods cannot be separated by so many characters {}.",
            too_many(label.len() - DNS_LABEL_MAX_LENGTH, "character")
        )));
    }
    if !ascii.contains('.') {
        return Err(EmailError::new(
            "The part after the @-sign is not valid. It should have a period.",
        ));
    }
    if !ascii.ends_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(EmailError::new(
            "The part after the @-sign is not valid. It is not within a valid top-level domain.",
        ));
    }
    let is_special = SPECIAL_USE_DOMAIN_NAMES.iter().any(|special| {
        ascii == *special
            || ascii
                .strip_suffix(special)
                .is_some_and(|rest| rest.ends_with('.'))
    });
    if is_special {
        return Err(EmailError::new(
            "The part after the @-sign is a special-use or reserved name that cannot be used with email.",
        ));
    }
    Ok(())
}

/// The dot-atom rules applied to a host name (RFC 5322 3.2.3, RFC 952).
fn check_dot_atom_domain(domain: &str) -> Result<()> {
    let reason = if domain.ends_with('.') {
        "An email address cannot end with a period."
    } else if domain.starts_with('.') {
        "An email address cannot have a period immediately after the @-sign."
    } else if domain.contains("..") {
        "An email address cannot have two periods in a row."
    } else if domain.ends_with('-') {
        "An email address cannot end with a hyphen."
    } else if domain.starts_with('-') {
        "An email address cannot have a hyphen immediately after the @-sign."
    } else if domain.contains(".-") || domain.contains("-.") {
        "An email address cannot have a period and a hyphen next to each other."
    } else {
        return Ok(());
    };
    Err(EmailError::new(reason))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::email::tests::{ok, reason};

    #[test]
    fn internationalised_domains() {
        assert_eq!(ok("user@bücher.example"), "user@bücher.example");
        assert_eq!(ok("user@XN--BCHER-KVA.example"), "user@bücher.example");
        assert_eq!(ok("user@xn--bcher-kva.example"), "user@bücher.example");
        assert_eq!(ok("me@ÖBB.AT"), "me@öbb.at");
        assert_eq!(ok("me@BÜCHER.example"), "me@bücher.example");
        assert_eq!(ok("user@例え。テスト.jp"), "user@例え.テスト.jp");
        assert_eq!(ok("user@ＥＸＡＭＰＬＥ．com"), "user@example.com");
        assert_eq!(ok("user@straße.de"), "user@straße.de");
        assert_eq!(ok("user@xn--p1ai.xn--p1ai"), "user@рф.рф");
        assert_eq!(ok("user@пример.рф"), "user@пример.рф");
    }

    #[test]
    fn domain_needs_a_period() {
        assert_eq!(
            reason("user@localhost"),
            "The part after the @-sign is not valid. It should have a period."
        );
        assert_eq!(
            reason("user@example"),
            "The part after the @-sign is not valid. It should have a period."
        );
    }

    #[test]
    fn domain_periods_and_hyphens() {
        assert_eq!(
            reason("user@.example.com"),
            "An email address cannot have a period immediately after the @-sign."
        );
        assert_eq!(
            reason("user@example.com."),
            "An email address cannot end with a period."
        );
        assert_eq!(
            reason("user@example..com"),
            "An email address cannot have two periods in a row."
        );
        assert_eq!(
            reason("user@-example.com"),
            "An email address cannot have a hyphen immediately after the @-sign."
        );
        assert_eq!(
            reason("user@example.com-"),
            "An email address cannot end with a hyphen."
        );
        assert_eq!(
            reason("user@example-.com"),
            "An email address cannot have a period and a hyphen next to each other."
        );
        assert_eq!(
            reason("user@mail.-example.com"),
            "An email address cannot have a period and a hyphen next to each other."
        );
        assert_eq!(
            reason("user@ab--cd.com"),
            "An email address cannot have two letters followed by two dashes immediately after the @-sign or after a period, except Punycode."
        );
        assert_eq!(ok("user@a-b--c.com"), "user@a-b--c.com");
    }

    #[test]
    fn invalid_domain_characters() {
        assert_eq!(
            reason("user@exa_mple.com"),
            "The part after the @-sign contains invalid characters: '_'."
        );
        assert_eq!(
            reason("user@exa mple.com"),
            "The part after the @-sign contains invalid characters: SPACE."
        );
        assert_eq!(
            reason("user@exa!mple.c%m"),
            "The part after the @-sign contains invalid characters: '!', '%'."
        );
        assert_eq!(
            reason("user@a\u{200D}b.com"),
            "The email address contains unsafe characters: ZERO WIDTH JOINER."
        );
        assert_eq!(
            reason("user@\u{2488}example.com"),
            "The part after the @-sign contains invalid characters: '\u{2488}'."
        );
        assert_eq!(
            reason("user@a\u{2FF0}.com"),
            "The part after the @-sign contains invalid characters (Codepoint U+2FF0 not allowed at position 2 in 'a\u{2FF0}.com')."
        );
        assert_eq!(
            reason("user@exa\u{FF1F}mple.com"),
            "The part after the @-sign contains invalid characters after Unicode normalization: '?'."
        );
    }

    #[test]
    fn invalid_idna() {
        assert_eq!(
            reason("user@xn--a.com"),
            "The part after the @-sign is not valid IDNA."
        );
        // Bidi rule: a right-to-left label next to a label starting with a digit.
        assert_eq!(
            reason("user@1.אב.com"),
            "The part after the @-sign is not valid IDNA."
        );
    }

    #[test]
    fn domain_length_limits() {
        let label63 = "a".repeat(63);
        assert_eq!(ok(&format!("u@{label63}.com")), format!("u@{label63}.com"));
        assert_eq!(
            reason(&format!("u@{label63}b.com")),
            "After the @-sign, periods cannot be separated by so many characters (1 character too many)."
        );
        // 4 * 63 + 3 dots = 255 > 253.
        let long = [label63.as_str(); 4].join(".");
        assert_eq!(
            reason(&format!("u@{long}")),
            "The email address is too long after the @-sign (2 characters too many)."
        );
        // A Unicode label whose Punycode form is too long.
        let ue = "ü".repeat(60);
        assert!(reason(&format!("u@{ue}.com"))
            .starts_with("After the @-sign, periods cannot be separated"));
    }

    #[test]
    fn top_level_domain_must_end_with_a_letter() {
        let msg =
            "The part after the @-sign is not valid. It is not within a valid top-level domain.";
        assert_eq!(reason("user@example.123"), msg);
        assert_eq!(reason("user@1.2.3.4"), msg);
        assert_eq!(reason("user@example.c0"), msg);
        assert_eq!(ok("user@example.c0m"), "user@example.c0m");
    }

    #[test]
    fn special_use_domains_refused() {
        let msg = "The part after the @-sign is a special-use or reserved name that cannot be used with email.";
        for domain in [
            "example.test",
            "a.b.TEST",
            "printer.local",
            "my.localhost",
            "site.onion",
            "thing.invalid",
            "1.0.168.192.in-addr.arpa",
        ] {
            assert_eq!(reason(&format!("user@{domain}")), msg, "{domain}");
        }
        // Only whole labels count.
        assert_eq!(ok("user@contest.com"), "user@contest.com");
        assert_eq!(ok("user@mytest.io"), "user@mytest.io");
        assert_eq!(ok("user@test.com"), "user@test.com");
        assert_eq!(ok("user@example.com"), "user@example.com");
    }
}
