//! What runs inside the VM: the `/init` shell script (busybox) that mounts the kernel's file
//! systems, runs each command with its output captured, and reports back; and the parser of that
//! report.
//!
//! The report goes to the second serial port (`/dev/ttyS1`, switched to raw mode so no newline
//! becomes `\r\n`), apart from the kernel's console on the first, so kernel messages can never
//! fall between a command's bytes. Every record starts with a line holding a per-run marker;
//! captured output follows its header with its length in bytes, so outputs are taken back
//! exactly, trailing newline or not:
//!
//! ```text
//! rbt-vm-5f3a9c up 2.31
//! rbt-vm-5f3a9c start begin_arith.ringbuf 2.35 131
//! rbt-vm-5f3a9c stdout begin_arith.ringbuf 61
//! Attaching 1 probe...
//! ...
//! rbt-vm-5f3a9c stderr begin_arith.ringbuf 0
//! rbt-vm-5f3a9c status begin_arith.ringbuf 0 3.02
//! rbt-vm-5f3a9c done
//! ```
//!
//! The numbers after `up`, `start` and `status` are the guest's uptime in seconds; `start` also
//! gives the command's process id, the one kernel messages name. A command still in the kernel
//! a grace period after its SIGKILL ends the report with its threads' kernel stacks instead:
//!
//! ```text
//! rbt-vm-5f3a9c stack frozen 342
//! task 110 (sh), in __refrigerator:
//! [<0>] __refrigerator+0xa1/0x110
//! [<0>] get_signal+0x6ee/0x990
//! ...
//! rbt-vm-5f3a9c stdout frozen 0
//! rbt-vm-5f3a9c stderr frozen 12
//! frozen next
//! rbt-vm-5f3a9c stuck frozen 9.38
//! ```

/// One command for the guest to run.
#[derive(Clone, Debug)]
pub struct GuestCommand {
    /// Names the command's results; letters, digits, `.`, `_` and `-` only.
    pub name: String,
    /// Environment variables set for this command only.
    pub env: Vec<(String, String)>,
    /// The program (found on the guest's `PATH`, or an absolute path) and its arguments.
    pub argv: Vec<String>,
}

/// What one command did.
#[derive(Clone, Debug, Default)]
pub struct CommandResult {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit status as the shell saw it (128 + N for a signal N); `None` if no status came
    /// back, because the guest died or ran out of time before the command ended.
    pub status: Option<i32>,
    /// The guest's uptime when the command started and when it ended, in seconds.
    pub started: Option<f64>,
    /// The command's process id in the guest, which kernel reports such as a soft lockup's
    /// `[rbt:278]` name.
    pub pid: Option<u32>,
    pub ended: Option<f64>,
    /// The kernel stacks of the command's threads (`/proc/PID/task/*/stack`) when it was found
    /// stuck: still there a grace period after its SIGKILL (see [`init_script`]).
    pub stuck_stack: Option<Vec<u8>>,
    /// The guest's uptime when the command was found stuck.
    pub stuck_at: Option<f64>,
}

impl CommandResult {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Seconds from start to end by the guest's clock, when both were reported.
    pub fn duration(&self) -> Option<f64> {
        Some(self.ended? - self.started?)
    }
}

/// Everything the guest reported, by command name, plus the guest's uptime when `/init` started.
#[derive(Debug, Default)]
pub struct Report {
    pub results: std::collections::BTreeMap<String, CommandResult>,
    /// Seconds from the kernel's start to `/init`'s first line, by the guest's clock.
    pub init_uptime: Option<f64>,
    /// Whether the guest got through every command.
    pub done: bool,
    /// The command started last, whether or not it ended; with `done` false and no status, the
    /// one the guest was in when it stopped.
    pub last_started: Option<String>,
}

impl Report {
    /// The command the guest was running when the report ended short, if it was in one.
    pub fn interrupted(&self) -> Option<(&str, &CommandResult)> {
        let name = self.last_started.as_deref().filter(|_| !self.done)?;
        let result = self.results.get(name)?;
        result.status.is_none().then_some((name, result))
    }

    /// What the guest was doing when the report ended short: the command in progress, how long
    /// it had run, its kernel stack if it was stuck, and the last lines of its stderr; or which
    /// command finished last.
    pub fn describe_interruption(&self) -> String {
        let Some((name, result)) = self.interrupted() else {
            return match self
                .results
                .iter()
                .filter(|(_, r)| r.status.is_some())
                .max_by(|a, b| a.1.ended.unwrap_or_default().total_cmp(&b.1.ended.unwrap_or_default()))
            {
                Some((name, _)) if !self.done => format!("the guest was between commands; the last to end was {name}"),
                Some(_) => "the guest ran every command".into(),
                None => "the guest started no command".into(),
            };
        };
        let mut text = format!("the guest was running {name}");
        if let (Some(started), Some(pid)) = (result.started, result.pid) {
            text.push_str(&format!(" (pid {pid}, started at guest uptime {started:.2} s)"));
        }
        if let Some(stack) = &result.stuck_stack {
            let at = result.stuck_at.map_or(String::new(), |at| format!(" at guest uptime {at:.2} s"));
            text.push_str(&format!(
                ", killed at its time limit and still in the kernel{at}; its threads' kernel stacks (a thread \
                 looping in the kernel shows none here: see the CPU backtraces on the console):\n{}",
                String::from_utf8_lossy(stack).trim_end()
            ));
        }
        let stderr = result.stderr_text();
        if stderr.is_empty() {
            text.push_str(
                "\nits stderr so far: nothing (a stderr is reported when the command ends or is found stuck)",
            );
        } else {
            text.push_str(&format!("\nthe last lines of its stderr:\n{}", super::tail(&stderr, 15)));
        }
        text
    }
}

