//! Loading a compiled object into the kernel: creating its maps, relocating its programs with
//! aya-obj, and loading each program with BPF_PROG_LOAD as the kind the compiler gave it.
//!
//! rbt does this itself rather than through aya's `EbpfLoader`, for two reasons. Maps live in a
//! [`MapTable`] keyed by name that outlives any one object, so programs compiled later (the REPL)
//! load against the maps that are already there. And nothing is done that rbt's objects do not
//! need: `EbpfLoader` reads and parses the kernel's whole BTF (several MB) and probes a dozen
//! kernel features on every start, which was half of rbt's start-up time; rbt emits no CO-RE
//! relocations and no BTF-defined maps, so it needs neither.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use aya_obj::generated::{bpf_attach_type, bpf_insn, bpf_prog_type};
use aya_obj::Object;
use compiler::program::{BpfMap, ProgramKind};

use super::error::{LoadError, MapError};
use super::sys::{self, MapSpec, ProgLoad};

/// The kernel maps of a session, by their name in the object, with the layout each was made with.
#[derive(Default)]
pub struct MapTable {
    by_name: HashMap<String, (BpfMap, OwnedFd)>,
}

impl MapTable {
    /// Creates each map of `maps` that the table does not hold yet; returns their names.
    pub fn create_missing(&mut self, maps: &[BpfMap]) -> Result<Vec<String>, MapError> {
        let mut created = Vec::new();
        for m in maps {
            if self.by_name.contains_key(&m.name) {
                continue;
            }
            let spec = MapSpec {
                name: &m.name,
                map_type: m.map_type,
                key_size: m.key_size,
                value_size: m.value_size,
                max_entries: m.max_entries,
                flags: m.flags,
            };
            let fd = match sys::map_create(&spec) {
                Ok(fd) => fd,
                Err(e) => {
                    self.remove(&created);
                    return Err(e);
                }
            };
            self.by_name.insert(m.name.clone(), (m.clone(), fd));
            created.push(m.name.clone());
        }
        Ok(created)
    }

    /// Drops maps (those an entry created before it failed to load).
    pub fn remove(&mut self, names: &[String]) {
        for name in names {
            self.by_name.remove(name);
        }
    }

    pub fn fd(&self, name: &str) -> Option<RawFd> {
        self.by_name.get(name).map(|(_, fd)| fd.as_raw_fd())
    }

    /// The map's descriptor, borrowed for as long as the table holds it.
    pub fn borrow_fd(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.by_name.get(name).map(|(_, fd)| fd.as_fd())
    }

    /// The layout a map was created with.
    pub fn layout(&self, name: &str) -> Option<&BpfMap> {
        self.by_name.get(name).map(|(layout, _)| layout)
    }
}

/// Whether the kernel has BPF ring buffers (Linux 5.8+): creates a one-page one and drops it.
pub fn ringbuf_supported(page_size: u32) -> bool {
    let spec = MapSpec {
        name: "rbt_probe",
        map_type: compiler::bpf::helpers::BPF_MAP_TYPE_RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: page_size,
        flags: 0,
    };
    sys::map_create(&spec).is_ok()
}

/// Whether this kernel has what the probe programs' user-stack unwinder calls:
/// `bpf_get_current_task_btf` (Linux 5.11, with BTF) and `bpf_task_pt_regs` (5.15). Tried by
/// loading a five-instruction kprobe program that calls both; the error is the kernel's reason.
pub fn user_unwinding_supported() -> Result<(), String> {
    use compiler::bpf::helpers::Helper;
    use compiler::bpf::insn::{encode, Insn, Reg};
    let insns = encode(&[
        Insn::call_helper(Helper::GetCurrentTaskBtf),
        Insn::mov64_reg(Reg::R1, Reg::R0),
        Insn::call_helper(Helper::TaskPtRegs),
        Insn::mov64_imm(Reg::R0, 0),
        Insn::exit(),
    ]);
    let load = ProgLoad {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_KPROBE as u32,
        attach_type: 0,
        attach_btf_id: 0,
        name: "rbt_probe",
        insns: &insns,
    };
    let mut log = vec![0u8; 4096];
    match sys::prog_load(&load, &mut log, 1) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = String::from_utf8_lossy(&log);
            let last = text.trim_end_matches('\0').lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            Err(if last.is_empty() { e.to_string() } else { format!("{e}: {last}") })
        }
    }
}

