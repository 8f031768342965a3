//! A tracing session: loads a compiled program with aya, attaches every probe, runs BEGIN, reads
//! events until exit, a signal or the end of `-c`'s command, then runs END and prints the maps.
//! Dropping the session detaches everything (aya links are file descriptors).

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use aya::maps::MapData;

use crate::attach::{self, Attachment, ClockRate};
use crate::bpf_sys;
use crate::child::Child;
use crate::event_source::EventSource;
use crate::events::EventDecoder;
use crate::loader::{self, MapTable};
use crate::maps::LoadedMap;
use crate::output::{self, OutputFormat};
use crate::signals::Signals;
use crate::tracefs::Tracefs;
use compiler::hir::{AttachPoint, PerfRate};
use compiler::program::{CompiledProgram, ErrorCounter, MapRole, ProbeProgram};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the kernel rejected the program for probe {probe}")]
    Verifier { probe: String, span: grammar::Span, log: String, insn: Option<usize> },
    #[error("attaching {probe} failed: {source}")]
    Attach { probe: String, #[source] source: io::Error },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One probe's program in the kernel and its attachments (none until [`Session::attach`]).
struct LoadedProbe {
    fd: OwnedFd,
    /// The verifier's statistics, kept for `-v`.
    verifier_stats: Option<String>,
    attachments: Vec<Attachment>,
}

pub struct Session {
    maps: MapTable,
    /// Parallel to `program.probes`.
    probes: Vec<LoadedProbe>,
    pub program: CompiledProgram,
    map_fds: Vec<std::os::fd::RawFd>,
    ncpus: usize,
    /// Maps `zero()` has reset: their zeroed elements still exist and still print.
    zeroed: std::cell::RefCell<Vec<bool>>,
    pub format: OutputFormat,
}

impl Session {
    /// Creates every map and loads every program into the kernel; attaches nothing yet.
    /// Under `verbose` the verifier's statistics are kept for [`Session::write_verbose`].
    pub fn load(program: CompiledProgram, format: OutputFormat, verbose: bool) -> Result<Session, SessionError> {
        let mut maps = MapTable::default();
        maps.create_missing(&program.bpf_maps)?;
        let mut map_fds = Vec::new();
        for m in &program.bpf_maps {
            map_fds.push(maps.fd(&m.name).ok_or_else(|| io::Error::other(format!("map {} missing after load", m.name)))?);
        }
        let mut insns = loader::relocate(&program.elf, &maps)?;
        let mut probes = Vec::with_capacity(program.probes.len());
        for probe in &program.probes {
            let code = insns
                .remove(&probe.name)
                .ok_or_else(|| io::Error::other(format!("program {} missing from the object", probe.name)))?;
            let loaded = loader::load_program(probe, &code, verbose).map_err(|e| verifier_error(probe, e))?;
            probes.push(LoadedProbe { fd: loaded.fd, verifier_stats: loaded.stats, attachments: Vec::new() });
        }
        let ncpus = bpf_sys::possible_cpus()?;
        let zeroed = std::cell::RefCell::new(vec![false; program.maps.len()]);
        Ok(Session { maps, probes, program, map_fds, ncpus, zeroed, format })
    }

    /// Attaches every probe except BEGIN and END; returns how many probes there are in all.
    pub fn attach(&mut self, tracefs: &Tracefs) -> Result<usize, SessionError> {
        let cpus = bpf_sys::cpu_list("online")?;
        for (probe, loaded) in self.program.probes.iter().zip(&mut self.probes) {
            let prog_fd = loaded.fd.as_raw_fd();
            let attached = match &probe.attach {
                AttachPoint::Begin | AttachPoint::End => continue,
                AttachPoint::Tracepoint { category, event, .. } => tracefs
                    .event_id(category, event)
                    .and_then(|id| attach::tracepoint(prog_fd, id))
                    .map(|a| vec![a]),
                AttachPoint::Profile { rate } | AttachPoint::Interval { rate } => {
                    let rate = match *rate {
                        PerfRate::Hz(hz) => ClockRate::Hz(hz),
                        PerfRate::PeriodNs(ns) => ClockRate::PeriodNs(ns),
                    };
                    // profile fires on every CPU; interval on one, as in bpftrace.
                    let on = match probe.attach {
                        AttachPoint::Profile { .. } => &cpus[..],
                        _ => &cpus[..cpus.len().min(1)],
                    };
                    on.iter().map(|&cpu| attach::cpu_clock(prog_fd, cpu, rate)).collect()
                }
            };
            let attached = attached.map_err(|source| SessionError::Attach { probe: probe.attach.probe_name(), source })?;
            loaded.attachments.extend(attached);
        }
        Ok(self.program.probes.len())
    }

    /// Runs every BEGIN (or END) program once.
    pub fn run_special(&mut self, end: bool) -> Result<(), SessionError> {
        let wanted = if end { AttachPoint::End } else { AttachPoint::Begin };
        for (probe, loaded) in self.program.probes.iter().zip(&self.probes) {
            if probe.attach == wanted {
                bpf_sys::test_run(loaded.fd.as_raw_fd())?;
            }
        }
        Ok(())
    }

    /// `-v`: each program's kernel id and the verifier's statistics, laid out as bpftrace's:
    ///
    /// ```text
    ///
    /// Program ID: 18120
    ///
    /// The verifier log: 
    /// processed 10 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
    ///
    /// ```
    pub fn write_verbose(&self, out: &mut dyn Write) -> io::Result<()> {
        for loaded in &self.probes {
            let Some(stats) = &loaded.verifier_stats else { continue };
            let id = program_id(loaded.fd.as_raw_fd()).unwrap_or(0);
            write!(out, "\nProgram ID: {id}\n\nThe verifier log: \n{stats}\n")?;
        }
        Ok(())
    }

    pub fn loaded_map(&self, index: usize) -> LoadedMap<'_> {
        let storage = self.program.map_storage[index];
        LoadedMap {
            decl: &self.program.maps[index],
            bpf: &self.program.bpf_maps[storage],
            fd: self.map_fds[storage],
            ncpus: self.ncpus,
            zeroed: self.zeroed.borrow()[index],
        }
    }

    /// Records that `zero()` or `clear()` ran on a map.
    pub fn set_zeroed(&self, index: usize, zeroed: bool) {
        if let Some(z) = self.zeroed.borrow_mut().get_mut(index) {
            *z = zeroed;
        }
    }

    /// Sums a counter of the errors map over CPUs.
    pub fn error_count(&self, counter: ErrorCounter) -> u64 {
        let Some(i) = self.program.bpf_maps.iter().position(|m| m.role == MapRole::Errors) else { return 0 };
        let mut buf = vec![0u8; 8 * self.ncpus];
        match bpf_sys::lookup(self.map_fds[i], &(counter as u32).to_le_bytes(), &mut buf) {
            Ok(true) => buf.chunks(8).map(|c| crate::maps::read_u64(c, 0)).sum(),
            _ => 0,
        }
    }

    /// A reader of the events, on its own descriptor so it can be read while maps are accessed.
    pub fn events(&self) -> Result<EventSource, SessionError> {
        let missing = || io::Error::other("event map missing");
        let m = self.program.bpf_maps.iter().find(|m| m.role == MapRole::Events).ok_or_else(missing)?;
        let fd = self.maps.fd(&m.name).ok_or_else(missing)?;
        // SAFETY: `fd` is open for as long as `self.maps` is; the clone is a new descriptor.
        let owned = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
        let data = MapData::from_fd(owned).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(if m.map_type == compiler::bpf::helpers::BPF_MAP_TYPE_RINGBUF {
            EventSource::ring(data)?
        } else {
            EventSource::perf(data, &bpf_sys::cpu_list("online")?)?
        })
    }

    /// Every user map, read for the exit dump (bpftrace 0.17 prints empty maps too, as their
    /// terminator line alone).
    pub fn dump_maps(&self) -> io::Result<Vec<output::MapDump>> {
        (0..self.program.maps.len()).map(|i| self.loaded_map(i).dump()).collect()
    }
}

