//! The probe catalog: what rbt's checker asks of a system (`compiler::ProbeCatalog`) and what
//! `rbt -l` lists, parsed from the system's own files — tracefs' event list and `format` files,
//! the kernel's BTF, `available_filter_functions`, `/proc/kallsyms`, binaries' ELF symbols and
//! `.note.stapsdt` notes, the ld.so cache. The crate does no IO of its own: a [`Source`] hands it
//! bytes (the runtime's over the running system or a fixture directory, [`MemSource`] in tests),
//! so every parser here is tested on bytes.
//!
//! Files: `catalog.rs` ([`Catalog`], the `ProbeCatalog` over a source), `tracefs_format.rs`,
//! `btf.rs` (+ `btf/c_dump*`: types written back as C), `elf_symbols.rs`, `dwarf.rs` (functions' parameters from DWARF), `stapsdt.rs`,
//! `ldso_cache.rs`, `user_targets.rs` (the binaries uprobe and USDT specs name, globs and `-p PID`
//! included), `kprobes.rs`, `kallsyms.rs`, `headers.rs` (where C headers are), `wildcard.rs`
//! (bpftrace's `*` patterns), and
//! `list.rs` (the text of `rbt -l`/`-lv`).

#![forbid(unsafe_code)]

pub mod btf;
mod catalog;
mod dwarf;
pub mod elf_symbols;
mod headers;
mod kallsyms;
mod kprobes;
mod ldso_cache;
mod list;
mod source;
mod stapsdt;
pub mod tracefs_format;
mod user_targets;
mod wildcard;

pub use catalog::{Catalog, CatalogError, DEBUGFS_TRACEFS, TRACEFS};
pub use list::{list_probes, list_probes_for};
pub use source::{MemSource, Source};
pub use wildcard::wildcard_match;
