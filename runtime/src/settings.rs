//! The environment variables rbt reads: bpftrace 0.17's `BPFTRACE_*` names, so that scripts and
//! test suites written for bpftrace work unchanged, and rbt's own `RBT_*` names, which win where
//! both are set. Values are checked as bpftrace checks them (`BPFTRACE_STRLEN` above 200, a
//! number that is not one), with bpftrace's messages.

use std::sync::OnceLock;

/// What the environment sets, with bpftrace 0.17's defaults where rbt has no other reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Bytes a `str()` holds (`BPFTRACE_STRLEN`, `RBT_STRLEN`; default 64, at most 200).
    pub strlen: u32,
    /// Keys a map holds (`BPFTRACE_MAP_KEYS_MAX`, `RBT_MAP_KEYS_MAX`; default 4096).
    pub map_keys_max: u32,
    /// Stacks the stack map holds (`RBT_STACK_STORAGE`; default 4096).
    pub stack_storage: u32,
    /// Bytes `cat()` prints at most (`BPFTRACE_CAT_BYTES_MAX`; default 10240).
    pub cat_bytes_max: u64,
    /// Probes a script may attach (`BPFTRACE_MAX_PROBES`): no limit unless set, since rbt
    /// attaches a wildcard's probes as one multi link where the kernel has them.
    pub max_probes: Option<u64>,
    /// BPF programs a script may load (`BPFTRACE_MAX_BPF_PROGS`): no limit unless set.
    pub max_bpf_progs: Option<u64>,
    /// Pages of each CPU's perf buffer (`BPFTRACE_PERF_RB_PAGES`, `RBT_PERF_RB_PAGES`), and with
    /// the CPU count, the ring buffer's size, when set.
    pub perf_rb_pages: Option<u64>,
    /// Pages of the ring buffer (`RBT_RINGBUF_PAGES`; default 2048, 8 MiB, or
    /// `perf_rb_pages` per CPU).
    pub ringbuf_pages: Option<u64>,
    /// The kernel's BTF file (`BPFTRACE_BTF`, `RBT_BTF`).
    pub btf: Option<std::ffi::OsString>,
    /// How user stacks are walked (`RBT_USTACK_UNWIND=auto|fp|dwarf`; default auto: unwind
    /// tables where a binary has them, frame pointers elsewhere).
    pub user_unwind: compiler::lower::unwind::UserUnwind,
    /// Rows of unwind tables loaded at most, all files together (`RBT_UNWIND_ROWS`; default
    /// 4 Mi rows, 32 MiB of map memory).
    pub unwind_rows: u32,
}

/// The `BPFTRACE_*` variables bpftrace 0.17 reads that change nothing in rbt, accepted (and
/// checked) so that setting them is not an error: `BPFTRACE_LOG_SIZE` (rbt grows the verifier's
/// log until it fits), `BPFTRACE_NO_CPP_DEMANGLE`, `BPFTRACE_NO_USER_SYMBOLS` and
/// `BPFTRACE_CACHE_USER_SYMBOLS` (rbt's symbolizer always demangles and caches),
/// `BPFTRACE_MAX_TYPE_RES_ITERATIONS`, `BPFTRACE_NODE_MAX`, `BPFTRACE_VERIFY_LLVM_IR` (rbt has no
/// LLVM) and `BPFTRACE_VMLINUX` (kernel symbols come from /proc/kallsyms).
const NUMBERS_ACCEPTED: [&str; 3] = ["BPFTRACE_LOG_SIZE", "BPFTRACE_MAX_TYPE_RES_ITERATIONS", "BPFTRACE_NODE_MAX"];
const FLAGS_ACCEPTED: [&str; 4] =
    ["BPFTRACE_NO_CPP_DEMANGLE", "BPFTRACE_NO_USER_SYMBOLS", "BPFTRACE_CACHE_USER_SYMBOLS", "BPFTRACE_VERIFY_LLVM_IR"];

/// The most bytes a string may hold: strings live on the 512-byte BPF stack.
const STRLEN_MAX: u64 = 200;

impl Settings {
    /// The settings of this process's environment.
    pub fn from_env() -> Result<Settings, String> {
        Settings::from_lookup(&|name| std::env::var_os(name))
    }

