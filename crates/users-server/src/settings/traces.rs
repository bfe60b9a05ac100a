//! Traces over OpenTelemetry (docs/operations.md#traces): where spans are exported
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`; unset, nothing is), under which service name, and
//! which traces are kept (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`). The names,
//! values and defaults are OpenTelemetry's own.

use super::variables::{Variable, WhenUnset};
use super::{err, Env, SettingsError};

pub(super) const VARIABLES: &[Variable] = &[
    Variable::text(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        WhenUnset::Described("no traces: nothing is recorded or exported"),
        "an http:// or https:// URL, without credentials",
        "the OTLP/HTTP receiver (a collector); spans are POSTed as protobuf to its /v1/traces",
    ),
    Variable::text(
        "OTEL_SERVICE_NAME",
        WhenUnset::Value("users"),
        "not blank",
        "the service.name of the exported spans",
    ),
    Variable::one_of(
        "OTEL_TRACES_SAMPLER",
        "parentbased_always_on",
        SAMPLERS,
        "which traces are recorded; parentbased_*: a request with a traceparent follows \
         its caller's decision",
    ),
    Variable::text(
        "OTEL_TRACES_SAMPLER_ARG",
        WhenUnset::Value("1.0"),
        "a number from 0 to 1",
        "the ratio of traces kept by traceidratio and parentbased_traceidratio",
    ),
];

const SAMPLERS: &[&str] = &[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// Which traces are recorded, as OpenTelemetry's samplers of the same names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    /// Kept when the trace id falls in this ratio (0 to 1).
    TraceIdRatio(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Traces {
    /// Where spans are POSTed (the endpoint's `/v1/traces`); `None`: traces are off.
    pub export_url: Option<String>,
    pub service_name: String,
    /// The sampler of a trace that starts here (and of every trace without
    /// `parent_based`).
    pub sampler: Sampler,
    /// A span whose parent came with the request follows the parent's decision.
    pub parent_based: bool,
}

impl Traces {
    pub fn read(env: &Env<'_>) -> Result<Self, SettingsError> {
        let endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")?;
        let service_name = env.text("OTEL_SERVICE_NAME")?.trim().to_owned();
        if service_name.is_empty() {
            return Err(err("OTEL_SERVICE_NAME", "is blank"));
        }
        let name = env.choice("OTEL_TRACES_SAMPLER")?;
        let arg = env.text("OTEL_TRACES_SAMPLER_ARG")?;
        let ratio = arg
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                err(
                    "OTEL_TRACES_SAMPLER_ARG",
                    format!("`{arg}` is not a number from 0 to 1"),
                )
            })?;
        let parent_based = name.starts_with("parentbased_");
        let sampler = match name.trim_start_matches("parentbased_") {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatio(ratio),
            // a word of the row without a sampler here is this program's mistake
            other => {
                return Err(err(
                    "OTEL_TRACES_SAMPLER",
                    format!("`{other}` is not a sampler this build knows"),
                ))
            }
        };
        Ok(Traces {
            export_url: endpoint
                .filter(|e| !e.trim().is_empty())
                .map(|e| export_url(&e))
                .transpose()?,
            service_name,
            sampler,
            parent_based,
        })
    }
}

/// The URL spans are POSTed to: the endpoint's `/v1/traces` (OTLP/HTTP's rule for the
/// variable that names the receiver of every signal).
fn export_url(endpoint: &str) -> Result<String, SettingsError> {
    const VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    let endpoint = endpoint.trim();
    let url = url::Url::parse(endpoint).map_err(|e| err(VAR, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(VAR, "must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // it would be shown in the log and in errors
        return Err(err(
            VAR,
            "must not hold credentials; a receiver that needs them takes a header \
             (OTEL_EXPORTER_OTLP_HEADERS)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(VAR, "must have no query and no fragment"));
    }
    Ok(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::settings::tests::settings;

    #[test]
    fn unset_means_no_traces() {
        let t = settings(&[]).unwrap().traces;
        assert_eq!(t.export_url, None);
        assert_eq!(t.service_name, "users");
        assert_eq!(t.sampler, Sampler::AlwaysOn);
        assert!(t.parent_based);
        let t = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])
            .unwrap()
            .traces;
        assert_eq!(t.export_url, None);
    }

    #[test]
    fn spans_go_to_the_endpoints_v1_traces() {
        for (endpoint, url) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "https://otel.example.com/ingest/",
                "https://otel.example.com/ingest/v1/traces",
            ),
        ] {
            let t = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)])
                .unwrap()
                .traces;
            assert_eq!(t.export_url.as_deref(), Some(url));
        }
        for bad in [
            "collector:4318",
            "grpc://collector:4317",
            "http://user:secret@collector:4318",
            "http://collector:4318/?x=1",
        ] {
            let e = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", bad)]).unwrap_err();
            assert_eq!(e.var, "OTEL_EXPORTER_OTLP_ENDPOINT", "{bad}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }

    #[test]
    fn samplers_are_opentelemetrys() {
        let read = |vars: &[(&str, &str)]| settings(vars).map(|s| s.traces);
        let t = read(&[("OTEL_TRACES_SAMPLER", "traceidratio")]).unwrap();
        assert_eq!(
            (t.sampler, t.parent_based),
            (Sampler::TraceIdRatio(1.0), false)
        );
        let t = read(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert_eq!(
            (t.sampler, t.parent_based),
            (Sampler::TraceIdRatio(0.25), true)
        );
        let t = read(&[("OTEL_TRACES_SAMPLER", "always_off")]).unwrap();
        assert_eq!((t.sampler, t.parent_based), (Sampler::AlwaysOff, false));
        for (var, value) in [
            ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
            ("OTEL_SERVICE_NAME", " "),
        ] {
            assert_eq!(read(&[(var, value)]).unwrap_err().var, var, "{value}");
        }
    }
}
