//! The type table built from real definitions: layouts (offsets as gcc 12 gives them on
//! x86-64), names, enum constants, typedefs, kernel types used and redefined, and mistakes.

use super::{Overlay, ScriptTypes};
use crate::ktypes::{KField, KType, KTypeId};
use crate::tracepoint::{ProbeCatalog, TracepointFormat};

/// A kernel with BTF holding `struct task_struct { int pid @0; }` and `typedef unsigned int u32`.
struct Kernel;
const TASK: KTypeId = 1;
const INT: KTypeId = 2;
const U32: KTypeId = 3;

impl ProbeCatalog for Kernel {
    fn match_tracepoints(&self, _: &str, _: &str) -> Vec<(String, String)> {
        Vec::new()
    }
    fn tracepoint_format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
        None
    }
    fn all_tracepoints(&self) -> Vec<String> {
        Vec::new()
    }
    fn kernel_types_missing(&self) -> Option<String> {
        None
    }
    fn kernel_type_named(&self, name: &str) -> Option<KTypeId> {
        match name {
            "struct task_struct" => Some(TASK),
            "u32" => Some(U32),
            _ => None,
        }
    }
    fn kernel_type(&self, id: KTypeId) -> Option<KType> {
        Some(match id {
            TASK => KType::Record {
                name: "struct task_struct".into(),
                union: false,
                size: 16,
                fields: vec![KField { name: "pid".into(), ty: INT, bit_offset: 0, bits: 0 }],
            },
            INT => KType::Int { bytes: 4, signed: true, char: false },
            U32 => KType::Int { bytes: 4, signed: false, char: false },
            _ => return None,
        })
    }
    fn kernel_type_size(&self, id: KTypeId) -> Option<u32> {
        self.kernel_type(id)?.own_size()
    }
}

fn build(src: &str) -> (ScriptTypes, Vec<String>) {
    let (program, diags) = grammar::parse(&format!("{src}\nBEGIN {{}}"));
    assert!(diags.is_empty(), "{diags:?}");
    let (types, diags) = ScriptTypes::build(&program.c_definitions, &Kernel);
    (types, diags.iter().map(|d| d.message.clone()).collect())
}

/// `(size, [(field, byte offset, bit shift within that byte, bits)])` of a record.
fn layout(types: &ScriptTypes, name: &str) -> (u32, Vec<(String, u32, u32, u8)>) {
    let id = types.named(name).unwrap_or_else(|| panic!("{name} is not defined"));
    let Some(KType::Record { size, fields, .. }) = types.get(id) else { panic!("{name} is not a record") };
    (size, fields.iter().map(|f| (f.name.clone(), f.bit_offset / 8, f.bit_offset % 8, f.bits)).collect())
}

fn offsets(types: &ScriptTypes, name: &str) -> (u32, Vec<(String, u32)>) {
    let (size, fields) = layout(types, name);
    (size, fields.into_iter().map(|(n, offset, _, _)| (n, offset)).collect())
}

fn named(size: u32, fields: &[(&str, u32)]) -> (u32, Vec<(String, u32)>) {
    (size, fields.iter().map(|(n, o)| ((*n).to_string(), *o)).collect())
}

#[test]
fn the_suites_structs_are_laid_out_as_gcc_does() {
    let (types, diags) = build(
        "struct T { uint32_t a; uint32_t b[2]; };
         struct W { uint32_t a; struct T t; };
         struct C { uint32_t a; void * b; struct W w[10]; };
         struct Foo { int a; char b[10]; }
         struct MyStruct { const char* a; char b[4]; uint8_t c[4]; int d[4]; uint16_t e[4]; uint64_t f[4] };",
    );
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(offsets(&types, "struct C"), named(176, &[("a", 0), ("b", 8), ("w", 16)]));
    assert_eq!(offsets(&types, "struct W"), named(16, &[("a", 0), ("t", 4)]));
    assert_eq!(offsets(&types, "struct Foo"), named(16, &[("a", 0), ("b", 4)]));
    let expected = named(72, &[("a", 0), ("b", 8), ("c", 12), ("d", 16), ("e", 32), ("f", 40)]);
    assert_eq!(offsets(&types, "struct MyStruct"), expected);
}

