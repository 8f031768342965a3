//! Stack symbolization: kernel addresses through `/proc/kallsyms`, user addresses of a process
//! through the ELF symbol tables and DWARF of the files it mapped (read with blazesym), the vDSO,
//! and JIT perf maps; and `kaddr()` lookups.
//!
//! ```no_run
//! # use runtime::symbols::Symbolizer;
//! let mut symbols = Symbolizer::new();
//! // As soon as a pid shows up (it may exit before its stacks are printed):
//! symbols.remember(1234).ok();
//! // Later, when printing:
//! for frame in symbols.user(1234, &[0x5555_5555_1234, 0x7fff_f7a0_0000]) {
//!     println!("        {}", frame.bpftrace_text());
//! }
//! for frame in symbols.kernel(&[0xffff_ffff_8100_0000]) {
//!     println!("        {}", frame.bpftrace_text());
//! }
//! ```
//!
//! Unlike bpftrace 0.17, which prints raw addresses for a process that has exited, rbt keeps
//! what it needs from the moment it first sees a pid ([`Symbolizer::remember`]): the executable
//! mappings, and a descriptor for every file they map (opened through
//! `/proc/PID/map_files/`, so deleted files and files in other mount namespaces resolve too).
//!
//! Kernel frames are named as bpftrace 0.17 names them, aliases included (`libstdcxx_sort.rs`).
//! User frames carry name, offset and module ([`Detail::Names`], what bpftrace prints), or also
//! DWARF file, line and inlined calls ([`Detail::Lines`], what `ustack(perf)` prints); each
//! lookup may ask for either. Answers are cached per file offset and detail, so a library's
//! frames are shared by every process that maps it.
//!
//! Files: `kallsyms.rs` (kernel table), `libstdcxx_sort.rs` (bcc's sort order for aliases),
//! `maps.rs` (`/proc/PID/maps` parsing), `objects.rs` (open object files shared by processes,
//! read with blazesym), `process.rs` (one remembered process), `perf_map.rs` (JIT symbols),
//! `frame.rs` (the result and bpftrace's text for it).
//!
//! A `Symbolizer` is not `Send` (blazesym's caches use `Rc`): create it on the thread that
//! prints.

mod frame;
mod kallsyms;
mod libstdcxx_sort;
mod maps;
mod mmap_log;
mod objects;
mod perf_map;
mod process;
mod unwind;
mod unwind_cache;

use std::collections::{HashMap, HashSet};

pub use frame::{Frame, InlinedFrame};

use kallsyms::Kallsyms;
use objects::{ObjectId, ObjectSymbol, Objects};
use process::{ProcessImage, Target};
use unwind::UnwindLoader;
pub use unwind::{UnwindMaps, UnwindStats};

/// By default at most this many user-space answers are cached (about 13 MB with
/// [`Detail::Names`]); past it the cache starts over.
const USER_CACHE_LIMIT: usize = 200_000;

/// How much a user-space frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Detail {
    /// Name, offset and module: what bpftrace prints. DWARF is read only to name functions
    /// the ELF symbol tables lack.
    #[default]
    Names,
    /// Also the source file and line of every frame and the calls inlined at it (reads DWARF
    /// for every address: about twice the time and memory).
    Lines,
}

/// What can go wrong reading the system's symbol sources.
#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    #[error("cannot read /proc/kallsyms: {source}")]
    Kallsyms { source: std::io::Error },
    #[error("/proc/kallsyms lists no addresses (rbt needs root to read them)")]
    KallsymsHidden,
    #[error("cannot read the memory map of process {pid}: {source}")]
    Process { pid: u32, source: std::io::Error },
}

/// Every process running now but this one, oldest first (kernel threads among them: there is
/// nothing to remember of those). Remembered with unwinding enabled, their first stacks find
/// their tables already loaded.
#[must_use]
pub fn running_processes() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> =
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|&pid| pid != me).collect();
    pids.sort_unstable();
    pids
}

