//! Attaching loaded programs: perf events (tracepoints, the CPU clock for profile and interval,
//! software and hardware counters, hardware breakpoints for watchpoints, uprobes and kprobes
//! through their perf PMUs) with a BPF link
//! to each, multi links, raw tracepoints and fentry/fexit trampolines. Every attachment is file
//! descriptors, so closing them, or the process dying in any way, detaches the program: nothing
//! is ever registered by name in tracefs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use aya_obj::generated::{perf_event_attr, perf_sw_ids, perf_type_id};

use super::error::AttachError;
use super::sys;

/// One program attached to one perf event, or through one link.
pub struct Attachment {
    /// The BPF link; `None` on kernels older than 5.15, where the program is set on the perf
    /// event itself with an ioctl and detaches when the event is closed.
    _link: Option<OwnedFd>,
    /// None for multi links, raw tracepoints and trampolines, which attach without a perf event.
    _perf: Option<OwnedFd>,
}

impl Attachment {
    fn link(link: OwnedFd) -> Attachment {
        Attachment { _link: Some(link), _perf: None }
    }
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
) -> Result<Attachment, AttachError> {
    Ok(Attachment::link(sys::link_uprobe_multi(prog_fd, path, offsets, ret, pid)?))
}

/// Many kprobes (or kretprobes), all running `prog_fd` (loaded for kprobe_multi), as one link.
pub fn kprobe_multi(prog_fd: RawFd, functions: &[String], ret: bool) -> Result<Attachment, AttachError> {
    Ok(Attachment::link(sys::link_kprobe_multi(prog_fd, functions, ret)?))
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

/// A `perf_event_attr` of `type_` and `config`, firing every `period` events.
fn perf_attr(type_: u32, config: u64, period: u64) -> perf_event_attr {
    // SAFETY: `perf_event_attr` is plain integers and unions of integers: all zeroes is valid.
    let mut attr: perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = type_;
    attr.size = std::mem::size_of::<perf_event_attr>() as u32;
    attr.config = config;
    attr.__bindgen_anon_1.sample_period = period;
    attr
}

/// Attaches `prog_fd` (a tracepoint program) to the tracepoint whose tracefs id is `id`. One
/// event on CPU 0 is enough: the program runs for hits on every CPU.
pub fn tracepoint(prog_fd: RawFd, id: u64) -> Result<Attachment, AttachError> {
    let mut attr = perf_attr(perf_type_id::PERF_TYPE_TRACEPOINT as u32, id, 1);
    attr.__bindgen_anon_2.wakeup_events = 1;
    attach(prog_fd, perf_event_open(&attr, -1, 0)?)
}

/// Attaches `prog_fd` (a perf event program) to a software (`hardware` false) or hardware
/// counter of `cpu`, firing every `period` events.
pub fn counter(prog_fd: RawFd, cpu: u32, hardware: bool, config: u64, period: u64) -> Result<Attachment, AttachError> {
    let type_ = if hardware { perf_type_id::PERF_TYPE_HARDWARE } else { perf_type_id::PERF_TYPE_SOFTWARE };
    let attr = perf_attr(type_ as u32, config, period);
    let perf = perf_event_open(&attr, -1, cpu as i32).map_err(|e| match (hardware, e.raw_os_error()) {
        (true, Some(libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV)) => AttachError::NoHardwareCounters { source: e },
        _ => AttachError::Io(e),
    })?;
    attach(prog_fd, perf)
}

/// A hardware breakpoint: `len` bytes at `address`, watched for the accesses of `mode` (any of
/// `r`, `w` and `x`), in process `pid` or, without one, in the kernel.
pub struct Breakpoint<'a> {
    pub address: u64,
    pub len: u8,
    pub mode: &'a str,
    pub pid: Option<u32>,
}

