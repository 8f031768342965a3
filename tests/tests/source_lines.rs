//! Probes at source lines (`uprobe:BIN@FILE:LINE`), end to end: `tests/data/source_lines/ticks.c`
//! (a daemon's timer loop) built `-O0 -g` and `-O2 -g`, every line `rbt -l` lists probed at once,
//! and the address each probe fires at (`reg("ip")`; the binary is not PIE) compared with where
//! gdb puts a breakpoint on the same line; a line in the loop fires once per tick; a line with no
//! statement is an error naming the nearest lines that have one; `-lv` shows the source text.

mod common_rbt;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common_rbt::{rbt, require_bpf, text};

fn source() -> PathBuf {
    tests::workspace().join("tests/data/source_lines/ticks.c")
}

/// The line of ticks.c that holds `needle`.
fn line_of(needle: &str) -> u32 {
    let text = std::fs::read_to_string(source()).expect("read ticks.c");
    let index = text.lines().position(|l| l.contains(needle)).expect("the needle is in ticks.c");
    u32::try_from(index + 1).expect("a small line number")
}

/// ticks.c built with `opt` (`-O0`, `-O2`) and DWARF, not PIE (addresses are the file's).
fn build(opt: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-source-lines-{}{opt}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make a build directory");
    let binary = dir.join("ticks");
    let out =
        Command::new("gcc").args([opt, "-g", "-no-pie", "-o"]).arg(&binary).arg(source()).output().expect("gcc runs");
    assert!(out.status.success(), "gcc failed:\n{}", text(&out.stderr));
    binary
}

/// The lines `rbt -l 'uprobe:BIN@ticks.c:*'` lists.
fn listed_lines(binary: &Path) -> Vec<u32> {
    let out =
        Command::new(rbt()).args(["-l", &format!("uprobe:{}@ticks.c:*", binary.display())]).output().expect("rbt runs");
    assert!(out.status.success(), "rbt -l failed:\n{}", text(&out.stderr));
    text(&out.stdout).lines().filter_map(|l| l.rsplit(':').next()?.parse().ok()).collect()
}

/// gdb's breakpoint addresses for each of `lines`, keeping only the lines gdb does not move
/// (it moves a function's opening line past the prologue, and a line without code to the next).
fn gdb_addresses(binary: &Path, lines: &[u32]) -> BTreeMap<u32, BTreeSet<u64>> {
    let mut command = Command::new("gdb");
    command.args(["-batch", "-nx"]);
    for line in lines {
        command.args(["-ex", &format!("break ticks.c:{line}")]);
    }
    command.args(["-ex", "info breakpoints"]).arg(binary);
    let out = command.output().expect("gdb runs (apt-get install gdb; .ci/run installs it)");
    let mut found: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    // `1       breakpoint     keep y   0x0000000000401136 in main at ticks.c:52`, or for a
    // breakpoint of several locations one `1.1  y  0x... in f at ticks.c:52` line each.
    for line in text(&out.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(address) =
            words.iter().find_map(|w| w.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()))
        else {
            continue;
        };
        let Some(at) = words.last().and_then(|w| w.rsplit_once("ticks.c:")).and_then(|(_, l)| l.parse().ok()) else {
            continue;
        };
        found.entry(at).or_default().insert(address);
    }
    found
}

