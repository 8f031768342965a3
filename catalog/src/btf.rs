//! The kernel's BTF (`/sys/kernel/btf/vmlinux`) read as the checker needs it: one type at a time
//! by id, struct and function names looked up through an index built on first use. rbt reads the
//! file only when a script uses kernel types (`curtask->…`, casts, `fentry`) or `-l` lists them,
//! so scripts that do not pay nothing at start. `c_dump` writes types back as C.
//!
//! The format is the kernel's `Documentation/bpf/btf.rst`: a header, then type records (each a
//! 12-byte `btf_type` and kind-specific data), then a string section.

use std::collections::HashMap;

use compiler::ktypes::{KField, KFunction, KParam, KType, KTypeId};

mod builder;
mod c_dump;
pub use builder::BtfBuilder;
pub use c_dump::dump_named_types;

const MAGIC: u16 = 0xeb9f;

// BTF kinds (`BTF_KIND_*`).
pub const INT: u32 = 1;
pub const PTR: u32 = 2;
pub const ARRAY: u32 = 3;
pub const STRUCT: u32 = 4;
pub const UNION: u32 = 5;
pub const ENUM: u32 = 6;
pub const FWD: u32 = 7;
pub const TYPEDEF: u32 = 8;
pub const VOLATILE: u32 = 9;
pub const CONST: u32 = 10;
pub const RESTRICT: u32 = 11;
pub const FUNC: u32 = 12;
pub const FUNC_PROTO: u32 = 13;
pub const VAR: u32 = 14;
pub const DATASEC: u32 = 15;
pub const FLOAT: u32 = 16;
pub const DECL_TAG: u32 = 17;
pub const TYPE_TAG: u32 = 18;
pub const ENUM64: u32 = 19;

/// `BTF_INT_SIGNED` and friends, in an INT's encoding byte.
const INT_SIGNED: u32 = 1;
const INT_CHAR: u32 = 2;

/// How deep typedef/const chains and nested anonymous members are followed before rbt gives up
/// on a malformed file.
const MAX_DEPTH: u32 = 32;

/// A parsed BTF blob: the raw bytes and where each type record starts.
pub struct Btf {
    data: Vec<u8>,
    /// Byte offset of type `id`'s record in `data`; index 0 (void) is unused.
    types: Vec<u32>,
    strings: (usize, usize),
    /// `struct NAME`, `union NAME`, `enum NAME`, typedef and base type names to ids.
    names: std::sync::OnceLock<Names>,
    /// Lookups by kind and name already made (see [`Btf::find`]).
    found: std::sync::Mutex<HashMap<(u32, String), Option<KTypeId>>>,
    /// Every enum constant's value, built on the first lookup (see [`Btf::enum_constant`]).
    enumerators: std::sync::OnceLock<HashMap<String, u64>>,
}

#[derive(Default)]
struct Names {
    types: HashMap<String, KTypeId>,
    functions: HashMap<String, KTypeId>,
}

/// One type record's fixed part.
#[derive(Clone, Copy)]
struct Raw {
    at: usize,
    name_off: u32,
    kind: u32,
    vlen: u32,
    kflag: bool,
    /// `size` for ints, records, enums; `type` for pointers, typedefs, modifiers, functions.
    size_or_type: u32,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf").field("bytes", &self.data.len()).field("types", &self.types.len()).finish()
    }
}

impl Btf {
    /// Where the running kernel's BTF is.
    pub const VMLINUX: &'static str = "/sys/kernel/btf/vmlinux";

