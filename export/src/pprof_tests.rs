//! The pprof encoder's tests: profiles encoded, decoded back with the test reader, and checked
//! for what pprof itself checks (ids nonzero and unique, references resolved, `string_table[0]`).

use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::*;
use crate::protobuf::read::{fields, packed};
use crate::{Label, Module, Period};

/// A decoded location: mapping id, address, lines `(function id, line)`.
type DecodedLocation = (u64, u64, Vec<(u64, i64)>);

/// A decoded profile, strings resolved.
#[derive(Debug, Default)]
struct Decoded {
    strings: Vec<String>,
    sample_types: Vec<(String, String)>,
    /// Each sample's stack leaf first, a location's lines innermost first, as
    /// `function[@file:line]`, and its value and labels (`key=text` or `key=num[ unit]`).
    samples: Vec<(Vec<String>, i64, Vec<String>)>,
    /// id -> (filename, build id, has_functions, has_filenames, has_line_numbers, has_inline_frames)
    mappings: HashMap<u64, (String, String, [bool; 4])>,
    /// id -> (mapping id, address, lines)
    locations: HashMap<u64, DecodedLocation>,
    /// id -> (name, system name, filename)
    functions: HashMap<u64, (String, String, String)>,
    time_nanos: i64,
    duration_nanos: i64,
    period_type: (String, String),
    period: i64,
    comments: Vec<String>,
}

