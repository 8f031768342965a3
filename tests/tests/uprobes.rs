//! uprobes beyond a plain function name (issue 5): a bare virtual address of a binary, as
//! bpftrace 0.17 takes it (at a symbol's start freely, elsewhere only with `--unsafe`), and C++
//! functions named by their demangled names, with wildcards, in scripts and `-l`. Each runs
//! a real workload under rbt and checks exact counts; where bpftrace 0.17 runs the same thing,
//! its output must be the same bytes. Tests run in parallel and uprobes fire in every process,
//! so each script counts only its own child (`pid == cpid`).
//!
//! Needs root, BPF, bpftrace, `g++` (the C++ target is compiled at test time) and `objdump`
//! (binutils, to find an instruction boundary inside a function); `.ci/run` installs them.

mod common_rbt;

use common_rbt::*;
use object::{Object, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtual address of `name` in the ELF file at `path`, from its symbol table.
fn symbol_address(path: &Path, name: &str) -> u64 {
    let data = std::fs::read(path).expect("read the binary");
    let file = object::File::parse(&*data).expect("an ELF file");
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("{name} not in {}", path.display()))
        .address()
}

#[test]
fn an_address_at_a_function_start_is_that_function() {
    require_bpf();
    let workload = workload().canonicalize().expect("the workload exists");
    let path = workload.display().to_string();
    let address = symbol_address(&workload, "rbt_workload_add");
    let program = format!(
        "uprobe:{path}:{address:#x} /pid == cpid/ {{ @calls[probe] = count(); @arg1 = sum(arg1); }} \
         uretprobe:{path}:{address:#x} /pid == cpid/ {{ @ret[probe] = sum(retval); }}"
    );
    let child = format!("{path} call 7");
    let args = ["-e", program.as_str(), "-c", child.as_str()];
    let out = rbt_run(&args);
    assert!(out.status.success(), "rbt failed: {}", text(&out.stderr));
    // Seven calls add(i, 2i): arg1 sums to 2 * 21, the results to 3 * 21; the probes are named
    // by the address in decimal, as bpftrace names them.
    let expected = format!(
        "Attaching 2 probes...\n\n\n@arg1: 42\n@calls[uprobe:{path}:{address}]: 7\n@ret[uretprobe:{path}:{address}]: 63\n"
    );
    assert_eq!(text(&out.stdout), expected, "stderr: {}", text(&out.stderr));
    let reference = bpftrace_run(&args);
    assert_eq!(
        text(&out.stdout),
        text(&reference.stdout),
        "bpftrace 0.17 printed otherwise: {}",
        text(&reference.stderr)
    );
}

/// The second instruction of `rbt_workload_add`, from objdump: a boundary rbt cannot check.
fn second_instruction(workload: &Path, start: u64) -> u64 {
    let out = Command::new("objdump")
        .arg("-d")
        .arg(format!("--start-address={start:#x}"))
        .arg(format!("--stop-address={:#x}", start + 32))
        .arg(workload)
        .output()
        .expect("objdump runs (apt-get install binutils)");
    let listing = text(&out.stdout);
    // Lines read `   22864:\t48 89 74 24 18       \tmov    %rsi,0x18(%rsp)`.
    let addresses: Vec<u64> = listing
        .lines()
        .filter_map(|line| line.trim_start().split_once(':'))
        .filter_map(|(address, rest)| rest.starts_with('\t').then(|| u64::from_str_radix(address, 16).ok()).flatten())
        .collect();
    assert!(addresses.len() >= 2 && addresses[0] == start, "cannot read objdump's listing:\n{listing}");
    addresses[1]
}

