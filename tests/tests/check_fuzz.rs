//! Property tests: the whole compiler (`parse`, `check`, lowering, code generation, ELF writing)
//! never panics, on random bytes and on random programs assembled from statement and expression
//! snippets, valid and broken, over a fixed tracepoint catalog.

use compiler::{FieldType, ProbeCatalog, TracepointField, TracepointFormat};
use proptest::prelude::*;

/// One tracepoint with an integer, a pointer, a char array and a `__data_loc` field.
struct FakeCatalog;

fn field(name: &str, offset: u32, size: u32, ty: FieldType) -> TracepointField {
    TracepointField { name: name.into(), c_type: String::new(), offset, size, signed: false, common: false, ty }
}

impl ProbeCatalog for FakeCatalog {
    fn match_tracepoints(&self, category: &str, event: &str) -> Vec<(String, String)> {
        let ok = |p: &str, v: &str| p == v || p == "*" || (p.ends_with('*') && v.starts_with(p.trim_end_matches('*')));
        if ok(category, "syscalls") && ok(event, "sys_enter_read") {
            vec![("syscalls".into(), "sys_enter_read".into())]
        } else {
            Vec::new()
        }
    }

    fn tracepoint_format(&self, category: &str, event: &str) -> Option<TracepointFormat> {
        (category == "syscalls" && event == "sys_enter_read").then(|| TracepointFormat {
            category: category.into(),
            event: event.into(),
            fields: vec![
                field("fd", 16, 8, FieldType::Integer { size: 8, signed: false }),
                field("buf", 24, 8, FieldType::Pointer { pointee: "char".into() }),
                field("name", 32, 16, FieldType::CharArray { len: 16 }),
                field("path", 48, 4, FieldType::DataLocString),
            ],
        })
    }

    fn all_tracepoints(&self) -> Vec<String> {
        vec!["syscalls:sys_enter_read".into()]
    }
}

const PROBES: &[&str] = &[
    "BEGIN",
    "END",
    "tracepoint:syscalls:sys_enter_read",
    "t:syscalls:sys_enter_*",
    "profile:hz:99",
    "interval:ms:10",
    "t:nope:nope",
    "kprobe:f",
];

const EXPRS: &[&str] = &[
    "1",
    "-7",
    "0xff",
    "pid",
    "tid",
    "comm",
    "nsecs",
    "elapsed",
    "cpu",
    "rand",
    "cgroup",
    "curtask",
    "probe",
    "args->fd",
    "args.name",
    "str(args->buf)",
    "str(args->buf, 8)",
    "args->path",
    "args->nope",
    "$x",
    "$s",
    "@m",
    "@k[1]",
    "@k[comm, 2]",
    "\"str\"",
    "(1, \"a\")",
    "$x + 1",
    "$x * @m",
    "$x / 0",
    "$x % 3",
    "$x << 2",
    "-$x",
    "!$x",
    "~$x",
    "$x && @m",
    "$x || 0",
    "$x ? 1 : 2",
    "$x ? \"a\" : \"bc\"",
    "comm == \"bash\"",
    "strncmp(comm, \"ba\", 2)",
    "(uint8)$x",
    "(int16)-1",
    "$x++",
    "@m--",
    "count()",
    "$s == 1",
    "unknown(1)",
    "args",
    "@undefined",
];

const STMTS: &[&str] = &[
    "$x = {e}",
    "$s = {e}",
    "@m = {e}",
    "@k[{e}] = {e}",
    "@k[comm, {e}] = count()",
    "@m += {e}",
    "@c = count()",
    "@sum = sum({e})",
    "@h = hist({e})",
    "@l = lhist({e}, 0, 100, 10)",
    "@st = stats({e})",
    "@a = avg({e})",
    "@mn = min({e})",
    "@mx = max({e})",
    "printf(\"%d %s\\n\", {e}, {e})",
    "printf(\"%s\\n\", {e})",
    "print({e})",
    "print(@m)",
    "print(@k, 2, 10)",
    "clear(@k)",
    "zero(@h)",
    "delete(@k[{e}])",
    "exit()",
    "time()",
    "if ({e}) { $x = {e}; } else { @m = {e}; }",
    "while ($x < 3) { $x++; }",
    "unroll(3) { $x += {e}; }",
    "return",
    "{e}",
];

fn program(probe: usize, stmts: &[(usize, usize, usize)]) -> String {
    let mut body = String::new();
    for &(s, a, b) in stmts {
        let text =
            STMTS[s % STMTS.len()].replacen("{e}", EXPRS[a % EXPRS.len()], 1).replace("{e}", EXPRS[b % EXPRS.len()]);
        body.push_str(&text);
        body.push_str("; ");
    }
    format!("{} {{ $x = 0; $s = \"s\"; @m = 1; {} }}", PROBES[probe % PROBES.len()], body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_compile_or_fail_cleanly(probe in 0usize..100, stmts in prop::collection::vec((0usize..1000, 0usize..1000, 0usize..1000), 0..8)) {
        let src = program(probe, &stmts);
        let (compiled, diags) = compiler::compile(&src, &FakeCatalog, &compiler::CompileOptions::default());
        if compiled.is_none() {
            prop_assert!(diags.iter().any(|d| d.is_error()), "no program and no error for {src}");
        }
        for d in &diags {
            prop_assert!(d.primary_span().end as usize <= src.len(), "span outside the source for {src}");
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let src = String::from_utf8_lossy(&bytes);
        let _ = compiler::compile(&src, &FakeCatalog, &compiler::CompileOptions::default());
    }
}

/// The generator must reach code generation, not only the checker: most single-statement
/// programs over valid snippets compile.
#[test]
fn generated_programs_often_compile() {
    let mut ok = 0;
    let mut total = 0;
    for s in 0..STMTS.len() {
        for a in (0..EXPRS.len()).step_by(3) {
            total += 1;
            let src = program(2, &[(s, a, a + 1)]);
            if compiler::compile(&src, &FakeCatalog, &compiler::CompileOptions::default()).0.is_some() {
                ok += 1;
            }
        }
    }
    assert!(ok * 3 > total, "only {ok} of {total} generated programs compiled");
}
