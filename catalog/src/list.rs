//! The text of `rbt -l [SEARCH]` and `rbt -lv`: attach-point patterns expanded and printed
//! byte for byte as bpftrace 0.17 prints them, including the probe types rbt lists but cannot
//! attach (software, hardware, iter), so that `rbt -l` and `bpftrace -l` agree; and kernel
//! types (`rbt -l 'struct task*'`, `rbt -lv 'union bpf_attr'`) as bpftrace lists them from BTF.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use compiler::probe_kind::ProbeKind;
use compiler::ProbeCatalog as _;

use crate::tracefs_format::verbose_params;
use crate::wildcard::wildcard_match;
use crate::{Catalog, CatalogError, Source};
use user::UserListing;

/// The probe types a wildcard provider (`rbt -l`, `rbt -l '*switch'`) expands to, sorted as
/// bpftrace sorts them. bpftrace 0.17 also expands to `kprobe` (every function in
/// `available_filter_functions`, which this kernel does not let it read, so it only warns on
/// stderr); rbt lists no kprobes.
const WILDCARD_PROVIDERS: [&str; 4] = ["hardware", "iter", "software", "tracepoint"];

/// What a wildcard provider expands to instead with `-p PID`, or when the attach point's second
/// part is a path (`*:./bin/prog:*`): bpftrace 0.17's user-space probe types, return probes
/// left out.
const USERSPACE_PROVIDERS: [&str; 2] = ["uprobe", "usdt"];

/// The software events bpftrace 0.17 accepts (`software:NAME:`), aliases included.
const SOFTWARE_EVENTS: [&str; 14] = [
    "alignment-faults",
    "bpf-output",
    "context-switches",
    "cs",
    "cpu-clock",
    "cpu",
    "cpu-migrations",
    "dummy",
    "emulation-faults",
    "major-faults",
    "minor-faults",
    "page-faults",
    "faults",
    "task-clock",
];

/// The hardware events bpftrace 0.17 accepts (`hardware:NAME:`), aliases included.
const HARDWARE_EVENTS: [&str; 12] = [
    "backend-stalls",
    "branch-instructions",
    "branches",
    "branch-misses",
    "bus-cycles",
    "cache-misses",
    "cache-references",
    "cpu-cycles",
    "cycles",
    "frontend-stalls",
    "instructions",
    "ref-cycles",
];

/// The iterators bpftrace 0.17 lists, whatever the kernel offers (it has exactly these two
/// built in), with the parameters `-lv` prints: the kernel's `bpf_iter_task` and
/// `bpf_iter_task_file` prototypes without their first (`struct bpf_iter_meta *meta`) argument.
/// These prototypes are the iterators' kernel ABI, so they are written out rather than read from
/// the kernel's BTF.
const ITERATORS: [(&str, &[&str]); 2] = [
    ("task", &["struct task_struct * task"]),
    ("task_file", &["struct task_struct * task", "int fd", "struct file * file"]),
];

/// What `rbt -l [SEARCH]` prints (`-lv` when `verbose`), byte-identical to bpftrace 0.17.
/// SEARCH is a comma-separated list of attach points; none or `*` means `*:*`. Real bpftrace
/// output for `bpftrace -lv 'tracepoint:raw_syscalls:sys_enter'`:
///
/// ```text
/// tracepoint:raw_syscalls:sys_enter
///     long id
///     unsigned long args[6]
/// ```
pub fn list_probes<S: Source>(
    catalog: &Catalog<S>,
    search: Option<&str>,
    verbose: bool,
) -> Result<String, CatalogError> {
    list_probes_for(catalog, search, verbose, None)
}

