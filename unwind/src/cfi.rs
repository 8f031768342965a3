//! Walks `.eh_frame` and `.debug_frame` with gimli and turns each FDE's rows into spans of file
//! offsets, each with one packed rule (see [`crate::encode`]).

use std::collections::HashMap;

use gimli::constants as dw;
use gimli::{
    BaseAddresses, CfaRule, CieOrFde, CommonInformationEntry, DebugFrame, EhFrame, EndianSlice, FrameDescriptionEntry,
    LittleEndian, Reader as _, RegisterRule, UnwindContext, UnwindSection, UnwindTableRow, X86_64,
};

use crate::elf::{CfiSection, Segments};
use crate::{
    encode, BuildStats, UnwindError, KIND_CFA_RBP, KIND_CFA_RSP, KIND_END, KIND_PLT, KIND_SIGNAL, KIND_STOP,
    MAX_CFA_OFFSET,
};

type Reader<'a> = EndianSlice<'a, LittleEndian>;

/// File offsets `start..end` where `rule` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u64,
    pub end: u64,
    pub rule: u32,
}

/// The rule of code whose CFI this table cannot express.
fn stop() -> u32 {
    encode(KIND_STOP, 0, None)
}

pub(crate) fn eh_frame_spans(
    section: &CfiSection<'_>,
    bases: &BaseAddresses,
    segments: &Segments,
    stats: &mut BuildStats,
) -> Result<Vec<Span>, UnwindError> {
    let mut eh_frame = EhFrame::new(&section.data, LittleEndian);
    eh_frame.set_address_size(8);
    section_spans(&eh_frame, bases, segments, ".eh_frame", stats)
}

pub(crate) fn debug_frame_spans(
    section: &CfiSection<'_>,
    segments: &Segments,
    stats: &mut BuildStats,
) -> Result<Vec<Span>, UnwindError> {
    let mut debug_frame = DebugFrame::new(&section.data, LittleEndian);
    debug_frame.set_address_size(8);
    // `.debug_frame` addresses are absolute, so no base address is needed.
    section_spans(&debug_frame, &BaseAddresses::default(), segments, ".debug_frame", stats)
}

/// The spans of every FDE of one section, in section order.
fn section_spans<'a, S: UnwindSection<Reader<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    segments: &Segments,
    name: &'static str,
    stats: &mut BuildStats,
) -> Result<Vec<Span>, UnwindError> {
    let malformed = |offset: usize| move |source| UnwindError::MalformedCfi { section: name, offset, source };
    let mut spans = Vec::new();
    let mut context = UnwindContext::new();
    // Most FDEs share a handful of CIEs; parsing each once keeps the build fast.
    let mut cies: HashMap<usize, CommonInformationEntry<Reader<'a>>> = HashMap::new();
    let mut entries = section.entries(bases);
    // Where the next entry starts, for errors: after a 4-byte length field, as in the 32-bit
    // DWARF format every `.eh_frame` producer uses.
    let mut next_offset = 0;
    while let Some(entry) = entries.next().map_err(malformed(next_offset))? {
        let partial = match entry {
            CieOrFde::Cie(cie) => {
                next_offset = cie.offset() + 4 + cie.entry_len();
                continue;
            }
            CieOrFde::Fde(partial) => partial,
        };
        let offset = partial.offset();
        next_offset = offset + 4 + partial.entry_len();
        let fde = partial
            .parse(|section, bases, cie_offset| {
                let key = gimli::UnwindOffset::into(cie_offset);
                if let Some(cie) = cies.get(&key) {
                    return Ok(cie.clone());
                }
                let cie = section.cie_from_offset(bases, cie_offset)?;
                cies.insert(key, cie.clone());
                Ok(cie)
            })
            .map_err(malformed(offset))?;
        stats.fdes += 1;
        fde_spans(section, bases, &mut context, &fde, segments, &mut spans, stats)?;
    }
    Ok(spans)
}

