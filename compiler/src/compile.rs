//! The compiler driver: parse, check, lower, generate code and write the ELF object, in that
//! order. This is the one place that knows the order of the passes.

use crate::check::{self, CheckOptions};
use crate::codegen::{self, CodegenError};
use crate::hir::AttachPoint;
use crate::lower::{self, LowerOptions};
use crate::program::{CompiledProgram, ProbeProgram, ProgramKind};
use crate::{bpf, ir, ProbeCatalog};
use grammar::{Diagnostic, IncludeFiles, PreprocessOptions, Preprocessed, Sources};

#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// The script's path, `-I` and `--include`; the system's include directories and
    /// `BPFTRACE_HAVE_BTF` come from the catalog.
    pub preprocess: PreprocessOptions,
    pub check: CheckOptions,
    pub lower: LowerOptions,
}

/// A compiled script: the program when there were no errors, every diagnostic (warnings too),
/// and the files behind the diagnostics' spans (the script and what it included).
#[derive(Debug)]
pub struct Compiled {
    pub program: Option<CompiledProgram>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

/// Stack for the compiler's passes. Checking, lowering and dropping a tree recurse once per
/// level of nesting (about 2 KiB a level in debug builds), and the parser accepts expressions
/// nested `grammar::MAX_EXPR_DEPTH` deep; this leaves room for many times that, and costs only
/// the pages a program touches.
const COMPILER_STACK: usize = 256 << 20;

/// Compiles rbt source text. Returns the program when there are no errors, and every diagnostic
/// (warnings too) either way. Spans are offsets into `source` unless it includes files; see
/// [`compile_script`] for those.
pub fn compile(
    source: &str,
    catalog: &dyn ProbeCatalog,
    options: &CompileOptions,
) -> (Option<CompiledProgram>, Vec<Diagnostic>) {
    let compiled = compile_script(source, catalog, options);
    (compiled.program, compiled.diagnostics)
}

/// Reads the files a script includes through the catalog.
struct CatalogFiles<'c>(&'c dyn ProbeCatalog);

impl IncludeFiles for CatalogFiles<'_> {
    fn read(&self, path: &str) -> Option<String> {
        self.0.include_file(path)
    }
}

/// Compiles a script, preprocessed with the catalog's files and include directories. The passes
/// run on a thread with a stack of their own, so deeply nested programs compile whatever the
/// caller's stack (a test thread has 2 MiB).
pub fn compile_script(source: &str, catalog: &dyn ProbeCatalog, options: &CompileOptions) -> Compiled {
    std::thread::scope(|scope| {
        let passes = std::thread::Builder::new()
            .name("rbt-compiler".into())
            .stack_size(COMPILER_STACK)
            .spawn_scoped(scope, || compile_script_here(source, catalog, options));
        match passes {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had (resource limits): compile on the caller's stack instead.
            Err(_) => compile_script_here(source, catalog, options),
        }
    })
}

fn compile_script_here(source: &str, catalog: &dyn ProbeCatalog, options: &CompileOptions) -> Compiled {
    let mut preprocess = options.preprocess.clone();
    preprocess.system = catalog.system_includes();
    if catalog.kernel_types_missing().is_none() {
        // As bpftrace 0.17 passes -DBPFTRACE_HAVE_BTF to clang when the kernel has BTF.
        preprocess.defines.push(("BPFTRACE_HAVE_BTF".to_owned(), "1".to_owned()));
    }
    let pre = grammar::preprocess(source, &CatalogFiles(catalog), &preprocess);
    let (program, diagnostics) = compile_preprocessed(&pre, catalog, options);
    Compiled { program, diagnostics, sources: pre.sources }
}

fn compile_preprocessed(
    pre: &Preprocessed,
    catalog: &dyn ProbeCatalog,
    options: &CompileOptions,
) -> (Option<CompiledProgram>, Vec<Diagnostic>) {
    let (ast, mut diags) = grammar::parse_preprocessed(pre);
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    let mut check_options = options.check.clone();
    check_options.included_headers.clone_from(&pre.system_headers);
    let (checked, check_diags) = check::check(&ast, catalog, &check_options);
    diags.extend(check_diags);
    let Some(checked) = checked else { return (None, diags) };
    let lowered = lower::lower(&checked, &options.lower);
    let map_names: Vec<String> = lowered.bpf_maps.iter().map(|m| m.name.clone()).collect();
    let mut probes = Vec::new();
    let mut objects = Vec::new();
    for (i, (probe, function)) in checked.probes.iter().zip(&lowered.functions).enumerate() {
        debug_assert_eq!(ir::verify(function), Ok(()), "IR of probe {i} is malformed");
        let code = match codegen::generate(function, &map_names) {
            Ok(code) => code,
            Err(CodegenError::StackTooLarge { needed }) => {
                diags.push(
                    Diagnostic::error(
                        "stack-too-large",
                        format!("this probe needs {needed} bytes of BPF stack, more than the {} the kernel allows", codegen::MAX_STACK),
                        probe.span,
                    )
                    .with_help("use fewer or shorter strings (str(p, N) reads at most N bytes), fewer printf arguments, or split the work across probes"),
                );
                continue;
            }
            Err(CodegenError::TooManyMaps { maps, span }) => {
                diags.push(
                    Diagnostic::error(
                        "too-many-maps",
                        format!("this probe uses {maps} BPF maps, more than the {} one BPF program may use", codegen::MAX_MAPS),
                        span,
                    )
                    .with_primary_text("the first map over the limit")
                    .with_help("every @map is a BPF map, and rbt adds two of its own (events and error counters); combine maps into one keyed map or split the work across probes"),
                );
                continue;
            }
            Err(CodegenError::ProgramTooLarge { insns }) => {
                diags.push(
                    Diagnostic::error(
                        "program-too-large",
                        format!("this probe compiles to {insns} instructions, too many to jump across"),
                        probe.span,
                    )
                    .with_help("BPF jumps reach 32,767 instructions, counting the zero checks the kernel adds to divisions; use smaller unroll counts or split the work across probes"),
                );
                continue;
            }
        };
        let name = format!("rbt_probe_{i}");
        let section = section_for(&probe.attach);
        objects.push(bpf::elf::ObjectProgram {
            name: name.clone(),
            section: section.clone(),
            insns: code.insns.clone(),
            map_relocs: code.relocs,
        });
        probes.push(ProbeProgram {
            name,
            section,
            attach: probe.attach.clone(),
            kind: ProgramKind::of(&probe.attach),
            span: probe.span,
            spec_span: probe.spec_span,
            insns: code.insns,
            insn_spans: code.spans,
            keeps_entry_values: probe.keeps_entry_values(),
        });
    }
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    let maps: Vec<bpf::elf::ObjectMap> = lowered
        .bpf_maps
        .iter()
        .map(|m| bpf::elf::ObjectMap {
            name: m.name.clone(),
            map_type: m.map_type,
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
            flags: m.flags,
        })
        .collect();
    let elf = match bpf::elf::write_object(&objects, &maps, "GPL") {
        Ok(elf) => elf,
        Err(e) => {
            diags.push(Diagnostic::error("internal", format!("internal error writing the BPF object: {e}"), ast.span));
            return (None, diags);
        }
    };
    let program = CompiledProgram {
        elf,
        probes,
        bpf_maps: lowered.bpf_maps,
        maps: checked.maps,
        map_storage: lowered.map_storage,
        formats: checked.formats,
        print_types: lowered.print_types,
        helper_errors: lower::locate_sites(&lowered.helper_sites, &pre.sources),
    };
    (Some(program), diags)
}

