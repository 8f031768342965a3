//! Files are data another user may have written: a damaged one gives an error or a table, never
//! a panic. Bytes of libc's headers and CFI sections are changed at many places in turn.

/// A deterministic sequence of positions and values (no crate needed for so little).
fn lcg(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[test]
fn damaged_libc_never_panics() {
    let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("read Debian's libc");
    let file = object::File::parse(&*libc).expect("libc parses");
    use object::{Object, ObjectSection};
    let mut regions: Vec<(usize, usize)> = vec![(0, 64)];
    for name in [".eh_frame", ".eh_frame_hdr"] {
        let section = file.section_by_name(name).expect("libc has the section");
        let (offset, size) = section.file_range().expect("in the file");
        regions.push((offset as usize, size as usize));
    }
    let mut state = 12_345;
    for round in 0..300 {
        let (start, len) = regions[round % regions.len()];
        let mut damaged = libc.clone();
        for _ in 0..4 {
            let at = start + (lcg(&mut state) as usize % len);
            damaged[at] = lcg(&mut state) as u8;
        }
        let _ = unwind::build(&damaged);
    }
}
