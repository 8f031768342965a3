//! Running a script from start to end, as bpftrace does: attach, BEGIN, events until `exit()`,
//! a signal or the end of `-c`'s command, then the session's end (END, the exit dump, the
//! warnings) and the stack exports.

use std::io::{self, Write};

use crate::child::Child;
use crate::host::HostCatalog;
use crate::session::lifecycle::{self, Tracing};
use crate::session::{Session, SessionError};
use crate::stack_export::{self, ExportOptions};
use compiler::hir::AttachPoint;
use runtime::kernel::signals::{self, Signals};

/// How long one wait for events or signals lasts at most.
const POLL_MS: i32 = 200;

/// Runs the whole session: BEGIN, events, END, exit dump. Returns when tracing is over.
pub fn run(
    mut session: Session,
    tracefs: &HostCatalog,
    out: &mut dyn Write,
    quiet: bool,
    mut child: Option<Child>,
    exports: &ExportOptions,
) -> Result<(), SessionError> {
    let started = std::time::Instant::now();
    let signals = Signals::block()?;
    session.attach(session.all(), tracefs)?;
    if !quiet {
        crate::output::write_attached_probes(out, session.format, session.all().len() as u64)?;
        session.write_verbose(out)?;
        out.flush()?;
    }
    let mut tracing = Tracing::new(Some(session.events()?));
    let event_fds = tracing.event_fds();
    let all = session.all();
    let mut done = tracing.begin(&mut session, all, out)?;
    out.flush()?;
    if let Some(c) = child.as_mut() {
        if !done {
            c.release();
        }
    }
    let has_probes = session.program.probes.iter().any(|p| !matches!(p.attach, AttachPoint::Begin | AttachPoint::End));
    if !has_probes && child.is_none() {
        // Only BEGIN/END: nothing more can happen, as bpftrace.
        done = true;
    }
    while !done {
        let signalled = lifecycle::wait(signals.fd(), &event_fds, POLL_MS)?;
        done = tracing.step(&session, out)?;
        out.flush()?;
        if signalled && signals.read().iter().any(|&sig| sig == signals::SIGINT || sig == signals::SIGTERM) {
            done = true;
        }
        if child.as_mut().is_some_and(Child::exited) {
            done = true;
        }
    }
    let ending = tracing.end(&mut session, out)?;
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
