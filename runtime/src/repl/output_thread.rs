//! The REPL's output thread: polls the event buffers, decodes what running probes print, and
//! hands it to rustyline's external printer, which draws it above the line being edited.
//!
//! Output is batched: records are decoded as they come, but printed at most every
//! [`BATCH_INTERVAL`] (or when a batch grows past [`BATCH_BYTES`]), so a probe printing 100,000
//! lines a second costs the editor twenty redraws a second, not 100,000. The thread also ends
//! the session on SIGTERM, and runs END and prints the maps when a probe calls `exit()`.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustyline::ExternalPrinter;

use super::{finish, lock, Shared, SharedRef};
use crate::session::lifecycle;
use runtime::kernel::signals::{Signals, SIGTERM};

const BATCH_INTERVAL: Duration = Duration::from_millis(50);
const BATCH_BYTES: usize = 256 * 1024;
/// How long a poll waits when nothing happens; also how soon a stop request is seen.
const POLL_MS: i32 = 50;

pub struct OutputThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl OutputThread {
    /// Starts the thread. SIGTERM must already be blocked in every thread (see `signals::block`).
    pub fn start(shared: SharedRef, printer: Box<dyn ExternalPrinter + Send>) -> io::Result<OutputThread> {
        let terminate = Signals::watch(&[SIGTERM])?;
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("rbt-output".into())
                .spawn(move || run(&shared, printer, &stop, &terminate))?
        };
        Ok(OutputThread { stop, handle: Some(handle) })
    }

    /// Stops the thread after its current batch; its pending output is printed first.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for OutputThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Decodes every queued record of `shared` into `out`; after an `exit()`, ends tracing as a
/// script would (END, maps, warnings) and lets later records through again.
pub fn drain(shared: &mut Shared, out: &mut Vec<u8>) {
    let Shared { session, tracing, .. } = shared;
    if !tracing.has_events() {
        return;
    }
    let exited = tracing.step(session, out).unwrap_or_else(|e| {
        let _ = writeln!(out, "ERROR: reading events: {e}");
        false
    });
    if exited {
        finish(shared, out);
        let _ = writeln!(out, "exit() was called: every probe is detached; the maps stay for :print.");
    }
}

fn run(shared: &SharedRef, mut printer: Box<dyn ExternalPrinter + Send>, stop: &AtomicBool, terminate: &Signals) {
    let mut pending: Vec<u8> = Vec::new();
    let mut last_print = Instant::now();
    loop {
        // Not waited on under the lock: the input thread needs the session meanwhile.
        let event_fds = lock(shared).tracing.event_fds();
        let signalled = lifecycle::wait(terminate.fd(), &event_fds, POLL_MS).unwrap_or(false);
        let stopping = stop.load(Ordering::SeqCst);
        if signalled && terminate.read().contains(&SIGTERM) {
            // SIGTERM: end the session as :quit would, then leave.
            let mut guard = lock(shared);
            drain(&mut guard, &mut pending);
            finish(&mut guard, &mut pending);
            let mut stdout = io::stdout().lock();
            let _ = stdout.write_all(b"\r\n");
            let _ = stdout.write_all(&pending);
            let _ = stdout.flush();
            super::restore_terminal();
            std::process::exit(0);
        }
        drain(&mut lock(shared), &mut pending);
        let due = last_print.elapsed() >= BATCH_INTERVAL || pending.len() >= BATCH_BYTES;
        if !pending.is_empty() && (due || stopping) {
            let text = String::from_utf8_lossy(&pending).into_owned();
            if stopping {
                let _ = io::stdout().write_all(text.as_bytes());
            } else {
                let _ = printer.print(text);
            }
            pending.clear();
            last_print = Instant::now();
        }
        if stopping {
            return;
        }
    }
}
