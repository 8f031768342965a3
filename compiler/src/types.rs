//! rbt's value types, as the checker assigns them and the backend lays them out in memory.

use std::fmt;
use std::sync::Arc;

use crate::ktypes::KTypeId;

/// The type of an expression or of a map's key part or value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// An integer of `bytes` (1, 2, 4 or 8) bytes. In registers every integer is 64 bits wide,
    /// sign- or zero-extended; `bytes` matters for casts, storage and printing.
    Int { bytes: u8, signed: bool },
    /// A NUL-padded byte string of at most `len` bytes, the NUL included (bpftrace's `string[N]`).
    Str { len: u32 },
    /// A tuple of values laid out one after another, each field 8-byte aligned.
    Tuple(Vec<Type>),
    /// A pointer into kernel or user memory, e.g. a tracepoint's `const char *` field. It behaves
    /// as an unsigned 64-bit integer, and `str()` can read through it. `target` is the kernel
    /// type pointed at, when known from BTF (`curtask`, casts, struct fields): `->` reads it.
    Pointer { pointee: String, target: Option<KTypeId> },
    /// A struct or union copied out of kernel memory, laid out as the kernel lays it out.
    Record(Arc<RecordLayout>),
    /// A fixed array of integers, pointers or records (arrays of `char` are strings), laid out
    /// natively: `unsigned long bits[4]`.
    Array { elem: Box<Type>, len: u32 },
    /// A kernel or user stack: a stack id in the stack map for its depth, and for user stacks
    /// the process it belongs to (16 bytes: `i64 id, u64 pid`). The id is negative when the
    /// capture failed (the error the kernel returned).
    Stack(StackType),
    /// `ksym(addr)` / `usym(addr)`: an address printed as the symbol covering it (16 bytes: the
    /// address, then for user symbols the pid whose address space it is in).
    Symbol { user: bool },
    /// `ntop()`'s network address: an address family (u64: 2 for IPv4, 10 for IPv6) and 16
    /// address bytes in network order; prints as `127.0.0.1` / `fe80::1`.
    Inet,
    /// `strftime(FORMAT, ns)`: nanoseconds since boot, printed as local wall-clock time in
    /// `FORMAT` (`strftime(3)`, plus `%f` for microseconds).
    Timestamp(String),
    /// `buf(p, len)`: a u64 length, then up to `cap` bytes; printed with non-printable bytes as
    /// `\xNN` (`%r` in printf).
    Buffer { cap: u32 },
    /// `macaddr(a)`: six bytes, printed `4C:69:6E:75:78:00`.
    MacAddr,
    /// `username`: a uid (u64), printed as its name in `/etc/passwd` (empty when it has none).
    Username,
    /// `cgroup_path(id[, filter])`: a cgroup id (u64), printed as its path in every cgroup
    /// hierarchy whose name matches the filter (`*` wildcards; every hierarchy when `*`):
    /// `unified:/user.slice,cpu:/`.
    CgroupPath(String),
    /// `strerror(errno)`: an error number (u64), printed as the C library's text for it
    /// (`Operation not permitted`).
    Strerror,
    /// The tracepoint `args` record: only usable through `->field`.
    Args,
    /// No value: a statement-like call such as `printf`.
    None,
}

/// What a stack value is and how it prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StackType {
    /// `ustack` rather than `kstack`.
    pub user: bool,
    pub mode: StackMode,
    /// Most frames kept (`kstack(N)`); also selects the stack map.
    pub limit: u32,
}

/// `kstack(MODE)`: how frames print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StackMode {
    /// `sym+off`, one per line (bpftrace's default).
    Bpftrace,
    /// `\tADDR sym+off (module)`, as perf prints.
    Perf,
    /// Addresses in hex, unsymbolized (rbt's addition).
    Raw,
}

/// The most frames a stack keeps, and the default (the kernel's `perf_event_max_stack`).
pub const MAX_STACK_FRAMES: u32 = 127;

impl StackType {
    /// Bytes of a stack value: the id, then the pid.
    pub const SIZE: u32 = 16;

