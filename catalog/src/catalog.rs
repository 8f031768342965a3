//! [`Catalog`]: everything the checker asks of a system (`compiler::ProbeCatalog`), read through
//! a [`Source`] and parsed here. Reads are lazy: rbt starts by matching wildcards against the
//! event list and then reads only the `format` files of the tracepoints it attaches to, and the
//! kernel's BTF only when a script uses kernel types. Whole-system indexes (the event list, BTF,
//! the functions kprobes can attach to, whether fentry programs load) are read once; lookups for
//! one probe are not cached, since the checker resolves each attach point once
//! (`compiler/src/check/resolve.rs`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use compiler::ktypes::{KFunction, KType, KTypeId};
use compiler::usdt::UsdtProbe;
use compiler::{ProbeCatalog, TracepointFormat, UserAddress, UserFunction};

use crate::btf::Btf;
use crate::dwarf::{DwarfCache, DwarfTypes};
use crate::source::{exists, Source};
use crate::tracefs_format::{parse_format, sorted_event_list, FormatParseError};
use crate::wildcard::wildcard_match;
use crate::{elf_symbols, headers, kallsyms, kprobes};

/// Where tracefs lives on current kernels (and where the runtime mounts it when it is missing).
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// Where older systems expose it, through debugfs.
pub const DEBUGFS_TRACEFS: &str = "/sys/kernel/debug/tracing";

/// What the catalog cannot read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Format { path: PathBuf, source: FormatParseError },
    #[error("{message}")]
    BadListPattern { message: String },
}

/// The probes, functions and types of the system `S` describes.
#[derive(Debug)]
pub struct Catalog<S> {
    source: S,
    /// Where tracefs is, e.g. `/sys/kernel/tracing`.
    tracefs: PathBuf,
    /// Where the kernel's BTF is read from ([`Btf::VMLINUX`] unless told otherwise).
    btf_path: PathBuf,
    /// `category:event` for every tracepoint, sorted bytewise as bpftrace's `std::set` is.
    events: OnceLock<Vec<String>>,
    /// The kernel's BTF, read the first time a script uses kernel types.
    btf: OnceLock<Result<Btf, String>>,
    /// The functions kprobes can attach to, read once.
    kernel_functions: OnceLock<Result<Vec<String>, String>>,
    /// Whether fentry programs load here ([`Source::load_fentry`]), tried once.
    trampolines: OnceLock<Option<String>>,
    /// The kernel's source and build trees as given (bpftrace's `BPFTRACE_KERNEL_SOURCE` and
    /// `BPFTRACE_KERNEL_BUILD`), instead of looking under `/lib/modules`.
    kernel_headers: Option<(String, String)>,
    /// The DWARF types of the binaries uprobes name, read the first time a script asks.
    dwarf: DwarfCache,
    /// The variables at each address a script reads `locals` at, by binary and address: each
    /// `locals.NAME` asks.
    variables: std::sync::Mutex<std::collections::HashMap<(String, u64), UserVariables>>,
}

/// The variables at one address, or why they cannot be known.
type UserVariables = Result<Vec<compiler::tracepoint::UserVariable>, String>;

impl<S: Source> Catalog<S> {
    /// The catalog of `source`'s system, its tracefs found at [`TRACEFS`] or, failing that, at
    /// [`DEBUGFS_TRACEFS`].
    pub fn new(source: S) -> Self {
        let tracefs = [TRACEFS, DEBUGFS_TRACEFS]
            .into_iter()
            .find(|root| exists(&source, &Path::new(root).join("available_events")))
            .unwrap_or(TRACEFS);
        Self {
            source,
            tracefs: tracefs.into(),
            btf_path: Btf::VMLINUX.into(),
            events: OnceLock::new(),
            btf: OnceLock::new(),
            kernel_functions: OnceLock::new(),
            trampolines: OnceLock::new(),
            kernel_headers: None,
            dwarf: DwarfCache::default(),
            variables: std::sync::Mutex::default(),
        }
    }

    /// Takes the kernel's headers from these source and build trees.
    #[must_use]
    pub fn with_kernel_headers(mut self, source: impl Into<String>, build: impl Into<String>) -> Self {
        self.kernel_headers = Some((source.into(), build.into()));
        self
    }

