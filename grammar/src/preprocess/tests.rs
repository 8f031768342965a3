//! The preprocessor over scripts and files held in memory.

use std::collections::HashMap;

use super::*;

struct Files(HashMap<&'static str, &'static str>);

impl IncludeFiles for Files {
    fn read(&self, path: &str) -> Option<String> {
        self.0.get(path).map(|text| (*text).to_owned())
    }
}

fn files(list: &[(&'static str, &'static str)]) -> Files {
    Files(list.iter().copied().collect())
}

fn system() -> SystemIncludes {
    SystemIncludes { dirs: vec!["/usr/include/x86_64-linux-gnu".into(), "/usr/include".into()], kernel_tree: false }
}

fn run(src: &str, files: &Files, options: &PreprocessOptions) -> Preprocessed {
    preprocess(src, files, options)
}

fn text(src: &str) -> String {
    run(src, &files(&[]), &PreprocessOptions::default()).text
}

fn messages(pre: &Preprocessed) -> Vec<String> {
    pre.diagnostics.iter().map(|d| d.message.clone()).collect()
}

#[test]
fn a_script_without_directives_is_unchanged() {
    let src = "#!/usr/bin/env bpftrace\nBEGIN { printf(\"FOO\\n\"); } // FOO\n";
    let pre = run(src, &files(&[]), &PreprocessOptions::default());
    assert_eq!(pre.text[24..], src[24..]);
    assert!(pre.text.starts_with("                       \n"));
    assert_eq!(pre.map.span(Span::new(30, 36)), Span::new(30, 36));
}

#[test]
fn defines_expand_in_blocks_and_predicates_but_not_in_strings_names_or_attach_points() {
    let src =
        "#define N 1 + 2\n#define vfs_read nope\n#define x y\nkprobe:vfs_read /N/ { @x[$x] = N * 2; printf(\"N\"); }\n";
    assert_eq!(
        text(src),
        "               \n                     \n           \nkprobe:vfs_read /1 + 2/ { @x[$x] = 1 + 2 * 2; printf(\"N\"); }\n"
    );
}

#[test]
fn function_like_macros_take_arguments_and_spans_map_to_the_invocation() {
    let src =
        "#define MAX(a, b) ((a) > (b) ? (a) : (b))\n#define PUT(k) @m[k] = $v\nBEGIN { $m = MAX(1, $x); PUT(1); }\n";
    let pre = run(src, &files(&[]), &PreprocessOptions::default());
    assert!(pre.text.contains("$m = ((1) > ($x) ? (1) : ($x)); @m[1] = $v;"), "{}", pre.text);
    let inside = pre.text.find("($x)").unwrap();
    let invocation = src.find("MAX(1").unwrap();
    assert_eq!(pre.map.span(Span::new(inside, inside + 4)), Span::new(invocation, invocation + 10));
    let after = pre.text.find("; }").unwrap();
    assert_eq!(pre.map.start(after), src.find("; }").unwrap());
}

#[test]
fn conditionals_choose_groups() {
    let src = "#define A 2\n#if A > 1 && !defined(B)\none\n#elif 1\ntwo\n#else\nthree\n#endif\n#ifdef B\nfour\n#elif defined A\nfive\n#endif\n#ifndef A\nsix\n#endif\n";
    let kept: Vec<String> = text(src).split_whitespace().map(str::to_owned).collect();
    assert_eq!(kept, ["one", "five"]);
    let nested = "#if 0\n#if 1\nno\n#else\nno\n#endif\n#else\nyes\n#endif\n";
    assert_eq!(text(nested).split_whitespace().collect::<Vec<_>>(), ["yes"]);
}

#[test]
fn bpftrace_have_btf_is_what_the_options_define() {
    let src = "#ifndef BPFTRACE_HAVE_BTF\n#include <linux/socket.h>\n#else\n#include <sys/socket.h>\n#endif\nBEGIN { $a = AF_INET6; }\n";
    let mut options = PreprocessOptions::default();
    options.defines.push(("BPFTRACE_HAVE_BTF".into(), "1".into()));
    let pre = run(src, &files(&[]), &options);
    assert!(pre.text.contains("$a = 10;"), "{}", pre.text);
    assert_eq!(pre.system_headers, ["sys/socket.h"]);
    assert!(pre.diagnostics.is_empty());
}

#[test]
fn local_files_are_included_and_keep_their_own_offsets() {
    let src = "#include \"defs.h\"\nBEGIN { $a = LIMIT; }\n";
    let pre = run(
        src,
        &files(&[("dir/defs.h", "#define LIMIT 42\nEND { }\n")]),
        &PreprocessOptions { script_path: Some("dir/x.bt".into()), ..PreprocessOptions::default() },
    );
    assert!(pre.text.contains("END { }") && pre.text.contains("$a = 42;"), "{}", pre.text);
    let end = pre.text.find("END").unwrap();
    let mapped = pre.map.span(Span::new(end, end + 3));
    let (file, local) = pre.sources.locate(mapped).unwrap();
    assert_eq!((file.name.as_str(), local), ("dir/defs.h", Span::new(17, 20)));
    assert_eq!(pre.sources.position(mapped.start as usize), Some(("dir/defs.h".into(), 2, 1)));
}

