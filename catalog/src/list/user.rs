//! `rbt -l` for the user-space probe types, uprobes and USDT probes, as bpftrace 0.17 lists
//! them: binaries named as the search writes them (`uprobe:./testprogs/uprobe_test:function1`),
//! globs over binaries, and with `-p PID` the process's executable (uprobes) or every module it
//! maps (USDT), under `/proc/PID/root`. Each probe is listed once, sorted as bpftrace's set of
//! names sorts them.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use compiler::probe_kind::ProbeKind;

use super::list_error;
use crate::dwarf::FunctionParams;
use crate::{Catalog, CatalogError, Source};

/// What a listing of user-space probes needs besides the attach point.
pub(super) struct UserListing {
    /// `-p PID`.
    pub pid: Option<u32>,
    /// An expansion of a wildcard probe type: attach points of the wrong shape are skipped.
    pub ignore_invalid: bool,
    /// `-lv`: uprobes with their parameters from DWARF.
    pub verbose: bool,
}

impl UserListing {
    fn wrong_shape(&self, message: String) -> Result<(), CatalogError> {
        if self.ignore_invalid {
            Ok(())
        } else {
            Err(list_error(message))
        }
    }

    /// `uprobe:BINARY:FUNCTIONS` (`uretprobe:` alike), and with `-p` `uprobe:FUNCTIONS`.
    pub fn uprobes<S: Source>(
        &self,
        catalog: &Catalog<S>,
        kind: ProbeKind,
        parts: &[&str],
        out: &mut String,
    ) -> Result<(), CatalogError> {
        if let [_, at, lines] = parts {
            if let Some((binary, file)) = at.split_once('@') {
                return self.source_lines(catalog, kind, binary, file, lines, out);
            }
        }
        if let [_, binary, func, lines] = parts {
            return self.function_lines(catalog, kind, binary, func, lines, out);
        }
        let (target, pattern) = match (self.pid, parts) {
            (Some(pid), [_, pattern]) => (catalog.process_executable(pid).map_err(list_error)?, *pattern),
            (Some(pid), [_, target, pattern]) => (catalog.process_path(pid, target), *pattern),
            (None, [_, target, pattern]) => ((*target).to_owned(), *pattern),
            _ => return self.wrong_shape(format!("{kind} probe type requires 2 arguments")),
        };
        let functions = catalog.functions_of(&target, pattern).map_err(list_error)?;
        // Sorted as bpftrace's set of `PATH:FUNCTION` strings sorts them.
        let names: BTreeSet<(String, String, String)> =
            functions.into_iter().map(|f| (format!("{}:{}", f.path, f.name), f.path, f.name)).collect();
        // bpftrace lists parameters for uprobes only, not uretprobes.
        let verbose = self.verbose && kind == ProbeKind::Uprobe;
        let mut dwarf: HashMap<String, Option<FunctionParams>> = HashMap::new();
        for (_, path, name) in names {
            let _ = writeln!(out, "{kind}:{path}:{name}");
            if !verbose {
                continue;
            }
            let params = dwarf
                .entry(path.clone())
                .or_insert_with(|| catalog.read_binary(&path).ok().and_then(|data| FunctionParams::read(&data)));
            for param in params.iter().flat_map(|p| p.of(&name)) {
                let _ = writeln!(out, "    {param}");
            }
        }
        Ok(())
    }

    /// `uprobe:BINARY@FILE:LINES`: the lines of FILE where a statement starts that LINES (a
    /// number, or a wildcard such as `*` or `1*`) matches, as `uprobe:BINARY@FILE:LINE`; with
    /// `-v` each with its source text, when the source file can be read (as `perf probe --line`
    /// shows it).
    fn source_lines<S: Source>(
        &self,
        catalog: &Catalog<S>,
        kind: ProbeKind,
        binary: &str,
        file: &str,
        lines: &str,
        out: &mut String,
    ) -> Result<(), CatalogError> {
        let target = match self.pid {
            Some(pid) => catalog.process_path(pid, binary),
            None => binary.to_owned(),
        };
        let (target, data) = catalog.binary(&target).map_err(list_error)?;
        let data = catalog.debug_data(&target, data);
        let (path, found) = crate::dwarf::statement_lines(&data, file)
            .map_err(|e| list_error(format!("no source lines of {file} in {target}: {e}")))?;
        let shown = found.into_iter().filter(|(line, _)| crate::wildcard::wildcard_match(&line.to_string(), lines));
        let shown: Vec<(String, u32, u64)> =
            shown.map(|(line, address)| (format!("{kind}:{target}@{file}:{line}"), line, address)).collect();
        self.write_lines(catalog, &data, &path, &shown, out);
        Ok(())
    }

