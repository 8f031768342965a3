//! Semantic analysis: resolves attach points, builtins, functions and tracepoint fields, types
//! every expression, and builds the checked program ([`crate::hir`]).
//!
//! Attach points are resolved first, once, in a pass of their own (`resolve.rs`). Map types
//! are decided by every use in the whole script (a map may be printed in a probe that comes
//! before the one assigning it), so the checker then runs in two phases: collecting runs only
//! gather map key and value types and variable types (widening strings to the longest seen), then
//! a final run checks against them and reports diagnostics. One collecting run is not always
//! enough: in `BEGIN { @a[@b] = 1 } END { @b = 2 }` the key of `@a` is only known once `@b` is,
//! so collecting repeats until nothing changes (types only grow, so this ends).

mod addrspace;
mod builtins;
mod expr;
mod ktypes;
mod pointers;
mod positional;
mod resolve;
mod stmt;
mod suggest;
mod tuples;
mod uprobe_args;
mod uprobe_locals;

use std::collections::HashMap;

use crate::hir::{self, MapDecl, MapId, VarId};
use crate::tracepoint::ProbeCatalog;
use crate::types::{MapValue, Type};
use grammar::ast;
use grammar::{Diagnostic, Span};
use resolve::ResolvedSpec;
pub(crate) use suggest::{nearest, suggest};

/// Settings that change what a program means.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// `cpid`: the pid of `-c`'s command, if any.
    pub cpid: Option<u32>,
    /// `-c`'s executable as bpftrace 0.17 names it (as written when it has a `/`, else found in
    /// `PATH`): function watchpoints' functions are its.
    pub command_path: Option<String>,
    /// `-p PID`: uprobe and USDT specs are resolved in that process (its executable, the
    /// modules it maps, its mount namespace), as bpftrace 0.17 resolves them.
    pub pid: Option<u32>,
    /// Positional parameters `$1`, `$2`, ...
    pub params: Vec<String>,
    /// Length of strings made by `str()` (`RBT_STRLEN`, bpftrace's `BPFTRACE_STRLEN`).
    pub strlen: u32,
    /// Whether `system()` is allowed (`--unsafe`).
    pub unsafe_allowed: bool,
    /// The system headers the script included (`linux/sched.h`), named in the error for a
    /// type or constant that neither BTF nor they gave.
    pub included_headers: Vec<String>,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            cpid: None,
            command_path: None,
            pid: None,
            params: Vec::new(),
            strlen: 64,
            unsafe_allowed: false,
            included_headers: Vec::new(),
        }
    }
}

/// Checks a parsed program. Returns the checked program when there are no errors, and every
/// diagnostic (warnings included) either way.
pub fn check(
    program: &ast::Program,
    catalog: &dyn ProbeCatalog,
    options: &CheckOptions,
) -> (Option<hir::Program>, Vec<Diagnostic>) {
    let (program, param_diags) = positional::substitute(program, &options.params);
    let program = &program;
    // The script's own C types sit in front of the catalog's: every type question the checker
    // asks goes through them first.
    let (script_types, type_diags) = crate::ctypes::ScriptTypes::build(&program.c_definitions, catalog);
    let overlay = crate::ctypes::Overlay::new(&script_types, catalog);
    let catalog: &dyn ProbeCatalog = &overlay;
    let resolved = resolve::resolve_program(program, catalog, options);
    let mut maps = Vec::new();
    let mut var_types = HashMap::new();
    for _ in 0..MAX_COLLECTING_RUNS {
        let mut checker = Checker::new(catalog, options, &resolved, true);
        checker.preload(maps.clone(), var_types.clone());
        checker.check_program(program);
        let settled = checker.maps == maps && checker.var_types == var_types;
        maps = checker.maps;
        var_types = checker.var_types;
        if settled {
            break;
        }
    }

    let mut checker = Checker::new(catalog, options, &resolved, false);
    checker.preload(maps, var_types);
    let probes = checker.check_program(program);
    let mut diags = param_diags;
    diags.extend(type_diags);
    diags.append(&mut checker.diags);
    dedup_diagnostics(&mut diags);
    if probes.is_empty() && !diags.iter().any(Diagnostic::is_error) {
        diags.push(Diagnostic::error("no-probes", "the program has no probes", program.span));
    }
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    let program = hir::Program { probes, maps: checker.maps, formats: checker.formats };
    (Some(program), diags)
}

