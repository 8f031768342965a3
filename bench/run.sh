#!/usr/bin/env bash
# Side-by-side benchmarks of rbt and bpftrace 0.17 on this machine (root, BPF). Medians of N
# launches, ratios measured in the same run. Usage: bench/run.sh [N]   (default 7)
# BENCH_ONLY=TEXT measures only the per-event scripts containing TEXT (and skips the rest).
# Not a test: results are printed as Markdown rows for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-7}
cargo build -q --release -p runtime -p tests
RBT=target/release/rbt
WORK=$PWD/target/release/rbt-workload
BPFTRACE=${BPFTRACE:-bpftrace}

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# The scripts measured per event (and, with the printf script below, launch until attached).
PER_EVENT_SCRIPTS=(
    'tracepoint:syscalls:sys_enter_getppid { @ = count(); }'
    'tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); }'
    'tracepoint:syscalls:sys_enter_getppid { @ = hist(nsecs & 0xffff); }'
    'tracepoint:syscalls:sys_enter_getppid { $v = nsecs & 0xfff; @l = lhist($v, 0, 4096, 256); @s = stats($v); @a = avg($v); @mn = min($v); @mx = max($v); }'
    'tracepoint:syscalls:sys_enter_getppid { printf("%d %s\n", pid, comm); }'
    'tracepoint:sched:sched_switch { @start[args->prev_pid] = nsecs; $t = @start[args->next_pid]; if ($t) { @off[args->next_comm] = sum(nsecs - $t); delete(@start[args->next_pid]); } }'
    'tracepoint:sched:sched_switch { @start[args->prev_pid] = nsecs; @k[args->prev_pid] = kstack; $t = @start[args->next_pid]; if ($t) { @off[@k[args->next_pid]] = sum(nsecs - $t); delete(@start[args->next_pid]); } }'
    'tracepoint:syscalls:sys_enter_getppid { @[curtask->real_parent->tgid, curtask->se.load.weight] = count(); }'
    "uprobe:$WORK:rbt_workload_add { @start[tid] = nsecs; } uretprobe:$WORK:rbt_workload_add { @lat = hist(nsecs - @start[tid]); delete(@start[tid]); }"
)
PRINTF_SCRIPT='tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { printf("%d %s\n", pid, comm); }'
if [ -n "${BENCH_ONLY:-}" ]; then
    only=()
    for script in "${PER_EVENT_SCRIPTS[@]}"; do [[ $script == *"$BENCH_ONLY"* ]] && only+=("$script"); done
    PER_EVENT_SCRIPTS=("${only[@]}")
fi

# Wall time and peak RSS of one launch of `BEGIN { exit(); }`.
launch() {
    local t0 t1 rss
    t0=$(date +%s%N)
    rss=$(/usr/bin/time -f "%M" "$@" -e 'BEGIN { exit(); }' 2>&1 >/dev/null | tail -1)
    t1=$(date +%s%N)
    echo "$(awk "BEGIN{printf \"%.4f\", ($t1-$t0)/1e9}") $rss"
}

echo "| measure | rbt (median) | bpftrace (median) | ratio |"
echo "|---|---|---|---|"
if [ -z "${BENCH_ONLY:-}" ]; then
for tool in rbt bpftrace; do
    bin=$RBT; [ $tool = bpftrace ] && bin=$BPFTRACE
    : > /tmp/bench_$tool
    for _ in $(seq "$N"); do launch "$bin" >> /tmp/bench_$tool; done
done
rt=$(cut -d' ' -f1 /tmp/bench_rbt | median); bt=$(cut -d' ' -f1 /tmp/bench_bpftrace | median)
rm_=$(cut -d' ' -f2 /tmp/bench_rbt | median); bm=$(cut -d' ' -f2 /tmp/bench_bpftrace | median)
echo "| \`BEGIN { exit(); }\` end to end | ${rt} s | ${bt} s | $(awk "BEGIN{printf \"%.2f\", $rt/$bt}") |"
echo "| peak RSS, same | $((rm_/1024)) MB | $((bm/1024)) MB | $(awk "BEGIN{printf \"%.2f\", $rm_/$bm}") |"
fi