    pub fn name(&self) -> &'static str {
        if self.user {
            "ustack"
        } else {
            "kstack"
        }
    }
}

impl Type {
    pub const I64: Type = Type::Int { bytes: 8, signed: true };
    pub const U64: Type = Type::Int { bytes: 8, signed: false };
    pub const U32: Type = Type::Int { bytes: 4, signed: false };

    pub fn is_integer(&self) -> bool {
        matches!(self, Type::Int { .. } | Type::Pointer { .. })
    }

    pub fn is_signed(&self) -> bool {
        matches!(self, Type::Int { signed: true, .. })
    }

    /// An integer's own width in bytes (1, 2, 4 or 8; 8 for pointers), whatever it occupies in
    /// storage ([`Type::size`]).
    pub fn int_bytes(&self) -> u32 {
        match self {
            Type::Int { bytes, .. } => u32::from(*bytes),
            _ => 8,
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Type::Str { .. })
    }

    /// Bytes this value occupies in a map key, map value or event record.
    pub fn size(&self) -> u32 {
        match self {
            Type::Int { .. } | Type::Pointer { .. } => 8,
            Type::Record(layout) => layout.size,
            Type::Array { elem, len } => elem.native_size() * len,
            Type::Str { len } => *len,
            Type::Tuple(fields) => fields.iter().map(|f| align8(f.size())).sum(),
            Type::Stack(_) => StackType::SIZE,
            Type::Symbol { .. } => 16,
            Type::Inet => 24,
            Type::Timestamp(_) => 8,
            Type::Buffer { cap } => 8 + cap,
            Type::MacAddr => 6,
            Type::Username | Type::CgroupPath(_) | Type::Strerror => 8,
            Type::Args | Type::None => 0,
        }
    }

    /// Bytes a value of this type occupies inside a kernel struct or array: integers at their own
    /// width, where [`Type::size`] gives the 8 bytes rbt stores them in.
    pub fn native_size(&self) -> u32 {
        match self {
            Type::Int { bytes, .. } => u32::from(*bytes),
            other => other.size(),
        }
    }

    /// Size and alignment of a value as bpftrace 0.17 lays it out, which `sizeof` reports: tuples
    /// are C structs whose fields sit at their natural alignment (integers at their width,
    /// strings at 1), padded to their largest alignment, so `((int8)1, (int16)1, (int32)1)` is 8
    /// bytes. rbt stores tuples in its own layout ([`Type::tuple_offsets`]); `lower/tuples.rs`
    /// maps one onto the other where bpftrace's byte copies show.
    pub fn bpftrace_layout(&self) -> (u32, u32) {
        match self {
            Type::Int { .. } | Type::Pointer { .. } => (self.int_bytes(), self.int_bytes()),
            Type::Str { len } => (*len, 1),
            Type::Tuple(fields) => {
                let (mut end, mut align) = (0u32, 1u32);
                for f in fields {
                    let (size, a) = f.bpftrace_layout();
                    end = end.next_multiple_of(a) + size;
                    align = align.max(a);
                }
                (end.next_multiple_of(align), align)
            }
            // A stack is rbt's own 16-byte (id, pid) pair, 8-aligned.
            Type::Stack(_) => (StackType::SIZE, 8),
            Type::Symbol { .. } => (16, 8),
            Type::Inet => (24, 8),
            Type::Timestamp(_) => (8, 8),
            Type::Buffer { cap } => (8 + cap, 8),
            Type::MacAddr => (6, 1),
            // rbt's 8-byte ids (a uid, a cgroup id); bpftrace 0.17 gives cgroup_path 16.
            Type::Username | Type::CgroupPath(_) | Type::Strerror => (8, 8),
            // bpftrace 0.17 keeps a struct as bytes (alignment 1), an array at its elements'.
            Type::Record(layout) => (layout.size, 1),
            Type::Array { elem, len } => (elem.native_size() * len, elem.bpftrace_layout().1),
            Type::Args | Type::None => (0, 1),
        }
    }