/// The ELF section of a probe's program: a name aya-obj's parser accepts for it. The program
/// type the kernel loads is [`ProgramKind::of`] the attach point, not read from the section.
fn section_for(attach: &AttachPoint) -> String {
    match attach {
        // BEGIN and END run once through BPF_PROG_TEST_RUN, which raw tracepoint programs support.
        AttachPoint::Begin => "raw_tracepoint/rbt_begin".into(),
        AttachPoint::End => "raw_tracepoint/rbt_end".into(),
        AttachPoint::Tracepoint { category, event, .. } => format!("tracepoint/{category}/{event}"),
        AttachPoint::Profile { .. } | AttachPoint::Interval { .. } => "perf_event".into(),
        AttachPoint::Uprobe { ret: false, .. } | AttachPoint::Usdt(_) => "uprobe/rbt".into(),
        AttachPoint::Uprobe { ret: true, .. } => "uretprobe/rbt".into(),
        AttachPoint::Kprobe { ret: false, .. } => "kprobe/rbt".into(),
        AttachPoint::Kprobe { ret: true, .. } => "kretprobe/rbt".into(),
        AttachPoint::PerfCounter { .. } | AttachPoint::Watchpoint { .. } | AttachPoint::FunctionWatchpoint(_) => {
            "perf_event".into()
        }
        AttachPoint::RawTracepoint { name, .. } => format!("raw_tracepoint/{name}"),
        AttachPoint::Fentry { func, ret } => format!("{}/{}", if *ret { "fexit" } else { "fentry" }, func.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracepoint::TracepointFormat;

    struct NoSystem;

    impl ProbeCatalog for NoSystem {
        fn match_tracepoints(&self, _category: &str, _event: &str) -> Vec<(String, String)> {
            Vec::new()
        }

        fn tracepoint_format(&self, _category: &str, _event: &str) -> Option<TracepointFormat> {
            None
        }

        fn all_tracepoints(&self) -> Vec<String> {
            Vec::new()
        }
    }

    fn errors(source: &str) -> Vec<String> {
        let (compiled, diags) = compile(source, &NoSystem, &CompileOptions::default());
        let errors: Vec<String> = diags.iter().filter(|d| d.is_error()).map(|d| d.message.clone()).collect();
        assert_eq!(compiled.is_some(), errors.is_empty());
        errors
    }

    /// These run on the test's own 2 MiB thread, which the deepest of them would overflow if the
    /// passes ran there.
    #[test]
    fn deeply_nested_programs_compile() {
        let max = grammar::MAX_EXPR_DEPTH;
        // `max - 2`: the negations add the literal, and printf its call, a level each.
        for depth in [300, max - 2] {
            let sum = vec!["1"; depth].join(" + ");
            let negations = format!("{}1", "- ".repeat(depth));
            let parens = format!("{}$a{}", "(".repeat(depth - 4), ")".repeat(depth - 4));
            let casts = format!("{}1", "(uint64)".repeat(depth - 1));
            for e in [sum, negations, parens, casts] {
                let source = format!("BEGIN {{ $a = 1; @x = {e}; printf(\"%d\\n\", {e}); exit(); }}");
                assert_eq!(errors(&source), Vec::<String>::new(), "depth {depth}");
            }
            let blocks = format!("BEGIN {{ {} @x = 1; {} }}", "if (1) { ".repeat(depth - 2), "} ".repeat(depth - 2));
            assert_eq!(errors(&blocks), Vec::<String>::new(), "depth {depth}");
        }
        let over = format!("BEGIN {{ @x = {}1; }}", "- ".repeat(max));
        assert_eq!(errors(&over), vec![format!("expression nested more than {max} levels deep")]);
    }
}
