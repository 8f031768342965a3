//! The probe kinds rbt knows, in one table: every name a script may write for each (canonical
//! name and aliases), the shape of its attach point, and a line of help. The checker's attach
//! dispatch, `rbt -l`, `rbt --help`, `:help` and the REPL's Tab completion all read it, so that a
//! new kind or alias is one row here (and its resolution in `check/resolve.rs`).

use crate::hir::AttachPoint;

/// A kind of probe, as the first part of an attach point names it (`kprobe` in `kprobe:vfs_read`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Begin,
    End,
    Tracepoint,
    RawTracepoint,
    Profile,
    Interval,
    Uprobe,
    Uretprobe,
    Usdt,
    Kprobe,
    Kretprobe,
    Fentry,
    Fexit,
    Software,
    Hardware,
    Watchpoint,
    AsyncWatchpoint,
    Iter,
}

/// One row of the table.
struct Row {
    kind: ProbeKind,
    name: &'static str,
    aliases: &'static [&'static str],
    shape: &'static str,
    help: &'static str,
    supported: bool,
}

/// Every kind, in the order messages list them (`rbt supports BEGIN, END, tracepoint, ...`).
/// bpftrace's kinds that rbt cannot attach yet come last, so that a script using one is told so
/// rather than that the kind does not exist.
const TABLE: [Row; 18] = [
    row(ProbeKind::Begin, "BEGIN", &[], "BEGIN", "runs once, before any other probe fires"),
    row(ProbeKind::End, "END", &[], "END", "runs once, when the program exits (Ctrl-C, exit())"),
    row(ProbeKind::Tracepoint, "tracepoint", &["t"], "tracepoint:CATEGORY:EVENT", "a static kernel tracepoint"),
    row(
        ProbeKind::RawTracepoint,
        "rawtracepoint",
        &["rt"],
        "rawtracepoint:EVENT",
        "a tracepoint's raw arguments, before the event's formatting",
    ),
    row(
        ProbeKind::Profile,
        "profile",
        &["p"],
        "profile:UNIT:N",
        "on every CPU, N times a second (hz) or every N s/ms/us",
    ),
    row(
        ProbeKind::Interval,
        "interval",
        &["i"],
        "interval:UNIT:N",
        "on one CPU, N times a second (hz) or every N s/ms/us",
    ),
    row(
        ProbeKind::Uprobe,
        "uprobe",
        &["u"],
        "uprobe:PATH:FUNCTION[+OFFSET]",
        "entry to a function of a binary or library",
    ),
    row(
        ProbeKind::Uretprobe,
        "uretprobe",
        &["ur"],
        "uretprobe:PATH:FUNCTION",
        "return from a function of a binary or library",
    ),
    row(
        ProbeKind::Usdt,
        "usdt",
        &["U"],
        "usdt:PATH[:PROVIDER]:NAME",
        "a static probe (.note.stapsdt) of a binary or library",
    ),
    row(ProbeKind::Kprobe, "kprobe", &["k"], "kprobe:FUNCTION[+OFFSET]", "entry to a kernel function"),
    row(ProbeKind::Kretprobe, "kretprobe", &["kr"], "kretprobe:FUNCTION", "return from a kernel function"),
    row(
        ProbeKind::Fentry,
        "fentry",
        &["f", "kfunc"],
        "fentry:FUNCTION",
        "entry to a kernel function, its arguments named by BTF",
    ),
    row(
        ProbeKind::Fexit,
        "fexit",
        &["fr", "kretfunc"],
        "fexit:FUNCTION",
        "return from a kernel function, with its arguments and retval",
    ),
    row(
        ProbeKind::Software,
        "software",
        &["s"],
        "software:EVENT[:COUNT]",
        "every COUNT software events (page-faults, cs, ...)",
    ),
    row(
        ProbeKind::Hardware,
        "hardware",
        &["h"],
        "hardware:EVENT[:COUNT]",
        "every COUNT hardware events (cycles, cache-misses, ...)",
    ),
    row(
        ProbeKind::Watchpoint,
        "watchpoint",
        &["w"],
        "watchpoint:ADDRESS:LENGTH:MODE",
        "reads (r), writes (w) or execution (x) of LENGTH bytes at ADDRESS (-c/-p: in the process); FUNCTION+argN for each address FUNCTION is called with",
    ),
    row(
        ProbeKind::AsyncWatchpoint,
        "asyncwatchpoint",
        &["aw"],
        "asyncwatchpoint:FUNCTION+argN:LENGTH:MODE",
        "as watchpoint:FUNCTION+argN, without stopping the process while the watchpoint is opened",
    ),
    Row { supported: false, ..row(ProbeKind::Iter, "iter", &["it"], "iter:ITERATOR", "") },
];

const fn row(
    kind: ProbeKind,
    name: &'static str,
    aliases: &'static [&'static str],
    shape: &'static str,
    help: &'static str,
) -> Row {
    Row { kind, name, aliases, shape, help, supported: true }
}

impl ProbeKind {
    /// Every kind, in the table's order.
    pub const ALL: [ProbeKind; 18] = [
        ProbeKind::Begin,
        ProbeKind::End,
        ProbeKind::Tracepoint,
        ProbeKind::RawTracepoint,
        ProbeKind::Profile,
        ProbeKind::Interval,
        ProbeKind::Uprobe,
        ProbeKind::Uretprobe,
        ProbeKind::Usdt,
        ProbeKind::Kprobe,
        ProbeKind::Kretprobe,
        ProbeKind::Fentry,
        ProbeKind::Fexit,
        ProbeKind::Software,
        ProbeKind::Hardware,
        ProbeKind::Watchpoint,
        ProbeKind::AsyncWatchpoint,
        ProbeKind::Iter,
    ];

