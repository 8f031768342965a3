//! Measures unwind table builds: for each file given, its `.text` size, rows before and after
//! merging, the table's bytes (per MB of `.text`), the rows of each kind, and the build time as the
//! median of 5 builds. Prints Markdown rows for BENCHMARKS.md; run by bench/unwind_tables.sh.
//!
//! Usage: cargo run --release -p unwind --example unwind_tables -- FILE...

use std::process::ExitCode;
use std::time::{Duration, Instant};

use object::{Object, ObjectSection};

const RUNS: usize = 5;
const KIND_NAMES: [&str; 7] = ["rsp", "rbp", "plt", "signal", "end", "none", "stop"];

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: unwind_tables FILE...");
        return ExitCode::FAILURE;
    }
    println!(
        "| file | .text | FDEs | CFI rows | rows before merging | rows | table bytes | bytes per MB of .text | \
         rows by kind | build (median of {RUNS}) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
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
        let result = unwind::build_with_stats(&data).map_err(|e| e.to_string())?;
        times.push(start.elapsed());
        built = Some(result);
    }
    times.sort();
    let median = times[RUNS / 2];
    let (table, stats) = built.ok_or("no build")?;
    let text_bytes = object::File::parse(&*data)
        .ok()
        .and_then(|file| file.section_by_name(".text").map(|s| s.size()))
        .unwrap_or(stats.executable_bytes);
    let text_mb = text_bytes as f64 / (1 << 20) as f64;
    let table_bytes = table.to_bytes().len();
    let mut kinds = [0usize; KIND_NAMES.len()];
    for row in &table.rows {
        if let Some(count) = kinds.get_mut(unwind::decode(row.rule).0 as usize) {
            *count += 1;
        }
    }
    let by_kind: Vec<String> =
        KIND_NAMES.iter().zip(kinds).filter(|(_, n)| *n > 0).map(|(name, n)| format!("{name} {n}")).collect();
    println!(
        "| {path} | {text_mb:.2} MB | {} | {} | {} | {} | {table_bytes} | {:.0} | {} | {:.2} ms |",
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
