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

use std::collections::BTreeSet;
use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_normalization::UnicodeNormalization;

/// Maximum length of a whole address, in UTF-8 octets (RFC 5321 4.5.3.1.3, RFC 3696 errata).
const EMAIL_MAX_LENGTH: usize = 254;
/// Maximum length of a domain name, in octets (RFC 1035 2.3.4).
const DOMAIN_MAX_LENGTH: usize = 253;
/// Maximum length of one label of a domain name, in octets (RFC 1035 2.3.1).
const DNS_LABEL_MAX_LENGTH: usize = 63;
/// pydantic refuses any input longer than this (in characters) before validating it.
const INPUT_MAX_CHARS: usize = 2048;

/// Special-use and reserved domain names (IANA registry, as selected by
/// email-validator): the name itself and all its subdomains are refused.
const SPECIAL_USE_DOMAIN_NAMES: &[&str] =
    &["arpa", "invalid", "local", "localhost", "onion", "test"];

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

/// ASCII characters allowed in an unquoted local part besides letters and digits (RFC 5322 atext).
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

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
// Characters
// ---------------------------------------------------------------------------

/// Unicode format characters (general category Cf).
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{600}'..='\u{605}'
            | '\u{61C}'
            | '\u{6DD}'
            | '\u{70F}'
            | '\u{890}'..='\u{891}'
            | '\u{8E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Private-use characters (Co), noncharacters, and planes 4 to 13, which are
/// reserved and wholly unassigned (other unassigned code points are not detected).
fn is_private_or_unassigned(c: char) -> bool {
    let cp = u32::from(c);
    matches!(
        cp,
        0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFDD0..=0xFDEF | 0x40000..=0xDFFFF
    ) || (cp & 0xFFFE) == 0xFFFE
}

/// Characters that are never acceptable in an address: controls, whitespace and
/// separators, format characters, private-use characters and noncharacters.
fn is_unsafe(c: char) -> bool {
    c.is_control() || c.is_whitespace() || is_format(c) || is_private_or_unassigned(c)
}

/// How email-validator shows a character in a message: letters, numbers, punctuation
/// and symbols quoted like Python's `repr`, other characters by name or code point.
fn display_char(c: char) -> String {
    if c == '\\' {
        return "\"\\\"".to_owned();
    }
    if c == '\'' {
        return "\"'\"".to_owned();
    }
    if !is_unsafe(c) && !is_combining_mark(c) {
        return format!("'{c}'");
    }
    let name = match c {
        ' ' => "SPACE",
        '\u{A0}' => "NO-BREAK SPACE",
        '\u{AD}' => "SOFT HYPHEN",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{3000}' => "IDEOGRAPHIC SPACE",
        '\u{FE0E}' => "VARIATION SELECTOR-15",
        '\u{FE0F}' => "VARIATION SELECTOR-16",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        _ => {
            let cp = u32::from(c);
            return if cp < 0xFFFF {
                format!("U+{cp:04X}")
            } else {
                format!("U+{cp:08X}")
            };
        }
    };
    name.to_owned()
}

/// The displayed characters, sorted and comma-separated, as email-validator lists them.
fn list_displayed(chars: impl IntoIterator<Item = char>) -> String {
    let shown: BTreeSet<String> = chars.into_iter().map(display_char).collect();
    shown.into_iter().collect::<Vec<_>>().join(", ")
}

/// Refuses unsafe characters anywhere, and a combining mark in first position (it
/// would combine with whatever precedes the address).
fn check_unsafe_chars(s: &str) -> Result<()> {
    let bad: BTreeSet<char> = s
        .chars()
        .enumerate()
        .filter(|&(i, c)| is_unsafe(c) || (i == 0 && is_combining_mark(c)))
        .map(|(_, c)| c)
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = bad.into_iter().map(display_char).collect();
    Err(EmailError::new(format!(
        "The email address contains unsafe characters: {}.",
        shown.join(", ")
    )))
}

/// `(N characters too many)`, with email-validator's singular/plural.
fn too_many(diff: usize, unit: &str) -> String {
    let s = if diff > 1 { "s" } else { "" };
    format!("({diff} {unit}{s} too many)")
}

// ---------------------------------------------------------------------------
// Local part
// ---------------------------------------------------------------------------

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c) || !c.is_ascii()
}

