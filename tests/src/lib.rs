//! Shared pieces of rbt's test suites: finding the rbt and bpftrace binaries, reading a case's
//! header lines, running a command with a time limit, showing a line diff, reading a REPL
//! transcript (`transcript`), comparing bpftrace's tools under both tracers (`tools`), and
//! (`vm`) running commands in a Linux 6.1 VM.

pub mod vm;

pub mod random_program;

pub mod tools;

pub mod transcript;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (the parent of this `tests` package).
pub fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The rbt binary: `$RBT` if set, else `rbt` built next to the running test executable (so a
/// `--release` test run uses a release rbt). `rbt` belongs to the `runtime` package, which cargo
/// does not build for this package's tests, so it is built here; cargo makes that a no-op when
/// nothing changed.
pub fn rbt() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("RBT") {
        return Ok(PathBuf::from(path));
    }
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test executable: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "runtime", "--bin", "rbt"]).current_dir(workspace());
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    let status = build.status().map_err(|e| format!("cannot run cargo to build rbt: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo build -p runtime --bin rbt` failed ({status})"));
    }
    let rbt = profile_dir.join("rbt");
    if rbt.exists() {
        Ok(rbt)
    } else {
        Err(format!("built rbt but {} is missing", rbt.display()))
    }
}

/// bpftrace: `$BPFTRACE` if set, else the first `bpftrace` on `PATH`.
pub fn bpftrace() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("BPFTRACE") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("bpftrace"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "bpftrace is not on PATH (set BPFTRACE=/path/to/bpftrace)".to_owned())
}

/// Whether we run as root, which loading BPF programs needs.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The command-line arguments a case asks for: the words of its first line `// run: ...` and of
/// any `// args: ...` line in its leading comment block, split like a shell would (quotes group
/// words), with `{workload}` replaced by `workload`. For example
///
/// ```text
/// // run: -c "{workload} getppid 10"
/// // args: -f json
/// ```
pub fn case_args(source: &str, workload: &Path) -> Vec<String> {
    let workload = workload.display().to_string();
    let header = source.lines().take_while(|line| line.starts_with("//"));
    let mut words = Vec::new();
    for (index, line) in header.enumerate() {
        let Some(rest) = line.strip_prefix("// run:").filter(|_| index == 0).or_else(|| line.strip_prefix("// args:"))
        else {
            continue;
        };
        words.extend(split_words(&with_dwarf_target(&rest.replace("{workload}", &workload))));
    }
    words
}

/// `text` with `{dwarf_target}` replaced by the compiled DWARF target ([`dwarf_target`]).
fn with_dwarf_target(text: &str) -> String {
    if !text.contains("{dwarf_target}") {
        return text.to_owned();
    }
    text.replace("{dwarf_target}", &dwarf_target().display().to_string())
}

/// `tests/data/dwarf/dwarf_target.c` compiled with `gcc -g -O0`, once per test process, for
/// cases that probe a C program through its DWARF (`{dwarf_target}` in `// run:`, `// args:`
/// and `// params:` lines).
pub fn dwarf_target() -> &'static Path {
    static TARGET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TARGET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rbt-dwarf-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let binary = dir.join("dwarf_target");
        let source = workspace().join("tests/data/dwarf/dwarf_target.c");
        let out = Command::new("gcc")
            .args(["-g", "-O0", "-o"])
            .arg(&binary)
            .arg(&source)
            .output()
            .unwrap_or_else(|e| panic!("gcc runs (apt-get install gcc): {e}"));
        assert!(out.status.success(), "gcc failed: {}", String::from_utf8_lossy(&out.stderr));
        binary
    })
}

/// A kind of BPF kernel object, as `bpf(2)` looks them up by id.
#[derive(Clone, Copy, Debug)]
pub enum BpfObject {
    Program,
    Map,
    Link,
}

/// The BPF object ids a process holds open, from its `/proc/PID/fdinfo` files, e.g.
///
/// ```text
/// pos: 0
/// flags: 02000002
/// link_type: perf
/// link_id: 300
/// prog_id: 2514
/// ```
///
/// (A link's fdinfo names its program too; that program is also held by its own descriptor.)
pub fn bpf_objects_of(pid: u32) -> Vec<(BpfObject, u32)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return found };
    for entry in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let kind = match key {
                "prog_id" => BpfObject::Program,
                "map_id" => BpfObject::Map,
                "link_id" => BpfObject::Link,
                _ => continue,
            };
            if let Ok(id) = value.trim().parse() {
                found.push((kind, id));
            }
        }
    }
    found.sort_by_key(|&(kind, id)| (kind as u8, id));
    found.dedup_by_key(|&mut (kind, id)| (kind as u8, id));
    found
}

