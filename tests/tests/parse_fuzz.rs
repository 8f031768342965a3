//! Property tests: `grammar::parse` never panics, whatever it is fed: random bytes, random text,
//! and random sequences of rbt tokens and snippets (which reach far deeper into the grammar and
//! its error recovery than random text does). Every result must also dump, and every span must
//! lie inside the source.

use proptest::prelude::*;

/// Pieces of rbt, valid and broken, that random streams are assembled from.
const PIECES: &[&str] = &[
    "BEGIN",
    "END",
    "kprobe:vfs_read",
    "uprobe:/bin/bash:readline",
    "t:sched:sched*",
    "uprobe:\"/a b\":f",
    "interval:s:1",
    "profile:hz:99",
    ",",
    "/",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ":",
    "?",
    ".",
    "->",
    "=",
    "+=",
    "<<=",
    "+",
    "-",
    "*",
    "%",
    "&",
    "|",
    "^",
    "~",
    "!",
    "<<",
    ">>",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "++",
    "--",
    "if",
    "else",
    "while",
    "unroll",
    "return",
    "struct",
    "union",
    "enum",
    "sizeof",
    "offsetof",
    "int8",
    "uint64",
    "char",
    "bool",
    "0",
    "42",
    "0x1f",
    "010",
    "1_000",
    "1e3",
    "99999999999999999999",
    "08",
    "\"str\"",
    "\"esc\\n\\x41\\101\"",
    "\"bad\\q\"",
    "\"open",
    "$x",
    "$1",
    "$0",
    "$#",
    "$",
    "@",
    "@m",
    "pid",
    "comm",
    "args",
    "printf",
    "count",
    "//c\n",
    "/*c*/",
    "/*",
    "#include <x.h>\n",
    "#",
    "`",
    "\u{e9}",
    "\n",
    "@m[1, 2] = count();",
    "if ($x) { } else { }",
    "/pid == 1/",
    "(struct task_struct *)curtask",
    "args->filename",
    "$t.0",
];

fn pieces() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(PIECES);
    let separator = prop::sample::select(&["", " ", "\n"][..]);
    prop::collection::vec((piece, separator), 0..60)
        .prop_map(|parts| parts.into_iter().flat_map(|(piece, separator)| [piece, separator]).collect())
}

fn check(src: &str) {
    let (program, diagnostics) = grammar::parse(src);
    let _ = grammar::dump(&program);
    let len = u32::try_from(src.len()).unwrap_or(u32::MAX);
    for diagnostic in &diagnostics {
        for label in &diagnostic.labels {
            assert!(label.span.start <= label.span.end && label.span.end <= len, "{diagnostic:?}");
        }
    }
    assert_eq!(program.span.end, len);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_text(src in "\\PC{0,200}") {
        check(&src);
    }

    #[test]
    fn random_ascii(src in "[ -~\n\t]{0,200}") {
        check(&src);
    }

    #[test]
    fn random_token_streams(src in pieces()) {
        check(&src);
    }

    #[test]
    fn token_streams_inside_a_probe(body in pieces()) {
        check(&format!("kprobe:f /pid/ {{ {body} }}"));
    }
}
