//! The directives: conditional groups, `#define`/`#undef`, `#include` (where a header is found,
//! and what is done with it), `#error`, `#warning`, `#pragma once`.

use super::scan::{self, Dialect, Kind, PpToken};
use super::{
    eval, headers, join, parent_dir, Cond, FileState, Mode, Preprocessor, MAX_INCLUDE_DEPTH, MAX_SYSTEM_FILES,
};
use crate::{Diagnostic, Span};

/// Where an included file was found.
enum Found {
    /// A file read: its path, text, and the system directory it is in (`None`: a local file).
    File {
        path: String,
        text: String,
        system: Option<usize>,
    },
    /// No file, but a header rbt knows (the kernel's, the compiler's, or one of the table).
    Known,
    Missing {
        searched: Vec<String>,
    },
}

/// Builtin functions of clang that `#if` may use; none of their features matter here.
const HAS_FUNCTIONS: [&str; 9] = [
    "__has_attribute",
    "__has_builtin",
    "__has_feature",
    "__has_extension",
    "__has_cpp_attribute",
    "__has_c_attribute",
    "__has_declspec_attribute",
    "__has_warning",
    "__is_identifier",
];

impl Preprocessor<'_> {
    pub(super) fn directive(&mut self, f: &mut FileState<'_>, start: usize, text: &str, offsets: &[usize]) {
        // A script's macros may hold `@map` and `$var`, which are one token each there.
        let dialect = if f.mode == Mode::Script { Dialect::Script } else { Dialect::C };
        let tokens = scan::tokens(text, dialect);
        let span_of = |t: &PpToken| {
            let from = offsets.get(t.start).copied().unwrap_or(0);
            let to = offsets.get(t.end.saturating_sub(1)).map_or(from, |o| o + 1);
            Span::new(f.base + start + from, f.base + start + to)
        };
        let Some(name) = tokens.get(1) else { return };
        let whole = span_of(&tokens[0]).to(span_of(tokens.last().unwrap_or(name)));
        let span = span_of(&tokens[0]).to(span_of(name));
        let args = &tokens[2..];
        match &*name.text {
            "if" | "ifdef" | "ifndef" => {
                let active = f.active();
                let value = active && self.condition(f, &name.text, args, span);
                f.conds.push(Cond { active: value, taken: !active || value, else_seen: false, span });
            }
            "elif" | "elifdef" | "elifndef" | "else" => self.alternative(f, &name.text, args, span),
            "endif" => {
                if f.conds.pop().is_none() {
                    self.error(f, Diagnostic::error("preprocessor", "`#endif` without `#if`", span));
                }
            }
            _ if !f.active() => {}
            "define" => {
                if let Err(why) = self.macros.define(args, f.mode == Mode::System) {
                    self.error(f, Diagnostic::error("preprocessor", format!("invalid `#define`: {why}"), whole));
                }
            }
            "undef" => match args.first() {
                Some(t) if t.kind == Kind::Ident => self.macros.undefine(&t.text),
                _ => self.error(f, Diagnostic::error("preprocessor", "`#undef` needs a macro name", whole)),
            },
            "include" | "include_next" | "import" => self.include(f, args, name.is("include_next"), whole),
            "error" | "warning" => {
                let message = text[tokens.get(2).map_or(text.len(), |t| t.start)..].trim().to_owned();
                let diagnostic = if name.is("error") {
                    Diagnostic::error("preprocessor", format!("#error {message}"), whole)
                } else {
                    Diagnostic::warning("preprocessor", format!("#warning {message}"), whole)
                };
                self.error(f, diagnostic);
            }
            "pragma" => {
                if args.first().is_some_and(|t| t.is("once")) {
                    self.once.insert(f.name.clone());
                }
            }
            "line" | "ident" | "sccs" | "assert" | "unassert" => {}
            other => {
                let message = format!("unknown preprocessor directive `#{other}`");
                self.error(f, Diagnostic::error("preprocessor", message, span));
            }
        }
    }

    /// `#elif`, `#elifdef`, `#elifndef` and `#else`.
    fn alternative(&mut self, f: &mut FileState<'_>, name: &str, args: &[PpToken], span: Span) {
        let Some(last) = f.conds.last() else {
            self.error(f, Diagnostic::error("preprocessor", format!("`#{name}` without `#if`"), span));
            return;
        };
        if last.else_seen {
            let open = last.span;
            let diagnostic = Diagnostic::error("preprocessor", format!("`#{name}` after `#else`"), span)
                .with_label(open, "in this conditional");
            self.error(f, diagnostic);
            return;
        }
        let enclosing = f.conds.len().checked_sub(2).is_none_or(|i| f.conds[i].active);
        let taken = last.taken;
        let value = if name == "else" {
            !taken
        } else {
            let condition = name.replace("elif", "if");
            !taken && enclosing && self.condition(f, &condition, args, span)
        };
        if let Some(last) = f.conds.last_mut() {
            last.active = enclosing && value;
            last.taken = taken || value;
            last.else_seen = name == "else";
        }
    }

    /// Whether the condition of `#if`, `#ifdef` or `#ifndef` holds.
    fn condition(&mut self, f: &FileState<'_>, directive: &str, args: &[PpToken], span: Span) -> bool {
        if directive != "if" {
            let Some(name) = args.first().filter(|t| t.kind == Kind::Ident) else {
                let message = format!("`#{directive}` needs a macro name");
                self.error(f, Diagnostic::error("preprocessor", message, span));
                return false;
            };
            return self.macros.is_defined(&name.text) == (directive == "ifdef");
        }
        let replaced = self.replace_defined(f, args);
        let expanded = self.macros.expand(replaced);
        let expanded = replace_has_functions(expanded);
        match eval::evaluate(&expanded, &|_| Some(0)) {
            Ok(value) => value != 0,
            Err(why) => {
                self.error(f, Diagnostic::error("preprocessor", format!("invalid `#if` condition: {why}"), span));
                false
            }
        }
    }

    /// `defined NAME`, `defined(NAME)` and `__has_include(...)` as `1` or `0`, before the rest
    /// of the condition is expanded.
    fn replace_defined(&self, f: &FileState<'_>, args: &[PpToken]) -> Vec<PpToken> {
        let mut out = Vec::new();
        let mut i = 0;
        let number =
            |yes: bool, t: &PpToken| PpToken::synthetic(Kind::Number, if yes { "1" } else { "0" }, t.space_before);
        while i < args.len() {
            let t = &args[i];
            if t.is("defined") {
                let (name, used) = match (args.get(i + 1), args.get(i + 2), args.get(i + 3)) {
                    (Some(open), Some(name), Some(close)) if open.is("(") && close.is(")") => (Some(name), 4),
                    (Some(name), _, _) if name.kind == Kind::Ident => (Some(name), 2),
                    _ => (None, 1),
                };
                out.push(number(name.is_some_and(|n| self.macros.is_defined(&n.text)), t));
                i += used;
                continue;
            }
            if t.is("__has_include") || t.is("__has_include_next") {
                if let Some(close) = args[i..].iter().position(|a| a.is(")")) {
                    let inner = &args[(i + 2).min(i + close)..i + close];
                    let found = header_name(inner).is_some_and(|(header, quoted)| {
                        !matches!(self.find(f, &header, quoted, t.is("__has_include_next")), Found::Missing { .. })
                    });
                    out.push(number(found, t));
                    i += close + 1;
                    continue;
                }
            }
            out.push(t.clone());
            i += 1;
        }
        out
    }

    /// `--include FILE`: as `#include "FILE"` before the script's first line.
    pub(super) fn forced_include(&mut self, file: &str) {
        let mut top = FileState::new("", 0, String::new(), String::new(), Mode::Script, None);
        let name = PpToken::synthetic(Kind::Str, &format!("\"{file}\""), false);
        self.include(&mut top, &[name], false, Span::new(0, 0));
    }

    fn include(&mut self, f: &mut FileState<'_>, args: &[PpToken], next: bool, span: Span) {
        let named = header_name(args).or_else(|| header_name(&self.macros.expand(args.to_vec())));
        let Some((header, quoted)) = named else {
            let message = "`#include` expects \"FILE\" or <FILE>";
            self.error(f, Diagnostic::error("preprocessor", message, span));
            return;
        };
        match self.find(f, &header, quoted, next) {
            Found::File { path, text, system } => {
                let mode = if f.mode == Mode::System || system.is_some() { Mode::System } else { Mode::Script };
                if f.mode == Mode::Script && mode == Mode::System {
                    self.note_system_header(&header);
                }
                self.read_included(f, path, &text, mode, system, span);
                if f.mode == Mode::Script && mode == Mode::System {
                    self.table_fallback(&header);
                }
            }
            Found::Known => {
                if f.mode == Mode::Script {
                    self.note_system_header(&header);
                }
                self.table_fallback(&header);
            }
            Found::Missing { searched } => {
                let written = if quoted { format!("\"{header}\"") } else { format!("<{header}>") };
                let mut diagnostic = Diagnostic::error("include-not-found", format!("'{header}' file not found"), span);
                if !searched.is_empty() {
                    diagnostic = diagnostic.with_help(format!("{written} was looked for in: {}", searched.join(", ")));
                }
                self.error(f, diagnostic);
            }
        }
    }

    /// Preprocesses an included file in place of its `#include`.
    fn read_included(
        &mut self,
        f: &FileState<'_>,
        path: String,
        text: &str,
        mode: Mode,
        system: Option<usize>,
        span: Span,
    ) {
        if self.once.contains(&path) {
            return;
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            let message =
                format!("`#include` nested more than {MAX_INCLUDE_DEPTH} deep (does '{path}' include itself?)");
            self.error(f, Diagnostic::error("preprocessor", message, span));
            return;
        }
        if mode == Mode::System {
            if self.system_files >= MAX_SYSTEM_FILES {
                return;
            }
            self.system_files += 1;
        }
        let base = if mode == Mode::Script { self.out.sources.add(&path, text) } else { 0 };
        let dir = parent_dir(&path);
        let mut inner = super::FileState::new(text, base, path, dir, mode, system.or(f.found_at));
        self.depth += 1;
        self.file(&mut inner);
        self.depth -= 1;
        if mode == Mode::Script && !text.is_empty() && !text.ends_with('\n') {
            self.produce("\n", span.range());
        }
    }

    fn note_system_header(&mut self, header: &str) {
        if !self.out.system_headers.iter().any(|h| h == header) {
            self.out.system_headers.push(header.to_owned());
        }
    }

    /// The embedded table's constants of `header` that nothing defined yet: all of them where
    /// the machine has no such header, the kernel's own where it has only the user-space one.
    fn table_fallback(&mut self, header: &str) {
        for (name, value) in headers::constants_of(header) {
            if !self.macros.is_defined(name) && !self.enums.contains_key(name) {
                self.macros.define_text(name, &value.to_string(), true);
            }
        }
    }

    /// Looks a header up: quoted ones beside the including file and in the working directory
    /// first, then `-I` directories (local files), then the system's directories.
    fn find(&self, f: &FileState<'_>, header: &str, quoted: bool, next: bool) -> Found {
        let mut candidates: Vec<(String, Option<usize>)> = Vec::new();
        let system_dirs = &self.options.system.dirs;
        if header.starts_with('/') {
            candidates.push((header.to_owned(), None));
        } else if next {
            let after = f.found_at.map_or(0, |i| i + 1);
            candidates.extend(system_dirs.iter().enumerate().skip(after).map(|(i, d)| (join(d, header), Some(i))));
        } else {
            let local = if f.mode == Mode::System { f.found_at } else { None };
            if quoted {
                candidates.push((join(&f.dir, header), local));
                if f.mode == Mode::Script && !f.dir.is_empty() {
                    candidates.push((header.to_owned(), None));
                }
            }
            candidates.extend(self.options.include_dirs.iter().map(|d| (join(d, header), local)));
            candidates.extend(system_dirs.iter().enumerate().map(|(i, d)| (join(d, header), Some(i))));
        }
        for (path, system) in &candidates {
            if let Some(text) = self.files.read(path) {
                return Found::File { path: path.clone(), text, system: *system };
            }
        }
        if headers::is_known(header) {
            return Found::Known;
        }
        Found::Missing { searched: candidates.into_iter().map(|(path, _)| path).collect() }
    }
}