#[test]
fn probes_at_source_lines_fire_where_gdb_breaks() {
    require_bpf();
    let ticks = 3;
    let nap = line_of("nanosleep(&nap, NULL);");
    for opt in ["-O0", "-O2"] {
        let binary = build(opt);
        let lines = listed_lines(&binary);
        assert!(lines.contains(&nap), "{opt}: rbt -l does not list line {nap}: {lines:?}");
        let program: String = lines
            .iter()
            .map(|l| format!("uprobe:{}@ticks.c:{l} {{ @[{l}, reg(\"ip\")] = count(); }}\n", binary.display()))
            .collect();
        let dir = binary.parent().expect("a build directory");
        let command = format!("{} {ticks} 1 0 150 {}", binary.display(), dir.display());
        let out = Command::new(rbt()).args(["-e", &program, "-c", &command]).output().expect("rbt runs");
        assert!(out.status.success(), "{opt}: rbt failed:\n{}", text(&out.stderr));
        // `@[LINE, IP]: COUNT`
        let mut fired: BTreeMap<u32, BTreeMap<u64, u64>> = BTreeMap::new();
        for l in text(&out.stdout).lines() {
            let Some(rest) = l.strip_prefix("@[") else { continue };
            let Some((key, count)) = rest.split_once("]: ") else { continue };
            let Some((line, ip)) = key.split_once(", ") else { continue };
            let (Ok(line), Ok(ip), Ok(count)) = (line.parse(), ip.parse(), count.parse()) else { continue };
            fired.entry(line).or_default().insert(ip, count);
        }
        assert_eq!(fired.get(&nap).map(|ips| ips.values().sum::<u64>()), Some(ticks), "{opt}: line {nap}: {fired:?}");
        let gdb = gdb_addresses(&binary, &lines);
        let mut compared = 0;
        for (line, ips) in &fired {
            let Some(expected) = gdb.get(line) else { continue };
            let ours: BTreeSet<u64> = ips.keys().copied().collect();
            // gdb breaks at every copy of the line; those that ran fired.
            assert!(ours.is_subset(expected), "{opt}: line {line} fired at {ours:x?}, gdb breaks at {expected:x?}");
            compared += 1;
        }
        assert!(compared >= 10, "{opt}: only {compared} lines compared with gdb: fired {fired:?}, gdb {gdb:?}");
        eprintln!("{opt}: {} lines listed, {} fired, {compared} at gdb's addresses", lines.len(), fired.len());
    }
}

#[test]
fn a_line_without_a_statement_names_the_nearest_ones() {
    let binary = build("-O0");
    let blank = line_of("static char dirty") - 1;
    let out = Command::new(rbt())
        .args(["--dry-run", "-e", &format!("uprobe:{}@ticks.c:{blank} {{ @ = count(); }}", binary.display())])
        .output()
        .expect("rbt runs");
    assert_eq!(out.status.code(), Some(1));
    // The message as one line (the report wraps it).
    let stderr: String = text(&out.stderr).replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
    // The closing brace of now_ns before, the first line of stall after.
    let (before, after) = (blank - 1, line_of("static void stall"));
    assert!(stderr.contains(&format!("the nearest that have one: {before}, {after}")), "{stderr}");
}

