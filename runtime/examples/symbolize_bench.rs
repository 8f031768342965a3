//! Benchmark of `runtime::symbols` (run by `bench/symbols.sh`, not a test): the time and memory
//! to symbolize and print a map of 10,000 distinct stacks, each 20 kernel frames plus 20 user
//! frames, as `@[kstack, ustack]` would print it.
//!
//! `symbolize_bench TARGET [POOL] [names|lines]` starts TARGET (a program that prints `ready` and waits on
//! stdin: `rbt-symbols-target`, debug build, so that DWARF lines and inlined frames are read)
//! and draws user addresses at random from its executable mappings (its own code and libc's) and
//! kernel addresses from kallsyms's text. POOL is how many distinct addresses per side the
//! stacks draw from (default: every frame its own address, the worst case for caching); the
//! last word is the symbolizer's `Detail` (default `names`, what bpftrace prints) and the
//! printing that goes with it: `names` as `@[kstack, ustack]` prints, `lines` as
//! `@[kstack(perf), ustack(perf)]` prints (locations and inlined calls). Prints one line of
//! `key=value` figures.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use runtime::symbols::{Detail, Frame, Symbolizer};

const STACKS: usize = 10_000;
const DEPTH: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first() else {
        eprintln!("usage: symbolize_bench TARGET [POOL] [names|lines]");
        std::process::exit(2);
    };
    let pool: usize = args.get(1).map_or(STACKS * DEPTH, |p| p.parse().expect("POOL is a number"));
    let detail = match args.get(2).map(String::as_str) {
        None | Some("names") => Detail::Names,
        Some("lines") => Detail::Lines,
        Some(other) => panic!("unknown detail {other}"),
    };

    let mut child =
        Command::new(target).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start the target");
    let stdout = child.stdout.take().expect("piped stdout");
    for line in BufReader::new(stdout).lines() {
        if line.expect("read the target") == "ready" {
            break;
        }
    }
    let pid = child.id();

    let mut random = Lcg(0x5eed);
    let user_ranges = executable_ranges(pid);
    let kernel_range = kernel_text();
    let user_pool: Vec<u64> = (0..pool).map(|_| random.pick(&user_ranges)).collect();
    let kernel_pool: Vec<u64> = (0..pool).map(|_| random.pick(&[kernel_range])).collect();
    let stacks: Vec<(Vec<u64>, Vec<u64>)> = (0..STACKS)
        .map(|s| {
            let pick = |pool: &[u64], random: &mut Lcg, i: usize| {
                if pool.len() == STACKS * DEPTH {
                    pool[s * DEPTH + i]
                } else {
                    pool[random.below(pool.len() as u64) as usize]
                }
            };
            let kernel = (0..DEPTH).map(|i| pick(&kernel_pool, &mut random, i)).collect();
            let user = (0..DEPTH).map(|i| pick(&user_pool, &mut random, i)).collect();
            (kernel, user)
        })
        .collect();
    let rss_before = status_kb("VmRSS");

    let start = Instant::now();
    let mut symbols = Symbolizer::with_detail(detail);
    symbols.remember(pid).expect("remember the target");
    symbols.load_kernel_symbols().expect("read kallsyms (run as root)");
    let setup = start.elapsed();
    let printing = Instant::now();
    let first = print_map(&mut symbols, pid, &stacks, detail);
    let cold = printing.elapsed();
    let again = Instant::now();
    let second = print_map(&mut symbols, pid, &stacks, detail);
    let warm = again.elapsed();
    assert_eq!(first.digest, second.digest, "the second print differs from the first");

    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"\n");
    }
    let _ = child.wait();
    println!(
        "stacks={STACKS} depth={DEPTH}+{DEPTH} pool={pool} detail={detail:?} setup_ms={:.1} first_print_ms={:.1} second_print_ms={:.1} \
         named_user={:.1}% with_line={:.1}% with_inlined={:.1}% output_mb={:.1} rss_growth_mb={:.1} peak_rss_mb={:.1}",
        setup.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        100.0 * first.named as f64 / (STACKS * DEPTH) as f64,
        100.0 * first.with_line as f64 / (STACKS * DEPTH) as f64,
        100.0 * first.with_inlined as f64 / (STACKS * DEPTH) as f64,
        first.bytes as f64 / 1e6,
        (status_kb("VmRSS") - rss_before) as f64 / 1024.0,
        status_kb("VmHWM") as f64 / 1024.0,
    );
}

/// What was printed: its size and a digest (the text itself is not kept, as a printer streams it).
struct Printed {
    bytes: usize,
    digest: u64,
    named: usize,
    with_line: usize,
    with_inlined: usize,
}

/// The map as rbt prints `@[kstack, ustack] = count()` (`detail` names) or `@[kstack(perf),
/// ustack(perf)] = count()` (`detail` lines): each key's frames on their own lines.
fn print_map(symbols: &mut Symbolizer, pid: u32, stacks: &[(Vec<u64>, Vec<u64>)], detail: Detail) -> Printed {
    let mut printed = Printed { bytes: 0, digest: 0, named: 0, with_line: 0, with_inlined: 0 };
    let mut text = String::new();
    for (kernel, user) in stacks {
        text.clear();
        text.push_str("@[\n");
        for frame in symbols.kernel(kernel) {
            push_frame(&mut text, &frame, detail);
        }
        text.push_str(",\n");
        for frame in symbols.user(pid, user) {
            printed.named += usize::from(frame.name.is_some());
            printed.with_line += usize::from(frame.line.is_some());
            printed.with_inlined += usize::from(!frame.inlined.is_empty());
            push_frame(&mut text, &frame, detail);
        }
        text.push_str("]: 1\n");
        printed.bytes += text.len();
        printed.digest = text.bytes().fold(printed.digest, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    }
    printed
}

fn push_frame(text: &mut String, frame: &Frame, detail: Detail) {
    match detail {
        Detail::Names => {
            text.push_str("        ");
            text.push_str(&frame.bpftrace_text());
            text.push('\n');
        }
        Detail::Lines => {
            for line in frame.perf_lines() {
                text.push('\t');
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
}

/// The executable mappings of `pid`, as `[start, end)`.
fn executable_ranges(pid: u32) -> Vec<(u64, u64)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read the target's maps");
    maps.lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')) && l.contains('/'))
        .filter_map(|l| {
            let (start, end) = l.split_whitespace().next()?.split_once('-')?;
            Some((u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?))
        })
        .collect()
}

/// `[_stext, _etext)` from kallsyms.
fn kernel_text() -> (u64, u64) {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").expect("read kallsyms");
    let find = |name: &str| {
        kallsyms
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .and_then(|l| u64::from_str_radix(l.split_whitespace().next()?, 16).ok())
            .unwrap_or_else(|| panic!("{name} is not in kallsyms"))
    };
    (find("_stext"), find("_etext"))
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A small deterministic generator (the benchmark must draw the same stacks every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }

    /// An address in one of `ranges`, weighted by their sizes.
    fn pick(&mut self, ranges: &[(u64, u64)]) -> u64 {
        let total: u64 = ranges.iter().map(|(s, e)| e - s).sum();
        let mut at = (self.below(1 << 31) << 31 | self.below(1 << 31)) % total;
        for &(start, end) in ranges {
            if at < end - start {
                return start + at;
            }
            at -= end - start;
        }
        ranges[0].0
    }
}
