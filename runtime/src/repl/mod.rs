//! The interactive session (`rbt` on a terminal, or `rbt repl`): entries are compiled and
//! attached as they are typed and keep running while the user types the next; maps are one
//! namespace for the whole session; `:` commands inspect and steer it.
//!
//! Two threads share the session behind a mutex. The main thread reads input (rustyline),
//! compiles entries and runs commands. The output thread polls the event buffers and prints
//! what probes emit above the prompt, in batches, so a flood of events does not slow typing.

mod commands;
mod complete;
mod entry;
mod output_thread;

use std::io::{self, IsTerminal, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, Editor};

use crate::output::OutputFormat;
use crate::session::lifecycle::Tracing;
use crate::session::{Session, SessionError};
use compiler::hir::AttachPoint;
use compiler::CompileOptions;
use entry::{Entry, EntryShape};
use runtime::kernel::os::{self, TerminalSettings};
use runtime::kernel::signals::{self, SIGINT, SIGTERM};
use runtime::kernel::sys;

/// Error counters are kept per probe for this many probes (the rest share the last slot).
const PROBE_SLOTS: u32 = 1024;

const PROMPT: &str = "rbt> ";
const CONTINUATION_PROMPT: &str = "...> ";

/// A group of programs the user sees as one probe: one attach point as written in one entry
/// (a wildcard may have expanded to many programs).
pub struct ProbeGroup {
    pub id: usize,
    pub entry: usize,
    pub spec: String,
    /// Where the attach point is in the session's program.
    pub spec_span: grammar::Span,
    /// Indices into the session's program.
    pub programs: Vec<usize>,
    /// Detached by `:detach` (or never attached): left out of `:save`.
    pub detached: bool,
    /// The run count when it was detached (the kernel forgets it with the programs).
    pub final_hits: Option<u64>,
}

/// Everything both threads touch.
pub struct Shared {
    pub session: Session,
    /// The events (once the first entry has created their buffers), and what has been reported
    /// of them and of the END programs that already ran (after an `exit()`, so that `:quit`
    /// does not run them again).
    pub tracing: Tracing,
    pub entries: Vec<Entry>,
    pub groups: Vec<ProbeGroup>,
    /// The session's program text: every entry's source, each followed by a newline.
    pub source: String,
}

pub type SharedRef = Arc<Mutex<Shared>>;

/// Locks the shared state; a thread that panicked while holding it leaves it usable.
pub fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the REPL needs from the command line.
pub struct ReplOptions {
    pub format: OutputFormat,
    pub compile: CompileOptions,
}

/// Whether `rbt` with no program should open the REPL: stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

/// Runs the REPL until `:quit`, Ctrl-D or SIGTERM.
pub fn run(mut options: ReplOptions) -> Result<(), String> {
    let tracefs = crate::host::open_catalog().map_err(|e| e.to_string())?;
    options.compile.lower.probe_slots = PROBE_SLOTS;
    let session = Session::new(options.format, false).map_err(|e| e.to_string())?;
    save_terminal();
    // SIGTERM ends the session from the output thread; SIGINT only matters during :watch (at the
    // prompt the terminal is raw and Ctrl-C is a key). Blocked before any thread starts.
    signals::block(&[SIGINT, SIGTERM]).map_err(|e| format!("cannot block signals: {e}"))?;
    // Per-program run counts for `:probes`, for as long as this descriptor is open.
    let _stats = sys::enable_run_stats().ok();
    let shared: SharedRef = Arc::new(Mutex::new(Shared {
        session,
        tracing: Tracing::new(None),
        entries: Vec::new(),
        groups: Vec::new(),
        source: String::new(),
    }));
    let helper =
        complete::ReplHelper::new(crate::host::open_catalog().map_err(|e| e.to_string())?, Arc::clone(&shared));
    let config = Config::builder().auto_add_history(false).max_history_size(10_000).map_err(|e| e.to_string())?.build();
    let mut editor: Editor<complete::ReplHelper, DefaultHistory> =
        Editor::with_config(config).map_err(|e| format!("cannot open the terminal: {e}"))?;
    editor.set_helper(Some(helper));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let printer = editor.create_external_printer().map_err(|e| format!("cannot print above the prompt: {e}"))?;
    let output = output_thread::OutputThread::start(Arc::clone(&shared), Box::new(printer))
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    println!(
        "rbt {} — type a probe block or a statement; :help for commands, :quit to leave.",
        env!("CARGO_PKG_VERSION")
    );

    let mut repl = Repl { shared, tracefs, options, output, history };
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() { PROMPT } else { CONTINUATION_PROMPT };
        if let Some(h) = editor.helper_mut() {
            h.set_pending(&pending);
        }
        match editor.readline(prompt) {
            Ok(line) => {
                pending.push_str(&line);
                if entry::is_incomplete(&pending) {
                    pending.push('\n');
                    continue;
                }
                let input = std::mem::take(&mut pending);
                if input.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(input.as_str());
                if let Some(path) = &repl.history {
                    let _ = editor.append_history(path);
                }
                if repl.handle(&input) == Flow::Quit {
                    break;
                }
            }
            // Ctrl-C clears the line (and any continued entry).
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("ERROR: reading input: {e}");
                break;
            }
        }
    }
    repl.quit();
    Ok(())
}

