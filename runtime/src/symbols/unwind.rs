//! Unwind tables for the unwinder the compiler writes into probe programs
//! (`compiler::lower::unwind`): when a process first shows up in a user stack, its executable
//! mappings go into the mappings map (a range of entries named by the procs map), and every file
//! they map that has not been seen yet gets its page index and rows (built from its `.eh_frame`
//! by the `unwind` crate) appended to the rows map, where every process mapping the file shares
//! them.
//!
//! Files are the symbolizer's own open objects (`objects.rs`): the mappings are read once per
//! process, for both jobs, and each file once.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use compiler::lower::unwind::{MAPPINGS_MAX, MAPPING_SIZE, PAGE_SHIFT_AT, PAGE_STEPS, PROC_SIZE};

use super::objects::{ObjectId, Objects};
use super::unwind_cache::TableCache;
use crate::kernel::sys;

/// The unwinder's maps in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwindMaps {
    pub procs: RawFd,
    pub mappings: RawFd,
    pub rows: RawFd,
    /// Entries the rows map holds (rows and page indexes).
    pub rows_capacity: u32,
}

/// What loading tables cost and what it could not do, for the report at exit.
#[derive(Debug, Default, Clone)]
pub struct UnwindStats {
    pub processes: u32,
    pub files: u32,
    /// Files whose tables came from the on-disk cache (`unwind_cache.rs`).
    pub files_from_cache: u32,
    pub rows: u64,
    /// Page index entries, in the same map as rows.
    pub pages: u64,
    /// Files without usable unwind information (they unwind by frame pointers).
    pub files_without_tables: u32,
    /// Files left out because the rows map was full.
    pub files_over_capacity: u32,
    /// Processes left out because the mappings map was full, or failed map writes.
    pub processes_not_loaded: u32,
    pub build_time: Duration,
    /// The kernel's mapping records lost to a full buffer (`kernel::mmap_records`): processes
    /// gone by then may print addresses.
    pub mapping_records_lost: u64,
}

/// One executable mapping of a process: `[start, end)`, the file offset at `start`, the file.
#[derive(Debug, Clone, Copy)]
pub struct UnwindMapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub object: Option<ObjectId>,
}

/// The program's quiet time after a process's first load, and at most (see
/// `compiler::lower::unwind`'s `report_stale_mappings`).
const FIRST_QUIET: Duration = Duration::from_millis(5);
const MAX_QUIET: Duration = Duration::from_secs(1);

/// The largest file whose table is built in the background (see `too_big_for_background`).
const BACKGROUND_FILE_MAX: u64 = 32 << 20;

/// Most mappings one process's entry may hold: what the program's search covers.
const MAPPINGS_PER_PROCESS: usize = 256;

#[derive(Debug)]
pub struct UnwindLoader {
    maps: UnwindMaps,
    /// Each file's table as its mappings name it: where its pages start in the rows map and
    /// the packed page count and shift (see `compiler::lower::unwind`), `None` where it has none.
    files: HashMap<ObjectId, Option<(u32, u32)>>,
    next_row: u32,
    /// Each loaded process's range in the mappings map.
    processes: HashMap<u32, (u32, u32)>,
    /// How long each process's program stays quiet about pcs outside its mappings after the
    /// next load: short at first (ld.so maps libraries just after exec), doubling to a second.
    quiet: HashMap<u32, Duration>,
    /// Free ranges of the mappings map, `(first, count)`, and where unused space begins.
    free: Vec<(u32, u32)>,
    next_mapping: u32,
    /// Loading for a process no stack has named yet (see `file_rows`): at most one file's table
    /// is built per load, and `complete` says whether any were left.
    pub background: bool,
    /// Whether the last load built every table its process needs.
    pub complete: bool,
    /// Tables built by earlier runs, by build id.
    cache: TableCache,
    /// The rows map's memory, where the kernel lets it be mapped; rows are written there
    /// rather than with `BPF_MAP_UPDATE_BATCH`.
    rows_memory: Option<sys::MappedArray>,
    pub stats: UnwindStats,
}

impl UnwindLoader {
    pub fn new(maps: UnwindMaps) -> Self {
        Self {
            maps,
            files: HashMap::new(),
            next_row: 0,
            processes: HashMap::new(),
            quiet: HashMap::new(),
            free: Vec::new(),
            next_mapping: 0,
            background: false,
            complete: true,
            cache: TableCache::from_env(),
            rows_memory: sys::MappedArray::map(maps.rows, maps.rows_capacity as usize * 8).ok(),
            stats: UnwindStats::default(),
        }
    }

    pub fn maps(&self) -> UnwindMaps {
        self.maps
    }

