//! Reading user maps out of the kernel into the printers' data model: iterating keys, summing
//! per-CPU values, grouping histogram buckets, and clearing or zeroing maps.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;

use crate::bpf_sys;
use crate::stacks::Stacks;
use crate::output::{AvgState, LhistParams, MapData, MapDump, MapKey, Value};
use compiler::hir::MapDecl;
use compiler::program::BpfMap;
use compiler::types::{align8, MapValue, Type};

/// One user map as loaded: its declaration, its BPF map, and the map's file descriptor.
pub struct LoadedMap<'a> {
    pub decl: &'a MapDecl,
    pub bpf: &'a BpfMap,
    pub fd: RawFd,
    pub ncpus: usize,
    /// `zero()` ran on an array-backed map: its zero values are elements, not absence.
    pub zeroed: bool,
    /// For keys and values that are stacks.
    pub stacks: &'a Stacks,
}

impl LoadedMap<'_> {
    fn per_cpu(&self) -> bool {
        self.decl.value.is_aggregation()
    }

    fn array_backed(&self) -> bool {
        self.decl.key.is_empty() && self.decl.value.is_aggregation()
    }

    /// Raw (key bytes, value bytes per CPU) of every element.
    fn entries(&self) -> io::Result<Vec<(Vec<u8>, Vec<Vec<u8>>)>> {
        let slot = align8(self.bpf.value_size) as usize;
        let copies = if self.per_cpu() { self.ncpus } else { 1 };
        let keys: Vec<Vec<u8>> = if self.array_backed() {
            (0..self.bpf.max_entries).map(|i| i.to_le_bytes().to_vec()).collect()
        } else {
            bpf_sys::keys(self.fd, self.bpf.key_size as usize)?
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let mut buf = vec![0u8; slot * copies];
            if bpf_sys::lookup(self.fd, &key, &mut buf)? {
                let per_cpu = buf.chunks(slot).map(<[u8]>::to_vec).collect();
                out.push((key, per_cpu));
            }
        }
        Ok(out)
    }

    /// Reads the map for printing.
    pub fn dump(&self) -> io::Result<MapDump> {
        let name = self.decl.display_name();
        let entries = self.entries()?;
        let user_key = |key: &[u8]| -> MapKey {
            if self.array_backed() || self.decl.key.is_empty() {
                return MapKey::none();
            }
            let mut parts = Vec::new();
            let mut off = 0usize;
            for ty in &self.decl.key {
                parts.push(decode(ty, &key[off..], self.stacks));
                off += align8(ty.size()) as usize;
            }
            MapKey(parts)
        };
        let sum = |cpus: &[Vec<u8>], off: usize| -> i64 {
            cpus.iter().map(|c| read_u64(c, off) as i64).fold(0i64, i64::wrapping_add)
        };
        let data = match &self.decl.value {
            MapValue::Plain(ty) => MapData::Values(
                entries.iter().map(|(k, cpus)| (user_key(k), decode(ty, &cpus[0], self.stacks))).collect(),
            ),
            MapValue::Count => MapData::Values(
                entries
                    .iter()
                    // bpftrace 0.17 prints an unkeyed count() even when it never fired (`@c: 0`).
                    .map(|(k, cpus)| (user_key(k), Value::UInt(sum(cpus, 0) as u64)))
                    .collect(),
            ),
            MapValue::Sum { signed } => MapData::Values(
                entries
                    .iter()
                    // Only an unkeyed count() always exists in bpftrace 0.17; an unused sum() is empty.
                    .filter(|(_, cpus)| !self.array_backed() || self.zeroed || sum(cpus, 0) != 0)
                    .map(|(k, cpus)| {
                        let v = sum(cpus, 0);
                        (user_key(k), if *signed { Value::Int(v) } else { Value::UInt(v as u64) })
                    })
                    .collect(),
            ),
            MapValue::Min { signed } | MapValue::Max { signed } => {
                let is_min = matches!(self.decl.value, MapValue::Min { .. });
                let mut values = Vec::new();
                for (k, cpus) in &entries {
                    let set: Vec<i64> = cpus.iter().filter(|c| read_u64(c, 8) != 0).map(|c| read_u64(c, 0) as i64).collect();
                    let best = if *signed {
                        if is_min { set.iter().min().copied() } else { set.iter().max().copied() }
                    } else if is_min {
                        set.iter().map(|v| *v as u64).min().map(|v| v as i64)
                    } else {
                        set.iter().map(|v| *v as u64).max().map(|v| v as i64)
                    };
                    if let Some(v) = best {
                        // bpftrace 0.17 prints max() unsigned and min() as its argument's signedness.
                        let value = if *signed && is_min { Value::Int(v) } else { Value::UInt(v as u64) };
                        values.push((user_key(k), value));
                    }
                }
                MapData::Values(values)
            }
            MapValue::Avg { .. } | MapValue::Stats { .. } => {
                let states: Vec<(MapKey, AvgState)> = entries
                    .iter()
                    .map(|(k, cpus)| (user_key(k), AvgState { count: sum(cpus, 0), total: sum(cpus, 8) }))
                    .filter(|(_, s)| s.count != 0 || !self.array_backed() || self.zeroed)
                    .collect();
                if matches!(self.decl.value, MapValue::Avg { .. }) {
                    MapData::Avg(states)
                } else {
                    MapData::Stats(states)
                }
            }
            MapValue::Hist | MapValue::Lhist { .. } => {
                let user_size = if self.array_backed() { 0 } else { self.bpf.key_size as usize - 8 };
                let mut groups: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
                for (k, cpus) in &entries {
                    let (user, bucket) = if self.array_backed() {
                        (Vec::new(), u32::from_le_bytes([k[0], k[1], k[2], k[3]]) as usize)
                    } else {
                        (k[..user_size].to_vec(), read_u64(k, user_size) as usize)
                    };
                    let count = sum(cpus, 0) as u64;
                    // A hash element with a zero count was zeroed and still prints; an array
                    // bucket at zero was never used.
                    if count == 0 && self.array_backed() {
                        continue;
                    }
                    let buckets = groups.entry(user).or_default();
                    if buckets.len() <= bucket {
                        buckets.resize(bucket + 1, 0);
                    }
                    buckets[bucket] += count;
                }
                if groups.is_empty() && self.array_backed() && self.zeroed {
                    groups.insert(Vec::new(), Vec::new());
                }
                let entries: Vec<(MapKey, Vec<u64>)> =
                    groups.into_iter().map(|(k, b)| (if k.is_empty() { MapKey::none() } else { user_key(&k) }, b)).collect();
                match self.decl.value {
                    MapValue::Lhist { min, max, step } => MapData::Lhist(LhistParams { min, max, step }, entries),
                    _ => MapData::Hist(entries),
                }
            }
        };
        Ok(MapDump { name, data })
    }

    /// `clear(@m)`: removes every key (array-backed maps are zeroed).
    pub fn clear(&self) -> io::Result<()> {
        if self.array_backed() {
            return self.zero();
        }
        for key in bpf_sys::keys(self.fd, self.bpf.key_size as usize)? {
            bpf_sys::delete(self.fd, &key)?;
        }
        Ok(())
    }

    /// `delete(@m[key])` from outside a probe: `user_key` is the key laid out as in the map
    /// (each part 8-byte aligned). A histogram's key is followed by its bucket, so every bucket
    /// of the key goes. Returns whether anything was deleted.
    pub fn delete_user_key(&self, user_key: &[u8]) -> io::Result<bool> {
        if self.array_backed() {
            return Ok(false);
        }
        let mut deleted = false;
        for key in bpf_sys::keys(self.fd, self.bpf.key_size as usize)? {
            if key.starts_with(user_key) {
                bpf_sys::delete(self.fd, &key)?;
                deleted = true;
            }
        }
        Ok(deleted)
    }

    /// How many distinct user keys the map holds.
    pub fn key_count(&self) -> io::Result<usize> {
        Ok(match self.dump()?.data {
            crate::output::MapData::Values(v) => v.len(),
            crate::output::MapData::Avg(v) | crate::output::MapData::Stats(v) => v.len(),
            crate::output::MapData::Hist(v) | crate::output::MapData::Lhist(_, v) => v.len(),
        })
    }

    /// `zero(@m)`: keeps the keys, sets every value to zero.
    pub fn zero(&self) -> io::Result<()> {
        let slot = align8(self.bpf.value_size) as usize;
        let copies = if self.per_cpu() { self.ncpus } else { 1 };
        let zeros = vec![0u8; slot * copies];
        let keys: Vec<Vec<u8>> = if self.array_backed() {
            (0..self.bpf.max_entries).map(|i| i.to_le_bytes().to_vec()).collect()
        } else {
            bpf_sys::keys(self.fd, self.bpf.key_size as usize)?
        };
        for key in keys {
            bpf_sys::update(self.fd, &key, &zeros)?;
        }
        Ok(())
    }
}

