//! `rbt-suite-guest`: one test of bpftrace 0.17's runtime suite run inside the VM as the suite's
//! engine (`tests/bpftrace-suite/upstream/runtime/engine/runner.py`) runs it, for a guest that has
//! neither Python nor bpftrace. `tests/tests/vm_suite.rs` reads the suite's test files on the host,
//! hands each test to this program as arguments, and judges its `EXPECT` on the host from what
//! this program reports:
//!
//! - stdout: the tool's stdout and stderr, merged, byte for byte (what the engine matches);
//! - stderr: the `BEFORE` and `AFTER` commands' own output, then one last line, either
//!   `rbt-suite-guest: skip REASON` (a `MIN_KERNEL`, `REQUIRES` or `REQUIRES_FEATURE` the guest
//!   does not meet, in the engine's words) or
//!   `rbt-suite-guest: ran exit=N timed_out=yes|no attached=SECONDS|no` (N is Python's
//!   `returncode`: the exit code, or minus the signal that ended the shell).
//!
//! As the engine does: the requirements are shell commands (`PATH` = the tool's directory first)
//! and `bpftrace --info` lines; `BEFORE` starts in a session of its own and is waited for with
//! `pidof` on its last word; the tool runs as `sh -c COMMAND` in a session of its own with only
//! the engine's environment (`__BPFTRACE_NOTIFY_PROBES_ATTACHED=1` and the test's `ENV`), and has
//! the attach time limit to print `__BPFTRACE_NOTIFY_PROBES_ATTACHED`; that line starts `AFTER`
//! (with `BPFTRACE_SESSION` set, as the vendored engine sets it) and the test's own time limit; at
//! a limit the tool's session gets SIGTERM and its output is read to the end; whatever is still
//! running at the end gets SIGKILL. The host passes time limits already stretched for emulation.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The line bpftrace prints once its probes are attached (the engine's cue for `AFTER`).
const NOTIFY: &[u8] = b"__BPFTRACE_NOTIFY_PROBES_ATTACHED\n";
/// Where bpftrace's `--info` answers are kept between tests of one boot.
const INFO_CACHE: &str = "/tmp/rbt-suite-guest.info";
/// How long the tool may take to end after the SIGTERM at a time limit before it gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(30);

const USAGE: &str = "usage: rbt-suite-guest --dir DIR --bin DIR --timeout SECS --attach-timeout SECS \
    [--before CMD] [--after CMD] [--requires CMD]... [--feature [!]NAME]... [--min-kernel V] [--max-kernel V] \
    [--env KEY=VALUE]... -- COMMAND";

/// One test, as the host hands it over.
#[derive(Default)]
struct Test {
    /// The engine's working directory: `testprogs/` and `runtime/scripts/` are under it.
    dir: String,
    /// `BPFTRACE_RUNTIME_TEST_EXECUTABLE`: the directory whose `bpftrace` is the tool under test.
    bin: String,
    timeout: Duration,
    attach_timeout: Duration,
    before: Option<String>,
    after: Option<String>,
    requires: Vec<String>,
    features: Vec<String>,
    min_kernel: Option<String>,
    max_kernel: Option<String>,
    env: Vec<(String, String)>,
    /// The shell command the engine runs (`{{BPFTRACE}}` already replaced).
    command: String,
}

/// What became of the test.
enum Outcome {
    Skip(String),
    Ran { output: Vec<u8>, exit: i32, timed_out: bool, attached: Option<Duration> },
}

