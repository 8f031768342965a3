//! The ld.so cache (`/etc/ld.so.cache`), where uprobe targets written as library names (`libc`,
//! `libc.so.6`) are looked up, as the dynamic loader looks them up.

/// The path of the library `target` names: the first cache entry whose soname is `target`, or
/// `target` (with or without `lib`) followed by `.so`.
pub fn find_library(cache: &[u8], target: &str) -> Option<String> {
    let wanted = |name: &str| {
        name == target
            || name.strip_prefix(target).is_some_and(|rest| rest.starts_with(".so"))
            || name.strip_prefix("lib").and_then(|n| n.strip_prefix(target)).is_some_and(|rest| rest.starts_with(".so"))
    };
    parse_ld_so_cache(cache).into_iter().find(|(name, _)| wanted(name)).map(|(_, path)| path)
}

/// `(soname, path)` pairs of the ld.so cache in its current format:
///
/// ```text
/// "glibc-ld.so.cache1.1", u32 entries, u32 string bytes, u8 flags, 3 pad, u32 ext, 3 x u32
/// entries x { i32 flags, u32 key, u32 value, u32 osversion, u64 hwcap }; key and value are
/// offsets of NUL-terminated strings from the start of the file
/// ```
pub fn parse_ld_so_cache(bytes: &[u8]) -> Vec<(String, String)> {
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    const HEADER: usize = 48;
    const ENTRY: usize = 24;
    let Some(start) = bytes.windows(MAGIC.len()).position(|w| w == MAGIC) else { return Vec::new() };
    let header = &bytes[start..];
    let u32_at = |b: &[u8], at: usize| b.get(at..at + 4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    let Some(count) = u32_at(header, 20) else { return Vec::new() };
    let string_at = |offset: u32| {
        let from = start + offset as usize;
        let rest = bytes.get(from..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    (0..count as usize)
        .filter_map(|i| {
            let entry = header.get(HEADER + i * ENTRY..HEADER + (i + 1) * ENTRY)?;
            Some((string_at(u32_at(entry, 4)?)?, string_at(u32_at(entry, 8)?)?))
        })
        .collect()
}