    /// Reads the kernel's BTF from `path` instead of [`Btf::VMLINUX`].
    #[must_use]
    pub fn with_btf_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.btf_path = path.into();
        self
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// Where tracefs is.
    pub fn tracefs(&self) -> &Path {
        &self.tracefs
    }

    /// The file at `path` as text; invalid UTF-8 is an error, as for `fs::read_to_string`.
    fn read_text(&self, path: &Path) -> io::Result<String> {
        String::from_utf8(self.source.read(path)?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
    }

    /// The kernel's BTF, or why it cannot be read.
    pub fn btf(&self) -> Result<&Btf, String> {
        self.btf
            .get_or_init(|| {
                let path = self.btf_path.display();
                let data = self.source.read(&self.btf_path).map_err(|e| format!("could not read {path}: {e}"))?;
                Btf::parse(data).map_err(|reason| format!("{path} is not BTF: {reason}"))
            })
            .as_ref()
            .map_err(|e| format!("{e}; kernel types need a kernel built with CONFIG_DEBUG_INFO_BTF"))
    }

    /// Every tracepoint as `category:event`, sorted. Like bpftrace this reads `available_events`
    /// rather than walking `events/`: that directory also holds ftrace's own entries
    /// (`ftrace:function`, ...), which are not attachable tracepoints. An unreadable list is empty,
    /// as it is for bpftrace (which only warns).
    pub fn events(&self) -> &[String] {
        self.events.get_or_init(|| {
            let text = self.read_text(&self.tracefs.join("available_events"));
            sorted_event_list(&text.unwrap_or_default())
        })
    }

    /// The text of `events/CATEGORY/EVENT/format`.
    pub fn format_text(&self, category: &str, event: &str) -> Result<String, CatalogError> {
        let path = self.event_file(category, event, "format");
        self.read_text(&path).map_err(|source| CatalogError::Read { path, source })
    }

    /// The parsed `events/CATEGORY/EVENT/format`, uncached.
    pub fn read_format(&self, category: &str, event: &str) -> Result<TracepointFormat, CatalogError> {
        let text = self.format_text(category, event)?;
        parse_format(category, event, &text)
            .map_err(|source| CatalogError::Format { path: self.event_file(category, event, "format"), source })
    }

    /// The perf event id of a tracepoint (`events/CATEGORY/EVENT/id`), which attaching needs.
    pub fn event_id(&self, category: &str, event: &str) -> io::Result<u64> {
        let path = self.event_file(category, event, "id");
        let text = self.read_text(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::other(format!("{}: not a tracepoint id: {:?}", path.display(), text.trim())))
    }

    fn event_file(&self, category: &str, event: &str, file: &str) -> PathBuf {
        self.tracefs.join("events").join(category).join(event).join(file)
    }

    /// Every kernel function kprobes can attach to, or why there are none.
    /// The DWARF table of the binary at `path`, with its first id; `None` without DWARF.
    fn dwarf_types(&self, path: &str) -> Option<(KTypeId, std::sync::Arc<DwarfTypes>)> {
        self.dwarf.of(path, || self.read_binary(path).ok().map(|data| self.debug_data(path, data)))
    }

    fn all_kernel_functions(&self) -> Result<Vec<String>, String> {
        let kprobe_events = self.tracefs.join("kprobe_events");
        if !exists(&self.source, Path::new(kprobes::KPROBE_PMU)) && !exists(&self.source, &kprobe_events) {
            return Err(kprobes::NO_KPROBES.into());
        }
        let text = self
            .read_text(&self.tracefs.join("available_filter_functions"))
            .map_err(|e| format!("cannot read the kernel's functions from tracefs: {e}"))?;
        Ok(kprobes::matching_functions(&text, "*"))
    }
}

impl<S: Source> Catalog<S> {
    /// The variables visible at `vaddr` of the binary at `path`, and where each one is there
    /// (the catalog's `user_variables`, before it is kept).
    fn read_user_variables(&self, path: &str, vaddr: u64) -> Result<Vec<compiler::tracepoint::UserVariable>, String> {
        use crate::dwarf::{Computed, ComputedOp, Location, LocationBase};
        use compiler::tracepoint::{UserVariable, VarExpr, VarOp, VarPlace};
        let data = self.read_binary(path)?;
        let (base, types) = self.dwarf_types(path).ok_or_else(|| format!("No debuginfo found for {path}"))?;
        // The CFA at the address, for variables kept relative to it: (register, offset).
        let file_offset = elf_symbols::user_address(path, &data, vaddr)?.file_offset;
        let cfa = file_offset.and_then(|offset| {
            let row = unwind::build(&data).ok()?.lookup(offset)?;
            match unwind::decode(row.rule) {
                (unwind::KIND_CFA_RSP, cfa_offset, _) => Some((7u16, i64::from(cfa_offset))),
                (unwind::KIND_CFA_RBP, cfa_offset, _) => Some((6u16, i64::from(cfa_offset))),
                _ => None,
            }
        });
        let function = elf_symbols::user_address(path, &data, vaddr)?.function;
        let range = function.and_then(|(name, _)| elf_symbols::user_symbol(path, &data, &name));
        let debug = self.debug_data(path, data);
        // For a variable optimized out here: the lines of its function where it can be read.
        let (variables, readable_at) =
            crate::dwarf::variables_and_where_readable(&debug, vaddr, range.map(|(start, size)| (start, start + size)));
        let available = |name: &str| -> String {
            match readable_at.get(name) {
                Some(lines) if !lines.is_empty() => {
                    let lines: Vec<String> = lines.iter().map(u32::to_string).collect();
                    format!("; it can be read at lines {}", lines.join(", "))
                }
                _ => String::new(),
            }
        };
        fn fold_computed(expr: Computed, cfa: Option<(u16, i64)>) -> Result<VarExpr, String> {
            let op = |op: ComputedOp| match op {
                ComputedOp::Add => VarOp::Add,
                ComputedOp::Sub => VarOp::Sub,
                ComputedOp::Mul => VarOp::Mul,
                ComputedOp::And => VarOp::And,
                ComputedOp::Or => VarOp::Or,
                ComputedOp::Xor => VarOp::Xor,
                ComputedOp::Shl => VarOp::Shl,
                ComputedOp::Shr => VarOp::Shr,
                ComputedOp::Sar => VarOp::Sar,
            };
            Ok(match expr {
                Computed::Register(r) => VarExpr::Register(r),
                Computed::Constant(v) => VarExpr::Constant(v),
                Computed::Static(a) => VarExpr::Static(a),
                Computed::Cfa => {
                    let (r, cfa_offset) = cfa.ok_or("its frame's CFA is not known at this address")?;
                    #[allow(clippy::cast_sign_loss, reason = "added modulo 2^64")]
                    let offset = VarExpr::Constant(cfa_offset as u64);
                    VarExpr::Binary(VarOp::Add, Box::new(VarExpr::Register(r)), Box::new(offset))
                }
                Computed::Binary(o, lhs, rhs) => {
                    VarExpr::Binary(op(o), Box::new(fold_computed(*lhs, cfa)?), Box::new(fold_computed(*rhs, cfa)?))
                }
                Computed::Deref { addr, size } => VarExpr::Deref { addr: Box::new(fold_computed(*addr, cfa)?), size },
                Computed::EntryRegister(register) => {
                    VarExpr::EntryRegister { register, cfa: Box::new(fold_computed(Computed::Cfa, cfa)?) }
                }
            })
        }
        fn fold(location: Location, cfa: Option<(u16, i64)>) -> Result<Option<VarPlace>, String> {
            Ok(Some(match location {
                Location::Register(r) => VarPlace::Register(r),
                Location::Memory { base: LocationBase::Register(r), offset } => VarPlace::Memory { base: r, offset },
                Location::Memory { base: LocationBase::Cfa, offset } => {
                    let (r, cfa_offset) = cfa.ok_or("its frame's CFA is not known at this address")?;
                    VarPlace::Memory { base: r, offset: cfa_offset + offset }
                }
                #[allow(clippy::cast_sign_loss, reason = "DW_OP_addr's operand is an address")]
                Location::Memory { base: LocationBase::Static, offset } => VarPlace::Static(offset as u64),
                Location::Value { base: LocationBase::Register(r), offset } => VarPlace::Value { base: r, offset },
                Location::Constant(value) => VarPlace::Constant(value),
                Location::OptimizedOut => return Ok(None),
                Location::Computed { expr, value } => VarPlace::Computed { expr: fold_computed(expr, cfa)?, value },
                Location::Pieces(pieces) => VarPlace::Pieces(
                    pieces.into_iter().map(|p| Ok((fold(p.location, cfa)?, p.size))).collect::<Result<_, String>>()?,
                ),
                other => return Err(format!("rbt cannot read it there yet ({other})")),
            }))
        }
        let place = |name: &str, location: Location| -> Result<VarPlace, String> {
            match location {
                Location::OptimizedOut => Err(format!("it is optimized out at this address{}", available(name))),
                Location::Unsupported(why) => Err(format!("it is {why} at this address{}", available(name))),
                Location::Pieces(pieces) if pieces.iter().all(|p| p.location == Location::OptimizedOut) => {
                    Err(format!("it is optimized out at this address{}", available(name)))
                }
                location => fold(location, cfa)?.ok_or_else(|| "it is optimized out at this address".to_owned()),
            }
        };
        Ok(variables
            .into_iter()
            .map(|v| UserVariable {
                ty: v.type_offset.and_then(|o| types.index_at_offset(o)).map(|index| base + index),
                parameter: v.parameter,
                place: place(&v.name, v.location),
                name: v.name,
            })
            .collect())
    }
}

impl<S: Source> ProbeCatalog for Catalog<S> {
    fn match_tracepoints(&self, category: &str, event: &str) -> Vec<(String, String)> {
        let pattern = format!("{category}:{event}");
        self.events()
            .iter()
            .filter(|e| wildcard_match(e, &pattern))
            .filter_map(|e| e.split_once(':'))
            .map(|(c, e)| (c.to_owned(), e.to_owned()))
            .collect()
    }

