//! Printing maps, printf lines and events in bpftrace 0.17 text and JSON formats.
