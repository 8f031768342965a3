#!/usr/bin/env bash
# User stacks without frame pointers (issue 12), side by side in one run, as root:
#  1. in-kernel ns per sample of `tracepoint:syscalls:sys_enter_getppid /pid == P/ { @[ustack] =
#     count(); }` on a 30-function-deep chain (bench/ustack/deep.c) ending in getppid(): built
#     -fomit-frame-pointer under rbt's default (.eh_frame tables); built -fno-omit-frame-pointer
#     under RBT_USTACK_UNWIND=fp (the kernel's frame-pointer walk, bpf_get_stackid), under rbt's
#     default, and under bpftrace 0.17. ns per sample is the delta of run_time_ns over the delta
#     of run_cnt of the tracer's busiest program (its fdinfo, kernel.bpf_stats_enabled=1) across
#     the workload's calls; every run also checks the printed stack has all 30 functions in order;
#  2. unwind table bytes per MB of .text (bench/unwind_tables.sh), the rows every executable
#     file mapped on this machine now would need, and the BPF map memory (fdinfo memlock) of a
#     whole-system `profile:hz:99 { @[ustack, kstack] = count(); }`;
#  3. launch until attached, and launch until the symbolizer thread's last bpf(2) call (the
#     tables loaded), of rbt -p on a sleeping python3, default (with the on-disk table cache
#     warm, and cold) against RBT_USTACK_UNWIND=fp, timed by bpftrace on the kernel's clock.
# Usage: bench/ustack_unwind.sh [N] (default 5 runs each). Not a test: prints Markdown rows.
# BENCH_ONLY=cost|memory|startup runs one part.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
CALLS=${CALLS:-100000}
cargo build -q --release -p runtime --bin rbt
RBT=$PWD/target/release/rbt
BPFTRACE=${BPFTRACE:-bpftrace}
PYTHON=$(readlink -f /usr/bin/python3)
OUT=$PWD/target/ustack-bench
mkdir -p "$OUT"
gcc -O2 -fomit-frame-pointer -o "$OUT/deep-nofp" bench/ustack/deep.c
gcc -O2 -fno-omit-frame-pointer -o "$OUT/deep-fp" bench/ustack/deep.c

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
only() { [ -z "${BENCH_ONLY:-}" ] || [ "$BENCH_ONLY" = "$1" ]; }
sysctl -q -w kernel.bpf_stats_enabled=1
trap 'sysctl -q -w kernel.bpf_stats_enabled=0' EXIT

# Waits (up to 20 s) until FILE contains TEXT.
wait_for() {
    for _ in $(seq 400); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "timed out waiting for '$2' in $1" >&2
    return 1
}

