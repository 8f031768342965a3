//! A tracing session's kernel state: the maps, and the programs loaded from a compiled program
//! that may grow. A script loads once; the REPL extends the program entry by entry, loading only
//! the new probes against the maps already there, and detaches probes while the rest run.
//! Everything is held as file descriptors: dropping a probe or the session detaches it.
//!
//! `attach.rs` attaches probes (multi links where the kernel has them, several threads for the
//! rest); `lifecycle.rs` is how tracing runs and ends, for scripts and the REPL alike.

mod attach;
pub mod lifecycle;
mod watch;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::maps::LoadedMap;
use crate::output::{self, OutputFormat};
use crate::stacks::Stacks;
use compiler::hir::AttachPoint;
use compiler::program::{CompiledProgram, ErrorCounter, MapRole, ProbeProgram, ProgramKind, ERROR_COUNTERS};
use runtime::kernel::attach::{self as kattach, Attachment};
use runtime::kernel::event_source::EventSource;
use runtime::kernel::fdinfo::fdinfo_value;
use runtime::kernel::loader::{self, MapTable, MultiLink};
use runtime::kernel::{cpus, os, sys, AttachError, LoadError, MapError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the kernel rejected the program for probe {probe}")]
    Verifier { probe: String, span: grammar::Span, log: String, insn: Option<usize> },
    #[error("attaching {probe} failed: {source}")]
    Attach {
        probe: String,
        #[source]
        source: AttachError,
    },
    #[error("map {name} already exists in the kernel with another layout, which cannot change while the session runs")]
    MapChanged { name: String },
    #[error(transparent)]
    Load(LoadError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One probe's program in the kernel and its attachments (none until [`Session::attach`]).
struct LoadedProbe {
    /// Shared by the probes whose programs are identical (a wildcard's expansions, unless they
    /// use `probe` or `func`): the kernel verifies and holds one copy.
    fd: Arc<OwnedFd>,
    /// The verifier's statistics, kept for `-v`.
    verifier_stats: Option<String>,
    attachments: Vec<Attachment>,
    /// For probes attached together with one uprobe_multi or kprobe_multi link: the probe
    /// holding the link (the group's first). Its attachment serves every probe of the group.
    multi: Option<usize>,
    /// For the leader of such a group, the program's instructions, to load it again for
    /// one-by-one attachment where the kernel has no multi links (a program loaded for them
    /// attaches no other way).
    code: Option<Vec<u8>>,
}

/// What makes two probes' programs one: their kind, the multi link they are loaded for, their
/// instructions.
type ProgramKey<'a> = (ProgramKind, Option<MultiLink>, &'a [u8]);

pub struct Session {
    maps: MapTable,
    /// Parallel to `program.probes`: `None` for a probe that is not loaded (detached).
    probes: Vec<Option<LoadedProbe>>,
    pub program: CompiledProgram,
    /// Descriptor of each of `program.bpf_maps`.
    map_fds: Vec<RawFd>,
    ncpus: usize,
    /// Maps `zero()` has reset: their zeroed elements still exist and still print.
    zeroed: RefCell<Vec<bool>>,
    pub format: OutputFormat,
    /// Keep the verifier's statistics for `-v`.
    verbose: bool,
    /// The stack maps and the symbolizer, for stacks in maps and events.
    pub stacks: Stacks,
    /// `-p PID`: uprobes are opened for that process only.
    pub pid_filter: Option<u32>,
    /// The breakpoints function watchpoints opened as their addresses came (`watch.rs`).
    watches: RefCell<watch::Watches>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut attachments = Vec::new();
        for loaded in self.probes.iter_mut().flatten() {
            attachments.append(&mut loaded.attachments);
        }
        attachments.append(&mut self.watches.get_mut().take_all());
        kattach::detach_all(attachments);
        self.resume_unreported();
    }
}

