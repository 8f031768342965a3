//! Continuous export (`--export URL --export-every DURATION`), end to end: `-t profile` over a
//! busy loop with `--export file://DIR --export-every 1s` writes one pprof per interval, named
//! by its start time, each read by the real `go tool pprof`; the intervals add up to exactly
//! what the run's `--pprof` file holds at exit (the maps are read each interval, not cleared,
//! so nothing between two reads is lost), and the busy loop is in the intervals it ran in. Bad
//! destinations and intervals are errors before anything is attached.
//!
//! OTLP/HTTP (`--export otlp+http://HOST:PORT`): received by `data/otlp/receiver.py`, which
//! decodes each request with the OpenTelemetry project's own Python messages (opentelemetry-proto
//! from PyPI, in `target/otlp-venv`, which `.ci/run` makes). A real OpenTelemetry Collector is
//! built from Go modules, which this machine cannot reach, so the receiver stands in for it.
//! Kernel tier.

mod common_rbt;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
        (&["--export-every", "1s"], "--export-every and --service need --export URL"),
    ];
    for (args, want) in cases {
        let out = Command::new(rbt()).args(args).args(["-e", "BEGIN { exit(); }"]).output().expect("rbt runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(want), "{args:?}: wanted {want:?} in {}", text(&out.stderr));
        assert!(!text(&out.stdout).contains("Attaching"), "{args:?}");
    }
}

