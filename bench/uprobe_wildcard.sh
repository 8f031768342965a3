#!/usr/bin/env bash
# A uprobe wildcard over hundreds of functions (bash's `r*`: ~350), side by side with bpftrace
# 0.17: launch until attached, exit() until END has run (the probes are detached before END, as
# in bpftrace), and exit() until the tool has exited. rbt attaches such a wildcard as one
# uprobe_multi link (Linux 6.6+); bpftrace 0.17 opens a perf event per function and detaches
# each at the cost of a kernel RCU grace period. Medians of N runs (default 3).
# Usage: bench/uprobe_wildcard.sh [N]. Not a test: results go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
cargo build -q --release -p runtime
RBT=target/release/rbt
BPFTRACE=${BPFTRACE:-bpftrace}
PATTERN=${PATTERN:-/bin/bash:r*}
SCRIPT="uprobe:$PATTERN { @ = count(); } BEGIN { printf(\"begin %d\\n\", nsecs / 1000000); exit(); } END { printf(\"end %d\\n\", nsecs / 1000000); }"
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
uptime_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }

run() {
    local bin=$1 t0 t1 out
    t0=$(uptime_ms)
    out=$("$bin" -e "$SCRIPT" 2>/dev/null || true)
    t1=$(uptime_ms)
    local probes begin end
    probes=$(awk '/^Attaching/{print $2 - 2}' <<<"$out")
    begin=$(awk '/^begin /{print $2}' <<<"$out")
    end=$(awk '/^end /{print $2}' <<<"$out")
    echo "$probes $((begin - t0)) $((end - begin)) $((t1 - begin))"
}

echo "| measure ($PATTERN) | rbt (median) | bpftrace (median) | ratio |"
echo "|---|---|---|---|"
for tool in rbt bpftrace; do
    bin=$RBT; [ $tool = bpftrace ] && bin=$BPFTRACE
    : > /tmp/bench_uw_$tool
    for _ in $(seq "$N"); do run "$bin" >> /tmp/bench_uw_$tool; done
done
probes=$(head -1 /tmp/bench_uw_rbt | cut -d' ' -f1)
labels=("" "launch until attached" "exit() until END ran" "exit() until the tool exited")
for col in 2 3 4; do
    r=$(cut -d' ' -f$col /tmp/bench_uw_rbt | median); b=$(cut -d' ' -f$col /tmp/bench_uw_bpftrace | median)
    echo "| ${labels[$((col - 1))]}, $probes uprobes | $r ms | $b ms | $(awk "BEGIN{printf \"%.3f\", $r/$b}") |"
done
