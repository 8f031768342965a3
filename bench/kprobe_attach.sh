#!/usr/bin/env bash
# Attaching a ~500-function kprobe wildcard (kprobe:__x64_sys_*,kprobe:vfs_*: 498 functions) on
# Debian's Linux 6.1 under QEMU TCG, the only kernel with kprobes these tests have (the
# development kernel is built without them). Boots the VM of tests/tests/vm.rs once and prints
# launch-until-attached and detach times from the guest's clock. Takes a few minutes.
# Not a test: results go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p runtime
RBT=$PWD/target/release/rbt cargo test -q -p tests --test vm -- --ignored --exact kprobe_wildcard_attach_time --nocapture 2>&1 | grep -E "^kprobe wildcard|panicked|error" || true