/// `$XDG_STATE_HOME/rbt/history`, else `~/.rbt_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        let dir = PathBuf::from(state).join("rbt");
        let _ = std::fs::create_dir_all(&dir);
        return Some(dir.join("history"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".rbt_history"))
}

#[derive(PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct Repl {
    pub shared: SharedRef,
    pub tracefs: crate::host::HostCatalog,
    pub options: ReplOptions,
    output: output_thread::OutputThread,
    history: Option<PathBuf>,
}

impl Repl {
    /// One complete input: a command or an entry.
    pub fn handle(&mut self, input: &str) -> Flow {
        let trimmed = input.trim();
        if let Some(command) = trimmed.strip_prefix(':') {
            return commands::run(self, command);
        }
        self.submit(input.trim_end_matches('\n'), "entry");
        Flow::Continue
    }

    /// Compiles an entry into the session's program, loads and attaches its probes and runs its
    /// BEGIN blocks. A rejected entry is reported against its own text and changes nothing.
    pub fn submit(&mut self, text: &str, name: &str) -> bool {
        let shape = match entry::shape(text) {
            Ok(shape) => shape,
            Err(diags) => {
                crate::diagnostics::emit(&diags, name, text);
                return false;
            }
        };
        let mut shared = lock(&self.shared);
        let entry_source = entry::source_for(text, &shape);
        let offset = shared.source.len();
        let combined = format!("{}{entry_source}\n", shared.source);
        let (compiled, diags) =
            compiler::compile(&combined, &self.tracefs as &dyn compiler::ProbeCatalog, &self.options.compile);
        let text_offset = offset + entry_source.find(text).unwrap_or(0);
        report_entry_diagnostics(&diags, name, text, &combined, text_offset);
        let Some(compiled) = compiled else { return false };
        let known = shared.session.program.probes.len();
        if !extends(&shared.session.program, &compiled, known) {
            eprintln!("ERROR: the probes of earlier entries no longer compile the same way (a wildcard now matches other tracepoints); detach them or start a new session");
            return false;
        }
        if let Some(diag) = changed_map_layout(&shared.session.program, &compiled, text) {
            crate::diagnostics::emit(&[diag], name, text);
            return false;
        }
        let range = match shared.session.extend(compiled) {
            Ok(range) => range,
            Err(e) => {
                report_session_error(&e, name, text, text_offset);
                return false;
            }
        };
        if !shared.tracing.has_events() {
            match shared.session.events() {
                Ok(source) => shared.tracing.set_events(source),
                Err(e) => eprintln!("ERROR: cannot read events: {e}"),
            }
        }
        let id = shared.entries.len() + 1;
        shared.entries.push(Entry { id, source: entry_source, offset });
        shared.source = combined;
        add_groups(&mut shared, id, range.clone());
        if let Err(e) = shared.session.attach(range.clone(), &self.tracefs) {
            // Keep the entry's text (it numbers formats and probes) but none of its probes.
            detach_range(&mut shared, range);
            report_session_error(&e, name, text, text_offset);
            return false;
        }
        let (probes, has_begin) = describe(&shared.session, range.clone(), shape);
        if !probes.is_empty() {
            println!("Attached {probes} (entry {id}).");
        }
        // BEGIN's output, before the prompt returns (an exit() in it ends tracing there).
        let mut out = Vec::new();
        if has_begin {
            let Shared { session, tracing, .. } = &mut *shared;
            if let Err(e) = tracing.begin(session, range, &mut out) {
                eprintln!("ERROR: running BEGIN: {e}");
            }
        }
        output_thread::drain(&mut shared, &mut out);
        drop(shared);
        let _ = io::stdout().write_all(&out);
        let _ = io::stdout().flush();
        true
    }