#[test]
fn an_address_inside_a_function_needs_unsafe() {
    require_bpf();
    let workload = workload().canonicalize().expect("the workload exists");
    let path = workload.display().to_string();
    let inside = second_instruction(&workload, symbol_address(&workload, "rbt_workload_add"));
    let program = format!("uprobe:{path}:{inside:#x} /pid == cpid/ {{ @ = count(); }}");
    let child = format!("{path} call 5");

    let refused = rbt_run(&["-e", &program, "-c", &child]);
    assert_eq!(refused.status.code(), Some(1), "without --unsafe: {}", text(&refused.stderr));
    let message = text(&refused.stderr);
    assert!(message.contains("is at an instruction boundary") && message.contains("--unsafe"), "{message}");
    assert!(!message.contains("panicked"), "{message}");

    let allowed = rbt_run(&["--unsafe", "-e", &program, "-c", &child]);
    assert!(allowed.status.success(), "with --unsafe: {}", text(&allowed.stderr));
    assert_eq!(text(&allowed.stdout), "Attaching 1 probe...\n\n\n@: 5\n");
    assert!(
        text(&allowed.stderr).contains(&format!("unchecked uprobe: {path}:rbt_workload_add+")),
        "no warning: {}",
        text(&allowed.stderr)
    );
}

