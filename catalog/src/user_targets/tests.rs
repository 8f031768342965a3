//! Targets over systems held in memory: globs keep only ELF programs, library names go
//! through the ld.so cache, `-p PID` reads the process's executable, mount namespace and maps.

use super::*;
use crate::MemSource;

/// The smallest ELF64 file `object` parses: a header of type `e_type` (2: an executable, 3: a
/// shared object, 1: a relocatable object), no sections, no segments.
fn elf(e_type: u16) -> Vec<u8> {
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2; // 64-bit
    header[5] = 1; // little-endian
    header[6] = 1; // version
    header[16..18].copy_from_slice(&e_type.to_le_bytes());
    header[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    header[20..24].copy_from_slice(&1u32.to_le_bytes());
    header[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    header[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    header[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    header
}

#[test]
fn globs_keep_elf_programs_as_written() {
    let source = MemSource::default()
        .with_file("./progs/usdt_test", elf(2))
        .with_file("./progs/usdt_lib.so", elf(3))
        .with_file("./progs/usdt_notes.o", elf(1))
        .with_file("./progs/usdt_test.c", "int main() {}");
    let catalog = Catalog::new(source);
    assert_eq!(
        catalog.resolve_targets("./progs/usdt*"),
        Ok(vec!["./progs/usdt_lib.so".into(), "./progs/usdt_test".into()])
    );
    assert_eq!(catalog.resolve_targets("./progs/none*"), Ok(vec![]));
    // A plain path is kept as written, whether or not it exists: reading it says why not.
    assert_eq!(catalog.resolve_targets("./progs/../progs/usdt_test"), Ok(vec!["./progs/../progs/usdt_test".into()]));
    let missing = catalog.resolve_targets("libnope").expect_err("no ld.so cache");
    assert!(missing.starts_with("cannot read /etc/ld.so.cache to find libnope: "), "{missing}");
}

#[test]
fn a_process_is_seen_through_its_root() {
    let maps = "\
00400000-00401000 r--p 00000000 08:01 1234 /work/usdt_test
00401000-00402000 r-xp 00001000 08:01 1234 /work/usdt_test
7f0000000000-7f0000001000 r-xp 00000000 08:01 99 /lib/libusdt_tp.so
7f0000001000-7f0000002000 rw-p 00000000 08:01 98 /lib/data.bin
7f0000002000-7f0000003000 r-xp 00000000 00:00 0 [vdso]
7f0000003000-7f0000004000 r-xp 00000000 08:01 99 /lib/libusdt_tp.so
";
    let source = MemSource::default()
        .with_file("/proc/42/maps", maps)
        .with_link("/proc/42/exe", "/work/usdt_test")
        .with_link("/proc/self/ns/mnt", "mnt:[1]")
        .with_link("/proc/42/ns/mnt", "mnt:[2]")
        .with_link("/proc/7/ns/mnt", "mnt:[1]");
    let catalog = Catalog::new(source);
    assert_eq!(catalog.process_executable(42), Ok("/proc/42/root/work/usdt_test".into()));
    assert!(catalog.process_executable(43).is_err());
    assert_eq!(catalog.process_modules(42), Ok(vec!["/work/usdt_test".into(), "/lib/libusdt_tp.so".into()]));
    // Another mount namespace: its paths are reached through its root; ours: as written.
    assert_eq!(catalog.process_path(42, "/tmp/ns/prog"), "/proc/42/root/tmp/ns/prog");
    assert_eq!(catalog.process_path(42, "/proc/42/root/tmp/ns/prog"), "/proc/42/root/tmp/ns/prog");
    assert_eq!(catalog.process_path(7, "/tmp/ns/prog"), "/tmp/ns/prog");
    assert!(is_in_process_root("/proc/42/root/x") && !is_in_process_root("/proc/self/root/x"));
}
