//! The system calls the catalog's host source makes (`host::HostSource`): whether rbt runs as
//! root (and as whom, for the files it trusts), mounting tracefs, and cgroup ids through `name_to_handle_at`. The unsafe code they need
//! lives here, with the runtime's other kernel calls.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// Whether rbt runs as root (effective user id 0), which mounting tracefs needs.
pub fn is_root() -> bool {
    euid() == 0
}

/// rbt's effective user id: whose files it trusts.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Mounts tracefs at `path`.
pub fn mount_tracefs(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, and tracefs takes
    // no mount data.
    let rc = unsafe { libc::mount(c"tracefs".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The id of the cgroup v2 directory at `path`: the 8-byte file handle the kernel's cgroup2
/// filesystem gives (`struct file_handle` with `handle_bytes` 8), which `bpf_get_current_cgroup_id`
/// returns for processes in it.
pub fn cgroup_id(path: &Path) -> io::Result<u64> {
    #[repr(C)]
    struct FileHandle {
        handle_bytes: u32,
        handle_type: i32,
        id: u64,
    }
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| io::Error::other("NUL in a path"))?;
    let mut handle = FileHandle { handle_bytes: 8, handle_type: 0, id: 0 };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `c_path` is NUL-terminated, `handle` is a file_handle with room for the 8 bytes
    // its `handle_bytes` announces, and both outlive the call.
    let r = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            (&mut handle as *mut FileHandle).cast(),
            &mut mount_id,
            0,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        // A larger handle: not a cgroup2 directory.
        if e.raw_os_error() == Some(libc::EOVERFLOW) {
            return Err(io::Error::other("not a cgroup v2 directory"));
        }
        return Err(e);
    }
    Ok(handle.id)
}