/// [`list_probes`] with `-p PID`: uprobes and USDT probes of that process (its executable, the
/// modules it maps), and a wildcard probe type expanded to the user-space ones only.
pub fn list_probes_for<S: Source>(
    catalog: &Catalog<S>,
    search: Option<&str>,
    verbose: bool,
    pid: Option<u32>,
) -> Result<String, CatalogError> {
    if let Some(search) = search.filter(|s| is_type_search(s)) {
        return list_types(catalog, search, verbose);
    }
    let search = match search {
        None | Some("*") => "*:*",
        Some(search) => search,
    };
    let mut out = String::new();
    for raw in search.split(',').map(str::trim).filter(|raw| !raw.is_empty()) {
        let (provider, rest) = match raw.split_once(':') {
            Some((provider, rest)) => (provider, Some(rest)),
            None => (raw, None),
        };
        // bpftrace 0.17 lexes the search as a program, whose lexer refuses these in a probe type.
        if let Some(c) = provider.chars().find(|c| *c == '\\' || c.is_control()) {
            return Err(list_error(format!("invalid character '{c}'")));
        }
        if !provider.contains('*') {
            list_attach_point(catalog, provider, raw, Expansion { ignore_invalid: false, verbose, pid }, &mut out)?;
            continue;
        }
        // A lone pattern (`*switch`) is looked for under every probe type, like bpftrace.
        let query = if rest.is_some() { provider } else { "*" };
        let second_part_is_path =
            rest.is_some_and(|rest| grammar::split_parts(rest).first().is_some_and(|p| p.contains('/')));
        let providers: &[&str] =
            if pid.is_some() || second_part_is_path { &USERSPACE_PROVIDERS } else { &WILDCARD_PROVIDERS };
        let matched: Vec<&str> = providers.iter().copied().filter(|p| wildcard_match(p, query)).collect();
        match matched.as_slice() {
            [] => return Err(list_error(format!("No probe type matched for {provider}"))),
            [only] => {
                list_attach_point(catalog, only, raw, Expansion { ignore_invalid: false, verbose, pid }, &mut out)?
            }
            many => {
                // Each expansion drops attach points of the wrong shape and skips the check of
                // event names, as bpftrace does (`*:cs` lists `hardware:cs:` too).
                for expanded in many {
                    let raw = format!("{expanded}:{}", rest.unwrap_or(raw));
                    let expansion = Expansion { ignore_invalid: true, verbose, pid };
                    list_attach_point(catalog, expanded, &raw, expansion, &mut out)?;
                }
            }
        }
    }
    Ok(out)
}

/// bpftrace 0.17 takes a search without `:` that starts with `struct`, `union` or `enum` (even
/// `structure*`) for a pattern over kernel type names.
fn is_type_search(search: &str) -> bool {
    !search.contains(':') && ["struct", "union", "enum"].iter().any(|tag| search.starts_with(tag))
}

/// Kernel types from BTF matching `search`, a wildcard pattern over `struct NAME`, `union NAME`
/// and `enum NAME`: their names, sorted and each once; with `verbose` their C definitions, as
/// bpftrace 0.17 prints them, followed by a blank line:
///
/// ```text
/// struct load_weight {
///     long unsigned int weight;
///     u32 inv_weight;
/// };
///
/// ```
///
/// bpftrace writes every named struct, union and enum through one libbpf `btf_dump` (so a type
/// is written once, after the types it embeds, and later types of the same name get `___2`
/// suffixes), cuts the text into definitions (`type_definitions`) and matches them against
/// `SEARCH *{*}*`. Nothing matching is no error.
fn list_types<S: Source>(catalog: &Catalog<S>, search: &str, verbose: bool) -> Result<String, CatalogError> {
    let btf = catalog.btf().map_err(list_error)?;
    let (entries, pattern) = if verbose {
        (type_definitions(&crate::btf::dump_named_types(btf)), format!("{search} *{{*}}*"))
    } else {
        (btf.tagged_type_names().into_iter().collect(), search.to_owned())
    };
    let mut out = String::new();
    for entry in entries.iter().filter(|entry| wildcard_match(entry, &pattern)) {
        out.push_str(entry);
        out.push('\n');
    }
    Ok(out)
}

/// bpftrace's cut of a C dump into definitions: one starts at a line that ends in `{` and runs
/// to the next line that is exactly `};`. So what ends otherwise (`} atomic_t;` closing a
/// `typedef struct {`, `} __attribute__((packed));`) runs on into the definitions after it
/// up to the next `};`, which then are not entries of their own; lines outside definitions
/// (typedefs, forward declarations, empty structs) are dropped.
pub(crate) fn type_definitions(dump: &str) -> BTreeSet<String> {
    let mut definitions = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in dump.split('\n') {
        match &mut current {
            Some(definition) => {
                definition.push_str(line);
                definition.push('\n');
                if line == "};" {
                    definitions.extend(current.take());
                }
            }
            None if line.ends_with('{') => current = Some(format!("{line}\n")),
            None => {}
        }
    }
    definitions
}