    fn tracepoint_format(&self, category: &str, event: &str) -> Option<TracepointFormat> {
        self.read_format(category, event).ok()
    }

    fn all_tracepoints(&self) -> Vec<String> {
        self.events().to_vec()
    }

    fn user_functions(&self, target: &str, pattern: &str) -> Result<Vec<UserFunction>, String> {
        self.functions_of(target, pattern)
    }

    fn user_address(&self, target: &str, address: u64) -> Result<UserAddress, String> {
        let (path, data) = self.binary(target)?;
        elf_symbols::user_address(&path, &data, address)
    }

    fn user_function_lines(&self, target: &str, func: &str) -> Result<(String, u32, u32), String> {
        let (path, data) = self.binary(target)?;
        let (start, size) =
            elf_symbols::user_symbol(&path, &data, func).ok_or_else(|| format!("no function {func} in {path}"))?;
        let debug = self.debug_data(&path, data);
        let found = crate::dwarf::function_lines(&debug, start, start + size.max(1))
            .ok_or_else(|| format!("the DWARF line tables of {path} say nothing of {func}"))?;
        let last = found.lines.keys().next_back().copied().unwrap_or(found.base);
        Ok((found.file, found.base, last))
    }

    fn user_lines(
        &self,
        target: &str,
        file: &str,
        line: u32,
        column: Option<u32>,
    ) -> Result<Vec<(u64, UserAddress)>, String> {
        let (path, data) = self.binary(target)?;
        let debug = self.debug_data(&path, data.clone());
        let lines = crate::dwarf::line_addresses(&debug, file, line, column)
            .map_err(|e| format!("no statement at {file}:{line} in {path}: {e}"))?;
        lines
            .into_iter()
            .map(|l| elf_symbols::user_address(&path, &data, l.address).map(|found| (l.address, found)))
            .collect()
    }

