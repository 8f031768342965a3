//! Checks every CFI row of real files against an independent decoder: binutils' `readelf
//! --debug-dump=frames-interp`, whose table gives each FDE's rows as text. At each row's address the
//! table must hold the rule the text implies, and NONE where an FDE ends and no other begins.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;

use common::{file_offset, read, rule_at, section, LIBC, PYTHON3};
use unwind::{build, CfiSource, KIND_CFA_RBP, KIND_CFA_RSP, KIND_END, KIND_NONE, KIND_PLT, KIND_SIGNAL, KIND_STOP};

type Rule = (u32, u32, Option<u8>);

/// What one readelf row says the table must hold; a CFA expression is the PLT's or unrepresentable,
/// which the text does not tell apart, so both are accepted there (PLT only inside `.plt`).
#[derive(Debug, PartialEq)]
enum Expected {
    Rule(Rule),
    PltOrStop,
}

/// One row of readelf's table: the address and the column values by register name.
struct InterpRow {
    address: u64,
    values: HashMap<String, String>,
}

struct Fde {
    /// The section and CIE offset.
    cie: (String, String),
    start: u64,
    end: u64,
    rows: Vec<InterpRow>,
}

#[derive(Default)]
struct Interp {
    /// Per section and CIE offset: whether it is a signal trampoline's ('S') and its initial row.
    cies: HashMap<(String, String), (bool, Option<InterpRow>)>,
    fdes: Vec<Fde>,
}

/// Splits a row into its columns; a register value such as `r9 (r9)` holds a space.
fn columns(line: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for token in line.split_whitespace() {
        match out.last_mut() {
            Some(last) if token.starts_with('(') => {
                last.push(' ');
                last.push_str(token);
            }
            _ => out.push(token.to_string()),
        }
    }
    out
}

// 00000018 0000000000000024 0000001c FDE cie=00000000 pc=0000000000026000..0000000000026360
//    LOC           CFA      ra
// 0000000000026000 rsp+16   c-8
fn parse_interp(text: &str) -> Interp {
    let mut interp = Interp::default();
    let mut header: Vec<String> = Vec::new();
    let mut current_cie: Option<(String, String)> = None;
    let mut section = String::new();
    for line in text.lines() {
        let fields = columns(line);
        if let Some(name) = line.strip_prefix("Contents of the ") {
            section = name.split_whitespace().next().unwrap_or_default().to_string();
        } else if fields.len() >= 4 && fields[3] == "CIE" {
            let signal = fields[4].trim_matches('"').contains('S');
            let key = (section.clone(), fields[0].clone());
            interp.cies.insert(key.clone(), (signal, None));
            current_cie = Some(key);
        } else if fields.len() >= 6 && fields[3] == "FDE" {
            let cie = (section.clone(), fields[4].trim_start_matches("cie=").to_string());
            let (start, end) = fields[5].trim_start_matches("pc=").split_once("..").expect("pc=START..END");
            let parse = |hex: &str| u64::from_str_radix(hex, 16).expect("a hex address");
            interp.fdes.push(Fde { cie, start: parse(start), end: parse(end), rows: Vec::new() });
            current_cie = None;
        } else if fields.first().is_some_and(|f| f == "LOC") {
            header = fields;
        } else if !fields.is_empty() && fields.len() == header.len() && fields[0].len() == 16 {
            let address = u64::from_str_radix(&fields[0], 16).expect("a hex LOC");
            let values = header[1..].iter().cloned().zip(fields[1..].iter().cloned()).collect();
            let row = InterpRow { address, values };
            match &current_cie {
                Some(cie) => interp.cies.get_mut(cie).expect("the CIE just read").1 = Some(row),
                None => interp.fdes.last_mut().expect("a row after an FDE header").rows.push(row),
            }
        }
    }
    interp
}

fn expected(values: &HashMap<String, String>, signal: bool) -> Expected {
    let stop = Expected::Rule((KIND_STOP, 0, None));
    if signal {
        return Expected::Rule((KIND_SIGNAL, 0, None));
    }
    match values.get("ra").map(String::as_str) {
        Some("u") => return Expected::Rule((KIND_END, 0, None)),
        Some("c-8") => {}
        _ => return stop,
    }
    let cfa = &values["CFA"];
    if cfa == "exp" {
        return Expected::PltOrStop;
    }
    let kind = match cfa.split_once('+') {
        Some(("rsp", _)) => KIND_CFA_RSP,
        Some(("rbp", _)) => KIND_CFA_RBP,
        _ => return stop,
    };
    let Some(offset) = cfa.split_once('+').and_then(|(_, n)| n.parse::<u32>().ok()).filter(|&n| n < 1 << 20) else {
        return stop;
    };
    let slot = match values.get("rbp").map(String::as_str) {
        None | Some("u" | "s") => None,
        Some(value) => {
            let saved = value.strip_prefix("c-").and_then(|n| n.parse::<u32>().ok());
            match saved.filter(|n| n % 8 == 0 && n / 8 <= 255 && *n > 0) {
                Some(n) => Some(u8::try_from(n / 8).expect("at most 255")),
                None => return stop,
            }
        }
    };
    Expected::Rule((kind, offset, slot))
}

