//! Values and map keys as bpftrace 0.17 prints them: text (`(1, abc)`) and JSON (`[1,"abc"]`).

use std::cmp::Ordering;

use super::bytes::c_str;

/// One value read out of a map, an event or a `print()` argument, after per-CPU reduction.
///
/// Stacks, symbols, addresses and records are not modelled yet; they will become further variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A signed integer (prints and sorts as `i64`, divides signedly).
    Int(i64),
    /// An unsigned integer (prints and sorts as `u64`), e.g. `count()` or a `uint64` cast.
    UInt(u64),
    /// A pointer, e.g. a tracepoint's `const char *` field: an unsigned integer, except as a map
    /// key, which bpftrace 0.17 prints in hex (`@[0x55d277412ee0]`).
    Pointer(u64),
    /// A string's bytes; only the bytes before the first NUL are printed.
    Str(Vec<u8>),
    /// A tuple; elements may themselves be tuples.
    Tuple(Vec<Value>),
    /// A symbolized stack.
    Stack(StackText),
    /// A pointer typed from the kernel's BTF inside a struct: bpftrace 0.17 prints it as a
    /// signed integer (`.next = -131365202639376`), but in hex inside a map key.
    KernelPointer(u64),
    /// A kernel struct or union: `{ .weight = 1048576, .inv_weight = 4194304 }`.
    Record(Vec<(String, Value)>),
    /// A kernel array of integers or structs: `[3,0,0,0]`.
    Array(Vec<Value>),
    /// Text that bpftrace 0.17 prints bare even in JSON: `strftime()`'s times (`{"@t": 2026}`)
    /// and `macaddr()`'s addresses.
    Bare(Vec<u8>),
    /// `buf()`'s bytes: printable ASCII as is, other bytes as `\xNN`.
    Buffer(Vec<u8>),
}

/// A stack as it prints: one line per frame, leaf first, each already in its mode's form
/// (`sym+off`; perf's `ADDR sym+off (module)`; a raw address).
///
/// bpftrace 0.17 indents frames by 4 spaces in map keys and by 8 elsewhere (map values,
/// `printf("%s")`); in perf mode every frame line starts with a tab instead (shown as `→`):
///
/// ```text
/// @k[
///     perf_syscall_enter+397
///     syscall_trace_enter+384
/// ]: 2
/// @v:
///         perf_syscall_enter+397
/// @p[
/// →ffffffff814b0b2d perf_syscall_enter+397
/// ]: 2
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackText {
    pub frames: Vec<String>,
    /// perf mode: tab-indented lines.
    pub perf: bool,
    /// A user-space stack (of process `pid`).
    pub user: bool,
    pub pid: u32,
    /// The frames as the symbolizer resolved them, leaf first, for exports and `--json-stacks`.
    pub detail: Vec<runtime::symbols::Frame>,
    /// `--json-stacks=frames`: JSON shows the frames as objects instead of bpftrace's text.
    pub json_frames: bool,
}

/// Stacks sort by their text, as keys of other types do.
impl PartialOrd for StackText {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StackText {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.frames, self.perf, self.user, self.pid).cmp(&(&other.frames, other.perf, other.user, other.pid))
    }
}

impl StackText {
    /// `[{"addr": 4096, "sym": "main", "offset": 16, "module": "/bin/x", "file": null,
    /// "line": null, "inlined": false}, ...]`, leaf first.
    pub fn write_json_frames(&self, out: &mut Vec<u8>) {
        let string = |s: &Option<String>, out: &mut Vec<u8>| match s {
            Some(s) => {
                out.push(b'"');
                json_escape_into(s.as_bytes(), out);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        };
        out.push(b'[');
        let mut first = true;
        let mut entry = |out: &mut Vec<u8>,
                         addr: u64,
                         name: Option<&String>,
                         offset: u64,
                         module: Option<&String>,
                         file: Option<&String>,
                         line: Option<u32>,
                         inlined: bool| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.extend_from_slice(format!("{{\"addr\": {addr}, \"sym\": ").as_bytes());
            string(&name.cloned(), out);
            out.extend_from_slice(format!(", \"offset\": {offset}, \"module\": ").as_bytes());
            string(&module.cloned(), out);
            out.extend_from_slice(b", \"file\": ");
            string(&file.cloned(), out);
            let line = line.map_or_else(|| "null".to_owned(), |l| l.to_string());
            out.extend_from_slice(format!(", \"line\": {line}, \"inlined\": {inlined}}}").as_bytes());
        };
        for f in &self.detail {
            // Functions inlined at the address come first, innermost first, as leaf-first frames.
            for i in f.inlined.iter().rev() {
                entry(out, f.addr, Some(&i.name), 0, f.module.as_ref(), i.file.as_ref(), i.line, true);
            }
            entry(out, f.addr, f.name.as_ref(), f.offset, f.module.as_ref(), f.file.as_ref(), f.line, false);
        }
        out.push(b']');
    }

