//! Printing maps, printf lines and events in bpftrace 0.17 text and JSON formats.
//!
//! This module is a pure formatting library: it turns already-read, already-reduced data (per-CPU
//! values summed or folded by the map reader) into the exact bytes bpftrace v0.17.0 prints. It does
//! no IO other than writing to a caller's `&mut dyn Write`. Output is bytes, not `String`, because
//! strings read from the kernel need not be UTF-8 and text mode prints them raw.
//!
//! Files:
//! - [`bytes`]: C strings cut at their NUL and escaped buffers, shared by values and printf.
//! - [`value`]: [`Value`] and [`MapKey`], their text and JSON forms, JSON string escaping.
//! - [`map`]: the per-map data model ([`MapDump`], [`MapData`]) and the ordering rules.
//! - [`buckets`]: the hist/lhist bucket index scheme (shared with the BPF code generator) and labels.
//! - [`text`], [`json`]: rendering one map in each format.
//! - [`events`]: the banner, lost events, `print(value)`, printf/time/cat/join lines, the exit dump.
//! - [`helper_error`]: the reports of failed helper calls (`-k`, `-kk`).
//! - [`printf`]: the printf engine (glibc `snprintf` semantics per conversion), rendering formats
//!   parsed by `compiler::format`.
//! - [`time`]: `time(fmt)` through `localtime_r` + `strftime`.
//!
//! # Kernel-side bucket indices (the BPF code generator must produce exactly these)
//!
//! bpftrace 0.17 keys histogram maps by the user key followed by a `u64` bucket index, with the
//! bucket's count as the value. Whatever layout rbt's maps use, the reader hands the printers one
//! `Vec<u64>` of counts per user key, indexed by the bucket index below.
//!
//! `hist(v)` (bpftrace 0.17 has no `k` argument), `v` taken as a signed 64-bit integer (so an
//! unsigned value of 2^63 or more counts as negative):
//! - `v < 0` → index 0, printed `(..., 0)`;
//! - `v == 0` → index 1, printed `[0]`;
//! - `v >= 1` → index `2 + min(floor(log2(v)), 31)`: index 2 is `[1]`, 3 is `[2, 4)`, 4 is `[4, 8)`,
//!   …, 33 is `[2G, 4G)`. bpftrace computes `floor(log2)` with five shift steps (16, 8, 4, 2, 1), so
//!   every value of 2^31 or more lands in index 33, which is labelled `[2G, 4G)` even for 2^40.
//!   See [`buckets::hist_index`].
//!
//! `lhist(v, min, max, step)`, all signed 64-bit, with `buckets = (max - min) / step`:
//! - `v < min` → index 0, printed `(..., min)`;
//! - `v > max` → index `1 + (max - min) / step`;
//! - otherwise → index `1 + (v - min) / step` (unsigned division).
//!
//!   Index `buckets + 1` prints as `[max, ...)`. When `(max - min)` is not a multiple of `step`,
//!   values in `[min + buckets*step, max]` also land there (e.g. `lhist(9, 0, 10, 3)` → `[10, ...)`).
//!   See [`buckets::lhist_index`].
//!
//! `avg()`/`stats()`: the printers only need the count and the total, summed across CPUs as signed
//! 64-bit ([`AvgState`]). bpftrace 0.17 keeps them under two keys (user key + `u64` slot 0 for the
//! count, slot 1 for the total); rbt's maps may store them differently.
//!
//! # Other 0.17 behaviour the map reader must mirror (not formatting, recorded here for the runtime)
//! - An unkeyed `count()` map is a per-CPU array, so it always exists and prints `@c: 0` even if
//!   never incremented; `clear()` on it zeroes instead of deleting, and `delete()` zeroes the
//!   current CPU's value. Every other aggregation is a per-CPU hash: `sum(0)` prints `0`.
//! - `zero()` keeps keys and zeroes values; `clear()` deletes keys. Both print differently (see the
//!   `zero` and `clear` goldens in `testdata/`).
//! - `max()` starts from 0 in the kernel, so `max(-5)` on a new key never creates the key.
//!   `min()` stores `0xffffffff - v` the same way and prints it back signed (see runtime/src/maps.rs).
//! - `delete(@s)` on an unkeyed stats/avg/hist map deletes only bucket 0 (the count, the negative
//!   values), since the key is the bucket alone.

#![allow(dead_code)] // used by the runtime once wired

pub mod buckets;
mod bytes;
pub mod events;
mod helper_error;
pub mod json;
pub mod map;
pub mod printf;
pub mod text;
pub mod time;
pub mod value;

#[cfg(test)]
mod golden_tests;

// Re-exports are the module's API; not every item is wired into the runtime yet.
pub(crate) use bytes::c_str;
#[allow(unused_imports)]
pub use events::{
    write_all_maps, write_attached_probes, write_exit_dump, write_lost_events, write_map, write_message, write_value,
    MessageKind,
};
pub use helper_error::write_helper_error;
#[allow(unused_imports)]
pub use map::{AvgState, LhistParams, MapData, MapDump};
#[allow(unused_imports)]
pub use printf::{format_printf, render_printf, PrintfArg};
#[allow(unused_imports)]
pub use time::{format_boot_time, format_time, DEFAULT_TIME_FORMAT};
#[allow(unused_imports)]
pub use value::{json_escape, KeyPart, MapKey, StackText, Value};

/// The `-f` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// bpftrace's default human-readable output.
    Text,
    /// `-f json`: one JSON object per line (plus the bare blank lines 0.17 prints before the exit
    /// dump).
    Json,
}
