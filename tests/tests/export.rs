//! The folded-stack and flame graph exports of a synthetic off-CPU profile, written to files and
//! read back. (`pprof.rs`, kernel tier, has the real `go tool pprof` read the pprof export.)

mod common_export;

use common_export::{offcpu_profile, scratch_dir};
use export::{write_flame_graph, write_folded, FlameGraphOptions, FoldedOptions, Palette};

#[test]
fn folded_and_flame_graph_files() {
    let scratch = scratch_dir("folded");
    let profile = offcpu_profile();
    let folded_path = scratch.join("offcpu.folded");
    write_folded(&profile, &FoldedOptions::default(), std::fs::File::create(&folded_path).expect("create"))
        .expect("write the folded stacks");
    assert_eq!(
        std::fs::read_to_string(&folded_path).expect("read back"),
        "exportapp;main;serve_requests;wait_for_client;__libc_accept;do_syscall_64;__sys_accept4;schedule 3500000000\n\
         exportsleep;main;clock_nanosleep;do_syscall_64;hrtimer_nanosleep;schedule 1000000000\n\
         kworker/1:0;worker_thread;schedule 250000000\n"
    );

    let svg_path = scratch.join("offcpu.svg");
    let options = FlameGraphOptions { palette: Palette::Io, ..FlameGraphOptions::default() };
    write_flame_graph(&profile, &options, std::fs::File::create(&svg_path).expect("create"))
        .expect("draw the flame graph");
    let svg = std::fs::read_to_string(&svg_path).expect("read back");
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">Off-CPU time (ns)</text>"), "no title");
    for name in
        ["exportapp", "serve_requests", "wait_for_client", "clock_nanosleep", "hrtimer_nanosleep", "worker_thread"]
    {
        assert!(svg.contains(&format!("<title>{name} (")), "no frame {name}");
    }
    assert!(svg.contains("<title>all (4,750,000,000 ns, 100%)</title>"));
    std::fs::remove_dir_all(&scratch).ok();
}