    /// Parses a BTF blob; the reason when it is not one.
    pub fn parse(data: Vec<u8>) -> Result<Btf, String> {
        let u32_at = |off: usize| -> Result<u32, String> {
            data.get(off..off + 4).map(le32).ok_or_else(|| "truncated header".to_string())
        };
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err("bad magic".into());
        }
        let hdr_len = u32_at(4)? as usize;
        let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
        let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
        let type_start = hdr_len + type_off;
        let type_end = type_start + type_len;
        let str_start = hdr_len + str_off;
        if type_end > data.len() || str_start + str_len > data.len() {
            return Err("sections run past the end of the file".into());
        }
        let mut types = vec![0u32];
        let mut at = type_start;
        while at < type_end {
            if at + 12 > type_end {
                return Err(format!("type record at byte {at} is truncated"));
            }
            types.push(at as u32);
            let info = le32(&data[at + 4..at + 8]);
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let extra = match kind {
                INT | VAR | DECL_TAG => 4,
                ARRAY => 12,
                STRUCT | UNION | DATASEC | ENUM64 => 12 * vlen,
                ENUM | FUNC_PROTO => 8 * vlen,
                PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
                other => return Err(format!("unknown type kind {other} at byte {at}")),
            };
            at += 12 + extra;
        }
        Ok(Btf {
            data,
            types,
            strings: (str_start, str_len),
            names: Default::default(),
            found: Default::default(),
            enumerators: Default::default(),
        })
    }

    fn u32_at(&self, off: usize) -> u32 {
        le32(&self.data[off..off + 4])
    }

    fn raw(&self, id: KTypeId) -> Option<Raw> {
        let at = *self.types.get(id as usize).filter(|_| id != 0)? as usize;
        let info = self.u32_at(at + 4);
        Some(Raw {
            at,
            name_off: self.u32_at(at),
            kind: (info >> 24) & 0x1f,
            vlen: info & 0xffff,
            kflag: info >> 31 == 1,
            size_or_type: self.u32_at(at + 8),
        })
    }

    fn string(&self, off: u32) -> &str {
        let (start, len) = self.strings;
        let Some(bytes) = self.data.get(start + off as usize..start + len) else { return "" };
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).unwrap_or("")
    }

    /// Follows typedefs and qualifiers to the type they stand for.
    fn resolve(&self, mut id: KTypeId) -> KTypeId {
        for _ in 0..MAX_DEPTH {
            match self.raw(id) {
                Some(r) if matches!(r.kind, TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG) => id = r.size_or_type,
                _ => return id,
            }
        }
        id
    }

    fn names(&self) -> &Names {
        self.names.get_or_init(|| {
            let mut names = Names::default();
            for id in 1..self.types.len() as KTypeId {
                let Some(r) = self.raw(id) else { continue };
                let name = self.string(r.name_off);
                if name.is_empty() {
                    continue;
                }
                let key = match r.kind {
                    STRUCT => format!("struct {name}"),
                    UNION => format!("union {name}"),
                    ENUM | ENUM64 => format!("enum {name}"),
                    INT | TYPEDEF | FLOAT => name.to_owned(),
                    FUNC => {
                        names.functions.entry(name.to_owned()).or_insert(id);
                        continue;
                    }
                    _ => continue,
                };
                names.types.entry(key).or_insert(id);
            }
            names
        })
    }

    /// The value of the enum constant `name` (`TCP_FIN_WAIT1`), of the first enum that has one,
    /// as a u64 the way bpftrace 0.17 types them (signed values sign-extended).
    pub fn enum_constant(&self, name: &str) -> Option<u64> {
        self.enumerators
            .get_or_init(|| {
                let mut values = HashMap::new();
                for id in 1..self.types.len() as KTypeId {
                    let Some(r) = self.raw(id) else { continue };
                    let (member_size, wide) = match r.kind {
                        ENUM => (8, false),
                        ENUM64 => (12, true),
                        _ => continue,
                    };
                    for i in 0..r.vlen as usize {
                        let at = r.at + 12 + i * member_size;
                        let low = self.u32_at(at + 4);
                        let value = if wide {
                            u64::from(low) | (u64::from(self.u32_at(at + 8)) << 32)
                        } else if r.kflag {
                            #[allow(clippy::cast_possible_wrap, reason = "a signed enum's 32 bits, sign-extended")]
                            let extended = i64::from(low as i32) as u64;
                            extended
                        } else {
                            u64::from(low)
                        };
                        values.entry(self.string(self.u32_at(at)).to_owned()).or_insert(value);
                    }
                }
                values
            })
            .get(name)
            .copied()
    }

    /// The type written `name` in C (`struct task_struct`, `pid_t`, `unsigned int`).
    pub fn type_named(&self, name: &str) -> Option<KTypeId> {
        let (kinds, bare): (&[u32], &str) = if let Some(n) = name.strip_prefix("struct ") {
            (&[STRUCT], n)
        } else if let Some(n) = name.strip_prefix("union ") {
            (&[UNION], n)
        } else if let Some(n) = name.strip_prefix("enum ") {
            (&[ENUM, ENUM64], n)
        } else {
            (&[INT, TYPEDEF, FLOAT], name)
        };
        self.find(kinds, bare)
    }

    /// The first type of one of `kinds` named `name`. A script names a handful of types, so a
    /// scan of the records (a millisecond or two, cached) beats building an index of every name,
    /// which only suggestions and listings need.
    fn find(&self, kinds: &[u32], name: &str) -> Option<KTypeId> {
        let key = (kinds[0], name.to_owned());
        if let Some(found) = self.found.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return *found;
        }
        let (start, _) = self.strings;
        let needle = name.as_bytes();
        let found = (1..self.types.len() as KTypeId).find(|&id| {
            let at = self.types[id as usize] as usize;
            let kind = (self.u32_at(at + 4) >> 24) & 0x1f;
            if !kinds.contains(&kind) {
                return false;
            }
            let off = start + self.u32_at(at) as usize;
            self.data.get(off..off + needle.len()) == Some(needle) && self.data.get(off + needle.len()) == Some(&0)
        });
        self.found.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, found);
        found
    }

    /// Every struct and union name, with its tag.
    pub fn record_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .names()
            .types
            .keys()
            .filter(|n| n.starts_with("struct ") || n.starts_with("union "))
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// `struct NAME`, `union NAME` and `enum NAME` for every named struct, union and 32-bit enum,
    /// in id order, duplicates kept: what bpftrace 0.17 lists for `-l 'struct *'` (its test for
    /// enums does not count 64-bit ones).
    pub fn tagged_type_names(&self) -> Vec<String> {
        (1..self.types.len() as KTypeId)
            .filter_map(|id| self.raw(id))
            .filter(|r| r.name_off != 0)
            .filter_map(|r| {
                let tag = match r.kind {
                    STRUCT => "struct",
                    UNION => "union",
                    ENUM => "enum",
                    _ => return None,
                };
                Some(format!("{tag} {}", self.string(r.name_off)))
            })
            .collect()
    }

    /// Every function name, sorted.
    pub fn function_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names().functions.keys().cloned().collect();
        names.sort();
        names
    }

    /// One type, typedefs and qualifiers looked through.
    pub fn get(&self, id: KTypeId) -> Option<KType> {
        let id = self.resolve(id);
        if id == 0 {
            return Some(KType::Void);
        }
        let r = self.raw(id)?;
        Some(match r.kind {
            INT => {
                let enc = self.u32_at(r.at + 12);
                let bytes = r.size_or_type as u8;
                KType::Int {
                    bytes,
                    signed: (enc >> 24) & INT_SIGNED != 0,
                    char: (enc >> 24) & INT_CHAR != 0 || self.string(r.name_off).ends_with("char") && bytes == 1,
                }
            }
            ENUM | ENUM64 => KType::Int { bytes: r.size_or_type as u8, signed: r.kflag, char: false },
            PTR => KType::Pointer { to: r.size_or_type },
            ARRAY => KType::Array { elem: self.u32_at(r.at + 12), len: self.u32_at(r.at + 20) },
            STRUCT | UNION => {
                let mut fields = Vec::new();
                self.members(r, 0, &mut fields, 0);
                KType::Record { name: self.type_name(id), union: r.kind == UNION, size: r.size_or_type, fields }
            }
            FUNC_PROTO | FUNC => KType::Function,
            FWD => KType::Opaque { name: self.type_name(id), size: 0 },
            FLOAT => KType::Opaque { name: self.string(r.name_off).to_owned(), size: r.size_or_type },
            _ => KType::Opaque { name: format!("BTF kind {}", r.kind), size: 0 },
        })
    }

    /// A record's members, anonymous struct and union members flattened into their parent's.
    fn members(&self, r: Raw, base_bits: u32, out: &mut Vec<KField>, depth: u32) {
        for i in 0..r.vlen as usize {
            let at = r.at + 12 + 12 * i;
            let (name_off, ty, offset) = (self.u32_at(at), self.u32_at(at + 4), self.u32_at(at + 8));
            let (mut bit_offset, mut bits) =
                if r.kflag { (offset & 0xff_ffff, (offset >> 24) as u8) } else { (offset, 0) };
            let name = self.string(name_off);
            let inner = self.resolve(ty);
            let inner_raw = self.raw(inner);
            if name.is_empty() {
                if let Some(ir) = inner_raw.filter(|ir| matches!(ir.kind, STRUCT | UNION)) {
                    if depth < MAX_DEPTH {
                        self.members(ir, base_bits + bit_offset, out, depth + 1);
                    }
                }
                continue;
            }
            // Old-style bitfields carry their width in the INT type itself.
            if let Some(ir) = inner_raw.filter(|ir| ir.kind == INT && bits == 0) {
                let enc = self.u32_at(ir.at + 12);
                let (int_bits, int_off) = (enc & 0xff, (enc >> 16) & 0xff);
                if int_bits != ir.size_or_type * 8 {
                    bits = int_bits as u8;
                    bit_offset += int_off;
                }
            }
            out.push(KField { name: name.to_owned(), ty, bit_offset: base_bits + bit_offset, bits });
        }
    }

    /// A type's C name: `struct task_struct`, `unsigned int`, `char *`, `u64[4]`.
    pub fn type_name(&self, id: KTypeId) -> String {
        self.name_at_depth(id, 0)
    }

    fn name_at_depth(&self, id: KTypeId, depth: u32) -> String {
        if id == 0 {
            return "void".into();
        }
        let Some(r) = self.raw(id) else { return format!("type {id}") };
        if depth > MAX_DEPTH {
            return "...".into();
        }
        let name = self.string(r.name_off);
        match r.kind {
            STRUCT | FWD if r.kind == STRUCT || !r.kflag => format!("struct {name}"),
            UNION | FWD => format!("union {name}"),
            ENUM | ENUM64 => format!("enum {name}"),
            PTR => format!("{} *", self.name_at_depth(r.size_or_type, depth + 1)),
            CONST => format!("const {}", self.name_at_depth(r.size_or_type, depth + 1)),
            VOLATILE => format!("volatile {}", self.name_at_depth(r.size_or_type, depth + 1)),
            RESTRICT | TYPE_TAG => self.name_at_depth(r.size_or_type, depth + 1),
            ARRAY => format!("{}[{}]", self.name_at_depth(self.u32_at(r.at + 12), depth + 1), self.u32_at(r.at + 20)),
            FUNC_PROTO => "function".into(),
            _ => name.to_owned(),
        }
    }

    /// The size in bytes of a type, arrays included.
    pub fn size_of(&self, id: KTypeId) -> Option<u32> {
        let mut id = self.resolve(id);
        let mut count = 1u32;
        for _ in 0..MAX_DEPTH {
            let r = self.raw(id)?;
            match r.kind {
                INT | ENUM | ENUM64 | STRUCT | UNION | FLOAT => return count.checked_mul(r.size_or_type),
                PTR => return count.checked_mul(8),
                ARRAY => {
                    count = count.checked_mul(self.u32_at(r.at + 20))?;
                    id = self.resolve(self.u32_at(r.at + 12));
                }
                _ => return None,
            }
        }
        None
    }

    /// A kernel function's signature from its `BTF_KIND_FUNC` record. Once the name index is
    /// built (a listing of every function builds it), the lookup is the index's: a scan for
    /// each of 60,000 functions (`rbt -lv 'fentry:*'`) took minutes.
    pub fn function(&self, name: &str) -> Option<KFunction> {
        let id = match self.names.get() {
            Some(names) => *names.functions.get(name)?,
            None => self.find(&[FUNC], name)?,
        };
        let func = self.raw(id)?;
        self.signature(name, id, func.size_or_type)
    }

    /// A raw tracepoint's arguments: each has a function `__bpf_trace_NAME(void *__data, ARGS...)`
    /// (and a typedef `btf_trace_NAME` of the same prototype, whose arguments have no names); the
    /// first argument is the tracepoint's private data, not passed on.
    pub fn raw_tracepoint(&self, name: &str) -> Option<KFunction> {
        let mut sig = match self.function(&format!("__bpf_trace_{name}")) {
            Some(sig) => sig,
            None => {
                let id = self.type_named(&format!("btf_trace_{name}"))?;
                let ptr = self.raw(self.resolve(id)).filter(|r| r.kind == PTR)?;
                self.signature(name, id, ptr.size_or_type)?
            }
        };
        sig.name = name.to_owned();
        if !sig.params.is_empty() {
            sig.params.remove(0);
        }
        Some(sig)
    }

    fn signature(&self, name: &str, id: KTypeId, proto: KTypeId) -> Option<KFunction> {
        let proto = self.raw(proto).filter(|p| p.kind == FUNC_PROTO)?;
        let params = (0..proto.vlen as usize)
            .map(|i| {
                let at = proto.at + 12 + 8 * i;
                KParam { name: self.string(self.u32_at(at)).to_owned(), ty: self.u32_at(at + 4) }
            })
            // A trailing `...` is a parameter without name or type.
            .filter(|p| p.ty != 0 || !p.name.is_empty())
            .collect();
        let ret = (self.resolve(proto.size_or_type) != 0).then_some(proto.size_or_type);
        Some(KFunction { name: name.to_owned(), btf_id: id, params, ret })
    }
}