/// Symbolizes kernel and user addresses, caching what it reads; see the module docs.
#[derive(Debug)]
pub struct Symbolizer {
    kallsyms: Option<Kallsyms>,
    objects: Objects,
    processes: HashMap<u32, ProcessImage>,
    /// Pids that could not be read when first symbolized (gone before anyone remembered them):
    /// not tried again on every stack.
    unreadable: HashSet<u32>,
    /// Processes remembered in the background whose files' unwind tables are not all built
    /// yet (built a file at a time, between requests).
    unwind_pending: HashSet<u32>,
    user_cache: HashMap<(ObjectId, u64, Detail), Option<ObjectSymbol>>,
    cache_limit: usize,
    /// What [`Symbolizer::user`] asks for.
    detail: Detail,
    /// Loads unwind tables for the programs' unwinder as processes are remembered.
    unwind: Option<UnwindLoader>,
    /// The kernel's records of the mappings every process makes, for processes gone before
    /// they could be read.
    mmap_log: Option<mmap_log::MmapLog>,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    /// A symbolizer for bpftrace's output ([`Detail::Names`]) that has read nothing yet:
    /// kallsyms is read on the first kernel lookup, a process's maps when it is remembered or
    /// first symbolized.
    #[must_use]
    pub fn new() -> Self {
        Self::with_detail(Detail::Names)
    }

    /// A symbolizer whose user frames say as much as `detail` asks (unless a lookup asks for
    /// something else: [`Symbolizer::user_in_detail`]).
    #[must_use]
    pub fn with_detail(detail: Detail) -> Self {
        Self {
            kallsyms: None,
            objects: Objects::new(),
            processes: HashMap::new(),
            unreadable: HashSet::new(),
            unwind_pending: HashSet::new(),
            user_cache: HashMap::new(),
            cache_limit: USER_CACHE_LIMIT,
            detail,
            unwind: None,
            mmap_log: None,
        }
    }

    /// Caches at most `limit` user-space answers (memory against speed; tests use a small one).
    #[must_use]
    pub fn with_cache_limit(mut self, limit: usize) -> Self {
        self.cache_limit = limit;
        self
    }

    /// Reads `/proc/kallsyms` now, or again: kernel modules and BPF programs loaded since the
    /// last read are named from then on. (Otherwise the first kernel lookup reads it, and a
    /// failure only shows as unknown frames.)
    ///
    /// # Errors
    /// The file cannot be read, or its addresses are hidden from us.
    pub fn load_kernel_symbols(&mut self) -> Result<(), SymbolsError> {
        let table = Kallsyms::load().map_err(|source| SymbolsError::Kallsyms { source })?;
        let empty = table.is_empty();
        self.kallsyms = Some(table);
        if empty {
            Err(SymbolsError::KallsymsHidden)
        } else {
            Ok(())
        }
    }

    fn kallsyms(&mut self) -> &Kallsyms {
        if self.kallsyms.is_none() {
            // A failure leaves an empty table, so it is not retried on every lookup.
            let _ = self.load_kernel_symbols();
        }
        self.kallsyms.get_or_insert_with(Kallsyms::default)
    }

