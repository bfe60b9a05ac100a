//! The export queue (docs/operations.md#traces): a closed span's record is pushed under
//! a lock (nothing else: no channel, no copy into another structure), and the exporter's
//! thread takes what is queued every `OTEL_BSP_SCHEDULE_DELAY` (5 s), or as soon as a
//! batch is full, and exports it. The standard variables of OpenTelemetry's batch span
//! processor keep their meaning and defaults; a full queue drops the newest spans.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::otlp::Exporter;
use super::record::SpanRecord;

/// The batches, as OpenTelemetry's `OTEL_BSP_*` variables set them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct BatchConfig {
    pub(super) max_queue: usize,
    pub(super) max_batch: usize,
    pub(super) delay: Duration,
}

impl BatchConfig {
    /// From `var` (the environment): a variable unset or not a number keeps the
    /// default, as in OpenTelemetry's SDK; a batch is never larger than the queue.
    pub(super) fn read(var: impl Fn(&str) -> Option<String>) -> Self {
        let number = |name: &str, default: u64| {
            var(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048).max(1) as usize;
        let max_batch =
            (number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).max(1) as usize).min(max_queue);
        let delay = Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000));
        BatchConfig {
            max_queue,
            max_batch,
            delay,
        }
    }
}

pub(super) struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    config: BatchConfig,
}

struct Pending {
    spans: Vec<SpanRecord>,
    /// Spans dropped because the queue was full, since the last export.
    dropped: u64,
    stop: bool,
}

impl Queue {
    pub(super) fn new(config: BatchConfig) -> Self {
        Queue {
            pending: Mutex::new(Pending {
                spans: Vec::with_capacity(config.max_batch),
                dropped: 0,
                stop: false,
            }),
            wake: Condvar::new(),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a closed span; wakes the exporter when a batch is full.
    pub(super) fn push(&self, span: SpanRecord) {
        let mut pending = self.lock();
        if pending.spans.len() >= self.config.max_queue {
            pending.dropped += 1;
            return;
        }
        pending.spans.push(span);
        // the first span ends the exporter's idle sleep; a full batch, its delay
        if pending.spans.len() == 1 || pending.spans.len() == self.config.max_batch {
            self.wake.notify_one();
        }
    }

    /// What is queued, once a batch is full, the delay since the first span has passed
    /// or the export stops (then true). With nothing queued it sleeps until a span
    /// comes, whatever the delay (a delay of 0 would otherwise spin).
    fn take(&self) -> (Vec<SpanRecord>, u64, bool) {
        let mut pending = self.lock();
        while !pending.stop && pending.spans.is_empty() && pending.dropped == 0 {
            pending = self
                .wake
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + self.config.delay;
        while !pending.stop && pending.spans.len() < self.config.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            pending = self
                .wake
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let capacity = self.config.max_batch.min(pending.spans.len().max(16));
        let spans = std::mem::replace(&mut pending.spans, Vec::with_capacity(capacity));
        (spans, std::mem::take(&mut pending.dropped), pending.stop)
    }
}

/// How long a shutdown waits for the last spans to be exported.
const FINISH_WITHIN: Duration = Duration::from_secs(5);

/// The exporter's thread, while traces are exported.
pub(super) struct Pipeline {
    queue: Arc<Queue>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pipeline {
    pub(super) fn start(exporter: Exporter, queue: Arc<Queue>) -> Result<Self, String> {
        let shared = queue.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || run(&exporter, &shared))
            .map_err(|e| format!("the exporter's thread: {e}"))?;
        Ok(Pipeline {
            queue,
            thread: Some(thread),
        })
    }

    /// Exports what is still queued, then stops: waits for the exporter's thread at
    /// most [`FINISH_WITHIN`] (a receiver that is down must not hold up a shutdown past
    /// its grace period), then leaves it.
    pub(super) fn finish(mut self) -> Result<(), String> {
        self.queue.lock().stop = true;
        self.queue.wake.notify_one();
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + FINISH_WITHIN;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "the last spans were not exported within {} s",
                    FINISH_WITHIN.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        thread
            .join()
            .map_err(|_| "the exporter's thread failed".to_owned())
    }
}

#[cfg(test)]
impl Queue {
    /// Everything queued, at once.
    pub(super) fn take_all(&self) -> Vec<SpanRecord> {
        std::mem::take(&mut self.lock().spans)
    }
}

fn run(exporter: &Exporter, queue: &Queue) {
    let mut failing = false;
    loop {
        let (spans, dropped, stop) = queue.take();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "spans were dropped: the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE)"
            );
        }
        for batch in spans.chunks(queue.config.max_batch) {
            match exporter.export(batch) {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("spans are exported again");
                }
                Ok(()) => {}
                // once, until an export works again: a receiver that is down is not
                // worth a line every few seconds
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "spans were not exported");
                }
                Err(_) => {}
            }
            // stopping: a receiver that failed once gets no more tries
            if stop && failing {
                break;
            }
        }
        drop(spans);
        if stop {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn batches_follow_the_standard_variables() {
        let default = BatchConfig::read(env(&[]));
        assert_eq!(
            default,
            BatchConfig {
                max_queue: 2048,
                max_batch: 512,
                delay: Duration::from_secs(5)
            }
        );
        let set = BatchConfig::read(env(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ]));
        assert_eq!(
            set,
            BatchConfig {
                max_queue: 100,
                max_batch: 100,
                delay: Duration::from_millis(250)
            }
        );
        let bad = BatchConfig::read(env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "many")]));
        assert_eq!(bad.max_queue, 2048);
    }

    #[test]
    fn a_full_queue_drops_and_a_full_batch_is_taken_at_once() {
        let queue = Queue::new(BatchConfig {
            max_queue: 3,
            max_batch: 2,
            delay: Duration::from_secs(3600),
        });
        for _ in 0..5 {
            queue.push(crate::telemetry::record::tests::record());
        }
        // the batch is full: no wait for the hour's delay
        let (spans, dropped, stop) = queue.take();
        assert_eq!((spans.len(), dropped, stop), (3, 2, false));
        queue.lock().stop = true;
        let (spans, dropped, stop) = queue.take();
        assert_eq!((spans.len(), dropped, stop), (0, 0, true));
    }

    #[test]
    fn an_empty_queue_sleeps_until_a_span_comes_even_with_no_delay() {
        let queue = Arc::new(Queue::new(BatchConfig {
            max_queue: 10,
            max_batch: 10,
            delay: Duration::ZERO,
        }));
        let pusher = queue.clone();
        let started = Instant::now();
        let later = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            pusher.push(crate::telemetry::record::tests::record());
        });
        // no spin: one take, which returns with the span that came
        let (spans, dropped, stop) = queue.take();
        assert_eq!((spans.len(), dropped, stop), (1, 0, false));
        assert!(started.elapsed() >= Duration::from_millis(90));
        later.join().unwrap();
    }
}