/// A little-endian u32 from the first four bytes of `b`.
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny BTF blob built by hand: `int`, `char`, `struct s { int a; char name[4]; struct s *next;
    /// union { int u1; int u2; }; unsigned int bf:3; }`, `typedef int pid_t`, and a function
    /// `int f(struct s *p)`.
    fn sample() -> Btf {
        let mut strings = b"\0int\0char\0s\0a\0name\0next\0u1\0u2\0bf\0pid_t\0f\0p\0unsigned int\0".to_vec();
        let off = |s: &str, strings: &[u8]| -> u32 {
            let needle = [s.as_bytes(), b"\0"].concat();
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
                .map(|p| p as u32)
                .unwrap_or_else(|| panic!("{s}"))
        };
        strings.shrink_to_fit();
        let mut types: Vec<u8> = Vec::new();
        let mut put = |words: &[u32]| words.iter().for_each(|w| types.extend_from_slice(&w.to_le_bytes()));
        let info = |kind: u32, vlen: u32, kflag: bool| (kind << 24) | vlen | (u32::from(kflag) << 31);
        let s = |name: &str| off(name, &strings);
        // 1: int
        put(&[s("int"), info(INT, 0, false), 4, (INT_SIGNED << 24) | 32]);
        // 2: char
        put(&[s("char"), info(INT, 0, false), 1, (INT_SIGNED << 24) | 8]);
        // 3: char[4]
        put(&[0, info(ARRAY, 0, false), 0, 2, 1, 4]);
        // 4: struct s *
        put(&[0, info(PTR, 0, false), 5]);
        // 5: struct s (kflag: bitfield sizes in member offsets)
        put(&[s("s"), info(STRUCT, 5, true), 24]);
        put(&[s("a"), 1, 0]);
        put(&[s("name"), 3, 32]);
        put(&[s("next"), 4, 64]);
        put(&[0, 6, 128]);
        put(&[s("bf"), 9, (3 << 24) | 160]);
        // 6: anonymous union { int u1; int u2; }
        put(&[0, info(UNION, 2, false), 4]);
        put(&[s("u1"), 1, 0]);
        put(&[s("u2"), 1, 0]);
        // 7: typedef int pid_t
        put(&[s("pid_t"), info(TYPEDEF, 0, false), 1]);
        // 8: int (struct s *p)
        put(&[0, info(FUNC_PROTO, 1, false), 1]);
        put(&[s("p"), 4]);
        // 9: unsigned int
        put(&[s("unsigned int"), info(INT, 0, false), 4, 32]);
        // 10: f
        put(&[s("f"), info(FUNC, 1, false), 8]);
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(&strings);
        Btf::parse(data).unwrap()
    }

    #[test]
    fn records_flatten_anonymous_members_and_keep_bitfields() {
        let btf = sample();
        let id = btf.type_named("struct s").unwrap();
        let Some(KType::Record { name, union, size, fields }) = btf.get(id) else { panic!() };
        assert_eq!((name.as_str(), union, size), ("struct s", false, 24));
        let summary: Vec<(&str, u32, u8)> = fields.iter().map(|f| (f.name.as_str(), f.bit_offset, f.bits)).collect();
        assert_eq!(
            summary,
            [("a", 0, 0), ("name", 32, 0), ("next", 64, 0), ("u1", 128, 0), ("u2", 128, 0), ("bf", 160, 3)]
        );
        assert_eq!(btf.get(fields[1].ty), Some(KType::Array { elem: 2, len: 4 }));
        assert_eq!(btf.get(2), Some(KType::Int { bytes: 1, signed: true, char: true }));
        assert_eq!(btf.type_name(fields[2].ty), "struct s *");
        assert_eq!(btf.size_of(fields[1].ty), Some(4));
    }

    #[test]
    fn typedefs_resolve_and_functions_have_signatures() {
        let btf = sample();
        let pid_t = btf.type_named("pid_t").unwrap();
        assert_eq!(btf.get(pid_t), Some(KType::Int { bytes: 4, signed: true, char: false }));
        let f = btf.function("f").unwrap();
        assert_eq!(f.params, [KParam { name: "p".into(), ty: 4 }]);
        assert_eq!(f.ret, Some(1));
        assert_eq!(btf.record_names(), ["struct s"]);
        assert!(btf.function("g").is_none());
    }

    #[test]
    fn rejects_what_is_not_btf() {
        assert!(Btf::parse(vec![0; 32]).is_err());
    }

    #[test]
    fn enum_constants_are_found_by_name() {
        let mut b = BtfBuilder::new();
        b.enumeration("", 4, false, &[("TCP_ESTABLISHED", 1), ("TCP_SYN_SENT", 2)]);
        b.enumeration("e", 4, true, &[("NEGATIVE", -1), ("TCP_ESTABLISHED", 9)]);
        let btf = b.build();
        assert_eq!(btf.enum_constant("TCP_SYN_SENT"), Some(2));
        assert_eq!(btf.enum_constant("TCP_ESTABLISHED"), Some(1));
        assert_eq!(btf.enum_constant("NEGATIVE"), Some(u64::MAX));
        assert_eq!(btf.enum_constant("NOPE"), None);
    }
}
