//! Thin wrappers over the bpf(2) commands rbt uses directly: creating maps, loading programs,
//! linking them to perf events, element access with keys of any size, and BPF_PROG_TEST_RUN for
//! BEGIN and END programs.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// `union bpf_attr` for the map element commands.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

/// `union bpf_attr` for BPF_PROG_TEST_RUN.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<()> {
    // SAFETY: `attr` is a properly laid out, fully initialised `union bpf_attr` prefix that lives
    // for the whole call, and its size is passed along.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Looks up `key`; `value` must be the map's value size (times the CPU count for per-CPU maps).
/// Returns `Ok(false)` when the key is absent.
pub fn lookup(fd: RawFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_mut_ptr() as u64,
        ..MapElemAttr::default()
    };
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn update(fd: RawFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_ptr() as u64,
        flags: 0,
        ..MapElemAttr::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
}

pub fn delete(fd: RawFd, key: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr { map_fd: fd as u32, key: key.as_ptr() as u64, ..MapElemAttr::default() };
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Every key of a hash map (in the kernel's iteration order).
pub fn keys(fd: RawFd, key_size: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    loop {
        let mut next = vec![0u8; key_size];
        let mut attr = MapElemAttr {
            map_fd: fd as u32,
            key: current.as_ref().map_or(0, |k| k.as_ptr() as u64),
            value_or_next_key: next.as_mut_ptr() as u64,
            ..MapElemAttr::default()
        };
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(()) => {
                keys.push(next.clone());
                current = Some(next);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            Err(e) => return Err(e),
        }
        if keys.len() > 10_000_000 {
            return Err(io::Error::other("map iteration did not terminate"));
        }
    }
}

/// Runs a loaded program once with BPF_PROG_TEST_RUN (raw tracepoint programs: BEGIN and END).
pub fn test_run(prog_fd: RawFd) -> io::Result<u32> {
    let ctx = [0u64; 1];
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        ctx_size_in: std::mem::size_of_val(&ctx) as u32,
        ctx_in: ctx.as_ptr() as u64,
        ..TestRunAttr::default()
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(attr.retval)
}

/// Number of possible CPUs: per-CPU map values hold one slot for each.
pub fn possible_cpus() -> io::Result<usize> {
    Ok(cpu_list("possible")?.len())
}

/// The CPUs of `/sys/devices/system/cpu/{possible,online}`.
pub fn cpu_list(which: &str) -> io::Result<Vec<u32>> {
    parse_cpu_list(&std::fs::read_to_string(format!("/sys/devices/system/cpu/{which}"))?)
}

/// The CPUs of a kernel CPU list such as `0-1` or `0,2-3`.
pub fn parse_cpu_list(text: &str) -> io::Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let mut ends = part.split('-').map(|n| n.trim().parse::<u32>());
        match (ends.next(), ends.next(), ends.next()) {
            (Some(Ok(a)), Some(Ok(b)), None) if a <= b => cpus.extend(a..=b),
            (Some(Ok(a)), None, None) => cpus.push(a),
            _ => return Err(io::Error::other(format!("cannot parse the CPU list {text:?}"))),
        }
    }
    Ok(cpus)
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

/// Kernel object names (`map_name`, `prog_name`) hold 15 bytes and a NUL.
const BPF_OBJ_NAME_LEN: usize = 16;

/// `union bpf_attr` for BPF_MAP_CREATE, up to `map_name` (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; BPF_OBJ_NAME_LEN],
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; BPF_OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    /// Explicit, so that it is zero rather than padding: the kernel reads it (and refuses
    /// nonzero bytes past the fields it knows).
    core_relo_cnt: u32,
}

/// `BPF_PROG_TYPE_TRACING` and its `enum bpf_attach_type`s: fentry and fexit programs.
pub const BPF_PROG_TYPE_TRACING: u32 = 26;
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_TRACE_FEXIT: u32 = 25;

/// What a tracing program attaches to: a kernel function by its BTF id (in vmlinux's BTF).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttachTarget {
    pub attach_type: u32,
    pub btf_id: u32,
}

/// `union bpf_attr` for BPF_LINK_CREATE of a perf event link (`perf_event.bpf_cookie`).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
}

/// `enum bpf_attach_type`: BPF_PERF_EVENT, for links to perf events.
const BPF_PERF_EVENT: u32 = 41;

