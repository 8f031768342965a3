//! Processes: `-c`'s command forked and held at a pipe until every probe is attached, then
//! exec'd; a pidfd to watch `-p`'s process; waiting for and ending a child.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Process ids as the kernel has them.
pub type Pid = libc::pid_t;

/// A forked child that waits, before it execs its command, until [`HeldChild::release`].
pub struct HeldChild {
    pub pid: Pid,
    /// Write end of the pipe the child waits on.
    gate: Option<OwnedFd>,
}

impl HeldChild {
    /// Lets the child exec its command. A child that is gone already needs no release.
    pub fn release(&mut self) {
        if let Some(gate) = self.gate.take() {
            // Eight bytes, like bpftrace's eventfd write, so the child's one read after attach
            // looks the same under both tools.
            let _ = std::fs::File::from(gate).write_all(&1u64.to_ne_bytes());
        }
    }

    /// Closes the gate unreleased: a waiting child then exits without running its command.
    pub fn cancel(&mut self) {
        self.gate = None;
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills a two-element array.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned both descriptors to us.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// The file `command` runs: itself if it names a path, else the first executable of that name
/// in `PATH` (`/usr/local/bin:/usr/bin:/bin` where `PATH` is unset), as bpftrace finds it
/// before it forks, so that the child execs once, with no search.
pub fn resolve_command(command: &CString) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let name = std::ffi::OsStr::from_bytes(command.as_bytes());
    let executable =
        |p: &std::path::Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if command.as_bytes().contains(&b'/') {
        return Ok(command.clone());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| executable(candidate))
        .and_then(|found| CString::new(found.as_os_str().as_bytes()).ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("path '{}' does not exist or is not executable", name.to_string_lossy()),
            )
        })
}

/// Forks a child that runs `argv` (looked up in `PATH`) once released; if the gate closes
/// unreleased, it exits without running it.
///
/// Once released, the child makes the system calls bpftrace 0.17's does (a `close` of the pipe,
/// then `execve`), so that counting `pid == cpid` gives bpftrace's numbers: everything else
/// (signal dispositions and mask, the parent-death signal) is done before it waits.
pub fn spawn_held(argv: &[CString]) -> io::Result<HeldChild> {
    if argv.is_empty() {
        return Err(io::Error::other("no command to run"));
    }
    let program = resolve_command(&argv[0])?;
    let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    let (read_end, write_end) = pipe()?;
    let (wait_fd, gate_fd) = (read_end.as_raw_fd(), write_end.as_raw_fd());
    // SAFETY: the child only makes async-signal-safe calls (close, read, sigaction, sigmask,
    // prctl, execv, _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        held_child(wait_fd, gate_fd, &program, &pointers);
    }
    drop(read_end);
    Ok(HeldChild { pid, gate: Some(write_end) })
}

/// The forked child's side: waits at the pipe, then execs. Never returns.
fn held_child(wait_fd: RawFd, gate_fd: RawFd, program: &CString, argv: &[*const libc::c_char]) -> ! {
    // SAFETY: async-signal-safe calls on descriptors and memory the parent set up before the
    // fork; `argv` is NUL-terminated C strings followed by a null pointer.
    unsafe {
        libc::close(gate_fd);
        super::signals::reset_in_child();
        // Ended with SIGTERM if rbt dies first, as bpftrace's child is.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        let mut word = 0u64;
        let n = libc::read(wait_fd, (&mut word as *mut u64).cast(), 8);
        // EOF without the bytes means rbt gave up before attaching: do not run the command.
        if n != 8 {
            libc::_exit(0);
        }
        libc::close(wait_fd);
        libc::execv(program.as_ptr(), argv.as_ptr());
        libc::_exit(127);
    }
}

/// A pidfd for the running process `pid`: it polls readable once the process has exited.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = Pid::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("pidfd_open returned a bad descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether our child `pid` has exited, reaping it if so; an error (no such child) counts as
/// exited.
pub fn try_wait(pid: Pid) -> bool {
    let mut status = 0;
    // SAFETY: a non-blocking wait on our own child, writing only `status`.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    r == pid || r < 0
}

/// Ends our child `pid` with SIGTERM unless it has exited, and reaps it.
pub fn terminate_and_wait(pid: Pid) {
    let mut status = 0;
    // SAFETY: signalling and reaping our own child, writing only `status`.
    unsafe {
        if libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 {
            libc::kill(pid, libc::SIGTERM);
            libc::waitpid(pid, &mut status, 0);
        }
    }
}

/// Lets process `pid` continue after a SIGSTOP (a function watchpoint's setup uprobe stops it
/// until its breakpoint is open). A process that is gone needs nothing.
pub fn resume(pid: Pid) {
    // SAFETY: kill takes a pid and a signal number and touches no memory.
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
}

/// A process that resumes (SIGCONT) a process rbt may have stopped, should rbt die without
/// [`ResumeGuard::disarm`]: killed (SIGKILL), crashed, or ended before its cleanup. It waits on
/// a pipe whose write end only rbt holds, so it learns of rbt's end however it comes.
pub struct ResumeGuard {
    gate: Option<OwnedFd>,
}

impl ResumeGuard {
    /// Starts the guard of `pid`.
    pub fn spawn(pid: Pid) -> io::Result<ResumeGuard> {
        let (read_end, write_end) = pipe()?;
        let wait_fd = read_end.as_raw_fd();
        // SAFETY: the child only makes async-signal-safe calls (close_range, setsid, read, kill,
        // _exit) on descriptors the parent set up before the fork.
        let child = unsafe { libc::fork() };
        if child < 0 {
            return Err(io::Error::last_os_error());
        }
        if child == 0 {
            guard_child(wait_fd, pid);
        }
        drop(read_end);
        Ok(ResumeGuard { gate: Some(write_end) })
    }

    /// Tells the guard that nothing is left stopped: it exits without a signal.
    pub fn disarm(&mut self) {
        if let Some(gate) = self.gate.take() {
            let _ = std::fs::File::from(gate).write_all(&[1]);
        }
    }
}

/// The guard's side: every other descriptor closed (so that it keeps no pipe of rbt's output,
/// map or perf event open), out of rbt's session (so that a signal to rbt's process group
/// spares it), it waits for a byte or the end of the pipe. Never returns.
fn guard_child(wait_fd: RawFd, pid: Pid) -> ! {
    // SAFETY: async-signal-safe calls on a descriptor the parent set up before the fork.
    unsafe {
        let fd = wait_fd as libc::c_uint;
        if fd > 0 {
            libc::syscall(libc::SYS_close_range, 0, fd - 1, 0);
        }
        libc::syscall(libc::SYS_close_range, fd + 1, libc::c_uint::MAX, 0);
        libc::setsid();
        let mut byte = 0u8;
        loop {
            match libc::read(wait_fd, (&mut byte as *mut u8).cast(), 1) {
                1 => libc::_exit(0),
                n if n < 0 && *libc::__errno_location() == libc::EINTR => continue,
                _ => {
                    libc::kill(pid, libc::SIGCONT);
                    libc::_exit(0);
                }
            }
        }
    }
}