    fn user_variables(&self, path: &str, vaddr: u64) -> Result<Vec<compiler::tracepoint::UserVariable>, String> {
        let key = (path.to_owned(), vaddr);
        let lock = || self.variables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = lock().get(&key) {
            return found.clone();
        }
        let found = self.read_user_variables(path, vaddr);
        lock().insert(key, found.clone());
        found
    }

    fn user_symbol(&self, target: &str, name: &str) -> Option<(u64, u64)> {
        let (path, data) = self.binary(target).ok()?;
        elf_symbols::user_symbol(&path, &data, name)
    }

    fn usdt_probes(&self, target: &str, provider: &str, name: &str) -> Result<Vec<UsdtProbe>, String> {
        self.usdt_probes_of(target, provider, name)
    }

    fn process_usdt_probes(
        &self,
        pid: u32,
        target: &str,
        provider: &str,
        name: &str,
    ) -> Result<Vec<UsdtProbe>, String> {
        Catalog::process_usdt_probes(self, pid, target, provider, name)
    }

    fn process_executable(&self, pid: u32) -> Result<String, String> {
        Catalog::process_executable(self, pid)
    }

    fn process_path(&self, pid: u32, path: &str) -> String {
        Catalog::process_path(self, pid, path)
    }

    fn user_function_signature(&self, path: &str, func: &str) -> Result<KFunction, String> {
        let (base, types) = self.dwarf_types(path).ok_or_else(|| format!("No debuginfo found for {path}"))?;
        Ok(types.function(base, func))
    }

