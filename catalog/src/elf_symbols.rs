//! User binaries' functions as uprobes attach to them: ELF symbols read with the `object`
//! crate, C++ names matched demangled, virtual addresses turned into file offsets through the
//! loadable segments. Everything here works on a binary's bytes; the catalog reads them.

use compiler::{UserAddress, UserFunction};
use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

use crate::wildcard::wildcard_match;

/// The functions of the binary at `path` (its bytes `data`) matching `pattern`, with file
/// offsets. As in bpftrace 0.17, a C++ symbol (`_ZN3rbt7Counter3addEi`) also matches when its
/// demangled name (`rbt::Counter::add(int)`) starts with the pattern's match —
/// `rbt::Counter::add` names both overloads — and names with `.part.` (pieces of functions split
/// by the compiler) are left out.
pub fn user_functions(path: &str, data: &[u8], pattern: &str) -> Result<Vec<UserFunction>, String> {
    let file = parse_elf(path, data)?;
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
        found.push(UserFunction { path: path.to_owned(), name: name.to_owned(), file_offset, size: symbol.size() });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// What lies at virtual address `address` of the binary at `path`: its file offset and the
/// symbol whose bytes hold it (the first one the symbol tables list, of any kind, as bcc finds
/// it for bpftrace).
pub fn user_address(path: &str, data: &[u8], address: u64) -> Result<UserAddress, String> {
    let file = parse_elf(path, data)?;
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
    Ok(UserAddress { path: path.to_owned(), file_offset: file_offset(&file, address), function })
}

/// The address and size of the first symbol named `name` of the binary at `path`, of any kind
/// (`uaddr("GLOBAL_A")` names a variable), the symbol table before the dynamic one.
pub fn user_symbol(path: &str, data: &[u8], name: &str) -> Option<(u64, u64)> {
    let file = parse_elf(path, data).ok()?;
    let mut symbols = file.symbols().chain(file.dynamic_symbols());
    let symbol = symbols.find(|s| !s.is_undefined() && s.name() == Ok(name))?;
    Some((symbol.address(), symbol.size()))
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

pub(crate) fn parse_elf<'a>(path: &str, data: &'a [u8]) -> Result<object::File<'a>, String> {
    object::File::parse(data).map_err(|e| format!("{path} is not an ELF binary rbt can read: {e}"))
}

/// Where virtual address `addr` lives in the file, from the loadable segment holding it.
pub(crate) fn file_offset(file: &object::File<'_>, addr: u64) -> Option<u64> {
    file.segments().find_map(|segment| {
        let (start, size) = (segment.address(), segment.size());
        let (offset, _) = segment.file_range();
        (addr >= start && addr < start + size).then(|| addr - start + offset)
    })
}
