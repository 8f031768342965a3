//! `-c CMD`: the command is forked before the program is compiled (so `cpid` is known), held at a
//! pipe until every probe is attached, then exec'd. rbt exits when it exits.
//!
//! `-p PID`: a process rbt did not start, watched through a pidfd; rbt exits when it exits, and
//! never signals or reaps it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use runtime::kernel::os;
use runtime::kernel::process::{self, HeldChild, Pid};

pub struct Child {
    pub pid: Pid,
    /// The forked command, held until [`Child::release`] (`-c`).
    held: Option<HeldChild>,
    reaped: bool,
    /// A pidfd when the process is only watched (`-p`).
    watched: Option<OwnedFd>,
    /// The executable `-c` runs, as found in `PATH`.
    pub program: Option<std::path::PathBuf>,
}

/// Splits a command line into words, honouring single and double quotes, as bpftrace does not
/// start a shell.
pub fn split_command(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in cmd.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The executable `-c`'s command runs, named as bpftrace 0.17 names it in watchpoints' `probe`:
/// as written when it has a `/`, else found in `PATH` as the fork finds it. `None` for an empty
/// command or one `PATH` does not have.
pub fn command_path(cmd: &str) -> Option<String> {
    let program = CString::new(split_command(cmd).into_iter().next()?).ok()?;
    let found = process::resolve_command(&program).ok()?;
    Some(found.to_string_lossy().into_owned())
}

impl Child {
    pub fn spawn(cmd: &str) -> io::Result<Child> {
        let words = split_command(cmd);
        if words.is_empty() {
            return Err(io::Error::other("the -c command is empty"));
        }
        let args: Vec<CString> = words
            .iter()
            .map(|w| CString::new(w.as_bytes()).map_err(|_| io::Error::other("the -c command contains a NUL byte")))
            .collect::<io::Result<_>>()?;
        let held = process::spawn_held(&args)?;
        let program = command_path(cmd).map(std::path::PathBuf::from);
        Ok(Child { pid: held.pid, held: Some(held), reaped: false, watched: None, program })
    }

    /// Watches the running process `pid` (`-p`).
    pub fn watch(pid: u32) -> io::Result<Child> {
        let fd = process::pidfd_open(pid)?;
        let pid = Pid::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        Ok(Child { pid, held: None, reaped: false, watched: Some(fd), program: None })
    }

    /// Lets the child exec its command.
    pub fn release(&mut self) {
        if let Some(held) = self.held.as_mut() {
            held.release();
        }
    }

    /// Whether the child has exited (reaping it).
    pub fn exited(&mut self) -> bool {
        if self.reaped {
            return true;
        }
        if let Some(fd) = &self.watched {
            // A pidfd polls readable once its process has exited.
            self.reaped = os::poll_readable(&[fd.as_raw_fd()], 0).is_ok_and(|ready| ready[0]);
            return self.reaped;
        }
        self.reaped = process::try_wait(self.pid);
        self.reaped
    }

    /// Ends a child still running when tracing stops, and reaps it.
    pub fn kill_and_wait(&mut self) {
        if self.watched.take().is_some() {
            // Not ours to end: just stop watching.
            self.reaped = true;
            return;
        }
        // Closing the gate makes a waiting child exit without running the command.
        if let Some(held) = self.held.as_mut() {
            held.cancel();
        }
        if !self.reaped {
            process::terminate_and_wait(self.pid);
            self.reaped = true;
        }
    }
}