/// `-lv` shows a line's source and the variables visible there with their types and where
/// they are: at -O0 each in its stack slot, `DW_OP_fbreg N` from the CFA as gdb's `info
/// address` reads it at a breakpoint on the line; at -O2 `tv_diff` is in a register.
#[test]
fn listing_lines_verbosely_shows_the_source_and_the_variables() {
    let line = line_of("int late = tv_diff > threshold_ns;");
    for opt in ["-O0", "-O2"] {
        let binary = build(opt);
        let out = Command::new(rbt())
            .args(["-lv", &format!("uprobe:{}@ticks.c:{line}", binary.display())])
            .output()
            .expect("rbt runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let listed = text(&out.stdout);
        let mut lines = listed.lines();
        assert_eq!(
            lines.next(),
            Some(
                format!("uprobe:{}@ticks.c:{line}        int late = tv_diff > threshold_ns;", binary.display())
                    .as_str()
            )
        );
        // `        TYPE NAME: WHERE`
        let vars: BTreeMap<String, (String, String)> = lines
            .filter_map(|l| {
                let (decl, place) = l.trim().split_once(": ")?;
                let (ty, name) = decl.rsplit_once(' ')?;
                Some((name.to_owned(), (ty.to_owned(), place.to_owned())))
            })
            .collect();
        for name in ["last", "threshold_ns", "now", "tv_diff"] {
            assert!(vars.contains_key(name), "{opt}: no {name} in:\n{listed}");
        }
        assert_eq!(vars["tv_diff"].0, "uint64_t", "{listed}");
        assert_eq!(vars["last"].0, "uint64_t *", "{listed}");
        if opt == "-O2" {
            assert!(vars["tv_diff"].1.starts_with("in r"), "{opt}: tv_diff is in a register:\n{listed}");
            continue;
        }
        let mut gdb = Command::new("gdb");
        gdb.args(["-batch", "-nx", "-ex", &format!("break ticks.c:{line}"), "-ex", "run"]);
        for name in vars.keys() {
            gdb.args(["-ex", &format!("info address {name}")]);
        }
        let dir = binary.parent().expect("a build directory");
        gdb.arg("--args").arg(&binary).args(["1", "1", "0", "150"]).arg(dir);
        let said = text(&gdb.output().expect("gdb runs").stdout);
        // `Symbol "tv_diff" is a variable at frame base reg $rbp offset 16+-32` or, with a
        // complex expression, `0: DW_OP_fbreg -32`: the offsets from the frame base in order.
        let fbreg: Vec<i64> =
            said.lines().filter_map(|l| l.split("DW_OP_fbreg ").nth(1)?.trim().parse().ok()).collect();
        let ours: Vec<i64> = vars
            .values()
            .map(|(_, place)| place.strip_prefix("at CFA").and_then(|o| o.parse().ok()).unwrap_or(i64::MAX))
            .collect();
        assert_eq!(ours, fbreg, "{opt}: rbt's CFA offsets against gdb's DW_OP_fbreg:\n{listed}\ngdb:\n{said}");
    }
}

/// A library without DWARF of its own (Debian's libc) is probed at a line through its separate
/// debug file (libc6-dbg, found by build id, its sections zlib-compressed): the line gdb names
/// for `__libc_malloc`'s start fires once per malloc of a program that makes 50.
#[test]
fn a_line_of_libc_through_its_debug_file() {
    require_bpf();
    let gdb = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "info line __libc_malloc", "/lib/x86_64-linux-gnu/libc.so.6"])
        .output()
        .expect("gdb runs (apt-get install gdb; .ci/run installs it)");
    // `Line 3288 of "./malloc/malloc.c" starts at address ...`
    let said = text(&gdb.stdout);
    let line: u32 = said
        .split_whitespace()
        .skip_while(|w| *w != "Line")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("gdb gave no line for __libc_malloc (is libc6-dbg installed?):\n{said}"));
    let dir = std::env::temp_dir().join(format!("rbt-source-lines-libc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make a build directory");
    let binary = dir.join("short");
    let out = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(tests::workspace().join("tests/data/unwind/short.c"))
        .output()
        .expect("gcc runs");
    assert!(out.status.success(), "gcc failed:\n{}", text(&out.stderr));
    // short.c mallocs 100 + i bytes for i in 0..50: `bytes` typed and located from the debug
    // file's DWARF.
    let program = format!("uprobe:libc@malloc.c:{line} /pid == cpid/ {{ @ = count(); @bytes = sum(locals.bytes); }}");
    let out = Command::new(rbt()).args(["-e", &program, "-c"]).arg(&binary).output().expect("rbt runs");
    assert!(out.status.success(), "rbt failed:\n{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("\n@: 50\n") && stdout.contains("\n@bytes: 6225\n"), "{stdout}");
}

/// The issue's hunt in one script: at the line after ticks.c computes `tv_diff`, `locals.tv_diff`
/// (a stack slot at -O0, a register at -O2) gives each late tick's lateness, the same values
/// the daemon logs; `*locals.last` follows a pointer; and the D-state waits of the fsync that
/// makes the ticks late show up with their kernel stacks.
#[test]
fn locals_read_what_the_daemon_computes() {
    require_bpf();
    let line = line_of("int late = tv_diff > threshold_ns;");
    for opt in ["-O0", "-O2"] {
        let binary = build(opt);
        let dir = binary.parent().expect("a build directory");
        let program = format!(
            "uprobe:{bin}@ticks.c:{line} /locals.tv_diff > 25000000/ {{
                printf(\"late %d ms\\n\", locals.tv_diff / 1000000);
                @late = count();
                @consistent = count();
                if (*locals.last + locals.tv_diff != locals.now) {{ @inconsistent = count(); }}
            }}
            tracepoint:sched:sched_switch /args->prev_pid == cpid && args->prev_state == 2/ {{ @dstate[kstack] = count(); }}",
            bin = binary.display()
        );
        // 9 ticks 20 ms apart, every third after an fsync of 8 MiB of dirty pages; late past 25 ms.
        let command = format!("{} 9 20 3 25 {}", binary.display(), dir.display());
        let out = Command::new(rbt()).args(["-e", &program, "-c", &command]).output().expect("rbt runs");
        assert!(out.status.success(), "{opt}: rbt failed:\n{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let mut ours: Vec<&str> =
            stdout.lines().filter(|l| !l.starts_with("late tick:")).filter_map(|l| l.strip_prefix("late ")).collect();
        let mut theirs: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("late tick: ")).collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert!(!theirs.is_empty(), "{opt}: the daemon logged no late tick:\n{stdout}");
        assert_eq!(ours, theirs, "{opt}: locals.tv_diff against the daemon's own log:\n{stdout}");
        let logged = stdout.lines().find_map(|l| l.split_once(" late ticks of ")).map(|(n, _)| n.trim().to_owned());
        assert!(stdout.contains(&format!("@late: {}\n", logged.clone().unwrap_or_default())), "{opt}: {stdout}");
        // An unkeyed count prints even at 0, as in bpftrace.
        assert!(stdout.contains("\n@inconsistent: 0\n"), "{opt}: *locals.last + tv_diff != now:\n{stdout}");
        assert!(stdout.contains(&format!("\n@consistent: {}\n", theirs.len())), "{opt}: {stdout}");
        assert!(stdout.contains("do_fsync") || stdout.contains("fsync"), "{opt}: no D-state stack in fsync:\n{stdout}");
    }
}

