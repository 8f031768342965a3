//! The BTF of the check goldens' fixture kernels (`tests/data/catalog/*/sys/kernel/btf/vmlinux`),
//! written from the type list below with `catalog::btf::BtfBuilder`. The committed files must
//! be what this writes; `RBT_BLESS=1` rewrites them. The types are the few the goldens name
//! (`struct task_struct` and what its members lead to, `vfs_read`), plus two structs whose names
//! are near `task_struct`, for "did you mean", and an enum whose constants scripts use by name;
//! layouts are Linux's where a golden reads them and
//! small made-up ones elsewhere.

use catalog::btf::{BtfBuilder, PTR, STRUCT, TYPEDEF};

/// The fixtures that have kernel types.
const WITH_BTF: [&str; 2] = ["default", "no-trampolines"];

/// Members of a struct: (name, type, byte offset).
fn members<'a>(list: &[(&'a str, u32, u32)]) -> Vec<(&'a str, u32, u32, u32)> {
    list.iter().map(|&(name, ty, offset)| (name, ty, offset * 8, 0)).collect()
}

fn fixture_btf() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let uint = b.int("unsigned int", 4, false);
    let long = b.int("long int", 8, true);
    let ulong = b.int("long unsigned int", 8, false);
    let llong = b.int("long long int", 8, true);
    let char_ = b.int("char", 1, true);
    let u64_ = b.int("long long unsigned int", 8, false);
    let pid_t = b.refer(TYPEDEF, "pid_t", int);
    let size_t = b.refer(TYPEDEF, "size_t", ulong);
    let ssize_t = b.refer(TYPEDEF, "ssize_t", long);
    let loff_t = b.refer(TYPEDEF, "loff_t", llong);
    let void_ptr = b.refer(PTR, "", 0);
    let comm = b.array(char_, int, 16);
    let bits = b.array(ulong, int, 1);

    let load_weight = b.record(STRUCT, "load_weight", 16, &members(&[("weight", ulong, 0), ("inv_weight", uint, 8)]));
    let sched_entity = b.record(
        STRUCT,
        "sched_entity",
        48,
        &members(&[
            ("load", load_weight, 0),
            ("exec_start", u64_, 16),
            ("sum_exec_runtime", u64_, 24),
            ("vruntime", u64_, 32),
            ("nr_migrations", u64_, 40),
        ]),
    );
    let sched_dl_entity =
        b.record(STRUCT, "sched_dl_entity", 16, &members(&[("dl_runtime", u64_, 0), ("dl_deadline", u64_, 8)]));
    let cpumask = b.record(STRUCT, "cpumask", 8, &members(&[("bits", bits, 0)]));
    let cpumask_t = b.refer(TYPEDEF, "cpumask_t", cpumask);
    let mm = b.fwd("mm_struct", false);
    let mm_ptr = b.refer(PTR, "", mm);
    let files = b.fwd("files_struct", false);
    let files_ptr = b.refer(PTR, "", files);
    // `struct task_struct *` is written before the struct, whose id is the next one.
    let task_ptr = b.refer(PTR, "", files_ptr + 2);
    let task_struct = b.record(
        STRUCT,
        "task_struct",
        152,
        &members(&[
            ("__state", uint, 0),
            ("stack", void_ptr, 8),
            ("prio", int, 16),
            ("static_prio", int, 20),
            ("se", sched_entity, 24),
            ("dl", sched_dl_entity, 72),
            ("cpus_mask", cpumask_t, 88),
            ("mm", mm_ptr, 96),
            ("pid", pid_t, 104),
            ("tgid", pid_t, 108),
            ("real_parent", task_ptr, 112),
            ("parent", task_ptr, 120),
            ("comm", comm, 128),
            ("files", files_ptr, 144),
        ]),
    );
    b.record(STRUCT, "tss_struct", 8, &members(&[("sp0", ulong, 0)]));
    b.record(STRUCT, "desc_struct", 8, &members(&[("limit0", uint, 0), ("base0", uint, 4)]));
    let path = b.record(STRUCT, "path", 16, &members(&[("mnt", void_ptr, 0), ("dentry", void_ptr, 8)]));
    let file = b.record(STRUCT, "file", 24, &members(&[("f_path", path, 0), ("f_pos", loff_t, 16)]));
    let file_ptr = b.refer(PTR, "", file);
    let char_ptr = b.refer(PTR, "", char_);
    let loff_ptr = b.refer(PTR, "", loff_t);
    let vfs_read =
        b.func_proto(ssize_t, &[("file", file_ptr), ("buf", char_ptr), ("count", size_t), ("pos", loff_ptr)]);
    b.func("vfs_read", vfs_read);
    // Enum constants resolve by name without an include, as the kernel's TCP states do.
    b.enumeration("", 4, false, &[("TCP_ESTABLISHED", 1), ("TCP_SYN_SENT", 2), ("TCP_FIN_WAIT1", 4)]);
    assert_eq!(task_struct, task_ptr + 1);
    b.bytes()
}

#[test]
fn fixture_btf_is_what_the_type_list_writes() {
    let bytes = fixture_btf();
    let btf = catalog::btf::Btf::parse(bytes.clone()).expect("valid BTF");
    assert!(btf.type_named("struct task_struct").is_some());
    for fixture in WITH_BTF {
        let path = tests::workspace().join("tests/data/catalog").join(fixture).join("sys/kernel/btf/vmlinux");
        if std::env::var("RBT_BLESS").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("create the BTF directory");
            std::fs::write(&path, &bytes).expect("write the fixture BTF");
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(committed == bytes, "{} is not what this test writes; RBT_BLESS=1 rewrites it", path.display());
    }
}
