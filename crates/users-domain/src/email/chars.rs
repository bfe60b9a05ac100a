//! Character classes: which characters an address may contain and how they are
//! named in messages.
//!
//! - the RFC 5322 `atext` specials allowed in an unquoted local part (and in an
//!   unquoted display name);
//! - the characters never acceptable anywhere (controls, whitespace, format,
//!   private-use and noncharacters), and how email-validator names a character in a
//!   message (quoted like Python's `repr`, by name, or as `U+XXXX`);
//! - the approximation of IDNA 2008's repertoire by Unicode general category, with
//!   the exceptions and contextual rules (CONTEXTO) of RFC 5892.

use std::collections::BTreeSet;

use unicode_normalization::char::is_combining_mark;

use super::{EmailError, Result};

/// ASCII characters allowed in an unquoted local part besides letters and digits (RFC 5322 atext).
pub(super) const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

// ---------------------------------------------------------------------------
// Unsafe characters and their names in messages
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
pub(super) fn list_displayed(chars: impl IntoIterator<Item = char>) -> String {
    let shown: BTreeSet<String> = chars.into_iter().map(display_char).collect();
    shown.into_iter().collect::<Vec<_>>().join(", ")
}

/// Refuses unsafe characters anywhere, and a combining mark in first position (it
/// would combine with whatever precedes the address).
pub(super) fn check_unsafe_chars(s: &str) -> Result<()> {
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

/// `U+XXXX`, as the `idna` package writes a code point.
pub(super) fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

// ---------------------------------------------------------------------------
// IDNA 2008 repertoire (RFC 5892)
// ---------------------------------------------------------------------------

/// IDNA 2008 admits letters, digits and combining marks, with exceptions (RFC 5892);
/// UTS #46 also admits symbols and punctuation (emoji and the like). This is an
/// approximation by general category, as the `idna` crate has no IDNA 2008 tables.
/// Characters with a contextual rule (CONTEXTO) are admitted here and checked by
/// [`idna2008_context_ok`].
pub(super) fn is_idna2008_like(c: char) -> bool {
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
pub(super) fn idna2008_context_ok(chars: &[char], i: usize) -> bool {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::email::tests::{ok, reason};
    use crate::email::EmailAddress;

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
}
