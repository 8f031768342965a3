//! Kernel types written back as C, as libbpf 1.1's `btf_dump` writes them (bpftrace 0.17's
//! `-lv 'struct NAME'` prints its output): typedef names kept as written, anonymous structs,
//! unions and enums inline, bitfields, the padding members `btf_dump` inserts where the layout
//! has gaps (`long: 64;`, `int: 3;`), `__attribute__((packed))` where members sit off their
//! natural alignment, and the `___2` suffixes that tell apart types of one name. What libbpf
//! emits for `struct qstr` (it indents with tabs):
//!
//! ```text
//! struct qstr {
//!     union {
//!         struct {
//!             u32 hash;
//!             u32 len;
//!         };
//!         u64 hash_len;
//!     };
//!     const unsigned char *name;
//! };
//! ```
//!
//! The text depends on what was emitted before (a type is defined once, names get their
//! suffixes in the order they are first written), so `CDump` keeps `btf_dump`'s state across
//! calls: each `dump_type` first orders the type's dependencies topologically (types embedded by
//! value before their container, forward declarations where a pointer is enough), then emits
//! every dependency not yet emitted, and the type itself. `layout.rs` (sizes, alignment,
//! padding) and `declarations.rs` (type chains in C syntax) hold the rest of `CDump`'s methods.

mod declarations;
mod layout;

use std::collections::HashMap;
use std::fmt::Write as _;

use layout::pointer_size;

use super::{
    Btf, Raw, ARRAY, CONST, DATASEC, DECL_TAG, ENUM, ENUM64, FLOAT, FUNC, FUNC_PROTO, FWD, INT, PTR, RESTRICT, STRUCT,
    TYPEDEF, TYPE_TAG, UNION, VAR, VOLATILE,
};

/// `btf_dump` indents with tabs, at most this many.
const MAX_INDENT: usize = 13;

/// A bound on declaration chains (pointer to const to array of ...) that only malformed BTF
/// reaches; valid chains are a handful of types long.
const MAX_CHAIN: usize = 1024;

/// GCC's internal types for Arm SIMD intrinsics, which `btf_dump` defines as aliases of standard
/// types when it meets them.
const MISSING_BASE_TYPES: [(&str, &str); 4] = [
    ("__Poly8_t", "unsigned char"),
    ("__Poly16_t", "unsigned short"),
    ("__Poly64_t", "unsigned long long"),
    ("__Poly128_t", "unsigned __int128"),
];

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Order {
    #[default]
    NotOrdered,
    Ordering,
    Ordered,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Emit {
    #[default]
    NotEmitted,
    Emitting,
    Emitted,
}

/// Per-type progress of the dump.
#[derive(Clone, Copy, Default)]
struct TypeState {
    order: Order,
    emit: Emit,
    /// A forward declaration (or, for a typedef, its definition) was written.
    fwd_emitted: bool,
    /// The type's unique name was chosen (it is in `CDump::unique_names` if it got a suffix).
    name_resolved: bool,
    /// Some other type refers to this one: an anonymous enum nothing refers to is a top-level
    /// declaration of constants, one referred to is written inline where it is used.
    referenced: bool,
}

/// The type ordering found a cycle no forward declaration can break (only malformed BTF has one).
struct TypeCycle;

/// A `btf_dump` over one BTF: its text so far and what it has emitted.
pub struct CDump<'a> {
    btf: &'a Btf,
    out: String,
    states: Vec<TypeState>,
    unique_names: HashMap<u32, String>,
    /// How often each struct, union and enum name (and base type name) was given out.
    type_names: HashMap<String, usize>,
    /// The same for typedef names and enumerators, which share C's identifier namespace.
    ident_names: HashMap<String, usize>,
    /// The definitions the current `dump_type` needs, in order.
    emit_queue: Vec<u32>,
    ptr_size: u32,
    /// `btf__align_of` for each type, computed on first use (0: not yet, -1: no alignment).
    aligns: Vec<i64>,
}

/// One member of a struct or union.
struct Member {
    name_off: u32,
    ty: u32,
    /// The raw `offset` word: with the kind flag, the bitfield size in its top byte.
    raw_offset: u32,
    bit_offset: u32,
    bitfield_size: u32,
}

