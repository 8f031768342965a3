//! The test workload: `rbt-workload STEP...` makes exact numbers of chosen syscalls, in order, so
//! kernel and differential tests can count them with `rbt -c` / `bpftrace -c`. Steps:
//!
//! - `getppid N`: N getppid(2) calls.
//! - `kill0 N`: N kill(2)s of signal 0 to itself (a permission check only).
//! - `setuid N`: N setuid(2)s to its own uid (no change).
//! - `read SIZE N`: opens /dev/zero, N read(2)s of SIZE bytes, closes it.
//! - `write SIZE N`: opens /dev/null, N write(2)s of SIZE bytes, closes it.
//! - `nap MICROS N`: N nanosleep(2)s of MICROS microseconds.
//! - `open PATH N`: N openat(2)s of PATH (read-only), each closed at once (missing PATHs count too).
//! - `spin MILLIS`: a busy loop without syscalls (the clock is read through the vDSO).
//! - `pin CPU`: stay on one CPU from now on, so events reach the tracer's per-CPU buffers in
//!   order (a script printing once per event would otherwise risk interleaving after a migration).
//! - `pipe N MICROS`: N times, a writer thread naps MICROS microseconds then writes one byte to
//!   a pipe the main thread is blocked reading (off-CPU time with a known waker).
//! - `fsync PATH N`: N times, writes 4 KiB to PATH and fsync(2)s it (block I/O), then removes it.
//! - `mutex N MICROS`: N times, a second thread holds a mutex for MICROS microseconds while the
//!   main thread waits for it (futex(2) waits: user-space lock contention).
//! - `call N`: N calls of `rbt_workload_add(i, 2 * i)` for i in 0..N, a plain C-ABI function
//!   for uprobes to attach to (it returns `3 * i`).
//! - `many N`: N calls of `rbt_many_args(i, 1, 2, 4, 8, 16, 32 + i, 64 + i)`, a C-ABI
//!   function of eight integer arguments, the last two on the stack (`sarg0`, `sarg1`).
//! - `poke N`: maps a page at 0x10000000 and writes N bytes to its first byte, for
//!   `watchpoint:0x10000000:1:w`; the global `RBT_WORKLOAD_WORD` (0x55555555, 4 bytes) is read
//!   first, for `uaddr("RBT_WORKLOAD_WORD")`.
//! - `bump N`: N calls of `rbt_watch_bump(word)`, which adds one to the u32 its argument points
//!   to, on the one heap word the workload keeps for its whole run (the same address in every
//!   `bump` step), for `watchpoint:rbt_watch_bump+arg0:4:w`.
//! - `bump-fresh N`: N calls of `rbt_watch_bump` on N new heap words (N addresses to watch).
//!   Words are never freed: free() would write into them.
//! - `inline N`: N calls of `rbt_workload_outer(i)`, which calls the always-inlined
//!   `inlined_step`, which calls `rbt_workload_leaf`: a uprobe on the leaf sees a caller frame
//!   with an inlined call at its address (DWARF lines in the test profile's debug build).
//! - `malloc SIZE N`: N calls of libc's `malloc(SIZE)`, each freed at once, for uprobes on libc
//!   (`uprobe:libc:malloc`). Rust's own allocations go through malloc too, so filter on a SIZE
//!   the program does not otherwise ask for, e.g. 1234.
//! - `stat PATH N`: N stat(2) calls on PATH (vfs_getattr in the kernel).
//! - `tcp N`: listens on an ephemeral port of 127.0.0.1 and N times connects to it, accepts,
//!   sends 4 bytes from the client to the server, and closes the client, then the server's
//!   socket; then closes the listener. For the TCP tools (tcpconnect, tcpaccept, tcplife,
//!   tcpsynbl) in a guest whose only network is the loopback.
//! - `exec PROG ARGS...`: the rest of the words, run in place of the workload (execve), e.g. for
//!   `join(args->argv)`.
//! - `structs N`: N calls of `rbt_workload_structs(&sample, &&sample)` with a C-layout
//!   `struct Sample` (ints, a char array, bitfields, an enum, an array of structs, an anonymous
//!   union, a pointer to a second sample, a two-dimensional array) whose fields depend on the
//!   call's index, for C definitions in scripts (the layout is in `Sample`'s comment).
//! - `now`: print `now NS`, the wall clock (CLOCK_REALTIME) in nanoseconds. As the first step it
//!   tells when the tracer let its `-c` child run, which `bench/run.sh` uses to time
//!   launch-until-attached.
//!
//! Every step uses raw `syscall(2)` so no library adds calls of its own. What stays exact when
//! filtering on `pid == cpid` (checked against bpftrace 0.17 on Linux 6.18):
//!
//! - getppid and nanosleep: only the steps make them.
//! - write: only the steps write (the program prints nothing unless its arguments are wrong).
//! - read: the dynamic loader reads each shared library's ELF header (832 bytes) and Rust's
//!   runtime may read /proc/self/maps, so filter on `args->count == SIZE` with a SIZE that is
//!   neither 832 nor a power of two up to 4096, e.g. 100 or 3000.
//! - openat: the loader opens ld.so.cache and its libraries, and each read/write step opens its
//!   device, so filter on the path: `str(args->filename) == "PATH"`.
//! - close, mmap, brk and the like: not exact.
//!
//! Before the exec, the child that `-c` forks waits on a pipe (rbt) or eventfd (bpftrace): its
//! `sys_exit_read` and the execve also have `pid == cpid`, under the tracer's own `comm`.