#[test]
fn include_dirs_and_forced_includes_are_searched() {
    let fs = files(&[("inc/a.h", "#define A 1\n"), ("b.h", "#define B 2\n")]);
    let options = PreprocessOptions {
        include_dirs: vec!["inc".into()],
        include_files: vec!["b.h".into()],
        ..PreprocessOptions::default()
    };
    let pre = run("#include <a.h>\nBEGIN { $x = A + B; }\n", &fs, &options);
    assert!(pre.text.contains("$x = 1 + 2;"), "{}", pre.text);
    assert!(pre.diagnostics.is_empty(), "{:?}", pre.diagnostics);
}

#[test]
fn system_headers_give_integer_constants_only() {
    let fs = files(&[
        ("/usr/include/sys/socket.h", "#ifndef _S\n#define _S 1\n#include <bits/socket.h>\n#endif\n"),
        (
            "/usr/include/x86_64-linux-gnu/bits/socket.h",
            "#define PF_INET 2\n#define AF_INET PF_INET\n#define sa_handler _u._sa_handler\nenum t {\n SOCK_STREAM = 1,\n#define SOCK_STREAM SOCK_STREAM\n SOCK_DGRAM,\n};\n",
        ),
    ]);
    let options = PreprocessOptions { system: system(), ..PreprocessOptions::default() };
    let pre = run("#include <sys/socket.h>\nBEGIN { $a = AF_INET + SOCK_DGRAM; $b = $c.sa_handler; }\n", &fs, &options);
    assert!(pre.text.contains("$a = 2 + 2; $b = $c.sa_handler;"), "{}", pre.text);
}

#[test]
fn headers_the_machine_lacks_use_the_table_and_unknown_ones_are_errors() {
    let options = PreprocessOptions { system: system(), ..PreprocessOptions::default() };
    let pre =
        run("#include <linux/sched.h>\n#include <net/sock.h>\nBEGIN { $s = TASK_RUNNING; }\n", &files(&[]), &options);
    assert!(pre.text.contains("$s = 0;"), "{}", pre.text);
    assert!(pre.diagnostics.is_empty());
    assert_eq!(pre.system_headers, ["linux/sched.h", "net/sock.h"]);
    let pre = run("#include <lol/no.h>\n#include \"mine.h\"\nBEGIN { }\n", &files(&[]), &options);
    assert_eq!(messages(&pre), ["'lol/no.h' file not found", "'mine.h' file not found"]);
    assert_eq!(pre.diagnostics[0].primary_span(), Span::new(0, 19));
}

#[test]
fn mistakes_in_directives_are_reported_at_the_directive() {
    let src = "#if 1 +\n#endif\n#else\n#ifdef\n#endif\n#frobnicate\n#define 1 2\n#if 1\nBEGIN { }\n";
    let pre = run(src, &files(&[]), &PreprocessOptions::default());
    assert_eq!(
        messages(&pre),
        [
            "invalid `#if` condition: the expression ends too early",
            "`#else` without `#if`",
            "`#ifdef` needs a macro name",
            "unknown preprocessor directive `#frobnicate`",
            "invalid `#define`: macro names must be identifiers",
            "unterminated conditional directive",
        ]
    );
    assert_eq!(
        pre.diagnostics[3].primary_span(),
        Span::new(src.find("#frob").unwrap(), src.find("#frob").unwrap() + 11)
    );
}

#[test]
fn undef_error_and_continuations_work() {
    let src = "#define A 1\n#undef A\n#define LONG 1 + \\\n  2\n#ifdef A\n#error A is defined\n#endif\nBEGIN { $a = A; $b = LONG; }\n";
    let pre = run(src, &files(&[]), &PreprocessOptions::default());
    assert!(pre.text.contains("$a = A; $b = 1 + 2;"), "{}", pre.text);
    assert!(pre.diagnostics.is_empty());
    let pre = run("#error stop here\n", &files(&[]), &PreprocessOptions::default());
    assert_eq!(messages(&pre), ["#error stop here"]);
}

#[test]
fn a_file_that_includes_itself_stops() {
    let pre =
        run("#include \"self.h\"\n", &files(&[("self.h", "#include \"self.h\"\n")]), &PreprocessOptions::default());
    assert_eq!(pre.diagnostics.len(), 1);
    assert!(pre.diagnostics[0].message.contains("nested more than"), "{:?}", pre.diagnostics);
}

/// Pieces scripts and headers are made of, directives and macros among them.
const PIECES: [&str; 24] = [
    "#define ",
    "#if ",
    "#ifdef ",
    "#elif ",
    "#else",
    "#endif",
    "#include ",
    "#undef ",
    "\n",
    " ",
    "F(",
    ")",
    ",",
    "A",
    "\"s\\é\"",
    "/*",
    "*/",
    "//",
    "\\\n",
    "##",
    "#",
    "<linux/sched.h>",
    "é",
    "{",
];

proptest::proptest! {
    #[test]
    fn any_text_preprocesses_without_panicking(picks in proptest::collection::vec(0..PIECES.len(), 0..60)) {
        let src: String = picks.iter().map(|&i| PIECES[i]).collect();
        let pre = preprocess(&src, &files(&[]), &PreprocessOptions::default());
        for d in &pre.diagnostics {
            proptest::prop_assert!(d.primary_span().end as usize <= src.len());
        }
        let _ = crate::parse_preprocessed(&pre);
    }
}

#[test]
fn deeply_nested_arguments_stop_expanding() {
    let src = format!("#define F(x) x\nBEGIN {{ $a = {}1{}; }}\n", "F(".repeat(500), ")".repeat(500));
    let pre = run(&src, &files(&[]), &PreprocessOptions::default());
    assert!(pre.text.contains("$a ="));
}
