//! Tests of the CFI walk on handcrafted `.eh_frame` bytes.

use std::borrow::Cow;

use super::*;
use crate::elf::Segment;
use crate::{decode, KIND_NONE};

/// The CIE instructions of every x86-64 compiler: `cfa = rsp + 8`, return address at `cfa - 8`.
const ENTRY: &[u8] = &[0x0c, 0x07, 0x08, 0x90, 0x01];
const CODE_VADDR: u64 = 0x40_1000;
const CODE_OFFSET: u64 = 0x1000;

/// Builds an `.eh_frame` section with absolute (`DW_EH_PE_absptr`) FDE addresses.
#[derive(Default)]
struct EhFrameBuilder {
    bytes: Vec<u8>,
}

impl EhFrameBuilder {
    /// Appends a CIE (augmentation "" or "zS"), returning its offset.
    fn cie(&mut self, augmentation: &str, instructions: &[u8]) -> usize {
        let mut body = vec![0, 0, 0, 0, 1];
        body.extend_from_slice(augmentation.as_bytes());
        body.extend_from_slice(&[0, 1, 0x78, 16]);
        if augmentation.starts_with('z') {
            body.push(0);
        }
        body.extend_from_slice(instructions);
        self.entry(body)
    }

    fn fde(&mut self, cie: usize, augmented: bool, start: u64, len: u64, instructions: &[u8]) {
        // The CIE pointer is the distance back from the pointer's own position.
        let pointer = u32::try_from(self.bytes.len() + 4 - cie).unwrap();
        let mut body = pointer.to_le_bytes().to_vec();
        body.extend_from_slice(&start.to_le_bytes());
        body.extend_from_slice(&len.to_le_bytes());
        if augmented {
            body.push(0);
        }
        body.extend_from_slice(instructions);
        self.entry(body);
    }

    fn entry(&mut self, mut body: Vec<u8>) -> usize {
        while !(body.len() + 4).is_multiple_of(8) {
            body.push(0); // DW_CFA_nop
        }
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
        self.bytes.extend_from_slice(&body);
        offset
    }

    fn spans(&self) -> Result<(Vec<Span>, BuildStats), UnwindError> {
        let mut bytes = self.bytes.clone();
        bytes.extend_from_slice(&[0, 0, 0, 0]); // the terminator
        let section = CfiSection { data: Cow::Owned(bytes), address: 0x50_0000 };
        let segments =
            Segments { executable: vec![Segment { vaddr: CODE_VADDR, filesz: 0x1_0000, offset: CODE_OFFSET }] };
        let mut stats = BuildStats::default();
        let spans = eh_frame_spans(&section, &BaseAddresses::default(), &segments, &mut stats)?;
        Ok((spans, stats))
    }
}

type Rule = (u32, u32, Option<u8>);

/// The spans of one FDE at `CODE_VADDR` of `len` bytes, as (start, end, decoded rule) relative
/// to the function's file offset.
fn one_fde(augmentation: &str, instructions: &[u8], len: u64) -> Vec<(u64, u64, Rule)> {
    let mut builder = EhFrameBuilder::default();
    let cie = builder.cie(augmentation, ENTRY);
    builder.fde(cie, augmentation.starts_with('z'), CODE_VADDR, len, instructions);
    let (spans, _) = builder.spans().unwrap();
    spans.iter().map(|s| (s.start - CODE_OFFSET, s.end - CODE_OFFSET, decode(s.rule))).collect()
}

#[test]
fn frame_pointer_prologue_and_epilogue() {
    // push %rbp; mov %rsp,%rbp; ...16 bytes...; pop %rbp; ret
    let instructions = [
        0x41, 0x0e, 0x10, 0x86, 0x02, // advance 1; cfa = rsp + 16; rbp at cfa - 16
        0x43, 0x0d, 0x06, // advance 3; cfa = rbp + 16
        0x50, 0x0c, 0x07, 0x08, 0xc6, // advance 16; cfa = rsp + 8; rbp restored
    ];
    assert_eq!(
        one_fde("", &instructions, 0x16),
        [
            (0x00, 0x01, (KIND_CFA_RSP, 8, None)),
            (0x01, 0x04, (KIND_CFA_RSP, 16, Some(2))),
            (0x04, 0x14, (KIND_CFA_RBP, 16, Some(2))),
            (0x14, 0x16, (KIND_CFA_RSP, 8, None)),
        ]
    );
}

#[test]
fn undefined_return_address_is_the_outermost_frame() {
    assert_eq!(one_fde("", &[0x07, 0x10], 0x20), [(0, 0x20, (KIND_END, 0, None))]);
}

