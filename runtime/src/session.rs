//! A tracing session: loads a compiled program with aya, attaches every probe, runs BEGIN, reads
//! events until exit, a signal or the end of `-c`'s command, then runs END and prints the maps.
//! Dropping the session detaches everything (aya links are file descriptors).

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::maps::{Map, MapData, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{PerfEvent, ProgramError, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader, VerifierLogLevel};

use crate::bpf_sys;
use crate::child::Child;
use crate::events::EventDecoder;
use crate::maps::LoadedMap;
use crate::output::{self, OutputFormat};
use crate::signals::Signals;
use compiler::hir::{AttachPoint, PerfRate};
use compiler::program::{CompiledProgram, ErrorCounter, MapRole, ProbeProgram};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("loading the BPF object failed: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("the kernel rejected the program for probe {probe}")]
    Verifier { probe: String, span: grammar::Span, log: String, insn: Option<usize> },
    #[error("attaching {probe} failed: {source}")]
    Attach { probe: String, #[source] source: ProgramError },
    #[error("detaching {probe} failed: {source}")]
    Detach { probe: String, #[source] source: ProgramError },
    #[error("{0}")]
    Io(#[from] io::Error),
}

pub struct Session {
    ebpf: Ebpf,
    pub program: CompiledProgram,
    map_fds: Vec<RawFd>,
    ncpus: usize,
    /// Maps `zero()` has reset: their zeroed elements still exist and still print.
    zeroed: std::cell::RefCell<Vec<bool>>,
    pub format: OutputFormat,
}

impl Session {
    /// Loads every program and map into the kernel; attaches nothing yet.
    pub fn load(program: CompiledProgram, format: OutputFormat) -> Result<Session, SessionError> {
        let mut ebpf = EbpfLoader::new()
            // rbt emits no CO-RE relocations, so parsing the kernel's BTF (several MB) is wasted work.
            .btf(None)
            .verifier_log_level(VerifierLogLevel::DEBUG | VerifierLogLevel::STATS)
            .load(&program.elf)
            .map_err(SessionError::Load)?;
        let mut map_fds = Vec::new();
        for m in &program.bpf_maps {
            let fd = ebpf.map(&m.name).and_then(map_data).map(|d| d.fd().as_fd().as_raw_fd());
            map_fds.push(fd.ok_or_else(|| io::Error::other(format!("map {} missing after load", m.name)))?);
        }
        for probe in &program.probes {
            let prog = ebpf
                .program_mut(&probe.name)
                .ok_or_else(|| io::Error::other(format!("program {} missing after load", probe.name)))?;
            let result = match &probe.attach {
                AttachPoint::Begin | AttachPoint::End => {
                    let p: &mut RawTracePoint = prog.try_into().map_err(|e| attach_error(probe, e))?;
                    p.load()
                }
                AttachPoint::Tracepoint { .. } => {
                    let p: &mut TracePoint = prog.try_into().map_err(|e| attach_error(probe, e))?;
                    p.load()
                }
                AttachPoint::Profile { .. } | AttachPoint::Interval { .. } => {
                    let p: &mut PerfEvent = prog.try_into().map_err(|e| attach_error(probe, e))?;
                    p.load()
                }
            };
            if let Err(e) = result {
                return Err(verifier_error(probe, e));
            }
        }
        let ncpus = bpf_sys::possible_cpus()?;
        let zeroed = std::cell::RefCell::new(vec![false; program.maps.len()]);
        Ok(Session { ebpf, program, map_fds, ncpus, zeroed, format })
    }

    /// Attaches every probe except BEGIN and END; returns how many probes there are in all.
    pub fn attach(&mut self) -> Result<usize, SessionError> {
        let cpus = aya::util::online_cpus().map_err(|(_, e)| e)?;
        for probe in &self.program.probes {
            let Some(prog) = self.ebpf.program_mut(&probe.name) else { continue };
            match &probe.attach {
                AttachPoint::Begin | AttachPoint::End => {}
                AttachPoint::Tracepoint { category, event, .. } => {
                    let p: &mut TracePoint = prog.try_into().map_err(|e| attach_error(probe, e))?;
                    p.attach(category, event).map_err(|e| attach_error(probe, e))?;
                }
                AttachPoint::Profile { rate } | AttachPoint::Interval { rate } => {
                    let p: &mut PerfEvent = prog.try_into().map_err(|e| attach_error(probe, e))?;
                    let policy = match rate {
                        PerfRate::Hz(hz) => SamplePolicy::Frequency(*hz),
                        PerfRate::PeriodNs(ns) => SamplePolicy::Period(*ns),
                    };
                    // profile fires on every CPU; interval on one, as in bpftrace.
                    let on: Vec<u32> = match probe.attach {
                        AttachPoint::Profile { .. } => cpus.clone(),
                        _ => cpus.first().copied().into_iter().collect(),
                    };
                    for cpu in on {
                        p.attach(
                            PerfEventConfig::Software(SoftwareEvent::CpuClock),
                            PerfEventScope::AllProcessesOneCpu { cpu },
                            policy,
                            false,
                        )
                        .map_err(|e| attach_error(probe, e))?;
                    }
                }
            }
        }
        Ok(self.program.probes.len())
    }

    /// Detaches and unloads every probe except BEGIN and END, which only run when asked.
    pub fn detach_probes(&mut self) -> Result<(), SessionError> {
        for probe in &self.program.probes {
            let Some(prog) = self.ebpf.program_mut(&probe.name) else { continue };
            let result = match &probe.attach {
                AttachPoint::Begin | AttachPoint::End => continue,
                AttachPoint::Tracepoint { .. } => {
                    let p: &mut TracePoint = prog.try_into().map_err(|e| attach_error(probe, e))?;
                    p.unload()
                }
                AttachPoint::Profile { .. } | AttachPoint::Interval { .. } => {
                    let p: &mut PerfEvent = prog.try_into().map_err(|e| attach_error(probe, e))?;
                    p.unload()
                }
            };
            result.map_err(|source| SessionError::Detach { probe: probe.attach.probe_name(), source })?;
        }
        Ok(())
    }

    /// Runs every BEGIN (or END) program once.
    pub fn run_special(&mut self, end: bool) -> Result<(), SessionError> {
        for probe in &self.program.probes {
            let wanted = if end { AttachPoint::End } else { AttachPoint::Begin };
            if probe.attach != wanted {
                continue;
            }
            let Some(prog) = self.ebpf.program_mut(&probe.name) else { continue };
            let fd = prog.fd().map_err(|e| attach_error(probe, e))?.as_fd().as_raw_fd();
            bpf_sys::test_run(fd)?;
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

    /// The event ring buffer, taken out of the object so it can be read while maps are accessed.
    pub fn take_ringbuf(&mut self) -> Result<RingBuf<MapData>, SessionError> {
        let map = self.ebpf.take_map("rbt_events").ok_or_else(|| io::Error::other("event ring buffer missing"))?;
        RingBuf::try_from(map).map_err(|e| SessionError::Io(io::Error::other(e.to_string())))
    }

    /// Every user map, read for the exit dump (bpftrace 0.17 prints empty maps too, as their
    /// terminator line alone).
    pub fn dump_maps(&self) -> io::Result<Vec<output::MapDump>> {
        (0..self.program.maps.len()).map(|i| self.loaded_map(i).dump()).collect()
    }
}

fn map_data(map: &Map) -> Option<&MapData> {
    Some(match map {
        Map::Array(d) | Map::PerCpuArray(d) | Map::HashMap(d) | Map::PerCpuHashMap(d) | Map::RingBuf(d) | Map::LruHashMap(d) | Map::StackTraceMap(d) => d,
        _ => return None,
    })
}

fn attach_error(probe: &ProbeProgram, source: ProgramError) -> SessionError {
    SessionError::Attach { probe: probe.attach.probe_name(), source }
}

fn verifier_error(probe: &ProbeProgram, e: ProgramError) -> SessionError {
    match e {
        ProgramError::LoadError { verifier_log, io_error } => {
            let log = format!("{verifier_log}");
            let log = if log.trim().is_empty() { io_error.to_string() } else { log };
            let insn = last_insn_in_log(&log);
            let span = insn.and_then(|i| probe.insn_spans.get(i)).copied().unwrap_or(probe.span);
            SessionError::Verifier { probe: probe.attach.probe_name(), span, log, insn }
        }
        other => attach_error(probe, other),
    }
}

/// The last instruction index the verifier log mentions, e.g. `12: (85) call bpf_...#1`.
fn last_insn_in_log(log: &str) -> Option<usize> {
    log.lines().rev().find_map(|line| {
        let (num, _) = line.split_once(": (")?;
        num.trim().parse().ok()
    })
}

/// Runs the whole session: BEGIN, events, END, exit dump. Returns when tracing is over.
pub fn run(
    mut session: Session,
    out: &mut dyn Write,
    quiet: bool,
    mut child: Option<Child>,
) -> Result<(), SessionError> {
    let signals = Signals::block()?;
    let nprobes = session.attach()?;
    if !quiet {
        output::write_attached_probes(out, session.format, nprobes as u64)?;
        out.flush()?;
    }
    let mut ringbuf = session.take_ringbuf()?;
    let mut decoder = EventDecoder::new();
    session.run_special(false)?;
    let mut done = decoder.drain(&mut ringbuf, &session, out)?;
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
        let mut fds = [
            libc::pollfd { fd: ringbuf.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: signals.fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        done = decoder.drain(&mut ringbuf, &session, out)?;
        out.flush()?;
        // An exit() whose record found the ring buffer full still ends tracing.
        if session.error_count(ErrorCounter::ExitLost) > 0 {
            done = true;
        }
        if fds[1].revents != 0 {
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
    // Events still queued when tracing stopped are printed before END runs, as bpftrace does;
    // the probes are detached first so that the queue has an end.
    session.detach_probes()?;
    decoder.drain_all(&mut ringbuf, &session, out)?;
    decoder.resume();
    session.run_special(true)?;
    decoder.drain_all(&mut ringbuf, &session, out)?;
    let lost = session.error_count(ErrorCounter::LostEvents);
    if lost > 0 {
        output::write_lost_events(out, session.format, lost)?;
    }
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
    drop(ringbuf);
    drop(session);
    Ok(())
}
