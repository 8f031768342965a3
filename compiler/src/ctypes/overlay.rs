//! The catalog the checker sees when a script defines types: the script's table in front of
//! the system's catalog. Type questions go to the script's table first (its names win), then to
//! the catalog; every other question goes straight to the catalog.
//!
//! Every `ProbeCatalog` method is forwarded here explicitly: a method added to the trait must
//! be forwarded too, or checking would see its default answer.

use std::sync::{Mutex, PoisonError};

use super::ScriptTypes;
use crate::ktypes::{KFunction, KType, KTypeId};
use crate::tracepoint::{ProbeCatalog, TracepointFormat, UserAddress, UserFunction};
use crate::usdt::UsdtProbe;

/// Pointer types made for casts (`(struct foo **)p`) have ids from here up.
const POINTER_TYPE_BASE: KTypeId = 0xC000_0000;

/// The script's types over the system's catalog.
pub struct Overlay<'a> {
    script: &'a ScriptTypes,
    system: &'a dyn ProbeCatalog,
    /// The target of each pointer type made for a cast, by id from `POINTER_TYPE_BASE`.
    pointers: Mutex<Vec<KTypeId>>,
}

impl<'a> Overlay<'a> {
    pub fn new(script: &'a ScriptTypes, system: &'a dyn ProbeCatalog) -> Overlay<'a> {
        Overlay { script, system, pointers: Mutex::new(Vec::new()) }
    }

    fn pointer_target(&self, id: KTypeId) -> Option<KTypeId> {
        let index = id.checked_sub(POINTER_TYPE_BASE)?;
        self.pointers.lock().unwrap_or_else(PoisonError::into_inner).get(index as usize).copied()
    }
}

