//! The kernel interface: every bpf(2), perf_event_open, ioctl, signalfd, fork and other raw
//! system call rbt makes, behind safe functions with typed errors ([`error`]). The rest of rbt
//! calls these and has no `unsafe`; ABI numbers and structs come from the bindings aya-obj
//! generates from the kernel's uapi headers, the program type from the compiler's
//! `ProgramKind`.
//!
//! - `sys.rs`: the bpf(2) commands; `loader.rs`: objects, maps and programs into the kernel;
//!   `attach.rs`: perf events, links, trampolines; `event_source.rs`: the ring buffer and
//!   perf buffers; `fdinfo.rs`, `cpus.rs`: what the kernel says of programs and CPUs.
//! - `signals.rs` (signalfd), `process.rs` (`-c`'s held child, pidfds), `os.rs` (clocks,
//!   `strftime`, `poll`, memfds, rlimits, termios), `host_calls.rs` (what the host catalog
//!   needs: geteuid, mounting tracefs, cgroup ids).

#![allow(unsafe_code, reason = "the one module that makes raw system calls; each unsafe block says why it is sound")]

pub mod attach;
pub mod cpus;
pub mod error;
pub mod event_source;
pub mod fdinfo;
pub mod host_calls;
pub mod loader;
pub mod mmap_records;
pub mod os;
pub mod process;
pub mod signals;
pub mod sys;

pub use error::{AttachError, LoadError, MapError};