    /// Byte offsets of a tuple's fields.
    pub fn tuple_offsets(fields: &[Type]) -> Vec<u32> {
        let mut offset = 0;
        fields
            .iter()
            .map(|f| {
                let at = offset;
                offset += align8(f.size());
                at
            })
            .collect()
    }

    /// Whether a value of type `other` may be stored where `self` is expected (same shape;
    /// integers of any width; shorter strings into longer ones).
    pub fn accepts(&self, other: &Type) -> bool {
        match (self, other) {
            (a, b) if a.is_integer() && b.is_integer() => true,
            (Type::Str { .. }, Type::Str { .. }) => true,
            (Type::Tuple(a), Type::Tuple(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.accepts(y)),
            // A stack id only means something in the stack map of its own depth.
            (Type::Stack(a), Type::Stack(b)) => a == b,
            (Type::Symbol { user: a }, Type::Symbol { user: b }) => a == b,
            (Type::Inet, Type::Inet) => true,
            (Type::Timestamp(a), Type::Timestamp(b)) => a == b,
            (Type::Buffer { .. }, Type::Buffer { .. }) => true,
            (Type::MacAddr, Type::MacAddr) => true,
            (Type::Username, Type::Username) | (Type::Strerror, Type::Strerror) => true,
            (Type::CgroupPath(a), Type::CgroupPath(b)) => a == b,
            (Type::Record(a), Type::Record(b)) => a.name == b.name && a.size == b.size,
            (Type::Array { .. }, Type::Array { .. }) => self == other,
            _ => false,
        }
    }

    /// The wider of two compatible types: longer strings, tuples field by field.
    pub fn widen(&self, other: &Type) -> Type {
        match (self, other) {
            (Type::Str { len: a }, Type::Str { len: b }) => Type::Str { len: (*a).max(*b) },
            (Type::Buffer { cap: a }, Type::Buffer { cap: b }) => Type::Buffer { cap: (*a).max(*b) },
            (Type::Tuple(a), Type::Tuple(b)) if a.len() == b.len() => {
                Type::Tuple(a.iter().zip(b).map(|(x, y)| x.widen(y)).collect())
            }
            // bpftrace 0.17 keeps the first integer type: `@m = 5; @m = (uint8)200` stores -56
            // into the signed map, and a tuple's int8 field stays one byte in its layout.
            (Type::Int { .. }, Type::Int { .. }) => self.clone(),
            _ => self.clone(),
        }
    }
}

/// A struct or union as rbt stores and prints it: bpftrace prints every member with a type it
/// can show (`{ .weight = 1048576, .inv_weight = 4194304 }`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordLayout {
    /// With its tag: `struct load_weight`.
    pub name: String,
    pub size: u32,
    pub fields: Vec<RecordField>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordField {
    pub name: String,
    /// From the start of the record.
    pub offset: u32,
    pub ty: Type,
    pub bitfield: Option<Bitfield>,
}

/// A bitfield member: `bits` bits starting `shift` bits into the little-endian word at the
/// member's byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bitfield {
    pub shift: u8,
    pub bits: u8,
}

impl Bitfield {
    /// Bytes to read at the member's offset to hold every bit of it.
    pub fn bytes(&self) -> u32 {
        (u32::from(self.shift) + u32::from(self.bits)).div_ceil(8).min(8)
    }

    /// The member's value out of the bytes read at its offset (zero-extended; `signed` sign-extends).
    pub fn extract(&self, word: u64, signed: bool) -> u64 {
        let bits = u32::from(self.bits).min(64);
        let value = word >> self.shift;
        if bits >= 64 {
            return value;
        }
        if signed {
            (((value << (64 - bits)) as i64) >> (64 - bits)) as u64
        } else {
            value & ((1u64 << bits) - 1)
        }
    }
}