use std::ffi::{c_long, CString};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        usage();
    }
    let mut words = args.iter().map(String::as_str);
    while let Some(step) = words.next() {
        let mut next = || words.next().unwrap_or_else(|| usage());
        match step {
            "getppid" => repeat(number(next()), || raw(libc::SYS_getppid, [0; 3])),
            // kill(self, 0): a signal that checks permission only, for killsnoop.
            "kill0" => repeat(number(next()), || raw(libc::SYS_kill, [c_long::from(std::process::id() as i32), 0, 0])),
            // setuid(own uid): changes nothing, for setuids.
            "setuid" => repeat(number(next()), || raw(libc::SYS_setuid, [c_long::from(own_uid()), 0, 0])),
            "read" => {
                let (size, count) = (number(next()), number(next()));
                transfer(c"/dev/zero", libc::O_RDONLY, libc::SYS_read, size, count);
            }
            "write" => {
                let (size, count) = (number(next()), number(next()));
                transfer(c"/dev/null", libc::O_WRONLY, libc::SYS_write, size, count);
            }
            "nap" => {
                let micros = number(next());
                let nap = libc::timespec {
                    tv_sec: (micros / 1_000_000) as libc::time_t,
                    tv_nsec: (micros % 1_000_000 * 1000) as c_long,
                };
                let nap_ptr = &nap as *const libc::timespec as c_long;
                repeat(number(next()), || raw(libc::SYS_nanosleep, [nap_ptr, 0, 0]));
            }
            "open" => {
                let path = CString::new(next()).unwrap_or_else(|_| usage());
                let count = number(next());
                repeat(count, || {
                    let at = c_long::from(libc::AT_FDCWD);
                    let fd = raw(libc::SYS_openat, [at, path.as_ptr() as c_long, c_long::from(libc::O_RDONLY)]);
                    if fd >= 0 {
                        raw(libc::SYS_close, [fd, 0, 0]);
                    }
                });
            }
            "pin" => {
                let cpu = usize::try_from(number(next())).unwrap_or_else(|_| usage());
                // A mask big enough for 1024 CPUs, with one bit set.
                let mut mask = [0u64; 16];
                *mask.get_mut(cpu / 64).unwrap_or_else(|| usage()) = 1 << (cpu % 64);
                let mask_ptr = mask.as_ptr() as c_long;
                if raw(libc::SYS_sched_setaffinity, [0, std::mem::size_of_val(&mask) as c_long, mask_ptr]) != 0 {
                    eprintln!("rbt-workload: cannot pin to CPU {cpu}");
                    std::process::exit(1);
                }
            }
            "stat" => {
                let (path, count) = (next(), number(next()));
                let c_path = CString::new(path).unwrap_or_else(|_| usage());
                repeat(count, || {
                    // SAFETY: `c_path` is NUL-terminated and `st` is plain data stat fills in.
                    let mut st: libc::stat = unsafe { std::mem::zeroed() };
                    unsafe { libc::stat(c_path.as_ptr(), &mut st) };
                });
            }
            "statx" => {
                // std's metadata is statx(2) on Linux (glibc's stat is newfstatat, which
                // bpftrace's statsnoop does not trace).
                let (path, count) = (next(), number(next()));
                repeat(count, || {
                    let _ = std::fs::metadata(path);
                });
            }
            "exec" => {
                // The rest of the words are a command run in place of this process (execve).
                let rest: Vec<&str> = std::iter::from_fn(|| words.next()).collect();
                let Some((program, args)) = rest.split_first() else { usage() };
                let error = std::os::unix::process::CommandExt::exec(std::process::Command::new(program).args(args));
                eprintln!("rbt-workload: cannot exec {program}: {error}");
                std::process::exit(1);
            }
            "now" => {
                let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: clock_gettime writes into the timespec we pass.
                unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
                println!("now {}", i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
            }
            "pipe" => {
                let (count, micros) = (number(next()), number(next()));
                pipe_handoffs(count, micros);
            }
            "fsync" => {
                let path = CString::new(next()).unwrap_or_else(|_| usage());
                let count = number(next());
                synced_writes(&path, count);
            }
            "mutex" => {
                let (count, micros) = (number(next()), number(next()));
                contended_mutex(count, micros);
            }
            "call" => {
                let mut total = 0u64;
                for i in 0..number(next()) {
                    total = total.wrapping_add(rbt_workload_add(std::hint::black_box(i), std::hint::black_box(2 * i)));
                }
                std::hint::black_box(total);
            }
            "many" => {
                for i in 0..number(next()) {
                    let b = std::hint::black_box;
                    b(rbt_many_args(b(i), 1, 2, 4, 8, 16, b(32 + i), b(64 + i)));
                }
            }
            "poke" => poke_fixed_page(number(next())),
            "bump" => {
                let word = *BUMP_WORD.get_or_init(leaked_word);
                repeat(number(next()), || rbt_watch_bump(word));
            }
            "bump-fresh" => repeat(number(next()), || rbt_watch_bump(leaked_word())),
            "inline" => {
                let mut total = 0u64;
                for i in 0..number(next()) {
                    total = total.wrapping_add(rbt_workload_outer(std::hint::black_box(i)));
                }
                std::hint::black_box(total);
            }
            "malloc" => {
                let (size, count) = (number(next()), number(next()));
                let size = usize::try_from(size).unwrap_or_else(|_| usage());
                repeat(count, || {
                    // SAFETY: malloc may return null, which free accepts; nothing else touches
                    // the block.
                    unsafe { libc::free(libc::malloc(std::hint::black_box(size))) }
                });
            }
            "structs" => {
                for i in 0..number(next()) {
                    let next_sample = Sample::new(100 + i, std::ptr::null());
                    let sample = Sample::new(i, &next_sample);
                    let pointer: *const Sample = &sample;
                    std::hint::black_box(rbt_workload_structs(std::hint::black_box(&sample), &pointer));
                }
            }
            "tcp" => loopback_connections(number(next())),
            "spin" => {
                let until = Instant::now() + Duration::from_millis(number(next()));
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            _ => usage(),
        }
    }
}

/// The main thread blocks reading a pipe; a second thread naps `micros` and writes one byte,
/// `count` times: each read waits about `micros` and is woken by the writer.
fn pipe_handoffs(count: u64, micros: u64) {
    let mut fds = [0 as libc::c_int; 2];
    if raw(libc::SYS_pipe2, [fds.as_mut_ptr() as c_long, 0, 0]) != 0 {
        eprintln!("rbt-workload: cannot create a pipe");
        std::process::exit(1);
    }
    let [read_fd, write_fd] = fds;
    let writer = std::thread::spawn(move || {
        let byte = [1u8];
        for _ in 0..count {
            std::thread::sleep(Duration::from_micros(micros));
            raw(libc::SYS_write, [c_long::from(write_fd), byte.as_ptr() as c_long, 1]);
        }
    });
    let mut byte = [0u8];
    repeat(count, || raw(libc::SYS_read, [c_long::from(read_fd), byte.as_mut_ptr() as c_long, 1]));
    let _ = writer.join();
    raw(libc::SYS_close, [c_long::from(read_fd), 0, 0]);
    raw(libc::SYS_close, [c_long::from(write_fd), 0, 0]);
}

/// The `tcp` step: `count` loopback connections, each closed by the client first.
fn loopback_connections(count: u64) {
    use std::io::{Read, Write};
    let fail = |what: &str, error: std::io::Error| -> ! {
        eprintln!("rbt-workload: cannot {what}: {error}");
        std::process::exit(1)
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail("listen on 127.0.0.1", e));
    let address = listener.local_addr().unwrap_or_else(|e| fail("read the listening address", e));
    for _ in 0..count {
        let mut client = std::net::TcpStream::connect(address).unwrap_or_else(|e| fail("connect", e));
        let (mut server, _) = listener.accept().unwrap_or_else(|e| fail("accept", e));
        client.write_all(b"rbt\n").unwrap_or_else(|e| fail("send", e));
        let mut received = [0u8; 4];
        server.read_exact(&mut received).unwrap_or_else(|e| fail("receive", e));
        drop(client);
        drop(server);
    }
}

/// The uprobe target: not inlined, not mangled, arguments in rdi and rsi, result in rax.
#[no_mangle]
#[inline(never)]
pub extern "C" fn rbt_workload_add(a: u64, b: u64) -> u64 {
    std::hint::black_box(a) + std::hint::black_box(b)
}

/// A uprobe target whose seventh and eighth arguments are passed on the stack (x86-64 SysV).
#[no_mangle]
#[inline(never)]
#[allow(clippy::too_many_arguments, reason = "the point is arguments past the six registers")]
pub extern "C" fn rbt_many_args(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: u64, h: u64) -> u64 {
    let b_ = std::hint::black_box;
    b_(a) + b_(b) + b_(c) + b_(d) + b_(e) + b_(f) + b_(g) + b_(h)
}

/// The function watchpoints watch: adds one to the u32 `word` points to (one 4-byte write).
#[no_mangle]
#[inline(never)]
pub extern "C" fn rbt_watch_bump(word: &AtomicU32) {
    word.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The heap word every `bump` step writes.
static BUMP_WORD: std::sync::OnceLock<&'static AtomicU32> = std::sync::OnceLock::new();

/// A heap u32 that lives until the process exits.
fn leaked_word() -> &'static AtomicU32 {
    Box::leak(Box::new(AtomicU32::new(0)))
}

/// A global of the workload's symbol table, for `uaddr("RBT_WORKLOAD_WORD")`.
#[no_mangle]
#[used]
pub static RBT_WORKLOAD_WORD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0x5555_5555);

