//! `rbt --info`: what rbt can do on this machine, in the layout of bpftrace 0.17's `--info`
//! (System, Build, Kernel helpers, Kernel features, Map types, Probe types), which bpftrace's
//! runtime test suite greps to decide which tests to run (`Loop support: yes`, `btf: yes`...).
//!
//! Every line answers "can rbt use this here?": a `yes` needs both rbt's support and the
//! kernel's, and the kernel's is measured as bpftrace measures it, by loading tiny programs,
//! creating maps and trying a link, never assumed. Features rbt does not use print `no` whatever
//! the kernel offers (`override_return`, `skboutput`, `map batch`, iterators, DWARF arguments).

use std::fmt::Write as _;
use std::path::Path;

use aya_obj::generated::bpf_prog_type;
use compiler::bpf::helpers::{self, Helper};
use compiler::bpf::insn::{self, Insn, Reg};
use compiler::bpf::opcode::{AluOp, JmpOp, Size};
use compiler::program::ProgramKind;
use compiler::ProbeCatalog;
use runtime::kernel::loader::{self, MultiLink};
use runtime::kernel::sys::{self, MapSpec, ProgLoad};

use crate::host::HostCatalog;

/// Whether rbt reads uprobe arguments by name from DWARF (`args->n` in a uprobe, casts to the
/// probed binary's structs, `-lv` listing them): it does, with gimli (`catalog/src/dwarf/`), so
/// the suite's `dwarf` tests run.
const DWARF_ARGUMENTS: bool = true;

/// The whole report.
pub fn report(catalog: &HostCatalog) -> String {
    let mut out = String::new();
    system(&mut out);
    build(&mut out);
    kernel_helpers(&mut out, catalog);
    kernel_features(&mut out, catalog);
    map_types(&mut out);
    probe_types(&mut out, catalog);
    out
}

fn yes(feature: bool) -> &'static str {
    if feature {
        "yes"
    } else {
        "no"
    }
}

fn system(out: &mut String) {
    let read = |name: &str| {
        std::fs::read_to_string(Path::new("/proc/sys/kernel").join(name))
            .map_or_else(|_| "?".into(), |s| s.trim().to_owned())
    };
    let _ = writeln!(out, "System");
    let _ = writeln!(out, "  OS: {} {} {}", read("ostype"), read("osrelease"), read("version"));
    let _ = writeln!(out, "  Arch: {}\n", std::env::consts::ARCH);
}