pub fn read_u64(bytes: &[u8], off: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(src) = bytes.get(off..off + 8) {
        word.copy_from_slice(src);
    }
    u64::from_le_bytes(word)
}

/// Decodes a value laid out by the compiler (integers 8 bytes, strings padded, tuples 8-aligned,
/// stacks as an id and a pid).
pub fn decode(ty: &Type, bytes: &[u8], stacks: &Stacks) -> Value {
    match ty {
        Type::Int { signed: true, .. } => Value::Int(read_u64(bytes, 0) as i64),
        Type::Int { .. } | Type::Pointer { .. } => Value::UInt(read_u64(bytes, 0)),
        Type::Str { len } => {
            let raw = &bytes[..(*len as usize).min(bytes.len())];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            Value::Str(raw[..end].to_vec())
        }
        Type::Tuple(fields) => {
            let offsets = Type::tuple_offsets(fields);
            Value::Tuple(
                fields
                    .iter()
                    .zip(offsets)
                    .map(|(f, off)| decode(f, bytes.get(off as usize..).unwrap_or(&[]), stacks))
                    .collect(),
            )
        }
        Type::Stack(st) => Value::Stack(stacks.text(st, read_u64(bytes, 0) as i64, read_u64(bytes, 8) as u32)),
        Type::Args | Type::None => Value::UInt(0),
    }
}