#[test]
fn signal_trampoline_cie_gives_signal() {
    // glibc's __restore_rt FDE describes the ucontext with expressions; the 'S' is what counts.
    let instructions = [0x0f, 0x03, 0x77, 0xa0, 0x01]; // cfa = *(rsp + 160) (without the deref)
    assert_eq!(one_fde("zS", &instructions, 0x0a), [(0, 0x0a, (KIND_SIGNAL, 0, None))]);
}

#[test]
fn plt_expression_gives_plt_with_its_threshold() {
    let plt = |threshold: u8| {
        let expression = [0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x30 + threshold, 0x2a, 0x33, 0x24, 0x22];
        let mut instructions = vec![0x0e, 0x10, 0x46, 0x0e, 0x18, 0x4a, 0x0f, 11];
        instructions.extend_from_slice(&expression);
        one_fde("", &instructions, 0x40)
    };
    let expected = |threshold| {
        [
            (0x00, 0x06, (KIND_CFA_RSP, 16, None)),
            (0x06, 0x10, (KIND_CFA_RSP, 24, None)),
            (0x10, 0x40, (KIND_PLT, 8, Some(threshold))),
        ]
    };
    assert_eq!(plt(11), expected(11));
    assert_eq!(plt(10), expected(10));
}

#[test]
fn plt_expression_matcher_rejects_near_misses() {
    let good = [0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22];
    assert_eq!(plt_expression(&good), Some((8, 11)));
    for (index, byte) in [(0, 0x76), (3, 0x01), (4, 0x3e), (7, 0x2b), (10, 0x1c)] {
        let mut bad = good;
        bad[index] = byte;
        assert_eq!(plt_expression(&bad), None, "byte {index} changed to {byte:#x}");
    }
    assert_eq!(plt_expression(&good[..10]), None);
    assert_eq!(plt_expression(&[&good[..], &[0x96]].concat()), None);
    // cfa = *(rsp + 160), glibc's signal frame CFA, is not a PLT.
    assert_eq!(plt_expression(&[0x77, 0xa0, 0x01, 0x06]), None);
}

#[test]
fn unrepresentable_rules_stop() {
    let stop = (KIND_STOP, 0, None);
    // cfa = r10 + 0 (stack realignment)
    assert_eq!(one_fde("", &[0x0c, 0x0a, 0x00], 8), [(0, 8, stop)]);
    // cfa = rsp + 1 MiB
    assert_eq!(one_fde("", &[0x0e, 0x80, 0x80, 0x40], 8), [(0, 8, stop)]);
    // rbp saved above the cfa, and rbp kept in rbx
    assert_eq!(one_fde("", &[0x0e, 0x10, 0x11, 0x06, 0x7f], 8), [(0, 8, stop)]);
    assert_eq!(one_fde("", &[0x09, 0x06, 0x03], 8), [(0, 8, stop)]);
    // the return address kept somewhere other than cfa - 8
    assert_eq!(one_fde("", &[0x90, 0x02], 8), [(0, 8, stop)]);
    // a CFA expression that is not the PLT's: cfa = *(rsp + 160)
    assert_eq!(one_fde("", &[0x0f, 0x04, 0x77, 0xa0, 0x01, 0x06], 8), [(0, 8, stop)]);
}

#[test]
fn instructions_gimli_cannot_evaluate_stop_the_rest_of_the_fde() {
    // advance 2; then DW_CFA_hi_user, which no producer emits.
    assert_eq!(one_fde("", &[0x42, 0x3f], 0x10), [(0, 2, (KIND_CFA_RSP, 8, None)), (2, 0x10, (KIND_STOP, 0, None))]);
}

#[test]
fn fdes_outside_executable_segments_are_skipped_and_counted() {
    let mut builder = EhFrameBuilder::default();
    let cie = builder.cie("", ENTRY);
    builder.fde(cie, false, 0, 0x10, &[]);
    builder.fde(cie, false, CODE_VADDR + 0x20, 0x10, &[]);
    builder.fde(cie, false, CODE_VADDR + 0x30, 0, &[]);
    let (spans, stats) = builder.spans().unwrap();
    let rule = encode(KIND_CFA_RSP, 8, None);
    assert_eq!(spans, [Span { start: CODE_OFFSET + 0x20, end: CODE_OFFSET + 0x30, rule }]);
    assert_eq!((stats.fdes, stats.fdes_outside_segments, stats.cfi_rows), (3, 1, 1));
    assert_ne!(rule, encode(KIND_NONE, 0, None));
}

#[test]
fn truncated_section_is_malformed_cfi() {
    let mut builder = EhFrameBuilder::default();
    let cie = builder.cie("", ENTRY);
    builder.fde(cie, false, CODE_VADDR, 0x10, &[]);
    builder.bytes.extend_from_slice(&[0x40, 0, 0, 0, 1, 2]);
    let error = builder.spans().unwrap_err().to_string();
    assert!(error.starts_with("malformed CFI in .eh_frame at offset 0x30: "), "{error}");
}
