//! The REPL's `:` commands: inspecting and steering the session without writing probes.

use std::io::{self, Write};
use std::time::Duration;

use super::{entry, lock, Flow, ProbeGroup, Repl, Shared};
use crate::output::{self, OutputFormat};
use compiler::builtins::{BUILTINS, FUNCTIONS};
use compiler::probe_kind::ProbeKind;
use compiler::program::ErrorCounter;
use compiler::types::{align8, MapValue, Type};
use runtime::kernel::os;
use runtime::kernel::signals::{Signals, SIGINT};

/// Every command, for `:help` and completion.
pub const NAMES: [&str; 15] = [
    "help", "probes", "detach", "maps", "print", "clear", "zero", "delete", "watch", "list", "fields", "save", "load",
    "format", "quit",
];

const HELP: &str = "\
Type a probe block (`tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }`) or statements
that run once (`@limit = 100`). Entries keep running while you type; maps are shared by all.

  :probes                  attached probes: id, attach point, entry, hits, lost events
  :detach ID|all           detach a probe (its maps stay)
  :maps                    maps: name, key and value types, number of keys
  :print [@m ...]          print maps (all without names); :print @m TOP [DIV]
  :clear @m | :zero @m     remove every key | set every value to zero
  :delete @m[KEY, ...]     remove one key (integer and string literals)
  :watch @m [INTERVAL]     redraw a map every INTERVAL (1s, 500ms; default 1s) until Ctrl-C
  :list PATTERN            probes (or kernel types: struct task*) matching PATTERN, as rbt -l
  :fields PROBE|struct S   a tracepoint's fields, a kernel type's C definition, as rbt -lv
  :save FILE | :load FILE  write the live program as a script | attach a script as one entry
  :format text|json        output format of prints and maps
  :quit (or Ctrl-D)        run END blocks, print maps, detach everything, leave
  :help [COMMAND]          this text, or one command's
  :help types | KIND       the probe types, a line each | one (:help kprobe)
  :help functions | NAME   the builtins and functions, a line each | one (:help printf)

Tab completes probe types, tracepoints, args-> fields, kernel struct members (curtask->...),
builtins, functions, maps and commands.
Ctrl-C clears the line being typed.";

fn command_help(name: &str) -> Option<&'static str> {
    HELP.lines().find(|l| l.trim_start().starts_with(&format!(":{name}")) || l.contains(&format!("| :{name}")))
}

pub fn run(repl: &mut Repl, line: &str) -> Flow {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    let rest = line.trim_start().strip_prefix(name).unwrap_or("").trim();
    let result = match name {
        "help" | "h" | "?" => help(&args),
        "probes" => probes(repl),
        "detach" => detach(repl, &args),
        "maps" => maps(repl),
        "print" | "p" => print(repl, &args),
        "clear" | "zero" => clear_or_zero(repl, name, &args),
        "delete" => delete(repl, rest),
        "watch" => watch(repl, &args),
        "list" | "l" => list(repl, rest, false),
        "fields" => list(repl, rest, true),
        "save" => save(repl, rest),
        "load" => load(repl, rest),
        "format" => set_format(repl, &args),
        "quit" | "q" | "exit" => return Flow::Quit,
        "" => Err("a command follows the colon; :help lists them".to_owned()),
        other => Err(format!("unknown command :{other}; :help lists the commands")),
    };
    if let Err(message) = result {
        eprintln!("ERROR: {message}");
    }
    let _ = io::stdout().flush();
    Flow::Continue
}

