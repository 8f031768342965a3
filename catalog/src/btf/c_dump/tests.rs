//! `CDump` on BTF built by hand. The expected texts are libbpf 1.1's: each was checked against
//! `bpftool btf dump file FILE format c` (bpftool 7.1, libbpf 1.1) on the same bytes, and the
//! whole dump of this kernel's BTF matches bpftool's but for what bpftool's newer libbpf does
//! differently (`(void)` for empty parameter lists, no `mode(byte)` on one-byte enums).

use super::*;

use crate::btf::BtfBuilder as Builder;

fn dump(btf: &Btf, ids: &[u32]) -> String {
    let mut dump = CDump::new(btf);
    for &id in ids {
        dump.dump_type(id);
    }
    dump.into_text()
}

/// Nested anonymous members are written inline; typedefs keep their names and are defined
/// first; a pointer to const keeps its qualifier.
#[test]
fn anonymous_members_inline_and_typedefs_first() {
    let mut b = Builder::new();
    let uint = b.int("unsigned int", 4, false);
    let u32_inner = b.refer(TYPEDEF, "__u32", uint);
    let u32_ = b.refer(TYPEDEF, "u32", u32_inner);
    let ull = b.int("long long unsigned int", 8, false);
    let u64_ = b.refer(TYPEDEF, "u64", ull);
    let halves = b.record(STRUCT, "", 8, &[("hash", u32_, 0, 0), ("len", u32_, 32, 0)]);
    let union = b.record(UNION, "", 8, &[("", halves, 0, 0), ("hash_len", u64_, 0, 0)]);
    let uchar = b.int("unsigned char", 1, false);
    let const_uchar = b.refer(CONST, "", uchar);
    let name_ptr = b.refer(PTR, "", const_uchar);
    let qstr = b.record(STRUCT, "qstr", 16, &[("", union, 0, 0), ("name", name_ptr, 64, 0)]);
    assert_eq!(
        dump(&b.build(), &[qstr]),
        "typedef unsigned int __u32;\n\ntypedef __u32 u32;\n\ntypedef long long unsigned int u64;\n\n\
         struct qstr {\n\tunion {\n\t\tstruct {\n\t\t\tu32 hash;\n\t\t\tu32 len;\n\t\t};\n\t\tu64 hash_len;\n\t};\n\
         \tconst unsigned char *name;\n};\n\n"
    );
}

/// Gaps are filled with unnamed bitfields: counted bits inside a run of bitfields, whole
/// `int`/`long` units elsewhere, nothing where the compiler aligns the next member by itself.
#[test]
fn gaps_become_padding_bitfields() {
    let mut b = Builder::new();
    let uint = b.int("unsigned int", 4, false);
    let int = b.int("int", 4, true);
    let long = b.int("long int", 8, true);
    let bits = b.record(
        STRUCT,
        "bits",
        48,
        &[("a", uint, 0, 1), ("b", uint, 40, 2), ("c", int, 96, 0), ("d", long, 192, 0), ("e", int, 256, 0)],
    );
    assert_eq!(
        dump(&b.build(), &[bits]),
        "struct bits {\n\tunsigned int a: 1;\n\tint: 31;\n\tchar: 8;\n\tunsigned int b: 2;\n\tint: 32;\n\tint c;\n\
         \tlong: 64;\n\tlong int d;\n\tint e;\n\tlong: 64;\n};\n\n"
    );
}

