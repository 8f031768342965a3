//! The symbolizer (`runtime::symbols`) against real processes and the running kernel: names,
//! offsets and DWARF lines of a test program's functions while it runs and after it exits
//! (also when its executable was deleted, or lives in another mount namespace), JIT perf maps,
//! the vDSO, and kernel frames and `kaddr()` compared with bpftrace 0.17's.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use runtime::symbols::{Detail, Frame, Symbolizer};

/// The crate name Rust gives the test program's functions.
const CRATE: &str = "rbt_symbols_target";

fn target_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rbt-symbols-target"))
}

/// What a `rbt-symbols-target` printed: its pid and the addresses of its functions.
struct Subject {
    pid: u32,
    functions: HashMap<String, u64>,
    jit: HashMap<String, u64>,
}

impl Subject {
    fn function(&self, name: &str) -> u64 {
        self.functions[name]
    }
}

/// The running program; `finish` lets it exit.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Starts the test program and reads its addresses.
fn start(mut command: Command) -> (Running, Subject) {
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    // A copy of the program just written may still be open for writing in a child that another
    // test thread forked meanwhile (until that child execs): exec fails with ETXTBSY until then.
    let mut child = (0..100)
        .find_map(|_| match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            }
            result => Some(result),
        })
        .expect("the test program's file stays busy")
        .expect("the test program starts");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let (mut functions, mut jit) = (HashMap::new(), HashMap::new());
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the test program's output");
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["ready"] => break,
            [kind, name, addr] => {
                let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16).expect("hex address");
                let table = if *kind == "jit" { &mut jit } else { &mut functions };
                table.insert((*name).to_owned(), addr);
            }
            _ => panic!("unexpected line from the test program: {line:?}"),
        }
    }
    assert!(functions.contains_key("marker_alpha"), "the test program printed no addresses");
    let pid = child.id();
    (Running { child, stdin }, Subject { pid, functions, jit })
}

impl Running {
    /// Lets the program exit and reaps it, so that its pid is gone.
    fn finish(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let status = self.child.wait().expect("wait for the test program");
        assert!(status.success(), "the test program failed: {status}");
        assert!(!Path::new(&format!("/proc/{}", self.child.id())).exists(), "the pid still exists");
    }
}

/// The line on which `fn NAME(` is defined in the test program's source.
fn definition_line(name: &str) -> u32 {
    let source =
        std::fs::read_to_string(tests::workspace().join("tests/src/bin/symbols_target.rs")).expect("read the source");
    let index = source.lines().position(|l| l.starts_with(&format!("fn {name}("))).expect("the function is defined");
    u32::try_from(index + 1).expect("small line number")
}

/// Whether the test program was built with DWARF (not in a release build, which strips it): an
/// ELF64 section named `.debug_line`. (Searching the bytes is not enough: std's own backtrace
/// code carries the section names as strings.)
fn has_dwarf() -> bool {
    let elf = std::fs::read(target_binary()).expect("read the test program");
    let word = |at: usize, len: usize| -> usize {
        elf.get(at..at + len).map_or(0, |b| b.iter().rev().fold(0, |n, &byte| n << 8 | usize::from(byte)))
    };
    let (sections, entry_size, count, names_index) = (word(0x28, 8), word(0x3a, 2), word(0x3c, 2), word(0x3e, 2));
    let header = |i: usize| sections + i * entry_size;
    let names = word(header(names_index) + 0x18, 8);
    (0..count).any(|i| {
        let name = names + word(header(i), 4);
        elf.get(name..name + 12) == Some(b".debug_line\0")
    })
}

fn names(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(Frame::bpftrace_text).collect()
}

/// Checks the frames of the markers at their entry and a few bytes in, with DWARF lines.
fn check_markers(symbols: &mut Symbolizer, target: &Subject, module: &str, when: &str) {
    let alpha = target.function("marker_alpha");
    let beta = target.function("marker_beta");
    let frames = symbols.user(target.pid, &[alpha, alpha + 3, beta]);
    assert_eq!(
        names(&frames),
        [format!("{CRATE}::marker_alpha+0"), format!("{CRATE}::marker_alpha+3"), format!("{CRATE}::marker_beta+0")],
        "{when}: {frames:#?}"
    );
    assert_eq!(symbols.usym(target.pid, alpha + 3), format!("{CRATE}::marker_alpha"), "{when}");
    assert_eq!(frames[0].module.as_deref(), Some(module), "{when}");
    if has_dwarf() {
        let file = frames[0].file.as_deref().unwrap_or_default();
        assert!(file.ends_with("tests/src/bin/symbols_target.rs"), "{when}: file {file:?}");
        assert_eq!(frames[0].line, Some(definition_line("marker_alpha")), "{when}: {:#?}", frames[0]);
        assert_eq!(frames[2].line, Some(definition_line("marker_beta")), "{when}: {:#?}", frames[2]);
    }
}

#[test]
fn names_and_lines_while_running_and_after_exit() {
    // The line checks below run only with DWARF: make sure a debug build has it.
    assert_eq!(has_dwarf(), cfg!(debug_assertions), "debug builds of the test program carry DWARF, release builds not");
    let (running, target) = start(Command::new(target_binary()));
    let mut symbols = Symbolizer::with_detail(Detail::Lines);
    symbols.remember(target.pid).expect("remember the running program");
    // The kernel names the executable by its canonical path.
    let module = std::fs::canonicalize(target_binary()).expect("the test program exists").display().to_string();
    check_markers(&mut symbols, &target, &module, "while running");

    let frame = symbols.user(target.pid, &[target.function("getpid")]).remove(0);
    assert!(frame.name.as_deref().is_some_and(|n| n.contains("getpid")), "{frame:#?}");
    assert!(frame.module.as_deref().is_some_and(|m| m.contains("libc")), "{frame:#?}");
    assert!(
        symbols.object_files().any(|(path, build_id)| path.contains("libc") && build_id.is_some_and(|b| !b.is_empty())),
        "libc is held open with its build ID"
    );

    running.finish();
    check_markers(&mut symbols, &target, &module, "after exit");
    let after = symbols.user(target.pid, &[target.function("getpid")]).remove(0);
    assert_eq!(after, frame, "libc after exit");
}

