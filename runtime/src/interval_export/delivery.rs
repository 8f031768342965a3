//! Sending profiles to a backend without holding up tracing: a bounded queue in memory (the
//! bytes waiting, at most [`QUEUE_BYTES`]) drained by one thread that POSTs each body, retrying
//! with backoff. A backend that is down gets one warning (and one when it answers again); what
//! the queue cannot hold, or what is still undelivered when rbt stops, is counted and reported
//! at exit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of profiles waiting to be sent, at most.
pub const QUEUE_BYTES: usize = 64 << 20;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits between tries of one body; after the last, it is dropped (and counted).
const BACKOFF: [Duration; 3] = [Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(5)];

/// How long rbt waits at exit for what is queued to go out.
const DRAIN_AT_EXIT: Duration = Duration::from_secs(15);

/// The environment variable whose value, if set, is sent as the `Authorization` header
/// (`Bearer TOKEN`, `Basic BASE64`).
pub const AUTHORIZATION_ENV: &str = "RBT_EXPORT_AUTHORIZATION";

/// One body for one URL.
pub struct Job {
    pub url: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Stats {
    sent: u64,
    dropped: u64,
    dropped_bytes: u64,
    /// URLs that failed last time, warned of once until they answer again.
    down: Vec<String>,
    first_error: Option<String>,
}

/// The queue and its sending thread.
pub struct Delivery {
    jobs: Option<Sender<Job>>,
    queued: Arc<AtomicUsize>,
    stats: Arc<Mutex<Stats>>,
    /// Past this instant the thread stops retrying (set at exit).
    deadline: Arc<Mutex<Option<Instant>>>,
    worker: Option<JoinHandle<()>>,
}

impl Delivery {
    pub fn start() -> Delivery {
        let (tx, rx) = channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let deadline = Arc::new(Mutex::new(None));
        let worker = {
            let (queued, stats, deadline) = (queued.clone(), stats.clone(), deadline.clone());
            std::thread::Builder::new()
                .name("rbt-export".into())
                .spawn(move || work(&rx, &queued, &stats, &deadline))
                .ok()
        };
        Delivery { jobs: Some(tx), queued, stats, deadline, worker }
    }

    /// Queues `job`, or counts it as dropped when the queue is full.
    pub fn send(&self, job: Job) {
        let len = job.body.len();
        let room = self.queued.load(Ordering::Relaxed).saturating_add(len) <= QUEUE_BYTES;
        if room {
            self.queued.fetch_add(len, Ordering::Relaxed);
            if let Some(jobs) = &self.jobs {
                if jobs.send(job).is_ok() {
                    return;
                }
            }
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
        let mut stats = lock(&self.stats);
        if stats.dropped == 0 {
            eprintln!(
                "WARNING: export: {} MB of profiles are already waiting to be sent; newer ones are dropped",
                QUEUE_BYTES >> 20
            );
        }
        stats.dropped += 1;
        stats.dropped_bytes += len as u64;
    }

    /// At exit: sends what is queued (for a while), then reports what was not delivered.
    pub fn finish(mut self) {
        *lock(&self.deadline) = Some(Instant::now() + DRAIN_AT_EXIT);
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        let stats = lock(&self.stats);
        if stats.dropped > 0 {
            eprintln!(
                "WARNING: export: {} of {} profiles ({} bytes) were not delivered{}",
                stats.dropped,
                stats.dropped + stats.sent,
                stats.dropped_bytes,
                stats.first_error.as_deref().map(|e| format!(" (the first failure: {e})")).unwrap_or_default()
            );
        }
    }
}

/// Sleeps `wait`, unless rbt starts stopping meanwhile: a body that has failed already is not
/// retried at exit, so that a dead backend does not hold up the end. Whether it slept it all.
fn wait_unless_stopping(wait: Duration, deadline: &Mutex<Option<Instant>>) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if lock(deadline).is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
    }
    true
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn work(jobs: &Receiver<Job>, queued: &AtomicUsize, stats: &Mutex<Stats>, deadline: &Mutex<Option<Instant>>) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(REQUEST_TIMEOUT)).http_status_as_error(true).build().into();
    let authorization = std::env::var(AUTHORIZATION_ENV).ok();
    for job in jobs {
        // A backend already known to be down gets one try per profile, not the backoff, so
        // that the queue does not grow behind it; the first answer ends that.
        let known_down = lock(stats).down.contains(&job.url);
        let mut tries = if known_down { BACKOFF.len() } else { 0 };
        let outcome = loop {
            let mut request = agent.post(&job.url).header("Content-Type", job.content_type);
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            match request.send(&job.body[..]) {
                Ok(_) => break Ok(()),
                Err(e) => {
                    let past = lock(deadline).is_some_and(|d| Instant::now() >= d);
                    match BACKOFF.get(tries) {
                        Some(wait) if !past && wait_unless_stopping(*wait, deadline) => tries += 1,
                        _ => break Err(e.to_string()),
                    }
                }
            }
        };
        queued.fetch_sub(job.body.len(), Ordering::Relaxed);
        let mut stats = lock(stats);
        match outcome {
            Ok(()) => {
                stats.sent += 1;
                if let Some(i) = stats.down.iter().position(|u| *u == job.url) {
                    stats.down.remove(i);
                    eprintln!("export: {} answers again", job.url);
                }
            }
            Err(why) => {
                stats.dropped += 1;
                stats.dropped_bytes += job.body.len() as u64;
                if !stats.down.contains(&job.url) {
                    eprintln!(
                        "WARNING: export: {} is not answering ({why}); that profile is dropped, later ones are tried",
                        job.url
                    );
                    stats.down.push(job.url.clone());
                }
                if stats.first_error.is_none() {
                    stats.first_error = Some(format!("{}: {why}", job.url));
                }
            }
        }
    }
}
