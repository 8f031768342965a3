//! Unwind tables of this machine's real files: Debian's libc (built without frame pointers),
//! python3, a PIE executable and this process's vDSO.

mod common;

use common::{check_invariants, file_offset, read, rule_at, section, symbol, LIBC, PYTHON3};
use unwind::{build, CfiSource, KIND_CFA_RBP, KIND_CFA_RSP, KIND_END, KIND_NONE, KIND_PLT, KIND_SIGNAL, KIND_STOP};

#[test]
fn libc_malloc_entry_is_rsp_plus_8() {
    let data = read(LIBC);
    let table = build(&data).unwrap();
    check_invariants(&table);
    assert_eq!(table.source, CfiSource::EhFrame);
    assert_eq!(table.build_id.as_ref().map(Vec::len), Some(20));
    let malloc = file_offset(&data, symbol(&data, "malloc").unwrap());
    assert_eq!(rule_at(&table, malloc), (KIND_CFA_RSP, 8, None));
    // Somewhere after malloc's prologue the CFA has moved (it pushes callee-saved registers).
    let later = (malloc + 1..malloc + 64).map(|offset| rule_at(&table, offset)).find(|rule| rule.1 > 8);
    assert!(later.is_some_and(|(kind, _, _)| kind == KIND_CFA_RSP), "{later:?}");
}

#[test]
fn libc_restore_rt_is_a_signal_trampoline() {
    // Debian strips __restore_rt's local symbol, so it is found by its code when the symbol table
    // lacks it: `mov $15, %rax` (rt_sigreturn) then `syscall`.
    let data = read(LIBC);
    let table = build(&data).unwrap();
    let code = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];
    let restore_rt = match symbol(&data, "__restore_rt") {
        Some(vaddr) => file_offset(&data, vaddr),
        None => data.windows(code.len()).position(|w| w == code).unwrap() as u64,
    };
    assert_eq!(rule_at(&table, restore_rt).0, KIND_SIGNAL);
    // The FDE starts a byte early so that a lookup of the return address minus one finds it.
    assert_eq!(rule_at(&table, restore_rt - 1).0, KIND_SIGNAL);
    assert_eq!(rule_at(&table, restore_rt + 8).0, KIND_SIGNAL);
}

/// The `.plt` rows: `rsp + 16` at the PLT0 push, `rsp + 24` at its jump, then the expression
/// for the 16-byte entries, with threshold 11.
fn check_plt(data: &[u8]) {
    let table = build(data).expect("a table");
    let (plt, plt_end) = section(data, ".plt").expect("a .plt section");
    assert_eq!(rule_at(&table, plt), (KIND_CFA_RSP, 16, None));
    assert_eq!(rule_at(&table, plt + 6), (KIND_CFA_RSP, 24, None));
    for offset in [plt + 16, plt + 27, plt_end - 1] {
        assert_eq!(rule_at(&table, offset), (KIND_PLT, 8, Some(11)), "at {offset:#x}");
    }
}

#[test]
fn libc_plt_rows_are_plt() {
    check_plt(&read(LIBC));
}

#[test]
fn python3_plt_rows_are_plt_and_start_is_the_outermost_frame() {
    let data = read(PYTHON3);
    let table = build(&data).unwrap();
    check_invariants(&table);
    check_plt(&data);
    // python3 is not PIE: its code is at 0x41f000 and more, its file offsets far below.
    let entry = object::Object::entry(&common::elf(&data));
    assert_ne!(file_offset(&data, entry), entry);
    assert_eq!(rule_at(&table, file_offset(&data, entry)).0, KIND_END);
}

#[test]
fn pie_start_is_the_outermost_frame() {
    let data = read("/usr/bin/ls");
    let table = build(&data).unwrap();
    check_invariants(&table);
    let entry = object::Object::entry(&common::elf(&data));
    assert_eq!(rule_at(&table, file_offset(&data, entry)).0, KIND_END);
}

#[test]
fn vdso_memory_image_builds() {
    let image = common::vdso_image();
    let table = build(&image).unwrap();
    check_invariants(&table);
    assert_eq!(table.source, CfiSource::EhFrame);
    assert!(table.build_id.is_some());
    let clock_gettime = symbol(&image, "__vdso_clock_gettime").unwrap();
    assert_eq!(file_offset(&image, clock_gettime), clock_gettime, "the vDSO is linked at 0");
    assert_eq!(rule_at(&table, clock_gettime), (KIND_CFA_RSP, 8, None));
    // The vDSO keeps frame pointers: some row of clock_gettime has cfa = rbp + 16.
    let framed = (clock_gettime..clock_gettime + 32).map(|offset| rule_at(&table, offset));
    assert!(framed.clone().any(|rule| rule == (KIND_CFA_RBP, 16, Some(2))), "{:?}", framed.collect::<Vec<_>>());
}

#[test]
fn every_kind_a_real_file_has_is_valid() {
    // Every row of libc and python3 decodes to a known kind with in-range fields, and STOP rows
    // are rare (stack realignment, expressions other than the PLT's).
    for path in [LIBC, PYTHON3] {
        let table = build(&read(path)).unwrap();
        let kinds = table.rows.iter().map(|row| unwind::decode(row.rule).0);
        assert!(kinds.clone().all(|kind| kind <= KIND_STOP), "{path}");
        let stops = kinds.clone().filter(|&kind| kind == KIND_STOP).count();
        assert!(stops * 100 < table.rows.len(), "{path}: {stops} STOP rows of {}", table.rows.len());
        assert!(kinds.clone().any(|kind| kind == KIND_NONE));
    }
}

#[test]
fn files_that_are_not_x86_64_elf_are_errors() {
    let script = build(b"#!/bin/sh\nexit 0\n").unwrap_err();
    assert!(script.to_string().starts_with("not an ELF file"), "{script}");
    let mut data = read(LIBC);
    data[18] = 183; // EM_AARCH64
    assert_eq!(build(&data).unwrap_err().to_string(), "not an x86-64 ELF file (e_machine 183, x86-64 is 62)");
}
