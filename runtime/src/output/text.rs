//! One map in bpftrace 0.17's text format.
//!
//! Layout, as produced by bpftrace's `TextOutput` (entries are joined, then a terminator follows):
//!
//! ```text
//! @c[a]: 2                          plain values: entries joined by "\n", then "\n"
//! @st[1]: count 1, average 5, total 5   avg/stats: joined by "\n", then "\n\n"
//! @h[1]:␠                           hist/lhist: "@h[key]: " + "\n" + rows, joined by "\n", then "\n"
//! [4, 8)                 1 |@@@…@@|
//! ```
//!
//! So a histogram is followed by a blank line, a plain map is not, and an avg/stats map is. An empty
//! map prints just its terminator: one empty line ("\n"), or two for avg/stats.

use super::buckets::{bar_width, hist_rows, hist_text_label, lhist_rows, LhistInts, BAR_WIDTH};
use super::map::{keep_top, sort_by_average, sort_by_total, sort_values, LhistParams, MapData, MapDump};
use super::value::MapKey;

/// Appends `map` as `print(@m, top, div)` shows it in text mode (`top` 0 = all, `div` 0 = 1).
pub fn write_map_text(map: &MapDump, top: u32, div: u32, out: &mut Vec<u8>) {
    let div = div.max(1);
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let terminator: &[u8] = match &map.data {
        MapData::Values(values) => {
            for (key, value) in keep_top(sort_values(values), top) {
                let mut entry = header(&map.name, key);
                value.divided(div).write_text(&mut entry);
                entries.push(entry);
            }
            b"\n"
        }
        MapData::Avg(states) => {
            for (key, state) in keep_top(sort_by_average(states), top) {
                let mut entry = header(&map.name, key);
                let average = state.average().wrapping_div(i64::from(div));
                entry.extend_from_slice(average.to_string().as_bytes());
                entries.push(entry);
            }
            b"\n\n"
        }
        MapData::Stats(states) => {
            // bpftrace ignores both top and div for stats().
            for (key, state) in sort_by_average(states) {
                let mut entry = header(&map.name, key);
                let line = format!("count {}, average {}, total {}", state.count, state.average(), state.total);
                entry.extend_from_slice(line.as_bytes());
                entries.push(entry);
            }
            b"\n\n"
        }
        MapData::Hist(hists) => {
            for (key, counts) in keep_top(sort_by_total(hists), top) {
                let mut entry = header(&map.name, key);
                entry.push(b'\n');
                write_hist_rows(counts, div, &mut entry);
                entries.push(entry);
            }
            b"\n"
        }
        MapData::Lhist(params, hists) => {
            for (key, counts) in keep_top(sort_by_total(hists), top) {
                let mut entry = header(&map.name, key);
                entry.push(b'\n');
                write_lhist_rows(counts, *params, &mut entry);
                entries.push(entry);
            }
            b"\n"
        }
    };
    out.extend_from_slice(&entries.join(&b"\n"[..]));
    out.extend_from_slice(terminator);
}

/// `@name[key]: ` (or `@name: ` for an unkeyed map).
fn header(name: &str, key: &MapKey) -> Vec<u8> {
    let mut entry = name.as_bytes().to_vec();
    key.write_text(&mut entry);
    entry.extend_from_slice(b": ");
    entry
}

/// The rows of one `hist()`, each ending in "\n"; nothing when all buckets are empty. `div` divides
/// the printed counts but not the bars, which bpftrace scales from the undivided counts.
fn write_hist_rows(counts: &[u64], div: u32, out: &mut Vec<u8>) {
    let Some(rows) = hist_rows(counts) else {
        return;
    };
    for (index, &count) in counts.iter().enumerate().take(rows.last + 1).skip(rows.first) {
        let label = hist_text_label(index);
        write_row(&label, count / u64::from(div), bar_width(count, rows.max_count), out);
    }
}

/// The rows of one `lhist()`; bpftrace ignores `div` here.
fn write_lhist_rows(counts: &[u64], params: LhistParams, out: &mut Vec<u8>) {
    let Some(ints) = LhistInts::new(params.min, params.max, params.step) else {
        return;
    };
    let Some(rows) = lhist_rows(counts, ints.buckets) else {
        return;
    };
    for index in rows.first..=rows.last {
        let count = counts.get(index).copied().unwrap_or(0);
        write_row(&ints.text_label(index), count, bar_width(count, rows.max_count), out);
    }
}

/// One row: `"%-16s%8lu |%-52s|\n"` with the bar drawn in `@`.
fn write_row(label: &str, count: u64, bar: usize, out: &mut Vec<u8>) {
    let bar = "@".repeat(bar);
    let line = format!("{label:<16}{count:>8} |{bar:<BAR_WIDTH$}|\n");
    out.extend_from_slice(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::map::AvgState;
    use crate::output::value::Value;

    fn render(map: &MapDump, top: u32, div: u32) -> String {
        let mut out = Vec::new();
        write_map_text(map, top, div, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn empty_maps_print_only_their_terminator() {
        let name = "@m".to_string();
        let empty = |data| MapDump { name: name.clone(), data };
        assert_eq!(render(&empty(MapData::Values(vec![])), 0, 0), "\n");
        assert_eq!(render(&empty(MapData::Hist(vec![])), 0, 0), "\n");
        assert_eq!(render(&empty(MapData::Stats(vec![])), 0, 0), "\n\n");
        assert_eq!(render(&empty(MapData::Avg(vec![])), 0, 0), "\n\n");
    }

    #[test]
    fn zeroed_hist_prints_header_and_blank_line() {
        let map = MapDump { name: "@h".into(), data: MapData::Hist(vec![(MapKey::none(), vec![0; 65])]) };
        assert_eq!(render(&map, 0, 0), "@h: \n\n");
    }

    #[test]
    fn stats_ignore_top_and_div() {
        let entries = (1..=3).map(|i| (MapKey(vec![Value::Int(i)]), AvgState { count: 1, total: i * 10 })).collect();
        let map = MapDump { name: "@s".into(), data: MapData::Stats(entries) };
        assert_eq!(
            render(&map, 1, 10),
            "@s[1]: count 1, average 10, total 10\n@s[2]: count 1, average 20, total 20\n\
             @s[3]: count 1, average 30, total 30\n\n"
        );
    }
}