fn verifier_error(probe: &ProbeProgram, e: bpf_sys::ProgLoadError) -> SessionError {
    let log = if e.log.trim().is_empty() { e.error.to_string() } else { e.log };
    let insn = last_insn_in_log(&log);
    let span = insn.and_then(|i| probe.insn_spans.get(i)).copied().unwrap_or(probe.span);
    SessionError::Verifier { probe: probe.attach.probe_name(), span, log, insn }
}

/// The kernel's id of a loaded program, from its descriptor's fdinfo (`prog_id:\t18120`).
fn program_id(fd: std::os::fd::RawFd) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
}

/// The last instruction index the verifier log mentions, e.g. `12: (85) call bpf_...#1`.
fn last_insn_in_log(log: &str) -> Option<usize> {
    log.lines().rev().find_map(|line| {
        let (num, _) = line.split_once(": (")?;
        num.trim().parse().ok()
    })
}

/// Reports events lost to a full buffer as bpftrace does: a `Lost N events` line among the output
/// when new losses are seen (checked every 100 ms at most), and the rest at the end.
#[derive(Default)]
struct LostEvents {
    reported: u64,
    last_check: Option<std::time::Instant>,
}

impl LostEvents {
    fn due(&self) -> bool {
        self.last_check.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(100))
    }

    fn report(&mut self, session: &Session, out: &mut dyn Write) -> io::Result<()> {
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
    tracefs: &Tracefs,
    out: &mut dyn Write,
    quiet: bool,
    mut child: Option<Child>,
) -> Result<(), SessionError> {
    let signals = Signals::block()?;
    let nprobes = session.attach(tracefs)?;
    if !quiet {
        output::write_attached_probes(out, session.format, nprobes as u64)?;
        session.write_verbose(out)?;
        out.flush()?;
    }
    let mut events = session.events()?;
    let event_fds = events.fds();
    let mut lost = LostEvents::default();
    let mut decoder = EventDecoder::new();
    session.run_special(false)?;
    let mut done = decoder.drain(&mut events, &session, out)?;
    out.flush()?;
    if let Some(c) = child.as_mut() {
        if !done {
            c.release()?;
        }
    }
    let has_probes = session
        .program
        .probes
        .iter()
        .any(|p| !matches!(p.attach, AttachPoint::Begin | AttachPoint::End));
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
    // Events still queued when tracing stopped are printed before END runs, as bpftrace does.
    decoder.drain(&mut events, &session, out)?;
    decoder.resume();
    session.run_special(true)?;
    decoder.drain(&mut events, &session, out)?;
    lost.report(&session, out)?;
    let dumps = session.dump_maps()?;
    output::write_exit_dump(out, session.format, &dumps)?;
    out.flush()?;
    let full = session.error_count(ErrorCounter::MapFull);
    if full > 0 {
        eprintln!("WARNING: {full} map updates failed because a map was full (raise RBT_MAP_KEYS_MAX)");
    }
    if let Some(mut c) = child {
        c.kill_and_wait();
    }
    drop(events);
    drop(session);
    Ok(())
}