    /// `\n` then each frame on its own line, indented as a map key's part (4 spaces) or a value
    /// (8 spaces).
    pub fn write(&self, in_key: bool, out: &mut Vec<u8>) {
        let indent: &[u8] = match (self.perf, in_key) {
            (true, _) => b"\t",
            (false, true) => b"    ",
            (false, false) => b"        ",
        };
        if self.frames.is_empty() {
            // An empty stack is empty text: `@k[]: 5`.
            return;
        }
        out.push(b'\n');
        for frame in &self.frames {
            out.extend_from_slice(indent);
            out.extend_from_slice(frame.as_bytes());
            out.push(b'\n');
        }
    }
}

/// One element of a map key. Keys use the same shapes as values; bpftrace 0.17 rejects tuples as
/// map keys ("tuple cannot be used as a map key"), so `Tuple` parts never come from the kernel.
pub type KeyPart = Value;

/// A map key: the ordered key parts, empty for an unkeyed map (`@x`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapKey(pub Vec<KeyPart>);

impl Value {
    /// A string value from anything byte-like.
    pub fn str(s: impl AsRef<[u8]>) -> Value {
        Value::Str(s.as_ref().to_vec())
    }

    /// Whether this is an integer, which makes a map of such values sort by value.
    pub fn is_integer(&self) -> bool {
        matches!(self, Value::Int(_) | Value::UInt(_) | Value::Pointer(_) | Value::KernelPointer(_))
    }

    /// The value as `print(@m, top, div)` shows it: integers divided by `div` (signedly for `Int`),
    /// recursively inside tuples (bpftrace passes `div` down into tuple fields), strings untouched.
    pub fn divided(&self, div: u32) -> Value {
        match self {
            Value::Int(v) => Value::Int(v.wrapping_div(i64::from(div.max(1)))),
            Value::UInt(v) => Value::UInt(v / u64::from(div.max(1))),
            Value::Pointer(v) => Value::Pointer(v / u64::from(div.max(1))),
            Value::KernelPointer(v) => Value::KernelPointer((*v as i64).wrapping_div(i64::from(div.max(1))) as u64),
            Value::Str(s) => Value::Str(s.clone()),
            Value::Tuple(items) => Value::Tuple(items.iter().map(|v| v.divided(div)).collect()),
            Value::Stack(_) | Value::Record(_) | Value::Array(_) | Value::Bare(_) | Value::Buffer(_) => self.clone(),
        }
    }

    /// Appends the text form: integers in decimal, strings raw, tuples as `(a, b)`.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Value::UInt(v) | Value::Pointer(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Value::Str(s) | Value::Bare(s) => out.extend_from_slice(c_str(s)),
            Value::Buffer(bytes) => out.extend_from_slice(&super::bytes::escape_buffer(bytes)),
            Value::Tuple(items) => {
                out.push(b'(');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    item.write_text(out);
                }
                out.push(b')');
            }
            Value::Stack(stack) => stack.write(false, out),
            Value::KernelPointer(v) => out.extend_from_slice((*v as i64).to_string().as_bytes()),
            Value::Record(fields) => write_record(fields, out, (b"{ ", b", ", b" }"), |name, value, out| {
                out.push(b'.');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b" = ");
                value.write_text(out);
            }),
            Value::Array(items) => write_array(items, out, Value::write_text),
        }
    }

    /// Appends the JSON form: integers bare (0.17 never quotes large integers, even past 2^53),
    /// strings quoted and escaped, tuples as arrays without spaces (`[1,"a"]`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(_) | Value::UInt(_) | Value::Pointer(_) | Value::KernelPointer(_) | Value::Bare(_) => {
                self.write_text(out)
            }
            Value::Record(fields) => write_record(fields, out, (b"{ ", b", ", b" }"), |name, value, out| {
                out.push(b'"');
                json_escape_into(name.as_bytes(), out);
                out.extend_from_slice(b"\": ");
                value.write_json(out);
            }),
            Value::Array(items) => write_array(items, out, Value::write_json),
            Value::Str(s) => {
                out.push(b'"');
                json_escape_into(c_str(s), out);
                out.push(b'"');
            }
            Value::Buffer(bytes) => {
                out.push(b'"');
                json_escape_into(&super::bytes::escape_buffer(bytes), out);
                out.push(b'"');
            }
            Value::Tuple(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Value::Stack(stack) if stack.json_frames => stack.write_json_frames(out),
            Value::Stack(stack) => {
                let mut text = Vec::new();
                stack.write(false, &mut text);
                out.push(b'"');
                json_escape_into(&text, out);
                out.push(b'"');
            }
        }
    }

    /// Compares two integer values numerically (signed `Int` against unsigned `UInt` as well).
    /// Non-integers compare equal, which leaves them in key order under a stable sort.
    pub(crate) fn cmp_numeric(&self, other: &Value) -> Ordering {
        match (self.as_i128(), other.as_i128()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => Ordering::Equal,
        }
    }

    fn as_i128(&self) -> Option<i128> {
        match self {
            Value::Int(v) => Some(i128::from(*v)),
            Value::UInt(v) | Value::Pointer(v) => Some(i128::from(*v)),
            Value::KernelPointer(v) => Some(i128::from(*v as i64)),
            _ => None,
        }
    }
}

