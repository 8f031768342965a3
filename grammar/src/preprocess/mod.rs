//! The C preprocessor bpftrace scripts rely on, run over the script before it is lexed:
//! `#include` (local files really included; kernel and system headers satisfied from BTF, their
//! integer constants read from the header files when the machine has them, else from an
//! embedded table), `#define`/`#undef` with object-like and function-like macros expanded in the
//! script, `#if`/`#ifdef`/`#ifndef`/`#elif`/`#else`/`#endif`, line continuations and comments.
//!
//! ```text
//! #ifndef BPFTRACE_HAVE_BTF         <- blanked; BPFTRACE_HAVE_BTF is defined when BTF is there
//! #include <linux/socket.h>         <- skipped with the group
//! #else
//! #include <sys/socket.h>           <- read as a system header: AF_INET becomes 2 in the script
//! #endif
//! kprobe:tcp_connect { if (((struct sock *)arg0)->__sk_common.skc_family == AF_INET) { ... } }
//! ```
//!
//! The output keeps the script's layout: directive lines and skipped groups become spaces, so
//! without macros and includes every byte stays where it was. A [`SourceMap`] maps the rest
//! (macro expansions, included text) back to the original files, which [`Sources`] holds, so
//! diagnostics point at what the user wrote. A system header is not script text: only its
//! macros and enum constants are kept, and in the script only those whose value is an integer
//! constant are used (a header's `#define sa_handler _u._sa_handler` never touches a script).

mod body;
mod directives;
mod eval;
mod headers;
mod macros;
mod scan;
mod source_map;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use crate::{Diagnostic, Span};
use macros::Macros;
use scan::{Dialect, Line};

pub use headers::header_defining;
pub use source_map::{SourceFile, SourceMap, Sources};

/// How many files one include chain may nest; a header that includes itself stops here.
const MAX_INCLUDE_DEPTH: usize = 64;

/// How many system header files one program may read in all (a kernel tree's headers include
/// thousands of others; their constants are found long before this).
const MAX_SYSTEM_FILES: usize = 4000;

/// Reads the files `#include` names. The runtime reads the file system; tests hold files in
/// memory.
pub trait IncludeFiles {
    /// The text of the file at `path` (relative paths are relative to the working directory), or
    /// `None` when there is none.
    fn read(&self, path: &str) -> Option<String>;
}

/// No files at all: local includes are not found, system headers come from the embedded table.
pub struct NoFiles;

impl IncludeFiles for NoFiles {
    fn read(&self, _path: &str) -> Option<String> {
        None
    }
}

/// Where system headers are: the kernel's include tree first when it is installed, then the C
/// library's directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemIncludes {
    pub dirs: Vec<String>,
    /// Whether `dirs` hold a kernel tree (`/lib/modules/RELEASE/build`): then `__KERNEL__` is
    /// defined, as bpftrace defines it when it builds with kernel headers.
    pub kernel_tree: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreprocessOptions {
    /// The script's path: quoted includes are looked up beside it. `None` for `-e` and stdin.
    pub script_path: Option<String>,
    /// `-I DIR`: searched after the script's directory and the working directory.
    pub include_dirs: Vec<String>,
    /// `--include FILE`: included before the script's first line, as clang's `-include`.
    pub include_files: Vec<String>,
    pub system: SystemIncludes,
    /// Macros defined before the script, such as `BPFTRACE_HAVE_BTF`.
    pub defines: Vec<(String, String)>,
}

/// A preprocessed program: the text the lexer reads, and where each part of it came from.
#[derive(Clone, Debug, Default)]
pub struct Preprocessed {
    pub text: String,
    /// From `text`'s offsets to the original offset space of `sources`.
    pub map: SourceMap,
    pub sources: Sources,
    /// The preprocessor's own diagnostics, in the original offset space.
    pub diagnostics: Vec<Diagnostic>,
    /// The system headers the script included, as written (`linux/sched.h`), for hints.
    pub system_headers: Vec<String>,
}

