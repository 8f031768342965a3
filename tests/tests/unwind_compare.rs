//! rbt's user stacks against an independent unwinder on the same program: a C program built with
//! `gcc -O2 -fomit-frame-pointer` (tests/data/unwind_compare/chains.c) stops at `probe_point`
//! from many call chains (recursion of varying depth, function pointers, libc's qsort calling
//! back into it, signal handlers on stacks interrupted in nanosleep and in faulting
//! instructions), and every stop's stack is taken twice: by rbt's uprobe (`ustack(perf)`,
//! unwound in the probe program from `.eh_frame`) and by gdb's breakpoint at the same
//! instruction (gdb unwinds with its own DWARF CFI reader). Both runs disable address-space
//! randomization, so the frames' addresses, not only their names, must agree frame for frame.
//! The same comparison runs on Debian's python3 (no frame pointers) stopping in libc's
//! `clock_nanosleep` under Python recursion that re-enters the interpreter from C.
//!
//! Needs root, BPF, gcc, gdb, setarch and libc's debug file (libc6-dbg); without one the test fails and says which.

mod common_rbt;

use std::path::{Path, PathBuf};
use std::process::Command;

use common_rbt::{rbt, require_bpf, text};

/// Rounds of every chain the program runs: about 100 stops each.
const ROUNDS: u32 = 10;
/// The warm-up stop's tag: rbt takes that stack before it has loaded the process's tables.
const WARM_UP: u64 = 0;

/// One frame: its pc, the start of its function (`None` where it has no symbol) and the name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    pc: u64,
    start: Option<u64>,
    name: String,
}

impl Frame {
    /// The same frame: the same pc in the same function (by name, or by start where one
    /// function has several names, as libc's aliases do).
    fn same(&self, other: &Frame) -> bool {
        self.pc == other.pc && (self.name == other.name || (self.start.is_some() && self.start == other.start))
    }
}

/// One stop: the tag `probe_point` was called with, and the frames innermost first.
#[derive(Debug, Clone)]
struct Stack {
    tag: u64,
    frames: Vec<Frame>,
}

fn data(name: &str) -> PathBuf {
    tests::workspace().join("tests/data/unwind_compare").join(name)
}

/// The target compiled into a fresh directory of this test's own.
fn build_target() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-unwind-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the build directory");
    let binary = dir.join("chains");
    let out = Command::new("gcc")
        .args(["-O2", "-fomit-frame-pointer", "-o"])
        .arg(&binary)
        .arg(data("chains.c"))
        .output()
        .expect("gcc runs (apt-get install gcc; this test never skips)");
    assert!(out.status.success(), "gcc failed: {}", text(&out.stderr));
    binary
}

/// Blocks of `stack TAG`, frame lines, `end`; `frame` parses a line (`None` skips it).
fn parse_blocks(output: &str, frame: impl Fn(&str) -> Option<Frame>) -> Vec<Stack> {
    let mut stacks = Vec::new();
    let mut current: Option<Stack> = None;
    for line in output.lines() {
        if let Some(tag) = line.strip_prefix("stack ") {
            let tag = tag.trim().parse().unwrap_or_else(|_| panic!("a stack's tag: {line:?}"));
            current = Some(Stack { tag, frames: Vec::new() });
        } else if line == "end" {
            stacks.extend(current.take());
        } else if let Some(stack) = current.as_mut() {
            stack.frames.extend(frame(line));
        }
    }
    stacks
}

/// gdb's lines: `PC START NAME` (hex, START `-` without a symbol).
fn gdb_frame(line: &str) -> Option<Frame> {
    let mut fields = line.splitn(3, ' ');
    let pc = u64::from_str_radix(fields.next()?, 16).ok()?;
    let start = fields.next().and_then(|s| u64::from_str_radix(s, 16).ok());
    Some(Frame { pc, start, name: fields.next()?.to_owned() })
}

/// rbt's `ustack(perf)` lines: `\tPC NAME+OFFSET[ FILE:LINE] (MODULE)`, `\tPC 0xPC ([unknown])`
/// without a symbol; inlined calls (`NAME (inlined) ...`) are left out as gdb's are.
fn rbt_frame(line: &str) -> Option<Frame> {
    let line = line.strip_prefix('\t')?;
    let (pc, rest) = line.split_once(' ')?;
    let pc = u64::from_str_radix(pc, 16).ok()?;
    let symbol = rest.split(' ').next()?;
    if rest.contains(" (inlined) ") {
        return None;
    }
    let parsed = symbol.rsplit_once('+').and_then(|(name, offset)| Some((name, offset.parse::<u64>().ok()?)));
    Some(match parsed {
        Some((name, offset)) => Frame { pc, start: Some(pc - offset), name: name.to_owned() },
        None => Frame { pc, start: None, name: "??".to_owned() },
    })
}

