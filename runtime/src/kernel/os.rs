//! Thin safe wrappers over the other system calls and libc functions rbt needs: clocks, the
//! page size, local time through `strftime`, `poll`, memfds, the open-file limit and the
//! terminal's settings.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, RawFd};

/// The system's page size.
pub fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns` (`nsecs`).
pub fn monotonic_ns() -> u64 {
    u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> i128 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Formats `unix_seconds` as local time with `strftime(3)` into a buffer of `capacity` bytes,
/// terminating NUL included. `None` when `localtime_r` fails or `strftime` returns 0 (an empty
/// result, or one that does not fit). `format` ends at its first NUL, as a C string does.
pub fn strftime_local(format: &[u8], unix_seconds: i64, capacity: usize) -> Option<Vec<u8>> {
    let end = format.iter().position(|&b| b == 0).unwrap_or(format.len());
    let format = CString::new(&format[..end]).ok()?;
    let seconds = libc::time_t::try_from(unix_seconds).ok()?;
    let mut buffer = vec![0u8; capacity];
    // SAFETY: `tm` is plain data that localtime_r fills in; `format` is NUL-terminated and
    // outlives the call; strftime writes at most `buffer.len()` bytes into `buffer`.
    let written = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&seconds, &mut tm).is_null() {
            return None;
        }
        libc::strftime(buffer.as_mut_ptr().cast(), buffer.len(), format.as_ptr(), &tm)
    };
    buffer.truncate(written);
    (written > 0).then_some(buffer)
}

/// Waits up to `timeout_ms` (-1: forever) until one of `fds` is readable; returns which are.
/// An interrupted wait is an error of kind `Interrupted`.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut polled: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `polled` is a valid array of pollfd of the length passed, for the whole call.
    let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(polled.iter().map(|p| p.revents != 0).collect())
}

/// An anonymous in-memory file (`memfd_create`, close-on-exec).
pub fn memfd(name: &str) -> io::Result<File> {
    let name = CString::new(name).map_err(|_| io::Error::other("NUL in a memfd name"))?;
    // SAFETY: `name` is a valid NUL-terminated string; the call has no other preconditions.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create, is open, and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Raises the soft limit on open files to the hard limit. Every attached probe holds two file
/// descriptors (its perf event and link) and every loaded program one, so a wildcard over
/// hundreds of kernel functions would run out of the usual soft limit of 1024.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one rlimit struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A terminal's settings (`struct termios`), to put back later.
#[derive(Clone, Copy)]
pub struct TerminalSettings(libc::termios);

/// The settings of the terminal on standard input; `None` when it is not a terminal.
pub fn stdin_terminal_settings() -> Option<TerminalSettings> {
    // SAFETY: termios is plain data, for which zeroes are valid; tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes only into `t`.
    (unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut t) } == 0).then_some(TerminalSettings(t))
}

/// Puts back settings [`stdin_terminal_settings`] returned.
pub fn restore_stdin_terminal(settings: &TerminalSettings) {
    // SAFETY: restores settings tcgetattr returned for the same descriptor.
    unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &settings.0) };
}
