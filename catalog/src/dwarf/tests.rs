//! The DWARF types of `tests/data/dwarf/dwarf_target.c`, compiled with gcc here, as the catalog
//! hands them to the checker: signatures, records with their offsets (bitfields, an anonymous
//! union, a two-dimensional array), names, sizes, declarations, and the ids' ranges.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use compiler::ktypes::{KField, KType, KTypeId, DWARF_TYPE_BASE};
use compiler::ProbeCatalog;

use super::DwarfTypes;
use crate::{Catalog, MemSource};

/// The target's bytes, built once per test run.
fn target() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| compile("-gdwarf-5"))
}

/// The target compiled with `-g` and `dwarf` (the DWARF version's option).
fn compile(dwarf: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("rbt-catalog-dwarf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let binary = dir.join(format!("dwarf_target{dwarf}"));
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/dwarf/dwarf_target.c");
    let out = Command::new("gcc").args(["-g", dwarf, "-O0", "-o"]).arg(&binary).arg(&source).output();
    let out = out.expect("gcc runs (apt-get install gcc)");
    assert!(out.status.success(), "gcc failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(&binary).expect("the target is written")
}

const PATH: &str = "/bin/dwarf_target";

fn catalog() -> Catalog<MemSource> {
    Catalog::new(MemSource::default().with_file(PATH, target()))
}

fn record(catalog: &Catalog<MemSource>, id: KTypeId) -> (String, u32, Vec<KField>) {
    match catalog.kernel_type(id) {
        Some(KType::Record { name, size, fields, .. }) => (name, size, fields),
        other => panic!("{id} is {other:?}"),
    }
}

fn field<'a>(fields: &'a [KField], name: &str) -> &'a KField {
    fields.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

#[test]
fn signatures_name_and_type_each_parameter() {
    let catalog = catalog();
    let f = catalog.user_function_signature(PATH, "take_scalars").expect("DWARF");
    let names: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "c", "s", "l", "n", "color"]);
    let types: Vec<String> = f.params.iter().map(|p| catalog.kernel_type_name(p.ty)).collect();
    assert_eq!(types, ["int", "char", "short unsigned int", "long int", "counter_t", "enum Color"]);
    let ints: Vec<Option<KType>> = f.params.iter().map(|p| catalog.kernel_type(p.ty)).collect();
    assert_eq!(ints[1], Some(KType::Int { bytes: 1, signed: true, char: true }));
    // Typedefs are looked through; enums read as unsigned, as bpftrace reads them.
    assert_eq!(ints[4], Some(KType::Int { bytes: 8, signed: false, char: false }));
    assert_eq!(ints[5], Some(KType::Int { bytes: 4, signed: false, char: false }));
    assert!(f.params.iter().all(|p| p.ty >= DWARF_TYPE_BASE));
    assert_eq!(f.ret.map(|r| catalog.kernel_type_name(r)), Some("int".into()));
    // A function DWARF does not describe has no parameters; a binary without DWARF says so.
    assert!(catalog.user_function_signature(PATH, "nope").expect("DWARF").params.is_empty());
    let stripped = Catalog::new(MemSource::default().with_file("/bin/x", b"not an ELF file".to_vec()));
    assert_eq!(stripped.user_function_signature("/bin/x", "f"), Err("No debuginfo found for /bin/x".into()));
}

