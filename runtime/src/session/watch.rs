//! Function watchpoints at run time (`watchpoint:FUNCTION+argN:LENGTH:MODE`), as bpftrace 0.17
//! runs them. The probe's program is loaded with the others but attached to nothing at first;
//! its hidden setup uprobe on FUNCTION reports each new address argN holds
//! (`EventKind::Watch`), having stopped the process (SIGSTOP) unless the watchpoint is
//! asynchronous. For each, [`Session::watch`] opens a hardware breakpoint on that address in
//! that process, attaches the probe's program to it and lets the process continue (SIGCONT).
//! An address is watched once per probe (the setup uprobe remembers it, in `rbt_watched`, and
//! so does the runtime); `unwatch(ADDR)` closes every breakpoint on ADDR.
//!
//! A stopped process must never stay stopped: each record resumes its process however opening
//! the breakpoint went, even after `exit()` or once the probe is detached; when the session
//! ends, every stop whose record never arrived (the setup uprobe's map says which) is resumed;
//! and should rbt die before that, a guard process ([`ResumeGuard`]) resumes the process.

use std::collections::HashSet;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

use super::Session;
use crate::output::{self, MessageKind};
use compiler::hir::{AttachPoint, FunctionWatch};
use compiler::program::MapRole;
use runtime::kernel::attach::{self as kattach, Attachment, Breakpoint};
use runtime::kernel::process::{self, Pid, ResumeGuard};
use runtime::kernel::{sys, AttachError};

/// The message bpftrace 0.17 prints when a breakpoint cannot be had.
const OUT_OF_REGISTERS: &[u8] = b"Failed to attach watchpoint probe. You are out of watchpoint registers.";

/// The breakpoints function watchpoints opened, and what keeps stopped processes from staying so.
#[derive(Default)]
pub(super) struct Watches {
    open: Vec<OpenWatch>,
    /// The (probe, address) pairs handled, whether their breakpoint opened or not.
    handled: HashSet<(usize, u64)>,
    /// Resumes the watched process if rbt dies first; only with synchronous watchpoints.
    guard: Option<ResumeGuard>,
}

struct OpenWatch {
    probe: usize,
    address: u64,
    attachments: Vec<Attachment>,
}

impl Watches {
    /// Starts the guard when `program` has synchronous function watchpoints of a process, if
    /// none is running (the REPL extends its program, and ends it more than once).
    pub(super) fn arm(&mut self, program: &compiler::program::CompiledProgram) {
        if self.guard.is_some() {
            return;
        }
        let pid = program.probes.iter().find_map(|p| match &p.attach {
            AttachPoint::FunctionWatchpoint(w) if !w.asynchronous => w.pid.filter(|&pid| pid > 0),
            _ => None,
        });
        if let Some(pid) = pid.and_then(|pid| Pid::try_from(pid).ok()) {
            // Without a guard only rbt's death by SIGKILL could leave the process stopped;
            // tracing goes on.
            self.guard = ResumeGuard::spawn(pid).ok();
        }
    }

    /// Every open breakpoint, closed by dropping them.
    pub(super) fn take_all(&mut self) -> Vec<Attachment> {
        self.open.drain(..).flat_map(|w| w.attachments).collect()
    }

    /// The breakpoints of probe `index`.
    pub(super) fn take_probe(&mut self, index: usize) -> Vec<Attachment> {
        let (closed, kept) = self.open.drain(..).partition(|w| w.probe == index);
        self.open = kept;
        closed.into_iter().flat_map(|w: OpenWatch| w.attachments).collect()
    }
}

impl Session {
    /// The probes bpftrace 0.17 counts in "Attaching N probes...": every one but function
    /// watchpoints, which attach as their addresses come (their setup uprobes count), and the
    /// uprobes rbt adds to keep entry values, which are not the script's.
    pub fn attach_count(&self) -> usize {
        self.all()
            .filter(|&i| {
                let probe = &self.program.probes[i];
                !matches!(probe.attach, AttachPoint::FunctionWatchpoint(_)) && !probe.keeps_entry_values
            })
            .count()
    }

    fn function_watch(&self, probe: usize) -> Option<&FunctionWatch> {
        match &self.program.probes.get(probe)?.attach {
            AttachPoint::FunctionWatchpoint(w) => Some(w),
            _ => None,
        }
    }