/// What cannot be read is a compile-time error that says why: a variable optimized out at the
/// line (`late` at -O2, before it is computed) with the lines of its function where it can be
/// read, a name no scope there has (with the visible ones), and `locals` at a probe that is not
/// on a source line.
#[test]
fn unreadable_locals_are_errors_that_say_why() {
    let binary = build("-O2");
    let line = line_of("int late = tv_diff > threshold_ns;");
    let bin = binary.display();
    let cases = [
        (
            format!("uprobe:{bin}@ticks.c:{line} {{ @ = locals.late; }}"),
            format!(
                "late cannot be read here: it is optimized out at this address; it can be read at lines {}",
                line + 1
            ),
        ),
        (format!("uprobe:{bin}@ticks.c:{line} {{ @ = locals.tv_dif; }}"), "did you mean `tv_diff`?".to_owned()),
        // At main's entry the loop's block, where tv_diff lives, has not begun.
        (format!("uprobe:{bin}:main {{ @ = locals.tv_diff; }}"), "no variable tv_diff is visible at".to_owned()),
        (
            format!("uretprobe:{bin}:main {{ @ = locals.tv_diff; }}"),
            "locals can only be read at uprobes on functions and source lines".to_owned(),
        ),
    ];
    for (program, want) in cases {
        let out = Command::new(rbt()).args(["--dry-run", "-e", &program]).output().expect("rbt runs");
        assert_eq!(out.status.code(), Some(1), "{program}");
        let stderr: String = text(&out.stderr).replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(stderr.contains(&want), "{program}: wanted {want:?} in:\n{stderr}");
    }
}

