//! Continuous export (`--export URL --export-every DURATION`), end to end: `-t profile` over a
//! busy loop with `--export file://DIR --export-every 1s` writes one pprof per interval, named
//! by its start time, each read by the real `go tool pprof`; the intervals add up to exactly
//! what the run's `--pprof` file holds at exit (the maps are read each interval, not cleared,
//! so nothing between two reads is lost), and the busy loop is in the intervals it ran in. Bad
//! destinations and intervals are errors before anything is attached. Kernel tier.

mod common_rbt;

use std::path::Path;
use std::process::Command;

use common_rbt::{rbt, require_bpf, text, workload};

/// `go tool pprof ARGS FILE`'s output; panics with the reason when it cannot run.
fn pprof(args: &[&str], file: &Path) -> String {
    let out = Command::new("go").args(["tool", "pprof"]).args(args).arg(file).output().unwrap_or_else(|e| {
        panic!("cannot run `go tool pprof` ({e}); apt-get install -y golang-go (.ci/run installs it)")
    });
    assert!(out.status.success(), "go tool pprof {args:?} {}: {}", file.display(), text(&out.stderr));
    text(&out.stdout)
}

/// The samples a profile holds: `-top`'s "of N total".
fn total(file: &Path) -> u64 {
    let top = pprof(&["-top"], file);
    top.split(" total")
        .next()
        .and_then(|head| head.rsplit("of ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total in {}:\n{top}", file.display()))
}

#[test]
fn each_interval_is_a_profile_and_they_add_up_to_the_whole_run() {
    require_bpf();
    let dir = std::env::temp_dir().join(format!("rbt-interval-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make the export directory");
    let whole = dir.with_extension("whole.pb.gz");
    let url = format!("file://{}", dir.display());
    let command = format!("{} spin 3500", workload().display());
    let out = Command::new(rbt())
        .args(["-t", "profile", "--export", &url, "--export-every", "1s", "--pprof"])
        .arg(&whole)
        .args(["-c", &command])
        .output()
        .expect("rbt runs");
    assert!(out.status.success(), "rbt failed:\n{}", text(&out.stderr));
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("read the export directory").map(|e| e.expect("an entry").path()).collect();
    files.sort();
    // 3.5 s of tracing: three whole intervals and the part left at exit.
    assert!((3..=5).contains(&files.len()), "{files:?}");
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // samples-20261207T184501.123Z.pb.gz
        assert!(name.starts_with("samples-2") && name.ends_with("Z.pb.gz") && name.len() == 34, "{name}");
    }
    let totals: Vec<u64> = files.iter().map(|f| total(f)).collect();
    assert_eq!(totals.iter().sum::<u64>(), total(&whole), "the intervals {totals:?} against the whole run");
    // A whole interval in the middle: about 99 samples a second on each CPU, and the loop's.
    let middle = &files[1];
    assert!(totals[1] >= 99, "{totals:?}");
    let traces = pprof(&["-traces"], middle);
    assert!(traces.contains("rbt-workload"), "the busy loop is not in {}:\n{traces}", middle.display());
    assert!(pprof(&["-top"], middle).contains("Type: samples"), "{}", middle.display());
}

#[test]
fn bad_destinations_and_intervals_are_errors_before_tracing() {
    let cases: [(&[&str], &str); 5] = [
        (&["--export", "gopher://host:70"], "cannot send profiles to gopher://"),
        (&["--export", "file://relative/dir"], "absolute directory"),
        (&["--export", "file:///nonexistent/rbt-dir"], "no such directory"),
        (&["--export", "file:///tmp", "--export-every", "5ms"], "at least 100ms"),
        (&["--export-every", "1s"], "--export-every needs --export URL"),
    ];
    for (args, want) in cases {
        let out = Command::new(rbt()).args(args).args(["-e", "BEGIN { exit(); }"]).output().expect("rbt runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(want), "{args:?}: wanted {want:?} in {}", text(&out.stderr));
        assert!(!text(&out.stdout).contains("Attaching"), "{args:?}");
    }
}
