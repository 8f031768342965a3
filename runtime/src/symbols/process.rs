//! What rbt remembers of a process so that its addresses can be symbolized after it exits: its
//! executable mappings, each tied to an open object file (or to anonymous memory), and its JIT
//! perf map, also held open. While the process lives, an address outside every known mapping
//! (a library loaded since, new JIT code) makes rbt read its maps again.

use std::fs::File;
use std::time::{Duration, Instant};

use super::maps::{self, Backing, Mapping};
use super::objects::{ObjectId, Objects};
use super::perf_map::PerfMap;

/// How often a live process's maps may be read again on a miss. Stacks with a garbage address
/// would otherwise make every lookup reread the maps.
const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// Where an address of the process lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// In an object file, at this offset into the file.
    Object { id: ObjectId, file_offset: u64 },
    /// In executable memory with no file behind it (JIT code): only a perf map can name it.
    Anonymous,
    /// In a file that could not be opened.
    Unreadable,
}

#[derive(Debug)]
struct ImageMapping {
    start: u64,
    end: u64,
    offset: u64,
    object: Option<ObjectId>,
    anonymous: bool,
}

/// One remembered process.
#[derive(Debug)]
pub struct ProcessImage {
    pid: u32,
    start_time: Option<u64>,
    /// Sorted by start address, not overlapping.
    mappings: Vec<ImageMapping>,
    perf_map: Option<PerfMap>,
    last_read: Instant,
    /// When we last looked for a perf map that was not there.
    last_perf_map_search: Instant,
    /// Cleared once the process is found gone: its maps are never read again.
    alive: bool,
}

impl ProcessImage {
    /// Reads the process's maps and opens what they map. Fails only when the process cannot be
    /// read at all (it is gone, or we lack the privilege).
    pub fn capture(pid: u32, objects: &mut Objects) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
        let start_time = read_start_time(pid);
        let mut image = Self {
            pid,
            start_time,
            mappings: Vec::new(),
            perf_map: None,
            last_read: Instant::now(),
            last_perf_map_search: Instant::now(),
            alive: true,
        };
        image.merge(&maps::parse_executable(&text), objects);
        image.open_perf_map();
        Ok(image)
    }

    /// Whether no executable mapping is known.
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// A process already gone, from the mappings the kernel recorded as it made them
    /// (`kernel::mmap_records`).
    pub fn from_records(pid: u32, mappings: &[Mapping], objects: &mut Objects) -> Self {
        let mut image = Self {
            pid,
            start_time: None,
            mappings: Vec::new(),
            perf_map: None,
            last_read: Instant::now(),
            last_perf_map_search: Instant::now(),
            alive: false,
        };
        image.merge(mappings, objects);
        image
    }

    /// Where `addr` lands, reading the maps again (at most every `REFRESH_INTERVAL`) when it is in
    /// none of the known mappings and the process still runs. `None`: in no mapping at all.
    pub fn locate(&mut self, addr: u64, objects: &mut Objects) -> Option<Target> {
        if let Some(target) = self.find(addr) {
            return Some(target);
        }
        if self.alive && self.last_read.elapsed() >= REFRESH_INTERVAL {
            self.reread(objects);
            return self.find(addr);
        }
        None
    }

    /// The executable mappings, in address order, for the unwinder's tables.
    pub fn unwind_mappings(&self) -> Vec<super::unwind::UnwindMapping> {
        self.mappings
            .iter()
            .map(|m| super::unwind::UnwindMapping { start: m.start, end: m.end, offset: m.offset, object: m.object })
            .collect()
    }

    fn find(&self, addr: u64) -> Option<Target> {
        let index = self.mappings.partition_point(|m| m.start <= addr).checked_sub(1)?;
        let mapping = &self.mappings[index];
        if addr >= mapping.end {
            return None;
        }
        Some(match mapping.object {
            Some(id) => Target::Object { id, file_offset: addr - mapping.start + mapping.offset },
            None if mapping.anonymous => Target::Anonymous,
            None => Target::Unreadable,
        })
    }

    /// The JIT symbol covering `addr`, from the perf map (opened now if the runtime created it
    /// since we last looked), with its offset and the map's path.
    pub fn jit_symbol(&mut self, addr: u64) -> Option<(String, u64, String)> {
        if self.perf_map.is_none() && self.alive && self.last_perf_map_search.elapsed() >= REFRESH_INTERVAL {
            self.open_perf_map();
        }
        let map = self.perf_map.as_mut()?;
        let (symbol, offset) = map.lookup(addr)?;
        let name = symbol.name.clone();
        Some((name, offset, map.path.clone()))
    }

    /// Reads the maps again now, if the process still runs.
    pub fn refresh(&mut self, objects: &mut Objects) {
        if self.alive {
            self.reread(objects);
        }
    }

    fn reread(&mut self, objects: &mut Objects) {
        self.last_read = Instant::now();
        let Ok(text) = std::fs::read_to_string(format!("/proc/{}/maps", self.pid)) else {
            self.alive = false;
            return;
        };
        let start_time = read_start_time(self.pid);
        if start_time != self.start_time {
            // The pid now names another process: what we knew belongs to the old one, which
            // is gone. Stacks are recorded by pid alone, so the new process takes over.
            self.start_time = start_time;
            self.mappings.clear();
            self.perf_map = None;
        }
        self.merge(&maps::parse_executable(&text), objects);
    }

    /// Adds mappings read from the maps file; they replace known mappings they overlap (a
    /// library unloaded and another loaded in its place), and the others stay, since stacks
    /// recorded earlier may still point into them.
    fn merge(&mut self, fresh: &[Mapping], objects: &mut Objects) {
        let mut merged: Vec<ImageMapping> = fresh
            .iter()
            .map(|m| ImageMapping {
                start: m.start,
                end: m.end,
                offset: m.offset,
                object: objects.open_mapping(self.pid, m),
                anonymous: matches!(m.backing, Backing::Anonymous),
            })
            .collect();
        let overlaps_fresh = |old: &ImageMapping| fresh.iter().any(|m| m.start < old.end && old.start < m.end);
        merged.extend(self.mappings.drain(..).filter(|old| !overlaps_fresh(old)));
        merged.sort_by_key(|m| m.start);
        self.mappings = merged;
    }

    /// Opens `/tmp/perf-NSPID.map` as the process sees it (inside its own root, named by its pid
    /// in its own pid namespace), else `/tmp/perf-PID.map` in ours (written for it by another
    /// process), as bcc looks for them.
    fn open_perf_map(&mut self) {
        self.last_perf_map_search = Instant::now();
        let pid = self.pid;
        let ns_pid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| maps::parse_namespace_pid(&status))
            .unwrap_or(pid);
        let candidates =
            [(format!("/proc/{pid}/root/tmp/perf-{ns_pid}.map"), ns_pid), (format!("/tmp/perf-{pid}.map"), pid)];
        self.perf_map = candidates
            .into_iter()
            .find_map(|(path, named)| Some(PerfMap::new(File::open(path).ok()?, format!("/tmp/perf-{named}.map"))));
    }
}

fn read_start_time(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|stat| maps::parse_start_time(&stat))
}