/// `locals.NAME` against gdb's `print` at the same line, hit for hit: `values.c`'s `mix` at a
/// loop line and the line after the loop, built -O0 (stack slots) and -O2 (registers, location
/// lists), every integer variable `-lv` says is readable there.
#[test]
fn locals_equal_what_gdb_prints_at_the_same_lines() {
    require_bpf();
    let source = tests::workspace().join("tests/data/source_lines/values.c");
    let text_of = std::fs::read_to_string(&source).expect("read values.c");
    let line_of = |mark: &str| -> u32 {
        let index = text_of.lines().position(|l| l.contains(&format!("rbt-line: {mark}"))).expect("the mark is there");
        u32::try_from(index + 1).expect("a small line number")
    };
    let mut compared = 0;
    for opt in ["-O0", "-O2"] {
        let dir = std::env::temp_dir().join(format!("rbt-source-values-{}{opt}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make a build directory");
        let binary = dir.join("values");
        let out =
            Command::new("gcc").args([opt, "-g", "-no-pie", "-o"]).arg(&binary).arg(&source).output().expect("gcc");
        assert!(out.status.success(), "gcc failed:\n{}", text(&out.stderr));
        for line in [line_of("loop"), line_of("after")] {
            let spec = format!("uprobe:{}@values.c:{line}", binary.display());
            let listed = text(&Command::new(rbt()).args(["-lv", &spec]).output().expect("rbt -lv").stdout);
            // `        long int acc: in r9`: integers somewhere rbt can read.
            let vars: Vec<(String, bool)> = listed
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let (decl, place) = l.trim().split_once(": ")?;
                    let (ty, name) = decl.rsplit_once(' ')?;
                    let readable = place.starts_with("in ") || place.starts_with("at ");
                    (readable && (ty == "int" || ty == "long int")).then(|| (name.to_owned(), ty == "long int"))
                })
                .collect();
            assert!(!vars.is_empty(), "{opt}:{line}: no readable integer in:\n{listed}");
            let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
            let ours_format = vec!["%d"; vars.len()].join(" ");
            let program = format!(
                "{spec} {{ printf(\"V {ours_format}\\n\", {}); }}",
                names.iter().map(|n| format!("locals.{n}")).collect::<Vec<_>>().join(", ")
            );
            let out = Command::new(rbt()).args(["-e", &program, "-c"]).arg(&binary).output().expect("rbt runs");
            assert!(out.status.success(), "{opt}:{line}: rbt failed:\n{}", text(&out.stderr));
            let ours: Vec<String> =
                text(&out.stdout).lines().filter(|l| l.starts_with("V ")).map(str::to_owned).collect();
            let gdb_format: Vec<&str> = vars.iter().map(|(_, long)| if *long { "%ld" } else { "%d" }).collect();
            let commands = format!(
                "break values.c:{line}\ncommands\nsilent\nprintf \"V {}\\n\", {}\ncontinue\nend\nrun\n",
                gdb_format.join(" "),
                names.join(", ")
            );
            let script = dir.join(format!("gdb-{line}"));
            std::fs::write(&script, commands).expect("write the gdb script");
            let out =
                Command::new("gdb").args(["-batch", "-nx", "-x"]).arg(&script).arg(&binary).output().expect("gdb runs");
            let theirs: Vec<String> =
                text(&out.stdout).lines().filter(|l| l.starts_with("V ")).map(str::to_owned).collect();
            assert!(!theirs.is_empty(), "{opt}:{line}: gdb printed nothing:\n{}", text(&out.stdout));
            assert_eq!(ours, theirs, "{opt}:{line}: locals {names:?} against gdb");
            compared += ours.len() * names.len();
        }
    }
    eprintln!("{compared} values equal to gdb's");
}

/// `args.NAME` at a line (a parameter where DWARF says it is there, not its argument register),
/// a function's static, a global and a file's static (at their addresses plus the load bias:
/// built PIE), a struct's fields where the optimizer keeps it in two registers, one half
/// computed from the parameters (`DW_OP_piece`, `DW_OP_breg5 ... DW_OP_plus DW_OP_stack_value`),
/// and `locals.NAME` at the function's entry (`uprobe:BIN:FUNC`), against gdb's `print` at the
/// same places: `values.c`'s `split`, built -O0 and -O2.
#[test]
fn parameters_statics_and_pieces_equal_what_gdb_prints() {
    require_bpf();
    let source = tests::workspace().join("tests/data/source_lines/values.c");
    let text_of = std::fs::read_to_string(&source).expect("read values.c");
    let index = text_of.lines().position(|l| l.contains("rbt-line: split")).expect("the mark is there");
    let line = index + 1;
    for opt in ["-O0", "-O2"] {
        let dir = std::env::temp_dir().join(format!("rbt-source-split-{}{opt}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make a build directory");
        let binary = dir.join("values");
        let out = Command::new("gcc").args([opt, "-g", "-pie", "-o"]).arg(&binary).arg(&source).output().expect("gcc");
        assert!(out.status.success(), "gcc failed:\n{}", text(&out.stderr));
        let listed = text(
            &Command::new(rbt())
                .args(["-lv", &format!("uprobe:{}@values.c:{line}", binary.display())])
                .output()
                .expect("rbt -lv")
                .stdout,
        );
        if opt == "-O2" {
            assert!(listed.contains("struct pair p: pieces: 8 bytes in "), "p is in registers at -O2:\n{listed}");
        }
        // Globals are left out of -lv, as perf probe --vars leaves them out.
        assert!(!listed.contains("int calls_total:"), "{listed}");
        let format = "V %ld %d %d %d %ld %ld %ld";
        let ours = "args.x, args.y, locals.calls, locals.calls_total, locals.seen, locals.p.lo, locals.p.hi";
        let theirs = "x, y, calls, calls_total, seen, p.lo, p.hi";
        // At -O0 a parameter is copied to its stack slot after the entry: there gdb and rbt
        // would both print what the slot held before, which no test can know.
        let entry = opt == "-O2";
        let mut program = format!("uprobe:{}@values.c:{line} {{ printf(\"{format}\\n\", {ours}); }}", binary.display());
        if entry {
            program.push_str(&format!(
                " uprobe:{}:split {{ printf(\"E %ld %d\\n\", locals.x, locals.y); }}",
                binary.display()
            ));
        }
        let out = Command::new(rbt()).args(["-e", &program, "-c"]).arg(&binary).output().expect("rbt runs");
        assert!(out.status.success(), "{opt}: rbt failed:\n{}", text(&out.stderr));
        let mine: Vec<String> = text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("V ") || l.starts_with("E "))
            .map(str::to_owned)
            .collect();
        let mut commands =
            format!("break values.c:{line}\ncommands\nsilent\nprintf \"{format}\\n\", {theirs}\ncontinue\nend\n");
        if entry {
            commands.push_str("break *split\ncommands\nsilent\nprintf \"E %ld %d\\n\", x, y\ncontinue\nend\n");
        }
        commands.push_str("run\n");
        let script = dir.join("gdb-split");
        std::fs::write(&script, commands).expect("write the gdb script");
        let out =
            Command::new("gdb").args(["-batch", "-nx", "-x"]).arg(&script).arg(&binary).output().expect("gdb runs");
        let gdb: Vec<String> = text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("V ") || l.starts_with("E "))
            .map(str::to_owned)
            .collect();
        assert_eq!(gdb.len(), if entry { 10 } else { 5 }, "{opt}: gdb stopped at each call:\n{}", text(&out.stdout));
        assert_eq!(mine, gdb, "{opt}: rbt against gdb");
    }
}