    /// The settings `lookup` (an environment) gives.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Result<Settings, String> {
        let number = |names: &[&str]| -> Result<Option<u64>, String> {
            // The rbt name wins: it is listed last.
            let mut found = None;
            for name in names {
                if let Some(value) = lookup(name) {
                    found = Some(parse_number(name, &value.to_string_lossy())?);
                }
            }
            Ok(found)
        };
        for name in NUMBERS_ACCEPTED {
            number(&[name])?;
        }
        for name in FLAGS_ACCEPTED {
            if let Some(value) = lookup(name) {
                parse_flag(name, &value.to_string_lossy())?;
            }
        }
        let strlen = number(&["BPFTRACE_STRLEN", "RBT_STRLEN"])?.unwrap_or(64);
        if strlen > STRLEN_MAX {
            return Err(format!(
                "'BPFTRACE_STRLEN' {strlen} exceeds the current maximum of {STRLEN_MAX} bytes.\nThis limitation is \
                 because strings are currently stored on the 512 byte BPF stack."
            ));
        }
        let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Settings {
            strlen: small(strlen.max(1)),
            map_keys_max: small(number(&["BPFTRACE_MAP_KEYS_MAX", "RBT_MAP_KEYS_MAX"])?.unwrap_or(4096)),
            stack_storage: small(number(&["RBT_STACK_STORAGE"])?.unwrap_or(4096)),
            cat_bytes_max: number(&["BPFTRACE_CAT_BYTES_MAX", "RBT_CAT_BYTES_MAX"])?.unwrap_or(10_240),
            max_probes: number(&["BPFTRACE_MAX_PROBES", "RBT_MAX_PROBES"])?,
            max_bpf_progs: number(&["BPFTRACE_MAX_BPF_PROGS", "RBT_MAX_BPF_PROGS"])?,
            perf_rb_pages: number(&["BPFTRACE_PERF_RB_PAGES", "RBT_PERF_RB_PAGES"])?,
            ringbuf_pages: number(&["RBT_RINGBUF_PAGES"])?,
            btf: lookup("RBT_BTF").or_else(|| lookup("BPFTRACE_BTF")),
            user_unwind: parse_unwind(lookup("RBT_USTACK_UNWIND"))?,
            unwind_rows: small(number(&["RBT_UNWIND_ROWS"])?.unwrap_or(1 << 22).clamp(1, 1 << 26)),
        })
    }
}

/// A number as bpftrace reads one (`std::istringstream >> uint64_t`): leading blanks, then
/// digits; whatever follows them is ignored.
fn parse_number(name: &str, value: &str) -> Result<u64, String> {
    let digits: String = value.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().map_err(|_| format!("Env var '{name}' did not contain a valid uint64_t, or was zero-valued."))
}

fn parse_unwind(value: Option<std::ffi::OsString>) -> Result<compiler::lower::unwind::UserUnwind, String> {
    use compiler::lower::unwind::UserUnwind;
    match value.as_ref().map(|v| v.to_string_lossy()).as_deref() {
        None | Some("auto") => Ok(UserUnwind::Auto),
        Some("fp") => Ok(UserUnwind::FramePointers),
        Some("dwarf") => Ok(UserUnwind::Dwarf),
        Some(other) => Err(format!("Env var 'RBT_USTACK_UNWIND' is '{other}': it takes auto, fp or dwarf.")),
    }
}

/// A boolean as bpftrace reads one: `1` or `0`.
fn parse_flag(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(format!("Env var '{name}' did not contain a valid value (0 or 1).")),
    }
}

/// The settings of this run, read once (main reads them first, so a bad value is reported
/// before anything starts; the defaults stand in if they cannot be read).
pub fn current() -> &'static Settings {
    static CURRENT: OnceLock<Settings> = OnceLock::new();
    CURRENT.get_or_init(|| Settings::from_env().unwrap_or_default())
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            strlen: 64,
            map_keys_max: 4096,
            stack_storage: 4096,
            cat_bytes_max: 10_240,
            max_probes: None,
            max_bpf_progs: None,
            perf_rb_pages: None,
            ringbuf_pages: None,
            btf: None,
            user_unwind: compiler::lower::unwind::UserUnwind::Auto,
            unwind_rows: 1 << 22,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let env: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Settings::from_lookup(&|name| env.get(name).cloned())
    }

    #[test]
    fn defaults_are_bpftraces() {
        assert_eq!(settings(&[]), Ok(Settings::default()));
    }

    #[test]
    fn both_names_are_read_and_rbts_wins() {
        let s = settings(&[("BPFTRACE_STRLEN", "100"), ("BPFTRACE_CAT_BYTES_MAX", "1")]).unwrap_or_default();
        assert_eq!((s.strlen, s.cat_bytes_max), (100, 1));
        let s = settings(&[("BPFTRACE_MAP_KEYS_MAX", "10"), ("RBT_MAP_KEYS_MAX", "20")]).unwrap_or_default();
        assert_eq!(s.map_keys_max, 20);
        let s = settings(&[("BPFTRACE_MAX_PROBES", " 7x")]).unwrap_or_default();
        assert_eq!(s.max_probes, Some(7));
    }

    #[test]
    fn bad_values_are_bpftraces_errors() {
        assert_eq!(
            settings(&[("BPFTRACE_MAP_KEYS_MAX", "lots")]),
            Err("Env var 'BPFTRACE_MAP_KEYS_MAX' did not contain a valid uint64_t, or was zero-valued.".into())
        );
        assert_eq!(
            settings(&[("BPFTRACE_NO_CPP_DEMANGLE", "yes")]),
            Err("Env var 'BPFTRACE_NO_CPP_DEMANGLE' did not contain a valid value (0 or 1).".into())
        );
        let long = settings(&[("BPFTRACE_STRLEN", "201")]).unwrap_err();
        assert!(long.starts_with("'BPFTRACE_STRLEN' 201 exceeds the current maximum of 200 bytes."), "{long}");
    }
}