/// Preprocesses a script.
pub fn preprocess(src: &str, files: &dyn IncludeFiles, options: &PreprocessOptions) -> Preprocessed {
    let mut pp = Preprocessor {
        files,
        options,
        macros: Macros::default(),
        enums: HashMap::new(),
        out: Preprocessed::default(),
        once: HashSet::new(),
        depth: 0,
        system_files: 0,
    };
    predefine(&mut pp.macros, options);
    let name = options.script_path.clone().unwrap_or_else(|| "stdin".to_owned());
    let base = pp.out.sources.add(&name, src);
    for file in &options.include_files {
        pp.forced_include(file);
    }
    let dir = options.script_path.as_deref().map(parent_dir).unwrap_or_default();
    pp.file(&mut FileState::new(src, base, name, dir, Mode::Script, None));
    pp.out
}

/// The macros every script sees: the target's, as the host compiler bpftrace runs predefines
/// them, then the options' own.
fn predefine(macros: &mut Macros, options: &PreprocessOptions) {
    let arch: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["__x86_64__", "__x86_64", "__amd64__", "__amd64"],
        "aarch64" => &["__aarch64__"],
        _ => &[],
    };
    for name in arch {
        macros.define_text(name, "1", false);
    }
    let common = [
        ("__linux__", "1"),
        ("__linux", "1"),
        ("__gnu_linux__", "1"),
        ("__unix__", "1"),
        ("__unix", "1"),
        ("__ELF__", "1"),
        ("__LP64__", "1"),
        ("_LP64", "1"),
        ("__CHAR_BIT__", "8"),
        ("__SIZEOF_SHORT__", "2"),
        ("__SIZEOF_INT__", "4"),
        ("__SIZEOF_LONG__", "8"),
        ("__SIZEOF_LONG_LONG__", "8"),
        ("__SIZEOF_POINTER__", "8"),
        ("__SIZEOF_SIZE_T__", "8"),
        ("__ORDER_LITTLE_ENDIAN__", "1234"),
        ("__ORDER_BIG_ENDIAN__", "4321"),
        ("__ORDER_PDP_ENDIAN__", "3412"),
        ("__BYTE_ORDER__", "__ORDER_LITTLE_ENDIAN__"),
        ("__GNUC__", "4"),
        ("__GNUC_MINOR__", "2"),
        ("__GNUC_PATCHLEVEL__", "1"),
        ("__clang__", "1"),
        ("__STDC__", "1"),
        ("__STDC_VERSION__", "201710L"),
        ("__STDC_HOSTED__", "1"),
        ("__SCHAR_MAX__", "127"),
        ("__SHRT_MAX__", "32767"),
        ("__INT_MAX__", "2147483647"),
        ("__LONG_MAX__", "9223372036854775807L"),
        ("__LONG_LONG_MAX__", "9223372036854775807LL"),
    ];
    for (name, value) in common {
        macros.define_text(name, value, false);
    }
    if options.system.kernel_tree {
        macros.define_text("__KERNEL__", "1", false);
        macros.define_text("__BPF_TRACING__", "1", false);
    }
    for (name, value) in &options.defines {
        macros.define_text(name, value, false);
    }
}

/// How a file is read: a script's text is output, a system header's only defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Script,
    System,
}

/// One open conditional group.
#[derive(Debug)]
struct Cond {
    /// Whether lines are kept now (its enclosing groups' state included).
    active: bool,
    /// Whether a branch was taken already (or the enclosing group is skipped): later `#elif`
    /// and `#else` branches are skipped.
    taken: bool,
    else_seen: bool,
    span: Span,
}

/// A file being preprocessed.
struct FileState<'t> {
    text: &'t str,
    base: usize,
    name: String,
    /// Where its quoted includes are looked up first (`""`: the working directory).
    dir: String,
    mode: Mode,
    /// The system directory it was found in, for `#include_next`.
    found_at: Option<usize>,
    conds: Vec<Cond>,
    /// `{` nesting in a script: outside blocks, attach points are not expanded.
    braces: usize,
    enums: body::EnumHarvest,
}