    /// Ends the session: END blocks, the exit dump, everything detached.
    pub fn quit(&mut self) {
        self.output.stop();
        let mut shared = lock(&self.shared);
        shared.tracing.resume();
        let mut out = Vec::new();
        finish(&mut shared, &mut out);
        let mut stdout = io::stdout().lock();
        let _ = stdout.write_all(&out);
        let _ = stdout.flush();
    }
}

/// What `exit()`, SIGTERM and `:quit` do: the session's end, as a script's (queued records,
/// every END program not yet run, the exit dump, the warnings), into `out`, which is drawn
/// above the prompt; every probe is detached and the maps stay.
pub fn finish(shared: &mut Shared, out: &mut Vec<u8>) {
    for group in &mut shared.groups {
        if group.final_hits.is_none() {
            group.final_hits = group.programs.iter().map(|&p| shared.session.run_count(p)).sum();
        }
    }
    let Shared { session, tracing, .. } = shared;
    match tracing.end(session, out) {
        Ok(ending) => {
            let _ = ending.write_dump(out, session.format, false);
            let _ = ending.warnings.write(out);
        }
        Err(e) => {
            let _ = writeln!(out, "ERROR: {e}");
            for i in session.all() {
                session.detach(i);
            }
        }
    }
}

/// The terminal's settings when the REPL started, restored when SIGTERM ends it mid-edit.
static TERMINAL: std::sync::OnceLock<TerminalSettings> = std::sync::OnceLock::new();

fn save_terminal() {
    // Not a terminal: nothing to restore.
    if let Some(settings) = os::stdin_terminal_settings() {
        let _ = TERMINAL.set(settings);
    }
}

pub fn restore_terminal() {
    if let Some(settings) = TERMINAL.get() {
        os::restore_stdin_terminal(settings);
    }
}

/// Whether `new` keeps the first `known` probes of `old` as they were.
fn extends(old: &compiler::CompiledProgram, new: &compiler::CompiledProgram, known: usize) -> bool {
    new.probes.len() >= known
        && old
            .probes
            .iter()
            .zip(&new.probes)
            .all(|(a, b)| a.name == b.name && a.attach.probe_name() == b.attach.probe_name())
}

