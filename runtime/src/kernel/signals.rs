//! SIGINT, SIGTERM, SIGUSR1 and SIGCHLD delivered through a signalfd, so the event loop can poll
//! them next to the event buffers instead of being interrupted at arbitrary points.
//!
//! A signal sent to the process goes to any thread that does not block it, and a signal whose
//! action is the default (SIGUSR1's is to terminate) kills the whole process from whichever thread
//! takes it: a script's signals must be blocked before its first thread (the symbolizer's) starts,
//! which [`block_script_signals`] does.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub use libc::{SIGCHLD, SIGINT, SIGTERM, SIGUSR1};

/// A signal number (`SIGINT`...).
pub type Signal = libc::c_int;

pub struct Signals {
    fd: OwnedFd,
    set: libc::sigset_t,
    /// Unblock the signals again when dropped (a script's loop); the REPL keeps them blocked.
    unblock_on_drop: bool,
}

/// What a script's event loop watches: SIGINT and SIGTERM end tracing, SIGUSR1 prints the maps
/// (as bpftrace does), SIGCHLD tells of `-c`'s command ending.
const SCRIPT_SIGNALS: [Signal; 4] = [SIGINT, SIGTERM, SIGUSR1, SIGCHLD];

fn signal_set(signals: &[Signal]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Changes this thread's signal mask (`how`: SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK).
fn sigmask(how: libc::c_int, set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(how, set, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Blocks `signals` for this thread (and the threads it starts later) without watching them:
/// they stay pending until a [`Signals`] for them reads them.
pub fn block(signals: &[Signal]) -> io::Result<()> {
    sigmask(libc::SIG_BLOCK, &signal_set(signals))
}

/// Blocks the signals a script's event loop watches for this thread and the threads it starts
/// from now on, so that none of them can take one first.
pub fn block_script_signals() -> io::Result<()> {
    block(&SCRIPT_SIGNALS)
}

impl Signals {
    /// Blocks SIGINT, SIGTERM, SIGUSR1 and SIGCHLD for this thread and opens a signalfd for them.
    pub fn block() -> io::Result<Signals> {
        let mut signals = Signals::watch(&SCRIPT_SIGNALS)?;
        signals.unblock_on_drop = true;
        Ok(signals)
    }

    /// Blocks `signals` for this thread and opens a signalfd for them; they stay blocked.
    pub fn watch(signals: &[Signal]) -> io::Result<Signals> {
        let set = signal_set(signals);
        sigmask(libc::SIG_BLOCK, &set)?;
        // SAFETY: creates a new signalfd for an initialised set.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signals { fd, set, unblock_on_drop: false })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Signals received since the last call.
    pub fn read(&self) -> Vec<Signal> {
        let mut got = Vec::new();
        loop {
            // SAFETY: signalfd_siginfo is plain integers, for which zeroes are valid.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reads at most one signalfd_siginfo into `info`, which is that large.
            let n = unsafe { libc::read(self.fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
            if n != size as isize {
                return got;
            }
            got.push(info.ssi_signo as Signal);
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        if self.unblock_on_drop {
            let _ = sigmask(libc::SIG_UNBLOCK, &self.set);
        }
    }
}

/// Restores an empty signal mask and the default actions of the signals a script watches, as a
/// command bpftrace starts has them (bpftrace handles them, and exec resets handled signals to
/// their defaults; rbt, started in the background by a shell, may have SIGINT ignored, which
/// exec would keep). Called in a forked child before exec (only async-signal-safe calls).
pub(super) fn reset_in_child() {
    for signal in SCRIPT_SIGNALS {
        // SAFETY: SIG_DFL is a valid disposition for these catchable signals.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    // SAFETY: sigemptyset initialises the set we own.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    };
    let _ = sigmask(libc::SIG_SETMASK, &set);
}
