//! Reading user maps out of the kernel into the printers' data model: iterating keys, summing
//! per-CPU values, grouping histogram buckets, and clearing or zeroing maps.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;

use crate::output::{AvgState, LhistParams, MapData, MapDump, MapKey, Value};
use crate::stacks::Stacks;
use compiler::hir::MapDecl;
use compiler::program::BpfMap;
use compiler::types::{align8, MapValue, Type};
use runtime::kernel::sys;

/// An element's key bytes and its value bytes, one per CPU for per-CPU maps.
type RawEntry = (Vec<u8>, Vec<Vec<u8>>);

/// One user map as loaded: its declaration, its BPF map, and the map's file descriptor.
///
/// The layout is the compiler's (see compiler/src/lower/maps.rs), which is bpftrace 0.17's: an
/// unkeyed `count()` is a one-element per-CPU array, other aggregations per-CPU hashes holding one
/// u64 per CPU, with a trailing u64 bucket in the key of histograms and of `avg()`/`stats()`
/// (bucket 0 the count, 1 the total).
pub struct LoadedMap<'a> {
    pub decl: &'a MapDecl,
    pub bpf: &'a BpfMap,
    pub fd: RawFd,
    pub ncpus: usize,
    /// `zero()` ran on the map. Zeroed elements now stay in the kernel's maps, so printing does
    /// not need to know.
    #[allow(dead_code)] // Still set by session.rs, which is being rewritten; drop it there.
    pub zeroed: bool,
    /// For keys and values that are stacks.
    pub stacks: &'a Stacks,
}

