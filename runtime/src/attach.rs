//! Attaching loaded programs to the kernel through perf events: tracepoints and the CPU clock
//! (profile and interval). Every attachment is a pair of file descriptors — the perf event and
//! the BPF link tying the program to it — so closing them, or the process dying in any way,
//! detaches the program: nothing is ever registered by name in tracefs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::bpf_sys;

/// `struct perf_event_attr` up to `sample_max_stack` (PERF_ATTR_SIZE_VER5, 112 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    /// `sample_period`, or `sample_freq` when the `freq` flag is set.
    sample_period_or_freq: u64,
    sample_type: u64,
    read_format: u64,
    /// The bitfield `disabled:1, inherit:1, ..., freq:1 (bit 10), ...`.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
const PERF_ATTR_FLAG_FREQ: u64 = 1 << 10;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// One program attached to one perf event.
pub struct Attachment {
    /// The BPF link; `None` on kernels older than 5.15, where the program is set on the perf
    /// event itself with an ioctl and detaches when the event is closed.
    _link: Option<OwnedFd>,
    /// None for raw tracepoints, which attach without a perf event.
    _perf: Option<OwnedFd>,
}

/// Attaching or detaching a kprobe or uprobe costs the kernel milliseconds (text patching, RCU
/// grace periods: about 15 ms to attach and 90 ms to detach a kprobe on Linux 6.1 under
/// emulation), mostly waiting rather than computing; a wildcard of hundreds of functions does
/// them from this many threads so that the waits overlap.
pub const PARALLEL_THREADS: usize = 8;

/// Fewer attachments than this are handled on the calling thread.
const PARALLEL_MIN: usize = 16;

/// Runs `work` over `items` on [`PARALLEL_THREADS`] threads (or on this one when there are
/// few), returning the results in `items`' order.
pub fn in_parallel<T: Send, R: Send>(items: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    if items.len() < PARALLEL_MIN {
        return items.into_iter().map(work).collect();
    }
    let mut lanes: Vec<Vec<(usize, T)>> = (0..PARALLEL_THREADS).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        lanes[i % PARALLEL_THREADS].push((i, item));
    }
    let work = &work;
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| s.spawn(move || lane.into_iter().map(|(i, item)| (i, work(item))).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Many uprobes of one binary, all running `prog_fd` (loaded for uprobe_multi), as one link.
pub fn uprobe_multi(
    prog_fd: RawFd,
    path: &str,
    offsets: &[u64],
    ret: bool,
    pid: Option<u32>,
) -> io::Result<Attachment> {
    let link = bpf_sys::link_uprobe_multi(prog_fd, path, offsets, ret, pid)?;
    Ok(Attachment { _link: Some(link), _perf: None })
}

/// Many kprobes (or kretprobes), all running `prog_fd` (loaded for kprobe_multi), as one link.
pub fn kprobe_multi(prog_fd: RawFd, functions: &[String], ret: bool) -> io::Result<Attachment> {
    let link = bpf_sys::link_kprobe_multi(prog_fd, functions, ret)?;
    Ok(Attachment { _link: Some(link), _perf: None })
}

/// Detaches many attachments at once (see [`PARALLEL_THREADS`]).
pub fn detach_all(attachments: Vec<Attachment>) {
    in_parallel(attachments, drop);
}

/// How often a CPU-clock event fires.
#[derive(Clone, Copy, Debug)]
pub enum ClockRate {
    Hz(u64),
    PeriodNs(u64),
}

/// Attaches `prog_fd` (a BPF_PROG_TYPE_TRACEPOINT program) to the tracepoint whose tracefs id is
/// `id`. One event on CPU 0 is enough: the program runs for hits on every CPU.
pub fn tracepoint(prog_fd: RawFd, id: u64) -> io::Result<Attachment> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_TRACEPOINT,
        config: id,
        sample_period_or_freq: 1,
        wakeup_events: 1,
        ..PerfEventAttr::default()
    };
    attach(prog_fd, perf_event_open(&attr, 0)?)
}

/// Attaches `prog_fd` (a BPF_PROG_TYPE_PERF_EVENT program) to a software (`hardware` false) or
/// hardware counter of `cpu`, firing every `period` events.
pub fn counter(prog_fd: RawFd, cpu: u32, hardware: bool, config: u64, period: u64) -> io::Result<Attachment> {
    let attr = PerfEventAttr {
        type_: if hardware { PERF_TYPE_HARDWARE } else { PERF_TYPE_SOFTWARE },
        config,
        sample_period_or_freq: period,
        ..PerfEventAttr::default()
    };
    let perf = perf_event_open(&attr, cpu as i32).map_err(|e| match (hardware, e.raw_os_error()) {
        (true, Some(libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV)) => io::Error::new(
            e.kind(),
            "this machine has no hardware performance counters (common in virtual machines); use software events or profile",
        ),
        _ => e,
    })?;
    attach(prog_fd, perf)
}

/// Attaches `prog_fd` (a BPF_PROG_TYPE_RAW_TRACEPOINT program) to the raw tracepoint `name`.
pub fn raw_tracepoint(prog_fd: RawFd, name: &str) -> io::Result<Attachment> {
    let link = bpf_sys::raw_tracepoint_open(prog_fd, Some(name))?;
    Ok(Attachment { _link: Some(link), _perf: None })
}

/// Attaches a loaded fentry/fexit program to the kernel function it was loaded for.
pub fn trampoline(prog_fd: RawFd) -> io::Result<Attachment> {
    let link = bpf_sys::raw_tracepoint_open(prog_fd, None)?;
    Ok(Attachment { _link: Some(link), _perf: None })
}