/// Collecting runs before giving up on types settling; each run settles at least one more map or
/// variable in realistic scripts, and a chain of more than a few is rare.
const MAX_COLLECTING_RUNS: usize = 16;

/// A wildcard probe is checked once per expansion; report each problem once.
fn dedup_diagnostics(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.primary_span(), d.message.clone())));
}

pub(crate) struct Checker<'a> {
    catalog: &'a dyn ProbeCatalog,
    options: &'a CheckOptions,
    /// The program's attach points, resolved once before the runs.
    resolved: &'a [Vec<ResolvedSpec>],
    /// The first run only collects map and variable types.
    collecting: bool,
    maps: Vec<MapDecl>,
    map_index: HashMap<String, MapId>,
    /// Variable types per (probe block, name), widened in the first run.
    var_types: HashMap<(usize, String), Type>,
    formats: Vec<hir::Format>,
    diags: Vec<Diagnostic>,
    /// State of the probe being checked.
    scope: ProbeScope,
    /// Kernel structs already laid out for reading whole, by kernel type id.
    layouts: HashMap<crate::ktypes::KTypeId, std::sync::Arc<crate::types::RecordLayout>>,
    /// Functions whose registers on entry `locals`/`args` read (`DW_OP_entry_value`): each
    /// gets a hidden uprobe at its entry that keeps them.
    entry_saves: Vec<uprobe_locals::EntrySave>,
}

#[derive(Default)]
struct ProbeScope {
    block_index: usize,
    attach: Option<hir::AttachPoint>,
    /// The spec the attach point came from, where errors about the attach point go.
    spec_span: Span,
    vars: Vec<hir::Var>,
    var_ids: HashMap<String, VarId>,
    /// Variables whose assignment was reported as wrong: their uses say nothing more (one
    /// mistake, one error, as bpftrace reports it).
    failed_vars: std::collections::HashSet<String>,
    /// Variables last assigned `ctx`, which stand for it (see `StmtKind::AssignVar`).
    ctx_vars: std::collections::HashSet<String>,
    loop_depth: u32,
}

impl<'a> Checker<'a> {
    fn new(
        catalog: &'a dyn ProbeCatalog,
        options: &'a CheckOptions,
        resolved: &'a [Vec<ResolvedSpec>],
        collecting: bool,
    ) -> Self {
        Checker {
            catalog,
            options,
            resolved,
            collecting,
            maps: Vec::new(),
            map_index: HashMap::new(),
            var_types: HashMap::new(),
            formats: Vec::new(),
            diags: Vec::new(),
            scope: ProbeScope::default(),
            layouts: HashMap::new(),
            entry_saves: Vec::new(),
        }
    }

    /// Starts from the map and variable types an earlier collecting run found.
    fn preload(&mut self, maps: Vec<MapDecl>, var_types: HashMap<(usize, String), Type>) {
        self.map_index = maps.iter().enumerate().map(|(i, m)| (m.name.clone(), MapId(i as u32))).collect();
        self.maps = maps;
        self.var_types = var_types;
    }

    fn error(&mut self, diag: Diagnostic) {
        if !self.collecting {
            self.diags.push(diag);
        }
    }

