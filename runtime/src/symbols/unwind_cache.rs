//! Unwind tables kept on disk, one file per build id and file size, so that a file's rows are
//! built once per machine rather than once per run: `$XDG_CACHE_HOME/rbt/unwind/`, or
//! `~/.cache/rbt/unwind/`. (The size tells a binary from its stripped copy, which shares its
//! build id but may lack the `.debug_frame` the rows were partly built from.)
//!
//! rbt trusts no file another user controls: the cache is used only inside a directory that
//! this user owns (the cache home), its own directories are this user's with no access for
//! others, and each file is opened without following symbolic links and used only if it is a
//! regular file of this user's. A file is `MAGIC`, the `unwind` crate's format version, the row
//! count, the rows (8 bytes each, as the rows map holds them) and an FNV-1a hash of all that;
//! one that does not check out (truncated, from another version, rows out of order) is ignored
//! and rewritten. Files are written under a temporary name and renamed into place.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use unwind::{Row, UnwindTable};

use crate::kernel::host_calls::euid;

const MAGIC: &[u8; 8] = b"rbtunwnd";
/// Header: magic, format version (u32), row count (u32).
const HEADER: usize = 16;
/// The largest file read: a table of 64 Mi rows.
const MAX_ROWS: usize = 1 << 26;

/// The cache directory, when there is one this user can trust.
#[derive(Debug, Clone)]
pub struct TableCache {
    dir: Option<PathBuf>,
}

impl TableCache {
    /// The cache of this process's environment, its directories made if need be; none where
    /// no cache home is set or it is not this user's.
    pub fn from_env() -> TableCache {
        let home = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")));
        TableCache { dir: home.and_then(|home| cache_dir(&home)) }
    }

    /// A cache in `dir` itself (made if need be), for tests.
    #[cfg(test)]
    pub fn at(dir: &Path) -> TableCache {
        TableCache { dir: own_dir(dir).then(|| dir.to_owned()) }
    }

    #[cfg(test)]
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn path(&self, build_id: &[u8], size: u64) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        if build_id.is_empty() {
            return None;
        }
        let hex: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("{hex}-{size:x}.rows")))
    }

    /// Whether a table is kept for the file of `build_id` and `size` bytes (not whether it is
    /// sound: [`TableCache::load`] checks that).
    pub fn contains(&self, build_id: &[u8], size: u64) -> bool {
        self.path(build_id, size).is_some_and(|path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()))
    }

    /// The table cached for the file of `build_id` and `size` bytes, if a sound one is.
    pub fn load(&self, build_id: &[u8], size: u64) -> Option<UnwindTable> {
        let path = self.path(build_id, size)?;
        let mut file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.uid() != euid() || meta.len() > (HEADER + MAX_ROWS * 8 + 8) as u64 {
            return None;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes).ok()?;
        let rows = decode(&bytes)?;
        Some(UnwindTable { rows, source: unwind::CfiSource::EhFrame, build_id: Some(build_id.to_vec()) })
    }

    /// Keeps `table` for the file of `build_id` and `size` bytes. Failures (a full disk, a
    /// read-only home) only cost the next run a build.
    pub fn store(&self, build_id: &[u8], size: u64, table: &UnwindTable) {
        let Some(path) = self.path(build_id, size) else { return };
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temporary)
            .and_then(|mut file: File| file.write_all(&encode(table)));
        if written.and_then(|()| std::fs::rename(&temporary, &path)).is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
    }
}

/// `home/rbt/unwind`, when `home` is this user's directory (made, and `home`'s own parent
/// present, if need be).
fn cache_dir(home: &Path) -> Option<PathBuf> {
    if !home.exists() {
        let parent = home.parent()?;
        if !is_own_dir(parent) {
            return None;
        }
        DirBuilder::new().mode(0o700).create(home).ok()?;
    }
    if !is_own_dir(home) {
        return None;
    }
    let rbt = home.join("rbt");
    let dir = rbt.join("unwind");
    (own_dir(&rbt) && own_dir(&dir)).then_some(dir)
}

/// Whether `path` is a directory (not a symbolic link) of this user's.
fn is_own_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == euid())
}

