//! [`DirSource`]: a fixture directory standing in for `/` (a sysroot, `RBT_SYSROOT=DIR`), laid
//! out as the system is: `DIR/sys/kernel/tracing/available_events`,
//! `DIR/sys/kernel/tracing/events/CAT/EVENT/format`, `DIR/sys/kernel/btf/vmlinux`,
//! `DIR/proc/kallsyms`, `DIR/sys/bus/event_source/devices/kprobe/` and so on. What no file of a
//! real system says comes from `DIR/host/`: `fentry_errno` holds the errno a test load of an
//! fentry program fails with (no file: fentry programs load). The sysroots of the check goldens
//! are `tests/data/catalog/*/`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use catalog::Source;

/// The directories a sysroot holds: the kernel's files (`/sys`, `/proc`), the system's
/// configuration (`/etc`, where the ld.so cache is) and its C headers (so that `#include
/// <sys/socket.h>` in a check golden reads the fixture's, or none, never this machine's). Other
/// paths, the binaries a script names, are read where they are: a test's binaries are built,
/// not committed.
const SYSTEM_DIRS: [&str; 7] =
    ["/sys", "/proc", "/etc", "/usr/include", "/usr/local/include", "/usr/src", "/lib/modules"];

/// A sysroot: the system's files read from a directory.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn is_system(path: &Path) -> bool {
        SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir))
    }

    /// Where the file the system knows as `path` is.
    fn locate(&self, path: &Path) -> PathBuf {
        match path.strip_prefix("/") {
            Ok(relative) if Self::is_system(path) => self.root.join(relative),
            _ => path.to_path_buf(),
        }
    }
}

impl Source for DirSource {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(self.locate(path))
    }

    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        list(&self.locate(path))
    }

    /// A system path names itself (a sysroot's files hold no links); other paths resolve as on
    /// this machine.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        if Self::is_system(path) {
            std::fs::metadata(self.locate(path))?;
            return Ok(path.to_path_buf());
        }
        path.canonicalize()
    }

    /// A link of the system's (`/proc/PID/exe`) is read inside the sysroot, any other where it is.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(self.locate(path))
    }

    fn load_fentry(&self, _btf_id: u32) -> io::Result<()> {
        match std::fs::read_to_string(self.root.join("host/fentry_errno")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(text) => {
                let errno = text.trim().parse().map_err(|_| io::Error::other(format!("bad fentry_errno {text:?}")))?;
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }

    /// The directory's inode number, as cgroup2 gives its directories' ids; a missing one fails
    /// as `name_to_handle_at` does.
    fn cgroup_id(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(self.locate(path))?.ino())
    }
}

/// The names of the entries of the directory at `path`.
pub(super) fn list(path: &Path) -> io::Result<Vec<String>> {
    std::fs::read_dir(path)?.map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned())).collect()
}