/// Runs a bpf(2) command that returns a new file descriptor.
fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: as in `bpf`; a non-negative result is a new descriptor that nothing else owns.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the kernel just returned this descriptor to us.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }
}

/// A kernel object name: at most 15 bytes of `[A-Za-z0-9_.]`, the rest dropped.
fn object_name(name: &str) -> [u8; BPF_OBJ_NAME_LEN] {
    let mut out = [0u8; BPF_OBJ_NAME_LEN];
    let valid = name.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.');
    for (slot, b) in out.iter_mut().zip(valid.take(BPF_OBJ_NAME_LEN - 1)) {
        *slot = b;
    }
    out
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

pub fn map_create(spec: &MapSpec<'_>) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: spec.map_type,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: spec.flags,
        map_name: object_name(spec.name),
        ..MapCreateAttr::default()
    };
    bpf_fd(BPF_MAP_CREATE, &mut attr)
}

/// Why BPF_PROG_LOAD failed: the error and, when the verifier spoke, its log.
pub struct ProgLoadError {
    pub error: io::Error,
    pub log: String,
}

/// A loaded program and, when asked for, the verifier's statistics line
/// (`processed 10 insns (limit 1000000) max_states_per_insn 0 total_states 0 ...`).
pub struct LoadedProg {
    pub fd: OwnedFd,
    pub stats: Option<String>,
}

/// Loads a program. `insns` are encoded 8-byte instructions. The first attempt asks for no log,
/// or for statistics only under `stats`; a rejected program is loaded again with the verifier's
/// whole log so the caller can show why. Kernels since 6.4 keep the log's tail when it
/// overflows; older ones fail with ENOSPC, so the buffer grows until the log fits.
pub fn prog_load(
    prog_type: u32,
    name: &str,
    insns: &[u8],
    kern_version: u32,
    stats: bool,
    target: Option<AttachTarget>,
) -> Result<LoadedProg, ProgLoadError> {
    let license = b"GPL\0";
    let attempt = |log: &mut [u8], log_level: u32| {
        let mut attr = ProgLoadAttr {
            prog_type,
            insn_cnt: (insns.len() / 8) as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level,
            log_size: log.len() as u32,
            log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
            kern_version,
            prog_name: object_name(name),
            expected_attach_type: target.map_or(0, |t| t.attach_type),
            attach_btf_id: target.map_or(0, |t| t.btf_id),
            ..ProgLoadAttr::default()
        };
        let result = bpf_fd(BPF_PROG_LOAD, &mut attr);
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        (result, String::from_utf8_lossy(&log[..end]).into_owned())
    };
    // Log level 4: statistics only; 1: every instruction the verifier walks.
    let (first, log) = if stats { attempt(&mut vec![0u8; 4096], 4) } else { attempt(&mut [], 0) };
    let first = match first {
        Ok(fd) => return Ok(LoadedProg { fd, stats: stats.then_some(log) }),
        Err(e) => e,
    };
    let mut size = 1 << 20;
    loop {
        let (result, log) = attempt(&mut vec![0u8; size], 1 | 4);
        match result {
            // Loaded the second time: report the first failure with this log.
            Ok(_) => return Err(ProgLoadError { error: first, log }),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < (1 << 28) => size *= 4,
            Err(e) => return Err(ProgLoadError { error: e, log }),
        }
    }
}

/// Attaches a program to a perf event (tracepoint or timer) with a BPF link: the attachment
/// lives exactly as long as the returned descriptor.
pub fn link_perf_event(prog_fd: RawFd, perf_fd: RawFd) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog_fd as u32,
        target_fd: perf_fd as u32,
        attach_type: BPF_PERF_EVENT,
        ..LinkCreateAttr::default()
    };
    bpf_fd(BPF_LINK_CREATE, &mut attr)
}

/// `enum bpf_attach_type`: BPF_TRACE_UPROBE_MULTI (Linux 6.6), one link for many uprobes.
pub const BPF_TRACE_UPROBE_MULTI: u32 = 48;
/// `uprobe_multi.flags`: the uprobes are uretprobes.
const BPF_F_UPROBE_MULTI_RETURN: u32 = 1;

/// `union bpf_attr` for BPF_LINK_CREATE of a uprobe_multi link.
#[repr(C)]
#[derive(Default)]
struct UprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    multi_flags: u32,
    pid: u32,
    /// Explicit, so that it is zero: the kernel refuses nonzero bytes past the last field.
    _pad: u32,
}

