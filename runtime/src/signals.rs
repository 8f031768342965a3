//! SIGINT, SIGTERM and SIGCHLD delivered through a signalfd, so the event loop can poll them next
//! to the ring buffer instead of being interrupted at arbitrary points.

use std::io;
use std::os::fd::RawFd;

pub struct Signals {
    fd: RawFd,
    set: libc::sigset_t,
    /// Unblock the signals again when dropped (a script's loop); the REPL keeps them blocked.
    unblock_on_drop: bool,
}

/// What a script's event loop watches.
const SCRIPT_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD];

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
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

/// Blocks `signals` for this thread (and the threads it starts later) without watching them:
/// they stay pending until a [`Signals`] for them reads them.
pub fn block(signals: &[libc::c_int]) -> io::Result<()> {
    let set = signal_set(signals);
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

impl Signals {
    /// Blocks SIGINT, SIGTERM and SIGCHLD for this thread and opens a signalfd for them.
    pub fn block() -> io::Result<Signals> {
        let mut signals = Signals::watch(&SCRIPT_SIGNALS)?;
        signals.unblock_on_drop = true;
        Ok(signals)
    }

    /// Blocks `signals` for this thread and opens a signalfd for them; they stay blocked.
    pub fn watch(signals: &[libc::c_int]) -> io::Result<Signals> {
        let set = signal_set(signals);
        // SAFETY: `set` is initialised; a null old-set pointer is allowed.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        // SAFETY: creates a new signalfd for an initialised set.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Signals { fd, set, unblock_on_drop: false })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Signals received since the last call.
    pub fn read(&self) -> Vec<libc::c_int> {
        let mut got = Vec::new();
        loop {
            // SAFETY: reads one signalfd_siginfo into a zeroed buffer of the right size.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = unsafe { libc::read(self.fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
            if n != size as isize {
                return got;
            }
            got.push(info.ssi_signo as libc::c_int);
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // SAFETY: closes the fd we opened, then unblocks the signals we blocked.
        unsafe {
            libc::close(self.fd);
            if self.unblock_on_drop {
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.set, std::ptr::null_mut());
            }
        }
    }
}

/// Restores default dispositions and an empty mask; called in a forked child before exec.
pub fn reset_in_child() {
    // SAFETY: async-signal-safe calls on an initialised empty set, in a freshly forked child.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
