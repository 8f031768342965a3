//! The language's builtins (`pid`, `comm`, `args`, ...) and functions (`printf()`, `str()`,
//! `count()`, ...) in one table: name, argument counts, where a call may stand, the probe kinds
//! it is restricted to, and a line of documentation. The checker takes its argument-count
//! checks, probe-kind restrictions and "did you mean" lists from here, and the REPL its Tab
//! completion and `:help`, so that a new builtin is one row here and its checking in the family
//! file under `check/builtins/`.

use crate::probe_kind::ProbeKind;

/// Where a call of a function may stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An expression with a value: `$s = str(arg0)`.
    Value,
    /// A statement of its own, with no value: `printf(...);`.
    Statement,
    /// Only directly assigned to a map element: `@[comm] = count()`.
    Aggregation,
    /// Grammar rather than a call (`sizeof(T)`, `offsetof(S, F)`): the parser reads these, and
    /// they are listed for completion and suggestions only.
    Syntax,
}

/// A function of the language.
#[derive(Debug)]
pub struct Function {
    pub name: &'static str,
    pub min_args: usize,
    /// `None`: no fixed maximum (printf's arguments after the format are limited by its own check).
    pub max_args: Option<usize>,
    /// What argument-count errors add after the count: ` (a mode and a frame count)`.
    pub args_note: &'static str,
    pub role: Role,
    /// The probe kinds a call may appear in; `None` for any.
    pub probes: Option<&'static [ProbeKind]>,
    /// Needs `--unsafe`.
    pub unsafe_: bool,
    /// How a call is written: `str(PTR[, LEN])`.
    pub signature: &'static str,
    pub doc: &'static str,
}

/// A builtin variable of the language.
#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    /// The probe kinds it has a value in; `None` for any.
    pub probes: Option<&'static [ProbeKind]>,
    pub doc: &'static str,
}

use ProbeKind as K;

/// Probes whose context holds the registers (`struct pt_regs`, first member of a perf event's).
const WITH_REGISTERS: &[ProbeKind] = &[
    K::Kprobe,
    K::Kretprobe,
    K::Uprobe,
    K::Uretprobe,
    K::Usdt,
    K::Profile,
    K::Interval,
    K::Software,
    K::Hardware,
    K::Watchpoint,
];
/// Probes that fire in the context of a process (not BEGIN and END, which run in rbt's).
const IN_A_PROCESS: &[ProbeKind] = &[
    K::Tracepoint,
    K::RawTracepoint,
    K::Profile,
    K::Interval,
    K::Uprobe,
    K::Uretprobe,
    K::Usdt,
    K::Kprobe,
    K::Kretprobe,
    K::Fentry,
    K::Fexit,
    K::Software,
    K::Hardware,
    K::Watchpoint,
];
/// Probes with positional arguments `arg0`..`arg5`.
const WITH_ARGS: &[ProbeKind] = &[K::Uprobe, K::Usdt, K::Kprobe, K::RawTracepoint, K::Fentry, K::Fexit];
/// Probes of a function's entry or return.
const OF_A_FUNCTION: &[ProbeKind] = &[K::Uprobe, K::Uretprobe, K::Kprobe, K::Kretprobe, K::Fentry, K::Fexit];

/// Probes with kernel functions' arguments as the kernel hands them (`path()` needs its
/// `struct path *` so).
const WITH_BTF_ARGS: &[ProbeKind] = &[K::Fentry, K::Fexit];

const fn func(
    name: &'static str,
    min: usize,
    max: usize,
    role: Role,
    signature: &'static str,
    doc: &'static str,
) -> Function {
    Function {
        name,
        min_args: min,
        max_args: Some(max),
        args_note: "",
        role,
        probes: None,
        unsafe_: false,
        signature,
        doc,
    }
}

/// A function taking a format string and up to 127 arguments for it.
const fn formatted(name: &'static str, signature: &'static str, doc: &'static str) -> Function {
    Function { max_args: None, ..func(name, 1, 1, Role::Statement, signature, doc) }
}

const fn aggregation(name: &'static str, args: usize, signature: &'static str, doc: &'static str) -> Function {
    func(name, args, args, Role::Aggregation, signature, doc)
}

