//! bpftrace 0.17's kprobe-based tools (`tests/bpftrace-suite/tools/*.bt`) run unchanged under
//! rbt and bpftrace 0.17 inside the Linux 6.1 and 6.12 VMs (`tests::vm`), since the development
//! host's kernel has no kprobes, and print the same thing.
//!
//! Each case (`tests/data/vm_tools/NAME.case`) is a tool case of `tests/tools.rs`'s format
//! (`tests::tools`), compared the same way. One boot per kernel holds rbt, bpftrace with its
//! shared libraries (LLVM and clang's among them), the workload (`rbt-workload`, as
//! `/bin/workload`: `{comm}` is `workload`, short enough for tcplife's 10-column COMM), the tools, and the C library headers the
//! tools include; it brings the loopback interface up (the TCP tools' connections), runs every
//! case's `-c` command once untraced (so neither tracer's run is the first to fill the dentry
//! cache), then each case under bpftrace and under rbt, bpftrace first.
//!
//! [`SKIPPED`] lists the tools bpftrace itself cannot run in a guest, by kernel, and why; a
//! kprobe-based tool with neither a case nor a reason for every kernel is an error, so a new tool
//! gets one or the other. Tools the workload cannot drive (no block device, no swap, no XFS, no
//! OOM kill, no retransmit on the loopback, no Unix socket dump) still compare what they print
//! before and after tracing: their attach (missing functions and wildcards), BEGIN and END.
//!
//! Kernel tier: needs QEMU, the kernels, busybox and bpftrace 0.17 (not root: the BPF is the
//! guest's). `RBT_VM_TOOLS_ONLY=name[,name...]` runs only those cases; `$RBT` picks the rbt
//! binary, `$BPFTRACE` bpftrace.

mod common_rbt;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common_rbt::rbt;
use tests::tools::{compare, read_cases, tools_dir, Case, ToolRun};
use tests::vm::{GuestCommand, Vm, VmRun};

const GUEST_RBT: &str = "/bin/rbt";
const GUEST_BPFTRACE: &str = "/bin/bpftrace";
const GUEST_WORKLOAD: &str = "/bin/workload";
const GUEST_TOOLS: &str = "/tools";
/// Per tracer run: bpftrace's clang and LLVM take tens of seconds per tool under emulation.
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// The kprobe-based tools bpftrace 0.17 cannot run in a guest, by kernel (`*`: every kernel),
/// and why. A tool skipped on every kernel has no case; on some, its case still runs there and
/// the outcome is printed, not judged.
const SKIPPED: &[(&str, &str, &str)] = &[
    (
        "mdflush",
        "*",
        "md_flush_request is in the md module, which the guest does not load: bpftrace fails \
         (`ERROR: Error attaching probe: 'kprobe:md_flush_request'`)",
    ),
    (
        "swapin",
        "6.12",
        "swap_readpage is swap_read_folio since 6.10: bpftrace fails \
         (`ERROR: Error attaching probe: 'kprobe:swap_readpage'`), where rbt skips the probe",
    ),
    (
        "vfsstat",
        "6.12",
        "bpftrace 0.17 cannot attach the wildcard on 6.12 and fails \
         (`ERROR: Error attaching probe: 'kprobe:vfs_write*'`), where rbt attaches it",
    ),
];

/// Why `tool` is not compared on `series`, if it is not.
fn skip_reason(tool: &str, series: &str) -> Option<&'static str> {
    SKIPPED.iter().find(|(name, kernel, _)| *name == tool && (*kernel == "*" || *kernel == series)).map(|s| s.2)
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/vm_tools")
}

fn selected_cases() -> Vec<Case> {
    read_cases(&cases_dir(), std::env::var("RBT_VM_TOOLS_ONLY").ok().as_deref(), Path::new(GUEST_WORKLOAD))
}

/// The host paths of the C headers `scripts` include (`#include <...>`), as gcc's preprocessor
/// finds them with what they include in turn; a header the host lacks is left out (the tracers
/// then say it is missing, in the guest as on the host).
fn included_headers(scripts: &[PathBuf]) -> Vec<PathBuf> {
    let include = regex::Regex::new(r"(?m)^\s*#\s*include\s*<([^>]+)>").expect("valid");
    let names: BTreeSet<String> = scripts
        .iter()
        .filter_map(|script| std::fs::read_to_string(script).ok())
        .flat_map(|text| include.captures_iter(&text).map(|c| c[1].to_owned()).collect::<Vec<_>>())
        .collect();
    let mut headers = BTreeSet::new();
    for name in names {
        let output = Command::new("cpp")
            .args(["-M", "-x", "c", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .and_then(|mut cpp| {
                use std::io::Write;
                cpp.stdin.take().expect("piped").write_all(format!("#include <{name}>\n").as_bytes())?;
                cpp.wait_with_output()
            });
        let Ok(output) = output.map_err(|e| panic!("cannot run cpp (apt-get install cpp): {e}")) else { continue };
        if output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout);
            headers.extend(text.split_whitespace().filter(|w| w.starts_with('/')).map(PathBuf::from));
        }
    }
    headers.into_iter().collect()
}

/// The guest command running `case` under the tracer at `tracer` (a guest path).
fn tool_command(case: &Case, label: &str, tracer: &str) -> GuestCommand {
    let mut argv = vec![tracer.to_owned()];
    argv.extend(case.args.iter().cloned());
    argv.push(format!("{GUEST_TOOLS}/{}.bt", case.tool));
    GuestCommand { name: format!("{}.{label}", case.name), env: vec![], argv }
}

/// The `-c` command of `case`, if it has one.
fn traced_command(case: &Case) -> Option<&str> {
    let at = case.args.iter().position(|a| a == "-c")?;
    case.args.get(at + 1).map(String::as_str)
}

