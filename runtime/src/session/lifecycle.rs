//! How tracing runs and ends, the same for a script and the REPL: BEGIN and its output, rounds
//! of decoding events (with `Lost N events` lines and the `exit()` a full buffer dropped), and
//! the end: probes detached, queued events printed, END run once, the last lost events, the map
//! dump, the warnings of what went wrong in the kernel (full maps, failed reads...), and every
//! program detached. A script ends once; the REPL ends at `exit()` and again at `:quit`, each
//! time running the END programs not run yet and warning of failures since the last end.

use std::io::{self, Write};
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{Session, SessionError};
use crate::events::EventDecoder;
use crate::output::{self, MapDump, OutputFormat};
use crate::stack_export;
use compiler::hir::AttachPoint;
use compiler::program::ErrorCounter;
use runtime::kernel::event_source::EventSource;
use runtime::kernel::os;

/// A session's events and what has been reported of them.
pub struct Tracing {
    /// The event buffers, once there is an events map (the REPL's first entry creates it).
    events: Option<EventSource>,
    decoder: EventDecoder,
    lost: LostEvents,
    /// `exit()` records lost to a full buffer, as counted when last acted on.
    exits_lost: u64,
    /// END programs that already ran, so that a second end does not run them again.
    ended: Vec<usize>,
    /// The failure counts the last end warned of.
    warned: Warnings,
}

impl Tracing {
    pub fn new(events: Option<EventSource>) -> Tracing {
        Tracing {
            events,
            decoder: EventDecoder::new(),
            lost: LostEvents::default(),
            exits_lost: 0,
            ended: Vec::new(),
            warned: Warnings::default(),
        }
    }

    pub fn has_events(&self) -> bool {
        self.events.is_some()
    }

    pub fn set_events(&mut self, events: EventSource) {
        self.events = Some(events);
    }

    /// The descriptors that poll readable when records are queued.
    pub fn event_fds(&self) -> Vec<RawFd> {
        self.events.as_ref().map(EventSource::fds).unwrap_or_default()
    }

    /// Whether END program `index` already ran.
    pub fn has_ended(&self, index: usize) -> bool {
        self.ended.contains(&index)
    }

    /// Accepts records again after an `exit()`.
    pub fn resume(&mut self) {
        self.decoder.resume();
    }

    /// Runs the BEGIN programs among `range` and prints what they emit; returns whether one
    /// called `exit()`.
    pub fn begin(
        &mut self,
        session: &mut Session,
        range: Range<usize>,
        out: &mut dyn Write,
    ) -> Result<bool, SessionError> {
        session.run_special(range, false)?;
        Ok(self.decode(session, out)?)
    }

    /// Prints the records queued now (a bounded batch); returns whether `exit()` was seen.
    fn decode(&mut self, session: &Session, out: &mut dyn Write) -> io::Result<bool> {
        match self.events.as_mut() {
            Some(source) => self.decoder.drain(source, session, out),
            None => Ok(false),
        }
    }

    /// Prints every queued record, for when no probe can add more.
    fn decode_all(&mut self, session: &Session, out: &mut dyn Write) -> io::Result<()> {
        match self.events.as_mut() {
            Some(source) => self.decoder.drain_all(source, session, out),
            None => Ok(()),
        }
    }

    /// One round of the event loop: prints the queued records, and new lost events at most
    /// every 100 ms. Returns whether tracing should end: `exit()` was called, or its record
    /// was lost to a full buffer (counted in the kernel, so that it still ends tracing).
    ///
    /// The kernel's counters are read (a bpf(2) call each) at most every 100 ms, not on every
    /// round: each call would fire probes on the paths it takes (`cap_capable`, `bpf`
    /// syscalls), whose events would wake the loop for another round, without end.
    pub fn step(&mut self, session: &Session, out: &mut dyn Write) -> io::Result<bool> {
        let mut exited = self.decode(session, out)?;
        if self.lost.due() {
            let exits_lost = session.error_count(ErrorCounter::ExitLost);
            if exits_lost > self.exits_lost {
                self.exits_lost = exits_lost;
                exited = true;
            }
            self.lost.report(session, out)?;
        }
        Ok(exited)
    }

