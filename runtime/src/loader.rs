//! Loading a compiled object into the kernel: creating its maps, relocating its programs with
//! aya-obj, and loading each program with BPF_PROG_LOAD.
//!
//! rbt does this itself rather than through aya's `EbpfLoader`, for two reasons. Maps live in a
//! [`MapTable`] keyed by name that outlives any one object, so programs compiled later (the REPL)
//! load against the maps that are already there. And nothing is done that rbt's objects do not
//! need: `EbpfLoader` reads and parses the kernel's whole BTF (several MB) and probes a dozen
//! kernel features on every start, which was half of rbt's start-up time; rbt emits no CO-RE
//! relocations and no BTF-defined maps, so it needs neither.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use aya_obj::generated::bpf_insn;
use aya_obj::Object;
use compiler::hir::AttachPoint;
use compiler::program::BpfMap;

use crate::bpf_sys::{self, MapSpec};

/// `enum bpf_prog_type` values rbt loads.
const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_TYPE_PERF_EVENT: u32 = 7;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;

/// The kernel maps of a session, by their name in the object, with the layout each was made with.
#[derive(Default)]
pub struct MapTable {
    by_name: HashMap<String, (BpfMap, OwnedFd)>,
}

impl MapTable {
    /// Creates each map of `maps` that the table does not hold yet; returns their names.
    pub fn create_missing(&mut self, maps: &[BpfMap]) -> io::Result<Vec<String>> {
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
            let fd = match bpf_sys::map_create(&spec) {
                Ok(fd) => fd,
                Err(e) => {
                    self.remove(&created);
                    return Err(io::Error::new(e.kind(), format!("creating BPF map {}: {e}", m.name)));
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
    bpf_sys::map_create(&spec).is_ok()
}

/// Reads the object with aya-obj and patches every map reference with the descriptor of the map
/// of that name in `maps`. Returns each program's instructions, encoded, by program name.
pub fn relocate(elf: &[u8], maps: &MapTable) -> io::Result<HashMap<String, Vec<u8>>> {
    let mut obj = Object::parse(elf).map_err(|e| io::Error::other(format!("reading the BPF object: {e}")))?;
    let defs = std::mem::take(&mut obj.maps);
    let mut resolved = Vec::with_capacity(defs.len());
    for (name, def) in &defs {
        let fd = maps.fd(name).ok_or_else(|| io::Error::other(format!("map {name} was not created")))?;
        resolved.push((name.as_str(), fd, def));
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_maps(resolved.into_iter(), &text_sections)
        .map_err(|e| io::Error::other(format!("relocating maps: {e}")))?;
    obj.relocate_calls(&text_sections).map_err(|e| io::Error::other(format!("linking functions: {e}")))?;
    let mut out = HashMap::new();
    for (name, program) in &obj.programs {
        let function = obj
            .functions
            .get(&program.function_key())
            .ok_or_else(|| io::Error::other(format!("program {name} has no instructions")))?;
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

/// The program type an attach point needs, and for tracing programs the function it is loaded
/// for. Two probes with the same kind and the same instructions can share one loaded program.
pub fn program_kind(attach: &AttachPoint) -> (u32, Option<bpf_sys::AttachTarget>) {
    let prog_type = match attach {
        // BEGIN and END run once, through BPF_PROG_TEST_RUN, which raw tracepoint programs allow.
        AttachPoint::Begin | AttachPoint::End => BPF_PROG_TYPE_RAW_TRACEPOINT,
        AttachPoint::Tracepoint { .. } => BPF_PROG_TYPE_TRACEPOINT,
        AttachPoint::Profile { .. } | AttachPoint::Interval { .. } | AttachPoint::PerfCounter { .. } => {
            BPF_PROG_TYPE_PERF_EVENT
        }
        AttachPoint::RawTracepoint { .. } => BPF_PROG_TYPE_RAW_TRACEPOINT,
        // uprobes and kprobes both run kprobe-type programs over struct pt_regs.
        AttachPoint::Uprobe { .. } | AttachPoint::Usdt(_) | AttachPoint::Kprobe { .. } => BPF_PROG_TYPE_KPROBE,
        AttachPoint::Fentry { func, ret } => {
            let attach_type = if *ret { bpf_sys::BPF_TRACE_FEXIT } else { bpf_sys::BPF_TRACE_FENTRY };
            return (bpf_sys::BPF_PROG_TYPE_TRACING, Some(bpf_sys::AttachTarget { attach_type, btf_id: func.btf_id }));
        }
    };
    (prog_type, None)
}
