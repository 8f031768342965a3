//! Kernel symbols' addresses from `/proc/kallsyms`, for `kaddr("name")`. Its lines read
//!
//! ```text
//! ffffffff81000000 T _stext
//! ffffffffc0030000 t helper_in_module→[mymod]
//! ```
//!
//! (a tab, shown as `→`, before a module symbol's module). Addresses read as 0 without root.
//! The symbolizer (`runtime::symbols`) keeps a table of its own, sorted for lookups by address.

/// The address of the first symbol named `name`, module symbols included.
pub fn symbol_address(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let (addr, _kind, symbol) = (words.next()?, words.next()?, words.next()?);
        (symbol == name).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
    })
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
}
