//! A page index over a table's rows, so that the BPF unwinder finds a pc's row in a few steps
//! instead of a binary search over every row of the file: the file's offsets are cut into pages
//! of `1 << shift` bytes, and each page names the few rows a lookup in it may land on.

use crate::UnwindTable;

/// The candidates of one page: rows `first .. first + count` of the table (`count >= 1`). The
/// row in force at an offset of the page is the last of them whose pc is at or below it (the
/// first candidate may start before the page: it is the row in force where the page begins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub first: u32,
    pub count: u32,
}

/// The pages of one table, from file offset 0 to the page of the last row. An offset past the
/// last page looks in the last page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageIndex {
    pub shift: u32,
    pub pages: Vec<Page>,
}

/// The largest page the index uses: 1 MiB.
const MAX_SHIFT: u32 = 20;

impl UnwindTable {
    /// The index with the largest pages in which no page has more than `max_candidates` rows
    /// (at least 2; rows have distinct pcs, so pages of `max_candidates - 1` bytes always do).
    /// `None` for a table without rows.
    pub fn page_index(&self, max_candidates: u32) -> Option<PageIndex> {
        let last = self.rows.last()?.pc;
        let max_candidates = max_candidates.max(2);
        let mut shift = MAX_SHIFT;
        loop {
            let index = self.pages_of(shift, last);
            if shift == 0 || index.pages.iter().all(|page| page.count <= max_candidates) {
                return Some(index);
            }
            shift -= 1;
        }
    }

    fn pages_of(&self, shift: u32, last: u32) -> PageIndex {
        let page_count = (last >> shift) as usize + 1;
        let mut pages = Vec::with_capacity(page_count);
        // Rows whose pc is below the page's start, for the page being built and the next.
        let mut below = 0usize;
        for page in 0..page_count {
            let end = ((page as u64) + 1) << shift;
            let mut next_below = below;
            while next_below < self.rows.len() && u64::from(self.rows[next_below].pc) < end {
                next_below += 1;
            }
            let first = below.saturating_sub(1);
            let count = (next_below - first).max(1);
            // Both fit: the table's row count is checked against u32 by its user, and the
            // index's values never exceed it.
            pages.push(Page { first: first as u32, count: count as u32 });
            below = next_below;
        }
        PageIndex { shift, pages }
    }
}

impl PageIndex {
    /// The row in force at `file_offset`, found as the BPF side finds it: the page (or the last
    /// page), then the last candidate at or below the offset. `None` before the first row.
    pub fn lookup(&self, table: &UnwindTable, file_offset: u64) -> Option<crate::Row> {
        let page = usize::try_from(file_offset >> self.shift).unwrap_or(usize::MAX).min(self.pages.len() - 1);
        let Page { first, count } = self.pages[page];
        let candidates = &table.rows[first as usize..(first + count) as usize];
        let after = candidates.partition_point(|row| u64::from(row.pc) <= file_offset);
        after.checked_sub(1).map(|index| candidates[index])
    }

    /// The pages as 8 bytes each, little-endian `u32` first candidate (plus `base`, where the
    /// table's rows start in the map) then `u32` count: entries of the same array map as rows.
    pub fn to_bytes(&self, base: u32) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.pages.len() * 8);
        for page in &self.pages {
            bytes.extend_from_slice(&(page.first + base).to_le_bytes());
            bytes.extend_from_slice(&page.count.to_le_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use crate::{CfiSource, Row, UnwindTable};

    fn table(pcs: &[u32]) -> UnwindTable {
        UnwindTable {
            rows: pcs.iter().enumerate().map(|(i, &pc)| Row { pc, rule: i as u32 }).collect(),
            source: CfiSource::EhFrame,
            build_id: None,
        }
    }

    #[test]
    fn every_offset_finds_the_row_a_full_search_finds() {
        let t = table(&[0x10, 0x11, 0x12, 0x13, 0x14, 0x40, 0x200, 0x201, 0x1000, 0x1003, 0x5000]);
        for max in [2, 3, 4, 8, 64] {
            let index = t.page_index(max).unwrap();
            assert!(index.pages.iter().all(|p| p.count >= 1 && p.count <= max), "{max}: {index:?}");
            for offset in 0..0x6000 {
                assert_eq!(index.lookup(&t, offset), t.lookup(offset), "max {max} offset {offset:#x}");
            }
            assert_eq!(index.lookup(&t, u64::MAX), t.lookup(u64::MAX));
        }
    }

    #[test]
    fn sparse_tables_get_large_pages_and_dense_ones_small() {
        let sparse = table(&[0x1000, 0x9000, 0x2_0000]);
        assert_eq!(sparse.page_index(8).unwrap().shift, super::MAX_SHIFT);
        let dense: Vec<u32> = (0..4096).collect();
        let index = table(&dense).page_index(9).unwrap();
        assert_eq!(index.shift, 3, "8-byte pages hold 8 rows and the one before");
        assert_eq!(index.pages.len(), 512);
    }

    #[test]
    fn an_empty_table_has_no_index() {
        assert_eq!(table(&[]).page_index(8), None);
    }

    #[test]
    fn bytes_are_first_plus_base_then_count() {
        let index = table(&[0, 4, 8]).page_index(2).unwrap();
        assert_eq!(index.shift, 3);
        assert_eq!(index.to_bytes(100), [100, 0, 0, 0, 2, 0, 0, 0, 101, 0, 0, 0, 2, 0, 0, 0]);
    }
}
