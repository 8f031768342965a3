//! One map in bpftrace 0.17's JSON format (`-f json`), one line per map.
//!
//! ```text
//! {"type": "map", "data": {"@c": {"b": 1, "a": 2}}}
//! {"type": "stats", "data": {"@st": {"count": 2, "average": -3, "total": -7}}}
//! {"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 1}]}}
//! ```
//!
//! `type` is `map` for plain values, `stats` for both `avg()` (value is the bare average) and
//! `stats()`, `hist` for both `hist()` and `lhist()`. Unkeyed maps put the value directly under the
//! name; keyed maps nest an object keyed by [`MapKey::write_json`]. An empty map prints nothing at all,
//! but a zeroed histogram prints `[]`.

use super::buckets::{hist_json_bounds, hist_rows, lhist_rows, LhistInts};
use super::map::{keep_top, sort_by_average, sort_by_total, sort_values, LhistParams, MapData, MapDump};
use super::value::{json_escape_into, MapKey};

/// `--json-stacks=frames` for a map keyed by stacks: JSON object keys can only be strings, so the
/// entries become an array of `{"key": [part, ...], "value": v}` with stacks as frame arrays.
fn write_entries_with_frames(map: &MapDump, values: &[(MapKey, super::Value)], top: u32, div: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\": \"map\", \"data\": {\"");
    json_escape_into(map.name.as_bytes(), out);
    out.extend_from_slice(b"\": [");
    for (i, (key, value)) in keep_top(sort_values(values), top).into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"{\"key\": [");
        for (j, part) in key.0.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            part.write_json(out);
        }
        out.extend_from_slice(b"], \"value\": ");
        value.divided(div).write_json(out);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}}\n");
}

/// Appends `map` as `print(@m, top, div)` shows it with `-f json` (`top` 0 = all, `div` 0 = 1).
pub fn write_map_json(map: &MapDump, top: u32, div: u32, out: &mut Vec<u8>) {
    let div = div.max(1);
    if let MapData::Values(values) = &map.data {
        if values.iter().any(|(k, _)| k.0.iter().any(|p| matches!(p, super::Value::Stack(s) if s.json_frames))) {
            write_entries_with_frames(map, values, top, div, out);
            return;
        }
    }
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let (kind, keyed) = match &map.data {
        MapData::Values(values) => {
            for (key, value) in keep_top(sort_values(values), top) {
                let mut entry = entry_key(key);
                value.divided(div).write_json(&mut entry);
                entries.push(entry);
            }
            ("map", values.first().map(|(k, _)| !k.is_empty()))
        }
        MapData::Avg(states) => {
            for (key, state) in keep_top(sort_by_average(states), top) {
                let mut entry = entry_key(key);
                let average = state.average().wrapping_div(i64::from(div));
                entry.extend_from_slice(average.to_string().as_bytes());
                entries.push(entry);
            }
            ("stats", states.first().map(|(k, _)| !k.is_empty()))
        }
        MapData::Stats(states) => {
            for (key, state) in sort_by_average(states) {
                let mut entry = entry_key(key);
                let object = format!(
                    "{{\"count\": {}, \"average\": {}, \"total\": {}}}",
                    state.count,
                    state.average(),
                    state.total
                );
                entry.extend_from_slice(object.as_bytes());
                entries.push(entry);
            }
            ("stats", states.first().map(|(k, _)| !k.is_empty()))
        }
        MapData::Hist(hists) => {
            for (key, counts) in keep_top(sort_by_total(hists), top) {
                let mut entry = entry_key(key);
                write_hist_buckets(counts, div, &mut entry);
                entries.push(entry);
            }
            ("hist", hists.first().map(|(k, _)| !k.is_empty()))
        }
        MapData::Lhist(params, hists) => {
            for (key, counts) in keep_top(sort_by_total(hists), top) {
                let mut entry = entry_key(key);
                write_lhist_buckets(counts, *params, &mut entry);
                entries.push(entry);
            }
            ("hist", hists.first().map(|(k, _)| !k.is_empty()))
        }
    };
    // `None`: the map has no entries, and bpftrace prints no line for it.
    let Some(keyed) = keyed else { return };
    out.extend_from_slice(format!("{{\"type\": \"{kind}\", \"data\": {{\"").as_bytes());
    json_escape_into(map.name.as_bytes(), out);
    out.extend_from_slice(b"\": ");
    if keyed {
        out.push(b'{');
    }
    out.extend_from_slice(&entries.join(&b", "[..]));
    if keyed {
        out.push(b'}');
    }
    out.extend_from_slice(b"}}\n");
}

