//! The test workload: makes exact numbers of chosen syscalls so kernel tests can check exact
//! counts. Usage: `rbt-workload STEP...` where each step is one of
//! `getppid N`, `read SIZE N` (reads of SIZE bytes from /dev/zero), `write SIZE N` (to /dev/null),
//! `nap MICROS N` (nanosleep), `spin MILLIS` (busy loop). Steps run in order.
//! Raw syscalls keep counts exact: nothing else in this program calls getppid or nanosleep, and
//! reads/writes of the given SIZE happen only here.

use std::ffi::CString;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let num = |s: Option<&String>| -> u64 { s.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()) };
    while i < args.len() {
        match args[i].as_str() {
            "getppid" => {
                for _ in 0..num(args.get(i + 1)) {
                    // SAFETY: getppid has no preconditions.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                i += 2;
            }
            "read" | "write" => {
                let size = num(args.get(i + 1)) as usize;
                let n = num(args.get(i + 2));
                let (path, flags) = if args[i] == "read" { ("/dev/zero", libc::O_RDONLY) } else { ("/dev/null", libc::O_WRONLY) };
                let cpath = CString::new(path).unwrap_or_default();
                // SAFETY: plain open/read/write/close on a buffer we own.
                unsafe {
                    let fd = libc::open(cpath.as_ptr(), flags);
                    let mut buf = vec![0u8; size];
                    for _ in 0..n {
                        if args[i] == "read" {
                            libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), size);
                        } else {
                            libc::syscall(libc::SYS_write, fd, buf.as_ptr(), size);
                        }
                    }
                    libc::close(fd);
                }
                i += 3;
            }
            "nap" => {
                let micros = num(args.get(i + 1));
                for _ in 0..num(args.get(i + 2)) {
                    let ts = libc::timespec { tv_sec: (micros / 1_000_000) as i64, tv_nsec: ((micros % 1_000_000) * 1000) as i64 };
                    // SAFETY: nanosleep with a valid timespec and no remainder pointer.
                    unsafe { libc::syscall(libc::SYS_nanosleep, &ts as *const libc::timespec, std::ptr::null_mut::<libc::timespec>()) };
                }
                i += 3;
            }
            "spin" => {
                let until = std::time::Instant::now() + std::time::Duration::from_millis(num(args.get(i + 1)));
                let mut x = 0u64;
                while std::time::Instant::now() < until {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
                i += 2;
            }
            _ => usage(),
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: rbt-workload [getppid N] [read SIZE N] [write SIZE N] [nap MICROS N] [spin MILLIS]...");
    std::process::exit(2)
}