    /// Captures what is needed to symbolize `pid`'s addresses after it exits. Only the first
    /// call for a pid does anything; call it as soon as the pid is seen.
    ///
    /// # Errors
    /// The process cannot be read: it has already exited, or we lack the privilege.
    pub fn remember(&mut self, pid: u32) -> Result<(), SymbolsError> {
        if let Some(image) = self.processes.get_mut(&pid) {
            // Announced again: with unwinding, the program saw a pc outside the mappings it
            // was given (code mapped since); read them again and reload.
            if let Some(loader) = &mut self.unwind {
                // Still being loaded in the background: go on with its tables, else read its
                // mappings again.
                if !(loader.background && self.unwind_pending.contains(&pid)) {
                    image.refresh(&mut self.objects);
                }
                loader.load_process(pid, &image.unwind_mappings(), &self.objects);
                if loader.complete {
                    self.unwind_pending.remove(&pid);
                }
            }
            return Ok(());
        }
        let image = match ProcessImage::capture(pid, &mut self.objects) {
            // A process that has exited but is not reaped yet has no mappings left to read.
            Ok(image) if !image.is_empty() => image,
            captured => {
                let source = captured.err().unwrap_or_else(|| std::io::Error::other("no mappings left"));
                // Gone already (a process that lived a millisecond): what the kernel recorded of
                // its mappings, if the records were on.
                let log = self.mmap_log.as_mut().and_then(|log| log.mappings(pid));
                let Some(mappings) = log else { return Err(SymbolsError::Process { pid, source }) };
                let image = ProcessImage::from_records(pid, &mappings, &mut self.objects);
                self.processes.insert(pid, image);
                self.unreadable.remove(&pid);
                return Ok(());
            }
        };
        if let Some(loader) = &mut self.unwind {
            loader.load_process(pid, &image.unwind_mappings(), &self.objects);
        }
        self.processes.insert(pid, image);
        self.unreadable.remove(&pid);
        Ok(())
    }

    /// From now on the kernel records every executable mapping made (on `cpus`), so that
    /// processes gone before they are remembered still symbolize.
    ///
    /// # Errors
    /// The perf events cannot be opened (they need `CAP_PERFMON`).
    pub fn enable_mmap_records(&mut self, cpus: &[u32]) -> std::io::Result<()> {
        if self.mmap_log.is_none() {
            self.mmap_log = Some(mmap_log::MmapLog::open(cpus)?);
        }
        Ok(())
    }

    /// Applies the mapping records written since the last call (call it now and then, so that
    /// the kernel's buffers do not fill).
    pub fn read_mmap_records(&mut self) {
        if let Some(log) = &mut self.mmap_log {
            log.read();
        }
    }

    /// Whether the kernel's mapping records are on ([`Symbolizer::enable_mmap_records`]).
    pub fn records_mappings(&self) -> bool {
        self.mmap_log.is_some()
    }

    /// Mapping records the kernel lost to full buffers so far.
    pub fn mmap_records_lost(&self) -> u64 {
        self.mmap_log.as_ref().map_or(0, |log| log.lost)
    }

    /// From now on every process remembered also gets its unwind tables loaded into `maps`,
    /// for user stacks unwound in the probe programs.
    pub fn enable_unwinding(&mut self, maps: UnwindMaps) {
        // The REPL loads its program again with every entry: the same maps keep their tables.
        if self.unwind.as_ref().is_some_and(|u| u.maps() == maps) {
            return;
        }
        self.unwind = Some(UnwindLoader::new(maps));
    }

    /// Loads the unwind tables of the executable at `path` now, before a process maps it (the
    /// `-c` command, whose first stacks would otherwise come before its tables).
    pub fn preload_unwind_tables(&mut self, path: &std::path::Path) {
        if let Some(loader) = &mut self.unwind {
            if let Some(id) = self.objects.open_path(path) {
                loader.preload(id, &self.objects);
            }
        }
    }

    /// Loads the unwind tables of the libraries this process maps (libc, ld.so, the vDSO),
    /// which most processes map too, so that a new process finds them loaded; not rbt's own
    /// executable.
    pub fn preload_own_libraries(&mut self) {
        let Some(loader) = &mut self.unwind else { return };
        let Ok(text) = std::fs::read_to_string("/proc/self/maps") else { return };
        let exe = std::fs::read_link("/proc/self/exe").ok();
        let me = std::process::id();
        for mapping in maps::parse_executable(&text) {
            let own = matches!(&mapping.backing, maps::Backing::File { path, .. } if Some(path) == exe.as_ref());
            if own {
                continue;
            }
            if let Some(id) = self.objects.open_mapping(me, &mapping) {
                loader.preload(id, &self.objects);
            }
        }
    }

