//! The `rbt` command: a bpftrace-language tracer compiled straight to BPF.

mod child;
mod cli;
mod diagnostics;
mod events;
mod host;
mod info;
mod interval_export;
mod maps;
mod output;
mod repl;
mod script;
mod session;
mod settings;
mod stack_export;
mod stacks;
mod system_names;
mod tools;
mod verifier_report;

use std::io::{self, Read, Write};
use std::process::ExitCode;

use clap::Parser;
use cli::Args;
use compiler::{CompileOptions, ProbeCatalog};
use output::OutputFormat;
use runtime::kernel::host_calls;
use runtime::kernel::{cpus, loader, os, signals};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return bad_usage(&e.to_string()),
    };
    let outcome = match early_exit(&args) {
        Some(outcome) => outcome,
        None => run(args),
    };
    match outcome {
        Ok(code) => code,
        // Output piped into `head` and the like: the reader left, as for any Unix filter that
        // is not an error worth a message (everything is detached by then).
        Err(message) if message.ends_with(&io::Error::from_raw_os_error(libc::EPIPE).to_string()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ERROR: {message}");
            ExitCode::from(1)
        }
    }
}

/// A command line clap refuses: its complaint and the usage, on stderr, as bpftrace answers one
/// (`bpftrace: invalid option -- 'i'`, then its usage), and exit status 1.
fn bad_usage(complaint: &str) -> ExitCode {
    let first = complaint.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("rbt: {first}");
    eprint!("{}", cli::usage());
    ExitCode::from(1)
}

/// The options that answer and exit before any script is read: `--help`, `--version`,
/// `--info`, and the checks of the environment and of option combinations bpftrace makes
/// first.
fn early_exit(args: &Args) -> Option<Result<ExitCode, String>> {
    if args.help {
        print!("{}", cli::usage());
        return Some(Ok(ExitCode::SUCCESS));
    }
    if args.version {
        println!("{}", cli::version());
        return Some(Ok(ExitCode::SUCCESS));
    }
    if args.info {
        if !host_calls::is_root() {
            return Some(Err("rbt --info loads test programs into the kernel: run it as root".into()));
        }
        return Some(host::open_catalog().map_err(|e| e.to_string()).map(|catalog| {
            print!("{}", info::report(&catalog));
            ExitCode::SUCCESS
        }));
    }
    if let Err(e) = settings::Settings::from_env() {
        return Some(Err(e));
    }
    if args.command.is_some() && args.pid.is_some() {
        eprintln!("ERROR: USAGE: Cannot use both -c and -p.");
        eprint!("{}", cli::usage());
        return Some(Ok(ExitCode::from(1)));
    }
    if let Some(pid) = &args.pid {
        if let Err(e) = parse_pid(pid) {
            return Some(Err(e));
        }
    }
    // As bpftrace: -k and -kk are the levels there are; a third k is a usage error.
    if args.helper_checks > 2 {
        eprint!("{}", cli::usage());
        return Some(Ok(ExitCode::from(1)));
    }
    None
}

/// `-p`'s value, checked as bpftrace 0.17 checks it, with its messages.
fn parse_pid(text: &str) -> Result<u32, String> {
    const PID_MAX: i64 = 4 * 1024 * 1024;
    let invalid = |why: &str| format!("pid '{text}' {why}");
    // As C's strtol: blanks, a sign, digits, and nothing after them.
    let body = text.trim_start();
    let digits = body.strip_prefix(['+', '-']).unwrap_or(body);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("is not a valid decimal number"));
    }
    let pid: i64 = body.strip_prefix('+').unwrap_or(body).parse().map_err(|_| invalid("outside of integer range"))?;
    if !(1..=PID_MAX).contains(&pid) {
        return Err(invalid(&format!("out of valid pid range [1,{PID_MAX}]")));
    }
    Ok(pid as u32)
}

