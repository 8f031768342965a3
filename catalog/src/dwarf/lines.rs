//! Source lines to addresses, for `uprobe:BIN@FILE:LINE[:COL]`: the binary's DWARF line
//! tables (`.debug_line`, read with gimli), each statement row of FILE at LINE (and COL, when
//! given) that starts a run of rows at that line. A line compiled in several places (inlined,
//! unrolled, a loop's condition) gives one address per place, as bpftrace attaches to each
//! inlined copy of a function.
//!
//! FILE matches a line table's file when it is the file's whole path (its directory joined to
//! the unit's compilation directory), the path as the table writes it, or a suffix of either
//! that starts at a `/` (`daemon.c` matches `/src/app/daemon.c`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use super::{with_dwarf, Reader};

/// Where one statement of the line starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineAddress {
    /// The virtual address.
    pub address: u64,
    /// The file as the line table names it, whole.
    pub file: String,
    pub line: u32,
    pub column: u32,
}

/// Why a line has no address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The binary has no DWARF line tables.
    WithoutDwarf,
    /// No line table names FILE; `known` holds some files that they do name.
    UnknownFile { known: Vec<String> },
    /// FILE is known but no statement starts at LINE (and COL); `nearest` holds the closest
    /// lines that have one, before and after.
    NoStatement { file: String, nearest: Vec<u32> },
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::WithoutDwarf => write!(f, "it has no DWARF line tables (build it with -g)"),
            LineError::UnknownFile { known } if known.is_empty() => write!(f, "its line tables name no source files"),
            LineError::UnknownFile { known } => {
                write!(f, "its line tables name no such file (they name {})", known.join(", "))
            }
            LineError::NoStatement { file, nearest } if nearest.is_empty() => {
                write!(f, "no statement of {file} is at that line")
            }
            LineError::NoStatement { file, nearest } => {
                let lines: Vec<String> = nearest.iter().map(u32::to_string).collect();
                write!(f, "no statement of {file} starts at that line; the nearest that have one: {}", lines.join(", "))
            }
        }
    }
}

/// One row of a line table, with its file resolved.
struct Row {
    address: u64,
    /// Shared by the rows of one file: a line table has a row for every few instructions.
    file: Rc<str>,
    written: Rc<str>,
    line: u32,
    column: u32,
    is_stmt: bool,
    end_sequence: bool,
}

/// The addresses where statements of `file` at `line` (and `column`, when given) start in the
/// ELF binary `data`, sorted and without repeats.
pub fn line_addresses(data: &[u8], file: &str, line: u32, column: Option<u32>) -> Result<Vec<LineAddress>, LineError> {
    let rows = with_dwarf(data, |d| all_rows(d, None)).ok_or(LineError::WithoutDwarf)?;
    if rows.is_empty() {
        return Err(LineError::WithoutDwarf);
    }
    let matches = |row: &Row| file_matches(file, &row.file) || file_matches(file, &row.written);
    if !rows.iter().any(&matches) {
        let known: BTreeSet<&str> = rows.iter().map(|r| &*r.file).collect();
        return Err(LineError::UnknownFile { known: known.into_iter().take(8).map(str::to_owned).collect() });
    }
    let mut found: Vec<LineAddress> = Vec::new();
    // A run is the rows from one that is at another line (or file) than the row before, or
    // that starts a sequence, to the next such row; each run's first statement row counts.
    let mut previous: Option<(u32, bool)> = None;
    let mut taken = false;
    for row in &rows {
        if row.end_sequence {
            previous = None;
            continue;
        }
        let key = (row.line, matches(row));
        if previous != Some(key) {
            taken = false;
        }
        previous = Some(key);
        let here = key == (line, true);
        if here && !taken && row.is_stmt && column.is_none_or(|c| c == row.column) {
            found.push(LineAddress { address: row.address, file: row.file.to_string(), line, column: row.column });
            taken = true;
        }
    }
    found.sort_by_key(|a| a.address);
    found.dedup_by_key(|a| a.address);
    // One address per copy of the code, as gdb breaks: within one function or inlined copy of
    // one, a line's later runs (a `for`'s increment, code the compiler moved) are the same
    // statement again, so only its first address counts.
    let scopes = with_dwarf(data, code_scopes).unwrap_or_default();
    let mut seen_scopes = std::collections::HashSet::new();
    found.retain(|a| match innermost(&scopes, a.address) {
        Some(scope) => seen_scopes.insert(scope),
        None => true,
    });
    if found.is_empty() {
        let lines: BTreeSet<u32> =
            rows.iter().filter(|r| r.is_stmt && !r.end_sequence && matches(r)).map(|r| r.line).collect();
        let before = lines.range(..line).next_back().copied();
        let after = lines.range(line.saturating_add(1)..).next().copied();
        let file = rows.iter().find(|r| matches(r)).map(|r| r.file.to_string()).unwrap_or_default();
        return Err(LineError::NoStatement { file, nearest: before.into_iter().chain(after).collect() });
    }
    Ok(found)
}

