//! Where values come from: a lookup (the process environment, or a map in tests), with
//! `NAME_FILE` for every `NAME`, and the typed reads every section uses.

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

    pub fn parse_bool(&self, name: &str, default: bool) -> Result<bool, SettingsError> {
        match self.get(name)?.map(|s| s.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(default),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(err(name, format!("`{v}` is not a boolean (true or false)"))),
        }
    }

    pub fn parse_in<T>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.get(name)? else {
            return Ok(default);
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
        Ok(value)
    }
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
