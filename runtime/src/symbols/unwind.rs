//! Unwind tables for the unwinder the compiler writes into probe programs
//! (`compiler::lower::unwind`): when a process first shows up in a user stack, its executable
//! mappings go into the mappings map (a range of entries named by the procs map), and every file
//! they map that has not been seen yet gets its rows (built from its `.eh_frame` by the `unwind`
//! crate) appended to the rows map, where every process mapping the file shares them.
//!
//! Files are the symbolizer's own open objects (`objects.rs`): the mappings are read once per
//! process, for both jobs, and each file once.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use compiler::lower::unwind::{MAPPINGS_MAX, MAPPING_SIZE};

use super::objects::{ObjectId, Objects};
use crate::kernel::sys;

/// The unwinder's maps in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwindMaps {
    pub procs: RawFd,
    pub mappings: RawFd,
    pub rows: RawFd,
    /// Rows the rows map holds.
    pub rows_capacity: u32,
}

/// What loading tables cost and what it could not do, for the report at exit.
#[derive(Debug, Default, Clone)]
pub struct UnwindStats {
    pub processes: u32,
    pub files: u32,
    pub rows: u64,
    /// Files without usable unwind information (they unwind by frame pointers).
    pub files_without_tables: u32,
    /// Files left out because the rows map was full.
    pub files_over_capacity: u32,
    /// Processes left out because the mappings map was full, or failed map writes.
    pub processes_not_loaded: u32,
    pub build_time: Duration,
}

/// One executable mapping of a process: `[start, end)`, the file offset at `start`, the file.
#[derive(Debug, Clone, Copy)]
pub struct UnwindMapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub object: Option<ObjectId>,
}

/// Most mappings one process's entry may hold: what the program's search covers.
const MAPPINGS_PER_PROCESS: usize = 256;

#[derive(Debug)]
pub struct UnwindLoader {
    maps: UnwindMaps,
    /// Each file's rows: `(first, count)`, `None` where it has none.
    files: HashMap<ObjectId, Option<(u32, u32)>>,
    next_row: u32,
    /// Each loaded process's range in the mappings map.
    processes: HashMap<u32, (u32, u32)>,
    /// Free ranges of the mappings map, `(first, count)`, and where unused space begins.
    free: Vec<(u32, u32)>,
    next_mapping: u32,
    pub stats: UnwindStats,
}

impl UnwindLoader {
    pub fn new(maps: UnwindMaps) -> Self {
        Self {
            maps,
            files: HashMap::new(),
            next_row: 0,
            processes: HashMap::new(),
            free: Vec::new(),
            next_mapping: 0,
            stats: UnwindStats::default(),
        }
    }

    pub fn maps(&self) -> UnwindMaps {
        self.maps
    }

    /// Loads `pid`'s mappings (sorted by start), and the rows of files seen for the first time.
    pub fn load_process(&mut self, pid: u32, mappings: &[UnwindMapping], objects: &Objects) {
        let mut entries = Vec::with_capacity(mappings.len().min(MAPPINGS_PER_PROCESS) * MAPPING_SIZE as usize);
        let mut count = 0u32;
        for m in mappings.iter().take(MAPPINGS_PER_PROCESS) {
            let (rows_first, rows_count) = m.object.and_then(|id| self.file_rows(id, objects)).unwrap_or((0, 0));
            entries.extend_from_slice(&m.start.to_le_bytes());
            entries.extend_from_slice(&m.end.to_le_bytes());
            entries.extend_from_slice(&m.offset.to_le_bytes());
            entries.extend_from_slice(&rows_first.to_le_bytes());
            entries.extend_from_slice(&rows_count.to_le_bytes());
            count += 1;
        }
        if count == 0 {
            return;
        }
        let Some(first) = self.allocate(count) else {
            self.stats.processes_not_loaded += 1;
            return;
        };
        let keys: Vec<u8> = (first..first + count).flat_map(u32::to_le_bytes).collect();
        let mut value = first.to_le_bytes().to_vec();
        value.extend_from_slice(&count.to_le_bytes());
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

    /// The rows of one file, built and loaded on first use.
    fn file_rows(&mut self, id: ObjectId, objects: &Objects) -> Option<(u32, u32)> {
        if let Some(known) = self.files.get(&id) {
            return *known;
        }
        let rows = self.build_and_load(id, objects);
        self.files.insert(id, rows);
        rows
    }

    fn build_and_load(&mut self, id: ObjectId, objects: &Objects) -> Option<(u32, u32)> {
        let started = Instant::now();
        let table = objects.read(id).ok().and_then(|bytes| unwind::build(&bytes).ok());
        self.stats.build_time += started.elapsed();
        self.stats.files += 1;
        let Some(table) = table.filter(|t| !t.rows.is_empty()) else {
            self.stats.files_without_tables += 1;
            return None;
        };
        let count = u32::try_from(table.rows.len()).ok()?;
        let first = self.next_row;
        if u64::from(first) + u64::from(count) > u64::from(self.maps.rows_capacity) {
            self.stats.files_over_capacity += 1;
            return None;
        }
        let keys: Vec<u8> = (first..first + count).flat_map(u32::to_le_bytes).collect();
        if sys::update_batch(self.maps.rows, &keys, &table.to_bytes(), count).is_err() {
            self.stats.files_over_capacity += 1;
            return None;
        }
        self.next_row += count;
        self.stats.rows += u64::from(count);
        Some((first, count))
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
