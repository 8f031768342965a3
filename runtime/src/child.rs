//! `-c CMD`: the command is forked before the program is compiled (so `cpid` is known), held at a
//! pipe until every probe is attached, then exec'd. rbt exits when it exits.
//!
//! `-p PID`: a process rbt did not start, watched through a pidfd; rbt exits when it exits, and
//! never signals or reaps it.

use std::ffi::CString;
use std::io;

pub struct Child {
    pub pid: libc::pid_t,
    /// Write end of the pipe the child waits on; closing it lets the child exec.
    gate: Option<libc::c_int>,
    reaped: bool,
    /// A pidfd when the process is only watched (`-p`).
    watched: Option<libc::c_int>,
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
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut pipe = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills a two-element array.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the child only makes async-signal-safe calls (read, close, sigmask, execvp, _exit)
        // on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            unsafe {
                libc::close(pipe[1]);
                // Eight bytes, like bpftrace's eventfd read, so the child's one read after attach
                // looks the same under both tools.
                let mut word = 0u64;
                let n = libc::read(pipe[0], (&mut word as *mut u64).cast(), 8);
                // EOF without the bytes means rbt gave up before attaching: do not run the command.
                if n != 8 {
                    libc::_exit(0);
                }
                crate::signals::reset_in_child();
                libc::execvp(argv[0], argv.as_ptr());
                libc::_exit(127);
            }
        }
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(pipe[0]) };
        Ok(Child { pid, gate: Some(pipe[1]), reaped: false, watched: None })
    }

    /// Watches the running process `pid` (`-p`).
    pub fn watch(pid: u32) -> io::Result<Child> {
        let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::other("pidfd_open returned a bad descriptor"))?;
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Child { pid, gate: None, reaped: false, watched: Some(fd) })
    }

    /// Lets the child exec its command.
    pub fn release(&mut self) -> io::Result<()> {
        if let Some(fd) = self.gate.take() {
            let word = 1u64;
            // SAFETY: writes eight bytes to the pipe we own, then closes it.
            unsafe {
                libc::write(fd, (&word as *const u64).cast(), 8);
                libc::close(fd);
            }
        }
        Ok(())
    }

    /// Whether the child has exited (reaping it).
    pub fn exited(&mut self) -> bool {
        if self.reaped {
            return true;
        }
        if let Some(fd) = self.watched {
            // A pidfd polls readable once its process has exited.
            let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd, no waiting.
            self.reaped = unsafe { libc::poll(&mut poll, 1, 0) } > 0;
            return self.reaped;
        }
        let mut status = 0;
        // SAFETY: non-blocking wait on our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == self.pid || r < 0 {
            self.reaped = true;
        }
        self.reaped
    }

    /// Ends a child still running when tracing stops, and reaps it.
    pub fn kill_and_wait(&mut self) {
        if let Some(fd) = self.watched.take() {
            // Not ours to end: just stop watching.
            // SAFETY: closing the pidfd we opened.
            unsafe { libc::close(fd) };
            self.reaped = true;
            return;
        }
        if let Some(fd) = self.gate.take() {
            // SAFETY: closing the gate makes a waiting child exit without running the command.
            unsafe { libc::close(fd) };
        }
        if !self.reaped {
            let mut status = 0;
            // SAFETY: signalling and reaping our own child.
            unsafe {
                if libc::waitpid(self.pid, &mut status, libc::WNOHANG) == 0 {
                    libc::kill(self.pid, libc::SIGTERM);
                    libc::waitpid(self.pid, &mut status, 0);
                }
            }
            self.reaped = true;
        }
    }
}
