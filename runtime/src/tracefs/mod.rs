//! Tracepoints as the kernel describes them in tracefs: finding (or mounting) tracefs, listing
//! events, parsing `format` files into [`TracepointFormat`]s typed exactly as bpftrace 0.17 types
//! them. `list.rs` writes the text of `rbt -l` / `rbt -lv`.

mod list;

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use list::list_probes;

use compiler::ktypes::{KFunction, KType, KTypeId};
use compiler::{FieldType, ProbeCatalog, TracepointField, TracepointFormat};

/// Where tracefs lives on current kernels, and where we mount it when it is missing.
const TRACEFS: &str = "/sys/kernel/tracing";
/// Where older systems expose it, through debugfs.
const DEBUGFS_TRACEFS: &str = "/sys/kernel/debug/tracing";

/// A `format` file rbt cannot read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatParseError {
    #[error("no `format:` line")]
    MissingFormatLine,
    #[error("line {line}: {reason}: `{text}`")]
    BadField { line: usize, text: String, reason: &'static str },
}

/// Everything that can go wrong finding tracefs or reading from it.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is mounted neither at {TRACEFS} nor at {DEBUGFS_TRACEFS}, and mounting it needs \
         root; run `mount -t tracefs tracefs {TRACEFS}` as root"
    )]
    NotMounted,
    #[error("could not mount tracefs at {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Format { path: PathBuf, source: FormatParseError },
    #[error("{message}")]
    BadListPattern { message: String },
}

/// A mounted tracefs. Reads are lazy and cached: rbt starts by matching wildcards against the
/// event list and then reads only the `format` files of the tracepoints it attaches to.
#[derive(Debug)]
pub struct Tracefs {
    root: PathBuf,
    /// `category:event` for every tracepoint, sorted bytewise as bpftrace's `std::set` is.
    events: OnceCell<Vec<String>>,
    /// Parsed formats by `category:event`; `None` remembers a tracepoint that cannot be read.
    formats: RefCell<HashMap<String, Option<TracepointFormat>>>,
    /// uprobe targets by (binary, pattern): the checker resolves each attach point twice, and a
    /// uprobe and its uretprobe usually name the same binary.
    user_functions: RefCell<HashMap<(String, String), UserFunctions>>,
    /// The kernel's BTF, read the first time a script uses kernel types.
    btf: OnceCell<Result<crate::btf::Btf, String>>,
    /// The functions kprobes can attach to, read once.
    kernel_functions: OnceCell<Result<Vec<String>, String>>,
    /// Whether fentry programs load here (see [`trampolines_missing`]), tried once.
    trampolines: OnceCell<Option<String>>,
}

/// The functions of a binary matching a pattern, or why they could not be read.
type UserFunctions = Result<Vec<compiler::UserFunction>, String>;

impl Tracefs {
    /// Finds tracefs at `/sys/kernel/tracing`, then `/sys/kernel/debug/tracing`, and mounts it at
    /// the first when neither is there and we are root.
    pub fn open() -> Result<Self, TracefsError> {
        for root in [TRACEFS, DEBUGFS_TRACEFS] {
            if Path::new(root).join("available_events").exists() {
                return Ok(Self::at(root));
            }
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(TracefsError::NotMounted);
        }
        mount_tracefs(Path::new(TRACEFS)).map_err(|source| TracefsError::Mount { path: TRACEFS.into(), source })?;
        Ok(Self::at(TRACEFS))
    }

