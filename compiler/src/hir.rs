//! The checked program: the AST after name resolution and typing. Every builtin, function and
//! field access is resolved, every expression carries its type, and each probe block is split
//! into one [`Probe`] per concrete attach point (a wildcard expands to many).

use crate::format::PrintfFormat;
use crate::tracepoint::{FieldType, TracepointFormat};
use crate::types::{MapValue, Type};
use grammar::Span;

#[derive(Clone, Debug)]
pub struct Program {
    pub probes: Vec<Probe>,
    pub maps: Vec<MapDecl>,
    /// printf-style formats referenced by [`Stmt::Printf`] and friends, by index.
    pub formats: Vec<Format>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VarId(pub u32);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDecl {
    /// Without `@`; empty for the anonymous map.
    pub name: String,
    /// One type per key part; empty for an unkeyed map.
    pub key: Vec<Type>,
    pub value: MapValue,
    /// Where the map is first defined, for diagnostics.
    pub span: Span,
}

impl MapDecl {
    /// The map's name as users write it, with `@`.
    pub fn display_name(&self) -> String {
        format!("@{}", self.name)
    }
}

/// A format string and the types of its arguments, used by printf, system and time.
#[derive(Clone, Debug)]
pub struct Format {
    pub kind: FormatKind,
    pub text: String,
    /// The parsed printf format the runtime renders events with; `None` for `time`'s strftime
    /// format.
    pub printf: Option<PrintfFormat>,
    pub args: Vec<Type>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatKind {
    Printf,
    System,
    Time,
    /// `join()`'s delimiter.
    Join,
    /// `cat(FORMAT, ...)`: the formatted text is a file whose contents print.
    Cat,
}

/// How many strings `join()` reads, and the bytes of each (NUL included), as bpftrace 0.17.
pub const JOIN_ARGS: u32 = 16;
pub const JOIN_ARG_SIZE: u32 = 1024;

#[derive(Clone, Debug, PartialEq)]
pub enum AttachPoint {
    Begin,
    End,
    Tracepoint {
        category: String,
        event: String,
        format: TracepointFormat,
    },
    /// `profile:hz:N` (frequency) or `profile:s|ms|us:N` (period), on every CPU.
    Profile {
        rate: PerfRate,
    },
    /// `interval:...`: one CPU.
    Interval {
        rate: PerfRate,
    },
    /// `uprobe:PATH:FUNC[+OFF]` / `uretprobe:`: `offset` is the file offset of the instruction.
    /// `address` is set when the script named a virtual address (`uprobe:PATH:0x1234`), which
    /// the probe's name shows in decimal, as in bpftrace; `func` is then the symbol holding it.
    Uprobe {
        path: String,
        func: String,
        offset: u64,
        ret: bool,
        address: Option<u64>,
    },
    /// `usdt:PATH:[PROVIDER:]NAME`: a uprobe at the probe's file offset, whose `argN` are read
    /// as the probe's note describes them.
    Usdt(crate::usdt::UsdtProbe),
    /// `kprobe:FUNC[+OFF]` / `kretprobe:FUNC`.
    Kprobe {
        func: String,
        offset: u64,
        ret: bool,
    },
    /// `software:EVENT:COUNT` / `hardware:EVENT:COUNT`: a perf counter on every CPU, firing
    /// every `period` events. `config` is the kernel's `perf_sw_ids` / `perf_hw_id` number.
    PerfCounter {
        hardware: bool,
        event: String,
        config: u64,
        period: u64,
    },
    /// `rawtracepoint:NAME`: the tracepoint's raw arguments, `arg0`..., and by name (`args->prev`)
    /// where the kernel's BTF has the tracepoint's prototype (`signature`, without its first,
    /// `void *`, argument).
    RawTracepoint {
        name: String,
        signature: Option<crate::ktypes::KFunction>,
    },
    /// `fentry:FUNC` / `fexit:FUNC`: a BPF trampoline on a kernel function, whose arguments (and
    /// for fexit, return value) arrive typed from BTF as an array of u64s.
    Fentry {
        func: crate::ktypes::KFunction,
        ret: bool,
    },
    /// `watchpoint:ADDRESS:LENGTH:MODE`: a hardware breakpoint (a perf event) on `len` bytes at
    /// `address`, for the accesses `mode` names (`r`, `w`, `x`, sorted); in process `pid`'s
    /// memory (the `-c` command's or `-p`'s), or the kernel's on every CPU when there is none.
    Watchpoint {
        address: u64,
        len: u8,
        mode: String,
        pid: Option<u32>,
    },
    /// `watchpoint:FUNCTION+argN:LENGTH:MODE` (`asyncwatchpoint:`): a hardware breakpoint on the
    /// address FUNCTION's argument N holds, opened at run time for each new address a setup
    /// uprobe on FUNCTION reports (`check/resolve/watchpoint.rs`).
    FunctionWatchpoint(Box<FunctionWatch>),
}

/// A function-argument watchpoint (see [`AttachPoint::FunctionWatchpoint`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionWatch {
    /// The binary as bpftrace 0.17 names it in `probe`: `-c`'s command as written (found in
    /// `PATH` when it has no `/`), or `/proc/PID/exe` for `-p`.
    pub target: String,
    /// The function, its binary and file offset, where the setup uprobe goes.
    pub func: String,
    pub path: String,
    pub offset: u64,
    /// The argument holding the address (`arg0`..`arg5`).
    pub arg: u8,
    /// Bytes watched (1, 2, 4 or 8) and the accesses (`r`, `w`, `x`, sorted).
    pub len: u8,
    pub mode: String,
    /// `asyncwatchpoint`: the process runs on while rbt opens the breakpoint; otherwise the
    /// setup uprobe stops it (SIGSTOP) until the breakpoint is there.
    pub asynchronous: bool,
    /// The process whose calls set up watchpoints: `-c`'s command or `-p`'s process.
    pub pid: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerfRate {
    Hz(u64),
    PeriodNs(u64),
}

impl AttachPoint {
    /// The text `probe` yields, as bpftrace prints it: `tracepoint:sched:sched_switch`.
    pub fn probe_name(&self) -> String {
        match self {
            AttachPoint::Begin => "BEGIN".into(),
            AttachPoint::End => "END".into(),
            AttachPoint::Tracepoint { category, event, .. } => format!("tracepoint:{category}:{event}"),
            AttachPoint::Profile { rate } => format!("profile:{}", rate_text(*rate)),
            AttachPoint::Interval { rate } => format!("interval:{}", rate_text(*rate)),
            AttachPoint::Uprobe { path, func, ret, address, .. } => {
                let kind = if *ret { "uretprobe" } else { "uprobe" };
                match address {
                    Some(address) => format!("{kind}:{path}:{address}"),
                    None => format!("{kind}:{path}:{func}"),
                }
            }
            AttachPoint::Usdt(usdt) => format!("usdt:{}:{}:{}", usdt.path, usdt.provider, usdt.name),
            AttachPoint::PerfCounter { hardware, event, period, .. } => {
                format!("{}:{event}:{period}", if *hardware { "hardware" } else { "software" })
            }
            AttachPoint::RawTracepoint { name, .. } => format!("rawtracepoint:{name}"),
            AttachPoint::Fentry { func, ret } => format!("{}:{}", if *ret { "fexit" } else { "fentry" }, func.name),
            AttachPoint::Watchpoint { address, len, mode, .. } => format!("watchpoint:{address}:{len}:{mode}"),
            AttachPoint::FunctionWatchpoint(w) => {
                // bpftrace 0.17 keeps argN's N where an absolute watchpoint's address goes, and
                // leaves it out when it is 0.
                let kind = if w.asynchronous { "asyncwatchpoint" } else { "watchpoint" };
                let arg = if w.arg > 0 { format!(":{}", w.arg) } else { String::new() };
                format!("{kind}:{}:{}{arg}:{}:{}", w.target, w.func, w.len, w.mode)
            }
            AttachPoint::Kprobe { func, offset, ret } => {
                let kind = if *ret { "kretprobe" } else { "kprobe" };
                if *offset == 0 {
                    format!("{kind}:{func}")
                } else {
                    format!("{kind}:{func}+{offset}")
                }
            }
        }
    }
}

fn rate_text(rate: PerfRate) -> String {
    match rate {
        PerfRate::Hz(n) => format!("hz:{n}"),
        PerfRate::PeriodNs(ns) if ns % 1_000_000_000 == 0 => format!("s:{}", ns / 1_000_000_000),
        PerfRate::PeriodNs(ns) if ns % 1_000_000 == 0 => format!("ms:{}", ns / 1_000_000),
        PerfRate::PeriodNs(ns) if ns % 1_000 == 0 => format!("us:{}", ns / 1_000),
        PerfRate::PeriodNs(ns) => format!("ns:{ns}"),
    }
}

#[derive(Clone, Debug)]
pub struct Probe {
    pub attach: AttachPoint,
    /// The attach point as written (before wildcard expansion), for messages.
    pub spec_span: Span,
    /// The whole probe block.
    pub span: Span,
    pub predicate: Option<Expr>,
    pub body: Vec<Stmt>,
    /// Scratch variables, indexed by [`VarId`].
    pub vars: Vec<Var>,
}

impl Probe {
    /// A hidden uprobe rbt adds at a function's entry to keep registers' entry values
    /// ([`StmtKind::SaveEntry`]): not one of the script's, nor counted as one.
    pub fn keeps_entry_values(&self) -> bool {
        matches!(&self.body[..], [Stmt { kind: StmtKind::SaveEntry { .. }, .. }])
    }
}

#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub ty: Type,
}

#[derive(Clone, Debug)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum StmtKind {
    Expr(Expr),
    AssignVar {
        var: VarId,
        value: Expr,
    },
    /// `@m[k] = v` on a plain map.
    AssignMap {
        map: MapId,
        keys: Vec<Expr>,
        value: Expr,
    },
    /// `@m[k] = count()` and the other aggregations; `value` is the aggregated argument.
    Aggregate {
        map: MapId,
        keys: Vec<Expr>,
        value: Option<Expr>,
        /// The call (`count()`), where bpftrace 0.17 reports its map updates' failures (`-k`).
        call: Span,
    },
    If {
        cond: Expr,
        then_body: Vec<Stmt>,
        else_body: Vec<Stmt>,
    },
    While {
        cond: Expr,
        body: Vec<Stmt>,
    },
    Unroll {
        count: u32,
        body: Vec<Stmt>,
    },
    Return,
    /// `break` / `continue` inside a `while`.
    Break,
    Continue,
    /// printf(fmt, args...): format index into [`Program::formats`].
    Printf {
        format: u32,
        args: Vec<Expr>,
    },
    System {
        format: u32,
        args: Vec<Expr>,
    },
    Time {
        format: u32,
    },
    /// print(@m[, top[, div]])
    PrintMap {
        map: MapId,
        top: u64,
        div: u64,
    },
    /// print(expr) of a non-map value.
    PrintValue {
        value: Expr,
    },
    Clear {
        map: MapId,
    },
    Zero {
        map: MapId,
    },
    Delete {
        map: MapId,
        keys: Vec<Expr>,
    },
    Exit,
    /// `join(argv[, delim])`: the strings of a NULL-terminated array of pointers (at most
    /// [`JOIN_ARGS`] of [`JOIN_ARG_SIZE`] bytes), printed joined by `formats[format]`'s text.
    Join {
        argv: Expr,
        format: u32,
    },
    /// `signal(SIG)` (`--unsafe`): sends the signal to the current process.
    Signal(Expr),
    /// A function watchpoint's setup (the body of the uprobe `check/resolve/watchpoint.rs` adds
    /// for probe `watch`): reports `addr` to the runtime unless this probe reported it before,
    /// after stopping the process (SIGSTOP) when `stop`, for the runtime to resume.
    Watch {
        watch: u32,
        addr: Expr,
        stop: bool,
    },
    /// `unwatch(ADDR)`: the runtime closes every watchpoint on ADDR.
    Unwatch(Expr),
    /// The body of the hidden uprobe at a function's entry that `locals`/`args` reading a
    /// `DW_OP_entry_value` add (`check/uprobe_locals.rs`): each `(register, value)` kept for
    /// this thread and frame (`cfa`, the stack pointer plus 8), as entry value `function`.
    SaveEntry {
        function: u32,
        cfa: Expr,
        registers: Vec<(u16, Expr)>,
    },
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Type,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Int(u64),
    Str(Vec<u8>),
    Var(VarId),
    /// Reads a plain map's value or an aggregation's current (this CPU's) value; 0 / empty when the
    /// key is absent.
    MapRead {
        map: MapId,
        keys: Vec<Expr>,
    },
    Builtin(Builtin),
    /// `args->field` of a tracepoint.
    ArgsField {
        offset: u32,
        size: u32,
        ty: FieldType,
    },
    /// What `register` held when `function` (a [`StmtKind::SaveEntry`]'s) was entered by this
    /// thread in the frame whose CFA is `cfa`; 0, counted, when its entry was not seen (the
    /// function was entered before the probes were attached).
    EntryValue {
        function: u32,
        register: u16,
        cfa: Box<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// Short-circuit `&&` (`is_and`) or `||`, yielding 0 or 1.
    Logical {
        is_and: bool,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// String equality (`==`/`!=`) or strncmp; yields 0/1 (strncmp: 0 when equal).
    StrCompare {
        negate: bool,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        limit: u32,
    },
    /// Byte-for-byte equality (`==`, or `!=` when `negate`) of two arrays of one type, as
    /// C definitions give them (`$a->x == $b->x`); yields 0/1.
    MemEqual {
        negate: bool,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Ternary {
        cond: Box<Expr>,
        then_expr: Box<Expr>,
        else_expr: Box<Expr>,
    },
    /// Integer cast: truncates then sign- or zero-extends per `ty`.
    Cast {
        expr: Box<Expr>,
    },
    Tuple(Vec<Expr>),
    /// `str(ptr[, len])`: reads a NUL-terminated string from memory into a `Str` of `ty`.
    ReadStr {
        ptr: Box<Expr>,
        limit: Option<Box<Expr>>,
    },
    /// `x++`, `--x`: moves by `step` (1, or a pointer's pointee size).
    IncDec {
        target: LValue,
        increment: bool,
        prefix: bool,
        step: u32,
    },
    /// `kstack`, `ustack(perf, 5)`: captures the current stack into its stack map.
    Stack(crate::types::StackType),
    /// `ksym(addr)` / `usym(addr)`: the address, and for user symbols the current pid.
    Symbol {
        addr: Box<Expr>,
        user: bool,
    },
    /// A value of `ty` read from kernel memory at `addr + offset` (`bpf_probe_read_kernel`): the
    /// end of a `->`/`.`/`[N]` chain, or `*ptr`. A bitfield is extracted from the bytes read.
    KernelRead {
        addr: Box<Expr>,
        offset: u32,
        bitfield: Option<crate::types::Bitfield>,
        /// The memory `addr` points into, which picks the helper that reads it.
        space: AddrSpace,
    },
    /// `uptr(p)`, `kptr(p)`, `uaddr("sym")`: `expr`'s value, an address marked as one into
    /// `space` for the reads through it.
    Address {
        expr: Box<Expr>,
        space: AddrSpace,
    },
    /// `strcontains(haystack, needle)`: 1 when `needle` occurs in `haystack`, searched as
    /// bpftrace 0.17 searches (only at offsets where the whole of `needle`'s type fits).
    StrContains {
        haystack: Box<Expr>,
        needle: Box<Expr>,
    },
    /// `ntop([af,] addr)`: the family, then the address (an integer's low 4 bytes as stored, or a
    /// 4- or 16-byte array).
    Inet {
        af: Box<Expr>,
        addr: Box<Expr>,
    },
    /// `buf(src, len)`: `len` bytes (at most the type's `cap`) read through a pointer, or taken
    /// from an array or string value.
    Buf {
        src: Box<Expr>,
        len: Box<Expr>,
    },
    /// `path(p)`: the file path of a `struct path *` (`bpf_d_path`).
    DPath(Box<Expr>),
    /// `bswap(x)`: `x`'s bytes reversed at its own width (`ty`'s).
    Bswap(Box<Expr>),
    /// A member of a struct or array value already on the stack (a variable, a map value):
    /// `$s.load`, `@m.bits[1]`.
    Member {
        base: Box<Expr>,
        offset: u32,
        bitfield: Option<crate::types::Bitfield>,
    },
}

/// Which memory an address is in, as bpftrace 0.17 tracks it: kernel memory for the arguments of kernel probes
/// and `curtask`, user memory for uprobes' arguments and the syscalls tracepoints'
/// pointers, unknown for integers written in the script or kept in variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrSpace {
    /// `bpf_probe_read_kernel`.
    Kernel,
    /// `bpf_probe_read_user`.
    User,
    /// `bpf_probe_read`, which on x86-64 reads kernel or user memory by the address.
    Unknown,
}

/// What `++`/`--` and compound assignment update.
#[derive(Clone, Debug)]
pub enum LValue {
    Var(VarId),
    Map { map: MapId, keys: Vec<Expr> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `arg0`..`arg5` of a uprobe or kprobe: the x86-64 argument registers; `argN` of a USDT
    /// probe: its Nth argument, where the probe's note says it is.
    Arg(u8),
    /// `retval` of a uretprobe or kretprobe: rax.
    Retval,
    Pid,
    Tid,
    Uid,
    Gid,
    Comm,
    Nsecs,
    Elapsed,
    Cpu,
    Rand,
    Cgroup,
    /// `numaid`: the NUMA node of the CPU the probe fires on.
    NumaId,
    /// `sarg0`..: the Nth word on the stack above the return address, where x86-64 passes
    /// integer arguments past the sixth.
    Sarg(u8),
    Curtask,
    /// `ctx`: the program's context pointer (`struct pt_regs *`, `struct bpf_perf_event_data *`).
    Ctx,
    /// The pid of `-c`'s child, a constant by the time the program is compiled.
    Cpid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    LogicalNot,
    BitNot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    /// Arithmetic when the left operand is signed.
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}