impl<'a> CDump<'a> {
    pub fn new(btf: &'a Btf) -> CDump<'a> {
        let count = btf.types.len();
        let mut dump = CDump {
            btf,
            out: String::new(),
            states: vec![TypeState::default(); count],
            unique_names: HashMap::new(),
            type_names: HashMap::new(),
            ident_names: HashMap::new(),
            emit_queue: Vec::new(),
            ptr_size: pointer_size(btf),
            aligns: vec![0; count],
        };
        // Void is always defined.
        dump.states[0].order = Order::Ordered;
        dump.states[0].emit = Emit::Emitted;
        dump.mark_referenced();
        dump
    }

    /// The text written so far.
    pub fn into_text(self) -> String {
        self.out
    }

    /// Writes type `id` as C, after whatever it needs that was not written yet. A type that
    /// cannot be ordered (a cycle of embedded types) is left out, as `btf_dump` leaves it out.
    pub fn dump_type(&mut self, id: u32) {
        if id as usize >= self.states.len() {
            return;
        }
        self.emit_queue.clear();
        if self.order_type(id, false).is_err() {
            return;
        }
        let queue = std::mem::take(&mut self.emit_queue);
        for &queued in &queue {
            self.emit_type(queued, 0);
        }
        self.emit_queue = queue;
    }

    fn raw(&self, id: u32) -> Option<Raw> {
        self.btf.raw(id)
    }

    fn name(&self, name_off: u32) -> &'a str {
        self.btf.string(name_off)
    }

    /// The kind of type `id`; 0 for void.
    fn kind(&self, id: u32) -> u32 {
        self.raw(id).map_or(0, |r| r.kind)
    }

    fn member(&self, r: Raw, i: usize) -> Member {
        let at = r.at + 12 + 12 * i;
        let raw_offset = self.btf.u32_at(at + 8);
        let (bit_offset, bitfield_size) =
            if r.kflag { (raw_offset & 0xff_ffff, raw_offset >> 24) } else { (raw_offset, 0) };
        Member { name_off: self.btf.u32_at(at), ty: self.btf.u32_at(at + 4), raw_offset, bit_offset, bitfield_size }
    }

    /// An array's element type and length.
    fn array(&self, r: Raw) -> (u32, u32) {
        (self.btf.u32_at(r.at + 12), self.btf.u32_at(r.at + 20))
    }

    /// A function prototype's parameter `i`: name offset and type.
    fn param(&self, r: Raw, i: usize) -> (u32, u32) {
        let at = r.at + 12 + 8 * i;
        (self.btf.u32_at(at), self.btf.u32_at(at + 4))
    }

    fn mark_referenced(&mut self) {
        let mut referenced = Vec::new();
        for id in 1..self.states.len() as u32 {
            let Some(r) = self.raw(id) else { continue };
            let vlen = r.vlen as usize;
            match r.kind {
                VOLATILE | CONST | RESTRICT | PTR | TYPEDEF | FUNC | VAR | DECL_TAG | TYPE_TAG => {
                    referenced.push(r.size_or_type);
                }
                ARRAY => referenced.extend([self.btf.u32_at(r.at + 16), self.array(r).0]),
                STRUCT | UNION => referenced.extend((0..vlen).map(|i| self.member(r, i).ty)),
                FUNC_PROTO => referenced.extend((0..vlen).map(|i| self.param(r, i).1)),
                DATASEC => referenced.extend((0..vlen).map(|i| self.btf.u32_at(r.at + 12 + 12 * i))),
                _ => {}
            }
        }
        for id in referenced {
            if let Some(state) = self.states.get_mut(id as usize) {
                state.referenced = true;
            }
        }
    }