/// `TYPE NAME` as bpftrace's `-lv` prints an argument (`struct file * file`, `size_t count`).
fn declaration(ty: &str, name: &str) -> String {
    format!("{ty} {name}")
}

/// How one attach point is listed: `ignore_invalid` marks an expansion of a wildcard
/// provider, `verbose` is `-lv`, `pid` is `-p PID`.
#[derive(Clone, Copy)]
struct Expansion {
    ignore_invalid: bool,
    verbose: bool,
    pid: Option<u32>,
}

/// Lists one attach point `raw` whose provider is `provider` (which may be an alias).
fn list_attach_point<S: Source>(
    catalog: &Catalog<S>,
    provider: &str,
    raw: &str,
    expansion: Expansion,
    out: &mut String,
) -> Result<(), CatalogError> {
    let Expansion { ignore_invalid, verbose, pid } = expansion;
    let user = UserListing { pid, ignore_invalid, verbose };
    // Split as scripts' attach points are: quoted parts (`"rbt::Counter::add(int)"`) keep their
    // colons and lose their quotes.
    let split = grammar::split_parts(raw);
    let mut parts: Vec<&str> = split.iter().map(String::as_str).collect();
    let wrong_shape = |message: String| {
        if ignore_invalid {
            Ok(())
        } else {
            Err(list_error(message))
        }
    };
    let kind = ProbeKind::from_alias(provider).filter(|k| k.is_supported() || *k == ProbeKind::Iter);
    match kind {
        Some(ProbeKind::Tracepoint) => {
            // bpftrace reads `tracepoint:*foo*` as `tracepoint:*:*foo*`.
            if parts.len() == 2 && parts[1].contains('*') {
                parts.insert(1, "*");
            }
            if parts.len() != 3 {
                return wrong_shape("tracepoint probe type requires 2 arguments".into());
            }
            let pattern = format!("{}:{}", parts[1], parts[2]);
            for event in catalog.events().iter().filter(|e| wildcard_match(e, &pattern)) {
                out.push_str("tracepoint:");
                out.push_str(event);
                out.push('\n');
                if verbose {
                    push_tracepoint_params(catalog, event, out);
                }
            }
        }
        Some(kind @ (ProbeKind::Uprobe | ProbeKind::Uretprobe)) => user.uprobes(catalog, kind, &parts, out)?,
        Some(ProbeKind::Usdt) => user.usdt(catalog, &parts, out)?,
        Some(kind @ (ProbeKind::Kprobe | ProbeKind::Kretprobe)) => {
            if parts.len() != 2 {
                return wrong_shape("kprobe probe type requires 1 argument".into());
            }
            let functions = catalog.kernel_functions(parts[1]).map_err(list_error)?;
            for f in functions {
                out.push_str(&format!("{kind}:{f}\n"));
            }
        }
        Some(kind @ (ProbeKind::Fentry | ProbeKind::Fexit)) => {
            // `fentry:vfs_*`, `fentry:vmlinux:vfs_*`, `kfunc:vmlinu*:vfs_*`: kernel functions
            // described by BTF; with -v their arguments and return value as bpftrace's `-lv
            // kfunc:` prints them. Spelt `kfunc`/`kretfunc`, they are printed as bpftrace 0.17
            // prints them, with the module (`kfunc:vmlinux:vfs_read`); spelt `fentry`/`fexit`,
            // which 0.17 does not know, as `fentry:vfs_read`.
            let pattern = match parts.as_slice() {
                [_, f] => *f,
                [_, module, f] if wildcard_match("vmlinux", module) => *f,
                // rbt attaches to no module's functions, so it lists none.
                [_, _, _] => return Ok(()),
                _ => return wrong_shape(format!("{provider} probe type requires 1 argument")),
            };
            if let Some(why) = catalog.kernel_types_missing() {
                return Err(list_error(why));
            }
            let prefix = match provider {
                "kfunc" | "kretfunc" => format!("{provider}:vmlinux"),
                _ => kind.to_string(),
            };
            for name in catalog.kernel_btf_functions(pattern) {
                let _ = writeln!(out, "{prefix}:{name}");
                if !verbose {
                    continue;
                }
                let Some(func) = catalog.kernel_function_signature(&name) else { continue };
                for p in &func.params {
                    let _ = writeln!(out, "    {}", declaration(&catalog.kernel_type_name(p.ty), &p.name));
                }
                if let Some(ret) = func.ret {
                    let _ = writeln!(out, "    {}", declaration(&catalog.kernel_type_name(ret), "retval"));
                }
            }
        }
        Some(ProbeKind::Software) => {
            return list_perf_event("software", &SOFTWARE_EVENTS, &parts, ignore_invalid, out);
        }
        Some(ProbeKind::Hardware) => {
            return list_perf_event("hardware", &HARDWARE_EVENTS, &parts, ignore_invalid, out);
        }
        Some(ProbeKind::Iter) => {
            if parts.len() != 2 && parts.len() != 3 {
                return wrong_shape("iter probe type takes 2 arguments (1 optional)".into());
            }
            let name = parts[1];
            // Naming one iterator asks to attach it, which rbt cannot do; bpftrace 0.17 says the
            // same on this kernel (its iterator feature probe fails).
            if ITERATORS.iter().any(|(known, _)| *known == name) {
                return Err(list_error(format!("iter {name} not available for your kernel version.")));
            }
            for (iterator, params) in ITERATORS.iter().filter(|(it, _)| wildcard_match(it, name)) {
                let _ = writeln!(out, "iter:{iterator}");
                if verbose {
                    for param in *params {
                        let _ = writeln!(out, "    {param}");
                    }
                }
            }
        }
        // bpftrace cannot expand these; it prints the bare probe type.
        Some(kind @ (ProbeKind::Interval | ProbeKind::Profile)) => {
            let name = kind.canonical();
            if parts.len() != 3 {
                return wrong_shape(format!("{name} probe type requires 2 arguments"));
            }
            let _ = writeln!(out, "{name}:");
        }
        Some(ProbeKind::Begin | ProbeKind::End) => out.push_str("special::\n"),
        _ => return Err(list_error(format!("Invalid probe type: {provider}"))),
    }
    Ok(())
}