    fn check_program(&mut self, program: &ast::Program) -> Vec<hir::Probe> {
        self.formats.clear();
        self.entry_saves.clear();
        let mut probes = Vec::new();
        let resolved = self.resolved;
        for (block_index, (probe, specs)) in program.probes.iter().zip(resolved).enumerate() {
            // A block whose every probe was skipped is still typed, for the maps it uses.
            if specs.iter().all(|r| r.points.is_empty()) {
                if let Some((spec, attach)) =
                    probe.specs.iter().zip(specs).find_map(|(spec, r)| Some((spec, r.skipped_as.clone()?)))
                {
                    for diag in specs.iter().flat_map(|r| &r.diags) {
                        self.error(diag.clone());
                    }
                    self.check_probe(block_index, probe, spec.span, attach);
                    continue;
                }
            }
            for (spec, resolved) in probe.specs.iter().zip(specs) {
                // Resolving's diagnostics come where resolving the spec found them: before
                // those of the probe's body.
                for diag in &resolved.diags {
                    self.error(diag.clone());
                }
                for attach in &resolved.points {
                    probes.push(self.check_probe(block_index, probe, spec.span, attach.clone()));
                    // A function watchpoint's hidden setup uprobe follows it.
                    if let hir::AttachPoint::FunctionWatchpoint(watch) = attach {
                        probes.push(resolve::setup_probe(probes.len() - 1, watch, spec.span, probe.span));
                    }
                }
            }
        }
        probes.extend(self.entry_save_probes());
        probes
    }

    fn check_probe(
        &mut self,
        block_index: usize,
        probe: &ast::Probe,
        spec_span: Span,
        attach: hir::AttachPoint,
    ) -> hir::Probe {
        self.scope = ProbeScope { block_index, attach: Some(attach.clone()), spec_span, ..ProbeScope::default() };
        let predicate = probe.predicate.as_ref().map(|p| {
            let e = self.check_expr(p);
            self.expect_integer(&e, "predicate");
            e
        });
        let body = self.check_block(&probe.body);
        let vars = std::mem::take(&mut self.scope.vars);
        hir::Probe { attach, spec_span, span: probe.span, predicate, body, vars }
    }

    /// The id of a scratch variable being assigned a value of type `ty`, declaring it if new.
    fn assign_var(&mut self, ident: &ast::Ident, ty: &Type) -> VarId {
        let key = (self.scope.block_index, ident.name.clone());
        let declared = match self.var_types.get(&key) {
            // An integer variable keeps its first type, size included: bpftrace 0.17 sizes the
            // variable's stack slot by its first assignment (see `lower_assign_var`).
            Some(old) if self.collecting && !old.is_integer() => match merge_collected(old, ty) {
                Some(merged) => {
                    self.var_types.insert(key.clone(), merged.clone());
                    merged
                }
                None => old.clone(),
            },
            Some(old) => old.clone(),
            None => {
                self.var_types.insert(key.clone(), ty.clone());
                ty.clone()
            }
        };
        if !declared.accepts(ty) {
            self.error(Diagnostic::error(
                "type-mismatch",
                format!(
                    "type mismatch for ${}: trying to assign value of type '{ty}' when variable already contains a value of type '{declared}'",
                    ident.name
                ),
                ident.span,
            ));
        }
        if let Some(&id) = self.scope.var_ids.get(&ident.name) {
            // Later reads see the widened type (a longer string assigned since).
            self.scope.vars[id.0 as usize].ty = declared;
            return id;
        }
        let id = VarId(self.scope.vars.len() as u32);
        self.scope.vars.push(hir::Var { name: ident.name.clone(), ty: declared });
        self.scope.var_ids.insert(ident.name.clone(), id);
        id
    }

