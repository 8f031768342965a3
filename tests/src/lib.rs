//! Shared pieces of rbt's test suites.
