//! The symbolizer (`runtime::symbols`) where it needs root: a deleted executable and one in
//! another mount namespace (through `/proc/PID/map_files`, which needs CAP_SYS_ADMIN), and kernel
//! frames and `kaddr()` compared with bpftrace 0.17's (kallsyms shows addresses only to root).
//! Kernel tier: without root or bpftrace these tests fail and say so.

mod common_symbols;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common_symbols::*;
use runtime::symbols::{Detail, Symbolizer};

#[test]
fn a_deleted_executable_resolves_after_exit() {
    let copy = copy_of_target("deleted");
    let canonical_copy = std::fs::canonicalize(&copy).expect("the copy exists").display().to_string();
    let (running, target) = start(Command::new(&copy));
    std::fs::remove_dir_all(copy.parent().expect("a directory")).expect("delete the copy");
    let mut symbols = Symbolizer::with_detail(Detail::Lines);
    symbols.remember(target.pid).expect("remember the running program");
    running.finish();
    check_markers(&mut symbols, &target, &canonical_copy, "deleted, after exit");
}

#[test]
fn a_program_in_another_mount_namespace_resolves() {
    // The program runs from a tmpfs mounted only in its own mount namespace: its path does not
    // exist in ours.
    let copy = copy_of_target("mntns");
    let script = format!(
        "mkdir -p /mnt/rbt-symbols-ns && mount -t tmpfs rbt-symbols /mnt/rbt-symbols-ns && \
         cp '{}' /mnt/rbt-symbols-ns/target && exec /mnt/rbt-symbols-ns/target",
        copy.display()
    );
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let (running, target) = start(command);
    let _ = std::fs::remove_dir_all(copy.parent().expect("a directory"));
    assert!(!Path::new("/mnt/rbt-symbols-ns/target").exists(), "the program's path is private to its namespace");
    let mut symbols = Symbolizer::with_detail(Detail::Lines);
    symbols.remember(target.pid).expect("remember the running program");
    let module = "/mnt/rbt-symbols-ns/target";
    check_markers(&mut symbols, &target, module, "other mount namespace");
    running.finish();
    check_markers(&mut symbols, &target, module, "other mount namespace, after exit");
}

/// bpftrace's output for `program`, and a symbolizer that read kallsyms while bpftrace ran: right
/// after bpftrace printed the first line that `ready` accepts.
fn bpftrace_and_symbols(program: &str, ready: impl Fn(&str) -> bool) -> (String, Symbolizer) {
    // One bpftrace at a time: each one's programs are in the others' kallsyms.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let bpftrace = tests::bpftrace().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(bpftrace)
        .args(["-e", program])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bpftrace runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut out = String::new();
    loop {
        let start = out.len();
        if stdout.read_line(&mut out).expect("read bpftrace's output") == 0 || ready(&out[start..]) {
            break;
        }
    }
    let mut symbols = Symbolizer::new();
    symbols.load_kernel_symbols().expect("read /proc/kallsyms");
    std::io::Read::read_to_string(&mut stdout, &mut out).expect("read bpftrace's output");
    let status = child.wait().expect("wait for bpftrace");
    assert!(status.success(), "bpftrace failed ({status}): {out}");
    (out, symbols)
}

/// The code symbols (bcc skips data symbols) at each address in kallsyms.
fn kernel_names_by_address() -> HashMap<u64, Vec<String>> {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").expect("read /proc/kallsyms");
    let mut names: HashMap<u64, Vec<String>> = HashMap::new();
    for line in kallsyms.lines() {
        let mut words = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (words.next(), words.next(), words.next()) else { continue };
        if !matches!(kind, "b" | "B" | "d" | "D" | "r" | "R") {
            names.entry(u64::from_str_radix(addr, 16).unwrap_or(0)).or_default().push(name.to_owned());
        }
    }
    names
}

