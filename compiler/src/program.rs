//! The compiler's output: the ELF object plus everything the runtime needs to attach programs,
//! read maps and decode events.

use crate::hir::{AttachPoint, Format, MapDecl};
use crate::types::Type;
use grammar::Span;

/// A compiled script.
#[derive(Clone, Debug, Default)]
pub struct CompiledProgram {
    /// The relocatable BPF ELF object holding every program and map.
    pub elf: Vec<u8>,
    pub probes: Vec<ProbeProgram>,
    pub bpf_maps: Vec<BpfMap>,
    /// The user's maps (`@x`), indexed by `hir::MapId`.
    pub maps: Vec<MapDecl>,
    /// For each user map, its index in `bpf_maps`.
    pub map_storage: Vec<usize>,
    pub formats: Vec<Format>,
    /// Types of values printed with `print(value)`, indexed by the event's index field.
    pub print_types: Vec<Type>,
    /// Under `-k`/`-kk`, the helper calls whose failures are reported, indexed by the index
    /// field of [`EventKind::HelperError`] records.
    pub helper_errors: Vec<HelperErrorSite>,
}

/// A helper call whose failure is reported (`-k`, `-kk`), as bpftrace 0.17 reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperErrorSite {
    /// bpftrace's name of the helper: the kernel's without `bpf_` (`map_delete_elem`).
    pub helper: &'static str,
    pub location: SourceLocation,
}

/// A place in a source file as bpftrace 0.17 locates it: lines and columns from 1, columns
/// in bytes, the end column one past the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    /// The script's name (`stdin` for `-e`) or the included file's.
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    /// The text of line `line`, without its newline.
    pub source_line: String,
}

/// One BPF program, attached to one attach point.
#[derive(Clone, Debug)]
pub struct ProbeProgram {
    /// The ELF symbol and aya program name.
    pub name: String,
    pub section: String,
    pub attach: AttachPoint,
    /// What the kernel loads the program as: [`ProgramKind::of`] the attach point.
    pub kind: ProgramKind,
    /// The probe block this program was compiled from.
    pub span: Span,
    /// The attach point as written (`tracepoint:sched:*`), which may expand to several programs.
    pub spec_span: Span,
    /// The encoded instructions (for `--dry-run`).
    pub insns: Vec<crate::bpf::insn::Insn>,
    /// Source span of each instruction slot, for disassembly and verifier reports.
    pub insn_spans: Vec<Span>,
    /// A uprobe rbt adds to keep registers' entry values (`hir::Probe::keeps_entry_values`),
    /// not one of the script's.
    pub keeps_entry_values: bool,
}

/// What the kernel loads a probe's program as. [`ProgramKind::of`] is the one place that decides
/// it from the attach point; the runtime's loader turns it into the kernel's program and attach
/// types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgramKind {
    /// kprobes, uprobes and USDT probes: programs over `struct pt_regs` (`BPF_PROG_TYPE_KPROBE`).
    Kprobe,
    /// Tracepoints, over the event's record (`BPF_PROG_TYPE_TRACEPOINT`).
    Tracepoint,
    /// `profile`, `interval` and perf counters (`BPF_PROG_TYPE_PERF_EVENT`).
    PerfEvent,
    /// Raw tracepoints, and BEGIN and END, which run once through `BPF_PROG_TEST_RUN`, which
    /// raw tracepoint programs allow (`BPF_PROG_TYPE_RAW_TRACEPOINT`).
    RawTracepoint,
    /// fentry (fexit with `ret`) programs, loaded for the kernel function whose BTF id is
    /// `btf_id` (`BPF_PROG_TYPE_TRACING`).
    Tracing { ret: bool, btf_id: u32 },
}

impl ProgramKind {
    /// The kind of program an attach point needs.
    pub fn of(attach: &AttachPoint) -> ProgramKind {
        match attach {
            AttachPoint::Begin | AttachPoint::End | AttachPoint::RawTracepoint { .. } => ProgramKind::RawTracepoint,
            AttachPoint::Tracepoint { .. } => ProgramKind::Tracepoint,
            AttachPoint::Profile { .. }
            | AttachPoint::Interval { .. }
            | AttachPoint::PerfCounter { .. }
            | AttachPoint::Watchpoint { .. }
            | AttachPoint::FunctionWatchpoint(_) => ProgramKind::PerfEvent,
            AttachPoint::Uprobe { .. } | AttachPoint::Usdt(_) | AttachPoint::Kprobe { .. } => ProgramKind::Kprobe,
            AttachPoint::Fentry { func, ret } => ProgramKind::Tracing { ret: *ret, btf_id: func.btf_id },
        }
    }
}