/// Maps a page at 0x10000000 and writes `count` bytes to its first byte, one at a time.
fn poke_fixed_page(count: u64) {
    std::hint::black_box(RBT_WORKLOAD_WORD.load(std::sync::atomic::Ordering::Relaxed));
    const FIXED: usize = 0x1000_0000;
    // SAFETY: an anonymous private mapping at a fixed address that must not replace any other
    // mapping (MAP_FIXED_NOREPLACE); nothing else uses the page.
    let page = unsafe {
        libc::mmap(
            FIXED as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if page as usize != FIXED {
        eprintln!("rbt-workload: cannot map a page at {FIXED:#x}");
        std::process::exit(1);
    }
    for i in 0..count {
        // SAFETY: the page was just mapped readable and writable.
        unsafe { std::ptr::write_volatile(page.cast::<u8>(), i as u8) };
    }
}

/// Calls the leaf through an inlined function, so that the return address in this function is
/// also in `inlined_step` (its DWARF lists the inlined call). The stack tests find these lines
/// by their `// rbt-line:` marks.
#[no_mangle]
#[inline(never)]
#[rustfmt::skip] // the mark stays on the line DWARF gives the function's entry
pub extern "C" fn rbt_workload_outer(x: u64) -> u64 { // rbt-line: outer
    inlined_step(x).wrapping_add(1) // rbt-line: outer calls inlined_step
}

#[inline(always)]
fn inlined_step(x: u64) -> u64 {
    let y = rbt_workload_leaf(std::hint::black_box(x)); // rbt-line: inlined_step calls the leaf
    std::hint::black_box(y).wrapping_mul(3)
}

/// The uprobe target under `rbt_workload_outer`.
#[no_mangle]
#[inline(never)]
#[rustfmt::skip] // the mark stays on the line DWARF gives the function's entry
pub extern "C" fn rbt_workload_leaf(x: u64) -> u64 { // rbt-line: leaf
    std::hint::black_box(x) ^ 0x5a
}

/// What `structs` passes: as C declares it,
///
/// ```c
/// enum Kind { SMALL = 1, LARGE = 7 };
/// struct Point { short x; short y; };
/// struct Sample {
///   int id;                                   // i
///   char name[12];                            // "sample-I"
///   unsigned int flags:3, mode:5, level:8;    // i % 8, (3 * i) % 32, 200 + i
///   enum Kind kind;                           // LARGE for odd i, else SMALL
///   struct Point pts[2];                      // {i, -i}, {2 * i, -2 * i}
///   union { unsigned long long word; unsigned char bytes[8]; };  // 0x0102030405060708 + i
///   struct Sample *next;                      // a sample of id 100 + i (whose next is NULL)
///   long grid[2][2];                          // 10 * row + column + i
/// };                                          // 80 bytes
/// ```
#[repr(C)]
pub struct Sample {
    id: i32,
    name: [u8; 12],
    bits: u32,
    kind: u32,
    pts: [[i16; 2]; 2],
    word: u64,
    next: *const Sample,
    grid: [[i64; 2]; 2],
}

impl Sample {
    fn new(i: u64, next: *const Sample) -> Sample {
        let mut name = [0u8; 12];
        let text = format!("sample-{i}");
        name[..text.len().min(11)].copy_from_slice(&text.as_bytes()[..text.len().min(11)]);
        let (small, wide) = (i as i16, i as i64);
        Sample {
            id: i as i32,
            name,
            bits: ((i % 8) | (((3 * i) % 32) << 3) | (((200 + i) % 256) << 8)) as u32,
            kind: if i % 2 == 1 { 7 } else { 1 },
            pts: [[small, -small], [2 * small, -2 * small]],
            word: 0x0102_0304_0506_0708 + i,
            next,
            grid: [[wide, 1 + wide], [10 + wide, 11 + wide]],
        }
    }
}

/// The uprobe target of `structs`: a sample and a pointer to a pointer to it.
#[no_mangle]
#[inline(never)]
pub extern "C" fn rbt_workload_structs(sample: &Sample, pointer: &*const Sample) -> i32 {
    std::hint::black_box(sample.id) + i32::from(std::hint::black_box(*pointer).is_null())
}

/// A helper thread takes the lock and holds it for `micros`; the main thread then blocks on it.
/// A channel orders the two so every round contends.
fn contended_mutex(count: u64, micros: u64) {
    let lock = std::sync::Arc::new(std::sync::Mutex::new(0u64));
    let (taken_tx, taken_rx) = std::sync::mpsc::channel::<()>();
    let (next_tx, next_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let lock = std::sync::Arc::clone(&lock);
        std::thread::spawn(move || {
            for _ in 0..count {
                if next_rx.recv().is_err() {
                    return;
                }
                let mut guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = taken_tx.send(());
                std::thread::sleep(Duration::from_micros(micros));
                *guard += 1;
            }
        })
    };
    for _ in 0..count {
        let _ = next_tx.send(());
        let _ = taken_rx.recv();
        let mut guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard += 1;
    }
    let _ = holder.join();
}

/// `count` times: write 4 KiB to `path` and fsync it, so each write reaches the block device.
fn synced_writes(path: &std::ffi::CStr, count: u64) {
    let at = c_long::from(libc::AT_FDCWD);
    let flags = c_long::from(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC);
    let fd = raw(libc::SYS_openat, [at, path.as_ptr() as c_long, flags]);
    if fd < 0 {
        eprintln!("rbt-workload: cannot create {}", path.to_string_lossy());
        std::process::exit(1);
    }
    let block = vec![0x5au8; 4096];
    repeat(count, || {
        raw(libc::SYS_write, [fd, block.as_ptr() as c_long, block.len() as c_long]);
        raw(libc::SYS_fsync, [fd, 0, 0]);
    });
    raw(libc::SYS_close, [fd, 0, 0]);
    raw(libc::SYS_unlinkat, [at, path.as_ptr() as c_long, 0]);
}

/// Opens `device`, makes `count` `syscall`s (read or write) of `size` bytes on it, closes it.
fn transfer(device: &std::ffi::CStr, flags: libc::c_int, syscall: c_long, size: u64, count: u64) {
    let mut buffer = vec![0u8; usize::try_from(size).unwrap_or_else(|_| usage())];
    let at = c_long::from(libc::AT_FDCWD);
    let fd = raw(libc::SYS_openat, [at, device.as_ptr() as c_long, c_long::from(flags)]);
    if fd < 0 {
        eprintln!("rbt-workload: cannot open {}", device.to_string_lossy());
        std::process::exit(1);
    }
    let buffer_ptr = buffer.as_mut_ptr() as c_long;
    repeat(count, || raw(syscall, [fd, buffer_ptr, size as c_long]));
    raw(libc::SYS_close, [fd, 0, 0]);
}

/// One raw system call with up to three arguments, returning its result.
fn raw(number: c_long, args: [c_long; 3]) -> c_long {
    // SAFETY: callers pass syscalls whose pointer arguments point at live memory of the right
    // size (a timespec, a NUL-terminated path, a buffer of `size` bytes) or are 0.
    unsafe { libc::syscall(number, args[0], args[1], args[2]) }
}

fn repeat<T>(count: u64, mut f: impl FnMut() -> T) {
    for _ in 0..count {
        f();
    }
}

/// This process's real uid.
fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn number(word: &str) -> u64 {
    word.parse().unwrap_or_else(|_| usage())
}

fn usage() -> ! {
    eprintln!(
        "usage: rbt-workload STEP...\n  steps: getppid N | kill0 N | setuid N | read SIZE N | write SIZE N | nap MICROS N \
         | open PATH N | spin MILLIS | pin CPU | pipe N MICROS | fsync PATH N | mutex N MICROS | call N | many N | poke N | bump N | bump-fresh N | inline N | malloc SIZE N | structs N | now | stat PATH N | statx PATH N | tcp N | exec PROG ARGS..."
    );
    std::process::exit(2)
}
