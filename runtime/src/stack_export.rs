//! Maps keyed by stacks, exported: `-f folded` prints them as folded stacks instead of bpftrace's
//! text, and `--folded FILE`, `--flamegraph FILE.svg` and `--pprof FILE.pb.gz` write them at
//! exit. A map such as `@offcpu_us[kstack, ustack, comm] = sum(...)` becomes one sample per key:
//! the key's other parts (`comm`) lead, then the user stack, then the kernel stack, each from
//! root to leaf. The sample type is named after the map: `@offcpu_us` gives `offcpu` in
//! `microseconds` (suffixes `_ns`, `_us`, `_ms`, `_s`), a count gives `count`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use export::{FlameGraphOptions, FoldedOptions, Frame, Label, Profile, Sample, ValueType};

use crate::output::{MapData, MapDump, StackText, Value};

/// What to export, from the command line.
#[derive(Default, Clone)]
pub struct ExportOptions {
    /// `-f folded`: stack maps print as folded lines at exit.
    pub folded_stdout: bool,
    pub folded: Option<PathBuf>,
    pub flamegraph: Option<PathBuf>,
    pub pprof: Option<PathBuf>,
    /// The script's name, for titles.
    pub script_name: String,
    pub script: String,
    /// When tracing started (Unix time, ns) and how long it ran.
    pub started_unix_ns: i64,
}

impl ExportOptions {
    pub fn any_file(&self) -> bool {
        self.folded.is_some() || self.flamegraph.is_some() || self.pprof.is_some()
    }
}

/// Whether a map's keys hold stacks.
pub fn has_stacks(dump: &MapDump) -> bool {
    match &dump.data {
        MapData::Values(entries) => entries.iter().any(|(k, _)| k.0.iter().any(|p| matches!(p, Value::Stack(_)))),
        _ => false,
    }
}

/// The profile of every stack-keyed map among `dumps`.
pub fn profile(dumps: &[MapDump], options: &ExportOptions, duration_ns: i64) -> Option<Profile> {
    let stack_maps: Vec<&MapDump> = dumps.iter().filter(|d| has_stacks(d)).collect();
    let first = stack_maps.first()?;
    let (kind, unit) = value_type(&first.name);
    let mut samples = Vec::new();
    for dump in &stack_maps {
        let MapData::Values(entries) = &dump.data else { continue };
        for (key, value) in entries {
            samples.push(sample(&key.0, value));
        }
    }
    let title = match kind.as_str() {
        "offcpu" | "offwake" => "Off-CPU time".to_owned(),
        "samples" => "CPU samples".to_owned(),
        _ => format!("{} ({})", first.name, options.script_name),
    };
    Some(Profile {
        title,
        script: Some(options.script.clone()),
        sample_type: ValueType::new(kind, unit),
        period: None,
        time_nanos: options.started_unix_ns,
        duration_nanos: duration_ns,
        modules: Vec::new(),
        samples,
    })
}

/// `@offcpu_us` -> (`offcpu`, `microseconds`); a count -> (`NAME` or `samples`, `count`).
fn value_type(map_name: &str) -> (String, String) {
    let name = map_name.trim_start_matches('@');
    for (suffix, unit) in [("_ns", "nanoseconds"), ("_us", "microseconds"), ("_ms", "milliseconds"), ("_s", "seconds")]
    {
        if let Some(kind) = name.strip_suffix(suffix) {
            return (kind.to_owned(), unit.to_owned());
        }
    }
    let kind = if name.is_empty() { "samples" } else { name };
    (kind.to_owned(), "count".to_owned())
}

fn sample(key: &[Value], value: &Value) -> Sample {
    let mut sample = Sample {
        value: match value {
            Value::UInt(v) => *v,
            Value::Int(v) => u64::try_from(*v).unwrap_or(0),
            _ => 0,
        },
        ..Sample::default()
    };
    let mut pid = None;
    for part in key {
        match part {
            Value::Stack(stack) if stack.user && sample.user.is_empty() => {
                sample.user = frames(stack);
                pid = Some(stack.pid);
            }
            Value::Stack(stack) if !stack.user && sample.kernel.is_empty() => sample.kernel = frames(stack),
            // A second stack of a kind (offwaketime's waker) leads, root first, after a marker.
            Value::Stack(stack) => {
                sample.leading.push("--".to_owned());
                sample.leading.extend(frames(stack).into_iter().map(|f| f.name));
            }
            other => {
                let mut text = Vec::new();
                other.write_text(&mut text);
                let text = String::from_utf8_lossy(&text).into_owned();
                if matches!(other, Value::Str(_)) {
                    sample.labels.push(Label::comm(text.clone()));
                }
                sample.leading.push(text);
            }
        }
    }
    if let Some(pid) = pid.filter(|&p| p != 0) {
        sample.labels.push(Label::pid(pid));
    }
    sample
}

