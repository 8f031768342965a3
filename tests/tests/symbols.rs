//! The symbolizer (`runtime::symbols`) against the test's own processes, no root needed: names,
//! offsets and DWARF lines of a test program's functions while it runs and after it exits, JIT
//! perf maps and the vDSO. `symbols_as_root.rs` (kernel tier) covers deleted executables, other
//! mount namespaces and kernel frames compared with bpftrace 0.17's.

mod common_symbols;

use std::path::Path;
use std::process::Command;

use common_symbols::*;
use runtime::symbols::{Detail, Frame, Symbolizer};

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
