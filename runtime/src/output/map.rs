//! The per-map data model handed to the printers, and bpftrace 0.17's order of entries in a map.
//!
//! # Order within a map (what `print(@m)` and the exit dump show)
//!
//! | map kind | order | ties |
//! |---|---|---|
//! | integer values (`count`, `sum`, `min`, `max`, `@x = 5`) | ascending value, signed for [`Value::Int`], unsigned for [`Value::UInt`] | by key (below) |
//! | other values (strings, tuples) | by key (below) | none (keys are unique) |
//! | `avg`, `stats` | ascending integer average `total / count` (0 when `count` is 0) | by raw key bytes |
//! | `hist`, `lhist` | ascending sum of all bucket counts | by raw key bytes |
//!
//! "By key" is bpftrace's `sort_by_key`: part by part, integers compared as *unsigned* 64-bit (so
//! negative keys come after all positive ones: `0, 1, -5, -1`), strings bytewise (`"" < "a" < "ab"`).
//!
//! "Raw key bytes" is the order of bpftrace's `std::map<std::vector<uint8_t>, …>` which the avg, stats
//! and hist printers iterate before their sort: integers as 8 little-endian bytes (so `0, 256, 1, 2,
//! -1`), strings NUL-padded. bpftrace's `std::sort` is stable for up to 16 entries (libstdc++ uses an
//! insertion sort there), so for those maps this tie order is byte-identical; above 16 entries
//! bpftrace's tie order is unspecified and ours stays deterministic.
//!
//! For value-sorted maps bpftrace starts from the kernel's hash-table iteration order, which depends
//! on a random hash seed: its tie order is nondeterministic, and we break ties by key instead.
//!
//! `print(@m, top)` keeps the last `top` entries of that order (the largest), still ascending;
//! `top` is ignored for `stats` maps (bpftrace warns at compile time) but honoured for `avg`.

use std::cmp::Ordering;

use super::bytes::c_str;
use super::value::{KeyPart, MapKey, Value};

/// Everything the printers need to know about one map: its name (with the `@`) and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDump {
    /// The map's name as written, e.g. `@` or `@bytes`.
    pub name: String,
    /// The entries, in any order; the printers sort them.
    pub data: MapData,
}

/// A map's entries, by aggregation kind. Unkeyed maps have one entry with [`MapKey::none`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapData {
    /// Plain values and the single-number aggregations: `count()` ([`Value::UInt`]), `sum()`,
    /// `min()` (signed), `max()` (bpftrace prints it unsigned), `@x = expr`.
    Values(Vec<(MapKey, Value)>),
    /// `avg()`: prints the integer average.
    Avg(Vec<(MapKey, AvgState)>),
    /// `stats()`: prints count, average and total.
    Stats(Vec<(MapKey, AvgState)>),
    /// `hist()`: bucket counts indexed as documented in [`super::buckets::hist_index`]; the vector
    /// may be shorter than [`super::buckets::HIST_BUCKETS`] (missing buckets are zero).
    Hist(Vec<(MapKey, Vec<u64>)>),
    /// `lhist()`: bucket counts indexed as documented in [`super::buckets::lhist_index`].
    Lhist(LhistParams, Vec<(MapKey, Vec<u64>)>),
}

/// The two per-key slots of an `avg()`/`stats()` map, summed across CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AvgState {
    /// Slot 0: how many values were added.
    pub count: i64,
    /// Slot 1: their sum.
    pub total: i64,
}

impl AvgState {
    /// The integer average bpftrace prints: `total / count` truncated toward zero, 0 if empty.
    pub fn average(self) -> i64 {
        if self.count == 0 {
            0
        } else {
            self.total.wrapping_div(self.count)
        }
    }
}

/// The constant arguments of `lhist(v, min, max, step)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LhistParams {
    pub min: i64,
    pub max: i64,
    pub step: i64,
}

/// Sorts entries whose values are plain [`Value`]s: by value when they are integers, else by key.
pub(crate) fn sort_values(entries: &[(MapKey, Value)]) -> Vec<&(MapKey, Value)> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_by(|a, b| cmp_keys(&a.0, &b.0));
    if entries.iter().all(|(_, v)| v.is_integer()) {
        sorted.sort_by(|a, b| a.1.cmp_numeric(&b.1));
    }
    sorted
}

/// Sorts `avg()`/`stats()` entries by average, ties in raw key byte order.
pub(crate) fn sort_by_average(entries: &[(MapKey, AvgState)]) -> Vec<&(MapKey, AvgState)> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_by(|a, b| cmp_raw_keys(&a.0, &b.0));
    sorted.sort_by_key(|(_, state)| state.average());
    sorted
}

