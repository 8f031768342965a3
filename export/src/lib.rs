//! Stack profiles out of rbt: the data model a map of stacks becomes, and its three exports —
//! Brendan Gregg's folded stacks (`folded`), an SVG flame graph (`flamegraph`, drawn by inferno)
//! and a gzipped pprof profile (`pprof`, protobuf encoded by hand in `protobuf`); and the OTLP
//! profiles export request (`otlp`, the opentelemetry-proto crate's messages).
//!
//! The crate does no IO of its own beyond writing to the `Write` it is handed, and knows nothing
//! of BPF: the runtime reads a map such as `@[kstack, ustack, comm] = sum(nsecs - $t)`, has the
//! symbolizer turn addresses into [`Frame`]s, and hands a [`Profile`] here.

mod flamegraph;
mod folded;
mod otlp;
mod pprof;
mod protobuf;

use std::io;

pub use flamegraph::{write_flame_graph, FlameGraphOptions, Palette};
pub use folded::{fold, write_folded, FoldedOptions, FoldedStack, EMPTY_STACK};
pub use otlp::{encode_otlp, otlp_request, AttributeValue, Attributes};
pub use pprof::{encode_pprof, write_pprof};

/// A profile: what was measured, and one [`Sample`] per stack (or per map key holding stacks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    /// A short human title, e.g. "Off-CPU time"; the flame graph's title, with the unit appended.
    pub title: String,
    /// The script that made the profile; a pprof comment and, on one line, the flame graph's subtitle.
    pub script: Option<String>,
    /// What each sample's value measures, e.g. `offcpu`/`nanoseconds` or `samples`/`count`.
    pub sample_type: ValueType,
    /// The sampling period, e.g. `cpu`/`nanoseconds` every 10101010 for `profile:hz:99`; `None`
    /// when values are not sampled (pprof then gets the sample type and a period of 1).
    pub period: Option<Period>,
    /// When tracing started, in nanoseconds since the Unix epoch (0 when unknown).
    pub time_nanos: i64,
    /// How long tracing ran, in nanoseconds (0 when unknown).
    pub duration_nanos: i64,
    /// What is known about the binaries that frames name in [`Frame::module`] (build ids).
    pub modules: Vec<Module>,
    pub samples: Vec<Sample>,
}

/// A pprof value type: what is counted (`offcpu`, `samples`, `cpu`) in which unit
/// (`nanoseconds`, `count`, `bytes`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValueType {
    pub kind: String,
    pub unit: String,
}

impl ValueType {
    pub fn new(kind: impl Into<String>, unit: impl Into<String>) -> Self {
        ValueType { kind: kind.into(), unit: unit.into() }
    }
}

/// One event is counted every `every` units of `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub kind: ValueType,
    pub every: i64,
}

/// A binary that frames live in, keyed by its path (the same string as [`Frame::module`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    /// The GNU build id as lowercase hex, when the binary has one.
    pub build_id: Option<String>,
}

/// One stack and its value. Frames go from the ROOT (`main`, `entry_SYSCALL_64`) to the LEAF
/// (the function running when the stack was taken). User and kernel frames are kept apart so the
/// folded output can put the user stack first and the kernel stack on top, as BCC's tools do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sample {
    /// Frames below the stacks from the map key's other parts, outermost first (e.g. `comm`);
    /// BCC's folded output starts every line with the process name this way.
    pub leading: Vec<String>,
    pub user: Vec<Frame>,
    pub kernel: Vec<Frame>,
    pub value: u64,
    /// pprof labels (the folded format and flame graphs have none).
    pub labels: Vec<Label>,
}

/// One symbolized frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The function, or the raw address (`0x7f3a12`) when the symbolizer did not know it.
    pub name: String,
    /// The binary's path (`/usr/lib/x86_64-linux-gnu/libc.so.6`, `[kernel.kallsyms]`).
    pub module: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub address: Option<u64>,
    /// This frame was inlined into its caller, the frame before it (toward the root), and so
    /// shares that frame's address.
    pub inlined: bool,
}

impl Frame {
    /// A frame that is only a name.
    pub fn new(name: impl Into<String>) -> Self {
        Frame { name: name.into(), ..Frame::default() }
    }

    #[must_use]
    pub fn in_module(mut self, module: impl Into<String>) -> Self {
        self.module = Some(module.into());
        self
    }

    #[must_use]
    pub fn at_line(mut self, file: impl Into<String>, line: u32) -> Self {
        self.file = Some(file.into());
        self.line = Some(line);
        self
    }

    #[must_use]
    pub fn at_address(mut self, address: u64) -> Self {
        self.address = Some(address);
        self
    }

    #[must_use]
    pub fn inlined(mut self) -> Self {
        self.inlined = true;
        self
    }
}

/// A pprof sample label: a string (`comm`) or a number with an optional unit (`pid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub key: String,
    pub value: LabelValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelValue {
    Str(String),
    Num { value: i64, unit: Option<String> },
}

impl Label {
    pub fn str(key: impl Into<String>, value: impl Into<String>) -> Self {
        Label { key: key.into(), value: LabelValue::Str(value.into()) }
    }

    pub fn num(key: impl Into<String>, value: i64) -> Self {
        Label { key: key.into(), value: LabelValue::Num { value, unit: None } }
    }

    /// The `pid` label, numeric, as pprof's own profilers write it.
    pub fn pid(pid: u32) -> Self {
        Label::num("pid", i64::from(pid))
    }

    /// The `comm` label, a string.
    pub fn comm(comm: impl Into<String>) -> Self {
        Label::str("comm", comm)
    }
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the profile has no samples with a nonzero value, so there is no flame graph to draw")]
    NoSamples,
    #[error("could not write the {format}: {source}")]
    Write {
        format: &'static str,
        #[source]
        source: io::Error,
    },
}