    /// What loading unwind tables has done so far, if it is enabled.
    pub fn unwind_stats(&self) -> Option<UnwindStats> {
        let lost = self.mmap_records_lost();
        match &self.unwind {
            Some(u) => Some(UnwindStats { mapping_records_lost: lost, ..u.stats.clone() }),
            None if lost > 0 => Some(UnwindStats { mapping_records_lost: lost, ..UnwindStats::default() }),
            None => None,
        }
    }

    /// [`Symbolizer::remember`] for a process no stack has named yet: its unwind tables may
    /// not use the rows kept for processes that have, and at most one of its files' tables is
    /// built per call, so that a request never waits behind a big process for long. `Ok(false)`
    /// while some are still to build: call again (a stack naming the process meanwhile builds
    /// the rest at once).
    pub fn remember_in_background(&mut self, pid: u32) -> Result<bool, SymbolsError> {
        let Some(loader) = &mut self.unwind else { return self.remember(pid).map(|()| true) };
        loader.background = true;
        loader.complete = true;
        let remembered = self.remember(pid);
        let Some(loader) = &mut self.unwind else { return remembered.map(|()| true) };
        loader.background = false;
        let complete = loader.complete;
        if complete {
            self.unwind_pending.remove(&pid);
        } else {
            self.unwind_pending.insert(pid);
        }
        remembered.map(|()| complete)
    }

    /// Drops what was remembered of `pid` (its open files stay: other processes may map them).
    pub fn forget(&mut self, pid: u32) {
        self.processes.remove(&pid);
        self.unreadable.remove(&pid);
    }

    /// Whether `pid` was remembered (and not forgotten).
    pub fn remembers(&self, pid: u32) -> bool {
        self.processes.contains_key(&pid)
    }

    /// The object files held open, as `(path, build ID)`: each distinct file once, by the path
    /// the first process that mapped it saw (`[vdso]` for vDSO images).
    pub fn object_files(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.objects.iter().map(|o| (o.name.as_str(), o.build_id.as_deref()))
    }

    /// One frame per kernel address: `name+offset` from kallsyms, and the module for module and
    /// BPF program symbols.
    pub fn kernel(&mut self, addrs: &[u64]) -> Vec<Frame> {
        let table = self.kallsyms();
        addrs
            .iter()
            .map(|&addr| match table.symbolize(addr) {
                Some(location) => Frame {
                    addr,
                    name: Some(location.name.to_owned()),
                    offset: location.offset,
                    module: location.module.map(str::to_owned),
                    kernel: true,
                    ..Frame::default()
                },
                None => Frame::unknown(addr, true),
            })
            .collect()
    }

    /// The address of kernel symbol `name`, as bpftrace's `kaddr()` finds it.
    pub fn kaddr(&mut self, name: &str) -> Option<u64> {
        self.kallsyms().address_of(name)
    }

    /// bpftrace's `ksym(addr)`: the bare name, or `0xADDR`.
    pub fn ksym(&mut self, addr: u64) -> String {
        self.kernel(&[addr]).first().map(Frame::bpftrace_name).unwrap_or_default()
    }

    /// bpftrace's `usym(addr)` for process `pid`: the bare name, or `0xADDR`.
    pub fn usym(&mut self, pid: u32, addr: u64) -> String {
        self.user(pid, &[addr]).first().map(Frame::bpftrace_name).unwrap_or_default()
    }

    /// One frame per address of process `pid`, in the symbolizer's detail: from what was
    /// remembered of it, or, the first time, from the live process (which is then remembered).
    /// A live process's maps are read again when an address falls outside every known mapping.
    /// Addresses in anonymous executable memory are looked up in the process's perf map.
    pub fn user(&mut self, pid: u32, addrs: &[u64]) -> Vec<Frame> {
        self.user_in_detail(pid, addrs, self.detail)
    }