    fn user_type_named(&self, path: &str, name: &str) -> Option<KTypeId> {
        let (base, types) = self.dwarf_types(path)?;
        types.named(name).map(|index| base + index)
    }

    fn kernel_functions(&self, pattern: &str) -> Result<Vec<String>, String> {
        // The list of the kernel's functions (tens of thousands of lines) is read once, however
        // many kprobe specs a script (or a REPL session) has.
        let all = self.kernel_functions.get_or_init(|| self.all_kernel_functions()).as_ref()?;
        Ok(all.iter().filter(|f| wildcard_match(f, pattern)).cloned().collect())
    }

    fn kernel_types_missing(&self) -> Option<String> {
        self.btf().err()
    }

    fn kernel_type_named(&self, name: &str) -> Option<KTypeId> {
        self.btf().ok()?.type_named(name)
    }

    fn kernel_type(&self, id: KTypeId) -> Option<KType> {
        if let Some((base, types)) = self.dwarf.by_id(id) {
            return types.get(base, id - base);
        }
        self.btf().ok()?.get(id)
    }

    fn kernel_type_name(&self, id: KTypeId) -> String {
        if let Some((base, types)) = self.dwarf.by_id(id) {
            return types.name(id - base);
        }
        self.btf().map(|b| b.type_name(id)).unwrap_or_else(|_| format!("type {id}"))
    }

    fn kernel_type_size(&self, id: KTypeId) -> Option<u32> {
        if let Some((base, types)) = self.dwarf.by_id(id) {
            return types.size(id - base);
        }
        self.btf().ok()?.size_of(id)
    }

    fn kernel_record_names(&self) -> Vec<String> {
        self.btf().map(|b| b.record_names()).unwrap_or_default()
    }

    fn kernel_function_signature(&self, name: &str) -> Option<KFunction> {
        self.btf().ok()?.function(name)
    }

    fn cgroup_id(&self, path: &str) -> Result<u64, String> {
        self.source.cgroup_id(Path::new(path)).map_err(|e| e.to_string())
    }

    fn raw_tracepoint_signature(&self, name: &str) -> Option<KFunction> {
        self.btf().ok()?.raw_tracepoint(name)
    }

    fn trampolines_missing(&self, func: &KFunction) -> Option<String> {
        self.trampolines
            .get_or_init(|| {
                let e = self.source.load_fentry(func.btf_id).err()?;
                Some(format!("this kernel does not load fentry/fexit programs (BPF trampolines): {e}"))
            })
            .clone()
    }

    fn kernel_btf_functions(&self, pattern: &str) -> Vec<String> {
        let Ok(btf) = self.btf() else { return Vec::new() };
        btf.function_names().into_iter().filter(|f| wildcard_match(f, pattern)).collect()
    }

    fn kernel_symbol(&self, name: &str) -> Option<u64> {
        let text = self.read_text(Path::new("/proc/kallsyms")).ok()?;
        kallsyms::symbol_address(&text, name)
    }

    fn kernel_function_size(&self, name: &str) -> Option<u64> {
        let text = self.read_text(Path::new("/proc/kallsyms")).ok()?;
        kallsyms::function_size(&text, name)
    }

    fn kernel_enum_constant(&self, name: &str) -> Option<u64> {
        self.btf().ok()?.enum_constant(name)
    }

    fn include_file(&self, path: &str) -> Option<String> {
        let bytes = self.source.read(Path::new(path)).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn system_includes(&self) -> grammar::SystemIncludes {
        headers::system_includes(&self.source, self.kernel_headers.clone())
    }
}

#[cfg(test)]
mod tests;
