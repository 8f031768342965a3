//! The REPL as a user drives it, in a pseudo-terminal: entries attach while the session runs,
//! maps are shared and printed on demand, `:detach` stops a probe, Tab completes tracepoints, a
//! syntax error leaves the session working, `:save` writes a script that reruns the same way,
//! `:watch` redraws until Ctrl-C, and `:quit` leaves nothing in the kernel.

mod common_rbt;

use common_rbt::*;
use expectrl::{Expect, Session};
use std::process::Command;
use std::time::{Duration, Instant};
use tests::{bpf_object_exists, bpf_objects_of};

const CTRL_C: &str = "\x03";

struct Repl {
    session: expectrl::session::OsSession,
}

impl Repl {
    fn start(state_dir: &std::path::Path) -> Repl {
        let mut command = Command::new(rbt());
        command.env("XDG_STATE_HOME", state_dir).env("TERM", "xterm");
        let mut session = Session::spawn(command).expect("rbt starts in a pty");
        session.get_process_mut().set_window_size(160, 50).expect("window size");
        session.set_expect_timeout(Some(Duration::from_secs(20)));
        let mut repl = Repl { session };
        repl.expect("rbt> ");
        repl
    }

    fn expect(&mut self, text: &str) -> String {
        match self.session.expect(text) {
            Ok(found) => String::from_utf8_lossy(found.before()).into_owned(),
            Err(e) => panic!("waiting for {text:?}: {e}"),
        }
    }

    /// Types a line and presses Enter.
    fn enter(&mut self, line: &str) {
        self.session.send(format!("{line}\r")).expect("send");
    }

    fn pid(&self) -> u32 {
        self.session.get_process().pid().as_raw() as u32
    }
}

fn workload(args: &str) {
    let status = Command::new(common_rbt::workload()).args(args.split_whitespace()).status().expect("workload runs");
    assert!(status.success());
}

#[test]
fn a_session_as_a_user_drives_it() {
    require_bpf();
    let state = std::env::temp_dir().join(format!("rbt-repl-test-{}", std::process::id()));
    std::fs::create_dir_all(&state).expect("state dir");
    let saved = state.join("saved.rbt");
    let mut repl = Repl::start(&state);

    // A probe attaches at once and counts while the user types.
    repl.enter(r#"tracepoint:syscalls:sys_enter_getppid /comm == "rbt-workload"/ { @c = count(); }"#);
    repl.expect("Attached 1 probe (entry 1).");
    repl.expect("rbt> ");
    workload("getppid 7");
    repl.enter(":print @c");
    repl.expect("@c: 7");
    repl.expect("rbt> ");

    // Detached, it counts no more; the map stays.
    repl.enter(":detach 1");
    repl.expect("Detached 1 probe.");
    workload("getppid 5");
    repl.enter(":print @c");
    repl.expect("@c: 7");
    repl.expect("rbt> ");

    // Tab completes a tracepoint name; Ctrl-C clears the line.
    repl.session.send("tracepoint:sched:sched_sw\t").expect("send");
    repl.expect("tracepoint:sched:sched_switch");
    repl.session.send(CTRL_C).expect("send");
    repl.expect("rbt> ");

    // ... and members of kernel structs along a chain, from BTF; the completed entry runs.
    repl.session.send("BEGIN { printf(\"parent %d\\n\", curtask->real_par\t").expect("send");
    repl.expect("curtask->real_parent");
    repl.session.send("->tg\t").expect("send");
    repl.expect("->tgid");
    repl.enter(" > 0); }");
    repl.expect("parent 1");
    repl.expect("rbt> ");

    // A syntax error is shown against the entry; the next entry works.
    repl.enter("BEGIN { @x = = 1; }");
    repl.expect("syntax error");
    repl.expect("entry:1:14");
    repl.expect("rbt> ");
    repl.enter("@y = 1 + 2");
    repl.expect("rbt> ");
    repl.enter(r#"BEGIN { printf("saved run\n"); }"#);
    repl.expect("saved run");
    repl.expect("rbt> ");
    repl.enter(":print @y");
    repl.expect("@y: 3");
    repl.expect("rbt> ");

    // :save writes the live program (not the detached probe), which reruns the same way.
    repl.enter(&format!(":save {}", saved.display()));
    repl.expect("Saved");
    repl.expect("rbt> ");
    let rerun = Command::new(rbt()).arg(&saved).output().expect("rbt runs the saved file");
    assert!(rerun.status.success(), "{}", String::from_utf8_lossy(&rerun.stderr));
    assert_eq!(String::from_utf8_lossy(&rerun.stdout), "Attaching 3 probes...\nparent 1\nsaved run\n\n\n@y: 3\n");

    // :watch redraws the map until Ctrl-C.
    repl.enter(":watch @c 200ms");
    repl.expect("@c: 7");
    repl.expect("\x1b[2J");
    repl.expect("@c: 7");
    repl.session.send(CTRL_C).expect("send");
    repl.expect("rbt> ");

    // :quit prints the maps and leaves nothing loaded.
    repl.enter("tracepoint:sched:sched_switch { @s = count(); } END { printf(\"bye\\n\"); }");
    repl.expect("Attached 2 probes (entry 5).");
    repl.expect("rbt> ");
    let held = bpf_objects_of(repl.pid());
    assert!(held.len() >= 4, "the session holds its programs, links and maps: {held:?}");
    repl.enter(":quit");
    repl.expect("bye");
    repl.expect("@c: 7");
    let deadline = Instant::now() + Duration::from_secs(10);
    while repl.session.get_process().is_alive().unwrap_or(false) {
        assert!(Instant::now() < deadline, "rbt is still running after :quit");
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        let alive: Vec<_> = held.iter().filter(|&&(kind, id)| bpf_object_exists(kind, id)).collect();
        if alive.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still in the kernel after :quit: {alive:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let history = std::fs::read_to_string(state.join("rbt/history")).unwrap_or_default();
    assert!(history.contains("@y = 1 + 2"), "history: {history}");
    let _ = std::fs::remove_dir_all(&state);
}

/// The REPL's end warns of what failed in the kernel as a script's end does, and at `:quit`
/// only of what failed since the end an `exit()` made.
#[test]
fn the_end_warns_of_full_maps_as_a_script_does() {
    require_bpf();
    let state = std::env::temp_dir().join(format!("rbt-repl-warn-test-{}", std::process::id()));
    std::fs::create_dir_all(&state).expect("state dir");
    let mut command = Command::new(rbt());
    command.env("XDG_STATE_HOME", &state).env("TERM", "xterm").env("RBT_MAP_KEYS_MAX", "1");
    let mut session = Session::spawn(command).expect("rbt starts in a pty");
    session.set_expect_timeout(Some(Duration::from_secs(20)));
    let mut repl = Repl { session };
    repl.expect("rbt> ");

    repl.enter("BEGIN { @m[1] = 1; @m[2] = 2; exit(); }");
    repl.expect("@m[1]: 1");
    repl.expect("WARNING: 1 map updates failed because a map was full (raise RBT_MAP_KEYS_MAX)");
    repl.expect("exit() was called");
    repl.expect("rbt> ");
    repl.enter("@m[3] = 3");
    repl.expect("rbt> ");
    repl.enter("@m[4] = 4");
    repl.expect("rbt> ");
    repl.enter(":quit");
    repl.expect("WARNING: 2 map updates failed because a map was full (raise RBT_MAP_KEYS_MAX)");
    let _ = std::fs::remove_dir_all(&state);
}
