//! Tests of tracefs format parsing and typing, over real format files pasted in.
use super::*;

// Real format files from Linux 6.18, tabs written as `\t`.
pub(crate) const OPENAT: &str = "name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: \"dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx\", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->mode))
";

pub(crate) const SCHED_SWITCH: &str = "name: sched_switch
ID: 372
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;
\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;

print fmt: \"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d\", REC->prev_comm, REC->prev_pid, REC->prev_prio, REC->next_comm, REC->next_pid, REC->next_prio
";

pub(crate) const SCHED_PROCESS_EXEC: &str = "name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;

print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid
";

const RAW_SYS_ENTER: &str = "name: sys_enter
ID: 443
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;

print fmt: \"NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)\", REC->id, REC->args[0], REC->args[1], REC->args[2], REC->args[3], REC->args[4], REC->args[5]
";

fn int(size: u8, signed: bool) -> FieldType {
    FieldType::Integer { size, signed }
}

/// `(name, c_type, offset, size, type)` of every field after the common header.
fn summary(format: &TracepointFormat) -> Vec<(&str, &str, u32, u32, FieldType)> {
    let fields = format.fields.iter().filter(|f| !f.common);
    fields.map(|f| (&*f.name, &*f.c_type, f.offset, f.size, f.ty.clone())).collect()
}

#[test]
fn common_fields_come_first() {
    let format = parse_format("sched", "sched_switch", SCHED_SWITCH).expect("parses");
    let common: Vec<_> = format.fields.iter().map(|f| (&*f.name, f.offset, f.common, f.ty.clone())).take(5).collect();
    assert_eq!(
        common,
        [
            ("common_type", 0, true, int(2, false)),
            ("common_flags", 2, true, int(1, false)),
            ("common_preempt_count", 3, true, int(1, false)),
            ("common_pid", 4, true, int(4, true)),
            ("prev_comm", 8, false, FieldType::CharArray { len: 16 }),
        ]
    );
}

#[test]
fn openat_widens_ints_and_keeps_umode_t_a_u16() {
    let format = parse_format("syscalls", "sys_enter_openat", OPENAT).expect("parses");
    assert_eq!((&*format.category, &*format.event), ("syscalls", "sys_enter_openat"));
    let pointer = FieldType::Pointer { pointee: "const char".into() };
    assert_eq!(
        summary(&format),
        vec![
            ("__syscall_nr", "int", 8, 4, int(4, true)),
            ("dfd", "int", 16, 8, int(8, true)),
            ("filename", "const char *", 24, 8, pointer),
            ("flags", "int", 32, 8, int(8, true)),
            ("mode", "umode_t", 40, 8, int(2, false)),
        ]
    );
    assert!(!format.fields[5].signed, "`signed:` is kept as the kernel wrote it");
}

#[test]
fn sched_switch_has_char_arrays_as_strings() {
    let format = parse_format("sched", "sched_switch", SCHED_SWITCH).expect("parses");
    let comm = FieldType::CharArray { len: 16 };
    assert_eq!(
        summary(&format),
        vec![
            ("prev_comm", "char[16]", 8, 16, comm.clone()),
            ("prev_pid", "pid_t", 24, 4, int(4, true)),
            ("prev_prio", "int", 28, 4, int(4, true)),
            ("prev_state", "long", 32, 8, int(8, true)),
            ("next_comm", "char[16]", 40, 16, comm),
            ("next_pid", "pid_t", 56, 4, int(4, true)),
            ("next_prio", "int", 60, 4, int(4, true)),
        ]
    );
}

#[test]
fn data_loc_strings() {
    let format = parse_format("sched", "sched_process_exec", SCHED_PROCESS_EXEC).expect("parses");
    assert_eq!(
        summary(&format),
        vec![
            ("filename", "__data_loc char[]", 8, 4, FieldType::DataLocString),
            ("pid", "pid_t", 12, 4, int(4, true)),
            ("old_pid", "pid_t", 16, 4, int(4, true)),
        ]
    );
}

#[test]
fn integer_arrays() {
    let format = parse_format("raw_syscalls", "sys_enter", RAW_SYS_ENTER).expect("parses");
    let args = FieldType::IntArray { elem_size: 8, signed: false, len: 6 };
    assert_eq!(summary(&format), vec![("id", "long", 8, 8, int(8, true)), ("args", "unsigned long[6]", 16, 48, args),]);
}

/// Declarations from other Linux 6.18 formats, with the type bpftrace 0.17 gave each
/// (`bpftrace -d` prints it after semantic analysis).
#[test]
fn types_match_bpftrace() {
    let pointer = |pointee: &str| FieldType::Pointer { pointee: pointee.into() };
    let cases = [
        ("pid_t", None, 8, false, int(8, false)), // sys_enter_kill: widened, and unsigned
        ("const int", None, 8, false, int(4, true)), // landlock: `const` escapes widening
        ("const clockid_t", None, 8, false, int(4, true)),
        ("key_t", None, 8, false, int(4, true)),
        ("loff_t", None, 8, false, int(8, true)),
        ("long", None, 8, false, int(8, true)),
        ("bool", None, 1, false, int(1, false)),
        ("char", None, 1, false, int(1, true)),
        ("dev_t", None, 4, false, int(4, false)),
        ("xfs_daddr_t", None, 8, true, int(8, true)),
        ("enum dma_data_direction", None, 4, false, int(4, false)),
        ("enum xfs_group_type", None, 1, false, int(1, false)),
        ("u8", Some("16"), 16, false, FieldType::IntArray { elem_size: 1, signed: false, len: 16 }),
        ("long", Some("3"), 24, true, FieldType::IntArray { elem_size: 8, signed: true, len: 3 }),
        ("void *", None, 8, false, pointer("void")),
        ("const char *const *", None, 8, false, pointer("const char *const")),
        ("cap_user_header_t", None, 8, false, pointer("struct __user_cap_header_struct")),
        ("__data_loc u64[]", None, 4, false, FieldType::DataLocString),
        ("struct in6_addr", None, 16, false, FieldType::Unsupported),
    ];
    for (c_type, array, size, signed, expected) in cases {
        assert_eq!(field_type(c_type, array, size, signed), expected, "{c_type}");
    }
}

#[test]
fn bad_formats_are_errors() {
    assert_eq!(parse_format("a", "b", "name: b\n"), Err(FormatParseError::MissingFormatLine));
    let bad = "format:\n\tfield:int x;\toffset:8;\n";
    assert!(matches!(
        parse_format("a", "b", bad),
        Err(FormatParseError::BadField { line: 2, reason: "missing or bad `size:`", .. })
    ));
}

#[test]
fn verbose_params_skip_common_fields() {
    // `bpftrace -lv tracepoint:syscalls:sys_enter_openat` prints these after the name.
    let params = ["int __syscall_nr", "int dfd", "const char * filename", "int flags", "umode_t mode"];
    assert_eq!(verbose_params(OPENAT), params);
    let params = ["__data_loc char[] filename", "pid_t pid", "pid_t old_pid"];
    assert_eq!(verbose_params(SCHED_PROCESS_EXEC), params);
}