impl MapKey {
    /// The key of an unkeyed map.
    pub fn none() -> MapKey {
        MapKey(Vec::new())
    }

    /// Whether this is the empty key of an unkeyed map.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the text form, `[a, b]`, or nothing for an unkeyed map.
    ///
    /// Integer key parts print as signed 64-bit whatever their type: bpftrace widens every integer
    /// key to 8 bytes and reads it back as `int64_t`, so a `u64` key of 2^64-1 prints `-1`.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        if self.0.is_empty() {
            return;
        }
        out.push(b'[');
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            write_key_part_text(part, out);
        }
        out.push(b']');
    }

    /// Appends the JSON object key: the parts' text joined by `,` (no spaces), escaped and quoted,
    /// e.g. `"sh,8034"`. Nothing for an unkeyed map.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        if self.0.is_empty() {
            return;
        }
        let mut joined = Vec::new();
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                joined.push(b',');
            }
            write_key_part_text(part, &mut joined);
        }
        out.push(b'"');
        json_escape_into(&joined, out);
        out.push(b'"');
    }
}

fn write_key_part_text(part: &KeyPart, out: &mut Vec<u8>) {
    match part {
        // Deliberate reinterpretation: bpftrace reads integer keys back as int64_t.
        Value::UInt(v) => {
            out.extend_from_slice(i64::from_ne_bytes(v.to_ne_bytes()).to_string().as_bytes());
        }
        Value::Stack(stack) => stack.write(true, out),
        Value::Pointer(v) | Value::KernelPointer(v) => out.extend_from_slice(format!("0x{v:x}").as_bytes()),
        // Inside a key, structs print without spaces and their integers by their own type.
        Value::Record(fields) => write_record(fields, out, (b"{", b",", b"}"), |name, value, out| {
            out.push(b'.');
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            match value {
                Value::UInt(_) | Value::Int(_) => value.write_text(out),
                other => write_key_part_text(other, out),
            }
        }),
        Value::Array(items) => write_array(items, out, |v, out| match v {
            Value::UInt(_) | Value::Int(_) => v.write_text(out),
            other => write_key_part_text(other, out),
        }),
        other => other.write_text(out),
    }
}

/// A struct's members between `open` and `close`, `between` apart: `{ .a = 1, .b = 2 }` as a
/// value, `{.a=1,.b=2}` in a key, `{ "a": 1, "b": 2 }` in JSON.
fn write_record(
    fields: &[(String, Value)],
    out: &mut Vec<u8>,
    (open, between, close): (&[u8], &[u8], &[u8]),
    member: impl Fn(&str, &Value, &mut Vec<u8>),
) {
    out.extend_from_slice(open);
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(between);
        }
        member(name, value, out);
    }
    out.extend_from_slice(close);
}

/// `[a,b,c]`, as bpftrace prints arrays everywhere.
fn write_array(items: &[Value], out: &mut Vec<u8>, write: impl Fn(&Value, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(item, out);
    }
    out.push(b']');
}

