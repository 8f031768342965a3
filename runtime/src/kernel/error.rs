//! The kernel interface's errors, one enum per subsystem: loading programs ([`LoadError`], with
//! the verifier's log as a field of its own), attaching them ([`AttachError`]) and BPF maps
//! ([`MapError`]). Their messages are the ones rbt prints.

use std::io;
use std::path::PathBuf;

/// Why an object or one of its programs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// BPF_PROG_LOAD refused the program. `verifier_log` is the verifier's whole log, newlines
    /// intact (empty when the kernel refused it before verifying).
    #[error("the kernel rejected program {name}: {source}")]
    Rejected {
        name: String,
        #[source]
        source: io::Error,
        verifier_log: String,
    },
    #[error("reading the BPF object: {0}")]
    Object(String),
    #[error("relocating maps: {0}")]
    Relocation(String),
    #[error("linking functions: {0}")]
    Linking(String),
    #[error("map {name} was not created")]
    MapMissing { name: String },
    #[error("program {name} has no instructions")]
    NoInstructions { name: String },
}

/// Why a program could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// A file of the perf PMU of uprobes or kprobes is missing or unreadable.
    #[error("{}: {source} (does this kernel have {pmu}s?)", path.display())]
    Pmu {
        pmu: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bad {pmu} PMU type")]
    PmuType { pmu: String },
    #[error("this kernel's uprobes take no USDT semaphores (ref_ctr_offset)")]
    NoSemaphores,
    #[error(
        "this machine has no hardware performance counters (common in virtual machines); use software events or profile"
    )]
    NoHardwareCounters {
        #[source]
        source: io::Error,
    },
    /// perf_event_open of a hardware breakpoint answered ENOSPC: x86-64 has four debug registers.
    #[error("You are out of watchpoint registers (the CPU has four; each watchpoint takes one)")]
    NoWatchpointRegisters,
    /// perf_event_open of a hardware breakpoint answered ENOENT, ENODEV or EOPNOTSUPP: the
    /// kernel (or the hypervisor under it) offers no hardware breakpoints.
    #[error(
        "this machine offers no hardware breakpoints for watchpoints (the kernel lacks CONFIG_HAVE_HW_BREAKPOINT, or a hypervisor hides the debug registers)"
    )]
    NoHardwareBreakpoints {
        #[source]
        source: io::Error,
    },
    /// The kernel checks that a kprobe's offset starts an instruction and answers EILSEQ.
    #[error("offset {offset} is not at an instruction boundary of {function} (the kernel refused it)")]
    NotAnInstruction { function: String, offset: u64 },
    #[error("NUL in {what}")]
    Nul { what: &'static str },
    /// perf_event_open, BPF_LINK_CREATE and the other calls, or reading a tracepoint's id.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl AttachError {
    /// The kernel's errno, where the kernel answered: the session falls back from multi links
    /// to one attachment per probe on EINVAL, EOPNOTSUPP and ENOSYS.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            AttachError::Io(e)
            | AttachError::NoHardwareCounters { source: e }
            | AttachError::NoHardwareBreakpoints { source: e } => e.raw_os_error(),
            _ => None,
        }
    }
}

/// What failed on a BPF map.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("creating BPF map {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("looking up an element of a BPF map: {0}")]
    Lookup(#[source] io::Error),
    #[error("updating an element of a BPF map: {0}")]
    Update(#[source] io::Error),
    #[error("deleting an element of a BPF map: {0}")]
    Delete(#[source] io::Error),
    #[error("listing the keys of a BPF map: {0}")]
    Keys(#[source] io::Error),
    #[error("map iteration did not terminate")]
    Endless,
}

impl MapError {
    fn io(&self) -> Option<&io::Error> {
        match self {
            MapError::Create { source, .. } => Some(source),
            MapError::Lookup(e) | MapError::Update(e) | MapError::Delete(e) | MapError::Keys(e) => Some(e),
            MapError::Endless => None,
        }
    }
}

/// Map access happens while output is written: the decoders report both as `io::Error`s.
impl From<MapError> for io::Error {
    fn from(e: MapError) -> io::Error {
        let kind = e.io().map_or(io::ErrorKind::Other, io::Error::kind);
        io::Error::new(kind, e)
    }
}
