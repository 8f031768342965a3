//! Shared by the export suites (`export.rs`, hermetic, and `pprof.rs`): a synthetic off-CPU
//! profile, as rbt builds one from `@[kstack, ustack, comm] = sum(...)`, and a scratch directory.

#![allow(dead_code)] // each suite uses part of this file

use std::path::PathBuf;

use export::{Frame, Label, Module, Profile, Sample, ValueType};

/// `@[kstack, ustack, comm] = sum(nsecs - $t)` after a few seconds, symbolized.
pub fn offcpu_profile() -> Profile {
    let app = "/usr/bin/rbt-export-app";
    let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    let kernel = "[kernel.kallsyms]";
    let user = |frames: &[(&str, u64)], module: &str| -> Vec<Frame> {
        frames.iter().map(|&(name, address)| Frame::new(name).in_module(module).at_address(address)).collect()
    };
    let mut app_main = user(&[("main", 0x1100)], app);
    app_main.push(Frame::new("serve_requests").in_module(app).at_address(0x1280).at_line("server.c", 42));
    app_main.push(Frame::new("wait_for_client").in_module(app).at_address(0x1280).at_line("net.h", 7).inlined());
    app_main.extend(user(&[("__libc_accept", 0x7f00_0001_0000)], libc));
    let sample = |comm: &str, pid: u32, user: Vec<Frame>, kernel_frames: &[&str], value: u64| Sample {
        leading: vec![comm.to_string()],
        user,
        kernel: kernel_frames
            .iter()
            .zip(0xffff_ffff_8100_0000u64..)
            .map(|(name, address)| Frame::new(*name).in_module(kernel).at_address(address))
            .collect(),
        value,
        labels: vec![Label::pid(pid), Label::comm(comm)],
    };
    Profile {
        title: "Off-CPU time".to_string(),
        script: Some("tracepoint:sched:sched_switch { @[kstack, ustack, comm] = sum(nsecs - $t); }".to_string()),
        sample_type: ValueType::new("offcpu", "nanoseconds"),
        period: None,
        time_nanos: 1_700_000_000_000_000_000,
        duration_nanos: 5_000_000_000,
        modules: vec![Module { path: app.to_string(), build_id: Some("5f0e1d2c3b4a5968".to_string()) }],
        samples: vec![
            sample("exportapp", 4242, app_main.clone(), &["do_syscall_64", "__sys_accept4", "schedule"], 3_000_000_000),
            sample("exportapp", 4242, app_main, &["do_syscall_64", "__sys_accept4", "schedule"], 500_000_000),
            sample(
                "exportsleep",
                77,
                user(&[("main", 0x2000), ("clock_nanosleep", 0x7f00_0002_0000)], libc),
                &["do_syscall_64", "hrtimer_nanosleep", "schedule"],
                1_000_000_000,
            ),
            sample("kworker/1:0", 12, Vec::new(), &["worker_thread", "schedule"], 250_000_000),
        ],
    }
}

/// A directory of the test's own (tests run in parallel in one process).
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-export-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}
