//! Compact x86-64 unwind tables built from an ELF file's bytes, for rbt's BPF stack unwinder.
//!
//! The table is a sorted list of [`Row`]s: from file offset `pc` on, until the next row's `pc`, one
//! rule (packed into a `u32` by [`encode`]) says how to find the caller's frame: the canonical frame
//! address (CFA) as `rsp` or `rbp` plus an offset, whether and where `rbp` was saved, or one of the
//! special cases (a PLT stub, a signal trampoline, the outermost frame, no CFI, CFI that the BPF
//! side cannot follow). The return address is always at `cfa - 8` in a representable row.
//!
//! Addresses are file offsets, not virtual addresses, because the BPF side knows a mapping's start
//! and file offset from `/proc/PID/maps` and computes `pc - mapping.start + mapping.file_offset`.
//! The crate does no IO: [`build`] takes the file's bytes (or the vDSO's memory image).

mod cfi;
mod elf;
mod pages;
mod table;

pub use pages::{Page, PageIndex};

/// Which section a table's rows came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfiSource {
    EhFrame,
    DebugFrame,
    None,
}

/// One row: from file offset `pc` on (until the next row's pc) the rule `rule` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub pc: u32,
    pub rule: u32,
}

/// `cfa = rsp + off`.
pub const KIND_CFA_RSP: u32 = 0;
/// `cfa = rbp + off`.
pub const KIND_CFA_RBP: u32 = 1;
/// `cfa = rsp + off + ((rip & 15) >= threshold ? 8 : 0)`: the lazy-binding `.plt` stubs, whose CFA
/// expression binutils emits. `off` is the cfa offset field (8 in practice) and the threshold (11
/// for the classic 16-byte PLT entry, other values for other PLT layouts) is in the rbp_slot field.
pub const KIND_PLT: u32 = 2;
/// An `rt_sigreturn` trampoline (CIE augmentation 'S', e.g. glibc's `__restore_rt`): the registers
/// come from the `ucontext` at `rsp`.
pub const KIND_SIGNAL: u32 = 3;
/// The return address is undefined (`DW_CFA_undefined rip`: `_start`, clone's child, thread
/// start): the outermost frame.
pub const KIND_END: u32 = 4;
/// No CFI covers this address: the unwinder falls back to frame pointers.
pub const KIND_NONE: u32 = 5;
/// CFI exists but is not representable here: the unwinder ends the stack with a marker frame.
pub const KIND_STOP: u32 = 6;

/// The version of what [`build`] makes of a file: raise it whenever the same file could give
/// other rows (a new rule kind, another merge), so that tables kept from older builds (rbt's
/// on-disk cache) are not used.
pub const FORMAT_VERSION: u32 = 1;

/// The largest CFA offset a rule holds (20 bits), exclusive.
pub const MAX_CFA_OFFSET: u32 = 1 << 20;

const KIND_MASK: u32 = 0b111;
const RBP_SAVED_BIT: u32 = 1 << 3;
const RBP_SLOT_SHIFT: u32 = 4;
const CFA_OFFSET_SHIFT: u32 = 12;

/// Packs a rule. Bits 0..3: kind; bit 3: rbp was saved; bits 4..12: rbp_slot (rbp saved at
/// `cfa - 8 * rbp_slot`; for [`KIND_PLT`] the threshold); bits 12..32: cfa offset in bytes
/// (unsigned, below [`MAX_CFA_OFFSET`]; higher bits are dropped).
pub fn encode(kind: u32, cfa_offset: u32, rbp_slot: Option<u8>) -> u32 {
    debug_assert!(kind <= KIND_MASK, "kind {kind} does not fit 3 bits");
    debug_assert!(cfa_offset < MAX_CFA_OFFSET, "cfa offset {cfa_offset} does not fit 20 bits");
    let slot = match rbp_slot {
        Some(slot) => RBP_SAVED_BIT | u32::from(slot) << RBP_SLOT_SHIFT,
        None => 0,
    };
    (kind & KIND_MASK) | slot | (cfa_offset << CFA_OFFSET_SHIFT)
}

/// Unpacks a rule into (kind, cfa offset, rbp slot): the inverse of [`encode`].
pub fn decode(rule: u32) -> (u32, u32, Option<u8>) {
    let kind = rule & KIND_MASK;
    let cfa_offset = rule >> CFA_OFFSET_SHIFT;
    // The mask keeps 8 bits, so the conversion cannot fail.
    let slot = u8::try_from((rule >> RBP_SLOT_SHIFT) & 0xff).unwrap_or(u8::MAX);
    let rbp_slot = (rule & RBP_SAVED_BIT != 0).then_some(slot);
    (kind, cfa_offset, rbp_slot)
}

/// The unwind table of one ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwindTable {
    /// Sorted by `pc`, no two consecutive rows with the same rule.
    pub rows: Vec<Row>,
    /// Where the rows came from: `.eh_frame` when it describes any code (`.debug_frame` then only
    /// fills addresses `.eh_frame` does not cover), else `.debug_frame`, else none (no rows).
    pub source: CfiSource,
    /// The GNU build id note's bytes, when the file has one.
    pub build_id: Option<Vec<u8>>,
}

impl UnwindTable {
    /// The row in force at `file_offset`: the last row whose pc is at or below it, or `None` when
    /// the offset precedes every row.
    pub fn lookup(&self, file_offset: u64) -> Option<Row> {
        let after = self.rows.partition_point(|row| u64::from(row.pc) <= file_offset);
        after.checked_sub(1).map(|index| self.rows[index])
    }