#[test]
fn names_alone_read_no_lines_and_a_small_cache_changes_nothing() {
    let (running, target) = start(Command::new(target_binary()));
    let (alpha, beta, getpid) =
        (target.function("marker_alpha"), target.function("marker_beta"), target.function("getpid"));
    // Stacks that share frames, through a cache that must start over every other stack.
    let stacks: Vec<Vec<u64>> = (0..40).map(|i| vec![alpha + i % 5, beta + i % 3, getpid, alpha + 3]).collect();
    let mut with_lines = Symbolizer::with_detail(Detail::Lines);
    let mut names_only = Symbolizer::new().with_cache_limit(6);
    for stack in &stacks {
        let detailed = with_lines.user(target.pid, stack);
        let named = names_only.user(target.pid, stack);
        assert!(
            named.iter().all(|f| f.name.is_some() && f.file.is_none() && f.line.is_none() && f.inlined.is_empty()),
            "{named:#?}"
        );
        assert_eq!(names(&named), names(&detailed));
    }
    running.finish();
}

#[test]
fn an_exited_process_never_remembered_prints_raw_addresses() {
    let (running, target) = start(Command::new(target_binary()));
    running.finish();
    let alpha = target.function("marker_alpha");
    let mut symbols = Symbolizer::new();
    assert!(symbols.remember(target.pid).is_err(), "the process is gone");
    assert_eq!(names(&symbols.user(target.pid, &[alpha])), [format!("{alpha:#x}")]);
    assert_eq!(symbols.usym(target.pid, alpha), format!("{alpha:#x}"));
}

#[test]
fn inlined_calls_carry_their_own_lines() {
    if !has_dwarf() {
        return;
    }
    let (running, target) = start(Command::new(target_binary()));
    let mut symbols = Symbolizer::with_detail(Detail::Lines);
    let beta = target.function("marker_beta");
    let addrs: Vec<u64> = (beta..beta + 512).collect();
    let frames = symbols.user(target.pid, &addrs);
    running.finish();
    let helper = format!("{CRATE}::inlined_helper");
    let (first, last) = (definition_line("inlined_helper"), definition_line("inlined_helper") + 6);
    let in_beta = frames.iter().take_while(|f| f.name.as_deref() == Some(&format!("{CRATE}::marker_beta")));
    // Other calls are inlined into marker_beta too (`u64::wrapping_add`, from core).
    let inlined: Vec<&Frame> = in_beta.filter(|f| f.inlined.first().is_some_and(|i| i.name == helper)).collect();
    assert!(!inlined.is_empty(), "no address of marker_beta shows the inlined helper");
    for frame in inlined {
        // The frame's line is the call site in marker_beta; the helper's line is where in it
        // the address is (or where it calls the next inlined function, from core).
        assert_eq!(frame.line, Some(definition_line("marker_beta") + 1), "{frame:#?}");
        let line = frame.inlined[0].line.unwrap_or_default();
        assert!((first..=last).contains(&line), "line {line} outside the helper: {frame:#?}");
    }
}

/// A copy of the test program in a fresh directory, for tests that delete or hide it.
fn copy_of_target(dir_name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-symbols-{dir_name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let copy = dir.join("rbt-symbols-target");
    std::fs::copy(target_binary(), &copy).expect("copy the test program");
    copy
}

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

#[test]
fn jit_code_is_named_by_the_perf_map_even_after_exit() {
    let (running, target) = start(Command::new(target_binary()));
    let mut symbols = Symbolizer::new();
    symbols.remember(target.pid).expect("remember the running program");
    let (one, two) = (target.jit["jit_function_one"], target.jit["jit_function_two"]);
    let check = |symbols: &mut Symbolizer, when: &str| {
        let frames = symbols.user(target.pid, &[one, one + 0x3f, two + 8, two + 0x40]);
        assert_eq!(
            names(&frames),
            ["jit_function_one+0", "jit_function_one+63", "jit_function_two+8", &format!("{:#x}", two + 0x40)],
            "{when}"
        );
        assert_eq!(frames[0].module.as_deref(), Some(format!("/tmp/perf-{}.map", target.pid).as_str()), "{when}");
    };
    check(&mut symbols, "while running");
    // The program removes its perf map as it exits.
    running.finish();
    assert!(!Path::new(&format!("/tmp/perf-{}.map", target.pid)).exists());
    check(&mut symbols, "after exit");
}

#[test]
fn the_vdso_is_named() {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read our maps");
    let Some(line) = maps.lines().find(|l| l.ends_with("[vdso]")) else { return };
    let (start, end) = line.split_once(' ').and_then(|(range, _)| range.split_once('-')).expect("a range");
    let start = u64::from_str_radix(start, 16).expect("hex");
    let end = u64::from_str_radix(end, 16).expect("hex");
    let mut symbols = Symbolizer::new();
    let frames = symbols.user(std::process::id(), &(start..end).step_by(4).collect::<Vec<_>>());
    let names: Vec<&str> = frames.iter().filter_map(|f| f.name.as_deref()).collect();
    assert!(names.iter().any(|n| n.contains("clock_gettime")), "vDSO names: {names:?}");
    assert!(frames.iter().all(|f| f.module.as_deref() == Some("[vdso]")));
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
