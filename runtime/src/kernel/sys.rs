//! The bpf(2) commands rbt uses: creating maps, loading programs, links to perf events and
//! multi links, raw tracepoints, element access with keys of any size, BPF_PROG_TEST_RUN for
//! BEGIN and END, and run statistics. Each fills the kernel's own `union bpf_attr`, as aya-obj
//! generates it from the uapi headers, zeroed first: the kernel refuses nonzero bytes past the
//! fields a command uses.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_stats_type};

use super::error::MapError;

/// Kernel object names (`map_name`, `prog_name`) hold 15 bytes and a NUL.
const OBJ_NAME_LEN: usize = aya_obj::generated::BPF_OBJ_NAME_LEN as usize;

fn zeroed_attr() -> bpf_attr {
    // SAFETY: `bpf_attr` is a union of plain integer structs, for which all zeroes is valid.
    unsafe { std::mem::zeroed() }
}

/// Runs a bpf(2) command; returns the kernel's non-negative answer.
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: `attr` is a whole, initialised `union bpf_attr` that lives for the call, and its
    // size is passed along; the pointers inside it point at buffers the callers keep alive.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd as u32, attr as *mut bpf_attr, std::mem::size_of::<bpf_attr>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Runs a bpf(2) command that returns a new file descriptor.
fn bpf_fd(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("bpf(2) returned a bad descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A kernel object name: at most 15 bytes of `[A-Za-z0-9_.]`, the rest dropped.
fn object_name(name: &str) -> [libc::c_char; OBJ_NAME_LEN] {
    let mut out = [0 as libc::c_char; OBJ_NAME_LEN];
    let valid = name.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.');
    for (slot, b) in out.iter_mut().zip(valid.take(OBJ_NAME_LEN - 1)) {
        *slot = b as libc::c_char;
    }
    out
}

fn c_string(text: &str, what: &'static str) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::Error::other(format!("NUL in {what}")))
}

/// The shape of a map to create.
pub struct MapSpec<'a> {
    pub name: &'a str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

pub fn map_create(spec: &MapSpec<'_>) -> Result<OwnedFd, MapError> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_1.map_type = spec.map_type;
    attr.__bindgen_anon_1.key_size = spec.key_size;
    attr.__bindgen_anon_1.value_size = spec.value_size;
    attr.__bindgen_anon_1.max_entries = spec.max_entries;
    attr.__bindgen_anon_1.map_flags = spec.flags;
    attr.__bindgen_anon_1.map_name = object_name(spec.name);
    bpf_fd(bpf_cmd::BPF_MAP_CREATE, &mut attr).map_err(|source| MapError::Create { name: spec.name.to_owned(), source })
}

/// `union bpf_attr` for the element commands: map, key, and the value or next key.
fn elem_attr(fd: RawFd, key: u64, value_or_next_key: u64) -> bpf_attr {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_2.map_fd = fd as u32;
    attr.__bindgen_anon_2.key = key;
    attr.__bindgen_anon_2.__bindgen_anon_1.value = value_or_next_key;
    attr
}

/// Looks up `key`; `value` must be the map's value size (times the CPU count for per-CPU maps).
/// Returns `Ok(false)` when the key is absent.
pub fn lookup(fd: RawFd, key: &[u8], value: &mut [u8]) -> Result<bool, MapError> {
    let mut attr = elem_attr(fd, key.as_ptr() as u64, value.as_mut_ptr() as u64);
    match bpf(bpf_cmd::BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(MapError::Lookup(e)),
    }
}

/// Creates or replaces the element `key`.
pub fn update(fd: RawFd, key: &[u8], value: &[u8]) -> Result<(), MapError> {
    let mut attr = elem_attr(fd, key.as_ptr() as u64, value.as_ptr() as u64);
    bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr).map(drop).map_err(MapError::Update)
}

/// An array map created with `BPF_F_MMAPABLE`, mapped into rbt's memory: its values, back to
/// back, written with plain stores (no system call per batch). The mapping keeps the map alive
/// until it is dropped, even after the map's descriptor is closed.
#[derive(Debug)]
pub struct MappedArray {
    base: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; moving it to another thread moves the
// only handle to it.
unsafe impl Send for MappedArray {}

impl MappedArray {
    /// Maps `bytes` bytes (the map's value size, rounded up to 8, times its entries) of the
    /// array map `fd`.
    pub fn map(fd: RawFd, bytes: usize) -> io::Result<MappedArray> {
        let page = crate::kernel::os::page_size() as usize;
        let len = bytes.div_ceil(page) * page;
        if len == 0 {
            return Err(io::Error::other("an empty map"));
        }
        // SAFETY: a fresh shared mapping of a map's memory; the kernel checks the length and
        // the map's flag, and the result is checked below.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = std::ptr::NonNull::new(base.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(MappedArray { base, len })
    }

    /// Copies `bytes` into the map's memory at byte `offset`.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) -> io::Result<()> {
        let end = offset.checked_add(bytes.len()).filter(|&end| end <= self.len);
        if end.is_none() {
            return Err(io::Error::other(format!(
                "{} bytes at {offset} do not fit a map of {}",
                bytes.len(),
                self.len
            )));
        }
        // SAFETY: `offset..offset + len` lies inside the mapping (checked above), which is
        // writable and not otherwise borrowed from Rust; BPF programs reading it concurrently
        // see bytes, not Rust values.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.as_ptr().add(offset), bytes.len()) };
        Ok(())
    }
}

impl Drop for MappedArray {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped, once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Writes `count` elements at once (`BPF_MAP_UPDATE_BATCH`, Linux 5.6+): `keys` and `values`
/// hold them back to back, `count` keys of the map's key size and as many values. Unwind tables
/// are loaded this way: a library's rows one syscall at a time would take tens of milliseconds.
pub fn update_batch(fd: RawFd, keys: &[u8], values: &[u8], count: u32) -> Result<(), MapError> {
    if count == 0 {
        return Ok(());
    }
    let key_size = keys.len() / count as usize;
    let value_size = values.len() / count as usize;
    if key_size == 0 || !keys.len().is_multiple_of(count as usize) || !values.len().is_multiple_of(count as usize) {
        return Err(MapError::Update(io::Error::other("batch of uneven keys or values")));
    }
    let mut done = 0u32;
    while done < count {
        let mut attr = zeroed_attr();
        let at = done as usize;
        attr.batch.keys = keys[at * key_size..].as_ptr() as u64;
        attr.batch.values = values[at * value_size..].as_ptr() as u64;
        attr.batch.count = count - done;
        attr.batch.map_fd = fd as u32;
        // The kernel writes back how many it updated, also when it stops early.
        let r = bpf(bpf_cmd::BPF_MAP_UPDATE_BATCH, &mut attr);
        // SAFETY: reading the field the kernel wrote back into the union it was handed.
        let updated = unsafe { attr.batch.count };
        match r {
            Ok(_) => done += updated,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) && updated > 0 => done += updated,
            Err(e) => return Err(MapError::Update(e)),
        }
        if updated == 0 {
            return Err(MapError::Update(io::Error::other("batch update made no progress")));
        }
    }
    Ok(())
}

/// Deletes the element `key`; an absent key is no error.
pub fn delete(fd: RawFd, key: &[u8]) -> Result<(), MapError> {
    let mut attr = elem_attr(fd, key.as_ptr() as u64, 0);
    match bpf(bpf_cmd::BPF_MAP_DELETE_ELEM, &mut attr) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(MapError::Delete(e)),
        _ => Ok(()),
    }
}