/// The program gdb and rbt run, and where they stop.
struct Target<'a> {
    /// The command: the executable, then its arguments.
    command: &'a [&'a str],
    /// The library holding `function` (`None`: the executable), for rbt's uprobe.
    library: Option<&'a str>,
    function: &'a str,
    /// Where `function` is in a library: a function of the executable gdb stops at first.
    start_at: Option<&'a str>,
    env: &'a [(&'a str, &'a str)],
}

fn gdb_stacks(target: &Target) -> Vec<Stack> {
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx", "-ex", &format!("set $stop_at = \"{}\"", target.function)]);
    if let Some(start) = target.start_at {
        gdb.args(["-ex", &format!("set $start_at = \"{start}\"")]);
    }
    gdb.arg("-x").arg(data("gdb_stacks.py")).arg("--args").args(target.command).envs(target.env.iter().copied());
    let out = gdb
        .output()
        .expect("gdb runs (apt-get install gdb: it is this test's reference unwinder; the test never skips)");
    assert!(out.status.success(), "gdb failed ({}):\n{}", out.status, text(&out.stderr));
    parse_blocks(&text(&out.stdout), gdb_frame)
}

/// rbt's stacks of the same stops; `setarch -R` runs the program without address-space
/// randomization, as gdb does.
fn rbt_stacks(target: &Target) -> Vec<Stack> {
    let program = format!(
        "uprobe:{}:{} /pid == cpid/ {{ printf(\"stack %d\\n%s\\nend\\n\", arg0, ustack(perf)); }}",
        target.library.unwrap_or(target.command[0]),
        target.function
    );
    let command = format!("setarch -R {}", target.command.join(" "));
    let out = Command::new(rbt())
        .args(["-e", &program, "-c", &command])
        .envs(target.env.iter().copied())
        .output()
        .expect("rbt runs");
    assert!(out.status.success(), "rbt failed ({}):\n{}", out.status, text(&out.stderr));
    parse_blocks(&text(&out.stdout), rbt_frame)
}

fn show(frames: &[Frame]) -> String {
    frames.iter().map(|f| format!("    {:x} {}\n", f.pc, f.name)).collect()
}

/// Side by side, frame for frame, the differing lines marked.
fn diff(index: usize, reference: &Stack, ours: &Stack) -> String {
    let mut out = format!("stop #{index} (tag {}): gdb | rbt\n", reference.tag);
    for i in 0..reference.frames.len().max(ours.frames.len()) {
        let (a, b) = (reference.frames.get(i), ours.frames.get(i));
        let mark = if matches!((a, b), (Some(a), Some(b)) if a.same(b)) { ' ' } else { '!' };
        let cell = |f: Option<&Frame>| f.map_or_else(|| "-".to_owned(), |f| format!("{:x} {}", f.pc, f.name));
        out.push_str(&format!("  {mark} {:<48} | {}\n", cell(a), cell(b)));
    }
    out
}

/// Requires at least 99% of `ours` to be frame for frame `reference`'s (the same stops, in the
/// same order), printing the figures and the stacks that differ.
fn compare(what: &str, reference: &[Stack], ours: &[Stack]) {
    let tags = |stacks: &[Stack]| stacks.iter().map(|s| s.tag).collect::<Vec<_>>();
    assert_eq!(tags(ours), tags(reference), "{what}: rbt and gdb saw different stops");
    let differing: Vec<usize> = (0..reference.len())
        .filter(|&i| {
            let (a, b) = (&reference[i].frames, &ours[i].frames);
            a.len() != b.len() || a.iter().zip(b).any(|(a, b)| !a.same(b))
        })
        .collect();
    let identical = reference.len() - differing.len();
    let frames: usize = reference.iter().map(|s| s.frames.len()).sum();
    eprintln!(
        "{what}: {identical} of {} stacks ({frames} frames) identical to gdb's, {} differ",
        reference.len(),
        differing.len()
    );
    let report: String = differing.iter().take(20).map(|&i| diff(i, &reference[i], &ours[i])).collect();
    assert!(
        identical * 100 >= reference.len() * 99,
        "{what}: {} of {} stacks differ from gdb's (at most 1% may):\n{report}",
        differing.len(),
        reference.len()
    );
    if !differing.is_empty() {
        eprintln!("the differing stacks:\n{report}");
    }
}

