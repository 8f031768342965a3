//! Command-line options, named and shaped like bpftrace's, and the usage text in the layout of
//! bpftrace 0.17's (USAGE, OPTIONS, ENVIRONMENT, EXAMPLES), its option lines written from the
//! options' own documentation so that a new option shows without more work.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};

#[derive(Parser, Debug)]
#[command(name = "rbt", disable_help_flag = true, disable_version_flag = true)]
pub struct Args {
    /// The program text.
    #[arg(short = 'e', value_name = "PROGRAM")]
    pub program: Option<String>,
    /// Run CMD once every probe is attached; `cpid` is its pid; exit when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Trace while process PID runs: exit when it exits; uprobes and USDT probes fire in it only.
    #[arg(short = 'p', value_name = "PID")]
    pub pid: Option<String>,
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
    /// Warn when a BPF helper returns an error (except reads and map lookups, which give 0); -kk: check every helper.
    #[arg(short = 'k', action = ArgAction::Count)]
    pub helper_checks: u8,
    /// Activate USDT semaphores in every process running the probed file.
    #[arg(long = "usdt-file-activation")]
    pub usdt_file_activation: bool,
    /// Disable all warning messages.
    #[arg(long = "no-warnings")]
    pub no_warnings: bool,
    /// Print what rbt can use of the kernel's BPF support on this machine.
    #[arg(long = "info")]
    pub info: bool,
    /// Show this help message.
    #[arg(short = 'h', long = "help")]
    pub help: bool,
    /// Print rbt's version.
    #[arg(short = 'V', long = "version")]
    pub version: bool,
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
    /// Every interval, send what maps keyed by stacks gained as a profile to URL (repeatable):
    /// otlp+http://HOST:PORT (OTLP profiles), file://DIR (a gzipped pprof per interval).
    #[arg(long = "export", value_name = "URL")]
    pub export: Vec<String>,
    /// How often --export sends: a duration (10s, 500ms, 1m; default 10s), or exit for one profile at the end.
    #[arg(long = "export-every", value_name = "DURATION")]
    pub export_every: Option<String>,
    /// The service.name of what --export sends (default: each process's executable name).
    #[arg(long = "service", value_name = "NAME")]
    pub service: Option<String>,
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

/// `--version`'s line, as bpftrace's (`bpftrace v0.17.0`) with rbt's name and version.
pub fn version() -> String {
    format!("rbt v{}", env!("CARGO_PKG_VERSION"))
}

/// The environment variables rbt reads, with bpftrace's wording (see `settings.rs`).
const ENVIRONMENT: &[(&str, &str)] = &[
    ("BPFTRACE_STRLEN", "[default: 64] bytes on BPF stack per str()"),
    ("BPFTRACE_MAP_KEYS_MAX", "[default: 4096] max keys in a map"),
    ("BPFTRACE_CAT_BYTES_MAX", "[default: 10k] maximum bytes read by cat builtin"),
    ("BPFTRACE_MAX_PROBES", "[default: none] max number of probes"),
    ("BPFTRACE_MAX_BPF_PROGS", "[default: none] max number of generated BPF programs"),
    ("BPFTRACE_PERF_RB_PAGES", "[default: 64] pages per CPU to allocate for perf buffers"),
    ("BPFTRACE_BTF", "[default: none] BTF file"),
    ("RBT_RINGBUF_PAGES", "[default: 2048] pages of the ring buffer"),
    ("RBT_STACK_STORAGE", "[default: 4096] stacks kept by kstack/ustack"),
    ("RBT_EVENTS", "[default: ringbuf] 'ringbuf' or 'perf' event buffers"),
];

/// The width of the option column of the usage text, as bpftrace's (`-B MODE        output...`).
const OPTION_WIDTH: usize = 15;

/// The usage text: bpftrace 0.17's layout, rbt's options (from their documentation above), the
/// probe types (from the compiler's table) and examples.
pub fn usage() -> String {
    let mut out = String::from("USAGE:\n");
    for shape in ["[options] filename", "[options] - <stdin input>", "[options] -e 'program'", "[options] -t TOOL"] {
        out.push_str(&format!("    rbt {shape}\n"));
    }
    let command = Args::command();
    let mut sections: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    for arg in command.get_arguments().filter(|a| !a.is_positional()) {
        let heading = arg.get_help_heading().unwrap_or("OPTIONS");
        let mut flag = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, Some(l)) => format!("--{l}"),
            (None, None) => continue,
        };
        let value = arg.get_value_names().and_then(|names| names.first()).filter(|_| arg.get_action().takes_values());
        if let Some(name) = value {
            flag.push(' ');
            flag.push_str(name);
        }
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let help = help.trim_end_matches('.').to_owned();
        match sections.iter_mut().find(|(h, _)| *h == heading) {
            Some((_, rows)) => rows.push((flag, help)),
            None => sections.push((heading, vec![(flag, help)])),
        }
    }
    for (heading, rows) in &sections {
        out.push_str(&format!("\n{heading}:\n"));
        // bpftrace's columns: a longer flag has its help on the next line.
        for (flag, help) in rows {
            if flag.len() < OPTION_WIDTH {
                out.push_str(&format!("    {flag:<OPTION_WIDTH$}{help}\n"));
            } else {
                out.push_str(&format!("    {flag}\n    {:OPTION_WIDTH$}{help}\n", ""));
            }
        }
    }
    out.push_str("\nENVIRONMENT:\n");
    for (name, help) in ENVIRONMENT {
        out.push_str(&format!("    {name:<27} {help}\n"));
    }
    out.push_str(&format!("\nPROBE TYPES:\n{}", compiler::probe_kind::help_table("    ")));
    out.push_str("\nEXAMPLES:\n");
    for (example, what) in [
        ("rbt -l '*sleep*'", "list probes containing \"sleep\""),
        (
            r#"rbt -e 'tracepoint:syscalls:sys_enter_openat { printf("%s %s\n", comm, str(args->filename)); }'"#,
            "trace the files processes open",
        ),
        ("rbt -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'", "count syscalls by process name"),
        ("rbt -t", "list the tools of rbt's standard library"),
    ] {
        out.push_str(&format!("{example}\n    {what}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_has_bpftraces_sections_and_every_option() {
        let text = usage();
        for heading in ["USAGE:", "OPTIONS:", "ENVIRONMENT:", "EXAMPLES:"] {
            assert!(text.contains(&format!("\n{heading}\n")) || text.starts_with(heading), "{heading} in\n{text}");
        }
        assert!(text.contains("\n    -e PROGRAM     The program text\n"), "{text}");
        assert!(text.contains("\n    -h, --help     Show this help message\n"), "{text}");
        assert!(text.contains("\n    --info "), "{text}");
        assert!(text.contains("\n    BPFTRACE_STRLEN "), "{text}");
    }

    #[test]
    fn k_counts() {
        let args = Args::try_parse_from(["rbt", "-kk", "-e", "BEGIN {}"]).expect("parses");
        assert_eq!(args.helper_checks, 2);
        let args = Args::try_parse_from(["rbt", "--usdt-file-activation", "-p", "12", "x.bt"]).expect("parses");
        assert!(args.usdt_file_activation);
        assert_eq!(args.pid.as_deref(), Some("12"));
    }
}