/// The `/init` script running `commands` in order, each killed (SIGKILL) after `limits.0`
/// seconds and declared stuck if still there `limits.1` seconds later.
///
/// Each command runs in the background with a guard beside it: a task that loops in the kernel
/// never returns to user space to die, so a plain `timeout` would wait on it until the host
/// kills the whole VM. The guard sends SIGKILL at the time limit and, if the command is still
/// there after the grace period, reports it stuck, with its threads' kernel stacks and what it
/// printed so far, has the kernel print every CPU's backtrace on the console, and powers the
/// guest off. A `start` record before each command names the case in progress even when the
/// guest freezes whole.
pub fn init_script(marker: &str, commands: &[GuestCommand], limits: (u32, u32)) -> Result<String, String> {
    let (command_timeout_secs, grace) = limits;
    let mut script = format!(
        r#"#!/bin/busybox sh
# rbt's VM test guest: mount what rbt needs, run each command, report on /dev/ttyS1 (fd 3, which
# the commands do not inherit), power off.
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
# `quiet` leaves only errors on the console; level 5 adds warnings and the register dumps and
# backtraces that follow a soft lockup, an RCU stall or a WARN (printed at the default level, 4).
dmesg -n 5
stty -F /dev/ttyS1 raw -echo
exec 3>/dev/ttyS1
MARK={marker}
uptime_s() {{
    cut -d' ' -f1 /proc/uptime
}}
printf '%s up %s\n' "$MARK" "$(uptime_s)" >&3
block() {{
    printf '%s %s %s %d\n' "$MARK" "$2" "$1" "$(wc -c < "$3")" >&3
    cat "$3" >&3
}}
guard() {{
    sleep {command_timeout_secs}
    kill -KILL "$2" 2>/dev/null || exit 0
    sleep {grace}
    [ -e "/proc/$2" ] || exit 0
    for task in /proc/$2/task/*; do
        echo "task ${{task##*/}} ($(cat $task/comm)), in $(cat $task/wchan):"
        cat $task/stack
    done >/tmp/stack 2>&1
    block "$1" stack /tmp/stack
    # The backtraces of the CPUs (a task looping in the kernel shows only there) and of the
    # blocked tasks, on the console.
    echo l >/proc/sysrq-trigger
    echo w >/proc/sysrq-trigger
    block "$1" stdout /tmp/stdout
    block "$1" stderr /tmp/stderr
    printf '%s stuck %s %s\n' "$MARK" "$1" "$(uptime_s)" >&3
    sync
    poweroff -f
}}
run() {{
    name=$1
    shift
    "$@" </dev/null >/tmp/stdout 2>/tmp/stderr 3>&- &
    pid=$!
    printf '%s start %s %s %d\n' "$MARK" "$name" "$(uptime_s)" "$pid" >&3
    guard "$name" "$pid" &
    watcher=$!
    wait "$pid"
    status=$?
    kill "$watcher" 2>/dev/null
    block "$name" stdout /tmp/stdout
    block "$name" stderr /tmp/stderr
    printf '%s status %s %d %s\n' "$MARK" "$name" "$status" "$(uptime_s)" >&3
}}
"#
    );
    for command in commands {
        if command.name.is_empty() || !command.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(format!("guest command name {:?} must be letters, digits, '.', '_' or '-'", command.name));
        }
        script.push_str("run ");
        script.push_str(&command.name);
        if !command.env.is_empty() {
            script.push_str(" env");
            for (key, value) in &command.env {
                script.push(' ');
                script.push_str(&shell_quote(&format!("{key}={value}")));
            }
        }
        for word in &command.argv {
            script.push(' ');
            script.push_str(&shell_quote(word));
        }
        script.push('\n');
    }
    script.push_str("printf '%s done\\n' \"$MARK\" >&3\nsync\npoweroff -f\n");
    Ok(script)
}