/// Attaches `prog_fd` (a perf event program) to a hardware breakpoint (`PERF_TYPE_BREAKPOINT`),
/// firing at every access: one event following process `pid` on any CPU, or one per CPU in
/// `cpus` for a kernel address.
pub fn breakpoint(prog_fd: RawFd, bp: &Breakpoint<'_>, cpus: &[u32]) -> Result<Vec<Attachment>, AttachError> {
    use aya_obj::generated::{HW_BREAKPOINT_R, HW_BREAKPOINT_W, HW_BREAKPOINT_X};
    let mut attr = perf_attr(perf_type_id::PERF_TYPE_BREAKPOINT as u32, 0, 1);
    attr.bp_type = bp.mode.chars().fold(0, |bits, c| match c {
        'r' => bits | HW_BREAKPOINT_R,
        'w' => bits | HW_BREAKPOINT_W,
        'x' => bits | HW_BREAKPOINT_X,
        _ => bits,
    });
    attr.__bindgen_anon_3.bp_addr = bp.address;
    attr.__bindgen_anon_4.bp_len = u64::from(bp.len);
    let targets: Vec<(i32, i32)> = match bp.pid {
        Some(pid) => vec![(pid as i32, -1)],
        None => cpus.iter().map(|&cpu| (-1, cpu as i32)).collect(),
    };
    targets
        .into_iter()
        .map(|(pid, cpu)| {
            let perf = perf_event_open(&attr, pid, cpu).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOSPC) => AttachError::NoWatchpointRegisters,
                Some(libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP) => {
                    AttachError::NoHardwareBreakpoints { source: e }
                }
                _ => AttachError::Io(e),
            })?;
            attach(prog_fd, perf)
        })
        .collect()
}

/// Attaches `prog_fd` (a raw tracepoint program) to the raw tracepoint `name`.
pub fn raw_tracepoint(prog_fd: RawFd, name: &str) -> Result<Attachment, AttachError> {
    Ok(Attachment::link(sys::raw_tracepoint_open(prog_fd, Some(name))?))
}

/// Attaches a loaded fentry/fexit program to the kernel function it was loaded for.
pub fn trampoline(prog_fd: RawFd) -> Result<Attachment, AttachError> {
    Ok(Attachment::link(sys::raw_tracepoint_open(prog_fd, None)?))
}

/// Attaches `prog_fd` (a perf event program) to the CPU clock of `cpu`.
pub fn cpu_clock(prog_fd: RawFd, cpu: u32, rate: ClockRate) -> Result<Attachment, AttachError> {
    let (period, freq) = match rate {
        ClockRate::Hz(hz) => (hz, true),
        ClockRate::PeriodNs(ns) => (ns, false),
    };
    let clock = perf_sw_ids::PERF_COUNT_SW_CPU_CLOCK as u64;
    // `sample_freq` shares its place with `sample_period`; the `freq` bit says which it is.
    let mut attr = perf_attr(perf_type_id::PERF_TYPE_SOFTWARE as u32, clock, period);
    attr.set_freq(u64::from(freq));
    attach(prog_fd, perf_event_open(&attr, -1, cpu as i32)?)
}

/// Where a uprobe or kprobe goes: `target` is the binary's path (uprobe) or the function's name
/// (kprobe), `offset` the file offset (uprobe) or the offset into the function (kprobe). A
/// uprobe with `pid` fires only in that process; a nonzero `ref_ctr_offset` is the file offset
/// of a USDT probe's semaphore.
pub struct ProbeTarget<'a> {
    /// `uprobe` or `kprobe`: the perf PMU.
    pub pmu: &'a str,
    pub target: &'a str,
    pub offset: u64,
    pub ret: bool,
    pub pid: Option<u32>,
    pub ref_ctr_offset: u64,
}

/// Reads a file of a perf PMU's sysfs directory.
fn pmu_file(pmu: &str, name: &str) -> Result<String, AttachError> {
    let path = Path::new("/sys/bus/event_source/devices").join(pmu).join(name);
    std::fs::read_to_string(&path).map_err(|source| AttachError::Pmu { pmu: pmu.to_owned(), path, source })
}

/// The first bit of a PMU format field: `config:0` or `config:32-63`.
fn format_shift(text: &str) -> Option<u32> {
    text.trim().strip_prefix("config:")?.split('-').next()?.parse().ok()
}

