//! The table of variables: every variable the service reads, declared once, in the
//! `VARIABLES` of the section that reads it and collected by [`variables`].
//!
//! A row gives the name, what unset means, what is allowed and what it is for. The
//! readers take numeric defaults and ranges, boolean defaults and textual defaults from
//! their row, so the row is what the service does; which variables are known (for the
//! checks of docs/configuration.md, .env.example and docker-compose.yml) is derived
//! from the rows too.
//!
//! A name holding `<NAME>` is a pattern: `OIDC_<NAME>_SCOPES` stands for one variable
//! per OpenID provider, `<NAME>` being the provider's name upper-cased with `-` as `_`.

use std::ops::RangeInclusive;

/// One variable the service reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// The name, or a pattern holding [`PROVIDER_PLACEHOLDER`].
    pub name: &'static str,
    pub when_unset: WhenUnset,
    pub allowed: Allowed,
    /// What it is for, in a few words (docs/configuration.md tells it at length).
    pub meaning: &'static str,
}

/// What the service does when a variable is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnset {
    /// It takes this whole number.
    Number(i64),
    /// It takes this boolean.
    Flag(bool),
    /// It takes this value, written as the variable would be.
    Value(&'static str),
    /// What this says: a value made from other variables, or a feature that is off.
    Described(&'static str),
    /// Nothing: the variable must be set (for a pattern, once its provider is listed).
    Required,
}

/// What a variable may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// A whole number from the first to the second, both included.
    Range(i64, i64),
    /// `true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Flag,
    /// One of these words, exactly.
    OneOf(&'static [&'static str]),
    /// What this says; the section's reader checks it.
    Described(&'static str),
}

/// The part of a pattern's name that stands for a provider's name.
pub const PROVIDER_PLACEHOLDER: &str = "<NAME>";

impl Variable {
    /// A whole number with a default, in `range`.
    pub const fn number(
        name: &'static str,
        default: i64,
        range: RangeInclusive<i64>,
        meaning: &'static str,
    ) -> Self {
        Variable {
            name,
            when_unset: WhenUnset::Number(default),
            allowed: Allowed::Range(*range.start(), *range.end()),
            meaning,
        }
    }

    /// A whole number in `range` whose absence means what `unset` says.
    pub const fn optional_number(
        name: &'static str,
        unset: &'static str,
        range: RangeInclusive<i64>,
        meaning: &'static str,
    ) -> Self {
        Variable {
            name,
            when_unset: WhenUnset::Described(unset),
            allowed: Allowed::Range(*range.start(), *range.end()),
            meaning,
        }
    }

    pub const fn flag(name: &'static str, default: bool, meaning: &'static str) -> Self {
        Variable {
            name,
            when_unset: WhenUnset::Flag(default),
            allowed: Allowed::Flag,
            meaning,
        }
    }

    /// Text, checked by its reader as `allowed` says.
    pub const fn text(
        name: &'static str,
        when_unset: WhenUnset,
        allowed: &'static str,
        meaning: &'static str,
    ) -> Self {
        Variable {
            name,
            when_unset,
            allowed: Allowed::Described(allowed),
            meaning,
        }
    }

    /// One of `words`, `default` when unset or blank.
    pub const fn one_of(
        name: &'static str,
        default: &'static str,
        words: &'static [&'static str],
        meaning: &'static str,
    ) -> Self {
        Variable {
            name,
            when_unset: WhenUnset::Value(default),
            allowed: Allowed::OneOf(words),
            meaning,
        }
    }

    /// Whether the name stands for one variable per provider.
    pub fn is_pattern(&self) -> bool {
        self.name.contains(PROVIDER_PLACEHOLDER)
    }

    /// Whether `var` is this variable, or one of its pattern's.
    pub fn matches(&self, var: &str) -> bool {
        let Some((prefix, suffix)) = self.name.split_once(PROVIDER_PLACEHOLDER) else {
            return self.name == var;
        };
        var.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(could_be_a_provider)
    }

    /// The default as people are shown it, when it is a value.
    pub fn shown_default(&self) -> Option<String> {
        match self.when_unset {
            WhenUnset::Number(n) => Some(n.to_string()),
            WhenUnset::Flag(b) => Some(b.to_string()),
            WhenUnset::Value(v) => Some(v.to_owned()),
            WhenUnset::Described(_) | WhenUnset::Required => None,
        }
    }
}