    /// Orders type `id`'s definition after those it needs, appending named definitions to the
    /// emit queue. `Ok(true)` when the link from the referring type is strong (`id` must be
    /// defined first: it is embedded, or anonymous and so written inline), `Ok(false)` when a
    /// forward declaration is enough (reached through a pointer).
    fn order_type(&mut self, id: u32, through_ptr: bool) -> Result<bool, TypeCycle> {
        let Some(state) = self.states.get(id as usize).copied() else { return Ok(false) };
        if state.order == Order::Ordered {
            return Ok(true);
        }
        let Some(r) = self.raw(id) else { return Ok(false) };
        if state.order == Order::Ordering {
            // A loop through a pointer to a named struct is broken by a forward declaration.
            if matches!(r.kind, STRUCT | UNION) && through_ptr && r.name_off != 0 {
                return Ok(false);
            }
            return Err(TypeCycle);
        }
        let set = |dump: &mut Self, order| dump.states[id as usize].order = order;
        match r.kind {
            INT | FLOAT => {
                set(self, Order::Ordered);
                Ok(false)
            }
            PTR => {
                let strong = self.order_type(r.size_or_type, true);
                set(self, Order::Ordered);
                strong
            }
            ARRAY => self.order_type(self.array(r).0, false),
            STRUCT | UNION => {
                // Part of a strong link only when embedded, or anonymous (defined inline even
                // behind a pointer).
                if through_ptr && r.name_off != 0 {
                    return Ok(false);
                }
                set(self, Order::Ordering);
                for i in 0..r.vlen as usize {
                    let ty = self.member(r, i).ty;
                    self.order_type(ty, false)?;
                }
                if r.name_off != 0 {
                    self.emit_queue.push(id);
                }
                set(self, Order::Ordered);
                Ok(true)
            }
            ENUM | ENUM64 | FWD => {
                if r.name_off != 0 || !state.referenced {
                    self.emit_queue.push(id);
                }
                set(self, Order::Ordered);
                Ok(true)
            }
            TYPEDEF => {
                let strong = self.order_type(r.size_or_type, through_ptr)?;
                if through_ptr && !strong {
                    return Ok(false);
                }
                self.emit_queue.push(id);
                set(self, Order::Ordered);
                Ok(true)
            }
            VOLATILE | CONST | RESTRICT | TYPE_TAG => self.order_type(r.size_or_type, through_ptr),
            FUNC_PROTO => {
                let mut strong = self.order_type(r.size_or_type, through_ptr)?;
                for i in 0..r.vlen as usize {
                    let ty = self.param(r, i).1;
                    strong |= self.order_type(ty, through_ptr)?;
                }
                Ok(strong)
            }
            FUNC | VAR | DATASEC | DECL_TAG => {
                set(self, Order::Ordered);
                Ok(false)
            }
            _ => Err(TypeCycle),
        }
    }

    /// Emits type `id` (and what it needs) as top-level C. `container` is the struct or union
    /// being defined around it, 0 at the top level: a struct referring to itself needs no
    /// forward declaration.
    fn emit_type(&mut self, id: u32, container: u32) {
        let Some(state) = self.states.get(id as usize).copied() else { return };
        if state.emit == Emit::Emitted {
            return;
        }
        let Some(r) = self.raw(id) else { return };
        let top_level = container == 0;
        if state.emit == Emit::Emitting {
            // A loop: what is being defined is needed again, so declare it ahead if C allows.
            if state.fwd_emitted {
                return;
            }
            match r.kind {
                STRUCT | UNION if id != container && r.name_off != 0 => {
                    self.emit_struct_fwd(id, r);
                    self.out.push_str(";\n\n");
                    self.states[id as usize].fwd_emitted = true;
                }
                TYPEDEF => {
                    // A typedef is its own forward declaration, usable through pointers.
                    if !self.is_blacklisted(r) {
                        self.emit_typedef_def(id, r, 0);
                        self.out.push_str(";\n\n");
                    }
                    self.states[id as usize].fwd_emitted = true;
                }
                _ => {}
            }
            return;
        }
        match r.kind {
            INT => {
                self.emit_missing_aliases(id);
                self.states[id as usize].emit = Emit::Emitted;
            }
            ENUM | ENUM64 => {
                if top_level {
                    self.emit_enum_def(id, r, 0);
                    self.out.push_str(";\n\n");
                }
                self.states[id as usize].emit = Emit::Emitted;
            }
            PTR | VOLATILE | CONST | RESTRICT | TYPE_TAG => self.emit_type(r.size_or_type, container),
            ARRAY => self.emit_type(self.array(r).0, container),
            FWD => {
                self.emit_fwd_def(id, r);
                self.out.push_str(";\n\n");
                self.states[id as usize].emit = Emit::Emitted;
            }
            TYPEDEF => {
                self.states[id as usize].emit = Emit::Emitting;
                self.emit_type(r.size_or_type, id);
                if !self.states[id as usize].fwd_emitted && !self.is_blacklisted(r) {
                    self.emit_typedef_def(id, r, 0);
                    self.out.push_str(";\n\n");
                }
                self.states[id as usize].emit = Emit::Emitted;
            }
            STRUCT | UNION => {
                self.states[id as usize].emit = Emit::Emitting;
                // A definition written out (top-level, or anonymous and so inline) needs its
                // members' types declared first.
                if top_level || r.name_off == 0 {
                    let inner_container = if r.name_off == 0 { container } else { id };
                    for i in 0..r.vlen as usize {
                        let ty = self.member(r, i).ty;
                        self.emit_type(ty, inner_container);
                    }
                } else if !self.states[id as usize].fwd_emitted && id != container {
                    self.emit_struct_fwd(id, r);
                    self.out.push_str(";\n\n");
                    self.states[id as usize].fwd_emitted = true;
                }
                if top_level {
                    self.emit_struct_def(id, r, 0);
                    self.out.push_str(";\n\n");
                    self.states[id as usize].emit = Emit::Emitted;
                } else {
                    self.states[id as usize].emit = Emit::NotEmitted;
                }
            }
            FUNC_PROTO => {
                self.emit_type(r.size_or_type, container);
                for i in 0..r.vlen as usize {
                    let ty = self.param(r, i).1;
                    self.emit_type(ty, container);
                }
            }
            _ => {}
        }
    }