/// One boot of `series` running every case under both tracers.
fn run_in_vm(series: &str, cases: &[Case]) -> Result<VmRun, String> {
    let vm = Vm::locate_series(series)?;
    let mut guest = vm.guest()?;
    let bpftrace = tests::bpftrace()?;
    guest.add_executable(GUEST_RBT, &rbt())?;
    guest.add_executable(GUEST_BPFTRACE, &bpftrace)?;
    guest.add_executable(GUEST_WORKLOAD, Path::new(env!("CARGO_BIN_EXE_rbt-workload")))?;
    let scripts: Vec<PathBuf> = cases.iter().map(|case| case.script.clone()).collect();
    for case in cases {
        let bytes = std::fs::read(&case.script).map_err(|e| format!("cannot read {}: {e}", case.script.display()))?;
        guest.add_file(&format!("{GUEST_TOOLS}/{}.bt", case.tool), bytes);
    }
    for header in included_headers(&scripts) {
        let bytes = std::fs::read(&header).map_err(|e| format!("cannot read {}: {e}", header.display()))?;
        guest.add_file(&header.to_string_lossy(), bytes);
    }
    let shell = |name: &str, script: String| GuestCommand {
        name: name.into(),
        env: vec![],
        argv: vec!["sh".into(), "-c".into(), script],
    };
    guest.add_command(shell("loopback", "ip link set lo up && ip addr show lo".into()));
    let warm: Vec<&str> = cases.iter().filter_map(traced_command).collect();
    guest.add_command(shell("warm", warm.join(" && ")));
    for case in cases {
        guest.add_command(tool_command(case, "bpftrace", GUEST_BPFTRACE));
        guest.add_command(tool_command(case, "rbt", GUEST_RBT));
    }
    guest.command_timeout = RUN_LIMIT;
    guest.vm_timeout = Duration::from_secs(240) + RUN_LIMIT * 2 * cases.len() as u32;
    vm.run(guest)
}

/// What the guest said of one tracer's run of `case`.
fn tool_run(run: &VmRun, case: &Case, label: &str) -> ToolRun {
    match run.result(&format!("{}.{label}", case.name)) {
        Ok(result) => ToolRun { stdout: result.stdout.clone(), stderr: result.stderr.clone(), status: result.status },
        Err(why) => ToolRun { stdout: Vec::new(), stderr: why.into_bytes(), status: None },
    }
}

fn check_series(series: &str) {
    let cases = selected_cases();
    let started = Instant::now();
    let run = run_in_vm(series, &cases).unwrap_or_else(|e| panic!("the Linux {series} VM could not run: {e}"));
    eprintln!(
        "VM tools on {}: booted in {:.1?}, {} cases in {:.1?} in all",
        run.kernel.display(),
        run.boot.unwrap_or_default(),
        cases.len(),
        started.elapsed()
    );
    let loopback = run.result("loopback").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loopback.status, Some(0), "the guest's loopback did not come up:\n{}", loopback.stderr_text());
    let warm = run.result("warm").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(warm.status, Some(0), "the workload failed untraced in the guest:\n{}", warm.stderr_text());
    let mut failures = Vec::new();
    for case in &cases {
        let (expected, actual) = (tool_run(&run, case, "bpftrace"), tool_run(&run, case, "rbt"));
        let seconds = |label: &str| {
            run.results.get(&format!("{}.{label}", case.name)).and_then(|r| r.duration()).unwrap_or_default()
        };
        let times = format!("bpftrace {:.1} s, rbt {:.1} s", seconds("bpftrace"), seconds("rbt"));
        if let Some(reason) = skip_reason(&case.tool, series) {
            let first_error = |run: &ToolRun| {
                let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
                stderr.lines().find(|l| l.contains("ERROR") || l.contains("error")).unwrap_or_default().to_owned()
            };
            eprintln!(
                "{series} skip     {} ({reason}); bpftrace {:?} {:?}, rbt {:?} {:?} ({times})",
                case.name,
                expected.status,
                first_error(&expected),
                actual.status,
                first_error(&actual)
            );
            continue;
        }
        match compare(case, ["bpftrace", "rbt"], &expected, &actual) {
            Ok(lines) => eprintln!("{series} ok       {} ({lines} lines compared; {times})", case.name),
            Err(problem) => {
                eprintln!("{series} MISMATCH {} ({times})", case.name);
                failures.push(format!("{} (args: {:?}): {problem}", case.name, case.args));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} tools differ on Linux {series}:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Every kprobe-based tool has a case here or a reason to be skipped on every kernel in
/// [`SKIPPED`], not both.
#[test]
fn every_kprobe_tool_has_a_case_or_a_reason() {
    let cases: BTreeSet<String> =
        read_cases(&cases_dir(), None, Path::new(GUEST_WORKLOAD)).into_iter().map(|case| case.tool).collect();
    let kernel_probe = regex::Regex::new(r"(?m)^\s*(kprobe|kretprobe):").expect("valid");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(tools_dir()).expect("the tools directory").flatten() {
        let path = entry.path();
        let Some(tool) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let skipped = skip_reason(&tool, "*").is_some();
        match (kernel_probe.is_match(&text), cases.contains(&tool), skipped) {
            (true, false, false) => problems.push(format!("{tool}: kprobe-based, with no case and no reason")),
            (_, true, true) => problems.push(format!("{tool}: has a case and is in SKIPPED")),
            (false, _, true) => problems.push(format!("{tool}: in SKIPPED but attaches no kprobe")),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn bpftraces_kprobe_tools_print_the_same_under_rbt_on_6_1() {
    check_series("6.1");
}

#[test]
fn bpftraces_kprobe_tools_print_the_same_under_rbt_on_6_12() {
    check_series("6.12");
}