/// `"file.h"` or `<dir/file.h>` from a directive's tokens: the name and whether it was quoted.
fn header_name(tokens: &[PpToken]) -> Option<(String, bool)> {
    let first = tokens.first()?;
    if first.kind == Kind::Str {
        let name = first.text.strip_prefix('"')?.strip_suffix('"')?;
        return Some((name.to_owned(), true));
    }
    if first.is("<") {
        let close = tokens.iter().position(|t| t.is(">"))?;
        let mut name = String::new();
        for (i, t) in tokens[1..close].iter().enumerate() {
            if i > 0 && t.space_before {
                name.push(' ');
            }
            name.push_str(&t.text);
        }
        return Some((name, false));
    }
    None
}

/// clang's `__has_attribute(x)` and its kin as `0`, so that the headers' fallbacks are taken.
fn replace_has_functions(tokens: Vec<PpToken>) -> Vec<PpToken> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if t.kind == Kind::Ident && HAS_FUNCTIONS.contains(&&*t.text) && tokens.get(i + 1).is_some_and(|n| n.is("(")) {
            let mut depth = 0usize;
            let mut j = i + 1;
            while j < tokens.len() {
                if tokens[j].is("(") {
                    depth += 1;
                } else if tokens[j].is(")") {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                j += 1;
            }
            out.push(PpToken::synthetic(Kind::Number, "0", t.space_before));
            i = j + 1;
            continue;
        }
        out.push(t.clone());
        i += 1;
    }
    out
}