/// `word` in single quotes, for `sh`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Reads the guest's report (see the module comment). Bytes outside records are ignored; a
/// record cut short by the guest's end keeps what arrived.
pub fn parse_report(marker: &str, bytes: &[u8]) -> Report {
    let mut report = Report::default();
    let prefix = format!("{marker} ");
    let mut at = 0;
    while let Some(found) = find(&bytes[at..], prefix.as_bytes()) {
        let start = at + found;
        // Records start at the beginning of a line.
        if start > 0 && bytes[start - 1] != b'\n' {
            at = start + prefix.len();
            continue;
        }
        let line_end = find(&bytes[start..], b"\n").map_or(bytes.len(), |end| start + end);
        let line = String::from_utf8_lossy(&bytes[start + prefix.len()..line_end]).into_owned();
        at = (line_end + 1).min(bytes.len());
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["up", uptime] => report.init_uptime = uptime.parse().ok(),
            ["done"] => report.done = true,
            ["start", name, uptime, pid] => {
                let result = report.results.entry((*name).to_owned()).or_default();
                result.started = uptime.parse().ok();
                result.pid = pid.parse().ok();
                report.last_started = Some((*name).to_owned());
            }
            ["stuck", name, uptime] => {
                report.results.entry((*name).to_owned()).or_default().stuck_at = uptime.parse().ok();
            }
            ["stack", name, length] => {
                let end = (at + length.parse::<usize>().unwrap_or(0)).min(bytes.len());
                report.results.entry((*name).to_owned()).or_default().stuck_stack = Some(bytes[at..end].to_vec());
                at = end;
            }
            [stream @ ("stdout" | "stderr"), name, length] => {
                let length: usize = length.parse().unwrap_or(0);
                let end = (at + length).min(bytes.len());
                let data = bytes[at..end].to_vec();
                at = end;
                let result = report.results.entry((*name).to_owned()).or_default();
                if *stream == "stdout" {
                    result.stdout = data;
                } else {
                    result.stderr = data;
                }
            }
            ["status", name, status, uptime] => {
                let result = report.results.entry((*name).to_owned()).or_default();
                result.status = status.parse().ok();
                result.ended = uptime.parse().ok();
            }
            _ => {}
        }
    }
    report
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_become_quoted_run_lines() {
        let command = GuestCommand {
            name: "case.perf".into(),
            env: vec![("RBT_EVENTS".into(), "perf".into())],
            argv: vec!["rbt".into(), "-c".into(), "/bin/w getppid 3".into(), "it's".into()],
        };
        let script = init_script("M", &[command], (30, 20)).unwrap();
        assert!(
            script.contains("\nrun case.perf env 'RBT_EVENTS=perf' 'rbt' '-c' '/bin/w getppid 3' 'it'\\''s'\n"),
            "{script}"
        );
        assert!(script.contains("\n    sleep 30\n    kill -KILL "), "{script}");
        let bad = GuestCommand { name: "a b".into(), env: vec![], argv: vec![] };
        assert!(init_script("M", &[bad], (30, 20)).is_err());
    }

    #[test]
    fn report_records_are_read_back_exactly() {
        let bytes =
            b"noise M up 1.5\nM up 2.25\nM start a 2.5 7\nM stdout a 5\nM x\nyM stderr a 0\nM status a 3 4.75\n\
                      M stdout b 3\nab\n\x1b[0mM status b 0 5\nM done\n";
        let report = parse_report("M", bytes);
        assert_eq!(report.init_uptime, Some(2.25));
        assert!(report.done);
        let a = &report.results["a"];
        assert_eq!((a.stdout.as_slice(), a.stderr.as_slice(), a.status), (&b"M x\ny"[..], &b""[..], Some(3)));
        assert_eq!(a.duration(), Some(2.25));
        // A status that is not at the start of a line is not a record.
        assert_eq!(report.results["b"].stdout, b"ab\n");
        assert_eq!(report.results["b"].status, None);
        assert!(report.interrupted().is_none());
    }

    #[test]
    fn a_cut_report_keeps_what_arrived() {
        let report = parse_report("M", b"M up 1\nM start a 1.5 7\nM stdout a 10\nabc");
        assert!(!report.done);
        assert_eq!(report.results["a"].stdout, b"abc");
        assert_eq!(report.results["a"].status, None);
        assert_eq!(report.interrupted().map(|(name, _)| name), Some("a"));
        assert!(report
            .describe_interruption()
            .starts_with("the guest was running a (pid 7, started at guest uptime 1.50 s)"));
    }

    #[test]
    fn a_stuck_command_is_named_with_its_stack_and_stderr() {
        let bytes = b"M up 1\nM start a 1.5 7\nM stdout a 0\nM stderr a 0\nM status a 0 2\nM start b 2.1 9\n\
                      M stack b 16\n[<0>] f+0x1/0x2\nM stdout b 0\nM stderr b 21\nAttaching 2 probes...\n\
                      M stuck b 62.5\n";
        let report = parse_report("M", bytes);
        let text = report.describe_interruption();
        let head = "the guest was running b (pid 9, started at guest uptime 2.10 s), killed at its time limit and \
                    still in the kernel at guest uptime 62.50 s;";
        assert!(text.starts_with(head), "{text}");
        assert!(text.contains("on the console):\n[<0>] f+0x1/0x2\n"), "{text}");
        assert!(text.ends_with("the last lines of its stderr:\nAttaching 2 probes..."), "{text}");
        let between = parse_report("M", b"M up 1\nM start a 1.5 7\nM status a 0 2\n");
        assert_eq!(between.describe_interruption(), "the guest was between commands; the last to end was a");
    }
}