    /// A setup uprobe's record: watch `address` in process `pid` with probe `probe`'s program,
    /// then let the process continue. A register shortage is bpftrace's message on `out`, and
    /// tracing goes on; other failures are warned of on stderr.
    pub fn watch(&self, probe: usize, address: u64, pid: u32, out: &mut dyn Write) -> io::Result<()> {
        let Some(watch) = self.function_watch(probe) else { return Ok(()) };
        let opened = self.open_watch(probe, watch, address, pid);
        if !watch.asynchronous {
            if let Ok(pid) = Pid::try_from(pid) {
                process::resume(pid);
            }
        }
        match opened {
            Ok(()) => Ok(()),
            Err(AttachError::NoWatchpointRegisters) => {
                output::write_message(out, self.format, MessageKind::Lost, OUT_OF_REGISTERS)
            }
            Err(e) => {
                out.flush()?;
                eprintln!("WARNING: cannot watch {address:#x} for {}: {e}", watch_name(watch));
                Ok(())
            }
        }
    }

    /// A record that comes after `exit()`: nothing is watched any more, but a stopped process
    /// still has to go on.
    pub fn watch_after_exit(&self, probe: usize, address: u64, pid: u32) {
        let Some(watch) = self.function_watch(probe) else { return };
        self.watches.borrow_mut().handled.insert((probe, address));
        if let (false, Ok(pid)) = (watch.asynchronous, Pid::try_from(pid)) {
            process::resume(pid);
        }
    }

    fn open_watch(&self, probe: usize, watch: &FunctionWatch, address: u64, pid: u32) -> Result<(), AttachError> {
        // Detached (tracing is ending), or this address is watched already.
        let Some(loaded) = self.probes.get(probe).and_then(Option::as_ref) else { return Ok(()) };
        if !self.watches.borrow_mut().handled.insert((probe, address)) {
            return Ok(());
        }
        let bp = Breakpoint { address, len: watch.len, mode: &watch.mode, pid: Some(pid) };
        let attachments = kattach::breakpoint(loaded.fd.as_raw_fd(), &bp, &[])?;
        self.watches.borrow_mut().open.push(OpenWatch { probe, address, attachments });
        Ok(())
    }

    /// `unwatch(ADDR)`: closes every breakpoint on `address` (none is no error). The address
    /// stays known, so that a later call with it does not watch it again, as in bpftrace 0.17.
    pub fn unwatch(&self, address: u64) {
        let closed: Vec<OpenWatch> = {
            let mut watches = self.watches.borrow_mut();
            let (closed, kept) = watches.open.drain(..).partition(|w| w.address == address);
            watches.open = kept;
            closed
        };
        kattach::detach_all(closed.into_iter().flat_map(|w| w.attachments).collect());
    }

    /// At the session's end, with the setup uprobes gone: resumes each process stopped for an
    /// address whose record was never handled (the setup uprobe's map holds every address
    /// reported, with its process), then disarms the guard.
    pub(super) fn resume_unreported(&mut self) {
        let Some(map) = self.program.bpf_maps.iter().position(|m| m.role == MapRole::Watched) else { return };
        let fd = self.map_fds[map];
        let mut stopped = HashSet::new();
        for key in sys::keys(fd, 16).unwrap_or_default() {
            let word =
                |at: usize| key.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            let (probe, address) = (word(0) as usize, word(8));
            let sync = self.function_watch(probe).is_some_and(|w| !w.asynchronous);
            if !sync || self.watches.get_mut().handled.contains(&(probe, address)) {
                continue;
            }
            let mut value = [0u8; 8];
            if sys::lookup(fd, &key, &mut value).unwrap_or(false) {
                stopped.insert(u64::from_le_bytes(value));
            }
        }
        for pid in stopped {
            if let Ok(pid) = Pid::try_from(pid) {
                process::resume(pid);
            }
        }
        if let Some(mut guard) = self.watches.get_mut().guard.take() {
            guard.disarm();
        }
    }
}

/// A function watchpoint as written, for messages: `watchpoint:increment+arg1:4:w`.
fn watch_name(w: &FunctionWatch) -> String {
    let kind = if w.asynchronous { "asyncwatchpoint" } else { "watchpoint" };
    format!("{kind}:{}+arg{}:{}:{}", w.func, w.arg, w.len, w.mode)
}
