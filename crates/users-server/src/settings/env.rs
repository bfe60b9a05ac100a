//! Where values come from: a lookup (the process environment, or a map in tests), with
//! `NAME_FILE` for every `NAME`, and the typed reads every section uses.

use super::variables::{variable, Allowed, Variable, WhenUnset};
use super::{err, SettingsError};

/// The variables as the sections read them.
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env { lookup }
    }

    /// `NAME`, or the content of the file named by `NAME_FILE` (a trailing newline is
    /// dropped). Setting both is an error: one of them would be silently ignored.
    pub fn get(&self, name: &str) -> Result<Option<String>, SettingsError> {
        let file_var = format!("{name}_FILE");
        let direct = (self.lookup)(name);
        let file = (self.lookup)(&file_var).filter(|f| !f.is_empty());
        match (direct, file) {
            (Some(_), Some(_)) => Err(err(
                name,
                format!("both {name} and {file_var} are set; set only one"),
            )),
            (Some(v), None) => Ok(Some(v)),
            (None, Some(path)) => {
                let content = std::fs::read_to_string(&path)
                    .map_err(|e| err(&file_var, format!("cannot read `{path}`: {e}")))?;
                let value = content.strip_suffix('\n').unwrap_or(&content);
                let value = value.strip_suffix('\r').unwrap_or(value);
                Ok(Some(value.to_owned()))
            }
            (None, None) => Ok(None),
        }
    }

    /// `name` as a boolean, its row's default when unset or blank.
    pub fn flag(&self, name: &str) -> Result<bool, SettingsError> {
        let WhenUnset::Flag(default) = row(name)?.when_unset else {
            return Err(misdeclared(name, "a boolean default"));
        };
        match self.get(name)?.map(|s| s.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(default),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(err(name, format!("`{v}` is not a boolean (true or false)"))),
        }
    }

    /// `name` as a whole number in its row's range, the row's default when unset.
    pub fn number<T: Number>(&self, name: &str) -> Result<T, SettingsError> {
        if let Some(value) = self.optional_number(name)? {
            return Ok(value);
        }
        let WhenUnset::Number(default) = row(name)?.when_unset else {
            return Err(misdeclared(name, "a numeric default"));
        };
        T::try_from(default).map_err(|_| misdeclared(name, "a default of its type"))
    }

    /// `name` as a whole number in its row's range; `None` when unset.
    pub fn optional_number<T: Number>(&self, name: &str) -> Result<Option<T>, SettingsError> {
        let Allowed::Range(start, end) = row(name)?.allowed else {
            return Err(misdeclared(name, "a range"));
        };
        let bound = |b: i64| T::try_from(b).map_err(|_| misdeclared(name, "a range of its type"));
        let range = bound(start)?..=bound(end)?;
        let Some(raw) = self.get(name)? else {
            return Ok(None);
        };
        let value: T = raw
            .trim()
            .parse()
            .map_err(|_| err(name, format!("`{raw}` is not a whole number")))?;
        if !range.contains(&value) {
            return Err(err(
                name,
                format!(
                    "{value} is out of range: must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(Some(value))
    }

    /// `name` as it is set (even blank), or its row's default value when unset.
    pub fn text(&self, name: &str) -> Result<String, SettingsError> {
        if let Some(value) = self.get(name)? {
            return Ok(value);
        }
        match row(name)?.when_unset {
            WhenUnset::Value(default) => Ok(default.to_owned()),
            _ => Err(misdeclared(name, "a default value")),
        }
    }

    /// One of the words of `name`'s row, trimmed; the row's default when unset or blank.
    pub fn choice(&self, name: &str) -> Result<&'static str, SettingsError> {
        let row = row(name)?;
        let (Allowed::OneOf(words), WhenUnset::Value(default)) = (row.allowed, row.when_unset)
        else {
            return Err(misdeclared(name, "words and a default"));
        };
        let value = self.get(name)?.unwrap_or_default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(default);
        }
        words.iter().copied().find(|w| *w == value).ok_or_else(|| {
            err(
                name,
                format!("`{value}` is not one of: {}", words.join(", ")),
            )
        })
    }
}

/// What [`Env::number`] reads: the integer types, which all convert from the rows' i64.
pub trait Number: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + TryFrom<i64> {}

impl<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + TryFrom<i64>> Number for T {}

/// The row of `name`: a reader asking for a variable the table lacks is a mistake of
/// this program, told as an error naming it (a unit test reads every variable).
fn row(name: &str) -> Result<&'static Variable, SettingsError> {
    variable(name).ok_or_else(|| err(name, "is read but not declared in the table of variables"))
}

/// A row that does not give what its reader needs (a mistake of this program).
fn misdeclared(name: &str, what: &str) -> SettingsError {
    err(
        name,
        format!("is declared without {what} in the table of variables"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::settings::tests::settings;

    #[test]
    fn file_variants_are_read_and_conflicts_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret-from-a-file\n").unwrap();
        let p = path.to_str().unwrap();
        let s = settings(&[("JWT_SECRET_FILE", p)]).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(
            s.tokens.jwt_secret.unwrap().expose_secret(),
            "s3cret-from-a-file"
        );
        let e = settings(&[("JWT_SECRET_FILE", p), ("JWT_SECRET", "x")]).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET");
        let e = settings(&[("PASSWORD_MIN_LENGTH_FILE", "/nonexistent/file")]).unwrap_err();
        assert_eq!(e.var, "PASSWORD_MIN_LENGTH_FILE");
    }
}
