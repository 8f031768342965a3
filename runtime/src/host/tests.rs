//! The catalog over this machine: its ld.so cache, libc's symbols, the kernel's BTF.

use compiler::ktypes::KType;
use compiler::ProbeCatalog;

use super::*;

fn live() -> HostCatalog {
    Catalog::new(HostSource::Live)
}

#[test]
fn the_ld_so_cache_names_libc() {
    let (path, data) = live().binary("libc").expect("this Debian system has libc in its ld.so cache");
    assert!(path.ends_with("libc.so.6"), "{path}");
    assert!(data.starts_with(b"\x7fELF"));
}

#[test]
fn libc_has_malloc() {
    let functions = live().user_functions("libc", "malloc").expect("libc resolves");
    assert_eq!(functions.len(), 1);
    assert!(functions[0].file_offset > 0);
}

#[test]
fn reads_this_kernels_task_struct() {
    let catalog = live();
    let btf = catalog.btf().expect("this kernel's BTF");
    let id = btf.type_named("struct task_struct").expect("task_struct");
    let Some(KType::Record { fields, .. }) = btf.get(id) else { panic!() };
    for name in ["pid", "tgid", "comm", "real_parent", "se"] {
        assert!(fields.iter().any(|f| f.name == name), "{name}");
    }
    assert!(btf.function("vfs_read").is_some());
}