    fn row(self) -> &'static Row {
        &TABLE[self as usize]
    }

    /// The kind a script names with `word` (canonical name or alias, case as written: `BEGIN`,
    /// `t`, `kfunc`).
    pub fn from_alias(word: &str) -> Option<ProbeKind> {
        TABLE.iter().find(|r| r.name == word || r.aliases.contains(&word)).map(|r| r.kind)
    }

    /// The name rbt prints for the kind (`tracepoint` for `t`).
    pub fn canonical(self) -> &'static str {
        self.row().name
    }

    /// The other names a script may write for the kind.
    pub fn aliases(self) -> &'static [&'static str] {
        self.row().aliases
    }

    /// The canonical name, then the aliases.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.canonical()).chain(self.aliases().iter().copied())
    }

    /// What an attach point of the kind looks like: `tracepoint:CATEGORY:EVENT`.
    pub fn shape(self) -> &'static str {
        self.row().shape
    }

    /// One line saying when the probe fires (empty for kinds rbt does not support).
    pub fn help(self) -> &'static str {
        self.row().help
    }

    /// The help line followed by the aliases: `a static kernel tracepoint (also t)`.
    pub fn describe(self) -> String {
        match self.aliases() {
            [] => self.help().to_owned(),
            aliases => format!("{} (also {})", self.help(), aliases.join(", ")),
        }
    }

    /// Whether rbt can attach probes of the kind (bpftrace's iterators not yet).
    pub fn is_supported(self) -> bool {
        self.row().supported
    }

    /// Whether the kind stands alone (`BEGIN`) rather than taking parts after a colon.
    pub fn is_bare(self) -> bool {
        matches!(self, ProbeKind::Begin | ProbeKind::End)
    }

    /// Whether the kind is the return side of a function probe (`kretprobe`, `uretprobe`, `fexit`).
    pub fn is_return(self) -> bool {
        matches!(self, ProbeKind::Kretprobe | ProbeKind::Uretprobe | ProbeKind::Fexit)
    }

    /// The kinds rbt supports, in the table's order.
    pub fn supported() -> impl Iterator<Item = ProbeKind> {
        ProbeKind::ALL.into_iter().filter(|k| k.is_supported())
    }

    /// The kind of a resolved attach point.
    pub fn of(attach: &AttachPoint) -> ProbeKind {
        match attach {
            AttachPoint::Begin => ProbeKind::Begin,
            AttachPoint::End => ProbeKind::End,
            AttachPoint::Tracepoint { .. } => ProbeKind::Tracepoint,
            AttachPoint::RawTracepoint { .. } => ProbeKind::RawTracepoint,
            AttachPoint::Profile { .. } => ProbeKind::Profile,
            AttachPoint::Interval { .. } => ProbeKind::Interval,
            AttachPoint::Uprobe { ret: false, .. } => ProbeKind::Uprobe,
            AttachPoint::Uprobe { ret: true, .. } => ProbeKind::Uretprobe,
            AttachPoint::Usdt(_) => ProbeKind::Usdt,
            AttachPoint::Kprobe { ret: false, .. } => ProbeKind::Kprobe,
            AttachPoint::Kprobe { ret: true, .. } => ProbeKind::Kretprobe,
            AttachPoint::Fentry { ret: false, .. } => ProbeKind::Fentry,
            AttachPoint::Fentry { ret: true, .. } => ProbeKind::Fexit,
            AttachPoint::PerfCounter { hardware: false, .. } => ProbeKind::Software,
            AttachPoint::PerfCounter { hardware: true, .. } => ProbeKind::Hardware,
            // Both forms take what a watchpoint probe takes.
            AttachPoint::Watchpoint { .. } | AttachPoint::FunctionWatchpoint(_) => ProbeKind::Watchpoint,
        }
    }
}

/// The supported kinds as `--help` and `:help` list them, a line each: the shape, the help,
/// the aliases.
pub fn help_table(indent: &str) -> String {
    let width = ProbeKind::supported().map(|k| k.shape().len()).max().unwrap_or(0);
    let mut out = String::new();
    for kind in ProbeKind::supported() {
        out.push_str(&format!("{indent}{:<width$}  {}\n", kind.shape(), kind.describe()));
    }
    out
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_the_order_of_the_enum() {
        for (i, kind) in ProbeKind::ALL.into_iter().enumerate() {
            assert_eq!(TABLE[i].kind, kind);
            assert_eq!(kind as usize, i);
        }
    }

    #[test]
    fn every_name_is_one_kinds() {
        let mut seen = std::collections::HashSet::new();
        for kind in ProbeKind::ALL {
            for name in kind.names() {
                assert!(seen.insert(name), "{name} names two kinds");
                assert_eq!(ProbeKind::from_alias(name), Some(kind));
            }
        }
        assert_eq!(ProbeKind::from_alias("kretfunc"), Some(ProbeKind::Fexit));
        assert_eq!(ProbeKind::from_alias("begin"), None);
    }

    #[test]
    fn shapes_start_with_the_canonical_name() {
        for kind in ProbeKind::ALL {
            assert!(kind.shape().starts_with(kind.canonical()), "{kind}");
            assert_eq!(kind.is_supported(), !kind.help().is_empty(), "{kind}");
        }
    }
}