pub fn align8(n: u32) -> u32 {
    (n + 7) & !7
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Int { bytes, signed } => {
                write!(f, "{}int{}", if *signed { "" } else { "u" }, u32::from(*bytes) * 8)
            }
            Type::Str { len } => write!(f, "string[{len}]"),
            Type::Tuple(fields) => {
                write!(f, "(")?;
                for (i, t) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{t}")?;
                }
                write!(f, ")")
            }
            Type::Pointer { pointee, .. } => write!(f, "{pointee} *"),
            Type::Record(layout) => write!(f, "{}", layout.name),
            Type::Array { elem, len } => write!(f, "{elem}[{len}]"),
            Type::Stack(st) => {
                let mode = match st.mode {
                    StackMode::Bpftrace => "",
                    StackMode::Perf => "perf, ",
                    StackMode::Raw => "raw, ",
                };
                write!(f, "{}({mode}{})", st.name(), st.limit)
            }
            Type::Symbol { user } => write!(f, "{}", if *user { "usym" } else { "ksym" }),
            Type::Inet => write!(f, "inet"),
            Type::Timestamp(_) => write!(f, "timestamp"),
            Type::Buffer { .. } => write!(f, "buffer"),
            Type::MacAddr => write!(f, "macaddr"),
            Type::Username => write!(f, "username"),
            Type::CgroupPath(_) => write!(f, "cgroup_path"),
            Type::Strerror => write!(f, "strerror"),
            Type::Args => write!(f, "args"),
            Type::None => write!(f, "none"),
        }
    }
}

/// What a map holds: a plain value, or one of the aggregations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MapValue {
    /// `@m = expr`: the last value assigned.
    Plain(Type),
    Count,
    Sum {
        signed: bool,
    },
    Min {
        signed: bool,
    },
    Max {
        signed: bool,
    },
    Avg {
        signed: bool,
    },
    Stats {
        signed: bool,
    },
    Hist,
    Lhist {
        min: i64,
        max: i64,
        step: i64,
    },
}

impl MapValue {
    /// Aggregations are kept per CPU and combined by the runtime.
    pub fn is_aggregation(&self) -> bool {
        !matches!(self, MapValue::Plain(_))
    }

    /// Bytes of one (per-CPU) value slot in the BPF map: aggregations keep one u64 per key.
    pub fn slot_size(&self) -> u32 {
        match self {
            MapValue::Plain(t) => align8(t.size()).max(8),
            _ => 8,
        }
    }

    /// Whether the BPF key ends with a u64 bucket: a histogram's bucket index, or avg's and
    /// stats' 0 (count) and 1 (total).
    pub fn is_bucketed(&self) -> bool {
        matches!(self, MapValue::Hist | MapValue::Lhist { .. } | MapValue::Avg { .. } | MapValue::Stats { .. })
    }

    /// The name used in diagnostics, as bpftrace spells the type.
    pub fn describe(&self) -> String {
        match self {
            MapValue::Plain(t) => t.to_string(),
            MapValue::Count => "count".into(),
            MapValue::Sum { .. } => "sum".into(),
            MapValue::Min { .. } => "min".into(),
            MapValue::Max { .. } => "max".into(),
            MapValue::Avg { .. } => "avg".into(),
            MapValue::Stats { .. } => "stats".into(),
            MapValue::Hist => "hist".into(),
            MapValue::Lhist { .. } => "lhist".into(),
        }
    }

    /// The type an expression reading this map gets.
    pub fn read_type(&self) -> Type {
        match self {
            MapValue::Plain(t) => t.clone(),
            MapValue::Count | MapValue::Hist | MapValue::Lhist { .. } => Type::U64,
            MapValue::Sum { signed }
            | MapValue::Min { signed }
            | MapValue::Max { signed }
            | MapValue::Avg { signed }
            | MapValue::Stats { signed } => Type::Int { bytes: 8, signed: *signed },
        }
    }
}

/// Number of `hist()` buckets: negative, zero, then one per power of two up to 2^31 (bpftrace
/// 0.17 puts every larger value into the last one).
pub const HIST_BUCKETS: u32 = 34;

/// Number of `lhist()` buckets: below `min`, one per step, and at or above `max`.
pub fn lhist_buckets(min: i64, max: i64, step: i64) -> u32 {
    let steps = (max - min) / step;
    u32::try_from(steps + 2).unwrap_or(u32::MAX)
}
