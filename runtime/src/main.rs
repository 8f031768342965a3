//! The `rbt` command: a bpftrace-language tracer compiled straight to BPF.

mod bpf_sys;
mod child;
mod cli;
mod diagnostics;
mod events;
mod maps;
mod output;
mod session;
mod signals;
mod tracefs;
mod verifier_report;

use std::io::{self, Read, Write};
use std::process::ExitCode;

use clap::Parser;
use cli::Args;
use compiler::{CompileOptions, ProbeCatalog};
use output::OutputFormat;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ERROR: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    if args.list {
        return list(&args);
    }
    let (name, source, params) = args.program_source()?;
    let format = match args.format.as_deref() {
        None | Some("text") => OutputFormat::Text,
        Some("json") => OutputFormat::Json,
        Some(other) => return Err(format!("invalid output format '{other}': use text or json")),
    };
    let tracefs = tracefs::Tracefs::open().map_err(|e| e.to_string())?;
    let dry_run = args.dry_run || args.emit_elf.is_some() && !is_root();
    if !dry_run && !is_root() {
        return Err("rbt needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs; run it with sudo".into());
    }
    let child = match &args.command {
        Some(cmd) if !dry_run => Some(child::Child::spawn(cmd).map_err(|e| format!("cannot start '{cmd}': {e}"))?),
        _ => None,
    };
    let mut options = CompileOptions::default();
    options.check.params = params;
    options.check.unsafe_allowed = args.unsafe_;
    options.check.strlen = env_u32("RBT_STRLEN", 64).clamp(1, 200);
    options.check.cpid = child.as_ref().map(|c| c.pid as u32).or(args.command.as_ref().map(|_| 0));
    options.lower.cpid = options.check.cpid;
    options.lower.pid_filter = args.pid;
    options.lower.map_keys_max = env_u32("RBT_MAP_KEYS_MAX", 4096);
    options.lower.start_ns = monotonic_ns();
    let (compiled, diags) = compiler::compile(&source, &tracefs as &dyn ProbeCatalog, &options);
    diagnostics::emit(&diags, &name, &source);
    let Some(compiled) = compiled else {
        return Ok(ExitCode::from(1));
    };
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
    let session = match session::Session::load(compiled, format) {
        Ok(s) => s,
        Err(session::SessionError::Verifier { probe, span, log, insn }) => {
            verifier_report::report(&name, &source, &probe, span, &log, insn);
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.to_string()),
    };
    session::run(session, &mut out, args.quiet, child).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
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
    let tracefs = tracefs::Tracefs::open().map_err(|e| e.to_string())?;
    let pattern = args.program_file.as_deref().or(args.program.as_deref());
    let text = tracefs::list_probes(&tracefs, pattern, args.verbose).map_err(|e| e.to_string())?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Args {
    /// The program text, its display name, and positional parameters.
    fn program_source(&self) -> Result<(String, String, Vec<String>), String> {
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
                let s = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
                Ok((path.to_string(), s, self.params.clone()))
            }
            None => Err("no program given: use -e 'PROGRAM', a file name, or - for stdin (see rbt --help)".into()),
        }
    }
}
