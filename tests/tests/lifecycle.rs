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

/// Starts rbt on `SCRIPT` and waits until it has printed its `Attaching` line.
fn start() -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(rbt())
        .args(["-e", SCRIPT])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rbt starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
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