/// Makes `path` a directory only this user can use, or checks that it is one: this user's,
/// not a symbolic link, and no access for group or others.
fn own_dir(path: &Path) -> bool {
    if !path.exists() {
        let _ = DirBuilder::new().mode(0o700).create(path);
    }
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_dir() && m.uid() == euid() && m.permissions().mode() & 0o077 == 0)
}

fn encode(table: &UnwindTable) -> Vec<u8> {
    let rows = table.to_bytes();
    let mut bytes = Vec::with_capacity(HEADER + rows.len() + 8);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&unwind::FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(table.rows.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&rows);
    let hash = fnv1a(&bytes);
    bytes.extend_from_slice(&hash.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<Vec<Row>> {
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if bytes.get(..8)? != MAGIC || u32_at(8)? != unwind::FORMAT_VERSION {
        return None;
    }
    let count = u32_at(12)? as usize;
    let end = HEADER.checked_add(count.checked_mul(8)?)?;
    if count == 0 || count > MAX_ROWS || bytes.len() != end + 8 {
        return None;
    }
    let hash = u64::from_le_bytes(bytes[end..].try_into().ok()?);
    if hash != fnv1a(&bytes[..end]) {
        return None;
    }
    let rows: Vec<Row> = (0..count)
        .map(|i| Row { pc: u32_at(HEADER + 8 * i).unwrap_or(0), rule: u32_at(HEADER + 8 * i + 4).unwrap_or(0) })
        .collect();
    rows.windows(2).all(|w| w[0].pc < w[1].pc).then_some(rows)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(u32, u32)]) -> UnwindTable {
        UnwindTable {
            rows: rows.iter().map(|&(pc, rule)| Row { pc, rule }).collect(),
            source: unwind::CfiSource::EhFrame,
            build_id: None,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rbt-unwind-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_stored_table_loads_back() {
        let dir = scratch("round-trip");
        let cache = TableCache::at(&dir);
        assert_eq!(cache.dir(), Some(dir.as_path()));
        let t = table(&[(0x10, 8 << 12), (0x20, 16 << 12), (0x31, 5)]);
        assert!(cache.load(&[1, 2, 3], 4096).is_none());
        assert!(!cache.contains(&[1, 2, 3], 4096));
        cache.store(&[1, 2, 3], 4096, &t);
        assert!(cache.contains(&[1, 2, 3], 4096));
        assert_eq!(cache.load(&[1, 2, 3], 4096).map(|l| l.rows), Some(t.rows));
        assert!(cache.load(&[1, 2, 4], 4096).is_none(), "another build id");
        assert!(cache.load(&[1, 2, 3], 4095).is_none(), "another size");
        let mode = std::fs::metadata(dir.join("010203-1000.rows")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "no access for others: {mode:o}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_files_are_ignored() {
        let good = encode(&table(&[(0x10, 1), (0x20, 2)]));
        assert!(decode(&good).is_some());
        for cut in [0, 7, 16, 20, good.len() - 1] {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        for at in [0, 8, 12, 17, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert!(decode(&bad).is_none(), "byte {at} flipped");
        }
        // Sound bytes whose rows are out of order.
        assert!(decode(&encode(&table(&[(0x20, 1), (0x10, 2)]))).is_none());
        assert!(decode(&encode(&table(&[]))).is_none());
    }

    #[test]
    fn symbolic_links_and_open_directories_are_not_trusted() {
        let dir = scratch("links");
        let cache = TableCache::at(&dir);
        let t = table(&[(0x10, 1)]);
        cache.store(&[9], 1, &t);
        assert!(cache.load(&[9], 1).is_some());
        // A link in place of a cache file is not followed.
        let elsewhere = dir.join("elsewhere");
        std::fs::rename(dir.join("09-1.rows"), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("09-1.rows")).unwrap();
        assert!(cache.load(&[9], 1).is_none());
        // A directory others may write to is no cache.
        let open = scratch("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(TableCache::at(&open).dir(), None);
        // Nor is a link to a directory.
        let link = scratch("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert_eq!(TableCache::at(&link).dir(), None);
        for d in [dir, open, link] {
            let _ = std::fs::remove_dir_all(&d);
            let _ = std::fs::remove_file(&d);
        }
    }
}
