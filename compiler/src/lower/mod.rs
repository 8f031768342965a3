//! Lowering the checked program to IR: one [`ir::Function`] per probe, and the table of BPF maps
//! (user maps, the event ring buffer, error counters) they use.

mod bpftrace_location;
mod builder;
mod entry;
mod expr;
mod helper_errors;
mod maps;
mod memory;
mod search;
mod stmt;
mod tuples;
pub mod unwind;
mod watch;

use crate::bpf::helpers as bpf_consts;
use crate::hir::{self, MapDecl};
use crate::ir::{self, MapRef, StackRef};
use crate::program::{BpfMap, MapRole, ERROR_COUNTERS};
use crate::types::{lhist_buckets, MapValue, HIST_BUCKETS};
use builder::FnBuilder;
pub use helper_errors::{locate_sites, HelperSite, SiteSpan};

/// Settings that shape the generated code.
#[derive(Clone, Debug)]
pub struct LowerOptions {
    /// Most keys a keyed map holds (`RBT_MAP_KEYS_MAX`, default 4096 as bpftrace).
    pub map_keys_max: u32,
    /// How events (printf, print, exit, ...) reach user space.
    pub events: EventTransport,
    /// `CLOCK_MONOTONIC` time in ns when tracing starts, for `elapsed`.
    pub start_ns: u64,
    pub cpid: Option<u32>,
    /// `-p PID`: every probe fires only for this process.
    pub pid_filter: Option<u32>,
    /// Stacks each stack map holds (`RBT_STACK_STORAGE`).
    pub stack_storage: u32,
    /// Error counters are kept per probe for this many probes (the last slot is shared by the
    /// rest): 1 for a script, many in the REPL, which reports lost events per probe.
    pub probe_slots: u32,
    /// `-k` (1) or `-kk` (2): which failed helper calls are reported to the runtime
    /// (`helper_errors.rs`); 0 reports none.
    pub helper_checks: u8,
    /// How user stacks are walked (`RBT_USTACK_UNWIND`).
    pub user_unwind: unwind::UserUnwind,
    /// Rows the unwind table map holds, for every file of every traced process together
    /// (`RBT_UNWIND_ROWS`).
    pub unwind_rows: u32,
}

/// The channel events take to user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventTransport {
    /// One BPF ring buffer of `bytes` (a power of two, a multiple of the page size); Linux 5.8+.
    RingBuf { bytes: u32 },
    /// A perf event array with one buffer per possible CPU, for kernels without ring buffers.
    PerfArray { cpus: u32 },
}

impl Default for LowerOptions {
    fn default() -> LowerOptions {
        LowerOptions {
            map_keys_max: 4096,
            events: EventTransport::RingBuf { bytes: 1 << 23 },
            start_ns: 0,
            cpid: None,
            pid_filter: None,
            probe_slots: 1,
            stack_storage: 4096,
            helper_checks: 0,
            user_unwind: unwind::UserUnwind::Auto,
            unwind_rows: 1 << 22,
        }
    }
}

/// The lowered program: IR functions (one per probe, same order) and the BPF maps.
pub struct Lowered {
    pub functions: Vec<ir::Function>,
    pub bpf_maps: Vec<BpfMap>,
    pub map_storage: Vec<usize>,
    pub print_types: Vec<crate::types::Type>,
    /// The checked helper calls (`-k`), indexed by their reports' ids.
    pub helper_sites: Vec<HelperSite>,
    pub events: MapRef,
    pub errors: MapRef,
}

pub fn lower(program: &hir::Program, options: &LowerOptions) -> Lowered {
    let mut bpf_maps = Vec::new();
    let mut map_storage = Vec::new();
    for decl in &program.maps {
        map_storage.push(bpf_maps.len());
        bpf_maps.push(storage_for(decl, options));
    }
    let events = MapRef(bpf_maps.len() as u32);
    let (map_type, key_size, value_size, max_entries) = match options.events {
        EventTransport::RingBuf { bytes } => (bpf_consts::BPF_MAP_TYPE_RINGBUF, 0, 0, bytes),
        EventTransport::PerfArray { cpus } => (bpf_consts::BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, cpus),
    };
    bpf_maps.push(BpfMap {
        name: "rbt_events".into(),
        role: MapRole::Events,
        map_type,
        key_size,
        value_size,
        max_entries,
        flags: 0,
    });
    let errors = MapRef(bpf_maps.len() as u32);
    bpf_maps.push(BpfMap {
        name: "rbt_errors".into(),
        role: MapRole::Errors,
        map_type: bpf_consts::BPF_MAP_TYPE_PERCPU_ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: ERROR_COUNTERS * options.probe_slots.max(1),
        flags: 0,
    });
    let mut print_types = Vec::new();
    let mut helper_sites = Vec::new();
    let mut functions = Vec::new();
    for (index, probe) in program.probes.iter().enumerate() {
        let ctx = ProbeLowering {
            bpf_maps: &mut bpf_maps,
            program,
            probe,
            error_slot: (index as u32).min(options.probe_slots.max(1) - 1),
            options,
            map_storage: &map_storage,
            events,
            errors,
            b: FnBuilder::new(probe.span),
            var_slots: Vec::new(),
            loops: Vec::new(),
            print_types: &mut print_types,
            helper_sites: &mut helper_sites,
            report_at: None,
            ustack_memo: Vec::new(),
        };
        functions.push(ctx.lower_probe());
    }
    Lowered { functions, bpf_maps, map_storage, print_types, helper_sites, events, errors }
}

