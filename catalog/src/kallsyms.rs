//! Kernel symbols' addresses from `/proc/kallsyms`, for `kaddr("name")`. Its lines read
//!
//! ```text
//! ffffffff81000000 T _stext
//! ffffffffc0030000 t helper_in_module→[mymod]
//! ```
//!
//! (a tab, shown as `→`, before a module symbol's module). Addresses read as 0 without root.
//! kallsyms has no sizes: a function's is taken as the distance to the next text symbol, for
//! the bounds of a kprobe's offset (`kprobe:vfs_read+16`).
//! The symbolizer (`runtime::symbols`) keeps a table of its own, sorted for lookups by address.

/// The address of the first symbol named `name`, module symbols included.
pub fn symbol_address(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let (addr, _kind, symbol) = (words.next()?, words.next()?, words.next()?);
        (symbol == name).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
    })
}

/// The size of the kernel function `name` (a text symbol, `t` or `T`): the distance from its
/// address to the next text symbol's above it. `None` when it is not there, when addresses read
/// as 0 (without root), or when no text symbol follows it.
pub fn function_size(text: &str, name: &str) -> Option<u64> {
    let text_symbols = text.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        let (addr, kind, symbol) = (words.next()?, words.next()?, words.next()?);
        let addr = u64::from_str_radix(addr, 16).ok()?;
        matches!(kind, "t" | "T").then_some((addr, symbol))
    });
    let start = text_symbols.clone().find(|(_, symbol)| *symbol == name)?.0;
    if start == 0 {
        return None;
    }
    let next = text_symbols.map(|(addr, _)| addr).filter(|&addr| addr > start).min()?;
    Some(next - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_core_and_module_symbols() {
        let text = "ffffffff81000000 T _stext\nffffffff81377e00 D jiffies\nffffffffc0030000 t helper\t[mymod]\n";
        assert_eq!(symbol_address(text, "jiffies"), Some(0xffff_ffff_8137_7e00));
        assert_eq!(symbol_address(text, "helper"), Some(0xffff_ffff_c003_0000));
        assert_eq!(symbol_address(text, "nope"), None);
    }

    #[test]
    fn a_function_ends_where_the_next_text_symbol_starts() {
        let text = "ffffffff81000000 T _stext\nffffffff81000100 t vfs_read\nffffffff81000100 T vfs_read_alias\n\
                    ffffffff81000110 D data\nffffffff81000400 T ksys_read\nffffffff81000300 t static_fn\n";
        assert_eq!(function_size(text, "vfs_read"), Some(0x200));
        assert_eq!(function_size(text, "_stext"), Some(0x100));
        assert_eq!(function_size(text, "ksys_read"), None);
        assert_eq!(function_size(text, "data"), None);
        assert_eq!(function_size("0000000000000000 T vfs_read\n0000000000000000 T ksys_read\n", "vfs_read"), None);
    }
}