/// Validates the part before the `@` and returns its normalised form.
fn validate_local_part(raw: &str) -> Result<String> {
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

// ---------------------------------------------------------------------------
// Domain
// ---------------------------------------------------------------------------

struct Domain {
    /// The form used in the normalised address: Unicode, lower-case, NFC.
    unicode: String,
    /// The IDNA ASCII (Punycode) form.
    ascii: String,
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

/// IDNA 2008 admits letters, digits and combining marks, with exceptions (RFC 5892);
/// UTS #46 also admits symbols and punctuation (emoji and the like). This is an
/// approximation by general category, as the `idna` crate has no IDNA 2008 tables.
/// Characters with a contextual rule (CONTEXTO) are admitted here and checked by
/// [`idna2008_context_ok`].
fn is_idna2008_like(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    let disallowed = matches!(
        c,
        // RFC 5892 2.6 exceptions: DISALLOWED although letters.
        '\u{640}' | '\u{7FA}' | '\u{302E}' | '\u{302F}' | '\u{3031}'..='\u{3035}' | '\u{303B}'
        // RFC 5892 2.9: conjoining Hangul Jamo.
        | '\u{1100}'..='\u{11FF}' | '\u{A960}'..='\u{A97F}' | '\u{D7B0}'..='\u{D7FF}'
        // Enclosing marks (Me): marks, but not among IDNA 2008's letters and digits.
        | '\u{488}'..='\u{489}' | '\u{1ABE}' | '\u{20DD}'..='\u{20E0}' | '\u{20E2}'..='\u{20E4}'
        | '\u{A670}'..='\u{A672}'
        // Letter numbers (Nl), except U+3007 which RFC 5892 allows.
        | '\u{16EE}'..='\u{16F0}' | '\u{2160}'..='\u{2182}'
        | '\u{2185}'..='\u{2188}' | '\u{3021}'..='\u{3029}'
        | '\u{3038}'..='\u{303A}' | '\u{A6E6}'..='\u{A6EF}' | '\u{10140}'..='\u{10174}'
        | '\u{10341}' | '\u{1034A}' | '\u{103D1}'..='\u{103D5}' | '\u{12400}'..='\u{1246E}'
        // Blocks of symbols that count as letters or marks: combining marks for
        // symbols, musical symbols, enclosed alphanumerics.
        | '\u{20D0}'..='\u{20FF}' | '\u{1D100}'..='\u{1D24F}' | '\u{1F100}'..='\u{1F1FF}'
    );
    let exception = matches!(
        c,
        // PVALID exceptions that are not letters or digits.
        '\u{6FD}' | '\u{6FE}' | '\u{F0B}'
        // CONTEXTO.
        | '\u{B7}' | '\u{375}' | '\u{5F3}' | '\u{5F4}' | '\u{30FB}'
    );
    !disallowed && (c.is_alphanumeric() || is_combining_mark(c) || exception)
}

fn is_greek(c: char) -> bool {
    matches!(c, '\u{370}'..='\u{3FF}' | '\u{1F00}'..='\u{1FFF}')
}

fn is_hebrew(c: char) -> bool {
    matches!(c, '\u{591}'..='\u{5FF}' | '\u{FB1D}'..='\u{FB4F}')
}

/// Hiragana, Katakana (other than the middle dot itself) or Han.
fn is_japanese_or_han(c: char) -> bool {
    c != '\u{30FB}'
        && matches!(
            c,
            '\u{3040}'..='\u{30FF}'
                | '\u{31F0}'..='\u{31FF}'
                | '\u{FF66}'..='\u{FF9F}'
                | '\u{1B000}'..='\u{1B16F}'
                | '\u{2E80}'..='\u{2FDF}'
                | '\u{3005}'
                | '\u{3007}'
                | '\u{3021}'..='\u{3029}'
                | '\u{3038}'..='\u{303B}'
                | '\u{3400}'..='\u{4DBF}'
                | '\u{4E00}'..='\u{9FFF}'
                | '\u{F900}'..='\u{FAFF}'
                | '\u{20000}'..='\u{3FFFF}'
        )
}

/// Whether the CONTEXTO character at `i` in `chars` is in an allowed context
/// (RFC 5892 appendix A.3 to A.9). Other characters are always allowed.
fn idna2008_context_ok(chars: &[char], i: usize) -> bool {
    let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
    let after = chars.get(i + 1).copied();
    match chars.get(i).copied() {
        // MIDDLE DOT: only between two 'l's (Catalan "l·l").
        Some('\u{B7}') => before == Some('l') && after == Some('l'),
        // GREEK LOWER NUMERAL SIGN (KERAIA): followed by a Greek character.
        Some('\u{375}') => after.is_some_and(is_greek),
        // HEBREW PUNCTUATION GERESH and GERSHAYIM: after a Hebrew character.
        Some('\u{5F3}' | '\u{5F4}') => before.is_some_and(is_hebrew),
        // KATAKANA MIDDLE DOT: in a label with Hiragana, Katakana or Han.
        Some('\u{30FB}') => chars.iter().copied().any(is_japanese_or_han),
        // The two sets of Arabic-Indic digits cannot be mixed.
        Some('\u{660}'..='\u{669}') => !chars.iter().any(|c| ('\u{6F0}'..='\u{6F9}').contains(c)),
        Some('\u{6F0}'..='\u{6F9}') => !chars.iter().any(|c| ('\u{660}'..='\u{669}').contains(c)),
        _ => true,
    }
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

/// `U+XXXX`, as the `idna` package writes a code point.
fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
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

fn validate_domain(raw: &str) -> Result<Domain> {
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

    let bad: Vec<char> = mapped
        .chars()
        .filter(|&c| c.is_ascii() && !is_ascii_hostname_char(c))
        .collect();
    if !bad.is_empty() {
        return Err(invalid_domain_chars(bad, true));
    }

    check_dot_atom_domain(&mapped)?;

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

    if idna_failed {
        let leading_mark = raw
            .split(['.', '\u{3002}', '\u{FF0E}', '\u{FF61}'])
            .any(|label| label.chars().next().is_some_and(is_combining_mark));
        if leading_mark {
            return Err(idna_invalid(
                "Label begins with an illegal combining character",
            ));
        }
        // A label may still break a rule that email-validator checks before the
        // bidirectional-text rule. The mapped output marks errors with U+FFFD, so
        // approximate the mapping (lower case and NFC) on the input instead.
        for label in raw.split(['.', '\u{3002}', '\u{FF0E}', '\u{FF61}']) {
            let label: String = label.to_lowercase().nfc().collect();
            if !label.is_ascii() {
                check_idna2008_label(&label)?;
            }
        }
        return Err(EmailError::new(
            "The part after the @-sign is not valid IDNA.",
        ));
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

// ---------------------------------------------------------------------------
// Whole-address length
// ---------------------------------------------------------------------------

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

    fn ok(input: &str) -> String {
        match EmailAddress::parse(input) {
            Ok(e) => e.into_string(),
            Err(e) => panic!("{input:?} was refused: {}", e.reason),
        }
    }

    fn reason(input: &str) -> String {
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
    fn role_mailboxes_are_lower_cased() {
        assert_eq!(ok("Postmaster@Example.com"), "postmaster@example.com");
        assert_eq!(ok("INFO@example.com"), "info@example.com");
        assert_eq!(ok("Info2@example.com"), "Info2@example.com");
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

    // --- local part ---

    #[test]
    fn invalid_local_characters_are_listed() {
        assert_eq!(
            reason("a b@example.com"),
            "The email address contains invalid characters before the @-sign: SPACE."
        );
        assert_eq!(
            reason("a(b),c\"d@example.com"),
            "The email address contains invalid characters before the @-sign: '\"', '(', ')', ','."
        );
        assert_eq!(
            reason("a\\b@example.com"),
            "The email address contains invalid characters before the @-sign: \"\\\"."
        );
        assert_eq!(
            reason("a\u{7}b@example.com"),
            "The email address contains invalid characters before the @-sign: U+0007."
        );
        assert_eq!(
            reason("a[b]@example.com"),
            "The email address contains invalid characters before the @-sign: '[', ']'."
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

    #[test]
    fn unsafe_local_characters() {
        assert_eq!(
            reason("a\u{200B}b@example.com"),
            "The email address contains unsafe characters: ZERO WIDTH SPACE."
        );
        assert_eq!(
            reason("a\u{A0}b@example.com"),
            "The email address contains unsafe characters: NO-BREAK SPACE."
        );
        assert_eq!(
            reason("a\u{E000}b@example.com"),
            "The email address contains unsafe characters: U+E000."
        );
        assert_eq!(
            reason("\u{301}ab@example.com"),
            "The email address contains unsafe characters: U+0301."
        );
    }

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

    // --- domain ---

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
    fn idna2008_rules() {
        // Symbols (emoji and the like) are valid in UTS #46 but not in IDNA 2008.
        assert_eq!(
            reason("user@☃.net"),
            "The part after the @-sign is invalid (Codepoint U+2603 at position 1 of '☃' not allowed)."
        );
        assert_eq!(
            reason("user@i❤.ws"),
            "The part after the @-sign is invalid (Codepoint U+2764 at position 2 of 'i❤' not allowed)."
        );
        assert!(EmailAddress::parse("user@xn--ls8h.la").is_err());
        assert_eq!(
            reason("user@ab\u{640}c.com"),
            "The part after the @-sign is invalid (Codepoint U+0640 at position 3 of 'ab\u{640}c' not allowed)."
        );
        // Contextual rules.
        assert_eq!(ok("user@col·legi.cat"), "user@col·legi.cat");
        assert_eq!(
            reason("user@a·b.com"),
            "The part after the @-sign is invalid (Codepoint U+00B7 not allowed at position 2 in 'a·b')."
        );
        assert_eq!(ok("user@ﾃｽﾄ・例.jp"), "user@テスト・例.jp");
        assert_eq!(
            reason("user@a・b.com"),
            "The part after the @-sign is invalid (Codepoint U+30FB not allowed at position 2 in 'a・b')."
        );
        assert_eq!(ok("user@אב١.com"), "user@אב١.com");
        assert!(EmailAddress::parse("user@א١۱.com").is_err());
        // Conjoining jamo are composed first.
        assert_eq!(ok("user@\u{1100}\u{1161}.kr"), "user@가.kr");
        assert_eq!(
            reason("user@x.\u{301}z.com"),
            "The part after the @-sign is invalid (Label begins with an illegal combining character)."
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
    fn domain_literals_refused() {
        let msg = "A bracketed IP address after the @-sign is not allowed here.";
        assert_eq!(reason("user@[192.168.0.1]"), msg);
        assert_eq!(reason("user@[IPv6:2001:db8::1]"), msg);
        assert_eq!(
            reason("user@[example.com"),
            "The part after the @-sign contains invalid characters: '['."
        );
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

    // --- whole length ---

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