    /// Loads `pid`'s mappings (sorted by start), and the rows of files seen for the first time.
    /// When some files' rows are still to be built, the process is first loaded with the files
    /// whose rows are in already (libc, the program, ld.so: the frames of most stacks), the
    /// others walked by frame pointers meanwhile, and loaded again once they are built.
    pub fn load_process(&mut self, pid: u32, mappings: &[UnwindMapping], objects: &Objects) {
        let mappings = &mappings[..mappings.len().min(MAPPINGS_PER_PROCESS)];
        if mappings.is_empty() {
            return;
        }
        let quiet = self.quiet.get(&pid).map_or(FIRST_QUIET, |q| (*q * 2).min(MAX_QUIET));
        self.quiet.insert(pid, quiet);
        let quiet_until = crate::kernel::os::monotonic_ns().saturating_add(quiet.as_nanos() as u64);
        let pending = mappings.iter().any(|m| m.object.is_some_and(|id| !self.files.contains_key(&id)));
        if pending {
            let known: Vec<(u32, u32)> = mappings
                .iter()
                .map(|m| m.object.and_then(|id| self.files.get(&id).copied().flatten()).unwrap_or((0, 0)))
                .collect();
            self.write_process(pid, mappings, &known, quiet_until);
        }
        let mut budget = if self.background { 1 } else { usize::MAX };
        self.complete = true;
        let mut tables = Vec::with_capacity(mappings.len());
        for m in mappings {
            let table = match m.object {
                // Big files (rustc's LLVM takes a fifth of a second) wait in the background
                // until a stack names their process, unless their tables are on disk.
                Some(id)
                    if !self.files.contains_key(&id) && self.background && self.too_big_for_background(id, objects) =>
                {
                    None
                }
                Some(id) if !self.files.contains_key(&id) && budget == 0 => {
                    self.complete = false;
                    None
                }
                Some(id) => {
                    budget -= usize::from(!self.files.contains_key(&id));
                    self.file_rows(id, objects)
                }
                None => None,
            };
            tables.push(table.unwrap_or((0, 0)));
        }
        self.write_process(pid, mappings, &tables, quiet_until);
    }

    /// Writes `pid`'s mappings, each with its file's table (`(0, 0)` for none), as a new range of
    /// the mappings map, then points the process's entry at it (one update the program sees
    /// whole) and frees the range it had.
    fn write_process(&mut self, pid: u32, mappings: &[UnwindMapping], tables: &[(u32, u32)], quiet_until: u64) {
        let count = mappings.len() as u32;
        let mut entries = Vec::with_capacity(mappings.len() * MAPPING_SIZE as usize);
        for (m, (table, pages)) in mappings.iter().zip(tables) {
            entries.extend_from_slice(&m.start.to_le_bytes());
            entries.extend_from_slice(&m.end.to_le_bytes());
            entries.extend_from_slice(&m.offset.to_le_bytes());
            entries.extend_from_slice(&table.to_le_bytes());
            entries.extend_from_slice(&pages.to_le_bytes());
        }
        let Some(first) = self.allocate(count) else {
            self.stats.processes_not_loaded += 1;
            return;
        };
        let keys: Vec<u8> = (first..first + count).flat_map(u32::to_le_bytes).collect();
        let mut value = Vec::with_capacity(PROC_SIZE as usize);
        value.extend_from_slice(&first.to_le_bytes());
        value.extend_from_slice(&count.to_le_bytes());
        value.extend_from_slice(&quiet_until.to_le_bytes());
        // The mappings first: the program reads them as soon as the process's entry names them.
        let written = sys::update_batch(self.maps.mappings, &keys, &entries, count)
            .and_then(|()| sys::update(self.maps.procs, &pid.to_le_bytes(), &value));
        if written.is_err() {
            self.free.push((first, count));
            self.stats.processes_not_loaded += 1;
            return;
        }
        if let Some(old) = self.processes.insert(pid, (first, count)) {
            self.free.push(old);
        } else {
            self.stats.processes += 1;
        }
    }

    /// Whether building `id`'s table would hold the symbolizer thread too long for background
    /// work: a file over 32 MiB whose table is not on disk.
    fn too_big_for_background(&self, id: ObjectId, objects: &Objects) -> bool {
        let size = objects.read_with(id, |file| file.metadata().map(|m| m.len())).unwrap_or(0);
        let cached = objects.get(id).build_id.as_deref().is_some_and(|b| self.cache.contains(b, size));
        size > BACKGROUND_FILE_MAX && !cached
    }

    /// Builds and loads the rows of a file no process may map yet.
    pub fn preload(&mut self, id: ObjectId, objects: &Objects) {
        self.file_rows(id, objects);
    }

