//! The C declaration parser on its own: declarators read inside out, keyword combinations,
//! where a definition ends at the top level, and what is not a definition.

use super::{starts_definition, CBase, CDefinitionKind, CTypeKind};
use crate::ast::Program;

fn parse(src: &str) -> Program {
    let (program, diags) = crate::parse(src);
    assert!(diags.is_empty(), "{src}: {diags:?}");
    program
}

/// The members of the first definition, each as `name: C type`.
fn members(src: &str) -> Vec<String> {
    let program = parse(src);
    let Some(CDefinitionKind::Record(record)) = program.c_definitions.first().map(|d| &d.kind) else {
        panic!("{src}: no struct")
    };
    let members = record.members.as_deref().unwrap_or_default();
    members.iter().map(|m| format!("{}: {}", m.name.as_ref().map_or("-", |n| n.name.as_str()), m.ty)).collect()
}

#[test]
fn declarators_read_inside_out() {
    let got = members(
        "struct S { int *a[3]; int (*b)[3]; int (*f)(int, char *); char **pp; const char * const p; \
         int m[2][3]; void *(*g[2])(void); } BEGIN {}",
    );
    let expected = [
        "a: int *[3]",
        "b: int (*)[3]",
        "f: int (*)()",
        "pp: char **",
        "p: char *",
        "m: int [2][3]",
        "g: void *(*[2])()",
    ];
    assert_eq!(got, expected);
}

#[test]
fn keywords_combine_as_in_c() {
    let cases = [
        ("long long unsigned int", CBase::Int { bytes: 8, signed: false }),
        ("unsigned", CBase::Int { bytes: 4, signed: false }),
        ("short int", CBase::Int { bytes: 2, signed: true }),
        ("unsigned short", CBase::Int { bytes: 2, signed: false }),
        ("signed", CBase::Int { bytes: 4, signed: true }),
        ("long", CBase::Int { bytes: 8, signed: true }),
        ("signed char", CBase::Char { signed: Some(true) }),
        ("char", CBase::Char { signed: None }),
        ("_Bool", CBase::Bool),
        ("long double", CBase::Float { bytes: 16 }),
    ];
    for (words, base) in cases {
        let program = parse(&format!("struct S {{ {words} x; }} BEGIN {{}}"));
        let Some(CDefinitionKind::Record(record)) = program.c_definitions.first().map(|d| &d.kind) else {
            panic!("{words}")
        };
        let ty = &record.members.as_deref().unwrap_or_default()[0].ty;
        assert_eq!(ty.kind, CTypeKind::Base(base), "{words}");
    }
    let (_, diags) = crate::parse("struct S { short long x; } BEGIN {}");
    assert_eq!(diags.len(), 1, "{diags:?}");
}

#[test]
fn definitions_end_where_bpftrace_ends_them() {
    // A body ends the definition (with its `;` if one follows); a probe may follow at once.
    let program = parse("struct A { int a; } struct B { int b; };BEGIN { } union U { int x; }\nEND { }");
    assert_eq!(program.c_definitions.len(), 3);
    assert_eq!(program.probes.len(), 2);
    let program = parse("typedef struct { int a; } a_t, *a_ptr; struct Fwd; enum E { X, Y, }; BEGIN { }");
    let kinds: Vec<&CDefinitionKind> = program.c_definitions.iter().map(|d| &d.kind).collect();
    assert!(matches!(kinds[0], CDefinitionKind::Typedef(names) if names.len() == 2));
    assert!(matches!(kinds[1], CDefinitionKind::Record(r) if r.members.is_none()));
    assert!(matches!(kinds[2], CDefinitionKind::Enum(e) if e.constants.as_ref().is_some_and(|c| c.len() == 2)));
}

#[test]
fn only_the_four_words_start_a_definition() {
    assert!(starts_definition("struct Foo {", 0));
    assert!(starts_definition("union{", 0));
    assert!(starts_definition("typedef int x;", 0));
    assert!(!starts_definition("structure:foo", 0));
    assert!(!starts_definition("struct_ops:x", 0));
    assert!(!starts_definition("enumerate", 0));
}
