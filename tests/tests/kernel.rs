//! Kernel end-to-end tests: each `tests/data/run/NAME.rbt` runs under the real rbt binary as root
//! (its `// run:` line gives the arguments, usually `-c "{workload} ..."`, and `// params:` the
//! positional parameters after the script), and stdout must equal
//! `NAME.out` byte for byte. `RBT_BLESS=1` re-records. Every case runs twice: with events over
//! the BPF ring buffer, and over per-CPU perf buffers (`RBT_EVENTS=perf`), which rbt uses on
//! kernels older than 5.8.

mod common_rbt;

use common_rbt::*;

#[test]
fn run_cases() {
    run_all("ringbuf");
}

#[test]
fn run_cases_over_perf_buffers() {
    run_all("perf");
}

fn run_all(transport: &str) {
    require_bpf();
    let mut failures = Vec::new();
    let cases = cases("run");
    assert!(!cases.is_empty(), "no kernel cases found");
    for case in &cases {
        let source = std::fs::read_to_string(case).expect("read case");
        // `// params:` words follow the script, as positional parameters (as in the VM runs).
        let params = tests::case_params(&source, &workload());
        let out = std::process::Command::new(rbt())
            .args(case_args(&source))
            .arg(case)
            .args(&params)
            .env("RBT_EVENTS", transport)
            .output()
            .expect("rbt runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            failures.push(format!("{} ({transport}): rbt failed ({}):\n{stderr}", case.display(), out.status));
            continue;
        }
        if let Some(f) = check_expected(&case.with_extension("out"), &stdout) {
            failures.push(format!("({transport}) {f}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} kernel cases failed over {transport}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