fn help(args: &[&str]) -> Result<(), String> {
    let Some(topic) = args.first() else {
        println!("{HELP}");
        return Ok(());
    };
    let topic = topic.trim_start_matches(':');
    if let Some(line) = command_help(topic) {
        println!("{}", line.trim());
    } else if topic == "types" {
        print!("{}", compiler::probe_kind::help_table(""));
    } else if topic == "functions" {
        print!("{}", functions_help());
    } else if let Some(kind) = ProbeKind::from_alias(topic.trim_end_matches(':')) {
        println!("{}", probe_kind_help(kind));
    } else if let Some(text) = function_help(topic.trim_end_matches(['(', ')'])) {
        println!("{text}");
    } else {
        return Err(format!("no command, probe type or function {topic}; :help lists them"));
    }
    // `:help print` is the command's, and the function's too.
    if command_help(topic).is_some() {
        if let Some(text) = function_help(topic) {
            println!("{text}");
        }
    }
    Ok(())
}

/// `:help functions`: every builtin and function of `compiler::builtins`, a line each.
fn functions_help() -> String {
    let builtins: Vec<(&str, &str)> = BUILTINS.iter().map(|b| (b.name, b.doc)).collect();
    let functions: Vec<(&str, &str)> = FUNCTIONS.iter().map(|f| (f.signature, f.doc)).collect();
    let width = builtins.iter().chain(&functions).map(|(name, _)| name.len()).max().unwrap_or(0);
    let lines = |entries: &[(&str, &str)]| -> String {
        entries.iter().map(|(name, doc)| format!("  {name:<width$}  {doc}\n")).collect()
    };
    format!("Builtins:\n{}Functions:\n{}", lines(&builtins), lines(&functions))
}