/// Appends the spans of one FDE's rows. An FDE whose instructions gimli cannot evaluate gets a
/// STOP span from where its good rows end, so the unwinder ends the stack there instead of
/// guessing.
fn fde_spans<'a, S: UnwindSection<Reader<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    context: &mut UnwindContext<usize>,
    fde: &FrameDescriptionEntry<Reader<'a>>,
    segments: &Segments,
    spans: &mut Vec<Span>,
    stats: &mut BuildStats,
) -> Result<(), UnwindError> {
    let (initial, end) = (fde.initial_address(), fde.end_address());
    if end <= initial {
        return Ok(());
    }
    let Some((start_offset, end_offset)) = segments.file_range(initial, end) else {
        stats.fdes_outside_segments += 1;
        return Ok(());
    };
    if end_offset > u64::from(u32::MAX) {
        return Err(UnwindError::OffsetTooLarge { vaddr: end, file_offset: end_offset });
    }
    // Within the FDE every address moves to its file offset by the same amount.
    let to_offset = |vaddr: u64| (vaddr.saturating_sub(initial) + start_offset).min(end_offset);
    if fde.is_signal_trampoline() {
        spans.push(Span { start: start_offset, end: end_offset, rule: encode(KIND_SIGNAL, 0, None) });
        return Ok(());
    }
    let mut covered = start_offset;
    if let Ok(mut rows) = fde.rows(section, bases, context) {
        while let Ok(Some(row)) = rows.next_row() {
            stats.cfi_rows += 1;
            let (start, row_end) = (to_offset(row.start_address()), to_offset(row.end_address()));
            if start < row_end {
                spans.push(Span { start, end: row_end, rule: classify(row, section) });
                covered = row_end;
            }
        }
    }
    if covered < end_offset {
        spans.push(Span { start: covered, end: end_offset, rule: stop() });
    }
    Ok(())
}

/// The packed rule of one CFI row: the return address must be at `cfa - 8` (or undefined, the
/// outermost frame), the CFA `rsp`/`rbp` plus a small offset or the PLT expression, and `rbp`
/// unchanged or saved in a slot below the CFA.
fn classify<'a, S: UnwindSection<Reader<'a>>>(row: &UnwindTableRow<usize>, section: &S) -> u32 {
    match row.register(X86_64::RA) {
        Some(RegisterRule::Undefined) => return encode(KIND_END, 0, None),
        Some(RegisterRule::Offset(-8)) => {}
        _ => return stop(),
    }
    let (kind, cfa_offset) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let kind = match register {
                X86_64::RSP => KIND_CFA_RSP,
                X86_64::RBP => KIND_CFA_RBP,
                _ => return stop(),
            };
            match u32::try_from(offset) {
                Ok(offset) if offset < MAX_CFA_OFFSET => (kind, offset),
                _ => return stop(),
            }
        }
        CfaRule::Expression(ref expression) => {
            let plt = expression.get(section).ok().and_then(|e| plt_expression(e.0.slice()));
            return match plt {
                Some((cfa_offset, threshold)) => encode(KIND_PLT, cfa_offset, Some(threshold)),
                None => stop(),
            };
        }
    };
    let rbp_slot = match row.register(X86_64::RBP) {
        None | Some(RegisterRule::Undefined | RegisterRule::SameValue) => None,
        Some(RegisterRule::Offset(offset)) if offset < 0 && offset % 8 == 0 => match u8::try_from(-offset / 8) {
            Ok(slot) => Some(slot),
            Err(_) => return stop(),
        },
        Some(_) => return stop(),
    };
    encode(kind, cfa_offset, rbp_slot)
}

/// Recognises the CFA expression binutils emits for lazy-binding `.plt` entries, returning its
/// `rsp` offset and the threshold of `rip & 15` from which the stub has pushed one more word:
///
/// ```text
/// DW_CFA_def_cfa_expression (DW_OP_breg7 (rsp): 8; DW_OP_breg16 (rip): 0; DW_OP_lit15; DW_OP_and;
///     DW_OP_lit11; DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus)
/// ```
///
/// (readelf's rendering, from Debian's libc.so.6). Other PLT layouts (IBT, MPX) differ only in
/// the threshold literal, so any `DW_OP_litN` is accepted there.
fn plt_expression(bytes: &[u8]) -> Option<(u32, u8)> {
    let mut input = EndianSlice::new(bytes, LittleEndian);
    let byte = |input: &mut Reader<'_>| input.read_u8().ok();
    if byte(&mut input)? != dw::DW_OP_breg7.0 {
        return None;
    }
    let cfa_offset = u32::try_from(input.read_sleb128().ok()?).ok().filter(|&offset| offset < MAX_CFA_OFFSET)?;
    if byte(&mut input)? != dw::DW_OP_breg16.0 || input.read_sleb128().ok()? != 0 {
        return None;
    }
    if byte(&mut input)? != dw::DW_OP_lit15.0 || byte(&mut input)? != dw::DW_OP_and.0 {
        return None;
    }
    let threshold = byte(&mut input)?.checked_sub(dw::DW_OP_lit0.0).filter(|&literal| literal <= 31)?;
    for op in [dw::DW_OP_ge, dw::DW_OP_lit3, dw::DW_OP_shl, dw::DW_OP_plus] {
        if byte(&mut input)? != op.0 {
            return None;
        }
    }
    input.is_empty().then_some((cfa_offset, threshold))
}

#[cfg(test)]
#[path = "cfi_tests.rs"]
mod tests;