impl<'t> FileState<'t> {
    fn new(text: &'t str, base: usize, name: String, dir: String, mode: Mode, found_at: Option<usize>) -> Self {
        FileState {
            text,
            base,
            name,
            dir,
            mode,
            found_at,
            conds: Vec::new(),
            braces: 0,
            enums: body::EnumHarvest::default(),
        }
    }

    fn active(&self) -> bool {
        self.conds.last().is_none_or(|c| c.active)
    }
}

struct Preprocessor<'a> {
    files: &'a dyn IncludeFiles,
    options: &'a PreprocessOptions,
    macros: Macros,
    /// Enum constants of the system headers read (glibc's `SOCK_STREAM`, `IPPROTO_TCP`).
    enums: HashMap<String, i64>,
    out: Preprocessed,
    /// Files that said `#pragma once` and were read.
    once: HashSet<String>,
    depth: usize,
    system_files: usize,
}

impl Preprocessor<'_> {
    fn file(&mut self, f: &mut FileState<'_>) {
        let dialect = if f.mode == Mode::Script { Dialect::Script } else { Dialect::C };
        for line in scan::lines(f.text, dialect, f.base == 0 && f.mode == Mode::Script) {
            match line {
                Line::Body { start, end } => self.body(f, start, end),
                Line::Directive { start, end, text, offsets } => {
                    self.blank(f, start, end);
                    self.directive(f, start, &text, &offsets);
                }
            }
        }
        if let Some(open) = f.conds.first() {
            let span = open.span;
            self.error(
                f,
                Diagnostic::error("preprocessor", "unterminated conditional directive", span)
                    .with_help("close it with `#endif`"),
            );
        }
    }

    fn body(&mut self, f: &mut FileState<'_>, mut start: usize, end: usize) {
        if f.mode == Mode::System {
            if f.active() {
                self.harvest_enums(f, start, end);
            }
            return;
        }
        if start == 0 && f.base == 0 && f.text.starts_with("#!") {
            // The `#!` line: blanked, since `--include` text may come before it.
            let line_end = f.text.find('\n').unwrap_or(f.text.len()).min(end);
            self.blank(f, 0, line_end);
            start = line_end;
        }
        if f.active() {
            self.expand_body(f, start, end);
        } else {
            self.blank(f, start, end);
        }
    }

    /// A script's `start..end` as spaces (its newlines kept), mapped one to one.
    fn blank(&mut self, f: &FileState<'_>, start: usize, end: usize) {
        if f.mode == Mode::System {
            return;
        }
        let blank: String = f.text[start..end].bytes().map(|b| if b == b'\n' { '\n' } else { ' ' }).collect();
        self.copy(f.base + start, &blank);
    }

    /// Appends `text`, copied from original offset `orig`.
    fn copy(&mut self, orig: usize, text: &str) {
        self.out.map.copied(self.out.text.len(), orig, text.len());
        self.out.text.push_str(text);
    }

    /// Appends `text`, produced from the original range `orig`.
    fn produce(&mut self, text: &str, orig: std::ops::Range<usize>) {
        self.out.map.produced(self.out.text.len(), text.len(), orig);
        self.out.text.push_str(text);
    }

    /// Reports a problem in a script or a local file; a system header's problems are not the
    /// user's, and are not reported.
    fn error(&mut self, f: &FileState<'_>, diagnostic: Diagnostic) {
        if f.mode == Mode::Script {
            self.out.diagnostics.push(diagnostic);
        }
    }
}

/// The directory of a path (`""` for a bare file name).
fn parent_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(0) => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
        None => String::new(),
    }
}

/// `dir/name`, or `name` alone for the working directory or an absolute name.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || name.starts_with('/') {
        name.to_owned()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
