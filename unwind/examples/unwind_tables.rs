//! Measures unwind table builds: for each file given, its `.text` size, rows before and after
//! merging, the page index rbt loads with them, the table's bytes (rows and pages, per MB of
//! `.text`), the rows of each kind, and the build time (rows and page index) as the median of 5
//! builds. Prints Markdown rows for BENCHMARKS.md; run by bench/unwind_tables.sh.
//!
//! Usage: cargo run --release -p unwind --example unwind_tables -- FILE...

use std::process::ExitCode;
use std::time::{Duration, Instant};

use object::{Object, ObjectSection};

const RUNS: usize = 5;
/// The most candidate rows in a page of the index, as the runtime builds it
/// (`1 << compiler::lower::unwind::PAGE_STEPS`).
const PAGE_CANDIDATES: u32 = 128;
const KIND_NAMES: [&str; 7] = ["rsp", "rbp", "plt", "signal", "end", "none", "stop"];

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: unwind_tables FILE...");
        return ExitCode::FAILURE;
    }
    println!(
        "| file | .text | FDEs | CFI rows | rows before merging | rows | pages (shift) | table bytes | bytes per MB of .text | \
         rows by kind | build (median of {RUNS}) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut total = Duration::ZERO;
    for path in &paths {
        match measure(path) {
            Ok(median) => total += median,
            Err(message) => {
                eprintln!("{path}: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("\nall {} files: {:.2} ms (sum of the medians)", paths.len(), total.as_secs_f64() * 1e3);
    ExitCode::SUCCESS
}

/// Prints one file's row and returns its median build time.
fn measure(path: &str) -> Result<Duration, String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(RUNS);
    let mut built = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let (table, stats) = unwind::build_with_stats(&data).map_err(|e| e.to_string())?;
        let pages = table.page_index(PAGE_CANDIDATES);
        times.push(start.elapsed());
        built = Some((table, stats, pages));
    }
    times.sort();
    let median = times[RUNS / 2];
    let (table, stats, pages) = built.ok_or("no build")?;
    let text_bytes = object::File::parse(&*data)
        .ok()
        .and_then(|file| file.section_by_name(".text").map(|s| s.size()))
        .unwrap_or(stats.executable_bytes);
    let text_mb = text_bytes as f64 / (1 << 20) as f64;
    let (page_count, shift) = pages.map_or((0, 0), |index| (index.pages.len(), index.shift));
    let table_bytes = table.to_bytes().len() + page_count * 8;
    let mut kinds = [0usize; KIND_NAMES.len()];
    for row in &table.rows {
        if let Some(count) = kinds.get_mut(unwind::decode(row.rule).0 as usize) {
            *count += 1;
        }
    }
    let by_kind: Vec<String> =
        KIND_NAMES.iter().zip(kinds).filter(|(_, n)| *n > 0).map(|(name, n)| format!("{name} {n}")).collect();
    println!(
        "| {path} | {text_mb:.2} MB | {} | {} | {} | {} | {page_count} ({shift}) | {table_bytes} | {:.0} | {} | {:.2} ms |",
        stats.fdes,
        stats.cfi_rows,
        stats.rows_before_dedup,
        table.rows.len(),
        table_bytes as f64 / text_mb,
        by_kind.join(", "),
        median.as_secs_f64() * 1e3,
    );
    Ok(median)
}