/// What a BPF map is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRole {
    /// Stores a user map (`@x`).
    User,
    /// The ring buffer carrying events (printf, print, exit, ...).
    Events,
    /// Per-CPU counters of events and updates that failed ([`ErrorCounter`]).
    Errors,
    /// A stack trace map for stacks of at most `limit` frames.
    Stacks {
        limit: u32,
    },
    /// User stacks unwound in the program (`lower/unwind.rs`), at most `limit` frames, by id.
    UserStacks {
        limit: u32,
    },
    /// The unwinder's tables: processes' mapping ranges, mappings, rows; and its per-CPU scratch.
    UnwindProcs,
    UnwindMappings,
    UnwindRows,
    UnwindScratch,
    /// Processes already seen in user stacks (see [`EventKind::PidSeen`]).
    SeenPids,
    /// One per-CPU record where `join()` assembles its event (too large for the BPF stack).
    JoinScratch,
    /// The (watchpoint probe, address) pairs function watchpoints' setup uprobes have reported
    /// (see [`EventKind::Watch`]), so that an address is reported, and its process stopped, once.
    Watched,
    /// Registers' values on entry to functions, by thread and frame (`lower/entry.rs`).
    EntryValues,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpfMap {
    /// The name in the ELF object.
    pub name: String,
    pub role: MapRole,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// Slots of the errors map, repeated for each probe slot (`LowerOptions::probe_slots`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCounter {
    /// The ring buffer was full: an event was lost.
    LostEvents = 0,
    /// A map update failed, usually because the map is full.
    MapFull = 1,
    /// A string or memory read failed.
    ReadFailed = 2,
    /// `bpf_get_stackid` failed: a hash collision in the stack map (EEXIST) or a full map.
    StackFailed = 3,
    /// An `exit()` record was lost to a full ring buffer: the runtime must stop all the same.
    ExitLost = 4,
    /// An entry value (`lower/entry.rs`) was read in a frame whose entry the hidden uprobe did
    /// not see: the function was entered before the probes were attached.
    EntryUnseen = 5,
}

pub const ERROR_COUNTERS: u32 = 6;

/// Event kinds: the first u32 of each ring buffer record; the second is an index whose meaning
/// depends on the kind. Records are laid out by the compiler; fields are 8-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum EventKind {
    /// index: format; then the arguments.
    Printf = 1,
    /// index: format; then the arguments.
    System = 2,
    /// index: format.
    Time = 3,
    Exit = 4,
    /// index: user map; then u64 top, u64 div.
    PrintMap = 5,
    /// index: user map.
    Clear = 6,
    /// index: user map.
    Zero = 7,
    /// index: into `print_types`; then the value.
    PrintValue = 8,
    /// A process first seen in a user stack; then its pid as a u64.
    PidSeen = 9,
    /// index: format (the delimiter); then `JOIN_ARGS` strings of `JOIN_ARG_SIZE` bytes.
    Join = 10,
    /// index: the function watchpoint's probe; then the u64 address to watch and the u64 pid
    /// of the process, stopped (SIGSTOP) unless the watchpoint is asynchronous.
    Watch = 11,
    /// `unwatch()`; then the u64 address.
    Unwatch = 12,
    /// A helper call failed (`-k`, `-kk`). index: into `helper_errors`; then its return value
    /// as an i64 (its low 32 bits, sign-extended, as bpftrace 0.17 keeps an int32).
    HelperError = 13,
}

impl EventKind {
    pub fn from_u32(v: u32) -> Option<EventKind> {
        Some(match v {
            1 => EventKind::Printf,
            2 => EventKind::System,
            3 => EventKind::Time,
            4 => EventKind::Exit,
            5 => EventKind::PrintMap,
            6 => EventKind::Clear,
            7 => EventKind::Zero,
            8 => EventKind::PrintValue,
            9 => EventKind::PidSeen,
            10 => EventKind::Join,
            11 => EventKind::Watch,
            12 => EventKind::Unwatch,
            13 => EventKind::HelperError,
            _ => return None,
        })
    }
}

/// Byte offset of the payload after the 8-byte event header.
pub const EVENT_HEADER: u32 = 8;