/// Sorts histogram entries by total count, ties in raw key byte order. bpftrace sums the counts
/// into an `int64_t` and compares them as `uint64_t`; wrapping addition in `u64` matches both.
pub(crate) fn sort_by_total(entries: &[(MapKey, Vec<u64>)]) -> Vec<&(MapKey, Vec<u64>)> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_by(|a, b| cmp_raw_keys(&a.0, &b.0));
    sorted.sort_by_key(|(_, counts)| counts.iter().fold(0u64, |sum, &c| sum.wrapping_add(c)));
    sorted
}

/// Keeps the last `top` of the sorted entries (all of them when `top` is 0).
pub(crate) fn keep_top<T>(mut sorted: Vec<T>, top: u32) -> Vec<T> {
    let top = usize::try_from(top).unwrap_or(usize::MAX);
    if top > 0 && sorted.len() > top {
        sorted.drain(..sorted.len() - top);
    }
    sorted
}

/// bpftrace's `sort_by_key` order, see the module documentation.
fn cmp_keys(a: &MapKey, b: &MapKey) -> Ordering {
    a.0.iter().zip(&b.0).map(|(x, y)| cmp_key_parts(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

fn cmp_key_parts(a: &KeyPart, b: &KeyPart) -> Ordering {
    match (int_bits(a), int_bits(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => match (a, b) {
            (Value::Str(x), Value::Str(y)) => c_str(x).cmp(c_str(y)),
            // bpftrace leaves other key types unsorted; compare tuples field by field to stay
            // deterministic.
            (Value::Tuple(x), Value::Tuple(y)) => cmp_keys(&MapKey(x.clone()), &MapKey(y.clone())),
            _ => Ordering::Equal,
        },
    }
}

/// The order of the keys' bytes in the BPF map: integers little-endian, strings NUL-padded.
fn cmp_raw_keys(a: &MapKey, b: &MapKey) -> Ordering {
    a.0.iter().zip(&b.0).map(|(x, y)| cmp_raw_parts(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

fn cmp_raw_parts(a: &KeyPart, b: &KeyPart) -> Ordering {
    match (int_bits(a), int_bits(b)) {
        (Some(x), Some(y)) => x.to_le_bytes().cmp(&y.to_le_bytes()),
        _ => match (a, b) {
            // Equal-size NUL-padded buffers compare like their C strings.
            (Value::Str(x), Value::Str(y)) => c_str(x).cmp(c_str(y)),
            (Value::Stack(x), Value::Stack(y)) => x.cmp(y),
            (Value::Tuple(x), Value::Tuple(y)) => cmp_raw_keys(&MapKey(x.clone()), &MapKey(y.clone())),
            _ => Ordering::Equal,
        },
    }
}

/// An integer key part's 64 bits as stored in the key.
fn int_bits(part: &KeyPart) -> Option<u64> {
    match part {
        Value::Int(v) => Some(u64::from_ne_bytes(v.to_ne_bytes())),
        Value::UInt(v) | Value::Pointer(v) | Value::KernelPointer(v) => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: i64) -> MapKey {
        MapKey(vec![Value::Int(i)])
    }

    fn keys_of<T>(sorted: &[&(MapKey, T)]) -> Vec<MapKey> {
        sorted.iter().map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn integer_keys_sort_unsigned() {
        let entries: Vec<_> = [-1, 1, 0, -5].iter().map(|&i| (key(i), Value::str("v"))).collect();
        assert_eq!(keys_of(&sort_values(&entries)), vec![key(0), key(1), key(-5), key(-1)]);
    }

    #[test]
    fn integer_values_sort_by_value_then_key() {
        let entries = vec![(key(3), Value::Int(2)), (key(1), Value::Int(-7)), (key(2), Value::Int(2))];
        assert_eq!(keys_of(&sort_values(&entries)), vec![key(1), key(2), key(3)]);
    }

    #[test]
    fn averages_tie_in_raw_key_order() {
        let state = AvgState { count: 1, total: 5 };
        let entries: Vec<_> = [1, 256, 2, -1, 0].iter().map(|&i| (key(i), state)).collect();
        assert_eq!(keys_of(&sort_by_average(&entries)), vec![key(0), key(256), key(1), key(2), key(-1)]);
    }

    #[test]
    fn top_keeps_the_largest() {
        assert_eq!(keep_top(vec![1, 2, 3], 2), vec![2, 3]);
        assert_eq!(keep_top(vec![1, 2, 3], 0), vec![1, 2, 3]);
        assert_eq!(keep_top(vec![1, 2, 3], 5), vec![1, 2, 3]);
    }

    #[test]
    fn average_truncates_toward_zero() {
        assert_eq!(AvgState { count: 2, total: -7 }.average(), -3);
        assert_eq!(AvgState { count: 0, total: 9 }.average(), 0);
    }
}