const fn stack(name: &'static str, signature: &'static str, doc: &'static str) -> Function {
    Function { args_note: " (a mode and a frame count)", ..func(name, 0, 2, Role::Value, signature, doc) }
}

use Role::{Statement, Syntax, Value};

/// Every function, grouped as `check/builtins/` checks them.
pub const FUNCTIONS: &[Function] = &[
    // Output: statements the runtime carries out when their event arrives (check/builtins/output.rs).
    formatted("printf", "printf(FORMAT, ARGS...)", "print formatted text (%d %u %x %s %p %c %r ...)"),
    Function { unsafe_: true, ..formatted("system", "system(FORMAT, ARGS...)", "run a shell command (--unsafe)") },
    formatted("cat", "cat(FORMAT, ARGS...)", "print the contents of the file named by FORMAT"),
    func(
        "print",
        1,
        3,
        Statement,
        "print(@MAP[, TOP, DIV] | VALUE)",
        "print a map (its TOP keys, values divided by DIV) or a value",
    ),
    func("time", 0, 1, Statement, "time([FORMAT])", "print the time of day (strftime FORMAT, default \"%H:%M:%S\\n\")"),
    func(
        "join",
        1,
        2,
        Statement,
        "join(ARGV[, DELIM])",
        "print an array of strings such as execve's argv, joined by DELIM (a space)",
    ),
    func("exit", 0, 0, Statement, "exit()", "stop tracing: run END probes, print the maps, exit"),
    // Strings (strings.rs).
    func("str", 1, 2, Value, "str(PTR[, LEN])", "the NUL-terminated string at PTR (at most LEN bytes)"),
    func("strncmp", 3, 3, Value, "strncmp(A, B, N)", "0 when the first N bytes of two strings are equal"),
    func("strcontains", 2, 2, Value, "strcontains(HAYSTACK, NEEDLE)", "1 when the string NEEDLE occurs in HAYSTACK"),
    func("buf", 1, 2, Value, "buf(PTR[, LEN])", "LEN bytes at PTR (an array's size by default), printed with %r"),
    func(
        "strftime",
        2,
        2,
        Value,
        "strftime(FORMAT, NSECS)",
        "a time in nanoseconds since boot, formatted as strftime(3)",
    ),
    // Network addresses (net.rs).
    func("ntop", 1, 2, Value, "ntop([AF, ]ADDR)", "an IPv4 or IPv6 address (an integer or 4 or 16 bytes) as text"),
    func("macaddr", 1, 1, Value, "macaddr(ADDR)", "6 bytes as a MAC address"),
    func("pton", 1, 1, Value, "pton(\"ADDR\")", "an IPv4 or IPv6 address literal as its 4 or 16 bytes, for ntop()"),
    // Kernel and process state (kernel.rs).
    func("ksym", 1, 1, Value, "ksym(ADDR)", "the kernel symbol holding ADDR"),
    func("usym", 1, 1, Value, "usym(ADDR)", "the symbol holding ADDR in the current process"),
    func("kaddr", 1, 1, Value, "kaddr(\"NAME\")", "the address of a kernel symbol (/proc/kallsyms)"),
    Function {
        probes: Some(WITH_REGISTERS),
        ..func("reg", 1, 1, Value, "reg(\"NAME\")", "a register of the probed context, e.g. reg(\"ip\")")
    },
    func("kptr", 1, 1, Value, "kptr(PTR)", "PTR, marked as a kernel address"),
    func("uptr", 1, 1, Value, "uptr(PTR)", "PTR, marked as a user address"),
    func("bswap", 1, 1, Value, "bswap(N)", "N with its bytes in the opposite order"),
    func("strerror", 1, 1, Value, "strerror(ERRNO)", "the C library's text for error number ERRNO, when printed"),
    func("cgroupid", 1, 1, Value, "cgroupid(\"PATH\")", "the id of the cgroup v2 directory PATH"),
    func(
        "cgroup_path",
        1,
        2,
        Value,
        "cgroup_path(ID[, \"FILTER\"])",
        "the paths of cgroup ID in every hierarchy whose name matches FILTER (`*` wildcards), when printed",
    ),
    Function {
        probes: Some(&[K::Uprobe, K::Uretprobe, K::Usdt]),
        ..func("uaddr", 1, 1, Value, "uaddr(\"NAME\")", "the address of a global symbol of the probed binary")
    },
    Function {
        probes: Some(WITH_BTF_ARGS),
        ..func("path", 1, 1, Value, "path(PATH)", "the file name of a `struct path *` argument of fentry/fexit")
    },
    Function {
        probes: Some(IN_A_PROCESS),
        unsafe_: true,
        ..func(
            "signal",
            1,
            1,
            Statement,
            "signal(SIG)",
            "send a signal (\"KILL\", 9) to the current process (--unsafe)",
        )
    },
    func("unwatch", 1, 1, Statement, "unwatch(ADDR)", "stop watching ADDR: close the watchpoints on it"),
    // Stacks (stacks.rs); also builtins of their own without parentheses.
    stack("kstack", "kstack([MODE, ][N])", "the kernel stack (MODE bpftrace, perf or raw; N frames)"),
    stack("ustack", "ustack([MODE, ][N])", "the user stack (MODE bpftrace, perf or raw; N frames)"),
    // Maps (maps.rs).
    aggregation("count", 0, "count()", "the number of times the line ran"),
    aggregation("sum", 1, "sum(N)", "the sum of N"),
    aggregation("min", 1, "min(N)", "the smallest N"),
    aggregation("max", 1, "max(N)", "the largest N"),
    aggregation("avg", 1, "avg(N)", "the average of N"),
    aggregation("stats", 1, "stats(N)", "the count, average and total of N"),
    aggregation("hist", 1, "hist(N)", "a histogram of N in power-of-two buckets"),
    aggregation("lhist", 4, "lhist(N, MIN, MAX, STEP)", "a histogram of N in linear buckets"),
    func("clear", 1, 1, Statement, "clear(@MAP)", "remove every key of a map"),
    func("zero", 1, 1, Statement, "zero(@MAP)", "set every value of a map to zero"),
    func("delete", 1, 1, Statement, "delete(@MAP[KEY])", "remove one key of a map"),
    // Types, read by the parser (check/ktypes.rs).
    func("sizeof", 1, 1, Syntax, "sizeof(TYPE | EXPR)", "the size in bytes of a type or of an expression's type"),
    func("offsetof", 2, 2, Syntax, "offsetof(STRUCT, MEMBER)", "the offset in bytes of a member of a struct"),
];