/// `uprobe:BIN:FUNC:LINE`, lines counted from the function's own line as `perf probe FUNC:LINE`
/// counts them: `-l 'uprobe:BIN:main:*'` lists main's lines of `-l 'uprobe:BIN@ticks.c:*'`,
/// shifted by main's line; a relative line fires where its absolute line does, and reads the
/// same locals (`str()` of a `char[4096]` too); a line past the function's end is an error
/// naming its range.
#[test]
fn lines_counted_from_the_function_are_the_files_lines() {
    require_bpf();
    for opt in ["-O0", "-O2"] {
        let binary = build(opt);
        let bin = binary.display();
        let main = line_of("int main(int argc");
        let end = line_of("unlink(path);") + 2;
        let out = Command::new(rbt()).args(["-l", &format!("uprobe:{bin}:main:*")]).output().expect("rbt runs");
        assert!(out.status.success(), "rbt -l failed:\n{}", text(&out.stderr));
        let relative: Vec<u32> = text(&out.stdout)
            .lines()
            .map(|l| {
                l.strip_prefix(&format!("uprobe:{bin}:main:")).expect("listed as FUNC:LINE").parse().expect("a line")
            })
            .collect();
        let absolute: Vec<u32> = listed_lines(&binary).into_iter().filter(|l| (main..=end).contains(l)).collect();
        assert_eq!(relative.iter().map(|r| r + main).collect::<Vec<_>>(), absolute, "{opt}");
        let sleep = line_of("nanosleep(&nap, NULL);");
        let program = format!(
            "uprobe:{bin}:main:{} {{ printf(\"R %d %x\\n\", locals.tick, reg(\"ip\")); }} \
             uprobe:{bin}@ticks.c:{sleep} {{ printf(\"A %d %x\\n\", locals.tick, reg(\"ip\")); }} \
             uprobe:{bin}:main:{} {{ printf(\"P %s|%s\\n\", str(locals.path), str(locals.path, 4)); }}",
            sleep - main,
            sleep - main
        );
        let out =
            Command::new(rbt()).args(["-e", &program, "-c"]).arg(format!("{bin} 3 10")).output().expect("rbt runs");
        assert!(out.status.success(), "{opt}: rbt failed:\n{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let hits = |tag: &str| -> Vec<String> {
            stdout.lines().filter_map(|l| l.strip_prefix(tag)).map(str::to_owned).collect()
        };
        assert_eq!(hits("R ").len(), 3, "{opt}: a hit per tick:\n{stdout}");
        assert_eq!(hits("R "), hits("A "), "{opt}: the same address and tick");
        assert!(hits("R ")[0].starts_with("1 "), "{opt}: {stdout}");
        // `char path[4096]`, larger than a string may be, read as one from where it is.
        assert_eq!(hits("P "), vec!["/tmp/dirty|/tmp"; 3], "{opt}: str(locals.path)");
        let past = end - main + 5;
        let out = Command::new(rbt())
            .args(["--dry-run", "-e", &format!("uprobe:{bin}:main:{past} {{ }}")])
            .output()
            .expect("rbt runs");
        assert_eq!(out.status.code(), Some(1));
        let stderr: String = text(&out.stderr).replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(stderr.contains(&format!("main has no line {past}: its lines are 0 to")), "{stderr}");
    }
}

