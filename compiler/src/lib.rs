//! rbt's compiler: semantic analysis and typing of the AST, lowering to rbt's IR, and the BPF
//! backend that emits an ELF object for aya. Pure: no IO and no unsafe code; tracepoint layouts come
//! in through [`ProbeCatalog`].

pub mod bpf;
pub mod builtins;
pub mod check;
pub mod codegen;
mod compile;
pub mod ctypes;
pub mod format;
pub mod hir;
pub mod ir;
pub mod ktypes;
pub mod lower;
pub mod probe_kind;
pub mod program;
pub mod tracepoint;
pub mod types;
pub mod usdt;

pub use check::CheckOptions;
pub use compile::{compile, compile_script, CompileOptions, Compiled};
pub use lower::{EventTransport, LowerOptions};
pub use program::CompiledProgram;
pub use tracepoint::{FieldType, ProbeCatalog, TracepointField, TracepointFormat, UserAddress, UserFunction};