/// A stack's frames, root first; functions inlined at an address follow the frame they were
/// inlined into.
fn frames(stack: &StackText) -> Vec<Frame> {
    let mut out = Vec::new();
    for detail in stack.detail.iter().rev() {
        let mut frame =
            Frame::new(detail.name.clone().unwrap_or_else(|| format!("0x{:x}", detail.addr))).at_address(detail.addr);
        if let Some(module) = &detail.module {
            frame = frame.in_module(module.clone());
        }
        if let (Some(file), Some(line)) = (&detail.file, detail.line) {
            frame = frame.at_line(file.clone(), line);
        }
        out.push(frame);
        for inlined in &detail.inlined {
            let mut frame = Frame::new(inlined.name.clone()).at_address(detail.addr).inlined();
            if let (Some(file), Some(line)) = (&inlined.file, inlined.line) {
                frame = frame.at_line(file.clone(), line);
            }
            out.push(frame);
        }
    }
    out
}

/// `-f folded`: a stack map's folded lines.
pub fn write_folded_map(out: &mut dyn Write, dump: &MapDump) -> io::Result<()> {
    let options = ExportOptions::default();
    let Some(profile) = profile(std::slice::from_ref(dump), &options, 0) else { return Ok(()) };
    export::write_folded(&profile, &FoldedOptions::default(), out).map_err(io::Error::other)
}

/// Writes the files the options ask for; reports each one written on stderr.
pub fn write_files(
    dumps: &[MapDump],
    options: &ExportOptions,
    duration_ns: i64,
    modules: Vec<(String, Option<String>)>,
) -> Result<(), String> {
    if !options.any_file() {
        return Ok(());
    }
    let Some(mut profile) = profile(dumps, options, duration_ns) else {
        return Err("no map keyed by stacks to export (e.g. @[kstack, comm] = count())".into());
    };
    // Build ids let pprof match frames to the binaries' debug files.
    profile.modules = modules.into_iter().map(|(path, build_id)| export::Module { path, build_id }).collect();
    let create = |path: &PathBuf| {
        File::create(path).map(BufWriter::new).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = &options.folded {
        export::write_folded(&profile, &FoldedOptions::default(), create(path)?).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &options.flamegraph {
        match export::write_flame_graph(&profile, &FlameGraphOptions::default(), create(path)?) {
            Ok(()) => {}
            Err(export::ExportError::NoSamples) => return Err(format!("{}: no samples to draw", path.display())),
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some(path) = &options.pprof {
        export::write_pprof(&profile, create(path)?).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::MapKey;

    fn stack(user: bool, names: &[&str]) -> Value {
        Value::Stack(StackText {
            frames: names.iter().map(|n| format!("{n}+0")).collect(),
            user,
            pid: if user { 42 } else { 0 },
            detail: names
                .iter()
                .enumerate()
                .map(|(i, n)| runtime::symbols::Frame {
                    addr: i as u64 + 1,
                    name: Some((*n).to_owned()),
                    ..Default::default()
                })
                .collect(),
            ..StackText::default()
        })
    }

    #[test]
    fn a_stack_map_folds_comm_then_user_then_kernel_root_first() {
        let dump = MapDump {
            name: "@offcpu_us".into(),
            data: MapData::Values(vec![(
                MapKey(vec![
                    stack(false, &["schedule", "do_nanosleep"]),
                    stack(true, &["nanosleep", "main"]),
                    Value::str("sleeper"),
                ]),
                Value::UInt(200),
            )]),
        };
        let mut out = Vec::new();
        write_folded_map(&mut out, &dump).expect("folds");
        assert_eq!(String::from_utf8_lossy(&out), "sleeper;main;nanosleep;do_nanosleep;schedule 200\n");
        let p = profile(&[dump], &ExportOptions::default(), 0).expect("profile");
        assert_eq!(p.sample_type, ValueType::new("offcpu", "microseconds"));
        assert!(p.samples[0].labels.contains(&Label::pid(42)));
    }
}
