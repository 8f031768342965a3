//! Tab completion for the REPL: commands, probe types, tracepoint categories and events (from
//! tracefs), `args->` fields of the tracepoint (or fentry function, raw tracepoint) whose block
//! is being typed, members of kernel structs along `curtask->…` and `args->…` chains (BTF), builtins and
//! functions, map names in use, and file names after `:save` and `:load`.
//!
//! Candidates are ordered shortest first, then alphabetically: rustyline shows the first one on
//! the first Tab, and the shortest match is usually the one meant (`sched_sw` -> `sched_switch`
//! before `sched_swap_numa`).

use std::borrow::Cow;
use std::cell::RefCell;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::{commands, lock, SharedRef};
use crate::host::HostCatalog;
use compiler::builtins::{BUILTINS, FUNCTIONS};
use compiler::ktypes::{KFunction, KType, KTypeId};
use compiler::probe_kind::ProbeKind;
use compiler::ProbeCatalog as _;

/// Keywords of the language that complete inside a block, beside the builtins and functions
/// of `compiler::builtins`.
const KEYWORDS: [&str; 4] = ["if (", "while (", "unroll(", "return"];

const RATE_UNITS: [&str; 4] = ["hz:", "s:", "ms:", "us:"];

pub struct ReplHelper {
    tracefs: HostCatalog,
    /// The session, for the names of its maps (none in unit tests).
    shared: Option<SharedRef>,
    /// The earlier lines of an entry still being typed, for `args->` in a block opened above.
    pending: RefCell<String>,
    files: FilenameCompleter,
}

impl ReplHelper {
    pub fn new(tracefs: HostCatalog, shared: SharedRef) -> ReplHelper {
        ReplHelper {
            tracefs,
            shared: Some(shared),
            pending: RefCell::new(String::new()),
            files: FilenameCompleter::new(),
        }
    }

    /// A helper without a session, completing over `tracefs` alone.
    #[cfg(test)]
    fn without_session(tracefs: HostCatalog) -> ReplHelper {
        ReplHelper { tracefs, shared: None, pending: RefCell::new(String::new()), files: FilenameCompleter::new() }
    }

    pub fn set_pending(&mut self, text: &str) {
        text.clone_into(&mut self.pending.borrow_mut());
    }

    fn map_names(&self) -> Vec<String> {
        let Some(shared) = &self.shared else { return Vec::new() };
        lock(shared).session.program.maps.iter().map(|m| m.display_name()).collect()
    }

