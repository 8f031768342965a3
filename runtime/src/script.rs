//! Running a script from start to end, as bpftrace does: attach, BEGIN, events until `exit()`,
//! a signal or the end of `-c`'s command, then END and the exit dump.

use std::io::{self, Write};

use crate::child::Child;
use crate::events::EventDecoder;
use crate::host::HostCatalog;
use crate::output;
use crate::session::{Session, SessionError};
use crate::signals::Signals;
use crate::stack_export::{self, ExportOptions};
use compiler::hir::AttachPoint;
use compiler::program::ErrorCounter;

/// `-f folded`: the exit dump with maps keyed by stacks as folded lines, the others as text.
fn write_exit_dump_folded(out: &mut dyn Write, dumps: &[output::MapDump]) -> io::Result<()> {
    out.write_all(b"\n\n")?;
    let mut sorted: Vec<&output::MapDump> = dumps.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for dump in sorted {
        if stack_export::has_stacks(dump) {
            stack_export::write_folded_map(out, dump)?;
        } else {
            output::write_map(out, output::OutputFormat::Text, dump, 0, 0)?;
        }
    }
    Ok(())
}

/// Reports events lost to a full buffer as bpftrace does: a `Lost N events` line among the output
/// when new losses are seen (checked every 100 ms at most), and the rest at the end.
#[derive(Default)]
pub struct LostEvents {
    reported: u64,
    last_check: Option<std::time::Instant>,
}

impl LostEvents {
    pub fn due(&self) -> bool {
        self.last_check.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(100))
    }

    pub fn report(&mut self, session: &Session, out: &mut dyn Write) -> io::Result<()> {
        self.last_check = Some(std::time::Instant::now());
        let lost = session.error_count(ErrorCounter::LostEvents);
        if lost > self.reported {
            output::write_lost_events(out, session.format, lost - self.reported)?;
            self.reported = lost;
        }
        Ok(())
    }
}

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
        output::write_attached_probes(out, session.format, session.all().len() as u64)?;
        session.write_verbose(out)?;
        out.flush()?;
    }
    let mut events = session.events()?;
    let event_fds = events.fds();
    let mut lost = LostEvents::default();
    let mut decoder = EventDecoder::new();
    session.run_special(session.all(), false)?;
    let mut done = decoder.drain(&mut events, &session, out)?;
    out.flush()?;
    if let Some(c) = child.as_mut() {
        if !done {
            c.release()?;
        }
    }
    let has_probes = session.program.probes.iter().any(|p| !matches!(p.attach, AttachPoint::Begin | AttachPoint::End));
    if !has_probes && child.is_none() {
        // Only BEGIN/END: nothing more can happen, as bpftrace.
        done = true;
    }
    while !done {
        let mut fds: Vec<libc::pollfd> = std::iter::once(signals.fd())
            .chain(event_fds.iter().copied())
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        done = decoder.drain(&mut events, &session, out)?;
        // An exit() whose record a full buffer dropped still ends tracing.
        if session.error_count(ErrorCounter::ExitLost) > 0 {
            done = true;
        }
        if lost.due() {
            lost.report(&session, out)?;
        }
        out.flush()?;
        if fds[0].revents != 0 {
            for sig in signals.read() {
                if sig == libc::SIGINT || sig == libc::SIGTERM {
                    done = true;
                }
            }
        }
        if let Some(c) = child.as_mut() {
            if c.exited() {
                done = true;
            }
        }
    }
    // Counted before the programs go, with the probes' other losses reported below.
    let missed = session.recursion_misses();
    // Probes stop before END runs, so END and the exit dump see the maps as tracing left them
    // (bpftrace detaches first too: a map END clears stays empty).
    session.detach_probes();
    // Events still queued when tracing stopped are printed before END runs, as bpftrace does.
    decoder.drain_all(&mut events, &session, out)?;
    decoder.resume();
    session.run_special(session.all(), true)?;
    decoder.drain_all(&mut events, &session, out)?;
    lost.report(&session, out)?;
    let dumps = session.dump_maps()?;
    if exports.folded_stdout {
        write_exit_dump_folded(out, &dumps)?;
    } else {
        output::write_exit_dump(out, session.format, &dumps)?;
    }
    out.flush()?;
    let duration = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    if let Err(e) = stack_export::write_files(&dumps, exports, duration, session.stacks.modules()) {
        eprintln!("ERROR: {e}");
    }
    let full = session.error_count(ErrorCounter::MapFull);
    if full > 0 {
        eprintln!("WARNING: {full} map updates failed because a map was full (raise RBT_MAP_KEYS_MAX)");
    }
    if missed > 0 {
        eprintln!(
            "WARNING: {missed} probe firings were skipped by the kernel because another BPF program was running on \
             the same CPU (e.g. a tracepoint hit inside an interrupt during a probe)"
        );
    }
    let reads = session.error_count(ErrorCounter::ReadFailed);
    if reads > 0 {
        eprintln!("WARNING: {reads} kernel memory reads failed (invalid pointers); those values read as zero");
    }
    let stacks = session.error_count(ErrorCounter::StackFailed);
    if stacks > 0 {
        eprintln!(
            "WARNING: {stacks} stack captures failed (hash collisions or a full stack map: raise \
             RBT_STACK_STORAGE); they print as [stack not captured: ...]"
        );
    }
    if let Some(mut c) = child {
        c.kill_and_wait();
    }
    drop(events);
    drop(session);
    Ok(())
}
