//! Perf maps: the symbols a JIT runtime (V8 and Node.js with `--perf-basic-prof`, the JVM with
//! an agent, .NET, and others) writes to `/tmp/perf-PID.map` for code it generated in anonymous
//! memory.
//! One line per function, `START SIZE NAME`, both numbers in hex (some runtimes write `0x`);
//! the name runs to the end of the line and may contain spaces:
//!
//! ```text
//! 3ef414c0 398 RegExp:[{(]
//! 7f0d8c23c0a0 5c LazyCompile:~foo /app/index.js:12
//! 0x7f3a1c001000 0x40 Interpreter
//! ```
//!
//! A runtime that recompiles a function writes a new line for the new code; when two lines
//! start at the same address the later one wins, as in perf.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

/// One JIT function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitSymbol {
    pub start: u64,
    pub size: u64,
    pub name: String,
}

/// A perf map file kept open (so it can still be read after the runtime exits and, in another
/// mount namespace, without resolving its path again), parsed lazily and again when it grows.
#[derive(Debug)]
pub struct PerfMap {
    file: File,
    /// The path the symbols are reported under (as bcc names a perf map module).
    pub path: String,
    /// How many bytes `symbols` was parsed from.
    parsed_len: u64,
    symbols: Vec<JitSymbol>,
}

impl PerfMap {
    pub fn new(file: File, path: String) -> Self {
        Self { file, path, parsed_len: 0, symbols: Vec::new() }
    }

    /// The symbol covering `addr`, reading the file again first if it grew since the last read
    /// (JIT runtimes append as they compile).
    pub fn lookup(&mut self, addr: u64) -> Option<(&JitSymbol, u64)> {
        self.refresh();
        lookup(&self.symbols, addr)
    }

    fn refresh(&mut self) {
        let Ok(meta) = self.file.metadata() else { return };
        if meta.len() == self.parsed_len {
            return;
        }
        let mut text = Vec::new();
        // Read through a positioned read of the whole file: the descriptor's offset is ours
        // but `read_to_end` from offset 0 keeps this independent of earlier reads.
        let mut reader = PositionedReader { file: &self.file, pos: 0 };
        if reader.read_to_end(&mut text).is_err() {
            return;
        }
        self.parsed_len = text.len() as u64;
        self.symbols = parse(&String::from_utf8_lossy(&text));
    }
}

/// `Read` over a file from a position, without moving the descriptor's own offset.
struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Every well-formed line, sorted by start address; of several lines starting at one address
/// only the last is kept. A last line without its newline is still being written and is left
/// for the next read.
pub fn parse(text: &str) -> Vec<JitSymbol> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut symbols: Vec<JitSymbol> = complete.lines().filter_map(parse_line).collect();
    // A stable sort keeps lines at one address in file order, so the last of each run is the
    // newest.
    symbols.sort_by_key(|s| s.start);
    let mut newest: Vec<JitSymbol> = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        match newest.last_mut() {
            Some(last) if last.start == symbol.start => *last = symbol,
            _ => newest.push(symbol),
        }
    }
    newest
}

fn parse_line(line: &str) -> Option<JitSymbol> {
    let hex = |word: &str| {
        let digits = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")).unwrap_or(word);
        u64::from_str_radix(digits, 16).ok()
    };
    let (start, rest) = line.trim_start().split_once(char::is_whitespace)?;
    let (size, name) = rest.trim_start().split_once(char::is_whitespace)?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    Some(JitSymbol { start: hex(start)?, size: hex(size)?, name: name.to_owned() })
}

/// The symbol whose `[start, start + size)` holds `addr`, and the offset into it.
pub fn lookup(symbols: &[JitSymbol], addr: u64) -> Option<(&JitSymbol, u64)> {
    let index = symbols.partition_point(|s| s.start <= addr).checked_sub(1)?;
    let symbol = &symbols[index];
    let offset = addr - symbol.start;
    (offset < symbol.size.max(1)).then_some((symbol, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_with_and_without_prefix() {
        let symbols = parse("3ef414c0 398 RegExp:[{(]\n0x7f3a1c001000 0x40 Interpreter entry\nbad\n7 0 \n");
        assert_eq!(
            symbols,
            vec![
                JitSymbol { start: 0x3ef4_14c0, size: 0x398, name: "RegExp:[{(]".into() },
                JitSymbol { start: 0x7f3a_1c00_1000, size: 0x40, name: "Interpreter entry".into() },
            ]
        );
    }

    #[test]
    fn later_lines_replace_earlier_ones_at_the_same_start() {
        let symbols = parse("1000 10 old\n2000 10 other\n1000 20 new\n");
        assert_eq!(lookup(&symbols, 0x1018).map(|(s, off)| (s.name.as_str(), off)), Some(("new", 0x18)));
    }

    #[test]
    fn an_unfinished_last_line_waits() {
        assert_eq!(parse("1000 10 a\n2000 10 b").len(), 1);
    }

    #[test]
    fn lookup_respects_sizes() {
        let symbols = parse("1000 10 a\n1020 10 b\n");
        assert_eq!(lookup(&symbols, 0x1000).map(|(s, o)| (s.name.as_str(), o)), Some(("a", 0)));
        assert_eq!(lookup(&symbols, 0x100f).map(|(s, o)| (s.name.as_str(), o)), Some(("a", 0xf)));
        assert!(lookup(&symbols, 0x1010).is_none());
        assert!(lookup(&symbols, 0xfff).is_none());
        assert_eq!(lookup(&symbols, 0x1025).map(|(s, _)| s.name.as_str()), Some("b"));
        assert!(lookup(&symbols, 0x1030).is_none());
    }

    #[test]
    fn reads_a_growing_file() {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("rbt-perf-map-test-{}.map", std::process::id()));
        let mut writer = File::create(&path).expect("create a temporary perf map");
        writer.write_all(b"1000 10 first\n").expect("write");
        let mut map = PerfMap::new(File::open(&path).expect("open"), path.display().to_string());
        assert_eq!(map.lookup(0x1001).map(|(s, _)| s.name.clone()), Some("first".into()));
        assert!(map.lookup(0x2001).is_none());
        writer.write_all(b"2000 10 second\n").expect("write");
        // Removing the file does not matter: the descriptor keeps it.
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(map.lookup(0x2001).map(|(s, _)| s.name.clone()), Some("second".into()));
    }
}