/// Lists a software or hardware attach point (`KIND:EVENT[:COUNT]`). bpftrace matches nothing
/// here: it echoes the event pattern (`software:cpu*:`), after checking a plain event name
/// against `events` (unless `ignore_invalid`) and that COUNT starts like a number. Where
/// bpftrace's `stoull` finds no number at all, its error is the bare word `stoull`.
fn list_perf_event(
    kind: &str,
    events: &[&str],
    parts: &[&str],
    ignore_invalid: bool,
    out: &mut String,
) -> Result<(), CatalogError> {
    if parts.len() != 2 && parts.len() != 3 {
        return if ignore_invalid {
            Ok(())
        } else {
            Err(list_error(format!("{kind} probe type requires 1 or 2 arguments")))
        };
    }
    if let Some(&count) = parts.get(2) {
        if count != "*" && !count.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(list_error("stoull".into()));
        }
    }
    let event = parts[1];
    if event.is_empty() {
        return Err(list_error(format!("{kind} probe must have a {kind} event name")));
    }
    if !event.contains('*') && !ignore_invalid && !events.contains(&event) {
        return Err(list_error(format!("{event} is not a {kind} probe")));
    }
    let _ = writeln!(out, "{kind}:{event}:");
    Ok(())
}

/// Appends `-lv`'s parameter lines for tracepoint `category:event`. Like bpftrace, a missing
/// `format` file just leaves the event without parameters.
fn push_tracepoint_params<S: Source>(catalog: &Catalog<S>, event: &str, out: &mut String) {
    let Some((category, name)) = event.split_once(':') else { return };
    let Ok(text) = catalog.format_text(category, name) else { return };
    for param in verbose_params(&text) {
        out.push_str("    ");
        out.push_str(param);
        out.push('\n');
    }
}

fn list_error(message: String) -> CatalogError {
    CatalogError::BadListPattern { message }
}

#[cfg(test)]
mod tests;
mod user;