#[test]
fn bitfields_anonymous_members_and_unions() {
    let (types, diags) = build(
        "struct Bar { short a:4, b:8, c:3, d:1; int e:9, f:15, g:1, h:2, i:5 }
         struct A1 { char c; union { int x; long y; }; short s; };
         union U { char v4[4]; char v6[16]; };",
    );
    assert!(diags.is_empty(), "{diags:?}");
    let (size, fields) = layout(&types, "struct Bar");
    assert_eq!(size, 8);
    let bits: Vec<(u32, u8)> = fields.iter().map(|(_, byte, shift, bits)| (byte * 8 + shift, *bits)).collect();
    assert_eq!(bits, [(0, 4), (4, 8), (12, 3), (15, 1), (16, 9), (32, 15), (47, 1), (48, 2), (50, 5)]);
    assert_eq!(offsets(&types, "struct A1"), named(24, &[("c", 0), ("x", 8), ("y", 8), ("s", 16)]));
    assert_eq!(offsets(&types, "union U"), named(16, &[("v4", 0), ("v6", 0)]));
}

#[test]
fn enums_typedefs_and_self_references() {
    let (types, diags) = build(
        "enum E { A, B = 5, C, D = B * 2 + 1, N = -1 };
         struct node { struct node *next; enum E e; char tag[sizeof(int) * 2]; };
         typedef struct node node_t, *node_ptr;
         typedef struct { int x; } anon_t;",
    );
    assert!(diags.is_empty(), "{diags:?}");
    let constants: Vec<Option<i64>> = ["A", "B", "C", "D", "N"].iter().map(|c| types.constant(c)).collect();
    assert_eq!(constants, [Some(0), Some(5), Some(6), Some(11), Some(-1)]);
    assert_eq!(offsets(&types, "struct node"), named(24, &[("next", 0), ("e", 8), ("tag", 12)]));
    assert_eq!(types.named("node_t"), types.named("struct node"));
    let pointer = types.named("node_ptr").and_then(|id| types.get(id));
    assert_eq!(pointer, Some(KType::Pointer { to: types.named("struct node").unwrap_or(0) }));
    // An anonymous struct takes its typedef's name.
    assert_eq!(types.named("anon_t").and_then(|id| types.name_of(id)), Some("anon_t".into()));
}

#[test]
fn kernel_types_are_used_unless_the_script_redefines_one() {
    let (types, diags) = build("struct foo { struct task_struct t; u32 flags; char c; };");
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(offsets(&types, "struct foo"), named(24, &[("t", 0), ("flags", 16), ("c", 20)]));
    // As in bpftrace: once the script redefines a kernel type, its definitions get no BTF types.
    let (_, diags) = build("struct task_struct { struct thread_info x; } struct bar { u32 y; }");
    assert_eq!(diags, ["field has incomplete type 'struct thread_info'", "unknown type name 'u32'"]);
    // Script names win in the overlay.
    let (types, _) = build("struct task_struct { int x; long y; }");
    let overlay = Overlay::new(&types, &Kernel);
    let id = overlay.kernel_type_named("struct task_struct").unwrap_or(0);
    assert!(ScriptTypes::owns(id));
    assert_eq!(overlay.kernel_type_size(id), Some(16));
}

#[test]
fn mistakes_are_diagnostics() {
    let (_, diags) = build(
        "struct A { foo_t x; }
         struct B { struct Undefined u; }
         struct C { char c:9; }
         struct D { int a; }
         struct D { int b; }
         enum F { X, X }
         struct E { int a[Y]; }",
    );
    assert_eq!(
        diags,
        [
            "unknown type name 'foo_t'",
            "field has incomplete type 'struct Undefined'",
            "width of bit-field (9 bits) exceeds the width of its type (8 bits)",
            "redefinition of 'struct D'",
            "redefinition of enumerator 'X'",
            "use of undeclared identifier 'Y'",
        ]
    );
}

#[test]
fn casts_make_pointer_types_on_demand() {
    let (types, _) = build("struct Foo { int a; }");
    let overlay = Overlay::new(&types, &Kernel);
    let foo = overlay.kernel_type_named("struct Foo").unwrap_or(0);
    let p = overlay.kernel_pointer_type(foo).unwrap_or(0);
    let pp = overlay.kernel_pointer_type(p).unwrap_or(0);
    assert_eq!(overlay.kernel_pointer_type(foo), Some(p));
    assert_eq!(overlay.kernel_type(pp), Some(KType::Pointer { to: p }));
    assert_eq!(overlay.kernel_type_name(pp), "struct Foo * *");
    assert_eq!(overlay.kernel_type_size(pp), Some(8));
    // C's integers are there without BTF, for `(int32 *)p`.
    assert!(overlay.kernel_type_named("int").is_some_and(ScriptTypes::owns));
}