/// `:help str`: a function's signature and documentation, or a builtin's.
fn function_help(name: &str) -> Option<String> {
    let mut lines = Vec::new();
    if let Some(b) = compiler::builtins::builtin(name) {
        lines.push(format!("{}  {}", b.name, b.doc));
    }
    if let Some(f) = compiler::builtins::function(name) {
        lines.push(format!("{}  {}", f.signature, f.doc));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `:help kprobe`: the kind's shape and when it fires, and its other names.
fn probe_kind_help(kind: ProbeKind) -> String {
    if !kind.is_supported() {
        return format!("{}: not supported by rbt yet", kind.shape());
    }
    format!("{}  {}", kind.shape(), kind.describe())
}

fn probes(repl: &Repl) -> Result<(), String> {
    let shared = lock(&repl.shared);
    if shared.groups.is_empty() {
        println!(
            "No probes yet: type a probe block, e.g. tracepoint:syscalls:sys_enter_openat {{ @[comm] = count(); }}"
        );
        return Ok(());
    }
    let width = shared.groups.iter().map(|g| g.spec.len()).max().unwrap_or(5).max(5);
    println!("{:>3}  {:<width$}  {:>5}  {:>10}  {:>6}  STATE", "ID", "PROBE", "ENTRY", "HITS", "LOST");
    for group in &shared.groups {
        let (hits, lost, state) = group_stats(&shared, group);
        println!("{:>3}  {:<width$}  {:>5}  {:>10}  {:>6}  {state}", group.id, group.spec, group.entry, hits, lost);
    }
    Ok(())
}

/// Hits (runs of the group's programs), lost events, and whether it is attached.
fn group_stats(shared: &Shared, group: &ProbeGroup) -> (String, u64, &'static str) {
    let session = &shared.session;
    let loaded = group.programs.iter().any(|&p| session.is_loaded(p));
    let hits: Option<u64> = group.programs.iter().map(|&p| session.run_count(p)).sum();
    let lost = group
        .programs
        .iter()
        .map(|&p| session.error_count_in_slot(ErrorCounter::LostEvents, (p as u32).min(super::PROBE_SLOTS - 1)))
        .sum();
    let hits = match (hits, group.final_hits) {
        (Some(h), _) => h.to_string(),
        (None, Some(h)) => h.to_string(),
        (None, None) => "-".to_owned(),
    };
    let kind = group.programs.first().map(|&p| &session.program.probes[p].attach);
    let ended = group.programs.iter().all(|p| shared.tracing.has_ended(*p));
    let state = match (group.detached, kind) {
        (true, _) => "detached",
        (false, Some(compiler::hir::AttachPoint::Begin)) => "ran",
        (false, Some(compiler::hir::AttachPoint::End)) if ended => "ran",
        (false, Some(compiler::hir::AttachPoint::End)) if loaded => "runs at exit",
        (false, _) if loaded => "attached",
        (false, _) => "stopped",
    };
    (hits, lost, state)
}

fn detach(repl: &Repl, args: &[&str]) -> Result<(), String> {
    let target = args.first().ok_or("usage: :detach ID|all")?;
    let mut shared = lock(&repl.shared);
    let ids: Vec<usize> = if *target == "all" {
        shared.groups.iter().filter(|g| !g.detached).map(|g| g.id).collect()
    } else {
        let id: usize = target.parse().map_err(|_| format!("{target} is not a probe id; :probes lists them"))?;
        if !shared.groups.iter().any(|g| g.id == id) {
            return Err(format!("no probe {id}; :probes lists them"));
        }
        vec![id]
    };
    for id in &ids {
        let Some(index) = shared.groups.iter().position(|g| g.id == *id) else { continue };
        let (hits, _, _) = group_stats(&shared, &shared.groups[index]);
        let programs = shared.groups[index].programs.clone();
        for p in programs {
            shared.session.detach(p);
        }
        let group = &mut shared.groups[index];
        group.final_hits = hits.parse().ok();
        group.detached = true;
    }
    println!("Detached {} probe{}.", ids.len(), if ids.len() == 1 { "" } else { "s" });
    Ok(())
}

/// A map's index by its name as written (`@x`, `@`).
fn map_index(shared: &Shared, name: &str) -> Result<usize, String> {
    let name = name.trim_end_matches(',');
    if !name.starts_with('@') {
        return Err(format!("{name} is not a map name (maps start with @)"));
    }
    shared
        .session
        .program
        .maps
        .iter()
        .position(|m| m.display_name() == name)
        .ok_or_else(|| format!("no map {name} in this session; :maps lists them"))
}

/// The value type as `:maps` shows it: bpftrace's name, with lhist's bounds.
pub fn value_kind(value: &MapValue) -> String {
    match value {
        MapValue::Lhist { min, max, step } => format!("lhist({min}, {max}, {step})"),
        other => other.describe(),
    }
}

fn maps(repl: &Repl) -> Result<(), String> {
    let shared = lock(&repl.shared);
    let maps = &shared.session.program.maps;
    if maps.is_empty() {
        println!("No maps yet.");
        return Ok(());
    }
    let rows: Vec<(String, String, String)> = maps
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let key = if m.key.is_empty() {
                String::new()
            } else {
                format!("[{}]", m.key.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            };
            let keys = shared.session.loaded_map(i).key_count().map_or_else(|e| format!("? ({e})"), |n| n.to_string());
            (format!("{}{key}", m.display_name()), value_kind(&m.value), keys)
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(3).max(3);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(5).max(5);
    println!("{:<w0$}  {:<w1$}  KEYS", "MAP", "VALUE");
    for (name, value, keys) in rows {
        println!("{name:<w0$}  {value:<w1$}  {keys}");
    }
    Ok(())
}

fn print(repl: &Repl, args: &[&str]) -> Result<(), String> {
    let shared = lock(&repl.shared);
    let format = shared.session.format;
    let mut out = Vec::new();
    let numbers: Vec<u32> = args.iter().skip(1).map_while(|a| a.parse().ok()).collect();
    if args.is_empty() {
        let dumps = shared.session.dump_maps().map_err(|e| e.to_string())?;
        output::write_all_maps(&mut out, format, &dumps).map_err(|e| e.to_string())?;
    } else if !numbers.is_empty() {
        // :print @m TOP [DIV]
        let index = map_index(&shared, args[0])?;
        let dump = shared.session.loaded_map(index).dump().map_err(|e| e.to_string())?;
        output::write_map(&mut out, format, &dump, numbers[0], numbers.get(1).copied().unwrap_or(0))
            .map_err(|e| e.to_string())?;
    } else {
        for name in args {
            let index = map_index(&shared, name)?;
            let dump = shared.session.loaded_map(index).dump().map_err(|e| e.to_string())?;
            output::write_map(&mut out, format, &dump, 0, 0).map_err(|e| e.to_string())?;
        }
    }
    io::stdout().write_all(&out).map_err(|e| e.to_string())
}

fn clear_or_zero(repl: &Repl, which: &str, args: &[&str]) -> Result<(), String> {
    let name = args.first().ok_or_else(|| format!("usage: :{which} @map"))?;
    let shared = lock(&repl.shared);
    let index = map_index(&shared, name)?;
    let map = shared.session.loaded_map(index);
    if which == "clear" {
        map.clear().map_err(|e| e.to_string())?;
        shared.session.set_zeroed(index, false);
    } else {
        map.zero().map_err(|e| e.to_string())?;
        shared.session.set_zeroed(index, true);
    }
    Ok(())
}

/// `:delete @m[KEY, ...]` with integer and string literal key parts.
fn delete(repl: &Repl, rest: &str) -> Result<(), String> {
    let usage = || "usage: :delete @map[key] (or @map[key1, key2]), keys as integer or string literals".to_owned();
    let open = rest.find('[').ok_or_else(usage)?;
    let inner = rest[open + 1..].strip_suffix(']').ok_or_else(usage)?;
    let shared = lock(&repl.shared);
    let index = map_index(&shared, rest[..open].trim())?;
    let decl = &shared.session.program.maps[index];
    let parts = split_key(inner)?;
    if parts.len() != decl.key.len() {
        return Err(format!("{} has {} key part(s), {} given", decl.display_name(), decl.key.len(), parts.len()));
    }
    let mut key = Vec::new();
    for (part, ty) in parts.iter().zip(&decl.key) {
        encode_key_part(part, ty, &mut key)?;
    }
    let deleted = shared.session.loaded_map(index).delete_user_key(&key).map_err(|e| e.to_string())?;
    if !deleted {
        println!("{}[{inner}] was not in the map.", decl.display_name());
    }
    Ok(())
}

/// Splits `1, "a,b", 3` at the commas outside quotes.
fn split_key(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if c == ',' && !quoted {
            parts.push(std::mem::take(&mut part).trim().to_owned());
            continue;
        }
        part.push(c);
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ => {}
        }
    }
    if quoted {
        return Err("unterminated string in the key".into());
    }
    parts.push(part.trim().to_owned());
    Ok(parts)
}

/// Appends one key part as the compiler lays it out: integers as 8 bytes, strings NUL-padded to
/// their type's length, each part padded to 8 bytes.
fn encode_key_part(part: &str, ty: &Type, key: &mut Vec<u8>) -> Result<(), String> {
    let start = key.len();
    match ty {
        Type::Int { .. } => {
            let value = parse_int(part).ok_or_else(|| format!("{part} is not an integer, and the key is {ty}"))?;
            key.extend_from_slice(&value.to_le_bytes());
        }
        Type::Str { len } => {
            let text = part
                .strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .ok_or_else(|| format!("{part} is not a string literal, and the key is {ty}"))?;
            let text = text.replace("\\\"", "\"").replace("\\\\", "\\");
            let mut bytes = text.into_bytes();
            bytes.resize(*len as usize, 0);
            key.extend_from_slice(&bytes);
        }
        other => return Err(format!("keys of type {other} cannot be typed here")),
    }
    key.resize(start + align8(ty.size()) as usize, 0);
    Ok(())
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    Some(if negative { (magnitude as i64).wrapping_neg() } else { magnitude as i64 })
}

/// `1s`, `500ms`, `2` (seconds).
fn parse_interval(text: &str) -> Option<Duration> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number.parse().ok()?;
    let d = match unit {
        "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "m" | "min" => Duration::from_secs(n * 60),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// Redraws a map every interval until Ctrl-C (SIGINT, blocked in every thread, read here).
fn watch(repl: &Repl, args: &[&str]) -> Result<(), String> {
    let name = args.first().ok_or("usage: :watch @map [interval]")?;
    let interval = match args.get(1) {
        Some(text) => parse_interval(text).ok_or_else(|| format!("{text} is not an interval (1s, 500ms, 2)"))?,
        None => Duration::from_secs(1),
    };
    let index = map_index(&lock(&repl.shared), name)?;
    let interrupts = Signals::watch(&[SIGINT]).map_err(|e| e.to_string())?;
    // A Ctrl-C typed before :watch began is not meant for it.
    let _ = interrupts.read();
    let mut stdout = io::stdout();
    loop {
        let mut frame = b"\x1b[H\x1b[2J".to_vec();
        frame.extend(output::format_time(output::DEFAULT_TIME_FORMAT).unwrap_or_default());
        {
            let shared = lock(&repl.shared);
            let dump = shared.session.loaded_map(index).dump().map_err(|e| e.to_string())?;
            output::write_map(&mut frame, shared.session.format, &dump, 0, 0).map_err(|e| e.to_string())?;
        }
        stdout.write_all(&frame).map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
        let ms = i32::try_from(interval.as_millis()).unwrap_or(i32::MAX);
        let interrupted = os::poll_readable(&[interrupts.fd()], ms).is_ok_and(|ready| ready[0]);
        if interrupted && interrupts.read().contains(&SIGINT) {
            println!();
            return Ok(());
        }
    }
}

fn list(repl: &Repl, pattern: &str, verbose: bool) -> Result<(), String> {
    let pattern = (!pattern.is_empty()).then_some(pattern);
    if verbose && pattern.is_none() {
        return Err("usage: :fields tracepoint:CATEGORY:NAME | struct NAME".into());
    }
    let text = catalog::list_probes(&repl.tracefs, pattern, verbose).map_err(|e| e.to_string())?;
    print!("{text}");
    Ok(())
}

/// Writes the live program: every entry's probe blocks with the attach points not detached;
/// statement entries as the BEGIN blocks they ran as.
fn save(repl: &Repl, path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("usage: :save FILE".into());
    }
    let shared = lock(&repl.shared);
    let mut text = String::new();
    for e in &shared.entries {
        let keep = |spec: &grammar::ast::ProbeSpec| {
            let start = e.offset as u32 + spec.span.start;
            shared.groups.iter().any(|g| g.entry == e.id && !g.detached && g.spec_span.start == start)
        };
        text.push_str(&entry::saved_text(&e.source, &keep));
    }
    std::fs::write(path, &text).map_err(|e| format!("cannot write {path}: {e}"))?;
    println!("Saved {} line{} to {path}.", text.lines().count(), if text.lines().count() == 1 { "" } else { "s" });
    Ok(())
}

fn load(repl: &mut Repl, path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("usage: :load FILE".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    repl.submit(text.trim_end_matches('\n'), path);
    Ok(())
}

fn set_format(repl: &Repl, args: &[&str]) -> Result<(), String> {
    let format = match args.first().copied() {
        Some("text") => OutputFormat::Text,
        Some("json") => OutputFormat::Json,
        _ => return Err("usage: :format text|json".into()),
    };
    lock(&repl.shared).session.format = format;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_outside_quotes_and_encode_like_the_compiler() {
        assert_eq!(split_key(r#"1, "a,b", -2"#).expect("splits"), ["1", "\"a,b\"", "-2"]);
        let mut key = Vec::new();
        encode_key_part("\"ab\"", &Type::Str { len: 4 }, &mut key).expect("string");
        encode_key_part("0x10", &Type::Int { bytes: 4, signed: false }, &mut key).expect("int");
        assert_eq!(key, [b'a', b'b', 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]);
        assert!(encode_key_part("x", &Type::Int { bytes: 8, signed: true }, &mut key).is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_interval("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval("fast"), None);
    }
}