/// Whether a user map is a one-element per-CPU array rather than a hash: only an unkeyed
/// `count()`, as in bpftrace 0.17, where it therefore always prints (`@c: 0`).
pub(crate) fn is_array_backed(decl: &MapDecl) -> bool {
    decl.key.is_empty() && decl.value == MapValue::Count
}

/// Size of the user part of a hash map's key (a trailing u64 bucket comes on top for
/// [`MapValue::is_bucketed`] maps): its key parts 8-byte aligned, or for an unkeyed map the
/// single key `0u64`, or nothing when the bucket is the whole key.
pub(crate) fn user_key_size(decl: &MapDecl) -> u32 {
    if decl.key.is_empty() {
        return if decl.value.is_bucketed() { 0 } else { 8 };
    }
    decl.key.iter().map(|t| crate::types::align8(t.size())).sum()
}

fn storage_for(decl: &MapDecl, options: &LowerOptions) -> BpfMap {
    let per_cpu = decl.value.is_aggregation();
    let name = format!("AT_{}", if decl.name.is_empty() { "_" } else { &decl.name });
    let value_size = decl.value.slot_size();
    if is_array_backed(decl) {
        BpfMap {
            name,
            role: MapRole::User,
            map_type: bpf_consts::BPF_MAP_TYPE_PERCPU_ARRAY,
            key_size: 4,
            value_size,
            max_entries: 1,
            flags: 0,
        }
    } else {
        let buckets = match decl.value {
            MapValue::Hist => HIST_BUCKETS,
            MapValue::Lhist { min, max, step } => lhist_buckets(min, max, step),
            MapValue::Avg { .. } | MapValue::Stats { .. } => 2,
            _ => 1,
        };
        let key_size = user_key_size(decl) + if decl.value.is_bucketed() { 8 } else { 0 };
        let max_entries = if decl.key.is_empty() {
            buckets
        } else if decl.value.is_bucketed() {
            options.map_keys_max.saturating_mul(8)
        } else {
            options.map_keys_max
        };
        BpfMap {
            name,
            role: MapRole::User,
            map_type: if per_cpu { bpf_consts::BPF_MAP_TYPE_PERCPU_HASH } else { bpf_consts::BPF_MAP_TYPE_HASH },
            key_size,
            value_size,
            max_entries,
            flags: 0,
        }
    }
}

/// Lowering state for one probe.
struct ProbeLowering<'a> {
    program: &'a hir::Program,
    /// Every BPF map; probes add the stack maps they need.
    bpf_maps: &'a mut Vec<BpfMap>,
    probe: &'a hir::Probe,
    /// Where this probe's error counters start in the errors map, in counters.
    error_slot: u32,
    options: &'a LowerOptions,
    map_storage: &'a [usize],
    events: MapRef,
    errors: MapRef,
    b: FnBuilder,
    /// A stack slot per scratch variable.
    var_slots: Vec<StackRef>,
    /// Enclosing `while` loops: (condition block, exit block), for break and continue.
    loops: Vec<(ir::BlockId, ir::BlockId)>,
    print_types: &'a mut Vec<crate::types::Type>,
    /// Every probe's checked helper calls so far (`-k`).
    helper_sites: &'a mut Vec<HelperSite>,
    /// Where the failures of the calls being lowered are reported, when not at the current
    /// span (see [`ProbeLowering::reporting_at`]).
    report_at: Option<SiteSpan>,
    /// Each user stack depth unwound so far: a flag set once this run has unwound it, and its
    /// id (see [`ProbeLowering::lower_unwound_ustack`]).
    ustack_memo: Vec<(u32, ir::VReg, ir::VReg)>,
}