impl LoadedMap<'_> {
    fn per_cpu(&self) -> bool {
        self.decl.value.is_aggregation()
    }

    fn array_backed(&self) -> bool {
        self.decl.key.is_empty() && self.decl.value == MapValue::Count
    }

    /// Bytes of the key before the bucket (all of it for maps without buckets).
    fn user_key_size(&self) -> usize {
        let size = self.bpf.key_size as usize;
        if self.decl.value.is_bucketed() {
            size - 8
        } else {
            size
        }
    }

    /// Every key: the array's indices or the hash's keys.
    fn keys(&self) -> io::Result<Vec<Vec<u8>>> {
        if self.array_backed() {
            Ok((0..self.bpf.max_entries).map(|i| i.to_le_bytes().to_vec()).collect())
        } else {
            Ok(sys::keys(self.fd, self.bpf.key_size as usize)?)
        }
    }

    /// Every element as it is in the kernel.
    fn entries(&self) -> io::Result<Vec<RawEntry>> {
        let slot = align8(self.bpf.value_size) as usize;
        let copies = if self.per_cpu() { self.ncpus } else { 1 };
        let mut out = Vec::new();
        for key in self.keys()? {
            let mut buf = vec![0u8; slot * copies];
            if sys::lookup(self.fd, &key, &mut buf)? {
                let per_cpu = buf.chunks(slot).map(<[u8]>::to_vec).collect();
                out.push((key, per_cpu));
            }
        }
        Ok(out)
    }

    /// The printed key of an element, from the user part of its BPF key.
    fn user_key(&self, key: &[u8]) -> MapKey {
        if self.decl.key.is_empty() {
            return MapKey::none();
        }
        let mut parts = Vec::new();
        let mut off = 0usize;
        for ty in &self.decl.key {
            parts.push(decode(ty, &key[off..], self.stacks));
            off += align8(ty.size()) as usize;
        }
        MapKey(parts)
    }

    /// The elements of a bucketed map grouped by user key: per bucket, the sum over CPUs (or
    /// `None` for a bucket without an element), in user key byte order.
    fn bucket_groups(&self, entries: &[RawEntry]) -> Vec<(MapKey, Vec<Option<i64>>)> {
        let user_size = self.user_key_size();
        let mut groups: BTreeMap<Vec<u8>, Vec<Option<i64>>> = BTreeMap::new();
        for (k, cpus) in entries {
            let bucket = usize::try_from(read_u64(k, user_size)).unwrap_or(usize::MAX);
            let buckets = groups.entry(k[..user_size].to_vec()).or_default();
            if let Some(needed) = bucket.checked_add(1).filter(|n| *n > buckets.len()) {
                buckets.resize(needed, None);
            }
            if let Some(slot) = buckets.get_mut(bucket) {
                *slot = Some(sum_cpus(cpus));
            }
        }
        groups.into_iter().map(|(k, b)| (self.user_key(&k), b)).collect()
    }

    /// Reads the map for printing.
    pub fn dump(&self) -> io::Result<MapDump> {
        let name = self.decl.display_name();
        let entries = self.entries()?;
        let data = match &self.decl.value {
            MapValue::Plain(ty) => MapData::Values(
                entries.iter().map(|(k, cpus)| (self.user_key(k), decode(ty, &cpus[0], self.stacks))).collect(),
            ),
            // An unkeyed count() is an array element, so it prints even if never counted (`@c: 0`).
            MapValue::Count => MapData::Values(
                entries.iter().map(|(k, cpus)| (self.user_key(k), Value::UInt(sum_cpus(cpus) as u64))).collect(),
            ),
            MapValue::Sum { signed } => MapData::Values(
                entries
                    .iter()
                    .map(|(k, cpus)| {
                        let v = sum_cpus(cpus);
                        (self.user_key(k), if *signed { Value::Int(v) } else { Value::UInt(v as u64) })
                    })
                    .collect(),
            ),
            // bpftrace 0.17's min_value(): the largest stored `0xffffffff - v` of any CPU (0 for
            // none), turned back into v, printed signed whatever the argument's sign.
            MapValue::Min { .. } => MapData::Values(
                entries
                    .iter()
                    .map(|(k, cpus)| {
                        let best = cpus.iter().map(|c| read_u64(c, 0) as i64).fold(0, i64::max);
                        let min = if best == 0 { 0 } else { 0xffff_ffff_i64.wrapping_sub(best) };
                        (self.user_key(k), Value::Int(min))
                    })
                    .collect(),
            ),
            // max_value(): the largest value of any CPU compared unsigned, printed unsigned.
            MapValue::Max { .. } => MapData::Values(
                entries
                    .iter()
                    .map(|(k, cpus)| {
                        (self.user_key(k), Value::UInt(cpus.iter().map(|c| read_u64(c, 0)).fold(0, u64::max)))
                    })
                    .collect(),
            ),
            // A key prints when either of its buckets exists: after an unkeyed `delete()` only
            // the total is left and the count reads 0.
            MapValue::Avg { .. } | MapValue::Stats { .. } => {
                let states: Vec<(MapKey, AvgState)> = self
                    .bucket_groups(&entries)
                    .into_iter()
                    .map(|(k, b)| {
                        let at = |i: usize| b.get(i).copied().flatten().unwrap_or(0);
                        (k, AvgState { count: at(0), total: at(1) })
                    })
                    .collect();
                if matches!(self.decl.value, MapValue::Avg { .. }) {
                    MapData::Avg(states)
                } else {
                    MapData::Stats(states)
                }
            }
            MapValue::Hist | MapValue::Lhist { .. } => {
                let groups: Vec<(MapKey, Vec<u64>)> = self
                    .bucket_groups(&entries)
                    .into_iter()
                    .map(|(k, b)| (k, b.into_iter().map(|c| c.unwrap_or(0) as u64).collect()))
                    .collect();
                match self.decl.value {
                    MapValue::Lhist { min, max, step } => MapData::Lhist(LhistParams { min, max, step }, groups),
                    _ => MapData::Hist(groups),
                }
            }
        };
        Ok(MapDump { name, data })
    }

    /// What a `count()` or `sum()` map gained since `previous` (its totals per key, as the
    /// last call left them, updated here): each key's growth, for one interval of a continuous
    /// export. The map is not cleared, so no event between two reads is lost; a key the script
    /// cleared starts again from 0, and a count it zeroed from its new total. `None` for other
    /// maps.
    pub fn dump_growth(&self, previous: &mut std::collections::HashMap<Vec<u8>, i64>) -> io::Result<Option<MapDump>> {
        let signed = match self.decl.value {
            MapValue::Count => false,
            MapValue::Sum { signed } => signed,
            _ => return Ok(None),
        };
        let entries = self.entries()?;
        let mut seen = std::collections::HashMap::with_capacity(entries.len());
        let mut grown = Vec::new();
        for (key, cpus) in &entries {
            let total = sum_cpus(cpus);
            let before = previous.get(key).copied().unwrap_or(0);
            // A count only grows: one that fell was zeroed by the script (`zero()`). A signed
            // sum may fall, by what was added.
            let growth = if signed || total >= before { total.wrapping_sub(before) } else { total };
            seen.insert(key.clone(), total);
            if growth != 0 {
                let value = if signed { Value::Int(growth) } else { Value::UInt(growth as u64) };
                grown.push((self.user_key(key), value));
            }
        }
        *previous = seen;
        Ok(Some(MapDump { name: self.decl.display_name(), data: MapData::Values(grown) }))
    }

    /// `clear(@m)`: removes every key (the unkeyed count()'s array element is zeroed).
    pub fn clear(&self) -> io::Result<()> {
        if self.array_backed() {
            return self.zero();
        }
        for key in self.keys()? {
            sys::delete(self.fd, &key)?;
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
        for key in sys::keys(self.fd, self.bpf.key_size as usize)? {
            if key.starts_with(user_key) {
                sys::delete(self.fd, &key)?;
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
        for key in self.keys()? {
            sys::update(self.fd, &key, &zeros)?;
        }
        Ok(())
    }
}

/// A per-CPU u64 summed over the CPUs, wrapping as bpftrace's `int64_t` sums do.
fn sum_cpus(cpus: &[Vec<u8>]) -> i64 {
    cpus.iter().map(|c| read_u64(c, 0) as i64).fold(0i64, i64::wrapping_add)
}

pub fn read_u64(bytes: &[u8], off: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(src) = bytes.get(off..off + 8) {
        word.copy_from_slice(src);
    }
    u64::from_le_bytes(word)
}

/// `ntop()`'s text, as glibc's `inet_ntop` writes it: dotted quad for AF_INET (2), RFC 5952 for
/// AF_INET6 (10), nothing for another family (as bpftrace 0.17).
fn inet_text(family: u64, addr: &[u8]) -> String {
    match (family, addr.len()) {
        (2, 16) => std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
        (10, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(addr);
            std::net::Ipv6Addr::from(octets).to_string()
        }
        _ => String::new(),
    }
}

/// Decodes a kernel struct, array or member as the kernel lays it out: integers at their own
/// width, pointers as bpftrace prints BTF pointers.
fn decode_native(ty: &Type, bytes: &[u8], bitfield: Option<compiler::types::Bitfield>) -> Value {
    match ty {
        Type::Int { bytes: width, signed } => {
            let width = usize::from(*width).min(8);
            let mut word = [0u8; 8];
            let n = bitfield.map_or(width, |bf| bf.bytes() as usize).min(bytes.len());
            word[..n].copy_from_slice(&bytes[..n]);
            let raw = u64::from_le_bytes(word);
            let value = match bitfield {
                Some(bf) => bf.extract(raw, *signed),
                None if *signed && width < 8 => {
                    let shift = 64 - 8 * width as u32;
                    (((raw << shift) as i64) >> shift) as u64
                }
                None => raw,
            };
            if *signed {
                Value::Int(value as i64)
            } else {
                Value::UInt(value)
            }
        }
        Type::Pointer { .. } => Value::KernelPointer(read_u64(bytes, 0)),
        Type::Record(layout) => Value::Record(
            layout
                .fields
                .iter()
                .map(|f| {
                    (f.name.clone(), decode_native(&f.ty, bytes.get(f.offset as usize..).unwrap_or(&[]), f.bitfield))
                })
                .collect(),
        ),
        Type::Array { elem, len } => {
            let size = elem.native_size() as usize;
            Value::Array(
                (0..*len as usize).map(|i| decode_native(elem, bytes.get(i * size..).unwrap_or(&[]), None)).collect(),
            )
        }
        Type::Str { len } => {
            let raw = &bytes[..(*len as usize).min(bytes.len())];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            Value::Str(raw[..end].to_vec())
        }
        _ => Value::UInt(0),
    }
}

/// Decodes a value laid out by the compiler (integers 8 bytes, strings padded, tuples 8-aligned,
/// stacks as an id and a pid).
pub fn decode(ty: &Type, bytes: &[u8], stacks: &Stacks) -> Value {
    match ty {
        Type::Int { signed: true, .. } => Value::Int(read_u64(bytes, 0) as i64),
        Type::Int { .. } => Value::UInt(read_u64(bytes, 0)),
        // bpftrace 0.17 prints a pointer to a known type as an int64, a tracepoint's as a uint64.
        Type::Pointer { target: Some(_), .. } => Value::KernelPointer(read_u64(bytes, 0)),
        Type::Pointer { .. } => Value::Pointer(read_u64(bytes, 0)),
        Type::Record(_) | Type::Array { .. } => decode_native(ty, bytes, None),
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
        Type::MacAddr => {
            Value::Bare(bytes.iter().take(6).map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":").into_bytes())
        }
        Type::Buffer { cap } => {
            let len = (read_u64(bytes, 0) as usize).min(*cap as usize);
            Value::Buffer(bytes.get(8..8 + len).unwrap_or(&[]).to_vec())
        }
        Type::Timestamp(format) => {
            Value::Bare(crate::output::format_boot_time(format, read_u64(bytes, 0)).unwrap_or_default())
        }
        Type::Strerror => Value::Str(crate::system_names::error_text(read_u64(bytes, 0)).into_bytes()),
        Type::Username => Value::Str(crate::system_names::user_name(read_u64(bytes, 0)).into_bytes()),
        Type::CgroupPath(filter) => {
            Value::Str(crate::system_names::cgroup_path(read_u64(bytes, 0), filter).into_bytes())
        }
        Type::Inet => Value::Str(inet_text(read_u64(bytes, 0), bytes.get(8..24).unwrap_or(&[])).into_bytes()),
        Type::Symbol { user } => {
            Value::Str(stacks.symbol_name(*user, read_u64(bytes, 8) as u32, read_u64(bytes, 0)).into_bytes())
        }
        Type::Stack(st) => Value::Stack(stacks.text(st, read_u64(bytes, 0) as i64, read_u64(bytes, 8) as u32)),
        Type::Args | Type::None => Value::UInt(0),
    }
}
