//! The kernel's symbol table from `/proc/kallsyms`: address to `name+offset` (and module) the
//! way bpftrace 0.17 (through bcc) resolves kernel stack frames, and name to address for
//! `kaddr()`.
//!
//! A real sample (address, type, name, then a tab, shown as `→`, and the module for module and
//! BPF symbols):
//!
//! ```text
//! ffffffff81377d30 t __pfx___do_sys_getppid
//! ffffffff81377d40 t __do_sys_getppid
//! ffffffff81377d40 T __ia32_sys_getppid
//! ffffffff81377d40 T __x64_sys_getppid
//! ffffffff83a1b2c0 D jiffies
//! ffffffffc0025ba4 t bpf_prog_bedfeb6e43dec19d_rbt_probe_0→[bpf]
//! ```
//!
//! rbt parses kallsyms itself rather than through blazesym's kernel source: that source reports
//! no module names and offers no lookup by name for `kaddr()`, so rbt would read the file twice.

use std::ops::Range;

use super::libstdcxx_sort;

/// bcc ignores kallsyms entries below this address on x86-64 (per-CPU variables are listed at
/// small offsets); elsewhere it keeps every nonzero address.
const KERNEL_SPACE_START: u64 = if cfg!(target_arch = "x86_64") { 0x00ff_ffff_ffff_ffff } else { 0 };

/// One symbol: where its name is in `Kallsyms::names`, and its module (0 for the core kernel,
/// else an index + 1 into `Kallsyms::modules`).
#[derive(Debug, Clone, Copy)]
struct KernelSymbol {
    addr: u64,
    name: (u32, u32),
    module: u16,
}

/// A resolved kernel address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLocation<'a> {
    pub name: &'a str,
    pub offset: u64,
    pub module: Option<&'a str>,
}

/// The parsed table. About 120,000 symbols take 5 MB.
#[derive(Debug, Default)]
pub struct Kallsyms {
    /// Every name, back to back.
    names: String,
    /// Every symbol with a nonzero address, in file order.
    symbols: Vec<KernelSymbol>,
    /// Indexes into `symbols` of the code symbols, sorted by address as bcc sorts them.
    by_addr: Vec<u32>,
    /// The address of each entry of `by_addr`, for a binary search that stays in cache.
    sorted_addrs: Vec<u64>,
    modules: Vec<String>,
}

impl Kallsyms {
    /// Reads `/proc/kallsyms`. Without root (`kptr_restrict`) every address reads as zero, and
    /// the table comes out empty.
    pub fn load() -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string("/proc/kallsyms")?))
    }

    pub fn parse(text: &str) -> Self {
        let mut table = Kallsyms { names: String::with_capacity(text.len() / 2), ..Self::default() };
        for line in text.lines() {
            table.push_line(line);
        }
        table.index_by_address();
        table
    }

    fn push_line(&mut self, line: &str) {
        let (fields, module) = match line.split_once('\t') {
            Some((fields, module)) => (fields, Some(module.trim().trim_start_matches('[').trim_end_matches(']'))),
            None => (line, None),
        };
        let mut words = fields.split(' ').filter(|w| !w.is_empty());
        let (Some(addr), Some(kind), Some(name)) = (words.next(), words.next(), words.next()) else { return };
        let Ok(addr) = u64::from_str_radix(addr, 16) else { return };
        let Some(kind) = kind.chars().next() else { return };
        if addr == 0 {
            return;
        }
        // Data symbols never answer for a code address: bcc skips types b, d and r (either
        // case), and so does bpftrace's kernel stack printing. They stay in the table for
        // `kaddr()`, which bpftrace resolves for any type.
        let code = !matches!(kind, 'b' | 'B' | 'd' | 'D' | 'r' | 'R') && addr >= KERNEL_SPACE_START && addr != u64::MAX;
        let module = match module {
            None => 0,
            Some(module) => self.module_index(module),
        };
        let (Ok(start), Ok(len)) = (u32::try_from(self.names.len()), u32::try_from(name.len())) else { return };
        self.names.push_str(name);
        let index = u32::try_from(self.symbols.len()).unwrap_or(u32::MAX);
        self.symbols.push(KernelSymbol { addr, name: (start, len), module });
        if code {
            self.by_addr.push(index);
        }
    }

    fn module_index(&mut self, module: &str) -> u16 {
        if let Some(i) = self.modules.iter().position(|m| m == module) {
            return u16::try_from(i + 1).unwrap_or(0);
        }
        self.modules.push(module.to_owned());
        u16::try_from(self.modules.len()).unwrap_or(0)
    }

    /// Sorts the code symbols by address exactly as bcc does (libstdc++'s unstable sort over
    /// the same list in file order), so that of aliases (`memset`, `__memset`, `__pi_memset`)
    /// the one bcc finds last at an address is last here too.
    fn index_by_address(&mut self) {
        let symbols = &self.symbols;
        let mut keyed: Vec<(u64, u32)> = self.by_addr.iter().map(|&i| (symbols[i as usize].addr, i)).collect();
        libstdcxx_sort::sort_by_key(&mut keyed, |&(addr, _)| addr);
        self.sorted_addrs = keyed.iter().map(|&(addr, _)| addr).collect();
        self.by_addr = keyed.into_iter().map(|(_, i)| i).collect();
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    fn name(&self, symbol: &KernelSymbol) -> &str {
        let (start, len) = symbol.name;
        let range: Range<usize> = start as usize..start as usize + len as usize;
        self.names.get(range).unwrap_or("")
    }

    /// The code symbol at or below `addr`, as bcc finds it: the last in sorted order that starts
    /// at or below it, with no upper bound (kallsyms has no sizes).
    pub fn symbolize(&self, addr: u64) -> Option<KernelLocation<'_>> {
        let below = self.sorted_addrs.partition_point(|&start| start <= addr);
        let symbol = &self.symbols[*self.by_addr.get(below.checked_sub(1)?)? as usize];
        let module = usize::from(symbol.module).checked_sub(1).and_then(|i| self.modules.get(i));
        Some(KernelLocation { name: self.name(symbol), offset: addr - symbol.addr, module: module.map(String::as_str) })
    }

    /// The address of the first symbol named `name` in file order, of any type, as bpftrace
    /// 0.17's `kaddr()` finds it; module symbols are not searched (bpftrace compares the third
    /// space-separated word, which for them still carries the tab and module).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.symbols.iter().find(|s| s.module == 0 && self.name(s) == name).map(|s| s.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