    /// `uprobe:BINARY:FUNC:LINES`: FUNC's lines where a statement starts, counted from its own
    /// line (0) as `perf probe --line FUNC` counts them, as `uprobe:BINARY:FUNC:LINE`.
    fn function_lines<S: Source>(
        &self,
        catalog: &Catalog<S>,
        kind: ProbeKind,
        binary: &str,
        func: &str,
        lines: &str,
        out: &mut String,
    ) -> Result<(), CatalogError> {
        let target = match self.pid {
            Some(pid) => catalog.process_path(pid, binary),
            None => binary.to_owned(),
        };
        let (target, data) = catalog.binary(&target).map_err(list_error)?;
        let (start, size) = crate::elf_symbols::user_symbol(&target, &data, func)
            .ok_or_else(|| list_error(format!("no function {func} in {target}")))?;
        let data = catalog.debug_data(&target, data);
        let found = crate::dwarf::function_lines(&data, start, start + size.max(1))
            .ok_or_else(|| list_error(format!("the DWARF line tables of {target} say nothing of {func}")))?;
        let shown: Vec<(String, u32, u64)> = found
            .lines
            .iter()
            .filter_map(|(&line, &address)| {
                let relative = line.checked_sub(found.base)?;
                crate::wildcard::wildcard_match(&relative.to_string(), lines)
                    .then(|| (format!("{kind}:{target}:{func}:{relative}"), line, address))
            })
            .collect();
        self.write_lines(catalog, &data, &found.file, &shown, out);
        Ok(())
    }

    /// Each `(spec, line, address)`, with `-v` followed by the line's source text (when the
    /// source file `path` can be read, as `perf probe --line` shows it) and the variables
    /// visible at the address.
    fn write_lines<S: Source>(
        &self,
        catalog: &Catalog<S>,
        data: &[u8],
        path: &str,
        shown: &[(String, u32, u64)],
        out: &mut String,
    ) {
        let source = self.verbose.then(|| catalog.source().read(std::path::Path::new(path)).ok()).flatten();
        let source = source.as_deref().map(String::from_utf8_lossy);
        let text: Vec<&str> = source.as_deref().map(|s| s.lines().collect()).unwrap_or_default();
        let types = self.verbose.then(|| crate::dwarf::DwarfTypes::read(data)).flatten();
        let addresses: Vec<u64> = shown.iter().map(|(_, _, address)| *address).collect();
        let mut variables = if self.verbose { crate::dwarf::variables_at_each(data, &addresses) } else { Vec::new() };
        for (i, (spec, line, _)) in shown.iter().enumerate() {
            out.push_str(spec);
            match text.get(*line as usize - 1) {
                Some(code) if self.verbose => {
                    let _ = writeln!(out, "    {}", code.trim_end());
                }
                _ => out.push('\n'),
            }
            if !self.verbose {
                continue;
            }
            // The variables visible at the line, innermost first (an inner name hides an
            // outer). The unit's globals are readable too but left out, as `perf probe --vars`
            // leaves them out: a large file would list hundreds at every line.
            let mut seen = std::collections::HashSet::new();
            for v in std::mem::take(&mut variables[i]) {
                if v.global || !seen.insert(v.name.clone()) {
                    continue;
                }
                let ty =
                    types.as_ref().map_or_else(|| "<unknown type>".to_owned(), |t| t.name_at_offset(v.type_offset));
                let _ = writeln!(out, "        {ty} {}: {}", v.name, v.location);
            }
        }
    }

    /// `usdt:BINARY:[PROVIDER:]NAME`, and with `-p` `usdt:NAME`, `usdt::PROVIDER:NAME`,
    /// `usdt:*:...`: a probe written at several places (inlined, unrolled) has a note per
    /// place, and is listed once.
    pub fn usdt<S: Source>(&self, catalog: &Catalog<S>, parts: &[&str], out: &mut String) -> Result<(), CatalogError> {
        let (target, provider, name) = match (self.pid, parts) {
            (Some(_), [_, name]) => ("", "", *name),
            (_, [_, target, name]) => (*target, "", *name),
            (_, [_, target, provider, name]) => (*target, *provider, *name),
            _ => return self.wrong_shape("usdt probe type requires 2 or 3 arguments".into()),
        };
        let probes = match self.pid {
            Some(pid) => catalog.process_usdt_probes(pid, target, provider, name),
            None if target.is_empty() => Err("usdt probe must specify at least path or pid to probe".into()),
            None => catalog.usdt_probes_of(target, if provider.is_empty() { "*" } else { provider }, name),
        };
        let names: BTreeSet<String> = probes
            .map_err(list_error)?
            .into_iter()
            .map(|probe| format!("usdt:{}:{}:{}\n", probe.path, probe.provider, probe.name))
            .collect();
        out.extend(names);
        Ok(())
    }
}