const fn var(name: &'static str, doc: &'static str) -> Builtin {
    Builtin { name, probes: None, doc }
}

const fn arg(name: &'static str, doc: &'static str) -> Builtin {
    Builtin { name, probes: Some(WITH_ARGS), doc }
}

/// Probes whose function's arguments past the registers are on the stack: `sarg0`...
const WITH_STACK_ARGS: &[ProbeKind] = &[K::Kprobe, K::Uprobe];

const fn sarg(name: &'static str, doc: &'static str) -> Builtin {
    Builtin { name, probes: Some(WITH_STACK_ARGS), doc }
}

/// Every builtin variable (checked in check/builtins/context.rs).
pub const BUILTINS: &[Builtin] = &[
    var("pid", "the process id (thread group id) of the current task"),
    var("tid", "the thread id of the current task"),
    var("uid", "the user id of the current task"),
    var("gid", "the group id of the current task"),
    var("comm", "the name of the current task (16 bytes)"),
    var("nsecs", "nanoseconds since boot"),
    var("elapsed", "nanoseconds since rbt started tracing"),
    var("cpu", "the CPU the probe fires on"),
    var("rand", "a random 32-bit number"),
    var("cgroup", "the cgroup v2 id of the current task"),
    var("numaid", "the NUMA node the probe fires on"),
    var("username", "the user name of the current task (its uid, named from /etc/passwd when printed)"),
    var("curtask", "the current `struct task_struct *` (its members by name with BTF)"),
    var("cpid", "the pid of the command run with -c"),
    var(
        "ctx",
        "the probe's context: `struct pt_regs *` in kprobes and uprobes, `struct bpf_perf_event_data *` in profile, interval and perf events",
    ),
    var("probe", "the name of the probe that fired (tracepoint:sched:sched_switch)"),
    Builtin {
        probes: Some(&[K::Tracepoint, K::RawTracepoint, K::Fentry, K::Fexit, K::Uprobe]),
        ..var("args", "the probe's arguments by name: args->FIELD")
    },
    var("kstack", "the kernel stack"),
    var("ustack", "the user stack"),
    arg("arg0", "the probed function's first argument"),
    arg("arg1", "the probed function's second argument"),
    arg("arg2", "the probed function's third argument"),
    arg("arg3", "the probed function's fourth argument"),
    arg("arg4", "the probed function's fifth argument"),
    arg("arg5", "the probed function's sixth argument"),
    sarg("sarg0", "the probed function's first argument on the stack (x86-64: the seventh integer argument)"),
    sarg("sarg1", "the probed function's second argument on the stack"),
    sarg("sarg2", "the probed function's third argument on the stack"),
    sarg("sarg3", "the probed function's fourth argument on the stack"),
    sarg("sarg4", "the probed function's fifth argument on the stack"),
    sarg("sarg5", "the probed function's sixth argument on the stack"),
    sarg("sarg6", "the probed function's seventh argument on the stack"),
    sarg("sarg7", "the probed function's eighth argument on the stack"),
    sarg("sarg8", "the probed function's ninth argument on the stack"),
    sarg("sarg9", "the probed function's tenth argument on the stack"),
    Builtin {
        probes: Some(&[K::Uretprobe, K::Kretprobe, K::Fexit]),
        ..var("retval", "the probed function's return value")
    },
    Builtin { probes: Some(OF_A_FUNCTION), ..var("func", "the name of the probed function") },
];