impl ProbeCatalog for Overlay<'_> {
    fn match_tracepoints(&self, category: &str, event: &str) -> Vec<(String, String)> {
        self.system.match_tracepoints(category, event)
    }

    fn tracepoint_format(&self, category: &str, event: &str) -> Option<TracepointFormat> {
        self.system.tracepoint_format(category, event)
    }

    fn all_tracepoints(&self) -> Vec<String> {
        self.system.all_tracepoints()
    }

    fn kernel_symbol(&self, name: &str) -> Option<u64> {
        self.system.kernel_symbol(name)
    }

    fn kernel_function_size(&self, name: &str) -> Option<u64> {
        self.system.kernel_function_size(name)
    }

    fn tracepoint_exists(&self, name: &str) -> bool {
        self.system.tracepoint_exists(name)
    }

    fn user_functions(&self, target: &str, pattern: &str) -> Result<Vec<UserFunction>, String> {
        self.system.user_functions(target, pattern)
    }

    fn user_address(&self, target: &str, address: u64) -> Result<UserAddress, String> {
        self.system.user_address(target, address)
    }
    fn user_variables(&self, path: &str, vaddr: u64) -> Result<Vec<crate::tracepoint::UserVariable>, String> {
        self.system.user_variables(path, vaddr)
    }

    fn user_lines(
        &self,
        target: &str,
        file: &str,
        line: u32,
        column: Option<u32>,
    ) -> Result<Vec<(u64, UserAddress)>, String> {
        self.system.user_lines(target, file, line, column)
    }

    fn user_function_lines(&self, target: &str, func: &str) -> Result<(String, u32, u32), String> {
        self.system.user_function_lines(target, func)
    }

    fn user_symbol(&self, target: &str, name: &str) -> Option<(u64, u64)> {
        self.system.user_symbol(target, name)
    }

    fn process_usdt_probes(
        &self,
        pid: u32,
        target: &str,
        provider: &str,
        name: &str,
    ) -> Result<Vec<UsdtProbe>, String> {
        self.system.process_usdt_probes(pid, target, provider, name)
    }

    fn process_executable(&self, pid: u32) -> Result<String, String> {
        self.system.process_executable(pid)
    }

    fn process_path(&self, pid: u32, path: &str) -> String {
        self.system.process_path(pid, path)
    }

    fn user_function_signature(&self, path: &str, func: &str) -> Result<KFunction, String> {
        self.system.user_function_signature(path, func)
    }

    /// The script's definition of a name wins over the probed binary's DWARF, as in bpftrace
    /// (a script's `struct Foo` overrides the program's `struct Foo`).
    fn user_type_named(&self, path: &str, name: &str) -> Option<KTypeId> {
        self.script.named(name).or_else(|| self.system.user_type_named(path, name))
    }

    fn usdt_probes(&self, target: &str, provider: &str, name: &str) -> Result<Vec<UsdtProbe>, String> {
        self.system.usdt_probes(target, provider, name)
    }

    fn kernel_functions(&self, pattern: &str) -> Result<Vec<String>, String> {
        self.system.kernel_functions(pattern)
    }

    fn kernel_types_missing(&self) -> Option<String> {
        self.system.kernel_types_missing()
    }

    /// The script's type of that name, unless the script only declares it (`struct Foo;`, or
    /// `struct Foo *p` in a definition) and the system defines it. Without kernel types, a
    /// declaration alone is not an answer either, so the checker says that BTF is missing.
    fn kernel_type_named(&self, name: &str) -> Option<KTypeId> {
        match self.script.named(name) {
            Some(id) if self.script.is_complete(id) => Some(id),
            declared => self
                .system
                .kernel_type_named(name)
                .or_else(|| declared.filter(|_| self.system.kernel_types_missing().is_none())),
        }
    }

    fn kernel_type(&self, id: KTypeId) -> Option<KType> {
        if let Some(to) = self.pointer_target(id) {
            return Some(KType::Pointer { to });
        }
        if ScriptTypes::owns(id) {
            return self.script.get(id);
        }
        self.system.kernel_type(id)
    }

    fn kernel_type_name(&self, id: KTypeId) -> String {
        if let Some(to) = self.pointer_target(id) {
            return format!("{} *", self.kernel_type_name(to));
        }
        self.script.name_of(id).unwrap_or_else(|| self.system.kernel_type_name(id))
    }

    fn kernel_type_size(&self, id: KTypeId) -> Option<u32> {
        if self.pointer_target(id).is_some() {
            return Some(8);
        }
        if !ScriptTypes::owns(id) {
            return self.system.kernel_type_size(id);
        }
        if !self.script.is_complete(id) {
            return None;
        }
        match self.script.get(id)? {
            KType::Array { elem, len } => self.kernel_type_size(elem)?.checked_mul(len),
            other => other.own_size(),
        }
    }

    fn kernel_record_names(&self) -> Vec<String> {
        let mut names = self.system.kernel_record_names();
        names.extend(self.script.record_names().map(str::to_string));
        names
    }

    fn kernel_pointer_type(&self, to: KTypeId) -> Option<KTypeId> {
        let mut pointers = self.pointers.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match pointers.iter().position(|&t| t == to) {
            Some(index) => index,
            None => {
                pointers.push(to);
                pointers.len() - 1
            }
        };
        Some(POINTER_TYPE_BASE + index as KTypeId)
    }

    /// The script's enum constants first (a uint64, as bpftrace 0.17 types enum constants:
    /// `F = -3` stored in a map prints 18446744073709551613), then the kernel's.
    fn kernel_enum_constant(&self, name: &str) -> Option<u64> {
        self.script.constant(name).map(|v| v as u64).or_else(|| self.system.kernel_enum_constant(name))
    }

    fn kernel_function_signature(&self, name: &str) -> Option<KFunction> {
        self.system.kernel_function_signature(name)
    }

    fn trampolines_missing(&self, func: &KFunction) -> Option<String> {
        self.system.trampolines_missing(func)
    }

    fn raw_tracepoint_signature(&self, name: &str) -> Option<KFunction> {
        self.system.raw_tracepoint_signature(name)
    }

    fn cgroup_id(&self, path: &str) -> Result<u64, String> {
        self.system.cgroup_id(path)
    }

    fn kernel_btf_functions(&self, pattern: &str) -> Vec<String> {
        self.system.kernel_btf_functions(pattern)
    }

    fn include_file(&self, path: &str) -> Option<String> {
        self.system.include_file(path)
    }

    fn system_includes(&self) -> grammar::SystemIncludes {
        self.system.system_includes()
    }
}

#[cfg(test)]
mod tests {
    /// Every method of `ProbeCatalog` is forwarded here: one left to its default would answer
    /// for the system as if the system had nothing (the trait grows as rbt learns more).
    #[test]
    fn every_catalog_method_is_forwarded() {
        let trait_source = include_str!("../tracepoint.rs");
        let start = trait_source.find("pub trait ProbeCatalog").unwrap_or(0);
        let end = trait_source[start..].find("\n}\n").map_or(trait_source.len(), |e| start + e);
        let overlay = include_str!("overlay.rs");
        let missing: Vec<&str> = trait_source[start..end]
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("fn "))
            .filter_map(|rest| rest.split('(').next())
            .filter(|name| !overlay.contains(&format!("    fn {name}(")))
            .collect();
        assert!(missing.is_empty(), "Overlay does not forward {missing:?}");
    }
}
