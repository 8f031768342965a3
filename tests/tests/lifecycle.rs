//! The life of a session as users end it: SIGTERM and SIGINT run END and print the maps, exit 0;
//! after SIGKILL nothing rbt loaded stays in the kernel (every attachment is a descriptor).

mod common_rbt;

use common_rbt::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tests::{bpf_object_exists, bpf_objects_of, BpfObject};

const SCRIPT: &str = "BEGIN { @b = 1; } tracepoint:syscalls:sys_enter_getppid { @n = count(); } \
                      profile:hz:49 { @p = 1; } interval:s:100 { } END { printf(\"end ran\\n\"); }";

/// Starts rbt on `SCRIPT` and waits until every probe is attached (the line bpftrace's suite
/// waits for; the `Attaching` line comes before, as in bpftrace).
fn start() -> (Child, BufReader<std::process::ChildStdout>) {
    let (child, mut stdout) = start_notified(SCRIPT);
    let mut first = String::new();
    stdout.read_line(&mut first).expect("rbt prints");
    assert_eq!(first, "Attaching 5 probes...\n");
    (child, stdout)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0, "kill failed");
}

#[test]
fn sigterm_and_sigint_run_end_and_print_maps() {
    require_bpf();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let (mut child, mut stdout) = start();
        // Long enough for the 49 Hz profile probe to fire on some CPU.
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, sig);
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).expect("read output");
        let status = child.wait().expect("rbt exits");
        assert!(status.success(), "rbt exited with {status} after signal {sig}");
        assert!(rest.starts_with("end ran\n\n\n@b: 1\n"), "after signal {sig}: {rest:?}");
        assert!(rest.contains("\n@p: 1\n"), "after signal {sig}: {rest:?}");
    }
}

#[test]
fn nothing_stays_loaded_after_sigkill() {
    require_bpf();
    let (mut child, _stdout) = start();
    let held = bpf_objects_of(child.id());
    let count = |kind| held.iter().filter(|(k, _)| std::mem::discriminant(k) == std::mem::discriminant(&kind)).count();
    // Five programs, two or more links (tracepoint, interval, profile on every CPU), the maps.
    assert_eq!(count(BpfObject::Program), 5, "programs held: {held:?}");
    assert!(count(BpfObject::Link) >= 3, "links held: {held:?}");
    assert!(count(BpfObject::Map) >= 3, "maps held: {held:?}");
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    // The kernel frees objects after an RCU grace period: allow it a few seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: Vec<_> = held.iter().filter(|&&(kind, id)| bpf_object_exists(kind, id)).collect();
        if alive.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still in the kernel 10 s after SIGKILL: {alive:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts rbt on `program` with bpftrace's test-suite variable set, and waits for the line it
/// prints on stderr once every probe is attached, as bpftrace's runtime suite waits for it.
fn start_notified(program: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(rbt())
        .args(["-e", program])
        .env("__BPFTRACE_NOTIFY_PROBES_ATTACHED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rbt starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("rbt writes to stderr");
    assert_eq!(line, "__BPFTRACE_NOTIFY_PROBES_ATTACHED\n");
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    (child, stdout)
}

/// SIGUSR1 prints every map, as bpftrace does (without the exit dump's blank lines), and tracing
/// goes on to its own end.
#[test]
fn sigusr1_prints_the_maps_and_tracing_goes_on() {
    require_bpf();
    let (mut child, mut stdout) =
        start_notified("BEGIN { @scalar = 5; @h[1] = hist(3); } interval:ms:1500 { exit(); }");
    signal(&child, libc::SIGUSR1);
    let mut out = String::new();
    stdout.read_to_string(&mut out).expect("read output");
    let status = child.wait().expect("rbt exits");
    assert!(status.success(), "rbt exited with {status} after SIGUSR1");
    let maps =
        "@h[1]: \n[2, 4)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n@scalar: 5\n";
    assert_eq!(out, format!("Attaching 2 probes...\n{maps}\n\n{maps}"));
}

/// A program of BEGIN and END only waits for a signal, as bpftrace's does; SIGTERM then runs END.
#[test]
fn a_program_of_begin_and_end_waits_for_a_signal() {
    require_bpf();
    let (mut child, mut stdout) = start_notified("BEGIN { printf(\"begin\\n\"); } END { printf(\"end\\n\"); }");
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().expect("try_wait").is_none(), "rbt ended without a signal");
    signal(&child, libc::SIGTERM);
    let mut out = String::new();
    stdout.read_to_string(&mut out).expect("read output");
    assert!(child.wait().expect("rbt exits").success());
    assert_eq!(out, "Attaching 2 probes...\nbegin\nend\n\n\n");
}

/// BEGIN runs before any other probe is attached: its output comes first even when a probe on a
/// busy event would fire at once.
#[test]
fn begin_comes_before_any_probe_fires() {
    require_bpf();
    let out = Command::new(rbt())
        .args([
            "-e",
            "tracepoint:sched:sched_switch { printf(\"switch\\n\"); exit(); } BEGIN { printf(\"begin\\n\"); }",
        ])
        .output()
        .expect("rbt runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("Attaching 2 probes...\nbegin\nswitch\n"), "{stdout}");
}

/// rbt's own work while probes are attached (attaching the rest, reading counters, detaching)
/// does not fire them: a script tracing the system calls rbt makes to read tracefs and procfs
/// (`openat`, `statx`, `newfstatat`) counts none of rbt's own. rbt runs as a copy with a name of
/// its own, so that the predicate sees this run only.
#[test]
fn rbt_does_not_fire_the_probes_it_serves() {
    require_bpf();
    let name = format!("rbtself{}", std::process::id() % 100_000);
    let copy = std::env::temp_dir().join(&name);
    std::fs::copy(rbt(), &copy).expect("rbt can be copied");
    let script = format!(
        "tracepoint:syscalls:sys_enter_openat, tracepoint:syscalls:sys_enter_statx, \
         tracepoint:syscalls:sys_enter_newfstatat, tracepoint:syscalls:sys_exit_openat, \
         tracepoint:syscalls:sys_exit_statx, tracepoint:syscalls:sys_exit_newfstatat \
         /comm == \"{name}\"/ {{ @[probe] = count(); }} \
         profile:hz:99 {{ @samples = count(); }} interval:ms:300 {{ exit(); }}"
    );
    let out = Command::new(&copy).args(["-e", &script]).output().expect("rbt runs");
    let _ = std::fs::remove_file(&copy);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("Attaching 8 probes...\n"), "{stdout}");
    assert!(!stdout.contains("@["), "rbt fired its own probes:\n{stdout}");
    assert!(stdout.contains("@samples: "), "{stdout}");
}
