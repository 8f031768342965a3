//! The runtime's system calls and other unsafe code, in one folder.

pub mod host_calls;
