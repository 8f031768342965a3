// A call chain five deep, built by tests/tests/unwind.rs with `rustc -O -C force-frame-pointers=no`,
// that ends in a sleep (nanosleep), an allocation (malloc) and a raw syscall, ROUNDS times.
use std::hint::black_box;

#[inline(never)]
fn level5() {
    std::thread::sleep(std::time::Duration::from_millis(2));
    let v: Vec<u8> = Vec::with_capacity(black_box(4096));
    black_box(&v);
    black_box(std::process::id());
    black_box(std::os::unix::process::parent_id());
}
#[inline(never)]
fn level4() { level5(); black_box(()); }
#[inline(never)]
fn level3() { level4(); black_box(()); }
#[inline(never)]
fn level2() { level3(); black_box(()); }
#[inline(never)]
fn level1() { level2(); black_box(()); }

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    for _ in 0..rounds {
        level1();
    }
}