#[test]
fn records_keep_the_compilers_layout() {
    let catalog = catalog();
    let f = catalog.user_function_signature(PATH, "take_sample").expect("DWARF");
    let Some(KType::Pointer { to }) = catalog.kernel_type(f.params[0].ty) else { panic!() };
    assert_eq!(catalog.kernel_type_name(f.params[0].ty), "struct Sample *");
    assert_eq!(catalog.kernel_type_name(f.params[1].ty), "const char *");
    let (name, size, fields) = record(&catalog, to);
    assert_eq!((name.as_str(), size), ("struct Sample", 72));
    let at: Vec<(&str, u32)> = fields.iter().map(|f| (f.name.as_str(), f.bit_offset)).collect();
    assert_eq!(
        at,
        [
            ("id", 0),
            ("name", 32),
            ("grid", 128),
            ("where", 224),
            ("next", 320),
            ("color", 384),
            ("count", 448),
            ("label", 512)
        ]
    );
    let flags = catalog.user_type_named(PATH, "struct Flags").expect("struct Flags");
    let (_, size, flag_fields) = record(&catalog, flags);
    let at: Vec<(&str, u32, u8)> = flag_fields.iter().map(|f| (f.name.as_str(), f.bit_offset, f.bits)).collect();
    // The anonymous union's members are raised into the struct, as C reaches them.
    assert_eq!(
        (size, at),
        (12, vec![("id", 0, 0), ("flag", 32, 1), ("level", 33, 3), ("as_int", 64, 0), ("bytes", 64, 0)])
    );
    let grid = field(&fields, "grid").ty;
    assert_eq!(catalog.kernel_type_name(grid), "short int[3][2]");
    let Some(KType::Array { elem, len: 2 }) = catalog.kernel_type(grid) else { panic!() };
    assert!(matches!(catalog.kernel_type(elem), Some(KType::Array { len: 3, .. })));
    assert_eq!((catalog.kernel_type_size(grid), catalog.kernel_type_size(elem)), (Some(12), Some(6)));
    let name = field(&fields, "name").ty;
    let Some(KType::Array { elem, len: 12 }) = catalog.kernel_type(name) else { panic!() };
    assert_eq!(catalog.kernel_type(elem), Some(KType::Int { bytes: 1, signed: true, char: true }));
}

#[test]
fn casts_find_the_binarys_structs_by_name() {
    let catalog = catalog();
    let list = catalog.user_type_named(PATH, "struct List").expect("struct List");
    let (_, size, fields) = record(&catalog, list);
    assert_eq!(size, 16);
    // A struct pointing at itself is handed out one level at a time.
    let Some(KType::Pointer { to }) = catalog.kernel_type(field(&fields, "next").ty) else { panic!() };
    assert_eq!(to, list);
    assert!(catalog.user_type_named(PATH, "struct Point").is_some());
    assert!(catalog.user_type_named(PATH, "enum Color").is_some());
    assert_eq!(catalog.user_type_named(PATH, "struct Nope"), None);
    assert_eq!(catalog.user_type_named("/bin/missing", "struct List"), None);
    // A struct only declared cannot be read.
    let f = catalog.user_function_signature(PATH, "take_point").expect("DWARF");
    let Some(KType::Pointer { to }) = catalog.kernel_type(f.params[1].ty) else { panic!() };
    assert_eq!(catalog.kernel_type(to), Some(KType::Opaque { name: "struct Opaque".into(), size: 0 }));
    assert_eq!(catalog.kernel_type_size(to), None);
}

#[test]
fn each_binary_has_an_id_range_of_its_own() {
    let source = MemSource::default().with_file(PATH, target()).with_file("/bin/copy", target());
    let catalog = Catalog::new(source);
    let a = catalog.user_type_named(PATH, "struct List").expect("struct List");
    let b = catalog.user_type_named("/bin/copy", "struct List").expect("struct List");
    assert_ne!(a, b);
    assert_eq!(catalog.kernel_type_size(a), catalog.kernel_type_size(b));
    assert_eq!(catalog.user_type_named(PATH, "struct List"), Some(a), "a binary is read once");
    let table = DwarfTypes::read(target()).expect("DWARF");
    assert!(b >= a + u32::try_from(table.entries.len()).expect("a small table"));
}

/// DWARF 2 writes member offsets as `DW_OP_plus_uconst` expressions, DWARF 2 to 4 place
/// bitfields from the storage unit's most significant bit: the fields come out the same.
#[test]
fn older_dwarf_versions_place_members_alike() {
    let fields_of = |bytes: Vec<u8>| {
        let catalog = Catalog::new(MemSource::default().with_file(PATH, bytes));
        let flags = catalog.user_type_named(PATH, "struct Flags").expect("struct Flags");
        let sample = catalog.user_type_named(PATH, "struct Sample").expect("struct Sample");
        (record(&catalog, flags), record(&catalog, sample).2.iter().map(|f| f.bit_offset).collect::<Vec<_>>())
    };
    let current = fields_of(target().to_vec());
    for version in ["-gdwarf-2", "-gdwarf-4"] {
        let older = fields_of(compile(version));
        assert_eq!(
            older.0 .2.iter().map(|f| (f.bit_offset, f.bits)).collect::<Vec<_>>(),
            current.0 .2.iter().map(|f| (f.bit_offset, f.bits)).collect::<Vec<_>>(),
            "{version}"
        );
        assert_eq!(older.1, current.1, "{version}");
    }
}
