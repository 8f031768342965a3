//! What uprobes and kprobes attach to: functions of user binaries (library names resolved through
//! the ld.so cache, symbols read from the ELF file, their file offsets computed from its
//! segments) and kernel functions (`available_filter_functions`, when the kernel has kprobes).

use std::path::{Path, PathBuf};

use compiler::{UserAddress, UserFunction};
use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

use crate::tracefs::wildcard_match;

/// The binary a uprobe target names: a path, or a library name (`libc`, `libc.so.6`) looked up
/// in the ld.so cache.
pub fn resolve_binary(target: &str) -> Result<PathBuf, String> {
    if target.contains('/') {
        let path = Path::new(target);
        return path.canonicalize().map_err(|e| format!("cannot open {target}: {e}"));
    }
    let cache =
        std::fs::read("/etc/ld.so.cache").map_err(|e| format!("cannot read /etc/ld.so.cache to find {target}: {e}"))?;
    let libraries = parse_ld_so_cache(&cache);
    let wanted = |name: &str| {
        name == target
            || name.strip_prefix(target).is_some_and(|rest| rest.starts_with(".so"))
            || name.strip_prefix("lib").and_then(|n| n.strip_prefix(target)).is_some_and(|rest| rest.starts_with(".so"))
    };
    libraries
        .into_iter()
        .find(|(name, _)| wanted(name))
        .map(|(_, path)| PathBuf::from(path))
        .ok_or_else(|| format!("no library named '{target}' in the ld.so cache (give a path instead)"))
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

/// The functions of `target` matching `pattern`, with file offsets. As in bpftrace 0.17, a C++
/// symbol (`_ZN3rbt7Counter3addEi`) also matches when its demangled name
/// (`rbt::Counter::add(int)`) starts with the pattern's match — `rbt::Counter::add` names both
/// overloads — and names with `.part.` (pieces of functions split by the compiler) are left
/// out.
pub fn user_functions(target: &str, pattern: &str) -> Result<Vec<UserFunction>, String> {
    let (path, data) = read_binary(target)?;
    let file = parse_elf(&path, &data)?;
    let demangled_pattern = format!("{pattern}*");
    let mut found: Vec<UserFunction> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for symbol in file.symbols().chain(file.dynamic_symbols()) {
        if symbol.kind() != SymbolKind::Text || symbol.is_undefined() || symbol.address() == 0 {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        if name.is_empty() || name.contains(".part.") || seen.contains(name) {
            continue;
        }
        let matches = wildcard_match(name, pattern)
            || (is_cxx_mangled(name) && demangle_cxx(name).is_some_and(|d| wildcard_match(&d, &demangled_pattern)));
        if !matches {
            continue;
        }
        let Some(file_offset) = file_offset(&file, symbol.address()) else { continue };
        seen.insert(name);
        found.push(UserFunction {
            path: path.display().to_string(),
            name: name.to_owned(),
            file_offset,
            size: symbol.size(),
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// What lies at virtual address `address` of `target`: its file offset and the symbol whose
/// bytes hold it (the first one the symbol tables list, of any kind, as bcc finds it for
/// bpftrace).
pub fn user_address(target: &str, address: u64) -> Result<UserAddress, String> {
    let (path, data) = read_binary(target)?;
    let file = parse_elf(&path, &data)?;
    let function = file
        .symbols()
        .chain(file.dynamic_symbols())
        // Thread-local symbols' values are offsets into the TLS block, not addresses.
        .filter(|s| {
            !s.is_undefined()
                && s.size() > 0
                && matches!(s.kind(), SymbolKind::Text | SymbolKind::Data | SymbolKind::Unknown)
        })
        .find(|s| address >= s.address() && address - s.address() < s.size())
        .and_then(|s| Some((s.name().ok()?.to_owned(), address - s.address())));
    Ok(UserAddress { path: path.display().to_string(), file_offset: file_offset(&file, address), function })
}

/// Whether a symbol is an Itanium C++ ABI name, as bpftrace decides which names to demangle.
fn is_cxx_mangled(name: &str) -> bool {
    name.starts_with("_Z") || name.starts_with("____Z")
}

/// `_ZN3rbt7Counter3addEi` as `rbt::Counter::add(int)`.
pub fn demangle_cxx(name: &str) -> Option<String> {
    let symbol = cpp_demangle::Symbol::new(name.as_bytes()).ok()?;
    symbol.demangle().ok()
}

pub(crate) fn read_binary(target: &str) -> Result<(PathBuf, Vec<u8>), String> {
    let path = resolve_binary(target)?;
    let data = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok((path, data))
}

pub(crate) fn parse_elf<'a>(path: &Path, data: &'a [u8]) -> Result<object::File<'a>, String> {
    object::File::parse(data).map_err(|e| format!("{} is not an ELF binary rbt can read: {e}", path.display()))
}

/// Where virtual address `addr` lives in the file, from the loadable segment holding it.
pub(crate) fn file_offset(file: &object::File<'_>, addr: u64) -> Option<u64> {
    file.segments().find_map(|segment| {
        let (start, size) = (segment.address(), segment.size());
        let (offset, _) = segment.file_range();
        (addr >= start && addr < start + size).then(|| addr - start + offset)
    })
}

/// Where the kernel's perf PMU of a dynamic probe type is: `/sys/bus/event_source/devices/NAME`.
pub fn pmu_dir(name: &str) -> PathBuf {
    Path::new("/sys/bus/event_source/devices").join(name)
}

/// Kernel functions matching `pattern` from tracefs' `available_filter_functions` (lines read
/// `vfs_read` or `nft_do_chain [nf_tables]`).
pub fn kernel_functions(tracefs_root: &Path, pattern: &str) -> Result<Vec<String>, String> {
    if !pmu_dir("kprobe").exists() && !tracefs_root.join("kprobe_events").exists() {
        return Err("this kernel has no kprobes (it was built without CONFIG_KPROBES)".into());
    }
    let text = std::fs::read_to_string(tracefs_root.join("available_filter_functions"))
        .map_err(|e| format!("cannot read the kernel's functions from tracefs: {e}"))?;
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        // As bpftrace: `.part.N` pieces of split functions cannot be traced.
        .filter(|f| !f.contains(".part.") && wildcard_match(f, pattern))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ld_so_cache_names_libc() {
        let bytes = std::fs::read("/etc/ld.so.cache").expect("this Debian system has an ld.so cache");
        let libraries = parse_ld_so_cache(&bytes);
        assert!(
            libraries.iter().any(|(name, path)| name == "libc.so.6" && path.ends_with("libc.so.6")),
            "{libraries:?}"
        );
        assert!(resolve_binary("libc").is_ok_and(|p| p.display().to_string().ends_with("libc.so.6")));
    }

    #[test]
    fn libc_has_malloc() {
        let functions = user_functions("libc", "malloc").expect("libc resolves");
        assert_eq!(functions.len(), 1);
        assert!(functions[0].file_offset > 0);
    }
}