    /// A tracefs rooted at `root`, e.g. a copy of one in a test directory.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            events: OnceCell::new(),
            formats: RefCell::default(),
            user_functions: RefCell::default(),
            btf: OnceCell::new(),
            trampolines: OnceCell::new(),
            kernel_functions: OnceCell::new(),
        }
    }

    /// The kernel's BTF, or why it cannot be read.
    fn btf(&self) -> Result<&crate::btf::Btf, String> {
        let path = std::env::var_os("RBT_BTF").map(PathBuf::from).unwrap_or_else(|| crate::btf::Btf::VMLINUX.into());
        self.btf
            .get_or_init(|| {
                crate::btf::Btf::read(&path)
                    .map_err(|e| format!("{e}; kernel types need a kernel built with CONFIG_DEBUG_INFO_BTF"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Every tracepoint as `category:event`, sorted. Like bpftrace this reads `available_events`
    /// rather than walking `events/`: that directory also holds ftrace's own entries
    /// (`ftrace:function`, ...), which are not attachable tracepoints. An unreadable list is empty,
    /// as it is for bpftrace (which only warns).
    pub fn events(&self) -> &[String] {
        self.events.get_or_init(|| {
            let text = std::fs::read_to_string(self.root.join("available_events"));
            sorted_event_list(&text.unwrap_or_default())
        })
    }

    /// The parsed `events/CATEGORY/EVENT/format`, uncached.
    pub fn read_format(&self, category: &str, event: &str) -> Result<TracepointFormat, TracefsError> {
        let path = self.format_path(category, event);
        let text =
            std::fs::read_to_string(&path).map_err(|source| TracefsError::Read { path: path.clone(), source })?;
        parse_format(category, event, &text).map_err(|source| TracefsError::Format { path, source })
    }

    /// Where tracefs is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The perf event id of a tracepoint (`events/CATEGORY/EVENT/id`), which attaching needs.
    pub fn event_id(&self, category: &str, event: &str) -> io::Result<u64> {
        let path = self.root.join("events").join(category).join(event).join("id");
        let text =
            std::fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::other(format!("{}: not a tracepoint id: {:?}", path.display(), text.trim())))
    }

    fn format_path(&self, category: &str, event: &str) -> PathBuf {
        self.root.join("events").join(category).join(event).join("format")
    }
}

impl ProbeCatalog for Tracefs {
    fn match_tracepoints(&self, category: &str, event: &str) -> Vec<(String, String)> {
        let pattern = format!("{category}:{event}");
        self.events()
            .iter()
            .filter(|e| wildcard_match(e, &pattern))
            .filter_map(|e| e.split_once(':'))
            .map(|(c, e)| (c.to_owned(), e.to_owned()))
            .collect()
    }

    fn tracepoint_format(&self, category: &str, event: &str) -> Option<TracepointFormat> {
        let key = format!("{category}:{event}");
        if let Some(cached) = self.formats.borrow().get(&key) {
            return cached.clone();
        }
        let format = self.read_format(category, event).ok();
        self.formats.borrow_mut().insert(key, format.clone());
        format
    }

    fn all_tracepoints(&self) -> Vec<String> {
        self.events().to_vec()
    }

    fn user_functions(&self, target: &str, pattern: &str) -> Result<Vec<compiler::UserFunction>, String> {
        let key = (target.to_owned(), pattern.to_owned());
        if let Some(found) = self.user_functions.borrow().get(&key) {
            return found.clone();
        }
        let found = crate::dynamic_probes::user_functions(target, pattern);
        self.user_functions.borrow_mut().insert(key, found.clone());
        found
    }

    fn user_address(&self, target: &str, address: u64) -> Result<compiler::UserAddress, String> {
        crate::dynamic_probes::user_address(target, address)
    }

    fn usdt_probes(&self, target: &str, provider: &str, name: &str) -> Result<Vec<compiler::usdt::UsdtProbe>, String> {
        crate::usdt_notes::usdt_probes(target, provider, name)
    }

    fn kernel_functions(&self, pattern: &str) -> Result<Vec<String>, String> {
        // Every kprobe spec is resolved twice (types are collected first): the list of the
        // kernel's functions (tens of thousands of lines) is read once.
        let all =
            self.kernel_functions.get_or_init(|| crate::dynamic_probes::kernel_functions(&self.root, "*")).as_ref()?;
        Ok(all.iter().filter(|f| wildcard_match(f, pattern)).cloned().collect())
    }

    fn kernel_types_missing(&self) -> Option<String> {
        self.btf().err()
    }

    fn kernel_type_named(&self, name: &str) -> Option<KTypeId> {
        self.btf().ok()?.type_named(name)
    }

    fn kernel_type(&self, id: KTypeId) -> Option<KType> {
        self.btf().ok()?.get(id)
    }

    fn kernel_type_name(&self, id: KTypeId) -> String {
        self.btf().map(|b| b.type_name(id)).unwrap_or_else(|_| format!("type {id}"))
    }

    fn kernel_type_size(&self, id: KTypeId) -> Option<u32> {
        self.btf().ok()?.size_of(id)
    }

    fn kernel_record_names(&self) -> Vec<String> {
        self.btf().map(|b| b.record_names()).unwrap_or_default()
    }

    fn kernel_function_signature(&self, name: &str) -> Option<KFunction> {
        self.btf().ok()?.function(name)
    }

    /// The kernel's cgroup v2 id is the file handle `name_to_handle_at` gives for the directory.
    fn cgroup_id(&self, path: &str) -> Result<u64, String> {
        crate::bpf_sys::cgroup_id(Path::new(path)).map_err(|e| e.to_string())
    }

    fn raw_tracepoint_signature(&self, name: &str) -> Option<KFunction> {
        self.btf().ok()?.raw_tracepoint(name)
    }

    fn trampolines_missing(&self, func: &KFunction) -> Option<String> {
        self.trampolines.get_or_init(|| trampolines_missing(func)).clone()
    }

    fn kernel_btf_functions(&self, pattern: &str) -> Vec<String> {
        let Ok(btf) = self.btf() else { return Vec::new() };
        btf.function_names().into_iter().filter(|f| wildcard_match(f, pattern)).collect()
    }

    /// From /proc/kallsyms, whose lines read `ffffffff81000000 T _stext` (module symbols add
    /// `\t[module]`). Addresses read as 0 without root.
    fn kernel_symbol(&self, name: &str) -> Option<u64> {
        let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
        text.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            let (addr, _kind, symbol) = (words.next()?, words.next()?, words.next()?);
            (symbol == name).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
        })
    }
}

/// Loads (and drops) the smallest fentry program for `func`: some kernels lack BPF trampolines,
/// others forbid tracing programs (a BPF LSM policy), and only trying tells.
fn trampolines_missing(func: &KFunction) -> Option<String> {
    let target = crate::bpf_sys::AttachTarget { attach_type: crate::bpf_sys::BPF_TRACE_FENTRY, btf_id: func.btf_id };
    // `r0 = 0; exit`
    let insns = [0xb7u8, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    match crate::bpf_sys::prog_load(crate::bpf_sys::BPF_PROG_TYPE_TRACING, "rbt_probe", &insns, 0, false, Some(target))
    {
        Ok(_) => None,
        Err(e) => Some(format!("this kernel does not load fentry/fexit programs (BPF trampolines): {}", e.error)),
    }
}

fn mount_tracefs(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, and tracefs takes
    // no mount data.
    let rc = unsafe { libc::mount(c"tracefs".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `available_events` holds one `category:event` a line, in kernel registration order:
///
/// ```text
/// sched:sched_wake_idle_without_ipi
/// sched:sched_skip_cpuset_numa
/// ```
///
/// bpftrace keeps them in a `std::set`, so rbt sorts bytewise too: `fib6:*` before `fib:*`.
fn sorted_event_list(text: &str) -> Vec<String> {
    let mut events: Vec<String> = text.lines().map(str::trim).filter(|l| l.contains(':')).map(str::to_owned).collect();
    events.sort_unstable();
    events.dedup();
    events
}

/// bpftrace 0.17's `wildcard_match`, bugs included, so that rbt attaches to the same tracepoints:
/// `pattern` is split at `*` and each piece is searched for left to right, taking the first
/// occurrence. A pattern not ending in `*` must then end exactly there, so `syscalls:*exit` does
/// not match `syscalls:sys_exit_exit` (the first `exit` is taken). `?` is not a wildcard (it is a
/// syntax error in bpftrace's attach points).
pub fn wildcard_match(text: &str, pattern: &str) -> bool {
    let tokens: Vec<&str> = pattern.split('*').filter(|t| !t.is_empty()).collect();
    let mut next = 0;
    if !pattern.starts_with('*') {
        match tokens.first() {
            Some(first) if text.starts_with(first) => {}
            _ => return pattern.is_empty() && text.is_empty(),
        }
    }
    for token in tokens {
        match text[next..].find(token) {
            Some(found) => next += found + token.len(),
            None => return false,
        }
    }
    pattern.ends_with('*') || next == text.len()
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
mod tests;
