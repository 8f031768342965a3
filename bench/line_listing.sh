#!/usr/bin/env bash
# Listing a function's source lines (issue 13), side by side in one run: `big`, a function of
# about 1,000 lines in a 4 MB binary of 67,000 source lines (bench/lines/big.py), listed by
#   rbt -l  'uprobe:big:big:*'       (the lines, as uprobe:BIN:FUNC:LINE)
#   perf probe -x big -L big         (the lines with their source text)
#   rbt -lv 'uprobe:big:big:*'       (the lines with source text and every variable at each)
#   rbt -l  'uprobe:big@big.c:*'     (every line of the file: 65,000)
# Interleaved runs, medians of N (default 7), in milliseconds. Needs gcc and perf (linux-perf).
# Usage: bench/line_listing.sh [N]. Not a test: prints Markdown rows.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-7}
cargo build -q --release -p runtime --bin rbt
RBT=$PWD/target/release/rbt
OUT=$PWD/target/line-listing-bench
mkdir -p "$OUT"
cd "$OUT"
[ -x big ] || { python3 ../../bench/lines/big.py 2000 > big.c; gcc -O2 -g -o big big.c; }
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms() { local s e; s=$(date +%s%N); "$@" > /dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
: > runs
for _ in $(seq "$N"); do
    echo "$(ms "$RBT" -l 'uprobe:./big:big:*') $(ms perf probe -x ./big -L big) $(ms "$RBT" -lv 'uprobe:./big:big:*') $(ms "$RBT" -l 'uprobe:./big@big.c:*')" >> runs
done
lines=$("$RBT" -l 'uprobe:./big:big:*' | wc -l)
col() { cut -d' ' -f"$1" runs | median; }
a=$(col 1); b=$(col 2); c=$(col 3); d=$(col 4)
echo "| lines of big | rbt -l FUNC:* | perf probe -L FUNC | ratio | rbt -lv FUNC:* | rbt -l FILE:* |"
echo "|---|---|---|---|---|---|"
awk -v n="$lines" -v a="$a" -v b="$b" -v c="$c" -v d="$d" \
    'BEGIN{ printf "| %d | %d ms | %d ms | %.2f | %d ms | %d ms |\n", n, a, b, a/b, c, d }'