fn build(out: &mut String) {
    let _ = writeln!(out, "Build");
    let _ = writeln!(out, "  version: rbt v{}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "  code generation: rbt's own (no LLVM, no clang)");
    let _ = writeln!(out, "  symbols: ELF symbol tables, DWARF lines, perf maps (blazesym)");
    let _ = writeln!(out, "  libdw (DWARF support): {}\n", yes(DWARF_ARGUMENTS));
}

fn kernel_helpers(out: &mut String, catalog: &HostCatalog) {
    let kprobe = bpf_prog_type::BPF_PROG_TYPE_KPROBE as u32;
    let helper = |h: Helper| helper_available(kprobe, h);
    let _ = writeln!(out, "Kernel helpers");
    for (name, h) in [
        ("probe_read", Helper::ProbeRead),
        ("probe_read_str", Helper::ProbeReadStr),
        ("probe_read_user", Helper::ProbeReadUser),
        ("probe_read_user_str", Helper::ProbeReadUserStr),
        ("probe_read_kernel", Helper::ProbeReadKernel),
        ("probe_read_kernel_str", Helper::ProbeReadKernelStr),
        ("get_current_cgroup_id", Helper::GetCurrentCgroupId),
        ("send_signal", Helper::SendSignal),
    ] {
        let _ = writeln!(out, "  {name}: {}", yes(helper(h)));
    }
    // rbt has no `override()`.
    let _ = writeln!(out, "  override_return: no");
    let _ = writeln!(out, "  get_boot_ns: {}", yes(helper(Helper::KtimeGetBootNs)));
    let _ = writeln!(out, "  dpath: {}", yes(has_d_path(catalog)));
    // rbt has no `skboutput()`.
    let _ = writeln!(out, "  skboutput: no\n");
}

fn kernel_features(out: &mut String, catalog: &HostCatalog) {
    let limit = instruction_limit().map_or_else(|| "-1".to_owned(), |n| n.to_string());
    let _ = writeln!(out, "Kernel features");
    let _ = writeln!(out, "  Instruction limit: {limit}");
    let _ = writeln!(out, "  Loop support: {}", yes(has_loops()));
    let _ = writeln!(out, "  btf: {}", yes(catalog.kernel_types_missing().is_none()));
    // rbt reads maps one element at a time.
    let _ = writeln!(out, "  map batch: no");
    // USDT semaphores are raised by the kernel through `ref_ctr_offset` (Linux 4.20).
    let refcount = Path::new("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset").exists();
    let _ = writeln!(out, "  uprobe refcount (depends on Build:bcc bpf_attach_uprobe refcount): {}", yes(refcount));
    // `uprobe:libc:malloc`: library names through /etc/ld.so.cache, as bcc resolves them.
    let _ = writeln!(out, "  bcc library path resolution: {}\n", yes(Path::new("/etc/ld.so.cache").exists()));
}

fn map_types(out: &mut String) {
    let _ = writeln!(out, "Map types");
    for (name, map_type, value_size) in [
        ("hash", helpers::BPF_MAP_TYPE_HASH, 4),
        ("percpu hash", helpers::BPF_MAP_TYPE_PERCPU_HASH, 4),
        ("array", helpers::BPF_MAP_TYPE_ARRAY, 4),
        ("percpu array", helpers::BPF_MAP_TYPE_PERCPU_ARRAY, 4),
        ("stack_trace", helpers::BPF_MAP_TYPE_STACK_TRACE, 8),
        ("perf_event_array", helpers::BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4),
    ] {
        let spec = MapSpec { name: "rbt_info", map_type, key_size: 4, value_size, max_entries: 1, flags: 0 };
        let _ = writeln!(out, "  {name}: {}", yes(sys::map_create(&spec).is_ok()));
    }
    let _ = writeln!(out);
}

fn probe_types(out: &mut String, catalog: &HostCatalog) {
    let loads =
        |prog_type: bpf_prog_type| program_loads(prog_type as u32, &[Insn::mov64_imm(Reg::R0, 0), Insn::exit()]);
    // rbt attaches kprobes through the kprobe PMU.
    let kprobes =
        Path::new("/sys/bus/event_source/devices/kprobe").exists() && loads(bpf_prog_type::BPF_PROG_TYPE_KPROBE);
    let _ = writeln!(out, "Probe types");
    let _ = writeln!(out, "  kprobe: {}", yes(kprobes));
    let _ = writeln!(out, "  tracepoint: {}", yes(loads(bpf_prog_type::BPF_PROG_TYPE_TRACEPOINT)));
    let _ = writeln!(out, "  perf_event: {}", yes(loads(bpf_prog_type::BPF_PROG_TYPE_PERF_EVENT)));
    let _ = writeln!(out, "  kfunc: {}", yes(has_fentry(catalog)));
    // rbt has no iterator probes.
    let _ = writeln!(out, "  iter:task: no");
    let _ = writeln!(out, "  iter:task_file: no");
    let _ = writeln!(out, "  kprobe_multi: {}", yes(kprobes && has_kprobe_multi()));
    let _ = writeln!(out, "  raw_tp_special: {}\n", yes(has_raw_tp_special()));
}

/// Loads `insns` as a program of `prog_type` (and drops it); whether the kernel took it.
fn program_loads(prog_type: u32, insns: &[Insn]) -> bool {
    let code = insn::encode(insns);
    let load = ProgLoad { prog_type, attach_type: 0, attach_btf_id: 0, name: "rbt_info", insns: &code };
    sys::prog_load(&load, &mut [], 0).is_ok()
}

/// Whether programs of `prog_type` may call `helper`, as libbpf probes it: a program that only
/// calls it either loads, or is refused for another reason than an unknown function.
fn helper_available(prog_type: u32, helper: Helper) -> bool {
    let code = insn::encode(&[Insn::call_helper(helper), Insn::exit()]);
    let load = ProgLoad { prog_type, attach_type: 0, attach_btf_id: 0, name: "rbt_info", insns: &code };
    let mut log = vec![0u8; 4096];
    match sys::prog_load(&load, &mut log, 1) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => false,
        Err(_) => {
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_start_matches('\0');
            !text.starts_with('\0')
                && !text.is_empty()
                && !text.contains("invalid func ")
                && !text.contains("unknown func ")
        }
    }
}