0000000000000000 A fixed_percpu_data
ffffffff81000000 T _text
ffffffff81377d30 t __pfx___do_sys_getppid
ffffffff81377d40 t __do_sys_getppid
ffffffff81377d40 T __ia32_sys_getppid
ffffffff81377d40 T __x64_sys_getppid
ffffffff81377d80 T do_something
ffffffff81377e00 D some_data
ffffffffc0025ba4 t bpf_prog_bedfeb6e43dec19d_rbt_probe_0\t[bpf]
ffffffffc0030000 t helper_in_module\t[mymod]
ffffffffc0030100 t do_something\t[mymod]
";

    fn at(table: &Kallsyms, addr: u64) -> Option<(String, u64, Option<String>)> {
        table.symbolize(addr).map(|l| (l.name.to_owned(), l.offset, l.module.map(str::to_owned)))
    }

    #[test]
    fn resolves_name_offset_and_module() {
        let table = Kallsyms::parse(SAMPLE);
        // Of the three aliases, libstdc++'s sort leaves `__x64_sys_getppid` last.
        assert_eq!(at(&table, 0xffff_ffff_8137_7d53), Some(("__x64_sys_getppid".into(), 0x13, None)));
        assert_eq!(at(&table, 0xffff_ffff_8137_7d30), Some(("__pfx___do_sys_getppid".into(), 0, None)));
        assert_eq!(
            at(&table, 0xffff_ffff_c002_5ba4 + 7),
            Some(("bpf_prog_bedfeb6e43dec19d_rbt_probe_0".into(), 7, Some("bpf".into())))
        );
        assert_eq!(at(&table, 0xffff_ffff_c003_0010), Some(("helper_in_module".into(), 0x10, Some("mymod".into()))));
    }

    #[test]
    fn data_symbols_do_not_answer_for_code() {
        let table = Kallsyms::parse(SAMPLE);
        assert_eq!(at(&table, 0xffff_ffff_8137_7e08), Some(("do_something".into(), 0x88, None)));
    }

    #[test]
    fn below_the_first_symbol_is_unknown() {
        let table = Kallsyms::parse(SAMPLE);
        assert_eq!(at(&table, 0xffff_ffff_80ff_ffff), None);
        assert_eq!(at(&table, 0x10), None);
        assert!(Kallsyms::parse("0000000000000000 T _text\n").is_empty());
    }

    #[test]
    fn address_of_finds_the_first_core_symbol_of_any_type() {
        let table = Kallsyms::parse(SAMPLE);
        assert_eq!(table.address_of("some_data"), Some(0xffff_ffff_8137_7e00));
        assert_eq!(table.address_of("do_something"), Some(0xffff_ffff_8137_7d80));
        assert_eq!(table.address_of("helper_in_module"), None);
        assert_eq!(table.address_of("fixed_percpu_data"), None);
        assert_eq!(table.address_of("nope"), None);
    }
}