#[test]
fn kernel_frames_are_named_as_bpftrace_names_them() {
    assert!(tests::is_root(), "this test reads kernel addresses and runs bpftrace: it must run as root");
    let (out, mut symbols) = bpftrace_and_symbols(
        "BEGIN { printf(\"go\\n\"); } profile:hz:997 { @[kstack(perf)] = count(); } interval:ms:700 { exit(); }",
        |line| line == "go\n",
    );
    let aliases = kernel_names_by_address();
    // Frame lines: a tab, the address in hex, a space, `sym+off` (no module for the kernel).
    let mut checked = 0;
    for line in out.lines().filter_map(|l| l.strip_prefix('\t')) {
        let (addr, text) = line.split_once(' ').expect("address and symbol");
        let addr = u64::from_str_radix(addr, 16).expect("hex address");
        let frame = symbols.kernel(&[addr]).remove(0);
        // Short-lived BPF programs are named only while they exist: compare the kernel's own
        // code.
        if frame.module.is_some() || text.starts_with("bpf_prog_") || text.starts_with("0x") {
            continue;
        }
        // Which alias wins depends on every symbol kallsyms lists when it is read, BPF programs
        // of other processes included, which come and go; the next test checks the choice.
        let (name, offset) = text.rsplit_once('+').expect("sym+off");
        let start = addr - offset.parse::<u64>().expect("decimal offset");
        let same_symbol = frame.name.as_deref() == Some(name)
            || aliases.get(&start).is_some_and(|names| names.iter().any(|n| n == name));
        assert!(same_symbol && frame.offset == addr - start, "bpftrace printed {line:?}: {frame:#?}");
        assert_eq!(frame.bpftrace_perf_text(), format!("{addr:x} {}+{}", frame.bpftrace_name(), frame.offset));
        assert_eq!(symbols.ksym(addr), frame.bpftrace_name());
        checked += 1;
    }
    assert!(checked > 0, "bpftrace printed no kernel frames:\n{out}");
}

#[test]
fn kaddr_agrees_with_bpftrace() {
    assert!(tests::is_root(), "this test reads kernel addresses and runs bpftrace: it must run as root");
    let names = ["do_syscall_64", "vfs_read", "__x64_sys_getppid", "jiffies"];
    let mut symbols = Symbolizer::new();
    let ours: Vec<Option<u64>> = names.iter().map(|n| symbols.kaddr(n)).collect();
    assert!(ours[0].is_some(), "do_syscall_64 has an address");
    // bpftrace refuses to run a script naming a symbol it cannot find, so ask only for ours.
    let known: Vec<(&str, u64)> = names.iter().zip(&ours).filter_map(|(n, a)| a.map(|a| (*n, a))).collect();
    let program: String = known.iter().map(|(n, _)| format!("printf(\"%lx\\n\", kaddr(\"{n}\")); ")).collect();
    let (out, _) = bpftrace_and_symbols(&format!("BEGIN {{ {program} exit(); }}"), |_| false);
    let theirs: Vec<u64> = out.lines().filter_map(|l| u64::from_str_radix(l, 16).ok()).collect();
    assert_eq!(theirs, known.iter().map(|(_, a)| *a).collect::<Vec<_>>(), "{out}");
    assert_eq!(symbols.kaddr("rbt_no_such_symbol"), None);
}

#[test]
fn every_kernel_alias_resolves_as_bpftrace_resolves_it() {
    assert!(tests::is_root(), "this test reads kernel addresses and runs bpftrace: it must run as root");
    // Which of several names at one address bcc answers with depends on how its unstable sort
    // leaves them, which depends on the whole list: kallsyms must read the same for bcc and for
    // us. bcc reads it as it prints the first `ksym()`, and we read it right after that line
    // arrives; BPF programs of other processes (other test suites on this machine) that load or
    // unload in between change the list, so a mismatch is tried again a few times.
    let mut aliased: Vec<u64> =
        kernel_names_by_address().into_iter().filter(|(addr, n)| n.len() > 1 && *addr != 0).map(|(a, _)| a).collect();
    aliased.sort_unstable();
    aliased.truncate(400);
    assert!(!aliased.is_empty(), "this kernel has no aliased symbols to compare");
    let program: String = aliased.iter().map(|a| format!("printf(\"%s\\n\", ksym({a:#x})); ")).collect();
    let mut complaint = String::new();
    for _ in 0..8 {
        let (out, mut symbols) =
            bpftrace_and_symbols(&format!("BEGIN {{ {program} exit(); }}"), |line| !line.starts_with("Attaching"));
        let theirs: Vec<&str> = out.lines().filter(|l| !l.is_empty() && !l.starts_with("Attaching")).collect();
        let ours: Vec<String> = aliased.iter().map(|&a| symbols.ksym(a)).collect();
        if ours == theirs {
            return;
        }
        let differ: Vec<String> =
            ours.iter().zip(&theirs).filter(|(o, t)| o != t).map(|(o, t)| format!("rbt {o}, bpftrace {t}")).collect();
        complaint = format!("aliases differ: {differ:#?}");
        eprintln!("retrying after: {complaint}");
    }
    panic!("{complaint}");
}