/// Function pointers, arrays of them, pointers to arrays, variadic and empty parameter lists;
/// the typedefs they use are written as the members' types are first met, and a struct known
/// only by a forward declaration is declared ahead.
#[test]
fn function_pointers_and_arrays() {
    let mut b = Builder::new();
    let long = b.int("long int", 8, true);
    let ulong = b.int("long unsigned int", 8, false);
    let llong = b.int("long long int", 8, true);
    let char_ = b.int("char", 1, true);
    let int = b.int("int", 4, true);
    let ssize_t = b.refer(TYPEDEF, "ssize_t", long);
    let size_t = b.refer(TYPEDEF, "size_t", ulong);
    let loff_t = b.refer(TYPEDEF, "loff_t", llong);
    let file = b.fwd("file", false);
    let file_ptr = b.refer(PTR, "", file);
    let char_ptr = b.refer(PTR, "", char_);
    let loff_ptr = b.refer(PTR, "", loff_t);
    let read = b.func_proto(ssize_t, &[("", file_ptr), ("", char_ptr), ("", size_t), ("", loff_ptr)]);
    let read_ptr = b.refer(PTR, "", read);
    let no_args = b.func_proto(0, &[("", 0)]);
    let no_args_ptr = b.refer(PTR, "", no_args);
    let const_char = b.refer(CONST, "", char_);
    let fmt = b.refer(PTR, "", const_char);
    let printk = b.func_proto(int, &[("fmt", fmt), ("", 0)]);
    let printk_ptr = b.refer(PTR, "", printk);
    let handler = b.func_proto(0, &[("", int)]);
    let handler_ptr = b.refer(PTR, "", handler);
    let handlers = b.array(handler_ptr, int, 2);
    let row = b.array(int, int, 3);
    let rows = b.refer(PTR, "", row);
    let grid = b.array(row, int, 2);
    let ops = b.record(
        STRUCT,
        "ops",
        72,
        &[
            ("read", read_ptr, 0, 0),
            ("flush", no_args_ptr, 64, 0),
            ("printk", printk_ptr, 128, 0),
            ("handlers", handlers, 192, 0),
            ("rows", rows, 320, 0),
            ("grid", grid, 384, 0),
        ],
    );
    assert_eq!(
        dump(&b.build(), &[ops]),
        "struct file;\n\ntypedef long int ssize_t;\n\ntypedef long unsigned int size_t;\n\n\
         typedef long long int loff_t;\n\n\
         struct ops {\n\tssize_t (*read)(struct file *, char *, size_t, loff_t *);\n\tvoid (*flush)();\n\
         \tint (*printk)(const char *fmt, ...);\n\tvoid (*handlers[2])(int);\n\tint (*rows)[3];\n\tint grid[2][3];\n};\n\n"
    );
}

/// A struct with a member off its alignment is packed; a second struct of a name gets `___2`;
/// embedded structs are defined before their container, which refers to itself without a
/// forward declaration; anonymous enums are written inline, one-byte enums in `mode(byte)`.
#[test]
fn packed_duplicates_embedding_and_enums() {
    let mut b = Builder::new();
    let char_ = b.int("char", 1, true);
    let int = b.int("int", 4, true);
    let packed = b.record(STRUCT, "dup", 5, &[("c", char_, 0, 0), ("x", int, 8, 0)]);
    let second = b.record(STRUCT, "dup", 4, &[("y", int, 0, 0)]);
    let kind = b.enumeration("", 4, true, &[("A", -1), ("B", 1)]);
    let small = b.enumeration("small", 1, false, &[("S", 1)]);
    let holder_ptr = b.refer(PTR, "", 8);
    let holder = b.record(
        STRUCT,
        "holder",
        24,
        &[("inner", second, 0, 0), ("kind", kind, 32, 0), ("next", holder_ptr, 64, 0), ("size", small, 128, 0)],
    );
    assert_eq!(holder, 8);
    assert_eq!(
        dump(&b.build(), &[packed, holder]),
        "struct dup {\n\tchar c;\n\tint x;\n} __attribute__((packed));\n\n\
         struct dup___2 {\n\tint y;\n};\n\n\
         enum small {\n\tS = 1,\n} __attribute__((mode(byte)));\n\n\
         struct holder {\n\tstruct dup___2 inner;\n\tenum {\n\t\tA = -1,\n\t\tB = 1,\n\t} kind;\n\
         \tstruct holder *next;\n\tenum small size;\n};\n\n"
    );
}

/// Two structs that point at each other: the second is declared ahead of the first.
#[test]
fn pointer_cycles_get_forward_declarations() {
    let mut b = Builder::new();
    let a_ptr = b.refer(PTR, "", 4);
    let b_ptr = b.refer(PTR, "", 3);
    let struct_b = b.record(STRUCT, "b", 8, &[("a", a_ptr, 0, 0)]);
    let struct_a = b.record(STRUCT, "a", 8, &[("b", b_ptr, 0, 0)]);
    assert_eq!((struct_b, struct_a), (3, 4));
    assert_eq!(
        dump(&b.build(), &[struct_a, struct_b]),
        "struct b;\n\nstruct a {\n\tstruct b *b;\n};\n\nstruct b {\n\tstruct a *a;\n};\n\n"
    );
}

#[test]
fn dump_named_types_covers_structs_unions_and_enums() {
    let mut b = Builder::new();
    let int = b.int("int", 4, true);
    b.record(UNION, "u", 4, &[("i", int, 0, 0)]);
    b.enumeration("e", 4, false, &[("E", 7)]);
    b.refer(TYPEDEF, "unused_t", int);
    assert_eq!(dump_named_types(&b.build()), "union u {\n\tint i;\n};\n\nenum e {\n\tE = 7,\n};\n\n");
}