/// A parameter DWARF knows only as a register's value on entry (`DW_OP_entry_value`, -O2):
/// rbt keeps the register at the function's entry, per thread and frame, and reads it at the
/// line; in `values.c`'s recursive `depth` each frame's `tag` is its own, as gdb prints it. At
/// -O0 the same line reads the parameter's stack slot.
#[test]
fn entry_values_are_each_frames_own_as_gdb_prints_them() {
    require_bpf();
    let source = tests::workspace().join("tests/data/source_lines/values.c");
    let text_of = std::fs::read_to_string(&source).expect("read values.c");
    let line = text_of.lines().position(|l| l.contains("rbt-line: entry")).expect("the mark is there") + 1;
    for opt in ["-O0", "-O2"] {
        let dir = std::env::temp_dir().join(format!("rbt-source-entry-{}{opt}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make a build directory");
        let binary = dir.join("values");
        let out = Command::new("gcc").args([opt, "-g", "-o"]).arg(&binary).arg(&source).output().expect("gcc");
        assert!(out.status.success(), "gcc failed:\n{}", text(&out.stderr));
        let spec = format!("uprobe:{}@values.c:{line}", binary.display());
        let listed = text(&Command::new(rbt()).args(["-lv", &spec]).output().expect("rbt -lv").stdout);
        if opt == "-O2" {
            assert!(listed.contains("long int tag: value rsi@entry"), "tag is an entry value at -O2:\n{listed}");
        }
        let program = format!("{spec} {{ printf(\"V %ld %ld\\n\", args.n, args.tag); }}");
        let out = Command::new(rbt()).args(["-e", &program, "-c"]).arg(&binary).output().expect("rbt runs");
        assert!(out.status.success(), "{opt}: rbt failed:\n{}", text(&out.stderr));
        // The hidden uprobe at depth's entry is not counted as the script's.
        assert!(
            text(&out.stderr).contains("Attaching 1 probe...") || text(&out.stdout).contains("Attaching 1 probe...")
        );
        let ours: Vec<String> = text(&out.stdout).lines().filter(|l| l.starts_with("V ")).map(str::to_owned).collect();
        let commands =
            format!("break values.c:{line}\ncommands\nsilent\nprintf \"V %ld %ld\\n\", n, tag\ncontinue\nend\nrun\n");
        let script = dir.join("gdb-entry");
        std::fs::write(&script, commands).expect("write the gdb script");
        let out =
            Command::new("gdb").args(["-batch", "-nx", "-x"]).arg(&script).arg(&binary).output().expect("gdb runs");
        let gdb: Vec<String> = text(&out.stdout).lines().filter(|l| l.starts_with("V ")).map(str::to_owned).collect();
        // depth(3, k * 10) for k in 1..=5: frames n = 1, 2, 3 return in that order.
        let expected: Vec<String> =
            (1..=5).flat_map(|k| (1..=3).map(move |n| format!("V {n} {}", (k * 10) << (3 - n)))).collect();
        assert_eq!(gdb, expected, "{opt}: gdb");
        assert_eq!(ours, expected, "{opt}: rbt against gdb");
    }
}

/// `-p PID` on a daemon already running: a line of its loop fires with its locals; at -O2
/// `argc` is known only as rdi's value on main's entry, which happened before rbt attached, so
/// it reads 0 and a warning says why; at -O0 it is in its stack slot and reads 3.
#[test]
fn a_running_daemon_is_probed_at_a_line_with_p() {
    require_bpf();
    let sleep = line_of("nanosleep(&nap, NULL);");
    for opt in ["-O0", "-O2"] {
        let binary = build(opt);
        let mut daemon = Command::new(&binary)
            .args(["100", "20"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the daemon starts");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let program = format!(
            "uprobe:{}@ticks.c:{sleep} {{ printf(\"T %d %d\\n\", locals.tick, args.argc); }} interval:ms:500 {{ exit(); }}",
            binary.display()
        );
        let out =
            Command::new(rbt()).args(["-p", &daemon.id().to_string(), "-e", &program]).output().expect("rbt runs");
        daemon.kill().expect("the daemon is stopped");
        daemon.wait().expect("the daemon ends");
        assert!(out.status.success(), "{opt}: rbt failed:\n{}", text(&out.stderr));
        let hits: Vec<(u32, u32)> = text(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut words = l.strip_prefix("T ")?.split(' ').map(|w| w.parse::<u32>().ok());
                Some((words.next()??, words.next()??))
            })
            .collect();
        assert!(hits.len() >= 5, "{opt}: a hit per 20 ms tick:\n{}", text(&out.stdout));
        // The daemon was well into its loop when rbt attached, and each hit is the next tick.
        assert!(hits[0].0 > 3, "{opt}: {hits:?}");
        assert!(hits.windows(2).all(|w| w[1].0 == w[0].0 + 1), "{opt}: {hits:?}");
        let argc = if opt == "-O0" { 3 } else { 0 };
        assert!(hits.iter().all(|&(_, a)| a == argc), "{opt}: argc {hits:?}");
        let warned = text(&out.stderr).contains("function was entered before rbt attached");
        assert_eq!(warned, opt == "-O2", "{opt}: {}", text(&out.stderr));
    }
}

/// DWARF in a separate file named by `.gnu_debuglink`, as distributions split it (`objcopy
/// --only-keep-debug`, then `--strip-debug --add-gnu-debuglink`): next to the binary, and in
/// `.debug/` beside it, as gdb and perf look for it. The stripped binary's lines, variables and
/// their types all come from it.
#[test]
fn debug_info_in_a_debuglink_file_next_to_the_binary() {
    require_bpf();
    let sleep = line_of("nanosleep(&nap, NULL);");
    for beside in ["", ".debug"] {
        let binary = build("-O2");
        let dir = binary.parent().expect("a build directory").join(format!("split{beside}"));
        std::fs::create_dir_all(dir.join(beside)).expect("make the directories");
        let stripped = dir.join("ticks");
        let debug = dir.join(beside).join("ticks.debug");
        let objcopy = |args: &[&std::ffi::OsStr]| {
            let out = Command::new("objcopy").args(args).output().expect("objcopy runs");
            assert!(out.status.success(), "objcopy {args:?}: {}", text(&out.stderr));
        };
        objcopy(&["--only-keep-debug".as_ref(), binary.as_os_str(), debug.as_os_str()]);
        let link = format!("--add-gnu-debuglink={}", debug.display());
        objcopy(&["--strip-debug".as_ref(), link.as_ref(), binary.as_os_str(), stripped.as_os_str()]);
        let spec = format!("uprobe:{}@ticks.c:{sleep}", stripped.display());
        let listed = text(&Command::new(rbt()).args(["-lv", &spec]).output().expect("rbt -lv").stdout);
        assert!(listed.contains("int tick: "), "{beside:?}: the variables from the debug file:\n{listed}");
        let program = format!("{spec} {{ printf(\"T %d %d\\n\", locals.tick, locals.nap.tv_nsec); }}");
        let out = Command::new(rbt())
            .args(["-e", &program, "-c"])
            .arg(format!("{} 3 10", stripped.display()))
            .output()
            .expect("rbt runs");
        assert!(out.status.success(), "{beside:?}: rbt failed:\n{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let hits: Vec<&str> = stdout.lines().filter(|l| l.starts_with("T ")).collect();
        assert_eq!(hits, ["T 1 10000000", "T 2 10000000", "T 3 10000000"], "{beside:?}");
    }
}
