#!/usr/bin/env bash
# Benchmark of the stack symbolizer (runtime/src/symbols): symbolizing and printing a map of
# 10,000 distinct stacks of 20 kernel + 20 user frames, as `@[kstack, ustack]` prints it, in one
# process, measured by runtime/examples/symbolize_bench.rs. As root (kallsyms addresses).
# Usage: bench/symbols.sh [RUNS]   (default 3; medians). Not a test: prints Markdown rows for
# BENCHMARKS.md.
#
# The symbolized process is the debug build of tests/src/bin/symbols_target.rs (with DWARF);
# user addresses are drawn from its executable mappings (its own code and libc's), kernel
# addresses from kallsyms's text. "every address distinct" draws 200,000 distinct addresses per
# side, the worst case for caches; "20,000 addresses" lets the 10,000 stacks share frames, as
# real stacks do.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
cargo build -q -p tests --bin rbt-symbols-target
cargo build -q --release -p runtime --example symbolize_bench
BENCH=target/release/examples/symbolize_bench
TARGET=target/debug/rbt-symbols-target

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

echo "| stacks | detail | setup | first print | second print | RSS growth | peak RSS | user frames named / with line / with inlined |"
echo "|---|---|---|---|---|---|---|---|"
for pool in 200000 20000; do
    for detail in names lines; do
        : > /tmp/symbols_bench
        for _ in $(seq "$RUNS"); do "$BENCH" "$TARGET" "$pool" "$detail" >> /tmp/symbols_bench; done
        m() { field "$1" < /tmp/symbols_bench | median; }
        label="every address distinct"; [ "$pool" = 20000 ] && label="20,000 addresses"
        last=$(tail -1 /tmp/symbols_bench)
        echo "| 10,000 x (20+20), $label | $detail | $(m setup_ms) ms | $(m first_print_ms) ms | $(m second_print_ms) ms | $(m rss_growth_mb) MB | $(m peak_rss_mb) MB | $(echo "$last" | field named_user) / $(echo "$last" | field with_line) / $(echo "$last" | field with_inlined) |"
    done
done