    /// The table of one file (as `files` holds it), built and loaded on first use. While loading in the background
    /// (processes running at start that no stack has named yet), the last quarter of the rows
    /// map is kept for processes that show up in stacks.
    fn file_rows(&mut self, id: ObjectId, objects: &Objects) -> Option<(u32, u32)> {
        if let Some(known) = self.files.get(&id) {
            return *known;
        }
        if self.background && u64::from(self.next_row) * 4 >= u64::from(self.maps.rows_capacity) * 3 {
            return None;
        }
        let rows = self.build_and_load(id, objects);
        self.files.insert(id, rows);
        rows
    }

    fn build_and_load(&mut self, id: ObjectId, objects: &Objects) -> Option<(u32, u32)> {
        let started = Instant::now();
        let build_id = objects.get(id).build_id.clone().filter(|b| !b.is_empty());
        let size = objects.read_with(id, |file| file.metadata().map(|m| m.len())).unwrap_or(0);
        let cached = build_id.as_deref().and_then(|b| self.cache.load(b, size));
        let table = match cached {
            Some(table) => {
                self.stats.files_from_cache += 1;
                Some(table)
            }
            None => {
                let built = objects.read_with(id, cfi_parts).ok().and_then(|bytes| unwind::build(&bytes).ok());
                if let (Some(b), Some(table)) = (&build_id, built.as_ref().filter(|t| !t.rows.is_empty())) {
                    self.cache.store(b, size, table);
                }
                built
            }
        };
        self.stats.build_time += started.elapsed();
        self.stats.files += 1;
        let Some(table) = table.filter(|t| !t.rows.is_empty()) else {
            self.stats.files_without_tables += 1;
            return None;
        };
        let rows = u32::try_from(table.rows.len()).ok()?;
        let index = table.page_index(1 << PAGE_STEPS)?;
        let pages = u32::try_from(index.pages.len()).ok()?;
        let first = self.next_row;
        let count = u64::from(pages) + u64::from(rows);
        if u64::from(first) + count > u64::from(self.maps.rows_capacity) {
            self.stats.files_over_capacity += 1;
            return None;
        }
        // Fits u32: the map's capacity does (and is below the packed page count's 2^27).
        let count = count as u32;
        let mut values = index.to_bytes(first + pages);
        values.extend_from_slice(&table.to_bytes());
        let written = match &mut self.rows_memory {
            Some(memory) => memory.write(first as usize * 8, &values).map_err(|_| ()),
            None => {
                let keys: Vec<u8> = (first..first + count).flat_map(u32::to_le_bytes).collect();
                sys::update_batch(self.maps.rows, &keys, &values, count).map_err(|_| ())
            }
        };
        if written.is_err() {
            self.stats.files_over_capacity += 1;
            return None;
        }
        self.next_row += count;
        self.stats.rows += u64::from(rows);
        self.stats.pages += u64::from(pages);
        Some((first, pages | index.shift << PAGE_SHIFT_AT))
    }

