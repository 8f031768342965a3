#!/bin/sh
# Re-records the golden outputs in this folder from bpftrace v0.17.0 (needs root).
# For every NAME.bt, NAME.txt gets `bpftrace -e` stdout and NAME.json gets `bpftrace -f json -e` stdout.
set -eu
cd "$(dirname "$0")"
for bt in *.bt; do
  name=${bt%.bt}
  bpftrace -e "$(cat "$bt")" > "$name.txt" 2>/dev/null
  bpftrace -f json -e "$(cat "$bt")" > "$name.json" 2>/dev/null
done
