//! Where the catalog's facts come from. A [`Source`] is the catalog's only window on a system:
//! the bytes of files named by their paths on that system (`/sys/kernel/tracing/...`,
//! `/proc/kallsyms`, a binary a uprobe names), directory listings, and the two questions no file
//! answers (whether fentry programs load, a cgroup's id). The runtime implements it over the
//! machine rbt runs on and over a fixture directory (`RBT_SYSROOT`); [`MemSource`] holds files
//! in memory, for tests.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The system a [`Catalog`](crate::Catalog) describes. Paths are absolute, as on that system.
pub trait Source: Sync {
    /// The bytes of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The names of the entries of the directory at `path`, in no particular order.
    fn list(&self, path: &Path) -> io::Result<Vec<String>>;
    /// `path` made absolute with symbolic links resolved: uprobes name binaries by real path.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// The target of the symbolic link at `path`, as written (`/proc/PID/exe` names a process's
    /// executable as that process sees it, whatever mount namespace it is in).
    fn read_link(&self, _path: &Path) -> io::Result<PathBuf> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Loads (and drops) the smallest fentry program for the kernel function of BTF id
    /// `btf_id`: some kernels lack BPF trampolines, others forbid tracing programs (a BPF LSM
    /// policy), and only trying tells.
    fn load_fentry(&self, btf_id: u32) -> io::Result<()>;
    /// The id of the cgroup v2 directory at `path`, as `bpf_get_current_cgroup_id` returns it
    /// for the processes in it.
    fn cgroup_id(&self, path: &Path) -> io::Result<u64>;
}

/// Whether `path` names an entry of its directory (a file or a directory). Entries the source
/// may not list (tracefs without root) do not exist, as `Path::exists` reports them.
pub(crate) fn exists(source: &impl Source, path: &Path) -> bool {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return false };
    // A relative path's first component is an entry of the working directory.
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    source.list(parent).is_ok_and(|names| names.iter().any(|n| *n == *name.to_string_lossy()))
}

/// A system held in memory: files by path (their directories exist implicitly), fentry
/// programs loading or failing with one errno, no cgroups. For tests of the catalog.
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    files: BTreeMap<PathBuf, Vec<u8>>,
    links: BTreeMap<PathBuf, PathBuf>,
    fentry_errno: Option<i32>,
}

impl MemSource {
    /// Adds (or replaces) the file at `path`.
    #[must_use]
    pub fn with_file(mut self, path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.into(), bytes.into());
        self
    }

    /// Adds a symbolic link at `path` pointing to `target` (read by [`Source::read_link`] only).
    #[must_use]
    pub fn with_link(mut self, path: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        self.links.insert(path.into(), target.into());
        self
    }

    /// Makes fentry programs fail to load with `errno`.
    #[must_use]
    pub fn with_fentry_errno(mut self, errno: i32) -> Self {
        self.fentry_errno = Some(errno);
        self
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.files.keys().any(|file| file.starts_with(path) && file != path)
    }
}

impl Source for MemSource {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        if !self.is_dir(path) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|file| file.strip_prefix(path).ok()?.components().next())
            .map(|first| first.as_os_str().to_string_lossy().into_owned())
            .collect();
        names.dedup();
        Ok(names)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        if self.files.contains_key(path) || self.is_dir(path) {
            Ok(path.to_path_buf())
        } else {
            Err(io::ErrorKind::NotFound.into())
        }
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.links.get(path).cloned().ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn load_fentry(&self, _btf_id: u32) -> io::Result<()> {
        self.fentry_errno.map_or(Ok(()), |errno| Err(io::Error::from_raw_os_error(errno)))
    }

    fn cgroup_id(&self, _path: &Path) -> io::Result<u64> {
        Err(io::ErrorKind::NotFound.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_implied_by_their_files() {
        let source = MemSource::default().with_file("/a/b/c", "1").with_file("/a/b/d/e", "2").with_file("/a/x", "3");
        let mut names = source.list(Path::new("/a/b")).expect("a directory");
        names.sort();
        assert_eq!(names, ["c", "d"]);
        assert!(exists(&source, Path::new("/a/b/d")));
        assert!(exists(&source, Path::new("/a/x")));
        assert!(!exists(&source, Path::new("/a/y")));
        assert!(source.list(Path::new("/a/x")).is_err());
        assert_eq!(source.read(Path::new("/a/x")).expect("a file"), b"3");
    }
}
