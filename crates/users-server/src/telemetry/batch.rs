//! The export queue (docs/operations.md#traces): a closed span's record is pushed into
//! a buffer of the thread that closed it (its own lock, which only the exporter's sweep
//! ever contends; nothing else: no channel, no copy into another structure), and the
//! exporter's thread sweeps every thread's buffer every `OTEL_BSP_SCHEDULE_DELAY` (5 s),
//! or as soon as a batch is full, and exports what it took. The standard variables of
//! OpenTelemetry's batch span processor keep their meaning and defaults; a full queue
//! (all the buffers together) drops the newest spans.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// One thread's closed spans, until the exporter sweeps them.
type Buffer = Mutex<Vec<SpanRecord>>;

/// Each queue has a number, so that a thread's buffer is known to be this queue's (tests
/// make several queues in one process).
static QUEUES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's buffer, and the queue it belongs to.
    static LOCAL: RefCell<Option<(u64, Arc<Buffer>)>> = const { RefCell::new(None) };
}

pub(super) struct Queue {
    id: u64,
    /// Spans in the buffers, not yet swept.
    queued: AtomicUsize,
    /// Spans dropped because the queue was full, since the last sweep.
    dropped: AtomicU64,
    stop: AtomicBool,
    /// The buffer of every thread that closed a span (a thread that ended leaves its own
    /// until a sweep finds it empty).
    buffers: Mutex<Vec<Arc<Buffer>>>,
    /// The exporter's sleep: a pusher that wakes it takes this lock first, so that a
    /// wake-up is never lost between its check and its wait.
    sleep: Mutex<()>,
    wake: Condvar,
    config: BatchConfig,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    pub(super) fn new(config: BatchConfig) -> Self {
        Queue {
            id: QUEUES.fetch_add(1, Ordering::Relaxed),
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            buffers: Mutex::new(Vec::new()),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            config,
        }
    }

    /// Queues a closed span in this thread's buffer; wakes the exporter with the first
    /// span and when a batch is full.
    pub(super) fn push(&self, span: SpanRecord) {
        let before = self.queued.fetch_add(1, Ordering::Relaxed);
        if before >= self.config.max_queue {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let buffer = match &*local {
                Some((id, buffer)) if *id == self.id => buffer,
                _ => {
                    let buffer = Arc::new(Mutex::new(Vec::with_capacity(64)));
                    lock(&self.buffers).push(buffer.clone());
                    &local.insert((self.id, buffer)).1
                }
            };
            lock(buffer).push(span);
        });
        // the first span ends the exporter's idle sleep; a full batch, its delay
        if before == 0 || before + 1 == self.config.max_batch {
            let _sleep = lock(&self.sleep);
            self.wake.notify_one();
        }
    }

    /// Takes every buffer's spans (oldest thread first), and forgets the buffers of the
    /// threads that ended.
    fn sweep(&self, into: &mut Vec<SpanRecord>) {
        let before = into.len();
        lock(&self.buffers).retain(|buffer| {
            let mut spans = lock(buffer);
            into.append(&mut spans);
            Arc::strong_count(buffer) > 1
        });
        self.queued
            .fetch_sub(into.len() - before, Ordering::Relaxed);
    }

    fn waiting(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && self.queued.load(Ordering::Relaxed) == 0
            && self.dropped.load(Ordering::Relaxed) == 0
    }

    /// Asks the exporter's thread to export what is queued and stop.
    fn stop(&self) {
        let _sleep = lock(&self.sleep);
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// What is queued, once a batch is full, the delay since the first span has passed
    /// or the export stops (then true). With nothing queued it sleeps until a span
    /// comes, whatever the delay (a delay of 0 would otherwise spin).
    fn take(&self, spans: &mut Vec<SpanRecord>) -> (u64, bool) {
        let mut sleep = lock(&self.sleep);
        while self.waiting() {
            sleep = self
                .wake
                .wait(sleep)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + self.config.delay;
        while !self.stop.load(Ordering::Relaxed)
            && self.queued.load(Ordering::Relaxed) < self.config.max_batch
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sleep = self
                .wake
                .wait_timeout(sleep, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let stop = self.stop.load(Ordering::Relaxed);
        drop(sleep);
        self.sweep(spans);
        (self.dropped.swap(0, Ordering::Relaxed), stop)
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
        self.queue.stop();
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
        let mut spans = Vec::new();
        self.sweep(&mut spans);
        spans
    }
}

fn run(exporter: &Exporter, queue: &Queue) {
    let mut failing = false;
    // one vector for every sweep: its room is kept
    let mut spans = Vec::with_capacity(queue.config.max_queue.min(4096));
    loop {
        let (dropped, stop) = queue.take(&mut spans);
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
        spans.clear();
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
        let mut spans = Vec::new();
        let (dropped, stop) = queue.take(&mut spans);
        assert_eq!((spans.len(), dropped, stop), (3, 2, false));
        queue.stop();
        spans.clear();
        let (dropped, stop) = queue.take(&mut spans);
        assert_eq!((spans.len(), dropped, stop), (0, 0, true));
    }

    #[test]
    fn spans_from_every_thread_are_taken_and_ended_threads_forgotten() {
        let queue = Arc::new(Queue::new(BatchConfig {
            max_queue: 100,
            max_batch: 100,
            delay: Duration::from_secs(3600),
        }));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        queue.push(crate::telemetry::record::tests::record());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        queue.push(crate::telemetry::record::tests::record());
        assert_eq!(queue.buffers.lock().unwrap().len(), 5);
        assert_eq!(queue.take_all().len(), 21);
        assert_eq!(queue.queued.load(Ordering::Relaxed), 0);
        // the four threads ended: only this one's buffer is left
        assert_eq!(queue.buffers.lock().unwrap().len(), 1);
        // a later span waits in the buffer for the next sweep
        queue.push(crate::telemetry::record::tests::record());
        assert_eq!(queue.take_all().len(), 1);
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
        let mut spans = Vec::new();
        let (dropped, stop) = queue.take(&mut spans);
        assert_eq!((spans.len(), dropped, stop), (1, 0, false));
        assert!(started.elapsed() >= Duration::from_millis(90));
        later.join().unwrap();
    }
}