/// Attaches `prog_fd` (a BPF_PROG_TYPE_PERF_EVENT program) to the CPU clock of `cpu`.
pub fn cpu_clock(prog_fd: RawFd, cpu: u32, rate: ClockRate) -> io::Result<Attachment> {
    let (period, flags) = match rate {
        ClockRate::Hz(hz) => (hz, PERF_ATTR_FLAG_FREQ),
        ClockRate::PeriodNs(ns) => (ns, 0),
    };
    let attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        config: PERF_COUNT_SW_CPU_CLOCK,
        sample_period_or_freq: period,
        flags,
        ..PerfEventAttr::default()
    };
    attach(prog_fd, perf_event_open(&attr, cpu as i32)?)
}

/// A uprobe or kprobe through its perf PMU: `target` is the binary's path (uprobe) or the
/// function's name (kprobe), `offset` the file offset (uprobe) or the offset into the function
/// (kprobe). A uprobe with `pid` fires only in that process; a nonzero `ref_ctr_offset` is the file
/// offset of a USDT probe's semaphore.
pub fn probe(
    prog_fd: RawFd,
    pmu: &str,
    target: &str,
    offset: u64,
    ret: bool,
    pid: Option<u32>,
    ref_ctr_offset: u64,
) -> io::Result<Attachment> {
    let dir = std::path::Path::new("/sys/bus/event_source/devices").join(pmu);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| {
            io::Error::new(e.kind(), format!("{}: {e} (does this kernel have {pmu}s?)", dir.join(name).display()))
        })
    };
    let type_: u32 = read("type")?.trim().parse().map_err(|_| io::Error::other(format!("bad {pmu} PMU type")))?;
    // format/retprobe reads `config:0`: the bit of `config` that asks for a return probe.
    let config = if ret {
        let bit: u32 =
            read("format/retprobe")?.trim().strip_prefix("config:").and_then(|b| b.parse().ok()).unwrap_or(0);
        1u64 << bit
    } else {
        0
    };
    // A USDT semaphore: format/ref_ctr_offset reads `config:32-63`, the file offset of the
    // counter the kernel increments in every process while the uprobe is attached.
    let config = if ref_ctr_offset == 0 {
        config
    } else {
        let shift: u32 = read("format/ref_ctr_offset")?
            .trim()
            .strip_prefix("config:")
            .and_then(|bits| bits.split('-').next()?.parse().ok())
            .ok_or_else(|| io::Error::other("this kernel's uprobes take no USDT semaphores (ref_ctr_offset)"))?;
        config | (ref_ctr_offset << shift)
    };
    let target = std::ffi::CString::new(target).map_err(|_| io::Error::other("NUL in a probe target"))?;
    let attr = PerfEventAttr {
        type_,
        config,
        sample_period_or_freq: 1,
        wakeup_events: 1,
        // config1 and config2 are `uprobe_path`/`kprobe_func` and `probe_offset`.
        config1: target.as_ptr() as u64,
        config2: offset,
        ..PerfEventAttr::default()
    };
    let opened = match pid {
        Some(pid) => perf_event_open_for(&attr, pid as i32, -1),
        None => perf_event_open(&attr, 0),
    };
    // The kernel checks that a kprobe's offset starts an instruction (arch_check_kprobe_addr
    // decodes the function from its start) and answers EILSEQ when it does not.
    let fd = opened.map_err(|e| match (pmu, e.raw_os_error()) {
        ("kprobe", Some(libc::EILSEQ)) => io::Error::new(
            e.kind(),
            format!(
                "offset {offset} is not at an instruction boundary of {} (the kernel refused it)",
                target.to_string_lossy()
            ),
        ),
        _ => e,
    })?;
    attach(prog_fd, fd)
}

/// Raises the soft limit on open files to the hard limit. Every attached probe holds two file
/// descriptors (its perf event and link) and every loaded program one, so a wildcard over
/// hundreds of kernel functions would run out of the usual soft limit of 1024.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one rlimit struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn attach(prog_fd: RawFd, perf: OwnedFd) -> io::Result<Attachment> {
    match bpf_sys::link_perf_event(prog_fd, perf.as_raw_fd()) {
        Ok(link) => Ok(Attachment { _link: Some(link), _perf: Some(perf) }),
        // No perf links before 5.15: set the program on the event directly.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
            ioctl(&perf, PERF_EVENT_IOC_SET_BPF, prog_fd as libc::c_ulong)?;
            ioctl(&perf, PERF_EVENT_IOC_ENABLE, 0)?;
            Ok(Attachment { _link: None, _perf: Some(perf) })
        }
        Err(e) => Err(e),
    }
}

/// Opens a perf event for every process on `cpu`.
fn perf_event_open(attr: &PerfEventAttr, cpu: i32) -> io::Result<OwnedFd> {
    perf_event_open_for(attr, -1, cpu)
}

/// Opens a perf event for process `pid` (-1: all) on `cpu` (-1: all).
fn perf_event_open_for(attr: &PerfEventAttr, pid: i32, cpu: i32) -> io::Result<OwnedFd> {
    let mut attr_sized = *attr;
    attr_sized.size = std::mem::size_of::<PerfEventAttr>() as u32;
    // SAFETY: `attr_sized` is a fully initialised perf_event_attr whose `size` field says how
    // much of it the kernel may read (its config1 may point at a C string the caller keeps
    // alive for the call); pid -1 with a CPU means every process on that CPU.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr_sized as *const PerfEventAttr,
            pid,
            cpu,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn ioctl(fd: &OwnedFd, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: both requests take an integer argument, not a pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
