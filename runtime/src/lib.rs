//! The parts of the runtime that other packages (the test suites, benchmarks) use directly, and
//! the kernel interface: `kernel` holds every raw system call, so that it is the one place with
//! `unsafe`, for the symbolizer here and for the binary. The `rbt` binary uses both through
//! this library.

pub mod kernel;
pub mod symbols;