/// Whether the kernel still has the BPF object `id`: asks `bpf(2)` for a descriptor by id.
pub fn bpf_object_exists(kind: BpfObject, id: u32) -> bool {
    // BPF_PROG_GET_FD_BY_ID, BPF_MAP_GET_FD_BY_ID, BPF_LINK_GET_FD_BY_ID.
    let cmd: libc::c_long = match kind {
        BpfObject::Program => 13,
        BpfObject::Map => 14,
        BpfObject::Link => 30,
    };
    // `union bpf_attr` for the *_GET_FD_BY_ID commands: the id, then next_id and open_flags.
    let attr: [u32; 3] = [id, 0, 0];
    // SAFETY: `attr` is a valid, fully initialised bpf_attr prefix for these commands and lives
    // for the whole call; its size is passed along.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), std::mem::size_of_val(&attr)) };
    if fd >= 0 {
        // SAFETY: the kernel just gave us this descriptor and nothing else owns it.
        unsafe { libc::close(fd as i32) };
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
}

/// The positional parameters a case passes after its file name: the words of a `// params: ...`
/// line in its leading comment block, with `{workload}` (e.g. for `uprobe:$1:func`) and
/// `{dwarf_target}` replaced.
pub fn case_params(source: &str, workload: &Path) -> Vec<String> {
    let workload = workload.display().to_string();
    source
        .lines()
        .take_while(|line| line.starts_with("//"))
        .filter_map(|line| line.strip_prefix("// params:"))
        .flat_map(|rest| split_words(&with_dwarf_target(&rest.replace("{workload}", &workload))))
        .collect()
}

/// Splits `text` at whitespace outside single or double quotes, dropping the quotes.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// What a finished (or killed) command printed.
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the command was killed for running past its time limit.
    pub status: Option<ExitStatus>,
}

/// Runs `command` with stdin closed, capturing both outputs, killing it after `limit`.
pub fn run_with_limit(command: &mut Command, limit: Duration) -> Result<Captured, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => return Err(format!("cannot wait for {:?}: {e}", command.get_program())),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Captured { stdout, stderr, status })
}

/// A line diff of `expected` against `actual` in the unified style: `-` lines only in expected,
/// `+` lines only in actual, and up to two unchanged lines of context around each change.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let (old, new): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // Outputs are small; past this size a plain dump of both sides is clearer anyway.
    if old.len() * new.len() > 4_000_000 {
        return format!("--- expected\n{expected}\n+++ actual\n{actual}\n");
    }
    // lcs[i][j]: length of the longest common subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i][j] = if old[i] == new[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut lines = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            lines.push((' ', old[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < old.len() && (j == new.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', old[i]));
            i += 1;
        } else {
            lines.push(('+', new[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| {
        let window = &lines[k.saturating_sub(2)..(k + 3).min(lines.len())];
        window.iter().any(|(tag, _)| *tag != ' ')
    };
    let mut out = String::from("--- bpftrace\n+++ rbt\n");
    let mut skipped = false;
    for (k, (tag, line)) in lines.iter().enumerate() {
        if near_change(k) {
            if skipped {
                out.push_str("...\n");
                skipped = false;
            }
            out.push_str(&format!("{tag}{line}\n"));
        } else {
            skipped = true;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("(the outputs differ in their final newline)\n");
    }
    out
}

/// `tests/data/usdt/usdt_target.c` compiled with gcc into a directory of its own (named after
/// `test` and this process), for the USDT tests and check goldens. Needs gcc and `<sys/sdt.h>`
/// (Debian's `systemtap-sdt-dev`, which `.ci/run` installs).
pub fn usdt_target(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-usdt-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let binary = dir.join("usdt_target");
    let source = workspace().join("tests/data/usdt/usdt_target.c");
    let out = Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("gcc runs (apt-get install gcc systemtap-sdt-dev): {e}"));
    assert!(
        out.status.success(),
        "gcc failed (is systemtap-sdt-dev installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_args_read_run_and_args_lines() {
        let source = "// run: -c \"{workload} getppid 10\"\n// args: -f json\n// about\nBEGIN {}\n// args: no";
        let args = case_args(source, Path::new("/w"));
        assert_eq!(args, ["-c", "/w getppid 10", "-f", "json"]);
        assert!(case_args("// run:\nBEGIN {}", Path::new("/w")).is_empty());
        assert!(case_args("BEGIN {}", Path::new("/w")).is_empty());
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(split_words(" a 'b c'  \"d\"e '' "), ["a", "b c", "de", ""]);
    }

    #[test]
    fn diff_shows_changes_with_context() {
        let diff = line_diff("1\n2\n3\n4\n5\n6\n7\n", "1\n2\n3\n4\nfive\n6\n7\n");
        assert_eq!(diff, "--- bpftrace\n+++ rbt\n...\n 3\n 4\n-5\n+five\n 6\n 7\n");
        assert!(line_diff("a\n", "a").contains("final newline"));
    }
}