    /// `tracepoint:CAT:EVENT` completions of `word` (which has at least one colon).
    fn probe_specs(&self, word: &str) -> Vec<String> {
        let parts: Vec<&str> = word.split(':').collect();
        match ProbeKind::from_alias(parts[0]) {
            Some(ProbeKind::Tracepoint) => {
                let events = self.tracefs.events();
                if parts.len() == 2 {
                    let mut categories: Vec<&str> = events
                        .iter()
                        .filter_map(|e| e.split_once(':').map(|(c, _)| c))
                        .filter(|c| c.starts_with(parts[1]))
                        .collect();
                    categories.dedup();
                    categories.into_iter().map(|c| format!("{}:{c}:", parts[0])).collect()
                } else {
                    let prefix = format!("{}:{}", parts[1], parts[2..].join(":"));
                    events.iter().filter(|e| e.starts_with(&prefix)).map(|e| format!("{}:{e}", parts[0])).collect()
                }
            }
            Some(ProbeKind::Profile | ProbeKind::Interval) if parts.len() == 2 => {
                RATE_UNITS.iter().filter(|u| u.starts_with(parts[1])).map(|u| format!("{}:{u}", parts[0])).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The kernel function whose arguments `args` holds in the block being typed: the last
    /// fentry/fexit or raw tracepoint named before the cursor.
    fn args_signature(&self, before: &str) -> Option<KFunction> {
        let spec = before
            .rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',' || c == '/')
            .find(|w| w.contains(':') && !w.starts_with(':'))?;
        let parts: Vec<&str> = spec.split(':').collect();
        let last = parts.last().copied().filter(|_| parts.len() > 1)?;
        match ProbeKind::from_alias(parts[0])? {
            ProbeKind::Fentry | ProbeKind::Fexit => self.tracefs.kernel_function_signature(last),
            ProbeKind::RawTracepoint => self.tracefs.raw_tracepoint_signature(last),
            _ => None,
        }
    }

    /// Members of the struct at the end of a chain such as `curtask->mm->` or `args->file->f_path.`
    /// (`chain` is the word up to and including its last `->` or `.`), from the kernel's BTF.
    fn chain_members(&self, before: &str, chain: &str) -> Vec<String> {
        let names: Vec<&str> = chain.split("->").flat_map(|s| s.split('.')).collect();
        let (root, path) = match names.split_first() {
            Some((root, path)) => (*root, &path[..path.len().saturating_sub(1)]),
            None => return Vec::new(),
        };
        let mut ty = match root {
            "curtask" => self.tracefs.kernel_type_named("struct task_struct"),
            _ => None,
        };
        let mut path = path;
        if root == "args" {
            let Some((first, rest)) = path.split_first() else { return Vec::new() };
            ty =
                self.args_signature(before).and_then(|f| f.params.into_iter().find(|p| p.name == *first)).map(|p| p.ty);
            path = rest;
        }
        for name in path {
            ty = ty
                .and_then(|t| self.record_fields(t))
                .and_then(|fields| fields.into_iter().find(|f| f.name == *name))
                .map(|f| f.ty);
        }
        ty.and_then(|t| self.record_fields(t))
            .map(|fields| fields.into_iter().map(|f| f.name).collect())
            .unwrap_or_default()
    }

    /// The members of a struct, or of the struct a pointer points at.
    fn record_fields(&self, ty: KTypeId) -> Option<Vec<compiler::ktypes::KField>> {
        match self.tracefs.kernel_type(ty)? {
            KType::Record { fields, .. } => Some(fields),
            KType::Pointer { to } => match self.tracefs.kernel_type(to)? {
                KType::Record { fields, .. } => Some(fields),
                _ => None,
            },
            _ => None,
        }
    }

    /// Fields of the last tracepoint named before the cursor, for `args->` / `args.`.
    fn fields(&self, before: &str) -> Vec<String> {
        if let Some(func) = self.args_signature(before) {
            return func.params.into_iter().map(|p| p.name).collect();
        }
        let Some(spec) = before.rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',' || c == '/').find(|w| {
            w.split_once(':').is_some_and(|(kind, _)| ProbeKind::from_alias(kind) == Some(ProbeKind::Tracepoint))
        }) else {
            return Vec::new();
        };
        let parts: Vec<&str> = spec.split(':').collect();
        if parts.len() != 3 || parts[1].contains('*') || parts[2].contains('*') {
            return Vec::new();
        }
        match self.tracefs.read_format(parts[1], parts[2]) {
            Ok(format) => format.fields.iter().map(|f| f.name.clone()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Every name of every probe kind rbt supports, as typed before the attach point's parts:
/// `BEGIN`, `tracepoint:`, `t:`.
fn probe_kinds() -> Vec<String> {
    let mut names = Vec::new();
    for kind in ProbeKind::supported() {
        let colon = if kind.is_bare() { "" } else { ":" };
        names.extend(kind.names().map(|name| format!("{name}{colon}")));
    }
    names
}

/// What completes inside a block: builtins (`pid`), functions with their opening parenthesis
/// (`printf(`, or `exit()` for one that takes no arguments) and keywords.
fn statement_words() -> Vec<String> {
    let builtins = BUILTINS.iter().map(|b| b.name.to_owned());
    let functions = FUNCTIONS.iter().map(|f| match f.max_args {
        Some(0) => format!("{}()", f.name),
        _ => format!("{}(", f.name),
    });
    builtins.chain(functions).chain(KEYWORDS.iter().map(|k| (*k).to_owned())).collect()
}

/// The start of the word ending at `pos`: letters, digits and `_ : @ $ * . - >`.
fn word_start(line: &str, pos: usize) -> usize {
    line[..pos]
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "_:@$*.->".contains(c)))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

fn ranked(mut candidates: Vec<String>, prefix: &str) -> Vec<Pair> {
    candidates.retain(|c| c.starts_with(prefix));
    candidates.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    candidates.dedup();
    candidates.into_iter().map(|c| Pair { display: c.clone(), replacement: c }).collect()
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        match self.candidates(line, pos) {
            Some(found) => Ok(found),
            None => self.files.complete(line, pos, ctx),
        }
    }
}

impl ReplHelper {
    /// The completions of the word ending at `pos` and where it starts; `None` where file names
    /// complete (after `:save` and `:load`).
    fn candidates(&self, line: &str, pos: usize) -> Option<(usize, Vec<Pair>)> {
        let pending = self.pending.borrow();
        let trimmed = line.trim_start();
        // Commands and their arguments.
        if pending.is_empty() && trimmed.starts_with(':') {
            let lead = line.len() - trimmed.len();
            let command_end = line[lead..].find(char::is_whitespace).map_or(line.len(), |i| lead + i);
            if pos <= command_end {
                let names = commands::NAMES.iter().map(|n| format!(":{n}")).collect();
                return Some((lead, ranked(names, &line[lead..pos])));
            }
            let command = &line[lead + 1..command_end];
            if matches!(command, "save" | "load") {
                return None;
            }
            let start = word_start(line, pos);
            let word = &line[start..pos];
            let candidates = match command {
                "help" => commands::NAMES.iter().map(|n| (*n).to_owned()).collect(),
                "format" => vec!["text".to_owned(), "json".to_owned()],
                "list" | "fields" if word.contains(':') => self.probe_specs(word),
                "list" | "fields" => vec!["tracepoint:".to_owned()],
                _ => self.map_names(),
            };
            return Some((start, ranked(candidates, word)));
        }
        let start = word_start(line, pos);
        let word = &line[start..pos];
        let before = format!("{pending}{}", &line[..start]);
        // A member chain through kernel types: `curtask->real_parent->co`, `args->file->f_`.
        let cut = word.rfind("->").map(|i| i + 2).into_iter().chain(word.rfind('.').map(|i| i + 1)).max();
        if let Some(cut) = cut.filter(|_| !word.contains(':')) {
            let field = &word[cut..];
            let chain = &word[..cut];
            let at = pos - field.len();
            if chain == "args->" || chain == "args." {
                return Some((at, ranked(self.fields(&before), field)));
            }
            return Some((at, ranked(self.chain_members(&before, chain), field)));
        }
        if word.starts_with('@') {
            return Some((start, ranked(self.map_names(), word)));
        }
        if word.contains(':') {
            return Some((start, ranked(self.probe_specs(word), word)));
        }
        // Outside any block: probe types; inside one: builtins and functions.
        let open = before.matches('{').count() > before.matches('}').count();
        let mut candidates: Vec<String> = if open { statement_words() } else { probe_kinds() };
        if !open && pending.is_empty() {
            // A bare statement list is an entry too.
            candidates.extend(statement_words());
        }
        Some((start, ranked(candidates, word)))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_stop_at_punctuation() {
        assert_eq!(word_start("t:sched:sched_sw", 16), 0);
        assert_eq!(word_start("BEGIN { @cou", 12), 8);
        assert_eq!(word_start("{ $x = args->fi", 15), 7);
    }

    /// A completer over the check goldens' fixture system (`tests/data/catalog/default`), and
    /// what it offers for `line` with the cursor at its end.
    fn completions(line: &str) -> Vec<String> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/catalog/default");
        let catalog = catalog::Catalog::new(crate::host::HostSource::Sysroot(crate::host::DirSource::new(root)));
        let helper = ReplHelper::without_session(catalog);
        let (_, pairs) = helper.candidates(line, line.len()).expect("no file completion here");
        pairs.into_iter().map(|p| p.replacement).collect()
    }

    #[test]
    fn every_probe_kind_completes() {
        for kind in ProbeKind::ALL {
            for name in kind.names() {
                let typed = &name[..name.len() - 1];
                let wanted = if kind.is_bare() { name.to_owned() } else { format!("{name}:") };
                let offered = completions(typed);
                assert_eq!(offered.contains(&wanted), kind.is_supported(), "{typed:?} offers {offered:?}");
            }
        }
        assert_eq!(completions("t:sched:sched_sw"), ["t:sched:sched_switch"]);
        assert!(completions("profile:h").contains(&"profile:hz:".to_owned()));
    }

    #[test]
    fn every_builtin_and_function_completes_in_a_block() {
        for builtin in BUILTINS {
            let line = format!("kprobe:f {{ {}", &builtin.name[..builtin.name.len() - 1]);
            assert!(completions(&line).iter().any(|c| c == builtin.name), "{line:?}");
        }
        for function in FUNCTIONS {
            let line = format!("BEGIN {{ @x = {}", function.name);
            let offered = completions(&line);
            let wanted = [format!("{}(", function.name), format!("{}()", function.name)];
            assert!(offered.iter().any(|c| wanted.contains(c)), "{line:?} offers {offered:?}");
        }
        // A bare statement list is an entry too.
        assert!(completions("prin").contains(&"printf(".to_owned()));
    }

    #[test]
    fn shortest_candidates_come_first() {
        let pairs = ranked(vec!["sched_swap_numa".into(), "sched_switch".into(), "other".into()], "sched_sw");
        let names: Vec<&str> = pairs.iter().map(|p| p.replacement.as_str()).collect();
        assert_eq!(names, ["sched_switch", "sched_swap_numa"]);
    }
}
