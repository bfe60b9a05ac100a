//! How the process is run and watched: its logs (`RUST_LOG`, `LOG_FORMAT`), who may
//! read `/metrics` (`METRICS_TOKEN`) and how it stops (`SHUTDOWN_DRAIN_SECONDS`).

use std::time::Duration;

use secrecy::SecretString;

use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::one_of(
        "LOG_FORMAT",
        "pretty",
        &["pretty", "json"],
        "json for one JSON object per line",
    ),
    Variable::text(
        "RUST_LOG",
        WhenUnset::Value("info"),
        "tracing's EnvFilter syntax",
        "log filter",
    ),
    Variable::number(
        "SHUTDOWN_DRAIN_SECONDS",
        5,
        0..=300,
        "after SIGTERM, how long /readyz answers 503 before the listener closes",
    ),
    Variable::text(
        "METRICS_TOKEN",
        WhenUnset::Described("/metrics is public, with a warning in the log"),
        "not blank",
        "the Bearer token /metrics requires",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Ops {
    pub rust_log: String,
    pub log_format: LogFormat,
    /// After SIGTERM: how long `/readyz` answers 503 while requests are still served,
    /// before the process stops accepting connections.
    pub shutdown_drain: Duration,
    /// `/metrics` answers only `Authorization: Bearer <this>`; `None`: it is public.
    pub metrics_token: Option<SecretString>,
}

impl Ops {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let log_format = match env.choice("LOG_FORMAT")? {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            // a word of the row without a format here is this program's mistake
            other => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("`{other}` is not a log format this build knows"),
                ))
            }
        };
        let rust_log = env.text("RUST_LOG")?;
        let shutdown_drain = Duration::from_secs(env.number("SHUTDOWN_DRAIN_SECONDS")?);
        Ok(Ops {
            rust_log,
            log_format,
            shutdown_drain,
            metrics_token: metrics_token(env)?,
        })
    }
}

fn metrics_token(env: &Env<'_>) -> Result<Option<SecretString>, SettingsError> {
    match env.get("METRICS_TOKEN")? {
        // `Bearer ` and nothing would do, which is no protection
        Some(t) if t.trim().is_empty() => Err(err(
            "METRICS_TOKEN",
            "is empty; unset it to leave /metrics public, or set a long random value",
        )),
        // a header cannot carry surrounding blanks (and `bearer_token` trims them)
        Some(t) => Ok(Some(SecretString::from(t.trim().to_owned()))),
        None => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::settings::tests::settings;

    #[test]
    fn the_metrics_token_is_a_secret_from_the_variable_or_its_file() {
        assert!(settings(&[]).unwrap().ops.metrics_token.is_none());
        let token = "metrics-token-6f1d2c9b8a7e";
        let s = settings(&[("METRICS_TOKEN", token)]).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(s.ops.metrics_token.as_ref().unwrap()),
            token
        );
        assert!(!format!("{s:?}").contains(token), "never in Debug");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metrics_token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        let s = settings(&[("METRICS_TOKEN_FILE", file.to_str().unwrap())]).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(s.ops.metrics_token.as_ref().unwrap()),
            token
        );
        let both = settings(&[
            ("METRICS_TOKEN", token),
            ("METRICS_TOKEN_FILE", file.to_str().unwrap()),
        ]);
        assert_eq!(both.unwrap_err().var, "METRICS_TOKEN");
    }

    #[test]
    fn the_shutdown_drain_defaults_to_five_seconds() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.ops.shutdown_drain, Duration::from_secs(5));
        let s = settings(&[("SHUTDOWN_DRAIN_SECONDS", "0")]).unwrap();
        assert_eq!(s.ops.shutdown_drain, Duration::ZERO);
        assert_eq!(
            settings(&[("SHUTDOWN_DRAIN_SECONDS", "301")])
                .unwrap_err()
                .var,
            "SHUTDOWN_DRAIN_SECONDS"
        );
    }
}