fn signed(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

fn decode(bytes: &[u8]) -> Decoded {
    let top = fields(bytes);
    let mut decoded = Decoded::default();
    for (field, value) in &top {
        if *field == 6 {
            decoded.strings.push(String::from_utf8(value.bytes().to_vec()).expect("UTF-8 strings"));
        }
    }
    assert_eq!(decoded.strings.first().map(String::as_str), Some(""), "string_table[0] must be \"\"");
    let strings = decoded.strings.clone();
    let string = |index: u64| strings[usize::try_from(index).expect("index")].clone();
    let value_type = |bytes: &[u8]| {
        let mut pair = (String::new(), String::new());
        for (field, value) in fields(bytes) {
            match field {
                1 => pair.0 = string(value.varint()),
                2 => pair.1 = string(value.varint()),
                other => panic!("ValueType field {other}"),
            }
        }
        pair
    };
    let mut raw_samples = Vec::new();
    for (field, value) in &top {
        match field {
            1 => decoded.sample_types.push(value_type(value.bytes())),
            2 => raw_samples.push(value.bytes()),
            3 => {
                let (mut id, mut filename, mut build_id, mut flags) = (0, String::new(), String::new(), [false; 4]);
                for (field, value) in fields(value.bytes()) {
                    match field {
                        1 => id = value.varint(),
                        5 => filename = string(value.varint()),
                        6 => build_id = string(value.varint()),
                        7..=10 => flags[field as usize - 7] = value.varint() == 1,
                        other => panic!("Mapping field {other}"),
                    }
                }
                assert_ne!(id, 0, "mapping id 0");
                assert!(decoded.mappings.insert(id, (filename, build_id, flags)).is_none(), "mapping id {id} twice");
            }
            4 => {
                let (mut id, mut mapping, mut address, mut lines) = (0, 0, 0, Vec::new());
                for (field, value) in fields(value.bytes()) {
                    match field {
                        1 => id = value.varint(),
                        2 => mapping = value.varint(),
                        3 => address = value.varint(),
                        4 => {
                            let mut line = (0, 0);
                            for (field, value) in fields(value.bytes()) {
                                match field {
                                    1 => line.0 = value.varint(),
                                    2 => line.1 = signed(value.varint()),
                                    other => panic!("Line field {other}"),
                                }
                            }
                            lines.push(line);
                        }
                        other => panic!("Location field {other}"),
                    }
                }
                assert_ne!(id, 0, "location id 0");
                assert!(decoded.locations.insert(id, (mapping, address, lines)).is_none(), "location id {id} twice");
            }
            5 => {
                let (mut id, mut names) = (0, (String::new(), String::new(), String::new()));
                for (field, value) in fields(value.bytes()) {
                    match field {
                        1 => id = value.varint(),
                        2 => names.0 = string(value.varint()),
                        3 => names.1 = string(value.varint()),
                        4 => names.2 = string(value.varint()),
                        other => panic!("Function field {other}"),
                    }
                }
                assert_ne!(id, 0, "function id 0");
                assert!(decoded.functions.insert(id, names).is_none(), "function id {id} twice");
            }
            6 => {}
            9 => decoded.time_nanos = signed(value.varint()),
            10 => decoded.duration_nanos = signed(value.varint()),
            11 => decoded.period_type = value_type(value.bytes()),
            12 => decoded.period = signed(value.varint()),
            13 => decoded.comments.extend(packed(value.bytes()).into_iter().map(string)),
            other => panic!("Profile field {other} is never written"),
        }
    }
    for (mapping, _, lines) in decoded.locations.values() {
        assert!(*mapping == 0 || decoded.mappings.contains_key(mapping), "mapping {mapping} missing");
        for (function, _) in lines {
            assert!(decoded.functions.contains_key(function), "function {function} missing");
        }
    }
    for bytes in raw_samples {
        let (mut stack, mut values, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for (field, value) in fields(bytes) {
            match field {
                1 => {
                    for id in packed(value.bytes()) {
                        let (_, _, lines) =
                            decoded.locations.get(&id).unwrap_or_else(|| panic!("location {id} missing"));
                        for (function, line) in lines {
                            let (name, _, file) = &decoded.functions[function];
                            stack.push(if file.is_empty() { name.clone() } else { format!("{name}@{file}:{line}") });
                        }
                    }
                }
                2 => values.extend(packed(value.bytes()).into_iter().map(signed)),
                3 => {
                    let (mut key, mut text, mut num, mut unit) = (String::new(), String::new(), 0, String::new());
                    for (field, value) in fields(value.bytes()) {
                        match field {
                            1 => key = string(value.varint()),
                            2 => text = string(value.varint()),
                            3 => num = signed(value.varint()),
                            4 => unit = string(value.varint()),
                            other => panic!("Label field {other}"),
                        }
                    }
                    labels.push(if text.is_empty() {
                        format!("{key}={num}{}", if unit.is_empty() { String::new() } else { format!(" {unit}") })
                    } else {
                        format!("{key}={text}")
                    });
                }
                other => panic!("Sample field {other}"),
            }
        }
        assert_eq!(values.len(), decoded.sample_types.len(), "one value per sample type");
        decoded.samples.push((stack, values[0], labels));
    }
    decoded
}

fn frames(names: &[&str]) -> Vec<Frame> {
    names.iter().map(|name| Frame::new(*name)).collect()
}

fn offcpu_profile() -> Profile {
    let sample = |comm: &str, pid: u32, user: &[&str], kernel: &[&str], value| Sample {
        leading: vec![comm.to_string()],
        user: frames(user),
        kernel: frames(kernel),
        value,
        labels: vec![Label::pid(pid), Label::comm(comm)],
    };
    Profile {
        title: "Off-CPU time".to_string(),
        script: Some("t:sched:sched_switch { @[kstack, ustack, comm] = sum(nsecs - $t); }".to_string()),
        sample_type: ValueType::new("offcpu", "nanoseconds"),
        period: None,
        time_nanos: 1_700_000_000_000_000_000,
        duration_nanos: 5_000_000_000,
        modules: Vec::new(),
        samples: vec![
            sample("sshd", 100, &["main", "server_loop"], &["do_syscall_64", "schedule"], 30),
            sample("bash", 200, &["main", "read"], &["ksys_read", "schedule"], 7),
            sample("sshd", 100, &["main", "server_loop"], &["do_syscall_64", "schedule"], 12),
            sample("sshd", 101, &["main", "server_loop"], &["do_syscall_64", "schedule"], 1),
            sample("kworker/0:1", 9, &[], &["worker_thread", "schedule"], u64::MAX),
        ],
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(ToString::to_string).collect()
}

#[test]
fn samples_leaf_first_merged_with_labels() {
    let decoded = decode(&encode_pprof(&offcpu_profile()));
    assert_eq!(decoded.sample_types, vec![("offcpu".to_string(), "nanoseconds".to_string())]);
    let sshd = strings(&["schedule", "do_syscall_64", "server_loop", "main", "sshd"]);
    assert_eq!(
        decoded.samples,
        vec![
            (sshd.clone(), 42, strings(&["pid=100", "comm=sshd"])),
            (strings(&["schedule", "ksys_read", "read", "main", "bash"]), 7, strings(&["pid=200", "comm=bash"])),
            (sshd, 1, strings(&["pid=101", "comm=sshd"])),
            (strings(&["schedule", "worker_thread", "kworker/0:1"]), i64::MAX, strings(&["pid=9", "comm=kworker/0:1"])),
        ]
    );
    // One location and one function per distinct frame: `schedule` and `main` are shared.
    assert_eq!(decoded.locations.len(), 10);
    assert_eq!(decoded.functions.len(), 10);
    assert!(decoded.mappings.is_empty());
}

#[test]
fn metadata() {
    let mut profile = offcpu_profile();
    let decoded = decode(&encode_pprof(&profile));
    assert_eq!(decoded.time_nanos, 1_700_000_000_000_000_000);
    assert_eq!(decoded.duration_nanos, 5_000_000_000);
    assert_eq!(decoded.period_type, ("offcpu".to_string(), "nanoseconds".to_string()));
    assert_eq!(decoded.period, 1);
    assert_eq!(decoded.comments, vec!["Off-CPU time".to_string(), profile.script.clone().unwrap_or_default()]);
    let distinct: HashSet<&String> = decoded.strings.iter().collect();
    assert_eq!(distinct.len(), decoded.strings.len(), "strings are interned once");

    profile.period = Some(Period { kind: ValueType::new("cpu", "nanoseconds"), every: 10_101_010 });
    profile.sample_type = ValueType::new("samples", "count");
    let decoded = decode(&encode_pprof(&profile));
    assert_eq!(decoded.sample_types, vec![("samples".to_string(), "count".to_string())]);
    assert_eq!(decoded.period_type, ("cpu".to_string(), "nanoseconds".to_string()));
    assert_eq!(decoded.period, 10_101_010);
}

#[test]
fn inlined_frames_share_a_location_and_mappings_carry_build_ids() {
    let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    let app = "/usr/bin/app";
    let profile = Profile {
        sample_type: ValueType::new("samples", "count"),
        modules: vec![Module { path: app.to_string(), build_id: Some("8e1f0c3a".to_string()) }],
        samples: vec![
            Sample {
                user: vec![
                    Frame::new("main").in_module(app).at_address(0x1000).at_line("app.c", 10),
                    Frame::new("parse").in_module(app).at_address(0x2040).at_line("parse.c", 7),
                    Frame::new("next_token").in_module(app).at_address(0x2040).at_line("lex.h", 3).inlined(),
                    Frame::new("read").in_module(libc).at_address(0x7f00_0000_1234),
                ],
                kernel: vec![Frame::new("ksys_read").in_module("[kernel.kallsyms]").at_address(0xffff_ffff_8100_0000)],
                value: 3,
                ..Sample::default()
            },
            Sample {
                // The same function at another address is another location.
                user: vec![Frame::new("main").in_module(app).at_address(0x1008).at_line("app.c", 11)],
                value: 1,
                ..Sample::default()
            },
        ],
        ..Profile::default()
    };
    let decoded = decode(&encode_pprof(&profile));
    assert_eq!(
        decoded.samples[0].0,
        strings(&["ksys_read", "read", "next_token@lex.h:3", "parse@parse.c:7", "main@app.c:10"])
    );
    assert_eq!(decoded.samples[1].0, strings(&["main@app.c:11"]));
    assert_eq!(decoded.locations.len(), 5);
    assert_eq!(decoded.functions.len(), 5, "main is one function at two addresses");
    let mapping = |path: &str| {
        decoded
            .mappings
            .values()
            .find(|(filename, ..)| filename == path)
            .unwrap_or_else(|| panic!("no mapping {path}"))
            .clone()
    };
    assert_eq!(mapping(app), (app.to_string(), "8e1f0c3a".to_string(), [true, true, true, true]));
    assert_eq!(mapping(libc), (libc.to_string(), String::new(), [true, false, false, false]));
    assert_eq!(mapping("[kernel.kallsyms]").2, [true, false, false, false]);
    let inlined = decoded.locations.values().find(|(_, address, _)| *address == 0x2040).expect("the inlined location");
    assert_eq!(inlined.2.len(), 2);
    assert_eq!(decoded.mappings.len(), 3);
}

#[test]
fn frame_runs_split_at_non_inlined_frames() {
    let run = |frames: &[Frame]| frame_runs(frames).iter().map(|run| run.len()).collect::<Vec<_>>();
    let plain = Frame::new("f");
    let inlined = Frame::new("g").inlined();
    assert_eq!(run(&[]), Vec::<usize>::new());
    assert_eq!(run(&[plain.clone(), plain.clone()]), vec![1, 1]);
    assert_eq!(run(&[plain.clone(), inlined.clone(), inlined.clone(), plain.clone()]), vec![3, 1]);
    assert_eq!(run(&[inlined.clone(), plain]), vec![1, 1]);
}

#[test]
fn gzipped_on_disk_and_deterministic() {
    let profile = offcpu_profile();
    let mut file = Vec::new();
    write_pprof(&profile, &mut file).expect("writing to a Vec");
    assert_eq!(file[..2], [0x1f, 0x8b], "gzip magic");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&file[..]).read_to_end(&mut raw).expect("gunzip");
    assert_eq!(raw, encode_pprof(&profile));
    assert_eq!(encode_pprof(&profile), encode_pprof(&offcpu_profile()));
}

#[test]
fn empty_profile_is_still_valid() {
    let decoded = decode(&encode_pprof(&Profile::default()));
    assert_eq!(decoded.sample_types, vec![(String::new(), String::new())]);
    assert!(decoded.samples.is_empty());
}
