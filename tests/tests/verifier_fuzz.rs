//! The verifier hunt: random valid programs from `tests::random_program`, each loaded into the
//! kernel and run by the real rbt binary. A program must load and run, or be refused with a
//! diagnostic (by the checker, or for one of the verifier's own limits, which rbt reports as the
//! script's to change); any other verifier rejection, a panic, another runtime error or a hang is
//! a compiler bug.
//!
//! The default run is small and fixed (CI keeps it); every fourth program runs with `-kk`, whose
//! helper checks add code of their own. `RBT_FUZZ_PROGRAMS=N`, `RBT_FUZZ_SEED=S` and
//! `RBT_FUZZ_JOBS=J` widen the hunt, `RBT_FUZZ_ARGS="-kk"` gives every program those arguments;
//! every failing program is saved as `target/verifier-fuzz/seed-S.rbt` for minimizing.

mod common_rbt;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common_rbt::*;

/// Programs in the default run, and the seed of the first one.
const PROGRAMS: u64 = 40;
const SEED: u64 = 0x5eed_0017;

enum Outcome {
    Loaded,
    /// The checker refused the program; the diagnostic code.
    Refused(String),
    Bug(String),
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run_one(source: &str, path: &std::path::Path, args: &[String]) -> Outcome {
    std::fs::write(path, source).expect("write program");
    let mut command = Command::new(rbt());
    command.args(args).arg(path).env("RUST_BACKTRACE", "0");
    let out = match tests::run_with_limit(&mut command, Duration::from_secs(30)) {
        Ok(out) => out,
        Err(e) => return Outcome::Bug(e),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail = |s: &str| s.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    // The code of the first diagnostic, on a line of its own as miette prints it:
    // `rbt::stack-too-large`.
    let code = stderr
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("rbt::")
                .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'))
        })
        .unwrap_or("");
    match out.status {
        None => Outcome::Bug(format!(
            "hang: still running after 30 s\nstdout:\n{}\nstderr:\n{}",
            tail(&String::from_utf8_lossy(&out.stdout)),
            tail(&stderr)
        )),
        Some(status) if status.success() => Outcome::Loaded,
        Some(_) if code == "verifier" => Outcome::Bug(format!("verifier rejection:\n{}", tail(&stderr))),
        Some(_) if stderr.contains("panicked") => Outcome::Bug(format!("panic:\n{}", tail(&stderr))),
        // A diagnostic: from the checker, or a limit of the verifier itself (`verifier-limit`,
        // `unbounded-loop`), which rbt cannot predict and reports as the script's to change.
        Some(_) if !code.is_empty() && !stderr.contains("ERROR:") => Outcome::Refused(code.to_string()),
        Some(status) => Outcome::Bug(format!("failed ({status}):\n{}", tail(&stderr))),
    }
}

#[test]
fn random_programs_load_or_are_refused_with_a_diagnostic() {
    require_bpf();
    let programs = env_u64("RBT_FUZZ_PROGRAMS", PROGRAMS);
    let first = env_u64("RBT_FUZZ_SEED", SEED);
    let jobs = env_u64("RBT_FUZZ_JOBS", 2).max(1);
    let dir = workspace().join("target/verifier-fuzz");
    std::fs::create_dir_all(&dir).expect("create target/verifier-fuzz");
    rbt(); // build once, before the workers start

    let next = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= programs {
                    break;
                }
                let seed = first.wrapping_add(i);
                let source = tests::random_program::program(seed);
                let path = dir.join(format!("seed-{seed}.rbt"));
                let args: Vec<String> = match std::env::var("RBT_FUZZ_ARGS") {
                    Ok(args) => args.split_whitespace().map(str::to_owned).collect(),
                    Err(_) if i % 4 == 3 => vec!["-kk".to_owned()],
                    Err(_) => Vec::new(),
                };
                let outcome = match run_one(&source, &path, &args) {
                    Outcome::Bug(why) if !args.is_empty() => Outcome::Bug(format!("with {args:?}: {why}")),
                    outcome => outcome,
                };
                if !matches!(outcome, Outcome::Bug(_)) {
                    let _ = std::fs::remove_file(&path);
                }
                results.lock().expect("results lock").push((seed, outcome));
            });
        }
    });

    let results = results.into_inner().expect("results lock");
    let loaded = results.iter().filter(|(_, o)| matches!(o, Outcome::Loaded)).count();
    let mut refused: Vec<&str> =
        results.iter().filter_map(|(_, o)| if let Outcome::Refused(c) = o { Some(c.as_str()) } else { None }).collect();
    refused.sort_unstable();
    let bugs: Vec<String> = results
        .iter()
        .filter_map(|(seed, o)| {
            if let Outcome::Bug(why) = o {
                Some(format!("seed {seed} (target/verifier-fuzz/seed-{seed}.rbt): {why}"))
            } else {
                None
            }
        })
        .collect();
    eprintln!(
        "verifier fuzz: {programs} programs from seed {first}: {loaded} loaded, {} refused {refused:?}, {} bugs",
        refused.len(),
        bugs.len()
    );
    assert!(bugs.is_empty(), "{} of {programs} programs hit compiler bugs:\n\n{}", bugs.len(), bugs.join("\n\n"));
    // The generator aims at valid programs; most must get through the checker or the hunt proves little.
    assert!(loaded * 4 >= results.len() * 3, "only {loaded} of {programs} programs loaded; refused: {refused:?}");
}