    /// A range of `count` entries of the mappings map: a free one, or new space, or, when the map
    /// is full, space freed from processes that have exited.
    fn allocate(&mut self, count: u32) -> Option<u32> {
        if let Some(found) = self.take_free(count) {
            return Some(found);
        }
        if self.next_mapping + count <= MAPPINGS_MAX {
            self.next_mapping += count;
            return Some(self.next_mapping - count);
        }
        let gone: Vec<u32> = self
            .processes
            .keys()
            .copied()
            .filter(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            .collect();
        for pid in gone {
            self.quiet.remove(&pid);
            if let Some(range) = self.processes.remove(&pid) {
                let _ = sys::delete(self.maps.procs, &pid.to_le_bytes());
                self.free.push(range);
            }
        }
        self.take_free(count)
    }

    fn take_free(&mut self, count: u32) -> Option<u32> {
        let index = self.free.iter().position(|&(_, len)| len >= count)?;
        let (first, len) = self.free[index];
        if len == count {
            self.free.swap_remove(index);
        } else {
            self.free[index] = (first + count, len - count);
        }
        Some(first)
    }
}

/// The parts of an ELF file its unwind tables are built from, at their offsets in a buffer of
/// the file's size whose other bytes stay zero (and, allocated zeroed, untouched): the headers,
/// the section names, the CFI sections and the notes (the build id). A large binary is mostly
/// code and debug information that need not be read.
fn cfi_parts(file: &std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
    let mut bytes = vec![0u8; len];
    let fill = |bytes: &mut [u8], offset: u64, size: u64| -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let end = start.checked_add(usize::try_from(size).map_err(std::io::Error::other)?);
        match end.and_then(|end| bytes.get_mut(start..end)) {
            Some(range) => file.read_exact_at(range, offset),
            None => Err(std::io::Error::other("an ELF header points past the end of the file")),
        }
    };
    fill(&mut bytes, 0, 64.min(len as u64))?;
    let u16_at = |b: &[u8], at: usize| u64::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let u32_at = |b: &[u8], at: usize| u64::from(u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default()));
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    if len < 64 || bytes[..4] != *b"\x7fELF" || bytes[4] != 2 {
        // Not a 64-bit ELF file: the whole of it, for the builder to say what is wrong.
        return fill(&mut bytes, 0, len as u64).map(|()| bytes);
    }
    let (phoff, phentsize, phnum) = (u64_at(&bytes, 0x20), u16_at(&bytes, 0x36), u16_at(&bytes, 0x38));
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(&bytes, 0x28), u16_at(&bytes, 0x3a), u16_at(&bytes, 0x3c), u16_at(&bytes, 0x3e));
    fill(&mut bytes, phoff, phentsize * phnum)?;
    fill(&mut bytes, shoff, shentsize * shnum)?;
    if shentsize < 64 {
        return Ok(bytes);
    }
    let header = |bytes: &[u8], i: u64| -> (u64, u32, u64, u64) {
        let at = (shoff + i * shentsize) as usize;
        (u32_at(bytes, at), u32_at(bytes, at + 4) as u32, u64_at(bytes, at + 0x18), u64_at(bytes, at + 0x20))
    };
    const SHT_NOBITS: u32 = 8;
    const SHT_NOTE: u32 = 7;
    if shstrndx >= shnum {
        return Ok(bytes);
    }
    let (_, strtab_type, strtab_offset, strtab_size) = header(&bytes, shstrndx);
    if strtab_type == SHT_NOBITS {
        return Ok(bytes);
    }
    fill(&mut bytes, strtab_offset, strtab_size)?;
    for i in 0..shnum {
        let (name, kind, offset, size) = header(&bytes, i);
        let name_at = usize::try_from(strtab_offset.saturating_add(name)).unwrap_or(usize::MAX);
        let name = bytes.get(name_at..).and_then(|b| b.split(|&c| c == 0).next()).unwrap_or_default();
        let wanted = matches!(name, b".eh_frame" | b".eh_frame_hdr" | b".debug_frame") || kind == SHT_NOTE;
        if wanted && kind != SHT_NOBITS {
            fill(&mut bytes, offset, size)?;
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts read give the same table as the whole file, for libc and for this test binary
    /// (a large file with debug information).
    #[test]
    fn tables_from_the_parts_read_equal_tables_from_whole_files() {
        let me = std::env::current_exe().expect("the test binary");
        for path in [std::path::Path::new("/lib/x86_64-linux-gnu/libc.so.6"), me.as_path()] {
            let whole = std::fs::read(path).expect("read the file");
            let parts = cfi_parts(&std::fs::File::open(path).expect("open the file")).expect("read its parts");
            assert_eq!(parts.len(), whole.len());
            let (from_whole, from_parts) =
                (unwind::build(&whole).expect("whole"), unwind::build(&parts).expect("parts"));
            assert!(!from_whole.rows.is_empty(), "{}", path.display());
            assert_eq!(from_whole, from_parts, "{}", path.display());
        }
    }

    /// Headers that point anywhere (a file another user wrote) give an error or a table, never
    /// a panic: every count, offset and index of a real header changed in turn.
    #[test]
    fn damaged_headers_are_refused_without_a_panic() {
        let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("read libc");
        let path = std::env::temp_dir().join(format!("rbt-unwind-damaged-{}", std::process::id()));
        for (at, len) in [(0x20, 8), (0x28, 8), (0x36, 2), (0x38, 2), (0x3a, 2), (0x3c, 2), (0x3e, 2)] {
            for value in [0u64, 1, 0x7fff, u64::MAX] {
                let mut damaged = libc.clone();
                damaged[at..at + len].copy_from_slice(&value.to_le_bytes()[..len]);
                std::fs::write(&path, &damaged).expect("write");
                let parts = cfi_parts(&std::fs::File::open(&path).expect("open"));
                if let Ok(parts) = parts {
                    let _ = unwind::build(&parts);
                }
            }
        }
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn files_that_are_not_elf_are_read_whole_for_the_builder_to_refuse() {
        let path = std::env::temp_dir().join(format!("rbt-unwind-parts-{}", std::process::id()));
        std::fs::write(&path, b"#!/bin/sh\necho not an ELF file\n").expect("write");
        let parts = cfi_parts(&std::fs::File::open(&path).expect("open")).expect("read");
        std::fs::remove_file(&path).ok();
        assert_eq!(parts, b"#!/bin/sh\necho not an ELF file\n");
        assert!(unwind::build(&parts).is_err());
    }
}
