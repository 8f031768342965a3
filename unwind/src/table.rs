//! Turns the spans of both CFI sections into the table's rows: sorted, `.eh_frame` preferred where
//! both sections cover an address, a NONE row wherever no FDE covers the code, and consecutive rows
//! with the same rule merged.

use crate::cfi::Span;
use crate::{encode, Row, KIND_NONE};

/// The rows of the table and how many there were before consecutive equal rules were merged.
/// `preferred` holds `.eh_frame`'s spans, `fallback` `.debug_frame`'s.
pub(crate) fn rows_from_spans(mut preferred: Vec<Span>, fallback: Vec<Span>) -> (Vec<Row>, usize) {
    // A stable sort: where two FDEs claim the same start, the later one in the section wins (its
    // row replaces the earlier one's in `push_row`), as it would in a lookup by start address.
    preferred.sort_by_key(|span| span.start);
    let covered = coverage(&preferred);
    let mut spans = preferred;
    for span in fallback {
        uncovered_parts(span, &covered, &mut spans);
    }
    spans.sort_by_key(|span| span.start);
    let rows = rows_with_gaps(&spans);
    let before_dedup = rows.len();
    (merge_equal_rules(rows), before_dedup)
}

/// The sorted, disjoint address ranges the spans cover.
fn coverage(sorted: &[Span]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for span in sorted {
        match ranges.last_mut() {
            Some(last) if span.start <= last.1 => last.1 = last.1.max(span.end),
            _ => ranges.push((span.start, span.end)),
        }
    }
    ranges
}

/// Appends the parts of `span` that no range of `covered` (sorted, disjoint) overlaps.
fn uncovered_parts(span: Span, covered: &[(u64, u64)], out: &mut Vec<Span>) {
    let mut start = span.start;
    let first = covered.partition_point(|&(_, end)| end <= start);
    for &(covered_start, covered_end) in &covered[first..] {
        if covered_start >= span.end {
            break;
        }
        if start < covered_start {
            out.push(Span { start, end: covered_start, rule: span.rule });
        }
        start = start.max(covered_end);
    }
    if start < span.end {
        out.push(Span { start, end: span.end, rule: span.rule });
    }
}

/// One row at each span's start, and a NONE row where a span ends before the next one starts.
/// Overlapping spans (which well-formed CFI does not have) give way to the later start; the code
/// after the shorter one's end gets NONE, so the unwinder falls back to frame pointers there
/// rather than trusting a rule meant for other code.
fn rows_with_gaps(sorted: &[Span]) -> Vec<Row> {
    let none = encode(KIND_NONE, 0, None);
    let mut rows: Vec<Row> = Vec::with_capacity(sorted.len() * 2);
    let mut end_of_previous: Option<u64> = None;
    for span in sorted {
        if let Some(end) = end_of_previous.filter(|&end| end < span.start) {
            push_row(&mut rows, end, none);
        }
        push_row(&mut rows, span.start, span.rule);
        end_of_previous = Some(span.end);
    }
    if let Some(end) = end_of_previous {
        push_row(&mut rows, end, none);
    }
    rows
}

/// Appends a row, replacing the last one when it starts at the same pc (it would hold for no
/// address). Offsets were checked to fit 32 bits when the spans were made.
fn push_row(rows: &mut Vec<Row>, pc: u64, rule: u32) {
    let pc = u32::try_from(pc).unwrap_or(u32::MAX);
    match rows.last_mut() {
        Some(last) if last.pc == pc => last.rule = rule,
        _ => rows.push(Row { pc, rule }),
    }
}

fn merge_equal_rules(mut rows: Vec<Row>) -> Vec<Row> {
    rows.dedup_by(|later, earlier| later.rule == earlier.rule);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KIND_CFA_RBP, KIND_CFA_RSP, KIND_STOP};

    fn span(start: u64, end: u64, rule: u32) -> Span {
        Span { start, end, rule }
    }

    fn rows(pairs: &[(u32, u32)]) -> Vec<Row> {
        pairs.iter().map(|&(pc, rule)| Row { pc, rule }).collect()
    }

    const NONE: u32 = KIND_NONE;

    #[test]
    fn adjacent_spans_get_no_gap_row_and_a_gap_gets_none() {
        let rsp8 = encode(KIND_CFA_RSP, 8, None);
        let rsp16 = encode(KIND_CFA_RSP, 16, None);
        let spans = vec![span(0x20, 0x30, rsp8), span(0x10, 0x14, rsp8), span(0x14, 0x20, rsp16)];
        let (table, before) = rows_from_spans(spans, Vec::new());
        assert_eq!(table, rows(&[(0x10, rsp8), (0x14, rsp16), (0x20, rsp8), (0x30, NONE)]));
        assert_eq!(before, 4);
        let (table, _) = rows_from_spans(vec![span(0x10, 0x18, rsp8), span(0x20, 0x28, rsp8)], Vec::new());
        assert_eq!(table, rows(&[(0x10, rsp8), (0x18, NONE), (0x20, rsp8), (0x28, NONE)]));
    }

    #[test]
    fn consecutive_equal_rules_merge() {
        let rsp8 = encode(KIND_CFA_RSP, 8, None);
        let rbp16 = encode(KIND_CFA_RBP, 16, Some(2));
        let spans = vec![
            span(0x00, 0x01, rsp8),
            span(0x01, 0x04, rsp8),
            span(0x04, 0x10, rbp16),
            span(0x10, 0x11, rsp8),
            span(0x11, 0x20, rsp8),
        ];
        let (table, before) = rows_from_spans(spans, Vec::new());
        assert_eq!(table, rows(&[(0x00, rsp8), (0x04, rbp16), (0x10, rsp8), (0x20, NONE)]));
        assert_eq!(before, 6);
    }

    #[test]
    fn empty_input_gives_an_empty_table() {
        assert_eq!(rows_from_spans(Vec::new(), Vec::new()), (Vec::new(), 0));
    }

    #[test]
    fn debug_frame_only_fills_what_eh_frame_leaves_uncovered() {
        let eh = encode(KIND_CFA_RSP, 8, None);
        let debug = encode(KIND_CFA_RSP, 24, None);
        let preferred = vec![span(0x10, 0x20, eh), span(0x30, 0x40, eh)];
        let fallback = vec![span(0x00, 0x50, debug), span(0x60, 0x70, debug)];
        let (table, _) = rows_from_spans(preferred, fallback);
        let expected = [(0x00, debug), (0x10, eh), (0x20, debug), (0x30, eh), (0x40, debug), (0x50, NONE)];
        let mut expected = rows(&expected);
        expected.extend(rows(&[(0x60, debug), (0x70, NONE)]));
        assert_eq!(table, expected);
    }

    #[test]
    fn overlapping_spans_give_way_to_the_later_start() {
        let outer = encode(KIND_CFA_RSP, 8, None);
        let inner = encode(KIND_STOP, 0, None);
        let (table, _) = rows_from_spans(vec![span(0x00, 0x100, outer), span(0x10, 0x20, inner)], Vec::new());
        assert_eq!(table, rows(&[(0x00, outer), (0x10, inner), (0x20, NONE)]));
        let (table, _) = rows_from_spans(vec![span(0x10, 0x20, outer), span(0x10, 0x20, inner)], Vec::new());
        assert_eq!(table, rows(&[(0x10, inner), (0x20, NONE)]));
    }
}