# "run_time_ns run_cnt verified_insns" of the busiest BPF program process PID holds.
prog_stats() {
    local fd best_t=0 best_c=0 best_v=0 t c
    for fd in /proc/$1/fdinfo/*; do
        grep -q '^prog_type' "$fd" 2>/dev/null || continue
        t=$(awk '/^run_time_ns/{print $2}' "$fd"); c=$(awk '/^run_cnt/{print $2}' "$fd")
        if [ -n "$c" ] && [ "$c" -gt "$best_c" ]; then
            best_t=$t; best_c=$c; best_v=$(awk '/^verified_insns/{print $2}' "$fd")
        fi
    done
    echo "$best_t $best_c ${best_v:-0}"
}

# The frames of the printed stack with the highest count, innermost first, one per line.
top_stack() {
    awk '/^@\[/{inside=1; n=0; next} inside && /^\]: /{c=$2+0; if (c>best) {best=c; s=frames}; inside=0; next}
         inside {sub(/^ +/, ""); sub(/\+[0-9]+$/, ""); frames=(n++ ? frames "\n" : "") $0}
         END{print s}' "$1"
}

# One measurement: TOOL (rbt or bpftrace) on BINARY with the environment ENV (VAR=VALUE words).
# Prints "ns_per_sample frames missing verified_insns", missing the functions of deep_1..deep_30 and main the
# printed stack lacks (or "none"; "order" if all are there but out of order).
cost_run() {
    local tool=$1 binary=$2 envs=$3 fifo=$OUT/fifo pid tracer before after
    rm -f "$fifo"; mkfifo "$fifo"
    "$binary" "$CALLS" < "$fifo" > "$OUT/deep.out" &
    pid=$!
    exec 7> "$fifo"
    # The tracer must see the workload after its exec: rbt reads a process's mappings once.
    for _ in $(seq 200); do [ "$(readlink /proc/$pid/exe)" = "$binary" ] && break; sleep 0.01; done
    local script="tracepoint:syscalls:sys_enter_getppid /pid == $pid/ { @[ustack] = count(); }"
    if [ "$tool" = rbt ]; then
        # shellcheck disable=SC2086
        env $envs "$RBT" -p "$pid" -e "$script" > "$OUT/tracer.out" 2>&1 &
    else
        "$BPFTRACE" -p "$pid" -e "$script" > "$OUT/tracer.out" 2>&1 &
    fi
    tracer=$!
    wait_for "$OUT/tracer.out" '^Attaching'
    # rbt loads the -p process's tables on its symbolizer thread while probes attach.
    sleep 0.3
    before=$(prog_stats $tracer)
    echo go >&7
    wait_for "$OUT/deep.out" '^done'
    after=$(prog_stats $tracer)
    kill -INT $tracer; wait $tracer || true
    exec 7>&-
    wait $pid || true
    local stack frames want got missing=""
    stack=$(top_stack "$OUT/tracer.out")
    frames=$(printf '%s\n' "$stack" | grep -c . || true)
    want="$(seq 30 -1 1 | sed 's/^/deep_/' | tr '\n' ' ')main "
    got=$(printf '%s\n' "$stack" | grep -x 'deep_[0-9]*\|main' | tr '\n' ' ' || true)
    for f in $want; do [[ " $got" == *" $f "* ]] || missing+="$f,"; done
    [ -n "$missing" ] || { [ "$got" = "$want" ] && missing=none || missing=order; }
    echo "$before $after" | awk -v f="$frames" -v m="${missing%,}" \
        '{printf "%.0f %d %s %d\n", ($4-$1)/($5-$2), f, m, $6}'
}

if only cost; then
    echo "| walk (30-deep chain + libc, ${CALLS} getppid calls) | ns per sample (median of $N) | ratio to (b) | frames printed | of deep_1..deep_30 and main, missing | instructions the verifier processed |"
    echo "|---|---|---|---|---|---|"
    CASES=(
        "(a) -fomit-frame-pointer, rbt default (.eh_frame)|rbt|$OUT/deep-nofp|RBT_USTACK_UNWIND=auto"
        "(b) -fno-omit-frame-pointer, rbt RBT_USTACK_UNWIND=fp (bpf_get_stackid)|rbt|$OUT/deep-fp|RBT_USTACK_UNWIND=fp"
        "(c) -fno-omit-frame-pointer, rbt default (.eh_frame)|rbt|$OUT/deep-fp|RBT_USTACK_UNWIND=auto"
        "(d) -fno-omit-frame-pointer, bpftrace 0.17|bpftrace|$OUT/deep-fp|"
        "(e) -fomit-frame-pointer, rbt RBT_USTACK_UNWIND=fp|rbt|$OUT/deep-nofp|RBT_USTACK_UNWIND=fp"
    )
    # Interleaved: run i of every case, then run i+1, so the machine's load falls on all alike.
    for i in $(seq "$N"); do
        for c in "${!CASES[@]}"; do
            IFS='|' read -r _ tool binary envs <<< "${CASES[$c]}"
            cost_run "$tool" "$binary" "$envs" >> "$OUT/cost.$c.$i"
        done
    done
    base=""
    for c in "${!CASES[@]}"; do
        IFS='|' read -r label _ <<< "${CASES[$c]}"
        ns=$(cat "$OUT"/cost.$c.* | cut -d' ' -f1 | median)
        frames=$(cat "$OUT"/cost.$c.* | cut -d' ' -f2 | sort -u | tr '\n' ' ')
        ok=$(cat "$OUT"/cost.$c.* | cut -d' ' -f3 | sort -u | tr '\n' ' ')
        insns=$(cat "$OUT"/cost.$c.* | cut -d' ' -f4 | sort -u | tr '\n' ' ')
        [ $c = 1 ] && base=$ns
        echo "$label|$ns|$frames|$ok|$insns" >> "$OUT/cost.rows"
    done
    while IFS='|' read -r label ns frames ok insns; do
        echo "| $label | $ns | $(awk "BEGIN{printf \"%.2f\", $ns/$base}") | ${frames% } | ${ok% } | ${insns% } |"
    done < "$OUT/cost.rows"
    rm -f "$OUT"/cost.*
    echo
fi

if only memory; then
    bench/unwind_tables.sh /lib/x86_64-linux-gnu/libc.so.6 "$PYTHON" target/release/rbt \
        "$(ls ~/.rustup/toolchains/*/lib/librustc_driver-*.so 2>/dev/null | head -1)" | grep -v '^$'
    echo
    # Every distinct executable file mapped by a process now: the rows the whole system needs
    # (each file on its own: one without unwind information is left out, as rbt leaves it).
    cargo build -q --release -p unwind --example unwind_tables
    { cat /proc/[0-9]*/maps 2>/dev/null || true; } | awk '$2 ~ /x/ && $6 ~ /^\// {print $6}' | sort -u > "$OUT/files.txt"
    nfiles=0; rows=0; bytes=0
    while read -r f; do
        [ -f "$f" ] || continue
        nfiles=$((nfiles + 1))
        line=$(target/release/examples/unwind_tables "$f" 2>/dev/null | awk -F'|' 'NR==3 {print $7+0, $8+0}') || true
        [ -n "$line" ] || continue
        rows=$((rows + ${line% *})); bytes=$((bytes + ${line#* }))
    done < "$OUT/files.txt"
    echo "| every executable file mapped on this machine now | $nfiles files | $rows rows | $((bytes / 1024)) KiB |"
    echo
    # The maps of a whole-system profile, with every running process's tables loaded: with the
    # default rows map, and, if files were left out, with one big enough for every file above.
    need=4096; while [ $need -lt $rows ]; do need=$((need * 2)); done
    for envs in RBT_UNWIND_ROWS_DEFAULT=1 RBT_UNWIND_ROWS=$need; do
        if [ "$envs" != RBT_UNWIND_ROWS_DEFAULT=1 ]; then
            grep -q 'did not fit' "$OUT/whole.out" || break
        fi
        # shellcheck disable=SC2086
        env $envs "$RBT" -e 'profile:hz:99 { @[ustack, kstack] = count(); } interval:s:3 { exit(); }' > "$OUT/whole.out" 2>&1 &
        tracer=$!
        wait_for "$OUT/whole.out" '^Attaching'
        sleep 2
        # Each map once (rbt may hold two fds of one map).
        for fd in /proc/$tracer/fdinfo/*; do
            grep -q '^map_type' "$fd" 2>/dev/null || continue
            awk '/^map_type/{t=$2} /^max_entries/{e=$2} /^value_size/{v=$2} /^memlock/{m=$2} /^map_id/{id=$2}
                END{printf "%d %d map type %d, %d x %d B: %.1f MB\n", id, m, t, e, v, m/1048576}' "$fd"
        done | sort -u -k1,1n | cut -d' ' -f2- > "$OUT/maps.txt"
        wait $tracer || true
        total=$(awk '{s+=$1} END{printf "%.1f", s/1048576}' "$OUT/maps.txt")
        label=${envs/RBT_UNWIND_ROWS_DEFAULT=1/default rows map}
        echo "| whole-system \`profile:hz:99 { @[ustack, kstack] = count(); }\`, $label, $(ls -d /proc/[0-9]* | wc -l) pids | BPF map memory (memlock) $total MB | $(grep -c WARNING "$OUT/whole.out" || true) warnings |"
        echo
        sort -rn "$OUT/maps.txt" | cut -d' ' -f2- | uniq -c | sed 's/^/    /'
        grep WARNING "$OUT/whole.out" | sed 's/^/    /' || true
        echo
    done
fi

if only startup; then
    # A python3 that sleeps; rbt -p on it until an interval ends the run. bpftrace times, on the
    # kernel's clock, each rbt's exec, its BPF_PROG_LOADs (the verifier), its last BPF_LINK_CREATE
    # (every probe attached), and its symbolizer thread's first openat (reading the process's
    # mappings) and last bpf(2) (the process's entry in the procs map, written after its mappings
    # and its files' rows): the table building.
    "$PYTHON" -c 'import time
while True: time.sleep(1)' &
    py=$!
    "$BPFTRACE" -e '
        tracepoint:sched:sched_process_exec /comm == "rbt"/ { printf("exec %d %llu\n", pid, nsecs); }
        tracepoint:syscalls:sys_enter_bpf /comm == "rbt" && args->cmd == 5/ { @load[tid] = nsecs; }
        tracepoint:syscalls:sys_exit_bpf /@load[tid]/ { printf("load %d %llu\n", pid, nsecs - @load[tid]); delete(@load[tid]); }
        tracepoint:syscalls:sys_enter_bpf /comm == "rbt" && args->cmd == 28/ { printf("attach %d %llu\n", pid, nsecs); }
        tracepoint:syscalls:sys_enter_openat /comm == "rbt-symbolizer"/ { printf("open %d %llu\n", pid, nsecs); }
        tracepoint:syscalls:sys_enter_bpf /comm == "rbt-symbolizer"/ { @upd[tid] = nsecs; }
        tracepoint:syscalls:sys_exit_bpf /comm == "rbt-symbolizer"/ {
            printf("tables %d %llu\nupdate %d %llu\n", pid, nsecs, pid, nsecs - @upd[tid]); delete(@upd[tid]); }' \
        > "$OUT/timing.out" 2>&1 &
    observer=$!
    wait_for "$OUT/timing.out" '^Attaching'
    for _ in $(seq 200); do [ "$(readlink /proc/$py/exe)" = "$PYTHON" ] && break; sleep 0.01; done
    : > "$OUT/pids"
    # The default with the on-disk table cache warm (filled by a first run, not timed), with
    # it cold (an empty cache home each run), and frame pointers.
    warm=$OUT/cache-warm
    rm -rf "$warm" "$OUT"/cache-cold.*; mkdir -m 700 "$warm"
    XDG_CACHE_HOME=$warm "$RBT" -p $py -e "profile:hz:99 { @[ustack] = count(); } interval:ms:300 { exit(); }" > /dev/null 2>&1
    for i in $(seq "$N"); do
        for mode in auto cold fp; do
            case $mode in
                auto) envs=(RBT_USTACK_UNWIND=auto "XDG_CACHE_HOME=$warm") ;;
                cold) mkdir -m 700 "$OUT/cache-cold.$i"; envs=(RBT_USTACK_UNWIND=auto "XDG_CACHE_HOME=$OUT/cache-cold.$i") ;;
                fp) envs=(RBT_USTACK_UNWIND=fp) ;;
            esac
            env "${envs[@]}" "$RBT" -p $py \
                -e "profile:hz:99 /pid == $py/ { @[ustack] = count(); } interval:ms:300 { exit(); }" \
                > "$OUT/run.out" 2>&1 &
            echo "$mode $!" >> "$OUT/pids"
            wait $! || true
        done
    done
    sleep 0.3
    kill -INT $observer; wait $observer || true
    kill $py; wait $py 2>/dev/null || true
    # Per rbt, in ms: exec until the last link (attached), time in BPF_PROG_LOAD, the table
    # building (symbolizer's first openat until its last bpf call), exec until the tables are in.
    while read -r mode rpid; do
        awk -v p="$rpid" -v m="$mode" '$2!=p {next} $1=="exec" {e=$3} $1=="attach" {a=$3} $1=="load" {l+=$3}
            $1=="open" && !o {o=$3} $1=="tables" {t=$3} $1=="update" {u+=$3}
            END{printf "%s %.1f %.1f %s %s %s\n", m, (a-e)/1e6, l/1e6, t ? sprintf("%.1f", (t-o)/1e6) : "-",
                t ? sprintf("%.1f", (t-e)/1e6) : "-", t ? sprintf("%.1f", u/1e6) : "-"}' "$OUT/timing.out"
    done < "$OUT/pids" > "$OUT/startup.txt"
    col() { awk -v m="$1" -v c="$2" '$1==m && $c!="-" {print $c}' "$OUT/startup.txt" | median; }
    echo "| rbt -p PID of a sleeping python3 (python3 + libc), ms, median of $N | default (.eh_frame), table cache warm | default, table cache cold | RBT_USTACK_UNWIND=fp | ratio warm to fp |"
    echo "|---|---|---|---|---|"
    for row in "exec until every probe attached (last BPF_LINK_CREATE)|2" "of which in BPF_PROG_LOAD (the verifier)|3"; do
        IFS='|' read -r label c <<< "$row"
        a=$(col auto "$c"); k=$(col cold "$c"); f=$(col fp "$c")
        echo "| $label | $a | $k | $f | $(awk "BEGIN{printf \"%.2f\", $a/$f}") |"
    done
    echo "| building and loading the tables (symbolizer: first openat until last bpf) | $(col auto 4) | $(col cold 4) | - | |"
    echo "| of which in bpf(2) map updates (rows, mappings, procs) | $(col auto 6) | $(col cold 6) | - | |"
    echo "| exec until the tables are loaded | $(col auto 5) | $(col cold 5) | - | |"
fi