    /// [`Symbolizer::user`] in the given detail.
    pub fn user_in_detail(&mut self, pid: u32, addrs: &[u64], detail: Detail) -> Vec<Frame> {
        let unknown = || addrs.iter().map(|&addr| Frame::unknown(addr, false)).collect();
        if !self.processes.contains_key(&pid) && (self.unreadable.contains(&pid) || self.remember(pid).is_err()) {
            self.unreadable.insert(pid);
            return unknown();
        }
        let Some(image) = self.processes.get_mut(&pid) else { return unknown() };
        let targets: Vec<Option<Target>> = addrs.iter().map(|&addr| image.locate(addr, &mut self.objects)).collect();
        self.fill_user_cache(&targets, detail);
        let Some(image) = self.processes.get_mut(&pid) else { return unknown() };
        addrs
            .iter()
            .zip(targets)
            .map(|(&addr, target)| match target {
                Some(Target::Object { id, file_offset }) => {
                    match self.user_cache.get(&(id, file_offset, detail)).and_then(Option::as_ref) {
                        Some(symbol) => object_frame(addr, symbol, Some(self.objects.get(id).name.clone())),
                        // JIT runtimes that map their code twice (writable, and executable) map
                        // it from a memfd: a file without symbols, named by the perf map. As bcc
                        // does, the frame keeps the file's name if the perf map has nothing.
                        None => jit_frame(image, addr).unwrap_or_else(|| Frame {
                            module: Some(self.objects.get(id).name.clone()),
                            ..Frame::unknown(addr, false)
                        }),
                    }
                }
                Some(Target::Anonymous | Target::Unreadable) | None => {
                    jit_frame(image, addr).unwrap_or_else(|| Frame::unknown(addr, false))
                }
            })
            .collect()
    }

    /// Looks up, one batch per object file, every object offset in `targets` not yet cached.
    fn fill_user_cache(&mut self, targets: &[Option<Target>], detail: Detail) {
        // Start over before looking for what is missing, so that what this stack needs and
        // had cached stays cached.
        if self.user_cache.len() + targets.len() > self.cache_limit {
            self.user_cache.clear();
            self.objects.clear_strings();
        }
        let mut missing: HashMap<ObjectId, Vec<u64>> = HashMap::new();
        for target in targets {
            if let Some(Target::Object { id, file_offset }) = *target {
                if !self.user_cache.contains_key(&(id, file_offset, detail)) {
                    missing.entry(id).or_default().push(file_offset);
                }
            }
        }
        for (id, mut offsets) in missing {
            offsets.sort_unstable();
            offsets.dedup();
            let symbols = self.objects.symbolize(id, &offsets, detail);
            self.user_cache.extend(offsets.into_iter().map(|offset| (id, offset, detail)).zip(symbols));
        }
    }
}

/// A frame named by the process's perf map, if it names `addr`.
fn jit_frame(image: &mut ProcessImage, addr: u64) -> Option<Frame> {
    let (name, offset, path) = image.jit_symbol(addr)?;
    Some(Frame { addr, name: Some(name), offset, module: Some(path), ..Frame::unknown(addr, false) })
}

fn object_frame(addr: u64, symbol: &ObjectSymbol, module: Option<String>) -> Frame {
    let mut frame = Frame {
        addr,
        name: Some(symbol.name.to_string()),
        offset: symbol.offset,
        module,
        ..Frame::unknown(addr, false)
    };
    if let Some(source) = &symbol.source {
        frame.file = source.file.as_deref().map(str::to_owned);
        frame.line = source.line;
        frame.inlined = source
            .inlined
            .iter()
            .map(|f| InlinedFrame {
                name: f.name.to_string(),
                file: f.file.as_deref().map(str::to_owned),
                line: f.line,
            })
            .collect();
    }
    frame
}