impl ProbeLowering<'_> {
    fn lower_probe(mut self) -> ir::Function {
        for var in &self.probe.vars {
            let slot = self.b.slot(var.ty.size().max(8));
            self.var_slots.push(slot);
        }
        self.b.pin_slots();
        // Variables start zeroed so a read on a path without assignment is defined.
        for (var, slot) in self.probe.vars.iter().zip(self.var_slots.clone()) {
            self.b.zero(slot, crate::types::align8(var.ty.size().max(8)));
        }
        // `-p` filters the probes that fire in some process's context; BEGIN, END and interval
        // fire on rbt's own behalf and must still run.
        let per_process = matches!(
            self.probe.attach,
            hir::AttachPoint::Tracepoint { .. }
                | hir::AttachPoint::Profile { .. }
                | hir::AttachPoint::Uprobe { .. }
                | hir::AttachPoint::Usdt(_)
                | hir::AttachPoint::Kprobe { .. }
                | hir::AttachPoint::PerfCounter { .. }
                | hir::AttachPoint::RawTracepoint { .. }
                | hir::AttachPoint::Fentry { .. }
        );
        if let (Some(pid), true) = (self.options.pid_filter, per_process) {
            self.lower_pid_filter(pid);
        }
        if let Some(pred) = &self.probe.predicate {
            self.b.set_span(pred.span);
            let v = self.lower_int(pred);
            let body = self.b.new_block();
            let exit = self.b.new_block();
            self.b.branch(ir::Cond::Ne, v, ir::Operand::Imm(0), body, exit);
            self.b.switch_to(exit);
            self.b.terminate(ir::Term::Exit);
            self.b.switch_to(body);
        }
        let body = &self.probe.body;
        self.lower_stmts(body);
        self.b.terminate(ir::Term::Exit);
        self.b.finish()
    }

    /// Returns early unless the current process is `pid`.
    fn lower_pid_filter(&mut self, pid: u32) {
        let tgid = self.b.reg();
        self.b.push(ir::Op::Call {
            dst: Some(tgid),
            helper: crate::bpf::helpers::Helper::GetCurrentPidTgid,
            args: vec![],
        });
        self.b.push(ir::Op::Alu { op: ir::AluOp::Shr, dst: tgid, lhs: tgid, rhs: ir::Operand::Imm(32) });
        let body = self.b.new_block();
        let exit = self.b.new_block();
        let pid = i32::try_from(pid).unwrap_or(i32::MAX);
        self.b.branch(ir::Cond::Eq, tgid, ir::Operand::Imm(pid), body, exit);
        self.b.switch_to(exit);
        self.b.terminate(ir::Term::Exit);
        self.b.switch_to(body);
    }

    fn user_map(&self, id: hir::MapId) -> (&MapDecl, MapRef) {
        let decl = &self.program.maps[id.0 as usize];
        (decl, MapRef(self.map_storage[id.0 as usize] as u32))
    }

    /// Adds one to an error counter (per CPU, so a plain add is race free).
    /// The stack trace map for stacks of at most `limit` frames, created on first use.
    fn stack_map(&mut self, limit: u32) -> MapRef {
        let storage = self.options.stack_storage.max(1);
        self.map_for_role(MapRole::Stacks { limit }, || BpfMap {
            name: format!("rbt_stack_{limit}"),
            role: MapRole::Stacks { limit },
            map_type: bpf_consts::BPF_MAP_TYPE_STACK_TRACE,
            key_size: 4,
            value_size: 8 * limit,
            max_entries: storage,
            flags: 0,
        })
    }

    /// The map with `role`, added to the program (`make`) on first use.
    fn map_for_role(&mut self, role: MapRole, make: impl FnOnce() -> BpfMap) -> MapRef {
        if let Some(i) = self.bpf_maps.iter().position(|m| m.role == role) {
            return MapRef(i as u32);
        }
        self.bpf_maps.push(make());
        MapRef(self.bpf_maps.len() as u32 - 1)
    }

    /// The per-CPU record `join()` assembles its event in, created on first use.
    fn join_scratch_map(&mut self) -> MapRef {
        self.map_for_role(MapRole::JoinScratch, || BpfMap {
            name: "rbt_join".into(),
            role: MapRole::JoinScratch,
            map_type: bpf_consts::BPF_MAP_TYPE_PERCPU_ARRAY,
            key_size: 4,
            value_size: crate::program::EVENT_HEADER + crate::hir::JOIN_ARGS * crate::hir::JOIN_ARG_SIZE,
            max_entries: 1,
            flags: 0,
        })
    }

    /// The set of processes already seen in user stacks, created on first use.
    fn seen_pids_map(&mut self) -> MapRef {
        self.map_for_role(MapRole::SeenPids, || BpfMap {
            name: "rbt_seen_pids".into(),
            role: MapRole::SeenPids,
            map_type: bpf_consts::BPF_MAP_TYPE_HASH,
            key_size: 8,
            value_size: 8,
            max_entries: 65_536,
            flags: 0,
        })
    }

    fn count_error(&mut self, counter: crate::program::ErrorCounter) {
        let key = self.b.slot(8);
        let index = self.error_slot * crate::program::ERROR_COUNTERS + counter as u32;
        self.b.push(ir::Op::StoreStack { at: key, size: 4, src: ir::Operand::Imm(index as i32) });
        let ptr = self.b.reg();
        self.b.push(ir::Op::MapLookup { dst: ptr, map: self.errors, key });
        let found = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(ir::Cond::Ne, ptr, ir::Operand::Imm(0), found, done);
        self.b.switch_to(found);
        let v = self.b.reg();
        self.b.push(ir::Op::LoadPtr { dst: v, ptr, offset: 0, size: 8 });
        self.b.push(ir::Op::Alu { op: ir::AluOp::Add, dst: v, lhs: v, rhs: ir::Operand::Imm(1) });
        self.b.push(ir::Op::StorePtr { ptr, offset: 0, size: 8, src: ir::Operand::Reg(v) });
        self.b.terminate(ir::Term::Jump(done));
        self.b.switch_to(done);
    }
}