/// `tests/data/cxx/counter.cpp` compiled with g++ into a fresh directory of this test's own.
fn cxx_target(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-cxx-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let binary = dir.join("counter");
    let source = workspace().join("tests/data/cxx/counter.cpp");
    let out = Command::new("g++")
        .args(["-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("g++ runs (apt-get install g++; the C++ uprobe tests never skip)");
    assert!(out.status.success(), "g++ failed: {}", text(&out.stderr));
    binary
}

#[test]
fn cxx_functions_by_demangled_name() {
    require_bpf();
    let binary = cxx_target("run");
    let path = binary.display().to_string();
    let child = format!("{path} 4");
    // A full signature names one overload; a name without one, or a wildcard, matches the start
    // of demangled names (both overloads); the probe keeps the mangled name, as bpftrace's does.
    let cases = [
        (format!("uprobe:{path}:\"rbt::Counter::add(int)\" {{ @[probe] = count(); }}"), "Attaching 1 probe...\n\n\n@[uprobe:PATH:_ZN3rbt7Counter3addEi]: 8\n"),
        (
            format!("uprobe:{path}:\"rbt::Counter::add\" {{ @[probe] = count(); }}"),
            "Attaching 2 probes...\n\n\n@[uprobe:PATH:_ZN3rbt7Counter3addEl]: 4\n@[uprobe:PATH:_ZN3rbt7Counter3addEi]: 8\n",
        ),
        (
            format!("uprobe:{path}:\"rbt::*(int)\" {{ @[probe] = count(); }}"),
            "Attaching 2 probes...\n\n\n@[uprobe:PATH:_ZN3rbt5twiceEi]: 4\n@[uprobe:PATH:_ZN3rbt7Counter3addEi]: 8\n",
        ),
        (format!("uretprobe:{path}:\"rbt::twice\" {{ @ = sum(retval); }}"), "Attaching 1 probe...\n\n\n@: 12\n"),
    ];
    for (program, expected) in &cases {
        let args = ["-e", program.as_str(), "-c", child.as_str()];
        let out = rbt_run(&args);
        assert!(out.status.success(), "{program}: rbt failed: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expected.replace("PATH", &path), "{program}: stderr {}", text(&out.stderr));
        let reference = bpftrace_run(&args);
        assert_eq!(
            text(&out.stdout),
            text(&reference.stdout),
            "{program}: bpftrace printed otherwise: {}",
            text(&reference.stderr)
        );
    }
    // A demangled name that is no prefix matches nothing, as in bpftrace.
    let out = rbt_run(&["--dry-run", "-e", &format!("uprobe:{path}:\"Counter::add\" {{ @ = count(); }}")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(binary.parent().expect("a directory"));
}

#[test]
fn cxx_functions_listed_as_bpftrace_lists_them() {
    let binary = cxx_target("list");
    let path = binary.display().to_string();
    for pattern in [
        "*",
        "*add*",
        "\"rbt::Counter*\"",
        "\"rbt::Counter::add(int)\"",
        "\"*add(long)\"",
        "\"rbt::tw\"",
        "\"Counter::add\"",
        "_ZN3rbt5tw",
    ] {
        let search = format!("uprobe:{path}:{pattern}");
        let ours = rbt_run(&["-l", &search]);
        let reference = bpftrace_run(&["-l", &search]);
        assert_eq!(text(&ours.stdout), text(&reference.stdout), "-l {search}: rbt's stderr {}", text(&ours.stderr));
    }
    let _ = std::fs::remove_dir_all(binary.parent().expect("a directory"));
}

#[test]
fn libc_malloc_by_library_name_counts_exact_sizes() {
    require_bpf();
    let child = format!("{} malloc 1234 7 malloc 4321 3", workload().display());
    let program = "uprobe:libc:malloc /pid == cpid && (arg0 == 1234 || arg0 == 4321)/ { @[arg0] = count(); }";
    let out = rbt_run(&["-e", program, "-c", &child]);
    assert!(out.status.success(), "rbt failed: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Attaching 1 probe...\n\n\n@[4321]: 3\n@[1234]: 7\n",
        "stderr: {}",
        text(&out.stderr)
    );
}

/// A wildcard's uprobes that run the same code attach as one uprobe_multi link (Linux 6.6+):
/// counts are exact for uprobes and uretprobes, `-p` still filters, and detaching hundreds of
/// uprobes takes milliseconds (bpftrace 0.17 detaches each on its own, at a kernel RCU grace
/// period apiece: about 38 s for bash's 349 `r*` functions here, see BENCHMARKS.md).
#[test]
fn uprobe_wildcards_attach_as_one_link() {
    require_bpf();
    let workload = workload().canonicalize().expect("the workload exists");
    let path = workload.display().to_string();
    // rbt_workload_add 30 times; rbt_workload_outer and rbt_workload_leaf 20 times each.
    let program = format!(
        "uprobe:{path}:rbt_workload_* /pid == cpid/ {{ @calls = count(); }} \
         uretprobe:{path}:rbt_workload_* /pid == cpid/ {{ @returns = count(); }}"
    );
    let child = format!("{path} call 30 inline 20");
    let out = rbt_run(&["-e", program.as_str(), "-c", child.as_str()]);
    assert!(out.status.success(), "rbt failed: {}", text(&out.stderr));
    let attaching = text(&out.stdout).lines().next().unwrap_or("").to_owned();
    assert!(attaching.starts_with("Attaching ") && attaching != "Attaching 2 probes...", "{attaching}");
    assert!(
        text(&out.stdout).ends_with("\n\n\n@calls: 70\n@returns: 70\n"),
        "{}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // -p: a second workload process calls the same functions and is not counted.
    let mut other = Command::new(&workload)
        .args(["nap", "400000", "1", "call", "9", "nap", "300000", "1"])
        .spawn()
        .expect("workload");
    let mut watched = Command::new(&workload)
        .args(["nap", "400000", "1", "call", "11", "nap", "300000", "1"])
        .spawn()
        .expect("workload");
    let program = format!("uprobe:{path}:rbt_workload_* {{ @calls = count(); }}");
    let out = rbt_run(&["-p", &watched.id().to_string(), "-e", program.as_str()]);
    let _ = (other.wait(), watched.wait());
    assert!(text(&out.stdout).ends_with("\n\n\n@calls: 11\n"), "{}\nstderr: {}", text(&out.stdout), text(&out.stderr));

    // Hundreds of uprobes come and go quickly.
    let started = std::time::Instant::now();
    let out = rbt_run(&["-e", "uprobe:/bin/bash:* { @ = count(); } BEGIN { exit(); }"]);
    let elapsed = started.elapsed();
    assert!(out.status.success(), "rbt failed: {}", text(&out.stderr));
    let probes: u32 = text(&out.stdout).lines().next().and_then(|l| l.split(' ').nth(1)?.parse().ok()).unwrap_or(0);
    assert!(probes > 500, "bash has hundreds of functions: {}", text(&out.stdout));
    assert!(elapsed < std::time::Duration::from_secs(20), "{probes} uprobes took {elapsed:?} to attach and detach");
}