    /// The rows as 8 bytes each, little-endian `u32` pc then little-endian `u32` rule: exactly
    /// what the BPF array map holds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.rows.len() * 8);
        for row in &self.rows {
            bytes.extend_from_slice(&row.pc.to_le_bytes());
            bytes.extend_from_slice(&row.rule.to_le_bytes());
        }
        bytes
    }
}

/// Counts from one build, for benchmarks and diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// FDEs read, from both sections.
    pub fdes: usize,
    /// FDEs skipped because their address lies in no executable PT_LOAD segment (FDEs of code the
    /// linker discarded keep address 0 in `.debug_frame`).
    pub fdes_outside_segments: usize,
    /// Rows of the CFI programs that gimli evaluated.
    pub cfi_rows: usize,
    /// Table rows before consecutive rows with the same rule were merged (gap rows included).
    pub rows_before_dedup: usize,
    /// Size in bytes of the executable PT_LOAD segments' file contents.
    pub executable_bytes: u64,
}

/// What is wrong with a file [`build`] was given.
#[derive(Debug, thiserror::Error)]
pub enum UnwindError {
    #[error("not an ELF file (it starts with {start:02x?}, not 7f 45 4c 46)")]
    NotElf { start: Vec<u8> },
    #[error("not a 64-bit little-endian ELF file (EI_CLASS {class}, EI_DATA {data})")]
    NotElf64Le { class: u8, data: u8 },
    #[error("not an x86-64 ELF file (e_machine {machine}, x86-64 is 62)")]
    NotX86_64 { machine: u16 },
    #[error("malformed ELF file: {source}")]
    MalformedElf { source: object::Error },
    #[error("{section} is compressed with {format}, which rbt cannot decompress")]
    UnsupportedCompression { section: &'static str, format: String },
    #[error("malformed {section}: cannot decompress it: {source}")]
    Decompression { section: &'static str, source: std::io::Error },
    #[error("malformed CFI in {section} at offset {offset:#x}: {source}")]
    MalformedCfi { section: &'static str, offset: usize, source: gimli::Error },
    #[error(
        "code at address {vaddr:#x} is at file offset {file_offset:#x}, which does not fit 32 bits \
         (unwind tables of files over 4 GiB are not supported)"
    )]
    OffsetTooLarge { vaddr: u64, file_offset: u64 },
}

/// Builds the unwind table of an ELF file (or of the vDSO's memory image) from its bytes.
pub fn build(elf: &[u8]) -> Result<UnwindTable, UnwindError> {
    build_with_stats(elf).map(|(table, _)| table)
}

/// [`build`], also returning counts of what it read.
pub fn build_with_stats(elf: &[u8]) -> Result<(UnwindTable, BuildStats), UnwindError> {
    let file = elf::ElfCfi::parse(elf)?;
    let mut stats = BuildStats { executable_bytes: file.segments.executable_bytes(), ..BuildStats::default() };
    let eh_frame = match &file.eh_frame {
        Some(section) => cfi::eh_frame_spans(section, &file.bases, &file.segments, &mut stats)?,
        None => Vec::new(),
    };
    let debug_frame = match &file.debug_frame {
        Some(section) => cfi::debug_frame_spans(section, &file.segments, &mut stats)?,
        None => Vec::new(),
    };
    let source = if !eh_frame.is_empty() {
        CfiSource::EhFrame
    } else if !debug_frame.is_empty() {
        CfiSource::DebugFrame
    } else {
        CfiSource::None
    };
    let (rows, rows_before_dedup) = table::rows_from_spans(eh_frame, debug_frame);
    stats.rows_before_dedup = rows_before_dedup;
    Ok((UnwindTable { rows, source, build_id: file.build_id }, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        for kind in [KIND_CFA_RSP, KIND_CFA_RBP, KIND_PLT, KIND_SIGNAL, KIND_END, KIND_NONE, KIND_STOP] {
            for offset in [0, 8, 16, 4096, MAX_CFA_OFFSET - 1] {
                for slot in [None, Some(0), Some(1), Some(2), Some(11), Some(255)] {
                    assert_eq!(decode(encode(kind, offset, slot)), (kind, offset, slot));
                }
            }
        }
    }

    #[test]
    fn encode_puts_fields_in_the_documented_bits() {
        assert_eq!(encode(KIND_CFA_RSP, 8, None), 8 << 12);
        assert_eq!(encode(KIND_CFA_RBP, 16, Some(2)), 1 | 1 << 3 | 2 << 4 | 16 << 12);
        assert_eq!(encode(KIND_PLT, 8, Some(11)), 2 | 1 << 3 | 11 << 4 | 8 << 12);
    }

    fn table(rows: &[(u32, u32)]) -> UnwindTable {
        UnwindTable {
            rows: rows.iter().map(|&(pc, rule)| Row { pc, rule }).collect(),
            source: CfiSource::EhFrame,
            build_id: None,
        }
    }

    #[test]
    fn lookup_finds_the_row_in_force() {
        let t = table(&[(0x10, 1), (0x20, 2), (0x30, 3)]);
        assert_eq!(t.lookup(0x0f), None);
        assert_eq!(t.lookup(0x10), Some(Row { pc: 0x10, rule: 1 }));
        assert_eq!(t.lookup(0x1f), Some(Row { pc: 0x10, rule: 1 }));
        assert_eq!(t.lookup(0x20), Some(Row { pc: 0x20, rule: 2 }));
        assert_eq!(t.lookup(u64::MAX), Some(Row { pc: 0x30, rule: 3 }));
        assert_eq!(table(&[]).lookup(0), None);
    }

    #[test]
    fn to_bytes_is_pc_then_rule_little_endian() {
        let t = table(&[(0x0403_0201, 0x0807_0605), (0x10, 0x20)]);
        assert_eq!(t.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0, 0, 0, 0x20, 0, 0, 0]);
    }
}