/// Every key of a hash map (in the kernel's iteration order).
pub fn keys(fd: RawFd, key_size: usize) -> Result<Vec<Vec<u8>>, MapError> {
    let mut keys = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    loop {
        let mut next = vec![0u8; key_size];
        let key = current.as_ref().map_or(0, |k| k.as_ptr() as u64);
        let mut attr = elem_attr(fd, key, next.as_mut_ptr() as u64);
        match bpf(bpf_cmd::BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => {
                keys.push(next.clone());
                current = Some(next);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            Err(e) => return Err(MapError::Keys(e)),
        }
        if keys.len() > 10_000_000 {
            return Err(MapError::Endless);
        }
    }
}

/// Runs a loaded program once with BPF_PROG_TEST_RUN (raw tracepoint programs: BEGIN and END).
pub fn test_run(prog_fd: RawFd) -> io::Result<u32> {
    let ctx = [0u64; 1];
    let mut attr = zeroed_attr();
    attr.test.prog_fd = prog_fd as u32;
    attr.test.ctx_size_in = std::mem::size_of_val(&ctx) as u32;
    attr.test.ctx_in = ctx.as_ptr() as u64;
    bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
    // SAFETY: the kernel wrote the result into the `test` member this command uses.
    Ok(unsafe { attr.test.retval })
}

/// What BPF_PROG_LOAD is asked to load.
pub struct ProgLoad<'a> {
    pub prog_type: u32,
    /// `expected_attach_type`: the attach type of tracing programs and multi links, else 0.
    pub attach_type: u32,
    /// The BTF id of the kernel function a tracing program is loaded for, else 0.
    pub attach_btf_id: u32,
    pub name: &'a str,
    /// Encoded 8-byte instructions.
    pub insns: &'a [u8],
}