    /// The map `name` holding `value` with keys of `keys`, declaring or widening it.
    fn define_map(&mut self, access: &ast::MapAccess, keys: &[Type], value: MapValue) -> MapId {
        if let Some(&id) = self.map_index.get(&access.name) {
            let decl = &self.maps[id.0 as usize];
            let (old_keys, old_value) = (decl.key.clone(), decl.value.clone());
            let display = decl.display_name();
            if self.collecting {
                if let (MapValue::Plain(a), MapValue::Plain(b)) = (&old_value, &value) {
                    if let Some(merged) = merge_collected(a, b) {
                        self.maps[id.0 as usize].value = MapValue::Plain(merged);
                    }
                }
            } else if !value_compatible(&old_value, &value) {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!(
                        "type mismatch for {display}: trying to assign value of type '{}' when map already contains a value of type '{}'",
                        value.describe(),
                        old_value.describe()
                    ),
                    access.span,
                ));
            }
            self.check_keys(id, access, &old_keys, keys);
            return id;
        }
        let id = MapId(self.maps.len() as u32);
        self.maps.push(MapDecl { name: access.name.clone(), key: keys.to_vec(), value, span: access.span });
        self.map_index.insert(access.name.clone(), id);
        id
    }

    fn check_keys(&mut self, id: MapId, access: &ast::MapAccess, declared: &[Type], used: &[Type]) {
        if self.collecting {
            if declared.len() == used.len() {
                let merged: Option<Vec<Type>> = declared.iter().zip(used).map(|(d, u)| merge_collected(d, u)).collect();
                if let Some(merged) = merged {
                    self.maps[id.0 as usize].key = merged;
                }
            }
            return;
        }
        let fits = declared.len() == used.len() && declared.iter().zip(used).all(|(d, u)| d.accepts(u));
        if !fits {
            let show = |ts: &[Type]| ts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            self.error(Diagnostic::error(
                "key-mismatch",
                format!(
                    "argument mismatch for @{}: trying to access with arguments: [{}] when map expects arguments: [{}]",
                    access.name,
                    show(used),
                    show(declared)
                ),
                access.span,
            ));
        } else if self.collecting {
            let widened = declared.iter().zip(used).map(|(d, u)| d.widen(u)).collect();
            self.maps[id.0 as usize].key = widened;
        }
    }

    /// A map that must already exist (read, print, clear, ...).
    fn lookup_map(&mut self, access: &ast::MapAccess) -> Option<MapId> {
        let found = self.map_index.get(&access.name).copied();
        if found.is_none() {
            let names: Vec<String> = self.maps.iter().map(MapDecl::display_name).collect();
            let mut diag =
                Diagnostic::error("undefined-map", format!("undefined map: @{}", access.name), access.name_span)
                    .with_primary_text("this map is never assigned");
            if let Some(near) = suggest(&format!("@{}", access.name), names.iter().map(String::as_str)) {
                diag = diag.with_help(format!("did you mean `{near}`?"));
            }
            self.error(diag);
        }
        found
    }

    fn expect_integer(&mut self, e: &hir::Expr, what: &str) {
        if !e.ty.is_integer() && e.ty != Type::None {
            self.error(Diagnostic::error("type-mismatch", format!("{what} must be an integer, not {}", e.ty), e.span));
        }
    }
}

/// The type a collecting run records when a map or variable seen as `old` is used as `new`:
/// compatible types widen, and a `none` part (a value that depends on a map or variable only
/// assigned later in the script) takes the other side's type. `None` when they do not fit.
fn merge_collected(old: &Type, new: &Type) -> Option<Type> {
    match (old, new) {
        (Type::None, t) | (t, Type::None) => Some(t.clone()),
        (Type::Tuple(a), Type::Tuple(b)) if a.len() == b.len() => {
            a.iter().zip(b).map(|(x, y)| merge_collected(x, y)).collect::<Option<Vec<Type>>>().map(Type::Tuple)
        }
        (a, b) if a.accepts(b) => Some(a.widen(b)),
        _ => None,
    }
}

fn value_compatible(a: &MapValue, b: &MapValue) -> bool {
    match (a, b) {
        (MapValue::Plain(x), MapValue::Plain(y)) => x.accepts(y),
        (MapValue::Sum { .. }, MapValue::Sum { .. })
        | (MapValue::Min { .. }, MapValue::Min { .. })
        | (MapValue::Max { .. }, MapValue::Max { .. })
        | (MapValue::Avg { .. }, MapValue::Avg { .. })
        | (MapValue::Stats { .. }, MapValue::Stats { .. }) => true,
        _ => a == b,
    }
}