    /// Ends tracing: detaches the probes, prints the records still queued, runs the END
    /// programs not run yet and prints theirs, reports the lost events, reads every map for the
    /// exit dump and detaches every program. The maps stay, for the REPL's `:print`.
    ///
    /// Probes stop before END runs, so END and the exit dump see the maps as tracing left them
    /// (bpftrace detaches first too: a map END clears stays empty).
    pub fn end(&mut self, session: &mut Session, out: &mut dyn Write) -> Result<Ending, SessionError> {
        // Counted as the probes go, with their other failures warned of below.
        let recursion_misses = session.detach_probes();
        // Events still queued when tracing stopped are printed before END runs, as bpftrace does.
        self.decode_all(session, out)?;
        self.decoder.resume();
        let ends: Vec<usize> = session
            .all()
            .filter(|&i| session.program.probes[i].attach == AttachPoint::End && session.is_loaded(i))
            .filter(|i| !self.ended.contains(i))
            .collect();
        for i in ends {
            self.ended.push(i);
            session.run_special(i..i + 1, true)?;
        }
        self.decode_all(session, out)?;
        self.lost.report(session, out)?;
        let dumps = session.dump_maps()?;
        let counted = Warnings::count(session, recursion_misses);
        let warnings = counted.since(&self.warned);
        self.warned = counted;
        for i in session.all() {
            session.detach(i);
        }
        self.decoder.resume();
        Ok(Ending { dumps, warnings })
    }
}

/// The shortest time between two wake-ups of the event loop for records. Each wake-up costs
/// the loop a context switch, a poll(2) and a write(2) of what it prints, which fire probes on
/// those paths (`sched_switch`, `sys_enter_poll`, `sys_enter_write`) whose records would wake
/// it again at once: waking at most this often bounds what rbt adds to what it traces to a few
/// hundred events a second, at the cost of printing up to this much later.
pub const MIN_WAKE_INTERVAL: Duration = Duration::from_millis(10);

/// Paces the event loop's waits (see [`MIN_WAKE_INTERVAL`]).
#[derive(Default)]
pub struct Pacing {
    last_wake: Option<Instant>,
}

impl Pacing {
    /// Waits as [`wait`] does, but no sooner than [`MIN_WAKE_INTERVAL`] after the last wake-up
    /// for records; until then only `watch` (signals) is watched, and records accumulate.
    pub fn wait(&mut self, watch: RawFd, events: &[RawFd], timeout_ms: i32) -> io::Result<bool> {
        if let Some(rest) = self.last_wake.and_then(|t| MIN_WAKE_INTERVAL.checked_sub(t.elapsed())) {
            let rest_ms = i32::try_from(rest.as_millis()).unwrap_or(i32::MAX).max(1);
            if wait(watch, &[], rest_ms)? {
                return Ok(true);
            }
        }
        let signalled = wait(watch, events, timeout_ms)?;
        self.last_wake = Some(Instant::now());
        Ok(signalled)
    }
}