fn run(args: Args) -> Result<ExitCode, String> {
    if args.list {
        return list(&args);
    }
    if args.tool.as_deref() == Some("") {
        print!("{}", tools::list());
        return Ok(ExitCode::SUCCESS);
    }
    let wants_repl = args.program.is_none()
        && args.tool.is_none()
        && match args.program_file.as_deref() {
            Some("repl") => true,
            None => repl::stdin_is_terminal(),
            Some(_) => false,
        };
    if wants_repl {
        return run_repl(&args);
    }
    let continuous = continuous_export(&args)?;
    let (name, source, params) = args.program_source()?;
    let format = output_format(&args)?;
    let privileged = has_bpf_privileges();
    let dry_run = args.dry_run || args.emit_elf.is_some() && !privileged;
    if !dry_run && !privileged {
        return Err("rbt needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs; run it with sudo".into());
    }
    let tracefs = host::open_catalog().map_err(|e| e.to_string())?;
    let child = match &args.command {
        Some(cmd) if !dry_run => Some(child::Child::spawn(cmd).map_err(|e| format!("cannot start '{cmd}': {e}"))?),
        _ => None,
    };
    let mut options = CompileOptions::default();
    options.check.params = params;
    options.check.unsafe_allowed = args.unsafe_;
    options.check.strlen = settings::current().strlen;
    options.check.cpid = child.as_ref().map(|c| c.pid as u32).or(args.command.as_ref().map(|_| 0));
    let pid = args.pid.as_deref().map(parse_pid).transpose()?;
    options.check.pid = pid;
    options.check.command_path = args.command.as_deref().and_then(child::command_path);
    options.lower.cpid = options.check.cpid;
    options.lower.pid_filter = pid;
    options.lower.map_keys_max = settings::current().map_keys_max;
    options.lower.stack_storage = settings::current().stack_storage;
    options.lower.user_unwind = settings::current().user_unwind;
    options.lower.unwind_rows = settings::current().unwind_rows;
    options.lower.start_ns = os::monotonic_ns();
    options.lower.events = event_transport(dry_run)?;
    // bpftrace's --no-warnings silences the text reports (JSON ones still print): with nothing
    // to show, nothing is checked.
    options.lower.helper_checks = if args.no_warnings && format == OutputFormat::Text { 0 } else { args.helper_checks };
    options.preprocess.script_path = args.script_path();
    options.preprocess.include_dirs.clone_from(&args.include_dirs);
    options.preprocess.include_files.clone_from(&args.include_files);
    let mut compiled = compiler::compile_script(&source, &tracefs as &dyn ProbeCatalog, &options);
    // A kernel without what the unwinder needs: user stacks by frame pointers, said once.
    if !dry_run && uses_unwinder(&compiled.program) {
        if let Err(why) = loader::user_unwinding_supported() {
            eprintln!("{}", unwinding_fallback_warning(&why));
            options.lower.user_unwind = compiler::lower::unwind::UserUnwind::FramePointers;
            compiled = compiler::compile_script(&source, &tracefs as &dyn ProbeCatalog, &options);
        }
    }
    diagnostics::emit_in(&compiled.diagnostics, &name, &compiled.sources);
    let sources = compiled.sources;
    let Some(mut compiled) = compiled.program else {
        return Ok(ExitCode::from(1));
    };
    name_script_in_reports(&mut compiled, &sources, &name);
    check_limits(&compiled)?;
    if let Some(path) = &args.emit_elf {
        std::fs::write(path, &compiled.elf).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if dry_run {
        print_disassembly(&compiled, &source);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout())),
    };
    // `-p PID`: probes fire only for that process (bpftrace 0.17 applies it to uprobes alone),
    // and tracing ends when it exits, like `-c`'s child, as in bpftrace.
    let child = match (child, pid) {
        (None, Some(pid)) => Some(child::Child::watch(pid).map_err(|e| format!("cannot watch process {pid}: {e}"))?),
        (child, _) => child,
    };
    // Before the session starts its threads, so that none of them takes a signal meant for the
    // event loop (SIGUSR1's default action would end rbt).
    signals::block_script_signals().map_err(|e| format!("cannot block signals: {e}"))?;
    let session = match session::Session::load(compiled, format, args.verbose) {
        Ok(mut s) => {
            s.stacks.json_frames = args.json_stacks.as_deref() == Some("frames");
            s.pid_filter = pid;
            s
        }
        Err(session::SessionError::Verifier { probe, span, log, insn }) => {
            verifier_report::report(&name, &sources, &probe, span, &log, insn);
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.to_string()),
    };
    let exports = stack_export::ExportOptions {
        folded_stdout: args.format.as_deref() == Some("folded"),
        folded: args.folded.clone(),
        flamegraph: args.flamegraph.clone(),
        pprof: args.pprof.clone(),
        script_name: name.clone(),
        script: source.clone(),
        started_unix_ns: unix_ns(),
    };
    let options = script::RunOptions { quiet: args.quiet, exports: &exports, continuous };
    script::run(session, &tracefs, &mut out, options, child).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `--export URL... [--export-every DURATION]`, checked before anything starts.
fn continuous_export(args: &Args) -> Result<Option<interval_export::IntervalExport>, String> {
    if args.export.is_empty() {
        if args.export_every.is_some() || args.service.is_some() {
            return Err("--export-every and --service need --export URL".into());
        }
        return Ok(None);
    }
    let destinations =
        args.export.iter().map(|url| interval_export::Destination::parse(url)).collect::<Result<Vec<_>, _>>()?;
    for destination in &destinations {
        if let interval_export::Destination::Dir(dir) = destination {
            if !dir.is_dir() {
                return Err(format!("--export file://{}: no such directory", dir.display()));
            }
        }
    }
    let every = match &args.export_every {
        Some(text) => interval_export::parse_every(text)?,
        None => Some(interval_export::DEFAULT_EVERY),
    };
    Ok(Some(interval_export::IntervalExport::new(destinations, every, args.service.clone())))
}