# Launch until every probe is attached, in ms. Both tools fork the -c child early but let it
# exec only once every probe is attached, so the child's first step (`rbt-workload now`: the wall
# clock in ns) minus the wall clock just before the launch is the time to attach, plus one exec
# of the workload for both. The child exits at once and each tool exits with it.
attach_ms() {
    local bin=$1 script=$2 t0 t1
    t0=${EPOCHREALTIME/[.,]/}
    "$bin" -c "$WORK now" -e "$script" > /tmp/bench_attach 2>/dev/null || true
    t1=$(awk '/^now /{print $2}' /tmp/bench_attach)
    if [ -n "$t1" ]; then awk "BEGIN{printf \"%.1f\", ($t1 / 1000 - $t0) / 1000}"; else echo n/a; fi
}
ATTACH_SCRIPTS=("${PER_EVENT_SCRIPTS[@]}")
[ -n "${BENCH_ONLY:-}" ] || ATTACH_SCRIPTS+=("$PRINTF_SCRIPT")
for script in "${ATTACH_SCRIPTS[@]}"; do
    r=(); b=()
    for _ in $(seq "$N"); do r+=("$(attach_ms $RBT "$script")"); b+=("$(attach_ms $BPFTRACE "$script")"); done
    rm_=$(printf '%s\n' "${r[@]}" | median); bm=$(printf '%s\n' "${b[@]}" | median)
    echo "| launch until attached: \`$script\` | $rm_ ms | $bm ms | $(awk "BEGIN{printf \"%.2f\", $rm_/$bm}") |"
done

# In-kernel ns per event: run_time_ns / run_cnt of the tool's programs, from bpf_stats.
sysctl -q -w kernel.bpf_stats_enabled=1
trap 'sysctl -q -w kernel.bpf_stats_enabled=0' EXIT
ns_per_event() {
    # Reads stats while the tool runs: start it on a long workload, sample bpftool-free via fdinfo.
    # With several programs (a uprobe and its uretprobe) the figure is their summed run time per
    # run of the busiest one: the cost of a call pair.
    local bin=$1 script=$2
    # getppid events for syscall scripts; 4000 short naps (>= 8000 context switches) for sched
    # ones; 300,000 calls of rbt_workload_add for uprobe ones.
    "$bin" -c "$WORK getppid 300000 nap 100 4000 call 300000 nap 300000 1" -e "$script" >/dev/null 2>&1 &
    local pid=$!
    sleep 0.15
    local best=""
    for _ in $(seq 40); do
        local total=0 most=0
        for fd in /proc/$pid/fdinfo/*; do
            if grep -q '^prog_type' "$fd" 2>/dev/null; then
                t=$(awk '/^run_time_ns/{print $2}' "$fd"); c=$(awk '/^run_cnt/{print $2}' "$fd")
                [ -n "$c" ] && [ -n "$t" ] && total=$((total + t)) && [ "$c" -gt "$most" ] && most=$c
            fi
        done
        [ "$most" -gt 1000 ] && best=$(awk "BEGIN{printf \"%.0f\", $total/$most}") && break
        sleep 0.05
    done
    kill -INT $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    echo "${best:-n/a}"
}
for script in "${PER_EVENT_SCRIPTS[@]}"; do
    r=(); b=()
    for _ in $(seq "$N"); do r+=("$(ns_per_event $RBT "$script")"); b+=("$(ns_per_event $BPFTRACE "$script")"); done
    rm_=$(printf '%s\n' "${r[@]}" | median); bm=$(printf '%s\n' "${b[@]}" | median)
    echo "| ns/event: \`$script\` | $rm_ | $bm | $(awk "BEGIN{printf \"%.2f\", $rm_/$bm}") |"
done

# printf per event: 400,000 events, lines printed and events lost; peak RSS.
[ -n "${BENCH_ONLY:-}" ] && exit 0
for tool in rbt bpftrace; do
    bin=$RBT; [ $tool = bpftrace ] && bin=$BPFTRACE
    /usr/bin/time -f "%M" -o /tmp/bench_rss "$bin" -c "$WORK getppid 400000" \
        -e "$PRINTF_SCRIPT" > /tmp/bench_pf 2>/dev/null
    lines=$(grep -c rbt-workload /tmp/bench_pf || true)
    lost=$(awk '/^Lost/{s+=$2} END{print s+0}' /tmp/bench_pf)
    echo "| printf per event, 400000 events ($tool) | $lines lines, $lost lost | peak RSS $(( $(tail -1 /tmp/bench_rss) / 1024 )) MB | |"
done
ls -l "$RBT" | awk '{printf "| release binary | %.1f MB | | |\n", $5/1048576}'