/// The function named `name`.
pub fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// The builtin variable named `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

impl Function {
    /// The counts of arguments a call may have, as errors say them: `1`, `1 or 2`, `at least 1`.
    pub fn expected_args(&self) -> String {
        match (self.min_args, self.max_args) {
            (n, Some(m)) if n == m => n.to_string(),
            (n, Some(m)) if m == n + 1 => format!("{n} or {m}"),
            (0, Some(m)) => format!("at most {m}"),
            (n, Some(m)) => format!("{n} to {m}"),
            (n, None) => format!("at least {n}"),
        }
    }

    /// Whether a call may have `count` arguments.
    pub fn accepts_count(&self, count: usize) -> bool {
        count >= self.min_args && self.max_args.is_none_or(|max| count <= max)
    }

    /// Whether a call may appear in a probe of `kind`.
    pub fn allowed_in(&self, kind: Option<ProbeKind>) -> bool {
        allowed(self.probes, kind)
    }
}

impl Builtin {
    /// Whether the builtin has a value in a probe of `kind`.
    pub fn allowed_in(&self, kind: Option<ProbeKind>) -> bool {
        allowed(self.probes, kind)
    }
}

fn allowed(probes: Option<&[ProbeKind]>, kind: Option<ProbeKind>) -> bool {
    match (probes, kind) {
        (None, _) => true,
        (Some(probes), Some(kind)) => probes.contains(&kind),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        assert!(FUNCTIONS.iter().all(|f| seen.insert(f.name)));
        let mut seen = std::collections::HashSet::new();
        assert!(BUILTINS.iter().all(|b| seen.insert(b.name)));
    }

    #[test]
    fn argument_counts_read_as_the_errors_say_them() {
        let said = |name| function(name).map(Function::expected_args);
        assert_eq!(said("printf").as_deref(), Some("at least 1"));
        assert_eq!(said("time").as_deref(), Some("0 or 1"));
        assert_eq!(said("print").as_deref(), Some("1 to 3"));
        assert_eq!(said("kstack").as_deref(), Some("at most 2"));
        assert_eq!(said("lhist").as_deref(), Some("4"));
        assert!(function("str").is_some_and(|f| f.accepts_count(2) && !f.accepts_count(3)));
    }

    #[test]
    fn signatures_start_with_the_name() {
        for f in FUNCTIONS {
            assert!(f.signature.starts_with(&format!("{}(", f.name)), "{}", f.name);
            assert!(!f.doc.is_empty(), "{}", f.name);
        }
    }
}