/// `<NAME>` as some provider's name can make it: 1 to 32 of `A-Z`, `0-9`, `_`.
fn could_be_a_provider(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Every row of every section, in the order of the sections.
pub fn variables() -> impl Iterator<Item = &'static Variable> {
    super::SECTIONS.iter().flat_map(|section| section.iter())
}

/// The row of `var`: its own, or the pattern it is one of.
pub fn variable(var: &str) -> Option<&'static Variable> {
    variables()
        .find(|v| !v.is_pattern() && v.name == var)
        .or_else(|| variables().find(|v| v.is_pattern() && v.matches(var)))
}

/// Whether the service reads `var` (or `var` is the `_FILE` variant of one it reads).
pub fn is_known_variable(var: &str) -> bool {
    let known = |v: &str| variable(v).is_some();
    known(var) || var.strip_suffix("_FILE").is_some_and(known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::oidc_variable;

    #[test]
    fn every_row_is_consistent() {
        let mut names = std::collections::BTreeSet::new();
        for v in variables() {
            assert!(names.insert(v.name), "{} is declared twice", v.name);
            assert!(!v.meaning.is_empty(), "{} has no meaning", v.name);
            assert!(
                !v.name.ends_with("_FILE"),
                "{}: NAME_FILE is implied for every NAME",
                v.name
            );
            match (v.when_unset, v.allowed) {
                (WhenUnset::Number(d), Allowed::Range(lo, hi)) => {
                    assert!(lo <= d && d <= hi, "{}: {d} is outside its range", v.name)
                }
                (WhenUnset::Number(_), _) => panic!("{}: a number needs a range", v.name),
                (WhenUnset::Flag(_), Allowed::Flag) | (_, Allowed::Described(_)) => {}
                (WhenUnset::Described(_), Allowed::Range(..)) => {}
                (WhenUnset::Value(d), Allowed::OneOf(words)) => {
                    assert!(words.contains(&d), "{}: {d} is not allowed", v.name)
                }
                (w, a) => panic!("{}: {w:?} does not go with {a:?}", v.name),
            }
        }
    }

    #[test]
    fn the_oidc_family_is_known_by_its_pattern() {
        for var in [
            "OIDC_PROVIDERS",
            "OIDC_CORP_ISSUER_URL",
            "OIDC_KEY_CLOAK_CLIENT_SECRET",
            "OIDC_KEY_CLOAK_CLIENT_SECRET_FILE",
            "OIDC_A1_LABEL",
            "GITHUB_API_URL",
            "GITHUB_CLIENT_SECRET_FILE",
        ] {
            assert!(is_known_variable(var), "{var}");
        }
        for var in [
            "OIDC_ISSUER_URL",
            "OIDC_CORP_ISSUER",
            "OIDC_corp_LABEL",
            "OIDC_CORP_LABEL_X",
            "GITHUB_SCOPES",
            "OIDC_PROVIDERS_FILE_FILE",
        ] {
            assert!(!is_known_variable(var), "{var}");
        }
        assert_eq!(oidc_variable("key-cloak", "LABEL"), "OIDC_KEY_CLOAK_LABEL");
    }

    #[test]
    fn patterns_stand_for_provider_names_only() {
        let scopes = variable("OIDC_CORP_SCOPES").map(|v| v.name);
        assert_eq!(scopes, Some("OIDC_<NAME>_SCOPES"));
        assert!(!is_known_variable("OIDC__LABEL"));
        for v in variables() {
            if v.is_pattern() {
                // the readers name a provider's variables with oidc_variable
                let suffix = v
                    .name
                    .rsplit(PROVIDER_PLACEHOLDER)
                    .next()
                    .unwrap_or_default();
                let var = oidc_variable("key-cloak", suffix.trim_start_matches('_'));
                assert_eq!(variable(&var), Some(v), "{var}");
            } else {
                assert_eq!(
                    variable(v.name),
                    Some(v),
                    "{} is taken by a pattern",
                    v.name
                );
            }
        }
    }
}