impl Session {
    /// A session with nothing loaded.
    pub fn new(format: OutputFormat, verbose: bool) -> Result<Session, SessionError> {
        Ok(Session {
            maps: MapTable::default(),
            probes: Vec::new(),
            program: CompiledProgram::default(),
            map_fds: Vec::new(),
            ncpus: cpus::possible_cpus()?,
            zeroed: RefCell::new(Vec::new()),
            format,
            verbose,
            stacks: Stacks::new(Box::new(crate::stacks::Symbols::new())),
            pid_filter: None,
            watches: RefCell::default(),
        })
    }

    /// A session with every probe of `program` loaded (not attached).
    pub fn load(program: CompiledProgram, format: OutputFormat, verbose: bool) -> Result<Session, SessionError> {
        os::raise_open_file_limit();
        let mut session = Session::new(format, verbose)?;
        session.extend(program)?;
        Ok(session)
    }

    /// Replaces the program with `program`, which extends it: its first probes are the current
    /// program's, in order, and its maps keep their names and layouts. Creates the new maps and
    /// loads the new probes; returns their indices. On any error nothing changes.
    pub fn extend(&mut self, program: CompiledProgram) -> Result<Range<usize>, SessionError> {
        let known = self.probes.len();
        for m in &program.bpf_maps {
            if self.maps.layout(&m.name).is_some_and(|old| old != m) {
                let name = match m.name.strip_prefix("AT_") {
                    Some("_") => "@".to_owned(),
                    Some(user) => format!("@{user}"),
                    None => m.name.clone(),
                };
                return Err(SessionError::MapChanged { name });
            }
        }
        let created = self.maps.create_missing(&program.bpf_maps)?;
        let result = self.load_new(&program, known);
        let loaded = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                self.maps.remove(&created);
                return Err(e);
            }
        };
        let mut map_fds = Vec::with_capacity(program.bpf_maps.len());
        for m in &program.bpf_maps {
            map_fds.push(
                self.maps.fd(&m.name).ok_or_else(|| io::Error::other(format!("map {} missing after load", m.name)))?,
            );
        }
        if program.bpf_maps.iter().any(|m| m.role == MapRole::SeenPids) {
            if let Ok(cpus) = runtime::kernel::cpus::cpu_list("online") {
                self.stacks.record_mappings(cpus);
            }
        }
        let unwind_map = |role: MapRole| program.bpf_maps.iter().zip(&map_fds).find(|(m, _)| m.role == role);
        if let (Some((_, &procs)), Some((_, &mappings)), Some((rows_map, &rows))) =
            (unwind_map(MapRole::UnwindProcs), unwind_map(MapRole::UnwindMappings), unwind_map(MapRole::UnwindRows))
        {
            let maps = runtime::symbols::UnwindMaps { procs, mappings, rows, rows_capacity: rows_map.max_entries };
            self.stacks.enable_unwinding(maps);
        }
        for (m, &fd) in program.bpf_maps.iter().zip(&map_fds) {
            match m.role {
                MapRole::Stacks { limit } => self.stacks.set_map(limit, fd),
                MapRole::UserStacks { limit } => self.stacks.set_user_map(limit, fd),
                _ => {}
            }
        }
        self.map_fds = map_fds;
        self.zeroed.borrow_mut().resize(program.maps.len(), false);
        self.probes.extend(loaded.into_iter().map(Some));
        self.watches.get_mut().arm(&program);
        self.program = program;
        Ok(known..self.probes.len())
    }

    /// Whether the programs unwind user stacks themselves (and so want unwind tables).
    pub fn unwinds_user_stacks(&self) -> bool {
        self.program.bpf_maps.iter().any(|m| m.role == MapRole::UnwindProcs)
    }

    /// Loads the probes of `program` from index `from` on.
    fn load_new(&self, program: &CompiledProgram, from: usize) -> Result<Vec<LoadedProbe>, SessionError> {
        let mut insns = loader::relocate(&program.elf, &self.maps).map_err(SessionError::Load)?;
        let mut codes = Vec::new();
        for probe in program.probes.iter().skip(from) {
            let code = insns
                .remove(&probe.name)
                .ok_or_else(|| io::Error::other(format!("program {} missing from the object", probe.name)))?;
            codes.push(code);
        }
        let leader_of = attach::multi_link_groups(program, from, &codes);
        let mut loaded = Vec::new();
        let mut shared: HashMap<ProgramKey, (Arc<OwnedFd>, Option<String>)> = HashMap::new();
        for (i, probe) in program.probes.iter().skip(from).enumerate() {
            let multi = leader_of.get(&(from + i)).copied();
            let link = multi.map(|_| attach::multi_link_of(&probe.attach));
            // Only the group's leader keeps the instructions, for `reload_plain`.
            let code = (multi == Some(from + i)).then(|| codes[i].clone());
            let key = (probe.kind, link, codes[i].as_slice());
            if let Some((fd, stats)) = shared.get(&key) {
                loaded.push(LoadedProbe {
                    fd: fd.clone(),
                    verifier_stats: stats.clone(),
                    attachments: Vec::new(),
                    multi,
                    code,
                });
                continue;
            }
            let prog = loader::load_program(probe.kind, link, &probe.name, &codes[i], self.verbose)
                .map_err(|e| verifier_error(probe, e))?;
            let fd = Arc::new(prog.fd);
            shared.insert(key, (fd.clone(), prog.stats.clone()));
            loaded.push(LoadedProbe { fd, verifier_stats: prog.stats, attachments: Vec::new(), multi, code });
        }
        Ok(loaded)
    }

    /// Every probe index of the program.
    pub fn all(&self) -> Range<usize> {
        0..self.probes.len()
    }

    /// Runs the BEGIN (or END) programs among `range` once each.
    pub fn run_special(&mut self, range: Range<usize>, end: bool) -> Result<(), SessionError> {
        let wanted = if end { AttachPoint::End } else { AttachPoint::Begin };
        for index in range {
            if self.program.probes[index].attach != wanted {
                continue;
            }
            if let Some(loaded) = &self.probes[index] {
                sys::test_run(loaded.fd.as_raw_fd())?;
            }
        }
        Ok(())
    }

    /// Detaches and unloads a probe; its maps stay.
    pub fn detach(&mut self, index: usize) {
        if let Some(slot) = self.probes.get_mut(index) {
            *slot = None;
        }
        kattach::detach_all(self.watches.get_mut().take_probe(index));
    }

    /// How many times the kernel skipped one of `programs` because another BPF program was
    /// running on the same CPU (its recursion protection): those firings are lost.
    fn recursion_misses<'p>(programs: impl Iterator<Item = &'p LoadedProbe>) -> u64 {
        let mut fds: Vec<RawFd> = programs.map(|p| p.fd.as_raw_fd()).collect();
        fds.sort_unstable();
        fds.dedup();
        fds.into_iter().filter_map(|fd| fdinfo_value::<u64>(fd, "recursion_misses")).sum()
    }

    /// Detaches every probe except BEGIN and END (which stay loaded to be run).
    ///
    /// Each perf-event attachment costs the kernel an RCU tasks-trace grace period to detach
    /// (under a global mutex), and a kprobe or uprobe more to unregister: a wildcard's worth are
    /// detached from several threads, and uprobe wildcards use uprobe_multi links (one detach).
    ///
    /// Returns how many firings of the detached probes the kernel skipped for recursion, read
    /// once they are detached: reading `/proc/self/fdinfo` while they were attached would fire
    /// the probes of a script tracing rbt's own system calls (`openat`, `statx`).
    pub fn detach_probes(&mut self) -> u64 {
        let mut attachments = Vec::new();
        let mut detached = Vec::new();
        for (probe, loaded) in self.program.probes.iter().zip(&mut self.probes) {
            if !matches!(probe.attach, AttachPoint::Begin | AttachPoint::End) {
                if let Some(mut l) = loaded.take() {
                    attachments.append(&mut l.attachments);
                    detached.push(l);
                }
            }
        }
        attachments.append(&mut self.watches.get_mut().take_all());
        kattach::detach_all(attachments);
        // No setup uprobe can stop a process any more: none stays stopped.
        self.resume_unreported();
        Self::recursion_misses(detached.iter())
    }

    /// Whether a probe is loaded (and, unless it is BEGIN or END, attached).
    pub fn is_loaded(&self, index: usize) -> bool {
        self.probes.get(index).is_some_and(Option::is_some)
    }

    /// How many times a probe's program ran, from the kernel's statistics, which only count while
    /// [`sys::enable_run_stats`] is in effect.
    pub fn run_count(&self, index: usize) -> Option<u64> {
        let fd = self.probes.get(index)?.as_ref()?.fd.as_raw_fd();
        fdinfo_value(fd, "run_cnt")
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
        for loaded in self.probes.iter().flatten() {
            let Some(stats) = &loaded.verifier_stats else { continue };
            let id = fdinfo_value(loaded.fd.as_raw_fd(), "prog_id").unwrap_or(0);
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
            zeroed: self.zeroed.borrow().get(index).copied().unwrap_or(false),
            stacks: &self.stacks,
        }
    }

    /// Records that `zero()` or `clear()` ran on a map.
    pub fn set_zeroed(&self, index: usize, zeroed: bool) {
        if let Some(z) = self.zeroed.borrow_mut().get_mut(index) {
            *z = zeroed;
        }
    }

    /// Sums a counter of the errors map over CPUs and probes.
    pub fn error_count(&self, counter: ErrorCounter) -> u64 {
        let slots = self.errors_map().map_or(0, |m| m.max_entries / ERROR_COUNTERS);
        (0..slots).map(|slot| self.error_count_in_slot(counter, slot)).sum()
    }

    /// A counter of the errors map for one probe slot (see `LowerOptions::probe_slots`).
    pub fn error_count_in_slot(&self, counter: ErrorCounter, slot: u32) -> u64 {
        let Some(i) = self.program.bpf_maps.iter().position(|m| m.role == MapRole::Errors) else { return 0 };
        let key = slot * ERROR_COUNTERS + counter as u32;
        let mut buf = vec![0u8; 8 * self.ncpus];
        match sys::lookup(self.map_fds[i], &key.to_le_bytes(), &mut buf) {
            Ok(true) => buf.chunks(8).map(|c| crate::maps::read_u64(c, 0)).sum(),
            _ => 0,
        }
    }

    fn errors_map(&self) -> Option<&compiler::program::BpfMap> {
        self.program.bpf_maps.iter().find(|m| m.role == MapRole::Errors)
    }

    /// A reader of the events, on its own descriptor so it can be read while maps are accessed.
    pub fn events(&self) -> Result<EventSource, SessionError> {
        let missing = || io::Error::other("event map missing");
        let m = self.program.bpf_maps.iter().find(|m| m.role == MapRole::Events).ok_or_else(missing)?;
        let fd = self.maps.borrow_fd(&m.name).ok_or_else(missing)?;
        let ring = m.map_type == compiler::bpf::helpers::BPF_MAP_TYPE_RINGBUF;
        let online = if ring { Vec::new() } else { cpus::cpu_list("online")? };
        Ok(EventSource::open(fd, ring, &online)?)
    }

    /// Every user map, read for the exit dump (bpftrace 0.17 prints empty maps too, as their
    /// terminator line alone).
    pub fn dump_maps(&self) -> io::Result<Vec<output::MapDump>> {
        (0..self.program.maps.len()).map(|i| self.loaded_map(i).dump()).collect()
    }
}

/// A rejected program as the verifier's report, at the span of the instruction it stopped at.
fn verifier_error(probe: &ProbeProgram, e: LoadError) -> SessionError {
    let LoadError::Rejected { source, verifier_log, .. } = e else { return SessionError::Load(e) };
    let log = if verifier_log.trim().is_empty() { source.to_string() } else { verifier_log };
    let insn = last_insn_in_log(&log);
    let span = insn.and_then(|i| probe.insn_spans.get(i)).copied().unwrap_or(probe.span);
    SessionError::Verifier { probe: probe.attach.probe_name(), span, log, insn }
}

/// The last instruction index the verifier log mentions, e.g. `12: (85) call bpf_...#1`.
fn last_insn_in_log(log: &str) -> Option<usize> {
    log.lines().rev().find_map(|line| {
        let (num, _) = line.split_once(": (")?;
        num.trim().parse().ok()
    })
}
