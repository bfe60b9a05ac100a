//! The log's filter: `RUST_LOG` as tracing-subscriber's `EnvFilter` reads it, without the
//! span bookkeeping it only needs for span directives (docs/operations.md#traces).
//!
//! `EnvFilter` follows every span it enabled through its life (made, entered, left,
//! recorded, closed), each time under a lock of its own and a hash map's lookup, so that
//! a directive naming a span or its fields (`users_core[auth::login]=debug`) can enable
//! what happens inside it. A `RUST_LOG` without such a directive (none has a `[`) gives
//! every callsite a fixed answer: then that bookkeeping changes nothing, and it is left
//! out. Which lines are logged, and which spans a line shows, stay the same.

use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::EnvFilter;

/// `RUST_LOG`'s filter, for the log's layer.
pub(super) struct LogFilter {
    env: EnvFilter,
    /// `RUST_LOG` may name a span or a field: the span bookkeeping is kept.
    span_directives: bool,
}

impl LogFilter {
    /// The filter of `rust_log`, or `info` when it does not parse.
    pub(super) fn new(rust_log: &str) -> Self {
        match EnvFilter::try_new(rust_log) {
            Ok(env) => LogFilter {
                env,
                // span and field directives are written in brackets
                // (`target[span{field=value}]=level`), and nothing else is
                span_directives: rust_log.contains('['),
            },
            Err(_) => LogFilter {
                env: EnvFilter::new("info"),
                span_directives: false,
            },
        }
    }
}

impl LogFilter {
    /// Whether the filter follows spans through their lives (`RUST_LOG` may name one).
    pub(super) fn follows_spans(&self) -> bool {
        self.span_directives
    }
}

impl<S> Filter<S> for LogFilter
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        Filter::<S>::enabled(&self.env, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        Filter::<S>::callsite_enabled(&self.env, meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Filter::<S>::max_level_hint(&self.env)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        if self.span_directives {
            Filter::<S>::on_new_span(&self.env, attrs, id, cx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        if self.span_directives {
            Filter::<S>::on_record(&self.env, id, values, cx);
        }
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        if self.span_directives {
            Filter::<S>::on_enter(&self.env, id, cx);
        }
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        if self.span_directives {
            Filter::<S>::on_exit(&self.env, id, cx);
        }
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        if self.span_directives {
            Filter::<S>::on_close(&self.env, id, cx);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer as _;

    use super::*;

    #[derive(Clone)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a log with `filter` writes of a request whose flow logs inside its span.
    fn logged<F>(filter: F) -> String
    where
        F: Filter<tracing_subscriber::Registry> + Send + Sync + 'static,
    {
        let lines = Lines(Arc::default());
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .with_filter(filter);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request", path = "/users/me", status = 0);
            request.in_scope(|| {
                tracing::debug_span!("auth::login", attempt = 1).in_scope(|| {
                    tracing::debug!("inside the flow");
                    tracing::warn!("a warning in the flow");
                });
            });
            request.record("status", 200);
            request.in_scope(|| tracing::info!("request done"));
            tracing::debug!("outside every span");
        });
        let text = lines.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn logs_what_the_env_filter_logs() {
        for rust_log in [
            "info",
            "warn",
            "debug",
            "warn,[auth::login]=debug",
            "[request]=info",
        ] {
            let ours = logged(LogFilter::new(rust_log));
            assert_eq!(ours, logged(EnvFilter::new(rust_log)), "{rust_log}");
            assert!(!ours.is_empty(), "{rust_log}");
        }
    }

    #[test]
    fn a_span_directive_keeps_the_span_bookkeeping() {
        let plain = logged(LogFilter::new("warn"));
        assert!(plain.contains("a warning in the flow"), "{plain}");
        assert!(!plain.contains("inside the flow"), "{plain}");
        // enabled by the span it is in: needs the spans followed through their lives
        let scoped = logged(LogFilter::new("warn,[auth::login]=debug"));
        assert!(scoped.contains("inside the flow"), "{scoped}");
        assert!(!scoped.contains("outside every span"), "{scoped}");
        assert!(!LogFilter::new("info,users_core=debug").span_directives);
        // a `RUST_LOG` that does not parse is `info`
        let fallback = logged(LogFilter::new("[[[="));
        assert!(fallback.contains("request done"), "{fallback}");
        assert!(!fallback.contains("inside the flow"), "{fallback}");
    }
}
