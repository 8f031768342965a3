#!/usr/bin/env bash
# Benchmark of the unwind table builder (unwind/): for Debian's libc, python3 and a large Rust
# binary (rbt's own release build), the size of .text, the table's rows before and after merging
# equal neighbours, its bytes (what the BPF array map holds) per MB of .text, and the build time
# as the median of 5 builds, measured by unwind/examples/unwind_tables.rs.
# Usage: bench/unwind_tables.sh [FILE...]   (default: libc, python3, target/release/rbt).
# Not a test: prints Markdown rows for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    [ -x target/release/rbt ] || cargo build -q --release --bin rbt
    set -- /lib/x86_64-linux-gnu/libc.so.6 "$(readlink -f /usr/bin/python3)" target/release/rbt
fi
cargo run -q --release -p unwind --example unwind_tables -- "$@"