fn main() {
    let test = match parse_args(std::env::args().skip(1)) {
        Ok(test) => test,
        Err(e) => {
            eprintln!("rbt-suite-guest: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&test) {
        Ok(Outcome::Skip(reason)) => eprintln!("rbt-suite-guest: skip {reason}"),
        Ok(Outcome::Ran { output, exit, timed_out, attached }) => {
            let _ = std::io::stdout().write_all(&output);
            let _ = std::io::stdout().flush();
            let attached = attached.map_or("no".to_owned(), |at| format!("{:.2}", at.as_secs_f64()));
            let timed_out = if timed_out { "yes" } else { "no" };
            eprintln!("rbt-suite-guest: ran exit={exit} timed_out={timed_out} attached={attached}");
        }
        Err(e) => {
            eprintln!("rbt-suite-guest: error {e}");
            std::process::exit(1);
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Test, String> {
    let mut test = Test::default();
    while let Some(flag) = args.next() {
        if flag == "--" {
            test.command = args.collect::<Vec<_>>().join(" ");
            break;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let seconds = |text: &str| {
            text.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{flag} {text}: not a number of seconds"))
        };
        match flag.as_str() {
            "--dir" => test.dir = value,
            "--bin" => test.bin = value,
            "--timeout" => test.timeout = seconds(&value)?,
            "--attach-timeout" => test.attach_timeout = seconds(&value)?,
            "--before" => test.before = Some(value),
            "--after" => test.after = Some(value),
            "--requires" => test.requires.push(value),
            "--feature" => test.features.push(value),
            "--min-kernel" => test.min_kernel = Some(value),
            "--max-kernel" => test.max_kernel = Some(value),
            "--env" => {
                let (key, value) = value.split_once('=').ok_or_else(|| format!("--env {value}: not KEY=VALUE"))?;
                test.env.push((key.to_owned(), value.to_owned()));
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if test.command.is_empty() || test.dir.is_empty() || test.bin.is_empty() {
        return Err("--dir, --bin and a command after -- are required".into());
    }
    Ok(test)
}

fn run(test: &Test) -> Result<Outcome, String> {
    if let Some(reason) = unmet_requirement(test)? {
        return Ok(Outcome::Skip(reason));
    }
    let mut before = None;
    if let Some(command) = &test.before {
        let child = session_shell(command).current_dir(&test.dir).spawn().map_err(|e| format!("BEFORE: {e}"))?;
        before = Some(child);
        // The engine waits for a process named as the command's last word.
        let name = command.split_whitespace().last().unwrap_or_default();
        let name = name.rsplit('/').next().unwrap_or(name).to_owned();
        let started = Instant::now();
        while !running(&name) {
            if started.elapsed() > test.timeout {
                finish(before.as_mut(), None);
                return Ok(Outcome::Ran { output: Vec::new(), exit: 0, timed_out: true, attached: None });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let command = match &test.before {
        Some(before_command) if test.command.contains("{{BEFORE_PID}}") => {
            let name = before_command.split_whitespace().last().unwrap_or_default();
            let name = name.rsplit('/').next().unwrap_or(name);
            let pid = pidof(name).unwrap_or_default();
            test.command.replace("{{BEFORE_PID}}", &pid)
        }
        _ => test.command.clone(),
    };
    let outcome = run_tool(test, &command, &mut before);
    outcome.map(|(output, exit, timed_out, attached)| Outcome::Ran { output, exit, timed_out, attached })
}

/// The test's tool run to its end; returns its merged output, Python's `returncode`, whether a
/// time limit ended it, and when it said its probes were attached.
fn run_tool(
    test: &Test,
    command: &str,
    before: &mut Option<Child>,
) -> Result<(Vec<u8>, i32, bool, Option<Duration>), String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let mut shell = session_shell(command);
    shell
        .current_dir(&test.dir)
        .env_clear()
        .env("test", "rbt-suite-guest")
        .env("__BPFTRACE_NOTIFY_PROBES_ATTACHED", "1")
        .env("__BPFTRACE_NOTIFY_AOT_PORTABILITY_DISABLED", "1")
        .env("BPFTRACE_VERIFY_LLVM_IR", "1")
        .envs(test.env.iter().map(|(k, v)| (k, v)))
        .stdout(writer.try_clone().map_err(|e| format!("pipe: {e}"))?)
        .stderr(writer);
    let mut tool = shell.spawn().map_err(|e| format!("cannot start sh: {e}"))?;
    // The Command holds the pipe's writing end: without dropping it, no end of file would come.
    drop(shell);
    let lines = read_lines(reader);
    let started = Instant::now();
    let mut deadline = started + test.attach_timeout;
    let (mut output, mut attached, mut after, mut timed_out) = (Vec::new(), None, None, false);
    loop {
        let now = Instant::now();
        match lines.recv_timeout(deadline.saturating_duration_since(now)) {
            Ok(line) => {
                if attached.is_none() && line == NOTIFY {
                    attached = Some(started.elapsed());
                    deadline = Instant::now() + test.timeout;
                    if let Some(after_command) = &test.after {
                        let mut shell = session_shell(after_command);
                        shell.current_dir(&test.dir).env("BPFTRACE_SESSION", tool.id().to_string());
                        after = Some(shell.spawn().map_err(|e| format!("AFTER: {e}"))?);
                    }
                }
                output.extend_from_slice(&line);
            }
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if timed_out {
        // As the engine does: SIGTERM for a clean exit, then everything it still prints.
        signal_session(&tool, libc::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        let mut killed = false;
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => output.extend_from_slice(&line),
                Err(RecvTimeoutError::Timeout) if !killed => {
                    signal_session(&tool, libc::SIGKILL);
                    killed = true;
                }
                Err(_) => break,
            }
        }
    }
    let status = tool.wait().map_err(|e| format!("cannot wait for sh: {e}"))?;
    let exit = status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
    finish(before.as_mut(), after.as_mut());
    Ok((output, exit, timed_out, attached))
}

/// The lines `pipe` gives until its end, each with its newline (the last one maybe without).
fn read_lines(mut pipe: std::io::PipeReader) -> Receiver<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut pending, mut chunk) = (Vec::new(), [0u8; 8192]);
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            pending.extend_from_slice(&chunk[..n]);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let rest = pending.split_off(end + 1);
                if send.send(std::mem::replace(&mut pending, rest)).is_err() {
                    return;
                }
            }
        }
        if !pending.is_empty() {
            let _ = send.send(pending);
        }
    });
    receive
}

/// SIGKILL for the sessions of whichever of these still run, as the engine's `finally` does, and
/// their exit awaited, so that nothing of this test is left when the next one starts.
fn finish(before: Option<&mut Child>, after: Option<&mut Child>) {
    for child in [before, after].into_iter().flatten() {
        if matches!(child.try_wait(), Ok(None)) {
            signal_session(child, libc::SIGKILL);
        }
        let _ = child.wait();
    }
}

/// The engine's skip reasons, in its order: kernel version, `REQUIRES` commands, features.
fn unmet_requirement(test: &Test) -> Result<Option<String>, String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_err(|e| format!("osrelease: {e}"))?;
    let release = version_numbers(release.trim());
    if let Some(min) = test.min_kernel.as_deref().filter(|min| version_numbers(min) > release) {
        return Ok(Some(format!("min Kernel: {min}")));
    }
    if let Some(max) = test.max_kernel.as_deref().filter(|max| version_numbers(max) < release) {
        return Ok(Some(format!("max Kernel: {max}")));
    }
    let path = format!("{}:{}", test.bin, std::env::var("PATH").unwrap_or_default());
    for requirement in &test.requires {
        let status = Command::new("/bin/sh")
            .args(["-c", requirement])
            .current_dir(&test.dir)
            .env_clear()
            .env("PATH", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        if !status.success() {
            return Ok(Some(format!("unmet condition: '{}'", test.requires.join(" && "))));
        }
    }
    if test.features.is_empty() {
        return Ok(None);
    }
    let info = bpftrace_info(&path)?;
    for feature in &test.features {
        let (wanted, name) = feature.strip_prefix('!').map_or((true, feature.as_str()), |name| (false, name));
        if has_feature(&info, name)? != wanted {
            return Ok(Some(format!("missed feature: '{}'", test.features.join(","))));
        }
    }
    Ok(None)
}

/// `bpftrace --info`, stdout and stderr, asked once per boot.
fn bpftrace_info(path: &str) -> Result<String, String> {
    if let Ok(info) = std::fs::read_to_string(INFO_CACHE) {
        return Ok(info);
    }
    let output = Command::new("/bin/sh")
        .args(["-c", "bpftrace --info 2>&1"])
        .env("PATH", path)
        .output()
        .map_err(|e| format!("cannot run bpftrace --info: {e}"))?;
    let info = String::from_utf8_lossy(&output.stdout).into_owned();
    let _ = std::fs::write(INFO_CACHE, &info);
    Ok(info)
}

/// Whether `--info` says yes to `feature`, read as the engine reads it.
fn has_feature(info: &str, feature: &str) -> Result<bool, String> {
    let line = match feature {
        "loop" => "Loop support: yes",
        "probe_read_kernel" => "probe_read_kernel: yes",
        "btf" => "btf: yes",
        "kfunc" => "kfunc: yes",
        "dpath" => "dpath: yes",
        "uprobe_refcount" => "uprobe refcount (depends on Build:bcc bpf_attach_uprobe refcount): yes",
        "signal" => "send_signal: yes",
        "iter:task" => "iter:task: yes",
        "iter:task_file" => "iter:task_file: yes",
        "libpath_resolv" => "bcc library path resolution: yes",
        "dwarf" => "libdw (DWARF support): yes",
        "kprobe_multi" => "kprobe_multi: yes",
        "skboutput" => "skboutput: yes",
        // The vendored engine's cmake_vars: neither rbt nor Debian's bpftrace has the AOT runtime.
        "aot" => return Ok(false),
        _ => return Err(format!("unknown feature {feature}")),
    };
    Ok(info.contains(line))
}

/// The numbers of a kernel version, for ordering (`6.1.0-57-amd64` is 6, 1, 0, 57, 64), which
/// orders the suite's `MIN_KERNEL` values as Python's `LooseVersion` does.
fn version_numbers(version: &str) -> Vec<u64> {
    version.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect()
}

/// `sh -c COMMAND` in a session (and process group) of its own, as the engine's
/// `preexec_fn=os.setsid`, so that one signal reaches everything it starts.
fn session_shell(command: &str) -> Command {
    let mut shell = Command::new("/bin/sh");
    shell.args(["-c", command]);
    // SAFETY: the closure runs in the child between fork and exec and only calls setsid(2),
    // which is async-signal-safe.
    unsafe {
        shell.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    shell
}

/// `signal` for the whole session (process group) `child` leads.
fn signal_session(child: &Child, signal: i32) {
    let Ok(group) = i32::try_from(child.id()) else { return };
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    unsafe {
        libc::kill(-group, signal);
    }
}

fn pidof(name: &str) -> Option<String> {
    let output = Command::new("pidof").arg(name).stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split_whitespace().next().map(str::to_owned)
}

fn running(name: &str) -> bool {
    pidof(name).is_some()
}
