//! The probe catalog of the machine rbt runs on: [`HostSource`], the `catalog::Source` over the
//! real `/` (tracefs mounted when it is missing, the fentry test load, cgroup ids), or over a
//! fixture directory standing in for it when `RBT_SYSROOT=DIR` is set ([`DirSource`]), so that
//! the check goldens see the same kernel everywhere. [`open_catalog`] is how the rest of the
//! runtime gets its catalog.

mod dir_source;

use std::io;
use std::path::{Path, PathBuf};

use catalog::{Catalog, Source, DEBUGFS_TRACEFS, TRACEFS};

pub use dir_source::DirSource;

use runtime::kernel::host_calls;

/// The catalog rbt checks scripts against and lists probes from.
pub type HostCatalog = Catalog<HostSource>;

/// What can go wrong finding tracefs.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "tracefs is mounted neither at {TRACEFS} nor at {DEBUGFS_TRACEFS}, and mounting it needs \
         root; run `mount -t tracefs tracefs {TRACEFS}` as root"
    )]
    NotMounted,
    #[error("could not mount tracefs at {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },
}

/// The system the catalog describes: this machine, or a sysroot (`RBT_SYSROOT`).
#[derive(Debug)]
pub enum HostSource {
    Live,
    Sysroot(DirSource),
}

/// The catalog of this machine, or of `$RBT_SYSROOT` when that is set; `$RBT_BTF` (or bpftrace's
/// `$BPFTRACE_BTF`) names another BTF file for the kernel's types; `$BPFTRACE_KERNEL_SOURCE` (and
/// `$BPFTRACE_KERNEL_BUILD`, which defaults to it) the kernel's headers, as for bpftrace.
pub fn open_catalog() -> Result<HostCatalog, HostError> {
    let source = match std::env::var_os("RBT_SYSROOT").filter(|dir| !dir.is_empty()) {
        Some(dir) => HostSource::Sysroot(DirSource::new(dir)),
        None => {
            ensure_tracefs()?;
            HostSource::Live
        }
    };
    let mut catalog = Catalog::new(source);
    if let Some(path) = crate::settings::current().btf.clone() {
        catalog = catalog.with_btf_path(path);
    }
    if let Ok(ksrc) = std::env::var("BPFTRACE_KERNEL_SOURCE") {
        let kobj = std::env::var("BPFTRACE_KERNEL_BUILD").unwrap_or_else(|_| ksrc.clone());
        catalog = catalog.with_kernel_headers(ksrc, kobj);
    }
    Ok(catalog)
}

/// Finds tracefs at `/sys/kernel/tracing`, then `/sys/kernel/debug/tracing`, and mounts it at
/// the first when neither is there and we are root.
fn ensure_tracefs() -> Result<(), HostError> {
    if [TRACEFS, DEBUGFS_TRACEFS].iter().any(|root| Path::new(root).join("available_events").exists()) {
        return Ok(());
    }
    if !host_calls::is_root() {
        return Err(HostError::NotMounted);
    }
    host_calls::mount_tracefs(Path::new(TRACEFS)).map_err(|source| HostError::Mount { path: TRACEFS.into(), source })
}

impl Source for HostSource {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self {
            HostSource::Live => std::fs::read(path),
            HostSource::Sysroot(dir) => dir.read(path),
        }
    }

    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        match self {
            HostSource::Live => dir_source::list(path),
            HostSource::Sysroot(dir) => dir.list(path),
        }
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        match self {
            HostSource::Live => path.canonicalize(),
            HostSource::Sysroot(dir) => dir.canonicalize(path),
        }
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        match self {
            HostSource::Live => std::fs::read_link(path),
            HostSource::Sysroot(dir) => dir.read_link(path),
        }
    }

    fn load_fentry(&self, btf_id: u32) -> io::Result<()> {
        match self {
            HostSource::Live => load_fentry(btf_id),
            HostSource::Sysroot(dir) => dir.load_fentry(btf_id),
        }
    }

    fn cgroup_id(&self, path: &Path) -> io::Result<u64> {
        match self {
            HostSource::Live => host_calls::cgroup_id(path),
            HostSource::Sysroot(dir) => dir.cgroup_id(path),
        }
    }
}

/// Loads (and drops) the smallest fentry program for the function of BTF id `btf_id`.
fn load_fentry(btf_id: u32) -> io::Result<()> {
    runtime::kernel::loader::can_load_fentry(btf_id)
}

#[cfg(test)]
mod tests;
