//! The catalog over systems held in memory: where tracefs is, kprobes present or not, BTF
//! missing, fentry programs refused, tracepoint ids, library names through the ld.so cache.

use compiler::ktypes::KFunction;

use super::*;
use crate::ldso_cache;
use crate::MemSource;

const EVENTS: &str = "sched:sched_switch\nsyscalls:sys_enter_read\n";

fn with_tracefs(source: MemSource) -> MemSource {
    source.with_file("/sys/kernel/tracing/available_events", EVENTS)
}

#[test]
fn tracefs_is_found_under_debugfs_on_older_systems() {
    let catalog = Catalog::new(MemSource::default().with_file("/sys/kernel/debug/tracing/available_events", EVENTS));
    assert_eq!(catalog.tracefs(), Path::new(DEBUGFS_TRACEFS));
    assert_eq!(catalog.events(), ["sched:sched_switch", "syscalls:sys_enter_read"]);
    assert_eq!(Catalog::new(MemSource::default()).tracefs(), Path::new(TRACEFS));
}

#[test]
fn kernel_functions_need_kprobes() {
    let functions = "vfs_read\nvfs_write\n";
    let source =
        with_tracefs(MemSource::default()).with_file("/sys/kernel/tracing/available_filter_functions", functions);
    let without = Catalog::new(source.clone());
    assert_eq!(without.kernel_functions("vfs_*"), Err(kprobes::NO_KPROBES.to_owned()));
    let with = Catalog::new(source.with_file("/sys/bus/event_source/devices/kprobe/type", "6\n"));
    assert_eq!(with.kernel_functions("vfs_r*"), Ok(vec!["vfs_read".to_owned()]));
}

#[test]
fn missing_btf_says_why() {
    let catalog = Catalog::new(with_tracefs(MemSource::default()));
    let why = catalog.kernel_types_missing().expect("no BTF");
    assert!(why.starts_with("could not read /sys/kernel/btf/vmlinux: "), "{why}");
    assert!(why.ends_with("; kernel types need a kernel built with CONFIG_DEBUG_INFO_BTF"), "{why}");
    let elsewhere = Catalog::new(MemSource::default().with_file("/boot/btf", "not BTF")).with_btf_path("/boot/btf");
    assert!(elsewhere.kernel_types_missing().is_some_and(|why| why.starts_with("/boot/btf is not BTF: bad magic")));
}

#[test]
fn refused_fentry_programs_are_reported_once() {
    let func = KFunction { name: "vfs_read".into(), btf_id: 7, params: Vec::new(), ret: None };
    let refused = Catalog::new(MemSource::default().with_fentry_errno(1));
    let why = refused.trampolines_missing(&func).expect("refused");
    assert!(why.starts_with("this kernel does not load fentry/fexit programs (BPF trampolines): "), "{why}");
    assert_eq!(Catalog::new(MemSource::default()).trampolines_missing(&func), None);
}

#[test]
fn tracepoint_ids_are_read_from_tracefs() {
    let source = with_tracefs(MemSource::default())
        .with_file("/sys/kernel/tracing/events/sched/sched_switch/id", "372\n")
        .with_file("/sys/kernel/tracing/events/sched/bad/id", "x\n");
    let catalog = Catalog::new(source);
    assert_eq!(catalog.event_id("sched", "sched_switch").expect("an id"), 372);
    let bad = catalog.event_id("sched", "bad").expect_err("not a number");
    assert_eq!(bad.to_string(), "/sys/kernel/tracing/events/sched/bad/id: not a tracepoint id: \"x\"");
    assert!(catalog.event_id("sched", "nope").is_err());
}

#[test]
fn library_names_are_looked_up_in_the_ld_so_cache() {
    let cache = ldso_cache::tests::cache(&[("libc.so.6", "/usr/lib/libc.so.6")]);
    let source = MemSource::default().with_file("/etc/ld.so.cache", cache).with_file("/usr/lib/libc.so.6", "ELF");
    let catalog = Catalog::new(source);
    assert_eq!(catalog.binary("libc"), Ok(("/usr/lib/libc.so.6".to_owned(), b"ELF".to_vec())));
    let missing = catalog.binary("libnope").expect_err("not in the cache");
    assert_eq!(missing, "no library named 'libnope' in the ld.so cache (give a path instead)");
    assert!(catalog.user_functions("libc", "*").is_err_and(|e| e.contains("is not an ELF binary")));
}
