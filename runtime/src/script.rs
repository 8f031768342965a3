//! Running a script from start to end, as bpftrace 0.17 does: the "Attaching" line, BEGIN, then
//! the probes attached (so that BEGIN's output comes before any probe's), `-c`'s command let
//! go, events until `exit()`, a signal or the end of the command (SIGUSR1 prints the maps and
//! tracing goes on), then the session's end (END, the exit dump, the warnings) and the stack
//! exports. A program of BEGIN and END alone waits for a signal, as bpftrace's does.

use std::io::{self, Write};

use crate::child::Child;
use crate::host::HostCatalog;
use crate::output;
use crate::session::lifecycle::{self, Tracing};
use crate::session::{Session, SessionError};
use crate::stack_export::{self, ExportOptions};
use compiler::hir::AttachPoint;
use runtime::kernel::signals::{self, Signals};

/// How long one wait for events or signals lasts at most.
const POLL_MS: i32 = 200;

/// The environment variable bpftrace's runtime test suite sets to learn when every probe is
/// attached, and the line bpftrace then prints to stderr.
pub const NOTIFY_ATTACHED: &str = "__BPFTRACE_NOTIFY_PROBES_ATTACHED";

/// What a script's run is told besides its session.
pub struct RunOptions<'a> {
    pub quiet: bool,
    pub exports: &'a ExportOptions,
    /// `--export`: profiles sent every interval while tracing.
    pub continuous: Option<crate::interval_export::IntervalExport>,
}

/// Runs the whole session: BEGIN, events, END, exit dump. Returns when tracing is over.
pub fn run(
    mut session: Session,
    tracefs: &HostCatalog,
    out: &mut dyn Write,
    options: RunOptions,
    mut child: Option<Child>,
) -> Result<(), SessionError> {
    let mut continuous = options.continuous;
    let started = std::time::Instant::now();
    let signals = Signals::block()?;
    let all = session.all();
    if !options.quiet {
        output::write_attached_probes(out, session.format, session.attach_count() as u64)?;
        session.write_verbose(out)?;
        out.flush()?;
    }
    let mut tracing = Tracing::new(Some(session.events()?));
    let event_fds = tracing.event_fds();
    // BEGIN runs before anything is attached, so no probe can fire before it. What it prints
    // comes after the line the test suite waits for, as in bpftrace (which prints BEGIN's
    // output from its event loop): it is kept until then.
    let mut begun = Vec::new();
    let mut done = tracing.begin(&mut session, all.clone(), &mut begun)?;
    if !done {
        // The processes already running get their unwind tables now (on the symbolizer's
        // thread, while probes attach), not after their first stack: the process named with -p,
        // or without -p and -c every one. A process started later is loaded when first seen.
        if session.unwinds_user_stacks() {
            // -c's program, rbt's own libraries (libc, ld.so, the vDSO) and the -p process are
            // loaded before probes attach (a few milliseconds), so that a -c process has only its
            // mappings left to load when its first stack announces it; without -p or -c, every
            // running process is loaded in the background.
            let programs: Vec<_> = child.iter().filter_map(|c| c.program.clone()).collect();
            let pids: Vec<u32> = session.pid_filter.into_iter().collect();
            session.stacks.preload(&programs, &pids);
            if session.pid_filter.is_none() && child.is_none() {
                session.stacks.remember_all();
            }
        }
        session.attach(all, tracefs)?;
        if let Some(c) = child.as_mut() {
            c.release();
        }
    }
    notify_attached();
    if let Some(c) = continuous.as_mut() {
        c.start();
    }
    out.write_all(&begun)?;
    out.flush()?;
    if ends_after_begin(&session) && child.is_none() {
        done = true;
    }
    let mut pacing = lifecycle::Pacing::default();
    while !done {
        let signalled = pacing.wait(signals.fd(), &event_fds, POLL_MS)?;
        done = tracing.step(&session, out)?;
        if signalled {
            for signal in signals.read() {
                match signal {
                    signals::SIGINT | signals::SIGTERM => done = true,
                    // bpftrace prints every map, without the exit dump's two blank lines.
                    signals::SIGUSR1 => output::write_all_maps(out, session.format, &session.dump_maps()?)?,
                    _ => {}
                }
            }
        }
        out.flush()?;
        if let Some(c) = continuous.as_mut() {
            c.tick(&session, options.exports);
        }
        if child.as_mut().is_some_and(Child::exited) {
            done = true;
        }
    }
    finish(session, tracing, out, options.exports, continuous, started, child)
}

/// Whether nothing can happen after BEGIN: a program of BEGIN alone. One with an END waits for
/// a signal to run it, as bpftrace's does; bpftrace 0.17 waits with BEGIN alone too, but with
/// no END nothing would come of the wait (and a REPL session saved as a file, its statements a
/// BEGIN, would never end).
fn ends_after_begin(session: &Session) -> bool {
    session.program.probes.iter().all(|p| p.attach == AttachPoint::Begin)
}

/// Prints the line bpftrace's runtime test suite waits for, when it asks for it.
fn notify_attached() {
    if std::env::var_os(NOTIFY_ATTACHED).is_some() {
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "{NOTIFY_ATTACHED}");
        let _ = err.flush();
    }
}

/// The end of tracing: END, the exit dump, the stack exports, the warnings, the child ended.
fn finish(
    mut session: Session,
    mut tracing: Tracing,
    out: &mut dyn Write,
    exports: &ExportOptions,
    continuous: Option<crate::interval_export::IntervalExport>,
    started: std::time::Instant,
    child: Option<Child>,
) -> Result<(), SessionError> {
    let ending = tracing.end(&mut session, out)?;
    // The last interval ends with tracing, END included.
    if let Some(mut c) = continuous {
        c.export(&session, exports);
        c.report();
    }
    ending.write_dump(out, session.format, exports.folded_stdout)?;
    out.flush()?;
    let duration = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    if let Err(e) = stack_export::write_files(&ending.dumps, exports, duration, session.stacks.modules()) {
        eprintln!("ERROR: {e}");
    }
    ending.warnings.write(&mut io::stderr().lock())?;
    if let Some(mut c) = child {
        c.kill_and_wait();
    }
    drop(tracing);
    drop(session);
    Ok(())
}