/// Attaches `prog_fd` (a kprobe program) to a uprobe or kprobe through its perf PMU.
pub fn probe(prog_fd: RawFd, probe: &ProbeTarget<'_>) -> Result<Attachment, AttachError> {
    let pmu = probe.pmu;
    let type_: u32 = pmu_file(pmu, "type")?.trim().parse().map_err(|_| AttachError::PmuType { pmu: pmu.to_owned() })?;
    // format/retprobe reads `config:0`: the bit of `config` that asks for a return probe.
    let config = if probe.ret { 1u64 << format_shift(&pmu_file(pmu, "format/retprobe")?).unwrap_or(0) } else { 0 };
    // A USDT semaphore: format/ref_ctr_offset reads `config:32-63`, the file offset of the
    // counter the kernel increments in every process while the uprobe is attached.
    let config = if probe.ref_ctr_offset == 0 {
        config
    } else {
        let shift = format_shift(&pmu_file(pmu, "format/ref_ctr_offset")?).ok_or(AttachError::NoSemaphores)?;
        config | (probe.ref_ctr_offset << shift)
    };
    let target = CString::new(probe.target).map_err(|_| AttachError::Nul { what: "a probe target" })?;
    let mut attr = perf_attr(type_, config, 1);
    attr.__bindgen_anon_2.wakeup_events = 1;
    // config1 and config2 are `uprobe_path`/`kprobe_func` and `probe_offset`; the path lives
    // in `target` until the call returns.
    attr.__bindgen_anon_3.config1 = target.as_ptr() as u64;
    attr.__bindgen_anon_4.config2 = probe.offset;
    let opened = match probe.pid {
        Some(pid) => perf_event_open(&attr, pid as i32, -1),
        None => perf_event_open(&attr, -1, 0),
    };
    let fd = opened.map_err(|e| match (pmu, e.raw_os_error()) {
        // The kernel checks that a kprobe's offset starts an instruction (arch_check_kprobe_addr
        // decodes the function from its start) and answers EILSEQ when it does not.
        ("kprobe", Some(libc::EILSEQ)) => {
            AttachError::NotAnInstruction { function: probe.target.to_owned(), offset: probe.offset }
        }
        _ => AttachError::Io(e),
    })?;
    attach(prog_fd, fd)
}

fn attach(prog_fd: RawFd, perf: OwnedFd) -> Result<Attachment, AttachError> {
    match sys::link_perf_event(prog_fd, perf.as_raw_fd()) {
        Ok(link) => Ok(Attachment { _link: Some(link), _perf: Some(perf) }),
        // No perf links before 5.15: set the program on the event directly.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
            ioctl(&perf, aya_obj::generated::PERF_EVENT_IOC_SET_BPF, prog_fd as libc::c_ulong)?;
            ioctl(&perf, aya_obj::generated::PERF_EVENT_IOC_ENABLE, 0)?;
            Ok(Attachment { _link: None, _perf: Some(perf) })
        }
        Err(e) => Err(AttachError::Io(e)),
    }
}

/// Opens a perf event for process `pid` (-1: all) on `cpu` (-1: all).
fn perf_event_open(attr: &perf_event_attr, pid: i32, cpu: i32) -> io::Result<OwnedFd> {
    let flags = libc::c_ulong::from(aya_obj::generated::PERF_FLAG_FD_CLOEXEC);
    // SAFETY: `attr` is a fully initialised perf_event_attr whose `size` field says how much of
    // it the kernel may read (its config1 may point at a C string the caller keeps alive for the
    // call); pid -1 with a CPU means every process on that CPU.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr as *const perf_event_attr, pid, cpu, -1, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("perf_event_open returned a bad descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A perf event ioctl whose argument is an integer, not a pointer.
fn ioctl(fd: &OwnedFd, request: u32, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: both requests rbt makes (SET_BPF, ENABLE) take an integer argument.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::c_ulong::from(request), arg) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
