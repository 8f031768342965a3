//! `-l` output over a catalog of pasted-in format files, compared with what bpftrace 0.17 prints.

use compiler::ProbeCatalog;

use super::*;
use crate::tracefs_format::tests::{OPENAT, SCHED_PROCESS_EXEC, SCHED_SWITCH};
use crate::MemSource;

/// A catalog whose tracefs holds the given `(category, event, format)`s.
fn fake_catalog(events: &[(&str, &str, &str)]) -> Catalog<MemSource> {
    let mut source = MemSource::default();
    let mut available = String::new();
    for (category, event, format) in events {
        source = source.with_file(format!("/sys/kernel/tracing/events/{category}/{event}/format"), *format);
        available.push_str(&format!("{category}:{event}\n"));
    }
    Catalog::new(source.with_file("/sys/kernel/tracing/available_events", available))
}

#[test]
fn listing_matches_bpftrace() {
    let tracefs = fake_catalog(&[
        ("sched", "sched_switch", SCHED_SWITCH),
        ("fib", "fib_table_lookup", ""),
        ("syscalls", "sys_enter_openat", OPENAT),
        ("fib6", "fib6_table_lookup", ""),
        ("sched", "sched_process_exec", SCHED_PROCESS_EXEC),
    ]);
    let list = |search, verbose| list_probes(&tracefs, search, verbose).expect("lists");
    assert_eq!(
        list(None, false),
        "hardware:*:\niter:task\niter:task_file\nsoftware:*:\ntracepoint:fib6:fib6_table_lookup\ntracepoint:fib:fib_table_lookup\n\
         tracepoint:sched:sched_process_exec\ntracepoint:sched:sched_switch\n\
         tracepoint:syscalls:sys_enter_openat\n"
    );
    assert_eq!(list(Some("t:sched:*"), false), "tracepoint:sched:sched_process_exec\ntracepoint:sched:sched_switch\n");
    assert_eq!(list(Some("*switch"), false), "hardware:*switch:\nsoftware:*switch:\ntracepoint:sched:sched_switch\n");
    assert_eq!(list(Some("*:cs"), false), "hardware:cs:\nsoftware:cs:\n");
    assert_eq!(
        list(Some("it:*file*"), true),
        "iter:task_file\n    struct task_struct * task\n    int fd\n    struct file * file\n"
    );
    assert_eq!(list(Some("h:cycles:1000"), false), "hardware:cycles:\n");
    assert_eq!(list(Some("tracepoint:*exec*"), false), "tracepoint:sched:sched_process_exec\n");
    assert_eq!(
        list(Some("tracepoint:syscalls:sys_enter_openat"), true),
        "tracepoint:syscalls:sys_enter_openat\n    int __syscall_nr\n    int dfd\n    \
         const char * filename\n    int flags\n    umode_t mode\n"
    );
    assert_eq!(list(Some("BEGIN,interval:s:1,s:cpu*"), false), "special::\ninterval:\nsoftware:cpu*:\n");
    assert_eq!(list(Some("tracepoint:nope:nope"), false), "");
    assert!(list_probes(&tracefs, Some("tracepoint:sched"), false).is_err());
    assert!(list_probes(&tracefs, Some("kprobe:foo"), false).is_err());
    for rejected in ["hardware:foo", "hardware:", "software:cs:", "iter:task", "iter"] {
        assert!(list_probes(&tracefs, Some(rejected), false).is_err(), "{rejected}");
    }

    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(c, e)| ((*c).to_owned(), (*e).to_owned())).collect()
    };
    let fibs = pairs(&[("fib6", "fib6_table_lookup"), ("fib", "fib_table_lookup")]);
    assert_eq!(tracefs.match_tracepoints("fib*", "*"), fibs);
    let format = tracefs.tracepoint_format("sched", "sched_switch").expect("exists");
    assert_eq!(format.fields.len(), 11);
    assert_eq!(tracefs.tracepoint_format("sched", "nope"), None);
    assert_eq!(tracefs.all_tracepoints().len(), 5);
}

/// bpftrace cuts libbpf's C dump into definitions at lines ending in `{` and lines that are
/// exactly `};`: typedefs and forward declarations between them are dropped, and a definition
/// that ends otherwise (a typedef'd anonymous struct, a packed struct) runs on to the next `};`;
/// one never closed is dropped.
#[test]
fn type_definitions_are_cut_as_bpftrace_cuts_them() {
    let dump = "typedef unsigned int u32;\n\nstruct a {\n\tu32 x;\n};\n\nstruct b;\n\n\
                typedef struct {\n\tint counter;\n} atomic_t;\n\nstruct c {\n\tatomic_t n;\n};\n\n\
                struct d {\n\tunion {\n\t\tint i;\n\t};\n} __attribute__((packed));\n\nstruct empty {};\n\n\
                struct e {\n\tint i;\n};\n\nstruct unfinished {\n\tint i;\n";
    let definitions: Vec<String> = type_definitions(dump).into_iter().collect();
    assert_eq!(
        definitions,
        [
            "struct a {\n\tu32 x;\n};\n",
            "struct d {\n\tunion {\n\t\tint i;\n\t};\n} __attribute__((packed));\n\nstruct empty {};\n\n\
             struct e {\n\tint i;\n};\n",
            "typedef struct {\n\tint counter;\n} atomic_t;\n\nstruct c {\n\tatomic_t n;\n};\n",
        ]
    );
}
