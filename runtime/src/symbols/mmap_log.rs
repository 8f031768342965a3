//! Every process's executable mappings as the kernel recorded them (`kernel::mmap_records`),
//! replayed per pid: forks copy the parent's, execs start afresh. Read when a process is gone
//! before rbt could read its `/proc/PID/maps`.

use std::collections::HashMap;
use std::path::PathBuf;

use super::maps::{Backing, Mapping};
use crate::kernel::mmap_records::{MmapRecord, MmapRecords};

/// Processes whose mappings are kept at most; past it the log starts over (the processes of
/// interest are the ones that just exited).
const PROCESSES_MAX: usize = 65_536;

pub struct MmapLog {
    records: MmapRecords,
    by_pid: HashMap<u32, Vec<Mapping>>,
    /// Records the kernel could not write (a full buffer).
    pub lost: u64,
}

impl std::fmt::Debug for MmapLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapLog").field("processes", &self.by_pid.len()).field("lost", &self.lost).finish()
    }
}

impl MmapLog {
    pub fn open(cpus: &[u32]) -> std::io::Result<MmapLog> {
        Ok(MmapLog { records: MmapRecords::open(cpus)?, by_pid: HashMap::new(), lost: 0 })
    }

    /// The mappings of `pid` recorded so far, in address order; `None` if it made none.
    pub fn mappings(&mut self, pid: u32) -> Option<Vec<Mapping>> {
        self.read();
        let mut mappings = self.by_pid.get(&pid)?.clone();
        mappings.sort_by_key(|m| m.start);
        Some(mappings)
    }

    /// Applies the records written since the last read.
    pub fn read(&mut self) {
        for record in self.records.read() {
            self.apply(record);
        }
    }

    fn apply(&mut self, record: MmapRecord) {
        if self.by_pid.len() >= PROCESSES_MAX {
            self.by_pid.clear();
        }
        match record {
            MmapRecord::Map { pid, start, len, offset, inode, path } => {
                let backing = if path.starts_with('/') {
                    Backing::File { path: PathBuf::from(path), deleted: false }
                } else {
                    Backing::Anonymous
                };
                let mapping = Mapping { start, end: start.saturating_add(len), offset, inode, backing };
                let list = self.by_pid.entry(pid).or_default();
                // A mapping replaces what it overlaps (mmap over an old mapping).
                list.retain(|m| m.end <= mapping.start || mapping.end <= m.start);
                list.push(mapping);
            }
            MmapRecord::Fork { pid, parent } => {
                let inherited = self.by_pid.get(&parent).cloned().unwrap_or_default();
                self.by_pid.insert(pid, inherited);
            }
            MmapRecord::Exec { pid } => {
                self.by_pid.insert(pid, Vec::new());
            }
            MmapRecord::Lost(n) => self.lost += n,
        }
    }
}
