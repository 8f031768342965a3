//! Command-line options, named and shaped like bpftrace's.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "rbt",
    version,
    about = "rbt: bpftrace's language, compiled straight to BPF",
    after_help = after_help()
)]
pub struct Args {
    /// The program text.
    #[arg(short = 'e', value_name = "PROGRAM")]
    pub program: Option<String>,
    /// Run CMD once every probe is attached; `cpid` is its pid; exit when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Trace while process PID runs: exit when it exits (like bpftrace 0.17, it filters nothing).
    #[arg(short = 'p', value_name = "PID")]
    pub pid: Option<u32>,
    /// List probes (optionally matching the pattern given as the program argument).
    #[arg(short = 'l')]
    pub list: bool,
    /// Verbose: print each program's kernel id and verifier statistics; with -l, list tracepoint fields.
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Output format: text, json, or folded (text, with maps keyed by stacks as folded stacks).
    #[arg(short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,
    /// Write output to FILE instead of stdout.
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Quiet: do not print the "Attaching" line.
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Output buffering: none or full (accepted for bpftrace compatibility; output is flushed per batch of events).
    #[arg(short = 'B', value_name = "MODE")]
    pub buffering: Option<String>,
    /// Compile and print each probe's BPF disassembly with source lines; load nothing.
    #[arg(short = 'd', long = "dry-run")]
    pub dry_run: bool,
    /// Write the compiled BPF ELF object to FILE.
    #[arg(long = "emit-elf", value_name = "FILE")]
    pub emit_elf: Option<PathBuf>,
    /// At exit, write maps keyed by stacks as folded stacks (comm;root;...;leaf value) to FILE.
    #[arg(long = "folded", value_name = "FILE")]
    pub folded: Option<PathBuf>,
    /// At exit, draw maps keyed by stacks as an SVG flame graph in FILE.
    #[arg(long = "flamegraph", value_name = "FILE")]
    pub flamegraph: Option<PathBuf>,
    /// At exit, write maps keyed by stacks as a gzipped pprof profile to FILE (go tool pprof reads it).
    #[arg(long = "pprof", value_name = "FILE")]
    pub pprof: Option<PathBuf>,
    /// With -f json: `text` prints stacks as bpftrace's text (default); `frames` as arrays of
    /// {addr, sym, offset, module, file, line, inlined}.
    #[arg(long = "json-stacks", value_name = "FORM", value_parser = ["text", "frames"])]
    pub json_stacks: Option<String>,
    /// Add DIR to the include search path (after the script's directory and the working
    /// directory), as bpftrace's -I.
    #[arg(short = 'I', value_name = "DIR")]
    pub include_dirs: Vec<String>,
    /// Add an #include of FILE before the script's first line, as bpftrace's --include.
    #[arg(long = "include", value_name = "FILE")]
    pub include_files: Vec<String>,
    /// Allow unsafe functions such as system().
    #[arg(long = "unsafe")]
    pub unsafe_: bool,
    /// Run a tool of the standard library by name (stdlib/NAME.rbt); without a name, list them.
    #[arg(short = 't', long = "tool", value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub tool: Option<String>,
    /// A program file, or - for stdin (with -l: the pattern).
    pub program_file: Option<String>,
    /// Positional parameters $1, $2, ...
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub params: Vec<String>,
}

/// `--help`'s text after the options: the probe types (from the compiler's table) and examples.
fn after_help() -> String {
    format!(
        "PROBE TYPES:\n{}\nEXAMPLES:\n  {}\n  {}\n  {}",
        compiler::probe_kind::help_table("  "),
        r#"rbt -e 'tracepoint:syscalls:sys_enter_openat { printf("%s %s\n", comm, str(args->filename)); }'"#,
        "rbt -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'",
        "rbt -l 'tracepoint:sched:*'",
    )
}