/// Reads the object with aya-obj and patches every map reference with the descriptor of the map
/// of that name in `maps`. Returns each program's instructions, encoded, by program name.
pub fn relocate(elf: &[u8], maps: &MapTable) -> Result<HashMap<String, Vec<u8>>, LoadError> {
    let mut obj = Object::parse(elf).map_err(|e| LoadError::Object(e.to_string()))?;
    let defs = std::mem::take(&mut obj.maps);
    let mut resolved = Vec::with_capacity(defs.len());
    for (name, def) in &defs {
        let fd = maps.fd(name).ok_or_else(|| LoadError::MapMissing { name: name.clone() })?;
        resolved.push((name.as_str(), fd, def));
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_maps(resolved.into_iter(), &text_sections).map_err(|e| LoadError::Relocation(e.to_string()))?;
    obj.relocate_calls(&text_sections).map_err(|e| LoadError::Linking(e.to_string()))?;
    let mut out = HashMap::new();
    for (name, program) in &obj.programs {
        let function = obj
            .functions
            .get(&program.function_key())
            .ok_or_else(|| LoadError::NoInstructions { name: name.clone() })?;
        out.insert(name.clone(), encode(&function.instructions));
    }
    Ok(out)
}

fn encode(insns: &[bpf_insn]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(insns.len() * 8);
    for insn in insns {
        let regs = insn.dst_reg() | (insn.src_reg() << 4);
        bytes.push(insn.code);
        bytes.push(regs);
        bytes.extend_from_slice(&insn.off.to_le_bytes());
        bytes.extend_from_slice(&insn.imm.to_le_bytes());
    }
    bytes
}

/// A multi link a kprobe or uprobe program is loaded for: such a program attaches no other way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MultiLink {
    /// One link for many uprobes of one binary (Linux 6.6+).
    Uprobe,
    /// One link for many kprobes, through fprobe (Linux 5.18+).
    Kprobe,
}

/// What BPF_PROG_LOAD needs to know of a program's kind: `(prog_type, expected_attach_type,
/// attach_btf_id)`.
fn load_types(kind: ProgramKind, multi: Option<MultiLink>) -> (bpf_prog_type, u32, u32) {
    let multi_type = |m: MultiLink| match m {
        MultiLink::Uprobe => bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32,
        MultiLink::Kprobe => bpf_attach_type::BPF_TRACE_KPROBE_MULTI as u32,
    };
    match kind {
        ProgramKind::Kprobe => (bpf_prog_type::BPF_PROG_TYPE_KPROBE, multi.map_or(0, multi_type), 0),
        ProgramKind::Tracepoint => (bpf_prog_type::BPF_PROG_TYPE_TRACEPOINT, 0, 0),
        ProgramKind::PerfEvent => (bpf_prog_type::BPF_PROG_TYPE_PERF_EVENT, 0, 0),
        ProgramKind::RawTracepoint => (bpf_prog_type::BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0),
        ProgramKind::Tracing { ret, btf_id } => {
            let attach = if ret { bpf_attach_type::BPF_TRACE_FEXIT } else { bpf_attach_type::BPF_TRACE_FENTRY };
            (bpf_prog_type::BPF_PROG_TYPE_TRACING, attach as u32, btf_id)
        }
    }
}

/// A loaded program and, when asked for, the verifier's statistics line
/// (`processed 10 insns (limit 1000000) max_states_per_insn 0 total_states 0 ...`).
pub struct LoadedProgram {
    pub fd: OwnedFd,
    pub stats: Option<String>,
}

/// Loads a program of `kind` (for `multi` links, if given). `insns` are encoded 8-byte
/// instructions. The first attempt asks for no log, or for statistics only under `stats`; a
/// rejected program is loaded again with the verifier's whole log so the caller can show why.
/// Kernels since 6.4 keep the log's tail when it overflows; older ones fail with ENOSPC, so the
/// buffer grows until the log fits.
pub fn load_program(
    kind: ProgramKind,
    multi: Option<MultiLink>,
    name: &str,
    insns: &[u8],
    stats: bool,
) -> Result<LoadedProgram, LoadError> {
    let (prog_type, attach_type, attach_btf_id) = load_types(kind, multi);
    let load = ProgLoad { prog_type: prog_type as u32, attach_type, attach_btf_id, name, insns };
    let attempt = |log: &mut [u8], log_level: u32| {
        let result = sys::prog_load(&load, log, log_level);
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        (result, String::from_utf8_lossy(&log[..end]).into_owned())
    };
    // Log level 4: statistics only; 1: every instruction the verifier walks.
    let (first, log) = if stats { attempt(&mut vec![0u8; 4096], 4) } else { attempt(&mut [], 0) };
    let first = match first {
        Ok(fd) => return Ok(LoadedProgram { fd, stats: stats.then_some(log) }),
        Err(e) => e,
    };
    let rejected = |source, verifier_log| LoadError::Rejected { name: name.to_owned(), source, verifier_log };
    let mut size = 1 << 20;
    loop {
        let (result, log) = attempt(&mut vec![0u8; size], 1 | 4);
        match result {
            // Loaded the second time: report the first failure with this log.
            Ok(_) => return Err(rejected(first, log)),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < (1 << 28) => size *= 4,
            Err(e) => return Err(rejected(e, log)),
        }
    }
}

/// Whether the kernel loads fentry programs for the kernel function with BTF id `btf_id`: loads
/// (and drops) the smallest one. Some kernels lack BPF trampolines, others forbid tracing
/// programs (a BPF LSM policy), and only trying tells. The error is the kernel's answer.
pub fn can_load_fentry(btf_id: u32) -> io::Result<()> {
    // `r0 = 0; exit`
    let insns = [0xb7u8, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    match load_program(ProgramKind::Tracing { ret: false, btf_id }, None, "rbt_probe", &insns, false) {
        Ok(_) => Ok(()),
        Err(LoadError::Rejected { source, .. }) => Err(source),
        Err(e) => Err(io::Error::other(e)),
    }
}