/// A map the entry would give another layout (a longer string, other lhist bounds): the kernel
/// map exists already and cannot change, so the entry is refused with the map's first use in it.
fn changed_map_layout(
    old: &compiler::CompiledProgram,
    new: &compiler::CompiledProgram,
    text: &str,
) -> Option<grammar::Diagnostic> {
    for (index, decl) in old.maps.iter().enumerate() {
        let (Some(old_bpf), Some(new_decl)) = (old.bpf_maps.get(old.map_storage[index]), new.maps.get(index)) else {
            continue;
        };
        let new_bpf = &new.bpf_maps[new.map_storage[index]];
        if old_bpf == new_bpf {
            continue;
        }
        let name = decl.display_name();
        let describe = |d: &compiler::hir::MapDecl| {
            let key: Vec<String> = d.key.iter().map(ToString::to_string).collect();
            let key = if key.is_empty() { String::new() } else { format!("[{}]", key.join(", ")) };
            format!("{}{key} = {}", d.display_name(), commands::value_kind(&d.value))
        };
        let at = find_map_use(text, &name).unwrap_or(0..0);
        return Some(
            grammar::Diagnostic::error(
                "map-layout",
                format!("this entry changes {name} from `{}` to `{}`", describe(decl), describe(new_decl)),
                grammar::Span::new(at.start, at.end),
            )
            .with_help("a map keeps its layout while the session runs: use another map name, or :quit and start over"),
        );
    }
    None
}

/// Where `@name` first appears in `text` as a whole map name.
fn find_map_use(text: &str, name: &str) -> Option<Range<usize>> {
    let mut from = 0;
    while let Some(i) = text[from..].find(name) {
        let start = from + i;
        let end = start + name.len();
        let next = text[end..].chars().next();
        if !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Some(start..end);
        }
        from = end;
    }
    None
}

/// Groups an entry's programs by the attach point they were written as.
fn add_groups(shared: &mut Shared, entry: usize, range: Range<usize>) {
    for index in range {
        let probe = &shared.session.program.probes[index];
        let spec = shared.source.get(probe.spec_span.range()).unwrap_or("?").to_owned();
        let spec_span = probe.spec_span;
        let existing = shared.groups.iter_mut().find(|g| {
            g.entry == entry
                && g.programs.first().is_some_and(|&first| shared.session.program.probes[first].spec_span == spec_span)
        });
        match existing {
            Some(group) => group.programs.push(index),
            None => {
                let id = shared.groups.len() + 1;
                shared.groups.push(ProbeGroup {
                    id,
                    entry,
                    spec,
                    spec_span,
                    programs: vec![index],
                    detached: false,
                    final_hits: None,
                });
            }
        }
    }
}

fn detach_range(shared: &mut Shared, range: Range<usize>) {
    for i in range.clone() {
        shared.session.detach(i);
    }
    for group in &mut shared.groups {
        if group.programs.iter().any(|p| range.contains(p)) {
            group.detached = true;
        }
    }
}

/// "2 probes" / "1 probe", counting attach points (BEGIN and END included), and whether any
/// BEGIN program is among them.
fn describe(session: &Session, range: Range<usize>, shape: EntryShape) -> (String, bool) {
    let probes = &session.program.probes[range];
    let has_begin = probes.iter().any(|p| p.attach == AttachPoint::Begin);
    if shape == EntryShape::Statements {
        return (String::new(), has_begin);
    }
    let n = probes.len();
    (if n == 1 { "1 probe".to_owned() } else { format!("{n} probes") }, has_begin)
}

/// Prints diagnostics of the session's program against the entry they belong to.
fn report_entry_diagnostics(diags: &[grammar::Diagnostic], name: &str, text: &str, combined: &str, text_offset: usize) {
    for d in diags {
        let start = d.primary_span().start as usize;
        if start >= text_offset && start <= text_offset + text.len() {
            let shifted = entry::shift_diagnostic(d.clone(), text_offset, text.len());
            crate::diagnostics::emit(&[shifted], name, text);
        } else {
            crate::diagnostics::emit(std::slice::from_ref(d), "session", combined);
        }
    }
}

fn report_session_error(e: &SessionError, name: &str, text: &str, text_offset: usize) {
    match e {
        SessionError::Verifier { probe, span, log, insn } => {
            let start = (span.start as usize).saturating_sub(text_offset).min(text.len());
            let end = (span.end as usize).saturating_sub(text_offset).min(text.len()).max(start);
            let sources = grammar::Sources::of_script(name, text);
            crate::verifier_report::report(name, &sources, probe, grammar::Span::new(start, end), log, *insn);
        }
        other => eprintln!("ERROR: {other}"),
    }
}