/// Attaches `prog_fd` (loaded for [`BPF_TRACE_UPROBE_MULTI`]) to every file offset of `path` at
/// once: one link, registered and (what matters more) unregistered by the kernel in one go.
pub fn link_uprobe_multi(
    prog_fd: RawFd,
    path: &str,
    offsets: &[u64],
    ret: bool,
    pid: Option<u32>,
) -> io::Result<OwnedFd> {
    let path = std::ffi::CString::new(path).map_err(|_| io::Error::other("NUL in a path"))?;
    let mut attr = UprobeMultiLinkAttr {
        prog_fd: prog_fd as u32,
        attach_type: BPF_TRACE_UPROBE_MULTI,
        path: path.as_ptr() as u64,
        offsets: offsets.as_ptr() as u64,
        cnt: offsets.len() as u32,
        multi_flags: if ret { BPF_F_UPROBE_MULTI_RETURN } else { 0 },
        pid: pid.unwrap_or(0),
        ..UprobeMultiLinkAttr::default()
    };
    bpf_fd(BPF_LINK_CREATE, &mut attr)
}

/// `enum bpf_attach_type`: BPF_TRACE_KPROBE_MULTI (Linux 5.18, with `CONFIG_FPROBE`).
pub const BPF_TRACE_KPROBE_MULTI: u32 = 42;
/// `kprobe_multi.flags`: the kprobes are kretprobes.
const BPF_F_KPROBE_MULTI_RETURN: u32 = 1;

/// `union bpf_attr` for BPF_LINK_CREATE of a kprobe_multi link.
#[repr(C)]
#[derive(Default)]
struct KprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    multi_flags: u32,
    cnt: u32,
    syms: u64,
    addrs: u64,
    cookies: u64,
}

/// Attaches `prog_fd` (loaded for [`BPF_TRACE_KPROBE_MULTI`]) to the entry (or, with `ret`, the
/// return) of every function in `functions` at once, through fprobe: one link.
pub fn link_kprobe_multi(prog_fd: RawFd, functions: &[String], ret: bool) -> io::Result<OwnedFd> {
    let names: Vec<std::ffi::CString> = functions
        .iter()
        .map(|f| std::ffi::CString::new(f.as_str()).map_err(|_| io::Error::other("NUL in a function name")))
        .collect::<io::Result<_>>()?;
    let pointers: Vec<u64> = names.iter().map(|n| n.as_ptr() as u64).collect();
    let mut attr = KprobeMultiLinkAttr {
        prog_fd: prog_fd as u32,
        attach_type: BPF_TRACE_KPROBE_MULTI,
        multi_flags: if ret { BPF_F_KPROBE_MULTI_RETURN } else { 0 },
        cnt: pointers.len() as u32,
        syms: pointers.as_ptr() as u64,
        ..KprobeMultiLinkAttr::default()
    };
    bpf_fd(BPF_LINK_CREATE, &mut attr)
}

const BPF_ENABLE_STATS: libc::c_long = 32;
/// `enum bpf_stats_type`: run time and run count of every program.
const BPF_STATS_RUN_TIME: u32 = 0;

/// Turns on the kernel's per-program run counts (`run_cnt` in fdinfo) for as long as the
/// returned descriptor is open, without touching the global `kernel.bpf_stats_enabled` sysctl.
pub fn enable_run_stats() -> io::Result<OwnedFd> {
    let mut attr = [BPF_STATS_RUN_TIME, 0u32];
    bpf_fd(BPF_ENABLE_STATS, &mut attr)
}

const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;

/// Attaches a raw tracepoint program to the tracepoint `name`; detached when the returned
/// descriptor closes.
pub fn raw_tracepoint_open(prog_fd: RawFd, name: Option<&str>) -> io::Result<OwnedFd> {
    let name = name
        .map(|n| std::ffi::CString::new(n).map_err(|_| io::Error::other("NUL in a tracepoint name")))
        .transpose()?;
    // `union bpf_attr` for BPF_RAW_TRACEPOINT_OPEN: u64 name, u32 prog_fd (and padding). A
    // tracing (fentry/fexit) program passes no name: it attaches where it was loaded for.
    let mut attr: [u64; 2] = [name.as_ref().map_or(0, |n| n.as_ptr() as u64), prog_fd as u64];
    bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
}