/// Reports of failed helpers in the script name it as diagnostics do (a tool by its stdlib
/// path), those in included files by the file's name.
fn name_script_in_reports(compiled: &mut compiler::CompiledProgram, sources: &grammar::Sources, name: &str) {
    let Some(script) = sources.script() else { return };
    for site in &mut compiled.helper_errors {
        if site.location.file == script.name {
            site.location.file = name.to_owned();
        }
    }
}

fn run_repl(args: &Args) -> Result<ExitCode, String> {
    let format = output_format(args)?;
    if !has_bpf_privileges() {
        return Err("rbt needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs; run it with sudo".into());
    }
    let mut compile = CompileOptions::default();
    compile.check.unsafe_allowed = args.unsafe_;
    compile.check.strlen = settings::current().strlen;
    compile.lower.pid_filter = args.pid.as_deref().map(parse_pid).transpose()?;
    compile.lower.map_keys_max = settings::current().map_keys_max;
    compile.lower.stack_storage = settings::current().stack_storage;
    compile.lower.user_unwind = settings::current().user_unwind;
    if compile.lower.user_unwind != compiler::lower::unwind::UserUnwind::FramePointers {
        if let Err(why) = loader::user_unwinding_supported() {
            eprintln!("{}", unwinding_fallback_warning(&why));
            compile.lower.user_unwind = compiler::lower::unwind::UserUnwind::FramePointers;
        }
    }
    compile.lower.unwind_rows = settings::current().unwind_rows;
    compile.lower.start_ns = os::monotonic_ns();
    compile.lower.events = event_transport(false)?;
    repl::run(repl::ReplOptions { format, compile })?;
    Ok(ExitCode::SUCCESS)
}

fn output_format(args: &Args) -> Result<OutputFormat, String> {
    match args.format.as_deref() {
        // folded: text, with maps keyed by stacks printed as folded stacks at exit.
        None | Some("text") | Some("folded") => Ok(OutputFormat::Text),
        Some("json") => Ok(OutputFormat::Json),
        Some(other) => Err(format!("Invalid output format \"{other}\"\nValid formats: 'text', 'json', 'folded'")),
    }
}

/// `BPFTRACE_MAX_PROBES` and `BPFTRACE_MAX_BPF_PROGS`, where set, with bpftrace's messages.
fn check_limits(compiled: &compiler::CompiledProgram) -> Result<(), String> {
    let settings = settings::current();
    let probes = compiled.probes.len() as u64;
    if let Some(max) = settings.max_probes.filter(|&max| probes > max) {
        return Err(format!(
            "Can't attach to {probes} probes because it exceeds the current limit of {max} probes.\nYou can \
             increase the limit through the BPFTRACE_MAX_PROBES environment variable, but BE CAREFUL since a high \
             number of probes attached can cause your system to crash."
        ));
    }
    // Probes whose programs are the same instructions share one program, as in bpftrace.
    let programs = compiled
        .probes
        .iter()
        .map(|p| compiler::bpf::insn::encode(&p.insns))
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    if let Some(max) = settings.max_bpf_progs.filter(|&max| programs > max) {
        return Err(format!(
            "Your program is trying to generate more than {programs} BPF programs, which exceeds the current limit \
             of {max}.\nYou can increase the limit through the BPFTRACE_MAX_BPF_PROGS environment variable."
        ));
    }
    Ok(())
}

fn print_disassembly(compiled: &compiler::CompiledProgram, source: &str) {
    let mut out = io::stdout().lock();
    for probe in &compiled.probes {
        let _ = writeln!(out, "{} ({}):", probe.attach.probe_name(), probe.name);
        let lines = compiler::bpf::disasm::disassemble_lines(&probe.insns, &|_| None);
        let mut last_span = None;
        for line in lines {
            let span = probe.insn_spans.get(line.index).copied();
            if span != last_span {
                if let Some(s) = span {
                    let text = source.get(s.range()).unwrap_or("").lines().next().unwrap_or("");
                    let _ = writeln!(out, "    ; {text}");
                }
                last_span = span;
            }
            let _ = writeln!(out, "  {:4}: {}", line.index, line.text);
        }
        let _ = writeln!(out);
    }
}