/// Compares the table of one file (on disk at `path`, its bytes `data`) with readelf's rows, of
/// which there must be at least `min_rows`.
fn check_against_readelf(path: &str, data: &[u8], min_rows: usize) {
    // readelf 2.40 exits with 1 after dumping libc's frames, saying nothing; the dump is whole.
    let output = Command::new("readelf").args(["--debug-dump=frames-interp", path]).output();
    let text = output.map(|output| String::from_utf8_lossy(&output.stdout).into_owned()).unwrap_or_default();
    assert!(text.contains("Contents of the ."), "readelf --debug-dump=frames-interp {path}: {text}");
    let interp = parse_interp(&text);
    let table = build(data).expect("a table");
    let plt = section(data, ".plt");
    let starts: HashSet<u64> = interp.fdes.iter().map(|fde| fde.start).collect();
    let (mut checked, mut mismatches) = (0, Vec::new());
    for fde in interp.fdes.iter().filter(|fde| fde.start < fde.end) {
        let (signal, initial) = &interp.cies[&fde.cie];
        let rows: Vec<&InterpRow> =
            if fde.rows.is_empty() { initial.iter().collect() } else { fde.rows.iter().collect() };
        for (index, row) in rows.iter().enumerate() {
            // The CIE's own row stands at address 0; it holds from the FDE's start.
            let address = if fde.rows.is_empty() { fde.start } else { row.address };
            if rows.get(index + 1).is_some_and(|next| next.address == address) {
                continue; // a later row at the same address replaces this one
            }
            let offset = file_offset(data, address);
            let actual = rule_at(&table, offset);
            let in_plt = plt.is_some_and(|(start, end)| (start..end).contains(&offset));
            let ok = match expected(&row.values, *signal) {
                Expected::Rule(rule) => actual == rule,
                Expected::PltOrStop => actual == (KIND_STOP, 0, None) || (in_plt && actual.0 == KIND_PLT),
            };
            checked += 1;
            if !ok {
                mismatches.push(format!("{address:#x}: readelf {:?}, table {actual:?}", row.values));
            }
        }
        // The end may be the end of the segment, so it is reached from the start.
        let end = file_offset(data, fde.start) + (fde.end - fde.start);
        if !starts.contains(&fde.end) && rule_at(&table, end).0 != KIND_NONE {
            mismatches.push(format!("{:#x}: the end of an FDE is not NONE", fde.end));
        }
    }
    assert!(checked >= min_rows, "{path}: only {checked} rows checked");
    assert!(mismatches.is_empty(), "{path}: {} of {checked} rows differ:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn libc_matches_readelf() {
    check_against_readelf(LIBC, &read(LIBC), 20_000);
}

#[test]
fn python3_matches_readelf() {
    check_against_readelf(PYTHON3, &read(PYTHON3), 50_000);
}

#[test]
fn this_test_binary_matches_readelf() {
    // A Rust binary: LLVM's CFI rather than GCC's.
    let path = std::env::current_exe().unwrap();
    let path = path.to_str().unwrap();
    check_against_readelf(path, &read(path), 1000);
}

#[test]
fn vdso_matches_readelf() {
    let image = common::vdso_image();
    let path = std::env::temp_dir().join(format!("unwind-vdso-{}.so", std::process::id()));
    std::fs::write(&path, &image).unwrap();
    let path_text = path.to_str().unwrap().to_string();
    let result = std::panic::catch_unwind(|| check_against_readelf(&path_text, &image, 20));
    std::fs::remove_file(&path).unwrap();
    result.unwrap();
}

/// The C target built with `.debug_frame` for its own functions (crt1.o's `_start` keeps its
/// `.eh_frame`), with `extra` options, optionally with `.eh_frame` removed afterwards.
fn debug_frame_target(name: &str, extra: &[&str], strip_eh_frame: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-unwind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let binary = dir.join(name);
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/debug_frame_target.c");
    let options = ["-O2", "-g", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-o"];
    let out = Command::new("gcc").args(options).arg(&binary).args(extra).arg(&source).output();
    let out = out.expect("gcc runs (apt-get install gcc)");
    assert!(out.status.success(), "gcc failed: {}", String::from_utf8_lossy(&out.stderr));
    if strip_eh_frame {
        let sections = ["--remove-section=.eh_frame", "--remove-section=.eh_frame_hdr"];
        let out = Command::new("objcopy").args(sections).arg(&binary).output().expect("objcopy runs");
        assert!(out.status.success(), "objcopy failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    binary
}

#[test]
fn debug_frame_fills_what_eh_frame_leaves_and_matches_readelf() {
    for (name, extra) in [("plain", &[][..]), ("zlib", &["-gz=zlib"][..])] {
        let binary = debug_frame_target(name, extra, false);
        let data = std::fs::read(&binary).unwrap();
        let table = build(&data).unwrap();
        assert_eq!(table.source, CfiSource::EhFrame);
        check_against_readelf(binary.to_str().unwrap(), &data, 10);
        let main = file_offset(&data, common::symbol(&data, "main").unwrap());
        assert_eq!(rule_at(&table, main), (KIND_CFA_RSP, 8, None), "{name}");
    }
}

#[test]
fn debug_frame_alone_is_read() {
    let binary = debug_frame_target("no-eh-frame", &[], true);
    let data = std::fs::read(&binary).unwrap();
    let table = build(&data).unwrap();
    assert_eq!(table.source, CfiSource::DebugFrame);
    check_against_readelf(binary.to_str().unwrap(), &data, 8);
    let leaf = file_offset(&data, common::symbol(&data, "leaf").unwrap());
    assert_eq!(rule_at(&table, leaf), (KIND_CFA_RSP, 8, None));
    // _start's FDE went with .eh_frame: no CFI covers it any more.
    let entry = object::Object::entry(&common::elf(&data));
    assert_eq!(rule_at(&table, file_offset(&data, entry)).0, KIND_NONE);
}
