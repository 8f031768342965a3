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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An ld.so cache in the current format holding `(soname, path)` entries.
    pub(crate) fn cache(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut bytes = b"glibc-ld.so.cache1.1".to_vec();
        bytes.extend(u32::try_from(entries.len()).expect("few").to_le_bytes());
        bytes.resize(48, 0);
        let mut strings = Vec::new();
        let strings_at = 48 + 24 * entries.len();
        for (soname, path) in entries {
            let mut offset = |text: &str| {
                let at = u32::try_from(strings_at + strings.len()).expect("small");
                strings.extend(text.as_bytes());
                strings.push(0);
                at
            };
            let (key, value) = (offset(soname), offset(path));
            bytes.extend(0x303i32.to_le_bytes());
            bytes.extend(key.to_le_bytes());
            bytes.extend(value.to_le_bytes());
            bytes.extend([0; 12]);
        }
        bytes.extend(strings);
        bytes
    }

    #[test]
    fn names_match_with_or_without_lib_and_version() {
        let cache = cache(&[("libm.so.6", "/lib/libm.so.6"), ("libc.so.6", "/lib/libc.so.6")]);
        assert_eq!(parse_ld_so_cache(&cache).len(), 2);
        for name in ["libc", "c", "libc.so.6"] {
            assert_eq!(find_library(&cache, name).as_deref(), Some("/lib/libc.so.6"), "{name}");
        }
        assert_eq!(find_library(&cache, "libz"), None);
        assert_eq!(parse_ld_so_cache(b"not a cache"), Vec::new());
    }
}