/// Both unwinders' stacks of `target`, without the first `warm_up` stops (rbt takes the first
/// stack of a process before it has loaded the process's tables).
fn both(target: &Target, warm_up: usize) -> (Vec<Stack>, Vec<Stack>) {
    for tool in ["gdb", "setarch"] {
        let found = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing (apt-get install gdb util-linux): this test never skips");
    }
    require_libc_debug_file();
    let skip = |stacks: Vec<Stack>| stacks.into_iter().skip(warm_up).collect::<Vec<_>>();
    (skip(gdb_stacks(target)), skip(rbt_stacks(target)))
}

/// libc's detached debug file (Debian's libc6-dbg), which names its static functions
/// (`msort_with_tmp`) for gdb and rbt alike; without it each names them its own way.
fn require_libc_debug_file() {
    use object::{Object, ObjectSection};
    let bytes = std::fs::read(LIBC).expect("read libc");
    let file = object::File::parse(&*bytes).expect("libc is an ELF file");
    let note = file.section_by_name(".note.gnu.build-id").and_then(|s| s.data().ok()).expect("libc's build id");
    // The note's 16-byte header (sizes, type, "GNU\0"), then the id.
    let id: String = note[16..].iter().map(|b| format!("{b:02x}")).collect();
    let debug = PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]));
    assert!(debug.exists(), "{} is missing (apt-get install libc6-dbg): this test never skips", debug.display());
}

const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

#[test]
fn c_stacks_match_gdb_frame_for_frame() {
    require_bpf();
    let binary = build_target();
    let (binary_path, rounds) = (binary.display().to_string(), ROUNDS.to_string());
    let target =
        Target { command: &[&binary_path, &rounds], library: None, function: "probe_point", start_at: None, env: &[] };
    // The program's warm-up stop is its first.
    let (reference, ours) = both(&target, 1);
    assert!(reference.first().is_some_and(|s| s.tag != WARM_UP), "the warm-up stop is the first");

    // Every chain is there, in gdb's run, with its expected frames: the reference itself is sound.
    assert!(reference.len() >= 1000, "gdb saw {} stops, expected about {}", reference.len(), 102 * ROUNDS);
    for (tag, through) in [
        (1011, &["recurse_vla", "recurse", "main", "__libc_start_call_main"][..]),
        (2003, &["recurse", "op_mul", "through_pointer", "main"][..]),
        (4000, &["compare_ints", "msort_with_tmp", "main"][..]),
        (5014, &["alarm_work", "on_alarm", "__restore_rt", "clock_nanosleep", "sleep_until_alarm", "main"][..]),
        (6011, &["on_fault", "__restore_rt", "fault_after_push", "fault_in", "main", "_start"][..]),
    ] {
        let stack = reference.iter().find(|s| s.tag == tag).unwrap_or_else(|| panic!("gdb saw no stop {tag}"));
        let frames: Vec<&str> = stack.frames.iter().map(|f| f.name.as_str()).collect();
        // gcc's clones keep their function's name before a dot (`msort_with_tmp.part.0`).
        let has = |name: &str| frames.iter().any(|f| f.split('.').next() == Some(name));
        assert!(through.iter().all(|n| has(n)), "gdb's stack {tag} lacks one of {through:?}: {frames:?}");
    }
    compare("C chains", &reference, &ours);
    // A stack the tables were not loaded for yet would end early: the deepest is whole.
    let deepest = ours.iter().max_by_key(|s| s.frames.len()).expect("stacks");
    assert!(deepest.frames.last().is_some_and(|f| f.name == "_start"), "deepest stack:\n{}", show(&deepest.frames));
    std::fs::remove_dir_all(binary.parent().expect("build dir")).ok();
}

/// Debian's python3 (no frame pointers) sleeping under Python recursion that re-enters the
/// interpreter from C: libc's `clock_nanosleep` stops in the same order in both runs (string
/// hashing fixed, so the interpreter takes the same paths).
#[test]
fn python_stacks_match_gdb_frame_for_frame() {
    require_bpf();
    assert!(Path::new("/usr/bin/python3").exists(), "/usr/bin/python3 is missing (apt-get install python3)");
    let script = data("sleeps.py").display().to_string();
    let target = Target {
        command: &["/usr/bin/python3", "-s", &script],
        library: Some(LIBC),
        function: "clock_nanosleep",
        start_at: Some("Py_BytesMain"),
        env: &[("PYTHONHASHSEED", "0")],
    };
    let (reference, ours) = both(&target, 1);
    assert_eq!(reference.len(), 60, "gdb saw one stop per sleep after the warm-up");
    let evals = |s: &Stack| s.frames.iter().filter(|f| f.name == "_PyEval_EvalFrameDefault").count();
    assert!(reference.iter().map(evals).max() >= Some(8), "the deepest recursion re-enters the interpreter 8 times");
    compare("python3", &reference, &ours);
}
