//! Helpers of the tests that read this machine's files: the files, their symbols and sections as
//! file offsets, the vDSO's image, and the invariants every table keeps.

#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

use std::io::{Read, Seek, SeekFrom};

use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSection, ObjectSymbol};
use unwind::{decode, UnwindTable, KIND_NONE};

pub const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
pub const PYTHON3: &str = "/usr/bin/python3";

/// A file this machine must have for the test (Debian's libc, python3).
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e} (the tests expect Debian's package of it)"))
}

pub fn elf(data: &[u8]) -> ElfFile64<'_, Endianness> {
    ElfFile64::parse(data).expect("an ELF file")
}

/// The file offset of virtual address `vaddr`, through the PT_LOAD segment holding it.
pub fn file_offset(data: &[u8], vaddr: u64) -> u64 {
    let file = elf(data);
    let endian = file.endian();
    let segment = file
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD)
        .find(|ph| vaddr >= ph.p_vaddr(endian) && vaddr - ph.p_vaddr(endian) < ph.p_filesz(endian))
        .unwrap_or_else(|| panic!("no PT_LOAD holds {vaddr:#x}"));
    vaddr - segment.p_vaddr(endian) + segment.p_offset(endian)
}

/// The address of a symbol of the symbol table or the dynamic symbol table.
pub fn symbol(data: &[u8], name: &str) -> Option<u64> {
    let file = elf(data);
    let found = file.symbols().chain(file.dynamic_symbols()).find(|s| s.name() == Ok(name));
    found.map(|s| s.address())
}

/// A section's file offset range.
pub fn section(data: &[u8], name: &str) -> Option<(u64, u64)> {
    let file = elf(data);
    let section = file.section_by_name(name)?;
    let (offset, size) = section.file_range()?;
    Some((offset, offset + size))
}

/// The decoded rule in force at a file offset.
pub fn rule_at(table: &UnwindTable, offset: u64) -> (u32, u32, Option<u8>) {
    let row = table.lookup(offset).unwrap_or_else(|| panic!("no row at {offset:#x}"));
    decode(row.rule)
}

/// Sorted strictly by pc, no two consecutive rows alike, NONE after the last FDE, and the map's
/// bytes 8 per row.
pub fn check_invariants(table: &UnwindTable) {
    assert!(!table.rows.is_empty());
    for pair in table.rows.windows(2) {
        assert!(pair[0].pc < pair[1].pc, "rows out of order: {pair:?}");
        assert_ne!(pair[0].rule, pair[1].rule, "rows not merged: {pair:?}");
    }
    assert_eq!(decode(table.rows[table.rows.len() - 1].rule).0, KIND_NONE);
    assert_eq!(table.to_bytes().len(), table.rows.len() * 8);
}

/// The vDSO's memory image, read from this process: its range from /proc/self/maps, its bytes
/// from /proc/self/mem.
pub fn vdso_image() -> Vec<u8> {
    read_vdso().expect("this process's [vdso] mapping is readable")
}

fn read_vdso() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let line = maps.lines().find(|line| line.ends_with("[vdso]")).ok_or("no [vdso] line")?;
    let range = line.split_whitespace().next().ok_or("an empty line")?;
    let (start, end) = range.split_once('-').ok_or("no address range")?;
    let (start, end) = (u64::from_str_radix(start, 16)?, u64::from_str_radix(end, 16)?);
    let mut mem = std::fs::File::open("/proc/self/mem")?;
    mem.seek(SeekFrom::Start(start))?;
    let mut image = vec![0u8; usize::try_from(end - start)?];
    mem.read_exact(&mut image)?;
    Ok(image)
}