    /// `__builtin_va_list` is the compiler's own; its typedef is never written.
    fn is_blacklisted(&self, r: Raw) -> bool {
        r.name_off != 0 && self.name(r.name_off) == "__builtin_va_list"
    }

    fn emit_missing_aliases(&mut self, id: u32) {
        let name = self.type_name(id);
        if let Some((_, alias)) = MISSING_BASE_TYPES.iter().find(|(missing, _)| *missing == name) {
            let _ = write!(self.out, "typedef {alias} {name};\n\n");
        }
    }

    fn emit_struct_fwd(&mut self, id: u32, r: Raw) {
        let keyword = if r.kind == STRUCT { "struct" } else { "union" };
        let space = if r.name_off != 0 { " " } else { "" };
        let name = self.type_name(id);
        let _ = write!(self.out, "{keyword}{space}{name}");
    }

    fn emit_struct_def(&mut self, id: u32, r: Raw, lvl: usize) {
        let is_struct = r.kind == STRUCT;
        let align = self.align_of(id);
        let packed = is_struct && self.is_struct_packed(r);
        self.emit_struct_fwd(id, r);
        self.out.push_str(" {");
        let mut off: i64 = 0;
        let mut prev_bitfield = false;
        for i in 0..r.vlen as usize {
            let m = self.member(r, i);
            let m_align = if packed { 1 } else { self.align_of(m.ty) };
            let in_bitfield = prev_bitfield && m.bitfield_size != 0;
            self.emit_bit_padding(off, i64::from(m.bit_offset), m_align, in_bitfield, lvl + 1);
            self.out.push('\n');
            self.out.push_str(indent(lvl + 1));
            self.emit_type_decl(m.ty, self.name(m.name_off), lvl + 1);
            if m.bitfield_size != 0 {
                let _ = write!(self.out, ": {}", m.bitfield_size);
                off = i64::from(m.bit_offset) + i64::from(m.bitfield_size);
                prev_bitfield = true;
            } else {
                off = i64::from(m.bit_offset) + self.resolve_size(m.ty) * 8;
                prev_bitfield = false;
            }
            self.out.push(';');
        }
        if is_struct {
            self.emit_bit_padding(off, i64::from(r.size_or_type) * 8, align, false, lvl + 1);
        }
        // `struct empty {}` stays on one line.
        if r.vlen != 0 || r.size_or_type != 0 {
            self.out.push('\n');
            self.out.push_str(indent(lvl));
        }
        self.out.push('}');
        if packed {
            self.out.push_str(" __attribute__((packed))");
        }
    }