/// Escapes bytes for a JSON string exactly as bpftrace 0.17 does (without the quotes).
///
/// `"` `\` newline, carriage return and tab get their short escapes; other bytes up to 0x1f become
/// `\u00XX` (lower-case hex). Bytes from 0x80 up are a bpftrace bug reproduced on purpose: it tests a
/// signed `char` with `c <= '\x1f'`, so they also take the `\u` path and print as a sign-extended
/// int, e.g. `é` (c3 a9) becomes `\uffffffc3\uffffffa9`. DEL (0x7f) passes through raw.
pub fn json_escape(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    json_escape_into(bytes, &mut out);
    // Every byte of the escaped form is ASCII, see above.
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn json_escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            0x80..=0xff => out.extend_from_slice(format!("\\uffffff{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &Value) -> String {
        let mut out = Vec::new();
        v.write_text(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// As bpftrace 0.17 prints `curtask->fs->pwd.dentry->d_name` (a `struct qstr`) and
    /// `curtask->cpus_mask` as values, keys and JSON.
    #[test]
    fn kernel_structs_print_as_bpftrace_prints_them() {
        let qstr = Value::Record(vec![
            ("hash".into(), Value::UInt(691055015)),
            ("len".into(), Value::UInt(3)),
            ("name".into(), Value::KernelPointer(0xffff_8881_091d_44b8)),
        ]);
        assert_eq!(text(&qstr), "{ .hash = 691055015, .len = 3, .name = -131387191638856 }");
        let mut key = Vec::new();
        MapKey(vec![Value::Int(1), qstr.clone()]).write_text(&mut key);
        assert_eq!(String::from_utf8_lossy(&key), "[1, {.hash=691055015,.len=3,.name=0xffff8881091d44b8}]");
        assert_eq!(json(&qstr), r#"{ "hash": 691055015, "len": 3, "name": -131387191638856 }"#);
        let mask = Value::Record(vec![("bits".into(), Value::Array(vec![Value::UInt(3), Value::UInt(0)]))]);
        assert_eq!(text(&mask), "{ .bits = [3,0] }");
        assert_eq!(json(&mask), r#"{ "bits": [3,0] }"#);
        let mut key = Vec::new();
        MapKey(vec![mask]).write_text(&mut key);
        assert_eq!(String::from_utf8_lossy(&key), "[{.bits=[3,0]}]");
    }

    #[test]
    fn pointers_print_in_hex_only_as_keys() {
        let key = MapKey(vec![Value::Pointer(0x55d2_7741_2ee0), Value::Int(5)]);
        let (mut as_text, mut as_json) = (Vec::new(), Vec::new());
        key.write_text(&mut as_text);
        key.write_json(&mut as_json);
        assert_eq!(String::from_utf8_lossy(&as_text), "[0x55d277412ee0, 5]");
        assert_eq!(String::from_utf8_lossy(&as_json), "\"0x55d277412ee0,5\"");
        assert_eq!(text(&Value::Pointer(0x55d2_7741_2ee0)), "94362432253664");
    }

    fn json(v: &Value) -> String {
        let mut out = Vec::new();
        v.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn tuples_nest_in_both_formats() {
        let v = Value::Tuple(vec![Value::Int(1), Value::Tuple(vec![Value::Int(2), Value::str("q")]), Value::Int(-3)]);
        assert_eq!(text(&v), "(1, (2, q), -3)");
        assert_eq!(json(&v), r#"[1,[2,"q"],-3]"#);
    }

    #[test]
    fn strings_stop_at_nul() {
        let v = Value::Str(b"abc\0garbage".to_vec());
        assert_eq!(text(&v), "abc");
        assert_eq!(json(&v), "\"abc\"");
    }

    #[test]
    fn json_escape_matches_bpftrace() {
        assert_eq!(
            json_escape("a\"b\\c\nd\te\rf\x01g\x1fh\x7fi é".as_bytes()),
            "a\\\"b\\\\c\\nd\\te\\rf\\u0001g\\u001fh\x7fi \\uffffffc3\\uffffffa9"
        );
        assert_eq!(json_escape(b"\x08\x0c"), "\\u0008\\u000c");
    }

    #[test]
    fn keys_print_integers_signed() {
        let key = MapKey(vec![Value::UInt(u64::MAX), Value::str("x"), Value::Int(-5)]);
        let mut out = Vec::new();
        key.write_text(&mut out);
        assert_eq!(out, b"[-1, x, -5]");
        out.clear();
        key.write_json(&mut out);
        assert_eq!(out, b"\"-1,x,-5\"");
    }

    #[test]
    fn stacks_indent_by_context_as_bpftrace() {
        let stack = Value::Stack(StackText { frames: vec!["a+1".into(), "b+2".into()], ..StackText::default() });
        assert_eq!(text(&stack), "\n        a+1\n        b+2\n");
        let mut out = Vec::new();
        MapKey(vec![stack.clone(), Value::str("sh")]).write_text(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), "[\n    a+1\n    b+2\n, sh]");
        let perf = Value::Stack(StackText { frames: vec!["ffff0001 a+1".into()], perf: true, ..StackText::default() });
        assert_eq!(text(&perf), "\n\tffff0001 a+1\n");
        assert_eq!(json(&stack), "\"\\n        a+1\\n        b+2\\n\"");
    }

    #[test]
    fn division_is_signed_for_int_and_recurses_into_tuples() {
        assert_eq!(Value::Int(-25).divided(10), Value::Int(-2));
        assert_eq!(Value::UInt(u64::MAX).divided(2), Value::UInt(u64::MAX / 2));
        assert_eq!(
            Value::Tuple(vec![Value::Int(25), Value::str("s")]).divided(10),
            Value::Tuple(vec![Value::Int(2), Value::str("s")])
        );
    }
}