/// The lines of `file` where a statement starts, each with its lowest statement address, and
/// the file's whole path as the line tables name it (`-l 'uprobe:BIN@FILE:*'`).
pub fn statement_lines(data: &[u8], file: &str) -> Result<(String, BTreeMap<u32, u64>), LineError> {
    let rows = with_dwarf(data, |d| all_rows(d, None)).ok_or(LineError::WithoutDwarf)?;
    if rows.is_empty() {
        return Err(LineError::WithoutDwarf);
    }
    let matches = |row: &Row| file_matches(file, &row.file) || file_matches(file, &row.written);
    let Some(first) = rows.iter().find(|r| matches(r)) else {
        let known: BTreeSet<&str> = rows.iter().map(|r| &*r.file).collect();
        return Err(LineError::UnknownFile { known: known.into_iter().take(8).map(str::to_owned).collect() });
    };
    let mut lines = BTreeMap::new();
    for r in rows.iter().filter(|r| r.is_stmt && !r.end_sequence && r.line > 0 && matches(r)) {
        let lowest = lines.entry(r.line).or_insert(r.address);
        *lowest = (*lowest).min(r.address);
    }
    Ok((first.file.to_string(), lines))
}

/// The lines whose statements start in `start..end` (a function's code), each with its lowest
/// such address, sorted by line.
pub(super) fn lines_in_dwarf(dwarf: &gimli::Dwarf<Reader<'_>>, start: u64, end: u64) -> BTreeMap<u32, u64> {
    let rows = all_rows(dwarf, Some(start..end));
    let mut lines = BTreeMap::new();
    for r in rows.iter().filter(|r| r.is_stmt && !r.end_sequence && r.line > 0 && (start..end).contains(&r.address)) {
        let lowest = lines.entry(r.line).or_insert(r.address);
        *lowest = (*lowest).min(r.address);
    }
    lines
}

/// The lines of one function, counted as `perf probe` counts them: from the line DWARF says the
/// function is declared at (`DW_AT_decl_line`), in the file its code starts in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionLines {
    pub file: String,
    /// The function's line: relative line 0.
    pub base: u32,
    /// Each line of `file` where a statement starts in the function's code, with its lowest
    /// such address.
    pub lines: BTreeMap<u32, u64>,
}

/// The lines of the function whose code is `start..end`; `None` without line tables for it.
pub fn function_lines(data: &[u8], start: u64, end: u64) -> Option<FunctionLines> {
    with_dwarf(data, |dwarf| {
        let rows = all_rows(dwarf, Some(start..end));
        let first = rows.iter().find(|r| r.address == start && !r.end_sequence)?;
        let file = first.file.to_string();
        let base = decl_line(dwarf, start).unwrap_or(first.line);
        let mut lines = BTreeMap::new();
        for r in rows.iter().filter(|r| {
            r.is_stmt && !r.end_sequence && r.line > 0 && *r.file == *file && (start..end).contains(&r.address)
        }) {
            let lowest = lines.entry(r.line).or_insert(r.address);
            *lowest = (*lowest).min(r.address);
        }
        Some(FunctionLines { file, base, lines })
    })
    .flatten()
}

/// `DW_AT_decl_line` of the function whose code starts at `start`.
fn decl_line(dwarf: &gimli::Dwarf<Reader<'_>>, start: u64) -> Option<u32> {
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else { continue };
        let Ok(mut ranges) = dwarf.unit_ranges(&unit) else { continue };
        let mut holds = false;
        while let Ok(Some(range)) = ranges.next() {
            holds |= (range.begin..range.end).contains(&start);
        }
        if !holds {
            continue;
        }
        let mut entries = unit.entries();
        while let Ok(Some(entry)) = entries.next_dfs() {
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let low = match entry.attr_value(gimli::DW_AT_low_pc) {
                Some(gimli::AttributeValue::Addr(a)) => Some(a),
                Some(gimli::AttributeValue::DebugAddrIndex(i)) => dwarf.address(&unit, i).ok(),
                _ => None,
            };
            if low != Some(start) {
                continue;
            }
            // An out-of-line copy of an inline function names its declaration by origin.
            let line = super::integrated(&unit, entry.offset(), gimli::DW_AT_decl_line)?.udata_value()?;
            return u32::try_from(line).ok();
        }
    }
    None
}