fn list(args: &Args) -> Result<ExitCode, String> {
    let tracefs = host::open_catalog().map_err(|e| e.to_string())?;
    let pattern = args.program_file.as_deref().or(args.program.as_deref());
    let text =
        catalog::list_probes_for(&tracefs, pattern, args.verbose, args.pid.as_deref().map(parse_pid).transpose()?)
            .map_err(|e| e.to_string())?;
    // A reader that stops early (`rbt -l | head`) closes the pipe: that ends the listing, as
    // it ends bpftrace's, without a panic.
    let _ = io::stdout().lock().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// Whether a compiled program unwinds user stacks in its probes (it has their stack maps).
fn uses_unwinder(program: &Option<compiler::program::CompiledProgram>) -> bool {
    program
        .as_ref()
        .is_some_and(|p| p.bpf_maps.iter().any(|m| matches!(m.role, compiler::program::MapRole::UserStacks { .. })))
}

/// The warning for a kernel the unwinder cannot run on, with the kernel's reason.
fn unwinding_fallback_warning(why: &str) -> String {
    format!(
        "WARNING: this kernel cannot run rbt's user-stack unwinder (it needs bpf_get_current_task_btf \
         and bpf_task_pt_regs, Linux 5.15, with BTF: {why}); user stacks are walked by frame pointers \
         (RBT_USTACK_UNWIND=fp), and code built without them gives short stacks"
    )
}

/// Ring buffer where the kernel has one, else a perf buffer per CPU; `RBT_EVENTS=ringbuf|perf`
/// chooses. A dry run, which loads nothing, assumes a ring buffer. The ring buffer holds
/// `RBT_RINGBUF_PAGES` pages (default 2048, 8 MiB, or `BPFTRACE_PERF_RB_PAGES` per CPU where
/// that is set; rounded up to a power of two).
fn event_transport(dry_run: bool) -> Result<compiler::EventTransport, String> {
    let settings = settings::current();
    let per_cpu = || Some(settings.perf_rb_pages? * cpus::possible_cpus().ok()? as u64);
    let pages = settings.ringbuf_pages.or_else(per_cpu).unwrap_or(2048);
    let pages = u32::try_from(pages).unwrap_or(u32::MAX).clamp(1, 1 << 18).next_power_of_two();
    let ring = compiler::EventTransport::RingBuf { bytes: pages * os::page_size() };
    let perf = || -> Result<compiler::EventTransport, String> {
        // The array is indexed by CPU number: it needs a slot up to the highest possible CPU.
        let possible = cpus::cpu_list("possible").map_err(|e| format!("cannot list CPUs: {e}"))?;
        Ok(compiler::EventTransport::PerfArray { cpus: possible.iter().max().map_or(1, |&m| m + 1) })
    };
    match std::env::var("RBT_EVENTS").ok().as_deref() {
        Some("ringbuf") => Ok(ring),
        Some("perf") => perf(),
        Some(other) => Err(format!("RBT_EVENTS={other}: use ringbuf or perf")),
        None if dry_run || loader::ringbuf_supported(os::page_size()) => Ok(ring),
        None => perf(),
    }
}

/// Whether this process may load and attach tracing programs: CAP_SYS_ADMIN, or both CAP_BPF and
/// CAP_PERFMON, in its effective set (`CapEff:\t000001ffffffffff` in /proc/self/status).
fn has_bpf_privileges() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// An error's text as C's `strerror` words it, without Rust's ` (os error N)`.
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Args {
    /// The script file's path, beside which its quoted `#include`s are looked up; `None` for
    /// `-e`, stdin and the stdlib's tools.
    fn script_path(&self) -> Option<String> {
        if self.program.is_some() || self.tool.is_some() {
            return None;
        }
        self.program_file.clone().filter(|path| path != "-")
    }

    /// The program text, its display name, and positional parameters.
    fn program_source(&self) -> Result<(String, String, Vec<String>), String> {
        if let Some(name) = self.tool.as_deref() {
            let tracefs = host::open_catalog().map_err(|e| e.to_string())?;
            let tool = tools::find(name, &tracefs as &dyn ProbeCatalog)?;
            let mut params = Vec::new();
            params.extend(self.program_file.iter().cloned());
            params.extend(self.params.iter().cloned());
            return Ok((format!("stdlib/{}.rbt", tool.name), tool.source.to_owned(), params));
        }
        if let Some(p) = &self.program {
            let mut params = Vec::new();
            params.extend(self.program_file.iter().cloned());
            params.extend(self.params.iter().cloned());
            return Ok(("stdin".into(), p.clone(), params));
        }
        match self.program_file.as_deref() {
            Some("-") => {
                let mut s = String::new();
                io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read stdin: {e}"))?;
                Ok(("stdin".into(), s, self.params.clone()))
            }
            Some(path) => {
                let s = std::fs::read_to_string(path)
                    .map_err(|e| format!("failed to open file '{path}': {}", strerror(&e)))?;
                Ok((path.to_string(), s, self.params.clone()))
            }
            None => Err("no program given: use -e 'PROGRAM', a file name, or - for stdin (see rbt --help)".into()),
        }
    }
}
