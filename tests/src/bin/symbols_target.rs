//! The symbolizer's test subject (`tests/tests/symbols.rs`): a process whose code addresses are
//! known. It prints, one per line:
//!
//! - `fn NAME ADDR`: the address of one of its own functions (`marker_alpha`, `marker_beta`,
//!   which calls an always-inlined `inlined_helper`) or of libc's `getpid`;
//! - `jit NAME ADDR`: a "JIT function" in an anonymous executable page, named only by the perf
//!   map it writes to `/tmp/perf-PID.map`;
//! - `ready`;
//!
//! then waits for a line (or end of input) on stdin, removes its perf map, and exits. ADDR is
//! hex with `0x`.

use std::io::BufRead;

#[inline(never)]
fn marker_alpha(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

#[inline(never)]
fn marker_beta(x: u64) -> u64 {
    let y = inlined_helper(x);
    y.wrapping_add(marker_alpha(y))
}

#[inline(always)]
fn inlined_helper(x: u64) -> u64 {
    let mut acc = x;
    for i in 0..(x & 7) {
        acc = acc.rotate_left(5) ^ i;
    }
    acc
}

fn main() {
    // Use the markers so that nothing is optimized away in a release build.
    let seed = std::process::id().into();
    std::hint::black_box(marker_beta(std::hint::black_box(seed)));

    let page = jit_page();
    let perf_map = format!("/tmp/perf-{}.map", std::process::id());
    let jit = [("jit_function_one", page), ("jit_function_two", page + 0x40)];
    let lines: String = jit.iter().map(|(name, addr)| format!("{addr:x} 40 {name}\n")).collect();
    std::fs::write(&perf_map, lines).expect("write the perf map");

    println!("fn marker_alpha {:#x}", marker_alpha as fn(u64) -> u64 as usize);
    println!("fn marker_beta {:#x}", marker_beta as fn(u64) -> u64 as usize);
    println!("fn getpid {:#x}", libc::getpid as unsafe extern "C" fn() -> libc::pid_t as usize);
    for (name, addr) in jit {
        println!("jit {name} {addr:#x}");
    }
    println!("ready");

    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let _ = std::fs::remove_file(&perf_map);
}

/// One anonymous executable page, as a JIT would map for its code (this one holds no code).
fn jit_page() -> usize {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap of a JIT page");
    page as usize
}
