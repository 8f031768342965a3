//! Tracepoints as tracefs describes them: the event list (`available_events`) and `format`
//! files parsed into [`TracepointFormat`]s, each field typed exactly as bpftrace 0.17 types it.

use compiler::{FieldType, TracepointField, TracepointFormat};

/// A `format` file rbt cannot read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatParseError {
    #[error("no `format:` line")]
    MissingFormatLine,
    #[error("line {line}: {reason}: `{text}`")]
    BadField { line: usize, text: String, reason: &'static str },
}

/// `available_events` holds one `category:event` a line, in kernel registration order:
///
/// ```text
/// sched:sched_wake_idle_without_ipi
/// sched:sched_skip_cpuset_numa
/// ```
///
/// bpftrace keeps them in a `std::set`, so rbt sorts bytewise too: `fib6:*` before `fib:*`.
pub(crate) fn sorted_event_list(text: &str) -> Vec<String> {
    let mut events: Vec<String> = text.lines().map(str::trim).filter(|l| l.contains(':')).map(str::to_owned).collect();
    events.sort_unstable();
    events.dedup();
    events
}

/// The parameter lines `-lv` prints for a `format` file: like bpftrace, everything after the first
/// blank line (which ends the `common_*` fields) that starts with a tab and `field:`, cut to the
/// declaration between `field:` and the first `;`.
pub fn verbose_params(format_text: &str) -> Vec<&str> {
    format_text
        .lines()
        .skip_while(|line| !line.is_empty())
        .filter(|line| line.starts_with("\tfield:"))
        .filter_map(|line| line.split_once(':').and_then(|(_, rest)| rest.split(';').next()))
        .collect()
}

/// Parses one tracefs `format` file. A real sample (`events/sched/sched_process_exec/format`;
/// the field lines start with a tab, and tabs separate their columns):
///
/// ```text
/// name: sched_process_exec
/// ID: 365
/// format:
///     field:unsigned short common_type;    offset:0;    size:2;    signed:0;
///     field:unsigned char common_flags;    offset:2;    size:1;    signed:0;
///     field:unsigned char common_preempt_count;    offset:3;    size:1;    signed:0;
///     field:int common_pid;    offset:4;    size:4;    signed:1;
///
///     field:__data_loc char[] filename;    offset:8;    size:4;    signed:0;
///     field:pid_t pid;    offset:12;    size:4;    signed:1;
///     field:pid_t old_pid;    offset:16;    size:4;    signed:1;
///
/// print fmt: "filename=%s pid=%d old_pid=%d", __get_str(filename), REC->pid, REC->old_pid
/// ```
///
/// The fields before the first blank line are the header every event shares (`common: true`).
pub fn parse_format(category: &str, event: &str, text: &str) -> Result<TracepointFormat, FormatParseError> {
    let mut lines = text.lines().enumerate();
    if !lines.by_ref().any(|(_, line)| line.trim_end() == "format:") {
        return Err(FormatParseError::MissingFormatLine);
    }
    let mut fields = Vec::new();
    let mut common = true;
    for (index, line) in lines {
        if line.trim().is_empty() {
            common &= fields.is_empty();
            continue;
        }
        if line.starts_with("print fmt:") {
            break;
        }
        let field = parse_field(line, common).map_err(|reason| FormatParseError::BadField {
            line: index + 1,
            text: line.to_owned(),
            reason,
        })?;
        fields.push(field);
    }
    Ok(TracepointFormat { category: category.to_owned(), event: event.to_owned(), fields })
}

/// Parses `\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;`.
fn parse_field(line: &str, common: bool) -> Result<TracepointField, &'static str> {
    let rest = line.trim_start().strip_prefix("field:").ok_or("expected `field:`")?;
    let mut parts = rest.split(';');
    let declaration = parts.next().unwrap_or_default().trim();
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in parts {
        let Some((key, value)) = part.trim().split_once(':') else { continue };
        match key {
            "offset" => offset = value.parse().ok(),
            "size" => size = value.parse().ok(),
            // Kernels before 2.6.37 had no `signed:`; nothing of that age runs BPF.
            "signed" => signed = value == "1",
            _ => {}
        }
    }
    let offset: u32 = offset.ok_or("missing or bad `offset:`")?;
    let size: u32 = size.ok_or("missing or bad `size:`")?;
    // Like bpftrace, the name is what follows the last space or tab: `__data_loc char[] name`.
    let split = declaration.rfind([' ', '\t']).ok_or("expected a type and a name")?;
    let (base_type, name) = (declaration[..split].trim(), &declaration[split + 1..]);
    let (name, array) = match name.split_once('[') {
        Some((name, len)) => (name, Some(len.trim_end_matches(']'))),
        None => (name, None),
    };
    let c_type = match array {
        Some(len) => format!("{base_type}[{len}]"),
        None => base_type.to_owned(),
    };
    let ty = field_type(base_type, array, size, signed);
    Ok(TracepointField { name: name.to_owned(), c_type, offset, size, signed, common, ty })
}