    fn emit_enum_def(&mut self, id: u32, r: Raw, lvl: usize) {
        let space = if r.name_off != 0 { " " } else { "" };
        let name = self.type_name(id);
        let _ = write!(self.out, "enum{space}{name}");
        if r.vlen == 0 {
            return;
        }
        self.out.push_str(" {");
        let signed = r.kflag;
        let mut fits_32_bits = true;
        for i in 0..r.vlen as usize {
            let (name_off, value) = if r.kind == ENUM {
                let at = r.at + 12 + 8 * i;
                let raw = self.btf.u32_at(at + 4);
                (self.btf.u32_at(at), if signed { (raw as i32).to_string() } else { raw.to_string() })
            } else {
                let at = r.at + 12 + 12 * i;
                let (lo, hi) = (self.btf.u32_at(at + 4), self.btf.u32_at(at + 8));
                fits_32_bits &= hi == 0;
                let value = u64::from(hi) << 32 | u64::from(lo);
                (self.btf.u32_at(at), if signed { format!("{}LL", value as i64) } else { format!("{value}ULL") })
            };
            // Enumerators share a namespace with typedefs.
            let name = self.name(name_off);
            let dups = name_dups(&mut self.ident_names, name);
            let _ = write!(self.out, "\n{}{name}", indent(lvl + 1));
            if dups > 1 {
                let _ = write!(self.out, "___{dups}");
            }
            let _ = write!(self.out, " = {value},");
        }
        let _ = write!(self.out, "\n{}}}", indent(lvl));
        if r.size_or_type == 1 {
            self.out.push_str(" __attribute__((mode(byte)))");
        } else if r.size_or_type == 8 && self.ptr_size == 8 {
            // An eight-byte enum whose values all fit in 32 bits is only eight bytes in mode(word).
            if r.kind == ENUM || fits_32_bits {
                self.out.push_str(" __attribute__((mode(word)))");
            }
        }
    }

    fn emit_fwd_def(&mut self, id: u32, r: Raw) {
        let keyword = if r.kflag { "union" } else { "struct" };
        let name = self.type_name(id);
        let _ = write!(self.out, "{keyword} {name}");
    }

    fn emit_typedef_def(&mut self, id: u32, r: Raw, lvl: usize) {
        let name = self.ident_name(id);
        // Old GCCs describe `__gnuc_va_list` as a typedef of void.
        if r.size_or_type == 0 && name == "__gnuc_va_list" {
            self.out.push_str("typedef __builtin_va_list __gnuc_va_list");
            return;
        }
        self.out.push_str("typedef ");
        self.emit_type_decl(r.size_or_type, &name, lvl);
    }

    fn type_name(&mut self, id: u32) -> String {
        self.resolve_name(id, false)
    }

    fn ident_name(&mut self, id: u32) -> String {
        self.resolve_name(id, true)
    }

    /// The name type `id` is written with: its own the first time a name is given out, then
    /// `NAME___2`, `NAME___3`... for other types of that name. Forward declarations and empty
    /// enums keep their names: they declare what a definition elsewhere defines.
    fn resolve_name(&mut self, id: u32, ident: bool) -> String {
        let Some(r) = self.raw(id) else { return String::new() };
        if r.name_off == 0 {
            return String::new();
        }
        let orig = self.name(r.name_off);
        let state = &mut self.states[id as usize];
        if state.name_resolved {
            return self.unique_names.get(&id).cloned().unwrap_or_else(|| orig.to_owned());
        }
        state.name_resolved = true;
        if r.kind == FWD || (r.kind == ENUM && r.vlen == 0) {
            return orig.to_owned();
        }
        let names = if ident { &mut self.ident_names } else { &mut self.type_names };
        let dups = name_dups(names, orig);
        if dups > 1 {
            let unique = format!("{orig}___{dups}");
            self.unique_names.insert(id, unique.clone());
            return unique;
        }
        orig.to_owned()
    }
}

/// Counts one more use of `name` and returns how many there have been.
fn name_dups(names: &mut HashMap<String, usize>, name: &str) -> usize {
    let count = names.entry(name.to_owned()).or_insert(0);
    *count += 1;
    *count
}

fn indent(lvl: usize) -> &'static str {
    const TABS: &str = "\t\t\t\t\t\t\t\t\t\t\t\t\t";
    &TABS[..lvl.min(MAX_INDENT)]
}

/// What `bpftrace -lv 'struct …'` starts from: every named struct, union and (32-bit) enum in
/// id order, each dumped with the types it needs, through one `CDump`.
pub fn dump_named_types(btf: &Btf) -> String {
    let mut dump = CDump::new(btf);
    for id in 1..btf.types.len() as u32 {
        if btf.raw(id).is_some_and(|r| matches!(r.kind, STRUCT | UNION | ENUM) && r.name_off != 0) {
            dump.dump_type(id);
        }
    }
    dump.into_text()
}

#[cfg(test)]
mod tests;
