//! The parts of the runtime that other packages (the test suites, benchmarks) use directly.
//! The `rbt` binary uses them through this library too.

pub mod symbols;
