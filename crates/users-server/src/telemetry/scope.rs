//! Making a span the current one, for a while, as cheaply as the service's subscriber
//! allows (docs/operations.md#traces).
//!
//! `Span::enter` tells the registry (which keeps each thread's stack of current spans)
//! and then every layer; each layer's filter first looks the span up in the registry to
//! learn whether it enabled it. None of the service's layers does anything on an entry
//! or an exit, unless `RUST_LOG` names a span (the log's filter then follows what is
//! entered): the registry alone is told then, and the spans made meanwhile are the
//! span's children exactly as after `Span::enter`.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::span::Id;
use tracing::{Span, Subscriber};
use tracing_subscriber::Registry;

/// The installed subscriber's layers ignore entries and exits.
static REGISTRY_ONLY: AtomicBool = AtomicBool::new(false);

/// Said once, by the code that installed the subscriber.
pub(super) fn layers_ignore_entries(ignore: bool) {
    REGISTRY_ONLY.store(ignore, Ordering::Relaxed);
}

/// Leaves the span when dropped, a panic included.
struct Exit<'a> {
    registry: &'a Registry,
    id: &'a Id,
}

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        self.registry.exit(self.id);
    }
}

/// `f`, run with `span` the current span.
pub(super) fn in_scope<R>(span: &Span, f: impl FnOnce() -> R) -> R {
    if !REGISTRY_ONLY.load(Ordering::Relaxed) {
        return span.in_scope(f);
    }
    let mut f = Some(f);
    let done = span
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            let f = f.take()?;
            registry.enter(id);
            let _exit = Exit { registry, id };
            Some(f())
        })
        .flatten();
    match (done, f) {
        (Some(done), _) => done,
        // a span of no registry (disabled, or another subscriber's): as it always is
        (None, Some(f)) => span.in_scope(f),
        (None, None) => unreachable!("`f` is taken only when it runs"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    /// Each span made, by name, with its parent's name.
    type Parents = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

    /// Counts the entries it is told of, and names the parent of every span made.
    struct Watch {
        entries: Arc<AtomicUsize>,
        parents: Parents,
    }

    impl<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>
        tracing_subscriber::Layer<S> for Watch
    {
        fn on_new_span(&self, _: &tracing::span::Attributes<'_>, id: &Id, cx: Context<'_, S>) {
            let span = cx.span(id).unwrap();
            let parent = span.parent().map(|p| p.name().to_owned());
            self.parents
                .lock()
                .unwrap()
                .push((span.name().to_owned(), parent));
        }

        fn on_enter(&self, _: &Id, _: Context<'_, S>) {
            self.entries.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_spans_made_inside_are_children_and_the_layers_are_not_told() {
        let entries = Arc::new(AtomicUsize::new(0));
        let parents = Arc::default();
        let subscriber = tracing_subscriber::registry().with(Watch {
            entries: entries.clone(),
            parents: Arc::clone(&parents),
        });
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request");
            for registry_only in [false, true] {
                layers_ignore_entries(registry_only);
                let answer = in_scope(&request, || {
                    tracing::info_span!("flow").in_scope(|| Span::current().id())
                });
                assert!(answer.is_some());
                // left: a span made now is a root
                tracing::info_span!("after");
            }
            layers_ignore_entries(false);
            // a disabled span runs `f` too
            assert_eq!(in_scope(&Span::none(), || 7), 7);
        });
        let parents = parents.lock().unwrap().clone();
        let request = Some("request".to_owned());
        assert_eq!(
            parents,
            [
                ("request".to_owned(), None),
                ("flow".to_owned(), request.clone()),
                ("after".to_owned(), None),
                ("flow".to_owned(), request),
                ("after".to_owned(), None),
            ]
        );
        // `request` once by `Span::enter`, `flow` twice; `request` not when the registry
        // alone is told
        assert_eq!(entries.load(Ordering::Relaxed), 3);
    }
}
