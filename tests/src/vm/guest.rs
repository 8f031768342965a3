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
//! rbt-vm-5f3a9c stdout begin_arith.ringbuf 61
//! Attaching 1 probe...
//! ...
//! rbt-vm-5f3a9c stderr begin_arith.ringbuf 0
//! rbt-vm-5f3a9c status begin_arith.ringbuf 0
//! rbt-vm-5f3a9c done
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
}

impl CommandResult {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
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
}

/// The `/init` script running `commands` in order, each limited to `command_timeout_secs`.
pub fn init_script(marker: &str, commands: &[GuestCommand], command_timeout_secs: u32) -> Result<String, String> {
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
stty -F /dev/ttyS1 raw -echo
exec 3>/dev/ttyS1
MARK={marker}
printf '%s up %s\n' "$MARK" "$(cut -d' ' -f1 /proc/uptime)" >&3
block() {{
    printf '%s %s %s %d\n' "$MARK" "$2" "$1" "$(wc -c < "$3")" >&3
    cat "$3" >&3
}}
run() {{
    name=$1
    shift
    timeout -s KILL {command_timeout_secs} "$@" </dev/null >/tmp/stdout 2>/tmp/stderr 3>&-
    status=$?
    block "$name" stdout /tmp/stdout
    block "$name" stderr /tmp/stderr
    printf '%s status %s %d\n' "$MARK" "$name" "$status" >&3
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
            ["status", name, status] => {
                report.results.entry((*name).to_owned()).or_default().status = status.parse().ok();
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
        let script = init_script("M", &[command], 30).unwrap();
        assert!(
            script.contains("\nrun case.perf env 'RBT_EVENTS=perf' 'rbt' '-c' '/bin/w getppid 3' 'it'\\''s'\n"),
            "{script}"
        );
        assert!(script.contains("timeout -s KILL 30 "));
        let bad = GuestCommand { name: "a b".into(), env: vec![], argv: vec![] };
        assert!(init_script("M", &[bad], 30).is_err());
    }

    #[test]
    fn report_records_are_read_back_exactly() {
        let bytes = b"noise M up 1.5\nM up 2.25\nM stdout a 5\nM x\nyM stderr a 0\nM status a 3\n\
                      M stdout b 3\nab\n\x1b[0mM status b 0\nM done\n";
        let report = parse_report("M", bytes);
        assert_eq!(report.init_uptime, Some(2.25));
        assert!(report.done);
        let a = &report.results["a"];
        assert_eq!((a.stdout.as_slice(), a.stderr.as_slice(), a.status), (&b"M x\ny"[..], &b""[..], Some(3)));
        // A status that is not at the start of a line is not a record.
        assert_eq!(report.results["b"].stdout, b"ab\n");
        assert_eq!(report.results["b"].status, None);
    }

    #[test]
    fn a_cut_report_keeps_what_arrived() {
        let report = parse_report("M", b"M up 1\nM stdout a 10\nabc");
        assert!(!report.done);
        assert_eq!(report.results["a"].stdout, b"abc");
        assert_eq!(report.results["a"].status, None);
    }
}
