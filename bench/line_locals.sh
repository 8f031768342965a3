#!/usr/bin/env bash
# Probes at source lines reading locals (issue 13), side by side in one run, as root: the cost
# per hit that a traced process pays (the uprobe's trap and the program), as the rise of
# bench/lines/hot.c's ns per call of step() over no probe, for
#   (a) no probe;
#   (b) uprobe:hot:step { @ = count(); }                        (function entry, bpftrace's kind);
#   (c) uprobe:hot@hot.c:LINE { @ = count(); @s = sum(locals.x + locals.y); }  (two locals);
# built -O0 (the two in stack slots: two user-memory reads) and -O2 (registers). Also the time of
# `rbt -l 'uprobe:hot@hot.c:*'` and -lv. Interleaved runs, medians of N (default 5).
# Usage: bench/line_locals.sh [N]. Not a test: prints Markdown rows.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
CALLS=${CALLS:-200000}
cargo build -q --release -p runtime --bin rbt
RBT=$PWD/target/release/rbt
OUT=$PWD/target/line-bench
mkdir -p "$OUT"
LINE=$(grep -n 'rbt-line: hot' bench/lines/hot.c | cut -d: -f1)
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for opt in O0 O2; do
    gcc -$opt -g -o "$OUT/hot-$opt" bench/lines/hot.c
    : > "$OUT/runs-$opt"; rm -f "$OUT/rows.$opt"
    for _ in $(seq "$N"); do
        a=$("$OUT/hot-$opt" "$CALLS" | cut -d' ' -f1)
        b=$("$RBT" -e "uprobe:$OUT/hot-$opt:step { @ = count(); }" -c "$OUT/hot-$opt $CALLS" | awk '/ns per call/{print $1}')
        c=$("$RBT" -e "uprobe:$OUT/hot-$opt@hot.c:$LINE { @ = count(); @s = sum(locals.x + locals.y); }" \
            -c "$OUT/hot-$opt $CALLS" | awk '/ns per call/{print $1}')
        echo "$a $b $c" >> "$OUT/runs-$opt"
    done
    a=$(cut -d' ' -f1 "$OUT/runs-$opt" | median); b=$(cut -d' ' -f2 "$OUT/runs-$opt" | median)
    c=$(cut -d' ' -f3 "$OUT/runs-$opt" | median)
    awk -v o="$opt" -v a="$a" -v b="$b" -v c="$c" 'BEGIN{
        printf "| -%s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", o, a, b, c, b-a, c-a, (c-a)/(b-a) }' > "$OUT/rows.$opt"
done
echo "| build | ns per call, no probe | uprobe:hot:step count | line probe, two locals | per hit, function probe | per hit, line probe | ratio |"
echo "|---|---|---|---|---|---|---|"
cat "$OUT"/rows.O0 "$OUT"/rows.O2
for flag in -l -lv; do
    t=$(for _ in $(seq "$N"); do s=$(date +%s%N); "$RBT" $flag "uprobe:$OUT/hot-O2@hot.c:*" > /dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 )); done | median)
    echo "rbt $flag 'uprobe:hot@hot.c:*': $t us (median of $N)"
done