/// `"key": ` for a keyed map, nothing for an unkeyed one.
fn entry_key(key: &MapKey) -> Vec<u8> {
    let mut entry = Vec::new();
    if !key.is_empty() {
        key.write_json(&mut entry);
        entry.extend_from_slice(b": ");
    }
    entry
}

/// `[{"min": 2, "max": 3, "count": 1}, …]`, or `[]` when every bucket is empty.
fn write_hist_buckets(counts: &[u64], div: u32, out: &mut Vec<u8>) {
    let rows = hist_rows(counts);
    let buckets = rows.map(|rows| {
        (rows.first..=rows.last)
            .map(|i| {
                let count = counts.get(i).copied().unwrap_or(0) / u64::from(div);
                (hist_json_bounds(i), count)
            })
            .collect::<Vec<_>>()
    });
    write_buckets(&buckets.unwrap_or_default(), out);
}

/// Like [`write_hist_buckets`] for `lhist()`, whose counts bpftrace never divides.
fn write_lhist_buckets(counts: &[u64], params: LhistParams, out: &mut Vec<u8>) {
    let buckets = LhistInts::new(params.min, params.max, params.step).and_then(|ints| {
        lhist_rows(counts, ints.buckets).map(|rows| {
            (rows.first..=rows.last)
                .map(|i| (ints.json_bounds(i), counts.get(i).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
        })
    });
    write_buckets(&buckets.unwrap_or_default(), out);
}

type Bucket = ((Option<i64>, Option<i64>), u64);

fn write_buckets(buckets: &[Bucket], out: &mut Vec<u8>) {
    let objects: Vec<String> = buckets
        .iter()
        .map(|((min, max), count)| {
            let min = min.map(|min| format!("\"min\": {min}, ")).unwrap_or_default();
            let max = max.map(|max| format!("\"max\": {max}, ")).unwrap_or_default();
            format!("{{{min}{max}\"count\": {count}}}")
        })
        .collect();
    out.push(b'[');
    out.extend_from_slice(objects.join(", ").as_bytes());
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::value::Value;

    fn render(map: &MapDump) -> String {
        let mut out = Vec::new();
        write_map_json(map, 0, 0, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn empty_maps_print_nothing() {
        let map = MapDump { name: "@m".into(), data: MapData::Values(vec![]) };
        assert_eq!(render(&map), "");
    }

    #[test]
    fn keyed_and_unkeyed_values() {
        let map = MapDump {
            name: "@t".into(),
            data: MapData::Values(vec![(
                MapKey(vec![Value::str("a"), Value::Int(1)]),
                Value::Tuple(vec![Value::Int(3), Value::str("z")]),
            )]),
        };
        assert_eq!(render(&map), "{\"type\": \"map\", \"data\": {\"@t\": {\"a,1\": [3,\"z\"]}}}\n");
        let map = MapDump { name: "@c".into(), data: MapData::Values(vec![(MapKey::none(), Value::UInt(1))]) };
        assert_eq!(render(&map), "{\"type\": \"map\", \"data\": {\"@c\": 1}}\n");
    }

    #[test]
    fn zeroed_hist_is_an_empty_array() {
        let map = MapDump { name: "@h".into(), data: MapData::Hist(vec![(MapKey::none(), vec![0; 65])]) };
        assert_eq!(render(&map), "{\"type\": \"hist\", \"data\": {\"@h\": []}}\n");
    }
}