/// The verifier's instruction limit, from the statistics of a two-instruction program
/// (`processed 2 insns (limit 1000000) ...`).
fn instruction_limit() -> Option<u64> {
    let [lo, hi] = Insn::ld_imm64(Reg::R0, 0);
    let code = insn::encode(&[lo, hi, Insn::exit()]);
    let load = ProgLoad {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_KPROBE as u32,
        attach_type: 0,
        attach_btf_id: 0,
        name: "rbt_info",
        insns: &code,
    };
    let mut log = vec![0u8; 4096];
    sys::prog_load(&load, &mut log, 1).ok()?;
    let text = String::from_utf8_lossy(&log);
    let after = text.split("processed 2 insns").nth(1)?;
    let limit = after.split("limit ").nth(1)?;
    limit.split(')').next()?.trim().parse().ok()
}

/// Whether the verifier takes a bounded loop (Linux 5.3), which `while` needs.
fn has_loops() -> bool {
    program_loads(
        bpf_prog_type::BPF_PROG_TYPE_TRACEPOINT as u32,
        &[
            Insn::mov64_imm(Reg::R0, 0),
            Insn::alu64_imm(AluOp::Add, Reg::R0, 1),
            Insn::jmp_imm(JmpOp::Lt, Reg::R0, 4, -2),
            Insn::exit(),
        ],
    )
}

/// Whether fentry programs load here, as rbt tries before it accepts an fentry probe.
fn has_fentry(catalog: &HostCatalog) -> bool {
    let Some(func) = catalog.kernel_function_signature("sched_fork") else { return false };
    catalog.trampolines_missing(&func).is_none()
}

/// Whether `path()` works: an fentry program of `dentry_open` calling `bpf_d_path` loads.
fn has_d_path(catalog: &HostCatalog) -> bool {
    let Some(func) = catalog.kernel_function_signature("dentry_open") else { return false };
    let [lo, hi] = Insn::ld_imm64(Reg::R3, 8);
    let code = insn::encode(&[
        Insn::ldx_mem(Size::W, Reg::R1, Reg::R1, 0),
        Insn::mov64_reg(Reg::R2, Reg::FP),
        Insn::alu64_imm(AluOp::Add, Reg::R2, -8),
        Insn::mov64_imm(Reg::R6, 0),
        Insn::stx_mem(Size::DW, Reg::R2, Reg::R6, 0),
        lo,
        hi,
        Insn::call_helper(Helper::DPath),
        Insn::mov64_imm(Reg::R0, 0),
        Insn::exit(),
    ]);
    let kind = ProgramKind::Tracing { ret: false, btf_id: func.btf_id };
    loader::load_program(kind, None, "rbt_info", &code, false).is_ok()
}

/// Whether a kprobe_multi link attaches (to `ksys_read`, as bpftrace tries).
fn has_kprobe_multi() -> bool {
    let code = insn::encode(&[Insn::mov64_imm(Reg::R0, 0), Insn::exit()]);
    let Ok(prog) = loader::load_program(ProgramKind::Kprobe, Some(MultiLink::Kprobe), "rbt_info", &code, false) else {
        return false;
    };
    sys::link_kprobe_multi(std::os::fd::AsRawFd::as_raw_fd(&prog.fd), &["ksys_read".to_owned()], false).is_ok()
}

/// Whether raw tracepoint programs load and run through `BPF_PROG_TEST_RUN`, which is how rbt
/// runs BEGIN and END.
fn has_raw_tp_special() -> bool {
    let code = insn::encode(&[Insn::mov64_imm(Reg::R0, 0), Insn::exit()]);
    match loader::load_program(ProgramKind::RawTracepoint, None, "rbt_info", &code, false) {
        Ok(prog) => sys::test_run(std::os::fd::AsRawFd::as_raw_fd(&prog.fd)).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_and_no() {
        assert_eq!(yes(true), "yes");
        assert_eq!(yes(false), "no");
    }
}