/// The code ranges of every function and inlined copy of one: `(start, end, scope)`, where
/// `scope` tells the DIE apart (the unit's and the entry's offsets); inner scopes are narrower.
fn code_scopes(dwarf: &gimli::Dwarf<Reader<'_>>) -> Vec<(u64, u64, (usize, usize))> {
    let mut out = Vec::new();
    let mut units = dwarf.units();
    let mut unit_at = 0;
    while let Ok(Some(header)) = units.next() {
        unit_at += 1;
        let Ok(unit) = dwarf.unit(header) else { continue };
        let mut entries = unit.entries();
        while let Ok(Some(entry)) = entries.next_dfs() {
            if entry.tag() != gimli::DW_TAG_subprogram && entry.tag() != gimli::DW_TAG_inlined_subroutine {
                continue;
            }
            let Ok(mut ranges) = dwarf.die_ranges(&unit, entry) else { continue };
            while let Ok(Some(range)) = ranges.next() {
                if range.begin < range.end {
                    out.push((range.begin, range.end, (unit_at, entry.offset().0)));
                }
            }
        }
    }
    out
}

/// The narrowest scope whose code holds `address`.
fn innermost(scopes: &[(u64, u64, (usize, usize))], address: u64) -> Option<(usize, usize)> {
    scopes
        .iter()
        .filter(|(start, end, _)| (*start..*end).contains(&address))
        .min_by_key(|(start, end, _)| end - start)
        .map(|(_, _, scope)| *scope)
}

/// Whether `wanted` (as the script wrote it) names `path`: equal, or a suffix of it starting
/// at a `/`.
fn file_matches(wanted: &str, path: &str) -> bool {
    let wanted = wanted.strip_prefix("./").unwrap_or(wanted);
    path == wanted || path.strip_suffix(wanted).is_some_and(|head| head.ends_with('/'))
}

/// Every row of every unit's line program, in order, with files resolved; `within`: only the
/// units whose code overlaps that range.
fn all_rows(dwarf: &gimli::Dwarf<Reader<'_>>, within: Option<std::ops::Range<u64>>) -> Vec<Row> {
    let mut out = Vec::new();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else { continue };
        if let Some(within) = &within {
            let Ok(mut ranges) = dwarf.unit_ranges(&unit) else { continue };
            let mut overlaps = false;
            while let Ok(Some(range)) = ranges.next() {
                overlaps |= range.begin < within.end && within.start < range.end;
            }
            if !overlaps {
                continue;
            }
        }
        let Some(program) = unit.line_program.clone() else { continue };
        let comp_dir = unit.comp_dir.map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
        let mut files: HashMap<u64, (Rc<str>, Rc<str>)> = HashMap::new();
        let mut rows = program.rows();
        while let Ok(Some((header, row))) = rows.next_row() {
            let (file, written) = files
                .entry(row.file_index())
                .or_insert_with(|| match row.file(header) {
                    Some(entry) => {
                        let name = attr_string(dwarf, &unit, entry.path_name());
                        let dir = entry.directory(header).map(|d| attr_string(dwarf, &unit, d)).unwrap_or_default();
                        let written =
                            if dir.is_empty() || name.starts_with('/') { name.clone() } else { join(&dir, &name) };
                        let whole = if written.starts_with('/') || comp_dir.is_empty() {
                            written.clone()
                        } else {
                            join(&comp_dir, &written)
                        };
                        (whole.into(), written.into())
                    }
                    None => ("".into(), "".into()),
                })
                .clone();
            let line = row.line().map_or(0, |l| u32::try_from(l.get()).unwrap_or(u32::MAX));
            let column = match row.column() {
                gimli::ColumnType::LeftEdge => 0,
                gimli::ColumnType::Column(c) => u32::try_from(c.get()).unwrap_or(u32::MAX),
            };
            out.push(Row {
                address: row.address(),
                file,
                written,
                line,
                column,
                is_stmt: row.is_stmt(),
                end_sequence: row.end_sequence(),
            });
        }
    }
    out
}

fn attr_string(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
    value: gimli::AttributeValue<Reader<'_>>,
) -> String {
    dwarf.attr_string(unit, value).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_match_whole_or_by_a_suffix_at_a_slash() {
        assert!(file_matches("/src/app/daemon.c", "/src/app/daemon.c"));
        assert!(file_matches("daemon.c", "/src/app/daemon.c"));
        assert!(file_matches("app/daemon.c", "/src/app/daemon.c"));
        assert!(file_matches("./daemon.c", "/src/app/daemon.c"));
        assert!(!file_matches("mon.c", "/src/app/daemon.c"));
        assert!(!file_matches("daemon.c", "/src/app/daemon.cc"));
    }

    #[test]
    fn errors_say_what_the_tables_hold() {
        let e = LineError::NoStatement { file: "/a/d.c".into(), nearest: vec![40, 44] };
        assert_eq!(e.to_string(), "no statement of /a/d.c starts at that line; the nearest that have one: 40, 44");
        assert_eq!(
            LineError::UnknownFile { known: vec!["/a/d.c".into()] }.to_string(),
            "its line tables name no such file (they name /a/d.c)"
        );
    }

    #[test]
    fn a_file_that_is_no_object_has_no_lines() {
        assert_eq!(line_addresses(b"not an ELF file", "a.c", 1, None), Err(LineError::WithoutDwarf));
    }
}
