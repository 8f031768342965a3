//! Shared by the symbolizer suites (`symbols.rs`, hermetic, and `symbols_as_root.rs`): starting the
//! test program `rbt-symbols-target`, reading the addresses it prints, and checking the frames of
//! its marker functions.

#![allow(dead_code)] // each suite uses part of this file

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use runtime::symbols::{Frame, Symbolizer};

/// The crate name Rust gives the test program's functions.
pub const CRATE: &str = "rbt_symbols_target";

pub fn target_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rbt-symbols-target"))
}

/// What a `rbt-symbols-target` printed: its pid and the addresses of its functions.
pub struct Subject {
    pub pid: u32,
    pub functions: HashMap<String, u64>,
    pub jit: HashMap<String, u64>,
}

impl Subject {
    pub fn function(&self, name: &str) -> u64 {
        self.functions[name]
    }
}

/// The running program; `finish` lets it exit.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Starts the test program and reads its addresses.
pub fn start(mut command: Command) -> (Running, Subject) {
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
    pub fn finish(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let status = self.child.wait().expect("wait for the test program");
        assert!(status.success(), "the test program failed: {status}");
        assert!(!Path::new(&format!("/proc/{}", self.child.id())).exists(), "the pid still exists");
    }
}

/// The line on which `fn NAME(` is defined in the test program's source.
pub fn definition_line(name: &str) -> u32 {
    let source =
        std::fs::read_to_string(tests::workspace().join("tests/src/bin/symbols_target.rs")).expect("read the source");
    let index = source.lines().position(|l| l.starts_with(&format!("fn {name}("))).expect("the function is defined");
    u32::try_from(index + 1).expect("small line number")
}

/// Whether the test program was built with DWARF (not in a release build, which strips it): an
/// ELF64 section named `.debug_line`. (Searching the bytes is not enough: std's own backtrace
/// code carries the section names as strings.)
pub fn has_dwarf() -> bool {
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

pub fn names(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(Frame::bpftrace_text).collect()
}

/// Checks the frames of the markers at their entry and a few bytes in, with DWARF lines.
pub fn check_markers(symbols: &mut Symbolizer, target: &Subject, module: &str, when: &str) {
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

/// A copy of the test program in a fresh directory, for tests that delete or hide it.
pub fn copy_of_target(dir_name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-symbols-{dir_name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let copy = dir.join("rbt-symbols-target");
    std::fs::copy(target_binary(), &copy).expect("copy the test program");
    copy
}
