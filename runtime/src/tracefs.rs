//! Tracepoints from tracefs: listing events, reading their `format` files into the compiler's
//! [`TracepointFormat`], and `-l` output.
//!
//! A format file looks like:
//! ```text
//! name: sys_enter_openat
//! ID: 641
//! format:
//! 	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
//! 	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
//! 	field:const char * filename;	offset:24;	size:8;	signed:0;
//! ```

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use compiler::{FieldType, ProbeCatalog, TracepointField, TracepointFormat};

pub struct Tracefs {
    root: PathBuf,
    events: Mutex<Option<Vec<(String, String)>>>,
    formats: Mutex<HashMap<(String, String), Option<TracepointFormat>>>,
}

impl Tracefs {
    /// Finds tracefs, mounting it at /sys/kernel/tracing when it is not mounted and we are root.
    pub fn open() -> io::Result<Tracefs> {
        for candidate in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            if Path::new(candidate).join("events").is_dir() {
                return Ok(Tracefs::at(candidate));
            }
        }
        let target = c"/sys/kernel/tracing";
        // SAFETY: mount(2) with NUL-terminated strings and no data.
        let r = unsafe { libc::mount(c"tracefs".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null()) };
        if r == 0 && Path::new("/sys/kernel/tracing/events").is_dir() {
            return Ok(Tracefs::at("/sys/kernel/tracing"));
        }
        Err(io::Error::other(
            "tracefs is not mounted and could not be mounted; run as root or `mount -t tracefs tracefs /sys/kernel/tracing`",
        ))
    }

    pub fn at(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into(), events: Mutex::new(None), formats: Mutex::new(HashMap::new()) }
    }

    /// Every (category, event), sorted.
    pub fn events(&self) -> Vec<(String, String)> {
        let mut cache = self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(list) = cache.as_ref() {
            return list.clone();
        }
        let mut list = Vec::new();
        if let Ok(cats) = std::fs::read_dir(self.root.join("events")) {
            for cat in cats.flatten() {
                if !cat.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let cat_name = cat.file_name().to_string_lossy().into_owned();
                if let Ok(evs) = std::fs::read_dir(cat.path()) {
                    for ev in evs.flatten() {
                        if ev.file_type().is_ok_and(|t| t.is_dir()) {
                            list.push((cat_name.clone(), ev.file_name().to_string_lossy().into_owned()));
                        }
                    }
                }
            }
        }
        list.sort();
        *cache = Some(list.clone());
        list
    }
}

impl ProbeCatalog for Tracefs {
    fn match_tracepoints(&self, category: &str, event: &str) -> Vec<(String, String)> {
        if !category.contains(['*', '?']) && !event.contains(['*', '?']) {
            let dir = self.root.join("events").join(category).join(event);
            return if dir.join("format").is_file() { vec![(category.into(), event.into())] } else { Vec::new() };
        }
        self.events().into_iter().filter(|(c, e)| glob(category, c) && glob(event, e)).collect()
    }

    fn tracepoint_format(&self, category: &str, event: &str) -> Option<TracepointFormat> {
        let key = (category.to_string(), event.to_string());
        let mut cache = self.formats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(f) = cache.get(&key) {
            return f.clone();
        }
        let path = self.root.join("events").join(category).join(event).join("format");
        let parsed = std::fs::read_to_string(path).ok().map(|t| parse_format(category, event, &t));
        cache.insert(key, parsed.clone());
        parsed
    }

    fn all_tracepoints(&self) -> Vec<String> {
        self.events().into_iter().map(|(c, e)| format!("{c}:{e}")).collect()
    }
}

/// `*` and `?` glob matching.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Parses a tracefs format file.
pub fn parse_format(category: &str, event: &str, text: &str) -> TracepointFormat {
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else { continue };
        let mut decl = "";
        let (mut offset, mut size, mut signed) = (0u32, 0u32, false);
        for (i, part) in rest.split(';').enumerate() {
            let part = part.trim();
            if i == 0 {
                decl = part;
            } else if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().unwrap_or(0);
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().unwrap_or(0);
            } else if let Some(v) = part.strip_prefix("signed:") {
                signed = v == "1";
            }
        }
        let (c_type, name, array_len) = split_decl(decl);
        let ty = classify(&c_type, array_len, size, signed);
        fields.push(TracepointField { common: name.starts_with("common_"), name, c_type, offset, size, signed, ty });
    }
    TracepointFormat { category: category.into(), event: event.into(), fields }
}

/// `const char * filename` → (`const char *`, `filename`, None); `char comm[16]` → (`char[16]`, `comm`, Some(16)).
fn split_decl(decl: &str) -> (String, String, Option<u32>) {
    // `__data_loc char[] name`: the brackets belong to the type, the name comes last.
    if decl.starts_with("__data_loc") {
        let (ty, name) = decl.rsplit_once(' ').unwrap_or(("", decl));
        return (ty.trim().to_string(), name.to_string(), None);
    }
    let (decl, array) = match decl.find('[') {
        Some(i) => {
            let len = decl[i + 1..].trim_end_matches(']').parse().ok();
            (&decl[..i], Some((len, decl[i..].to_string())))
        }
        None => (decl, None),
    };
    let decl = decl.trim();
    let split = decl.rfind(|c: char| c == ' ' || c == '*').map_or(0, |i| i + 1);
    let name = decl[split..].to_string();
    let mut c_type = decl[..split].trim().to_string();
    let mut len = None;
    if let Some((l, suffix)) = array {
        c_type.push_str(&suffix);
        len = l;
    }
    (c_type, name, len)
}

fn classify(c_type: &str, array_len: Option<u32>, size: u32, signed: bool) -> FieldType {
    if c_type.starts_with("__data_loc") {
        return if c_type.contains("char") { FieldType::DataLocString } else { FieldType::Unsupported };
    }
    if c_type.contains('[') {
        let len = array_len.unwrap_or(0);
        if c_type.starts_with("char") || c_type.contains(" char") {
            return FieldType::CharArray { len };
        }
        if len > 0 && size % len == 0 && matches!(size / len, 1 | 2 | 4 | 8) {
            return FieldType::IntArray { elem_size: (size / len) as u8, signed, len };
        }
        return FieldType::Unsupported;
    }
    if c_type.ends_with('*') {
        return FieldType::Pointer { pointee: c_type.trim_end_matches('*').trim().to_string() };
    }
    match size {
        1 | 2 | 4 | 8 => FieldType::Integer { size: size as u8, signed },
        _ => FieldType::Unsupported,
    }
}

/// `-l [PATTERN]` and `-lv`: tracepoints as `tracepoint:cat:event`, with fields under `-v`.
pub fn list_probes(tracefs: &Tracefs, pattern: Option<&str>, verbose: bool) -> io::Result<String> {
    let pattern = pattern.unwrap_or("*");
    let mut out = String::new();
    let (kind, rest) = pattern.split_once(':').unwrap_or((pattern, "*:*"));
    let tp_kind = matches!(kind, "tracepoint" | "t" | "*");
    if tp_kind {
        let (cat, ev) = rest.split_once(':').unwrap_or((rest, "*"));
        for (c, e) in tracefs.events() {
            if glob(cat, &c) && glob(ev, &e) {
                out.push_str(&format!("tracepoint:{c}:{e}\n"));
                if verbose {
                    if let Some(f) = tracefs.tracepoint_format(&c, &e) {
                        for field in f.fields.iter().filter(|f| !f.common) {
                            out.push_str(&format!("    {} {};\n", field.c_type, field.name));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}