/// Waits up to `timeout_ms` for records on `events` or input on `watch` (a signalfd); returns
/// whether `watch` is readable. An interrupted wait is an empty one.
pub fn wait(watch: RawFd, events: &[RawFd], timeout_ms: i32) -> io::Result<bool> {
    let fds: Vec<RawFd> = std::iter::once(watch).chain(events.iter().copied()).collect();
    match os::poll_readable(&fds, timeout_ms) {
        Ok(ready) => Ok(ready[0]),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// What an end leaves to print: the exit dump and the warnings.
pub struct Ending {
    pub dumps: Vec<MapDump>,
    pub warnings: Warnings,
}

impl Ending {
    /// The exit dump; with `folded` (`-f folded`), maps keyed by stacks as folded lines and
    /// the others as text.
    pub fn write_dump(&self, out: &mut dyn Write, format: OutputFormat, folded: bool) -> io::Result<()> {
        if !folded {
            return output::write_exit_dump(out, format, &self.dumps);
        }
        out.write_all(b"\n\n")?;
        let mut sorted: Vec<&MapDump> = self.dumps.iter().collect();
        sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        for dump in sorted {
            if stack_export::has_stacks(dump) {
                stack_export::write_folded_map(out, dump)?;
            } else {
                output::write_map(out, OutputFormat::Text, dump, 0, 0)?;
            }
        }
        Ok(())
    }
}

/// Reports events lost to a full buffer as bpftrace does: a `Lost N events` line among the output
/// when new losses are seen (checked every 100 ms at most), and the rest at the end.
#[derive(Default)]
struct LostEvents {
    reported: u64,
    last_check: Option<Instant>,
}

impl LostEvents {
    fn due(&self) -> bool {
        self.last_check.is_none_or(|t| t.elapsed() >= Duration::from_millis(100))
    }

    fn report(&mut self, session: &Session, out: &mut dyn Write) -> io::Result<()> {
        self.last_check = Some(Instant::now());
        let lost = session.error_count(ErrorCounter::LostEvents);
        if lost > self.reported {
            output::write_lost_events(out, session.format, lost - self.reported)?;
            self.reported = lost;
        }
        Ok(())
    }
}

/// What failed in the kernel while tracing, counted by the programs (or, for recursion
/// misses, by the kernel for the programs loaded at the end).
#[derive(Clone, Copy, Default)]
pub struct Warnings {
    map_full: u64,
    recursion_misses: u64,
    reads_failed: u64,
    stacks_failed: u64,
    entries_unseen: u64,
    /// Files whose unwind tables did not fit the rows map, and processes whose mappings were
    /// not loaded: their user stacks are walked by frame pointers.
    unwind_files_left_out: u64,
    unwind_processes_left_out: u64,
    mapping_records_lost: u64,
}

impl Warnings {
    fn count(session: &Session, recursion_misses: u64) -> Warnings {
        let unwind = session.stacks.unwind_stats();
        Warnings {
            map_full: session.error_count(ErrorCounter::MapFull),
            recursion_misses,
            reads_failed: session.error_count(ErrorCounter::ReadFailed),
            stacks_failed: session.error_count(ErrorCounter::StackFailed),
            entries_unseen: session.error_count(ErrorCounter::EntryUnseen),
            unwind_files_left_out: unwind.as_ref().map_or(0, |u| u64::from(u.files_over_capacity)),
            unwind_processes_left_out: unwind.as_ref().map_or(0, |u| u64::from(u.processes_not_loaded)),
            mapping_records_lost: unwind.as_ref().map_or(0, |u| u.mapping_records_lost),
        }
    }

    /// The failures counted since `earlier`. Recursion misses are counted afresh each time:
    /// the kernel forgets them with the programs an end detaches.
    fn since(&self, earlier: &Warnings) -> Warnings {
        Warnings {
            map_full: self.map_full.saturating_sub(earlier.map_full),
            recursion_misses: self.recursion_misses,
            reads_failed: self.reads_failed.saturating_sub(earlier.reads_failed),
            stacks_failed: self.stacks_failed.saturating_sub(earlier.stacks_failed),
            entries_unseen: self.entries_unseen.saturating_sub(earlier.entries_unseen),
            unwind_files_left_out: self.unwind_files_left_out.saturating_sub(earlier.unwind_files_left_out),
            unwind_processes_left_out: self.unwind_processes_left_out.saturating_sub(earlier.unwind_processes_left_out),
            mapping_records_lost: self.mapping_records_lost.saturating_sub(earlier.mapping_records_lost),
        }
    }

    /// One `WARNING:` line for each kind of failure that happened.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.map_full > 0 {
            writeln!(
                out,
                "WARNING: {} map updates failed because a map was full (raise RBT_MAP_KEYS_MAX)",
                self.map_full
            )?;
        }
        if self.recursion_misses > 0 {
            writeln!(
                out,
                "WARNING: {} probe firings were skipped by the kernel because another BPF program was running on \
                 the same CPU (e.g. a tracepoint hit inside an interrupt during a probe)",
                self.recursion_misses
            )?;
        }
        if self.reads_failed > 0 {
            writeln!(
                out,
                "WARNING: {} kernel memory reads failed (invalid pointers); those values read as zero",
                self.reads_failed
            )?;
        }
        if self.stacks_failed > 0 {
            writeln!(
                out,
                "WARNING: {} stack captures failed (hash collisions or a full stack map: raise \
                 RBT_STACK_STORAGE); they print as [stack not captured: ...]",
                self.stacks_failed
            )?;
        }
        if self.entries_unseen > 0 {
            writeln!(
                out,
                "WARNING: {} values known only as a register's value on a function's entry read as zero: the \
                 function was entered before rbt attached",
                self.entries_unseen
            )?;
        }
        if self.unwind_files_left_out > 0 {
            writeln!(
                out,
                "WARNING: the unwind tables of {} files did not fit (raise RBT_UNWIND_ROWS); their user stacks \
                 were walked by frame pointers",
                self.unwind_files_left_out
            )?;
        }
        if self.unwind_processes_left_out > 0 {
            writeln!(
                out,
                "WARNING: {} processes got no unwind tables (too many processes at once); their user stacks were \
                 walked by frame pointers",
                self.unwind_processes_left_out
            )?;
        }
        if self.mapping_records_lost > 0 {
            writeln!(
                out,
                "WARNING: the kernel lost {} records of processes' mappings (a full buffer); processes that \
                 exited early may print addresses instead of symbols",
                self.mapping_records_lost
            )?;
        }
        Ok(())
    }
}
