//! The C types a script defines (`struct Foo { int a; }`, unions, enums, typedefs), laid out
//! as clang lays them out on x86-64 and kept as [`KType`]s in a table of their own, with ids in
//! a range kernel BTF ids never reach. [`Overlay`] puts the table in front of the catalog, so
//! the checker sees one set of types: a script's definition wins for its own names (as in
//! bpftrace), and everything else (member chains, casts, `sizeof`, `print`) works the same for
//! both.
//!
//! `build.rs` turns the parsed definitions into the table, `layout.rs` computes offsets, and
//! `overlay.rs` answers the catalog's type questions.

mod build;
mod layout;
mod overlay;

use std::collections::HashMap;

use crate::ktypes::{KType, KTypeId};

pub use overlay::Overlay;

/// The first id of a script-defined type; the kernel's BTF has far fewer types than this.
pub const SCRIPT_TYPE_BASE: KTypeId = 0x8000_0000;

/// The types a script defines, and the enum constants it names.
#[derive(Debug, Default)]
pub struct ScriptTypes {
    /// The type with id `SCRIPT_TYPE_BASE + i` is `entries[i]`.
    entries: Vec<Entry>,
    /// `struct Foo`, `union U`, `enum E` and typedef names, to the types they denote.
    names: HashMap<String, KTypeId>,
    /// Enum constants, by name.
    constants: HashMap<String, i64>,
}

/// One script type: what it is, as C names it, and its alignment.
#[derive(Clone, Debug)]
struct Entry {
    ty: KType,
    name: String,
    align: u32,
    /// Whether its size is known: not for a struct only declared (`struct Foo;`, or `struct Foo
    /// *p` naming a struct defined nowhere), nor for one whose definition is still being read.
    complete: bool,
}

impl ScriptTypes {
    /// The table of `definitions`' types, resolving names they do not define through `kernel`;
    /// every mistake is a diagnostic.
    pub fn build(
        definitions: &[grammar::cdecl::CDefinition],
        kernel: &dyn crate::tracepoint::ProbeCatalog,
    ) -> (ScriptTypes, Vec<grammar::Diagnostic>) {
        build::build(definitions, kernel)
    }

    /// Whether `id` is one of the script's types (rather than the kernel's).
    pub fn owns(id: KTypeId) -> bool {
        id >= SCRIPT_TYPE_BASE
    }

    fn entry(&self, id: KTypeId) -> Option<&Entry> {
        let index = id.checked_sub(SCRIPT_TYPE_BASE)?;
        self.entries.get(index as usize)
    }

    /// The type a name denotes: `struct Foo`, `enum E`, a typedef name, or one of C's own
    /// (`int`, `unsigned char`, `long long unsigned int` as BTF spells it).
    pub fn named(&self, name: &str) -> Option<KTypeId> {
        self.names.get(name).copied()
    }

    /// Whether a script type's size is known (not a struct only declared).
    pub fn is_complete(&self, id: KTypeId) -> bool {
        self.entry(id).is_some_and(|e| e.complete)
    }

    pub fn get(&self, id: KTypeId) -> Option<KType> {
        self.entry(id).map(|e| e.ty.clone())
    }

    pub fn name_of(&self, id: KTypeId) -> Option<String> {
        self.entry(id).map(|e| e.name.clone())
    }

    /// The value of an enum constant the script defines.
    pub fn constant(&self, name: &str) -> Option<i64> {
        self.constants.get(name).copied()
    }

    /// Every struct and union the script defines, with its tag.
    pub fn record_names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().filter(|n| n.starts_with("struct ") || n.starts_with("union ")).map(String::as_str)
    }

    /// Whether the script defines no types at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.constants.is_empty()
    }
}

#[cfg(test)]
mod tests;