/// Loads a program once. `log` receives the verifier's log at `log_level` (0: no log, 1: every
/// instruction walked, 4: statistics; levels add up) when it is not empty.
pub fn prog_load(load: &ProgLoad<'_>, log: &mut [u8], log_level: u32) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_3.prog_type = load.prog_type;
    attr.__bindgen_anon_3.insn_cnt = (load.insns.len() / 8) as u32;
    attr.__bindgen_anon_3.insns = load.insns.as_ptr() as u64;
    attr.__bindgen_anon_3.license = license.as_ptr() as u64;
    attr.__bindgen_anon_3.log_level = if log.is_empty() { 0 } else { log_level };
    attr.__bindgen_anon_3.log_size = log.len() as u32;
    attr.__bindgen_anon_3.log_buf = if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 };
    attr.__bindgen_anon_3.prog_name = object_name(load.name);
    attr.__bindgen_anon_3.expected_attach_type = load.attach_type;
    attr.__bindgen_anon_3.attach_btf_id = load.attach_btf_id;
    bpf_fd(bpf_cmd::BPF_PROG_LOAD, &mut attr)
}

/// Attaches a program to a perf event (tracepoint, timer, counter, uprobe or kprobe) with a BPF
/// link: the attachment lives exactly as long as the returned descriptor.
pub fn link_perf_event(prog_fd: RawFd, perf_fd: RawFd) -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    attr.link_create.__bindgen_anon_1.prog_fd = prog_fd as u32;
    attr.link_create.__bindgen_anon_2.target_fd = perf_fd as u32;
    attr.link_create.attach_type = bpf_attach_type::BPF_PERF_EVENT as u32;
    bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// Attaches `prog_fd` (loaded for `BPF_TRACE_UPROBE_MULTI`, Linux 6.6) to every file offset of
/// `path` at once: one link, registered and (what matters more) unregistered by the kernel in
/// one go. With `pid`, the uprobes fire in that process only.
pub fn link_uprobe_multi(
    prog_fd: RawFd,
    path: &str,
    offsets: &[u64],
    ret: bool,
    pid: Option<u32>,
) -> io::Result<OwnedFd> {
    let path = c_string(path, "a path")?;
    let mut attr = zeroed_attr();
    attr.link_create.__bindgen_anon_1.prog_fd = prog_fd as u32;
    attr.link_create.attach_type = bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32;
    attr.link_create.__bindgen_anon_3.uprobe_multi.path = path.as_ptr() as u64;
    attr.link_create.__bindgen_anon_3.uprobe_multi.offsets = offsets.as_ptr() as u64;
    attr.link_create.__bindgen_anon_3.uprobe_multi.cnt = offsets.len() as u32;
    attr.link_create.__bindgen_anon_3.uprobe_multi.flags =
        if ret { aya_obj::generated::BPF_F_UPROBE_MULTI_RETURN } else { 0 };
    attr.link_create.__bindgen_anon_3.uprobe_multi.pid = pid.unwrap_or(0);
    bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// Attaches `prog_fd` (loaded for `BPF_TRACE_KPROBE_MULTI`, Linux 5.18 with `CONFIG_FPROBE`)
/// to the entry (or, with `ret`, the return) of every function in `functions` at once: one
/// link.
pub fn link_kprobe_multi(prog_fd: RawFd, functions: &[String], ret: bool) -> io::Result<OwnedFd> {
    let names: Vec<CString> = functions.iter().map(|f| c_string(f, "a function name")).collect::<io::Result<_>>()?;
    let pointers: Vec<u64> = names.iter().map(|n| n.as_ptr() as u64).collect();
    let mut attr = zeroed_attr();
    attr.link_create.__bindgen_anon_1.prog_fd = prog_fd as u32;
    attr.link_create.attach_type = bpf_attach_type::BPF_TRACE_KPROBE_MULTI as u32;
    attr.link_create.__bindgen_anon_3.kprobe_multi.flags =
        if ret { aya_obj::generated::BPF_F_KPROBE_MULTI_RETURN } else { 0 };
    attr.link_create.__bindgen_anon_3.kprobe_multi.cnt = pointers.len() as u32;
    attr.link_create.__bindgen_anon_3.kprobe_multi.syms = pointers.as_ptr() as u64;
    bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// Attaches a raw tracepoint program to the tracepoint `name`, or a tracing (fentry/fexit)
/// program, which passes no name, where it was loaded for; detached when the returned
/// descriptor closes.
pub fn raw_tracepoint_open(prog_fd: RawFd, name: Option<&str>) -> io::Result<OwnedFd> {
    let name = name.map(|n| c_string(n, "a tracepoint name")).transpose()?;
    let mut attr = zeroed_attr();
    attr.raw_tracepoint.name = name.as_ref().map_or(0, |n| n.as_ptr() as u64);
    attr.raw_tracepoint.prog_fd = prog_fd as u32;
    bpf_fd(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)
}

/// Turns on the kernel's per-program run counts (`run_cnt` in fdinfo) for as long as the
/// returned descriptor is open, without touching the global `kernel.bpf_stats_enabled` sysctl.
pub fn enable_run_stats() -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    attr.enable_stats.type_ = bpf_stats_type::BPF_STATS_RUN_TIME as u32;
    bpf_fd(bpf_cmd::BPF_ENABLE_STATS, &mut attr)
}