/// `data/otlp/receiver.py` on a free port, answering 503 to its first `fail_first` requests:
/// the process, its port and the file it appends each request's summary to.
fn receiver(name: &str, fail_first: u32) -> (Child, u16, PathBuf) {
    let python = tests::workspace().join("target/otlp-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: python3 -m venv target/otlp-venv && target/otlp-venv/bin/pip install opentelemetry-proto \
         (.ci/run makes it)",
        python.display()
    );
    let out = std::env::temp_dir().join(format!("rbt-otlp-{name}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new(python)
        .arg(tests::workspace().join("tests/data/otlp/receiver.py"))
        .arg(&out)
        .arg(fail_first.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the receiver starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("the receiver prints its port");
    let port = line.trim().parse().unwrap_or_else(|_| panic!("the receiver said {line:?}, not its port"));
    (child, port, out)
}

/// Each request the receiver decoded.
fn received(file: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// The resources of every request whose `process.pid` is `pid`.
fn resources_of(requests: &[serde_json::Value], pid: u32) -> Vec<&serde_json::Value> {
    requests
        .iter()
        .flat_map(|r| r["resources"].as_array().into_iter().flatten())
        .filter(|r| r["attributes"]["process.pid"].as_u64() == Some(u64::from(pid)))
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("the hostname").trim().to_owned()
}

/// `-t profile` over a busy loop, exported over OTLP/HTTP every second: every interval arrives
/// (the first after a 503 and a retry) with the bearer token, one resource per process with its
/// attributes, the busy loop's samples in its own; the intervals follow each other without
/// overlapping, and their samples add up to the run's `--pprof` exactly.
#[test]
fn otlp_http_intervals_arrive_per_process_and_add_up() {
    require_bpf();
    let (mut server, port, file) = receiver("profile", 1);
    let whole = std::env::temp_dir().join(format!("rbt-otlp-whole-{}.pb.gz", std::process::id()));
    let mut spin =
        Command::new(workload()).args(["nap", "300000", "1", "spin", "3000"]).spawn().expect("the loop starts");
    let out = Command::new(rbt())
        .env("RBT_EXPORT_AUTHORIZATION", "Bearer rbt-test-token")
        .args(["-t", "profile", "--export", &format!("otlp+http://127.0.0.1:{port}"), "--export-every", "1s"])
        .arg("--pprof")
        .arg(&whole)
        .args(["-c", "sleep 3.5"])
        .output()
        .expect("rbt runs");
    let pid = spin.id();
    spin.wait().expect("the loop ends");
    let requests = received(&file);
    server.kill().expect("the receiver stops");
    let _ = server.wait();
    assert!(out.status.success(), "rbt failed:\n{}", text(&out.stderr));
    // The 503 was retried, not dropped, and so not warned of.
    assert!(!text(&out.stderr).contains("WARNING: export"), "{}", text(&out.stderr));
    // 3.5 s: three whole intervals and the rest at exit (the first of them retried).
    assert!((3..=5).contains(&requests.len()), "{} requests", requests.len());
    let mut sum = 0;
    let mut previous_end = 0;
    for request in &requests {
        assert_eq!(request["path"], "/v1development/profiles");
        assert_eq!(request["content_type"], "application/x-protobuf");
        assert_eq!(request["authorization"], "Bearer rbt-test-token");
        let resources = request["resources"].as_array().expect("resources");
        let profiles: Vec<&serde_json::Value> =
            resources.iter().flat_map(|r| r["profiles"].as_array().into_iter().flatten()).collect();
        let first = profiles.first().expect("a profile");
        assert_eq!((first["type"].as_str(), first["unit"].as_str()), (Some("samples"), Some("count")));
        let start = first["time_unix_nano"].as_u64().expect("a time");
        assert!(start >= previous_end, "intervals overlap: {start} < {previous_end}");
        previous_end = start + first["duration_nano"].as_u64().expect("a duration");
        for p in &profiles {
            assert_eq!(p["time_unix_nano"].as_u64(), Some(start), "one interval per request");
            sum += p["total"].as_u64().expect("a total");
        }
        for r in resources {
            assert_eq!(r["attributes"]["host.name"].as_str(), Some(hostname().as_str()));
        }
    }
    assert_eq!(sum, total(&whole), "the intervals against the whole run");
    let mine = resources_of(&requests, pid);
    assert!(!mine.is_empty(), "no resource for the busy loop's pid {pid}");
    for r in &mine {
        assert_eq!(r["attributes"]["process.executable.name"], "rbt-workload");
        assert_eq!(r["attributes"]["service.name"], "rbt-workload");
    }
    let samples: u64 = mine
        .iter()
        .flat_map(|r| r["profiles"].as_array().into_iter().flatten())
        .map(|p| p["total"].as_u64().unwrap_or(0))
        .sum();
    // 3 s of one CPU at 99 Hz.
    assert!((200..=330).contains(&samples), "{samples} samples of the busy loop");
    assert!(requests.iter().any(|r| r["build_ids"].as_array().is_some_and(|b| !b.is_empty())), "no build ids");
}

/// `-t offcputime` over a sleeper, exported over OTLP/HTTP with `--service`: the sleeper's
/// nanosleep stacks carry about the time it slept (500 naps of 2 ms: a second, in
/// microseconds), under the service named.
#[test]
fn otlp_http_offcpu_carries_the_slept_time() {
    require_bpf();
    let (mut server, port, file) = receiver("offcpu", 0);
    let command = format!("{} nap 2000 500", workload().display());
    let out = Command::new(rbt())
        .args(["-t", "offcputime"])
        .args(["--export", &format!("otlp+http://127.0.0.1:{port}"), "--export-every", "1s", "--service", "naps"])
        .args(["-c", &command])
        .output()
        .expect("rbt runs");
    let requests = received(&file);
    server.kill().expect("the receiver stops");
    let _ = server.wait();
    assert!(out.status.success(), "rbt failed:\n{}", text(&out.stderr));
    let mine: Vec<&serde_json::Value> = requests
        .iter()
        .flat_map(|r| r["resources"].as_array().into_iter().flatten())
        .filter(|r| r["attributes"]["process.executable.name"] == "rbt-workload")
        .collect();
    assert!(!mine.is_empty(), "no resource for the sleeper");
    let mut slept = 0;
    for r in &mine {
        assert_eq!(r["attributes"]["service.name"], "naps");
        for p in r["profiles"].as_array().into_iter().flatten() {
            assert_eq!((p["type"].as_str(), p["unit"].as_str()), (Some("offcpu"), Some("microseconds")));
            for stack in p["stacks"].as_array().into_iter().flatten() {
                let frames = stack["frames"].as_array().expect("frames");
                if frames.iter().any(|f| f.as_str().is_some_and(|n| n.contains("nanosleep"))) {
                    slept += stack["value"].as_u64().unwrap_or(0);
                }
            }
        }
    }
    assert!((1_000_000..=1_400_000).contains(&slept), "{slept} us in nanosleep for 500 naps of 2 ms");
}

/// A backend that is down: tracing goes on and ends as asked, one warning says so, and at exit
/// rbt says how many profiles were not delivered.
#[test]
fn a_backend_that_is_down_is_warned_of_and_counted() {
    require_bpf();
    // A port nothing listens on.
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port();
    let out = Command::new(rbt())
        .args(["-e", "profile:hz:99 { @[kstack, comm] = count(); } interval:ms:1500 { exit(); }"])
        .args(["--export", &format!("otlp+http://127.0.0.1:{port}"), "--export-every", "500ms"])
        .output()
        .expect("rbt runs");
    assert!(out.status.success(), "rbt failed:\n{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("is not answering").count(), 1, "one warning while it is down:\n{stderr}");
    assert!(stderr.contains("profiles (") && stderr.contains("were not delivered"), "{stderr}");
    // The maps still print at exit.
    assert!(text(&out.stdout).contains("@["), "{}", text(&out.stdout));
}

/// `--export pyroscope://HOST:PORT`: each interval is POSTed to `/ingest` as a gzipped pprof
/// with the application's name (`SERVICE.KIND{hostname=HOST}`) and the interval's seconds, as
/// Grafana Pyroscope takes it; `data/pyroscope/ingest.py` keeps each body, which `go tool
/// pprof` reads, and the intervals add up to the run's `--pprof`.
#[test]
fn pyroscope_ingest_gets_a_pprof_per_interval() {
    require_bpf();
    let dir = std::env::temp_dir().join(format!("rbt-pyroscope-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make the ingest directory");
    let mut server = Command::new("python3")
        .arg(tests::workspace().join("tests/data/pyroscope/ingest.py"))
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the ingest server starts");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("piped")).read_line(&mut line).expect("the server prints its port");
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the server said {line:?}"));
    let whole = dir.with_extension("whole.pb.gz");
    let out = Command::new(rbt())
        .args(["-t", "profile", "--export", &format!("pyroscope://127.0.0.1:{port}"), "--export-every", "1s"])
        .args(["--service", "box-cpu", "--pprof"])
        .arg(&whole)
        .args(["-c", "sleep 2.5"])
        .output()
        .expect("rbt runs");
    server.kill().expect("the server stops");
    let _ = server.wait();
    assert!(out.status.success(), "rbt failed:\n{}", text(&out.stderr));
    let mut bodies: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read the ingest directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .collect();
    bodies.sort();
    assert!((2..=4).contains(&bodies.len()), "{bodies:?}");
    let mut sum = 0;
    for body in &bodies {
        sum += total(body);
        let query: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(body.with_extension("").with_extension("json")).expect("the query"),
        )
        .expect("JSON");
        assert_eq!(query["name"].as_str(), Some(format!("box-cpu.samples{{hostname={}}}", hostname()).as_str()));
        assert_eq!(query["format"], "pprof");
        assert_eq!(query["content_type"], "application/octet-stream");
        let from: u64 = query["from"].as_str().and_then(|f| f.parse().ok()).expect("from");
        let until: u64 = query["until"].as_str().and_then(|u| u.parse().ok()).expect("until");
        assert!(from < until, "{query}");
    }
    assert_eq!(sum, total(&whole), "the intervals against the whole run");
}
