//! rbt's compiler: semantic analysis and typing of the AST, lowering to rbt's IR, and the BPF
//! backend that emits an ELF object for aya. Pure: no IO and no unsafe code; tracepoint layouts come
//! in through [`ProbeCatalog`].

pub mod bpf;
pub mod tracepoint;

pub use tracepoint::{FieldType, ProbeCatalog, TracepointField, TracepointFormat};