/// Types a field as bpftrace 0.17 does. bpftrace turns the format into a C struct, lets clang
/// resolve each type (through the kernel's BTF) and maps clang's types onto its own; so the field's
/// declared C type decides, not the `size:`/`signed:` columns, except that bpftrace first widens
/// some integers the kernel stores in 8 bytes (`adjust_integer_types`). `array` is the text
/// between an array's brackets: `16`, empty for `[]`, or a macro name.
fn field_type(base_type: &str, array: Option<&str>, size: u32, signed: bool) -> FieldType {
    // The record holds a u32: the data's offset in the record (low 16 bits) and length (high 16).
    // bpftrace reads `args->f` as the data's address (record + offset), typed int64, for str().
    if base_type.starts_with("__data_loc") {
        return FieldType::DataLocString;
    }
    if let Some(pointee) = pointee(base_type) {
        return FieldType::Pointer { pointee };
    }
    let unqualified = unqualified(base_type);
    if let Some(len) = array {
        let len: Option<u32> = len.parse().ok();
        // clang makes `char x[N]` (plain char only) a string; other arrays stay arrays.
        if unqualified == "char" {
            return FieldType::CharArray { len: len.unwrap_or(size) };
        }
        let len = len.unwrap_or(0);
        let element = integer_type(&unqualified).or_else(|| Some((integer_size(size.checked_div(len)?)?, signed)));
        return match element {
            Some((elem_size, signed)) if !is_record(&unqualified) => {
                let len = if len == 0 { size / u32::from(elem_size) } else { len };
                FieldType::IntArray { elem_size, signed, len }
            }
            _ => FieldType::Unsupported,
        };
    }
    // bpftrace's `adjust_integer_types` compares the type exactly as written, so `const int`
    // escapes widening (and stays an int32 in an 8-byte slot).
    if size == 8 {
        match base_type {
            "int" => return FieldType::Integer { size: 8, signed: true },
            "unsigned int" | "unsigned" | "u32" | "pid_t" | "uid_t" | "gid_t" => {
                return FieldType::Integer { size: 8, signed: false };
            }
            _ => {}
        }
    }
    if unqualified.starts_with("enum ") {
        // clang's enums are unsigned for bpftrace, of the enum's own size (4 unless packed).
        return FieldType::Integer { size: integer_size(size.min(4)).unwrap_or(4), signed: false };
    }
    if is_record(&unqualified) {
        return FieldType::Unsupported;
    }
    match integer_type(&unqualified) {
        Some((size, signed)) => FieldType::Integer { size, signed },
        // Another kernel typedef (`dev_t`, `xfs_ino_t`, ...): BTF would give the declared size and
        // signedness, which the format columns repeat for every such type on Linux 6.18.
        None => match integer_size(size) {
            Some(size) => FieldType::Integer { size, signed },
            None => FieldType::Unsupported,
        },
    }
}

/// The type a pointer field points at, as written (`const char` for `const char *`), or as BTF
/// resolves the kernel's pointer typedefs.
fn pointee(base_type: &str) -> Option<String> {
    if let Some(star) = base_type.rfind('*') {
        return Some(base_type[..star].trim().to_owned());
    }
    let pointee = match unqualified(base_type).as_str() {
        "cap_user_header_t" => "struct __user_cap_header_struct",
        "cap_user_data_t" => "struct __user_cap_data_struct",
        // bpftrace shows these (`initcall_t` is a function pointer) as `none *`.
        "fl_owner_t" | "xfs_failaddr_t" | "initcall_t" => "void",
        _ => return None,
    };
    Some(pointee.to_owned())
}

fn unqualified(c_type: &str) -> String {
    let words: Vec<&str> = c_type.split_whitespace().filter(|w| !matches!(*w, "const" | "volatile")).collect();
    words.join(" ")
}

fn is_record(c_type: &str) -> bool {
    c_type.starts_with("struct ") || c_type.starts_with("union ")
}

fn integer_size(size: u32) -> Option<u8> {
    matches!(size, 1 | 2 | 4 | 8).then_some(size as u8)
}

/// Size and signedness of the C integer types (x86-64) and of the kernel typedefs whose BTF
/// size or sign differs from what syscall tracepoints declare (e.g. `umode_t mode` sits in an
/// 8-byte slot but is a u16, so bpftrace reads 2 bytes).
fn integer_type(c_type: &str) -> Option<(u8, bool)> {
    Some(match c_type {
        "char" | "signed char" | "s8" | "__s8" | "int8_t" => (1, true),
        "unsigned char" | "u8" | "__u8" | "uint8_t" | "bool" | "_Bool" => (1, false),
        "short" | "short int" | "signed short" | "s16" | "__s16" | "int16_t" => (2, true),
        "unsigned short" | "short unsigned int" | "u16" | "__u16" | "uint16_t" | "umode_t" => (2, false),
        "int" | "signed" | "signed int" | "s32" | "__s32" | "int32_t" | "pid_t" | "clockid_t" | "timer_t" | "mqd_t"
        | "key_t" | "key_serial_t" | "rwf_t" => (4, true),
        "unsigned int" | "unsigned" | "uint" | "u32" | "__u32" | "uint32_t" | "uid_t" | "gid_t" | "qid_t" | "dev_t"
        | "gfp_t" => (4, false),
        "long" | "long int" | "signed long" | "long long" | "long long int" | "s64" | "__s64" | "int64_t"
        | "ssize_t" | "loff_t" | "off_t" | "time64_t" => (8, true),
        "unsigned long"
        | "long unsigned int"
        | "unsigned long long"
        | "long long unsigned int"
        | "u64"
        | "__u64"
        | "uint64_t"
        | "size_t" => (8, false),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests;
