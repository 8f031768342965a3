//! The binaries uprobe and USDT specs name, found as bpftrace 0.17 finds them: a path as the
//! script writes it (kept as written, since bpftrace prints it so in `probe` and `-l`), a glob
//! (`./testprogs/usdt*`: every ELF executable or shared object it matches), a library name
//! (`libc`) through the ld.so cache; and with `-p PID`, the process's own view: its executable
//! (`/proc/PID/root` followed by `/proc/PID/exe`'s target, so that a process in another mount
//! namespace is reached through its root), the paths it sees when its mount namespace is not
//! ours, and every module it maps, for its USDT probes.

use std::path::Path;

use compiler::usdt::UsdtProbe;
use compiler::UserFunction;
use object::{Object, ObjectKind};

use crate::ldso_cache;
use crate::wildcard::{glob_paths, has_wildcard, wildcard_match};
use crate::{elf_symbols, stapsdt, Catalog, Source};

/// The dynamic loader's cache, where uprobe targets written as library names are looked up.
const LD_SO_CACHE: &str = "/etc/ld.so.cache";

impl<S: Source> Catalog<S> {
    /// The binaries `target` names, as they are to be written in probe names: the path itself,
    /// the matches of a glob (only ELF executables and shared objects, sorted), or the ld.so
    /// cache's path for a library name. A glob matching nothing is no error (no binaries).
    pub fn resolve_targets(&self, target: &str) -> Result<Vec<String>, String> {
        if has_wildcard(target) {
            let paths = glob_paths(self.source(), target);
            return Ok(paths.into_iter().filter(|path| self.is_elf_program(path)).collect());
        }
        if target.contains('/') {
            return Ok(vec![target.to_owned()]);
        }
        let cache = self
            .source()
            .read(Path::new(LD_SO_CACHE))
            .map_err(|e| format!("cannot read {LD_SO_CACHE} to find {target}: {e}"))?;
        let path = ldso_cache::find_library(&cache, target)
            .ok_or_else(|| format!("no library named '{target}' in the ld.so cache (give a path instead)"))?;
        Ok(vec![path])
    }

    /// Whether the file at `path` is an ELF executable or shared object (bcc's
    /// `bcc_elf_is_exe`/`bcc_elf_is_shared_obj`, which bpftrace filters glob matches with).
    fn is_elf_program(&self, path: &str) -> bool {
        let Ok(data) = self.source().read(Path::new(path)) else { return false };
        object::File::parse(&*data)
            .is_ok_and(|file| matches!(file.kind(), ObjectKind::Executable | ObjectKind::Dynamic))
    }

    /// The bytes of the binary at `path` (as [`Catalog::resolve_targets`] gives it). The path
    /// is read as it stands: `/proc/PID/root/...` of a process in another mount namespace
    /// cannot be canonicalized in ours.
    pub(crate) fn read_binary(&self, path: &str) -> Result<Vec<u8>, String> {
        self.source().read(Path::new(path)).map_err(|e| format!("cannot open {path}: {e}"))
    }

    /// The bytes whose DWARF describes the binary at `path` (read as `data`): the binary itself
    /// when it has line tables, else its separate debug file where gdb and perf find one:
    /// `/usr/lib/debug/.build-id/xx/yyyy.debug` by its build id, then its `.gnu_debuglink`
    /// name next to it, in `.debug/` there, and under `/usr/lib/debug` + its directory.
    pub(crate) fn debug_data(&self, path: &str, data: Vec<u8>) -> Vec<u8> {
        let Ok(file) = object::File::parse(&*data) else { return data };
        if file.section_by_name(".debug_line").is_some() {
            return data;
        }
        let mut candidates = Vec::new();
        if let Ok(Some(id)) = file.build_id() {
            if id.len() > 1 {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                candidates.push(format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]));
            }
        }
        if let Ok(Some((name, _crc))) = file.gnu_debuglink() {
            let name = String::from_utf8_lossy(name).into_owned();
            let dir = Path::new(path).parent().map(|d| d.display().to_string()).unwrap_or_default();
            candidates.push(format!("{dir}/{name}"));
            candidates.push(format!("{dir}/.debug/{name}"));
            candidates.push(format!("/usr/lib/debug{dir}/{name}"));
        }
        for candidate in candidates {
            let Ok(debug) = self.source().read(Path::new(&candidate)) else { continue };
            let has_lines = object::File::parse(&*debug).is_ok_and(|f| f.section_by_name(".debug_line").is_some());
            if has_lines {
                return debug;
            }
        }
        data
    }

    /// The one binary a target names, resolved and read: a path, or a library name.
    pub fn binary(&self, target: &str) -> Result<(String, Vec<u8>), String> {
        let path = self
            .resolve_targets(target)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("cannot open {target}: no file matches"))?;
        let data = self.read_binary(&path)?;
        Ok((path, data))
    }

    /// The functions matching `pattern` of every binary `target` names.
    pub(crate) fn functions_of(&self, target: &str, pattern: &str) -> Result<Vec<UserFunction>, String> {
        let paths = self.existing_targets("uprobe", target)?;
        let glob = has_wildcard(target);
        let mut found = Vec::new();
        for path in paths {
            match self.read_binary(&path).and_then(|data| elf_symbols::user_functions(&path, &data, pattern)) {
                Ok(functions) => found.extend(functions),
                // One unreadable match of a glob does not spoil the others (bpftrace warns).
                Err(_) if glob => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// The USDT probes matching `provider` and `name` of every binary `target` names, by path
    /// and address.
    pub(crate) fn usdt_probes_of(&self, target: &str, provider: &str, name: &str) -> Result<Vec<UsdtProbe>, String> {
        let paths = self.existing_targets("usdt", target)?;
        let glob = has_wildcard(target);
        let mut found = Vec::new();
        for path in paths {
            match self.read_binary(&path).and_then(|data| stapsdt::usdt_probes(&path, &data, provider, name)) {
                Ok(probes) => found.extend(probes),
                Err(_) if glob => {}
                Err(e) => return Err(e),
            }
        }
        sort_usdt(&mut found);
        Ok(found)
    }

    /// [`Catalog::resolve_targets`], a glob matching no binary an error in bpftrace's words.
    fn existing_targets(&self, kind: &str, target: &str) -> Result<Vec<String>, String> {
        let paths = self.resolve_targets(target)?;
        if paths.is_empty() {
            return Err(format!("{kind} target file '{target}' does not exist or is not executable"));
        }
        Ok(paths)
    }

    /// The executable of process `pid` as bpftrace names it: `/proc/PID/root/` and the path the
    /// process knows it by, which reaches it whatever mount namespace the process is in.
    pub fn process_executable(&self, pid: u32) -> Result<String, String> {
        let exe = self
            .source()
            .read_link(Path::new(&format!("/proc/{pid}/exe")))
            .map_err(|e| format!("cannot read the executable of process {pid}: {e}"))?;
        Ok(in_process_root(pid, &exe.display().to_string()))
    }

    /// `path` as process `pid` sees it: through `/proc/PID/root` when the process is in another
    /// mount namespace than rbt, as written otherwise.
    pub fn process_path(&self, pid: u32, path: &str) -> String {
        let namespace = |who: &str| self.source().read_link(Path::new(&format!("/proc/{who}/ns/mnt"))).ok();
        match (namespace("self"), namespace(&pid.to_string())) {
            (Some(ours), Some(theirs)) if ours != theirs && path.contains('/') => in_process_root(pid, path),
            _ => path.to_owned(),
        }
    }

    /// The USDT probes of every module process `pid` maps executable (`/proc/PID/maps`), named
    /// `/proc/PID/root/PATH`, whose `PATH:PROVIDER:NAME` matches bpftrace's search for `-p`:
    /// `*` and the absolute `target` (any module when `target` is empty), then `provider`
    /// (`*` when empty) and `name`.
    pub fn process_usdt_probes(
        &self,
        pid: u32,
        target: &str,
        provider: &str,
        name: &str,
    ) -> Result<Vec<UsdtProbe>, String> {
        let target = match target {
            "" => "*".to_owned(),
            t if is_in_process_root(t) => format!("*{t}"),
            t => match self.source().canonicalize(Path::new(t)) {
                Ok(absolute) => format!("*{}", absolute.display()),
                // bpftrace searches a path it cannot make absolute as it stands.
                Err(_) => t.to_owned(),
            },
        };
        let provider = if provider.is_empty() { "*" } else { provider };
        let search = format!("{target}:{provider}:{name}");
        let mut found = Vec::new();
        for module in self.process_modules(pid)? {
            let path = in_process_root(pid, &module);
            let Ok(data) = self.read_binary(&path) else { continue };
            let Ok(probes) = stapsdt::usdt_probes(&path, &data, "*", "*") else { continue };
            found.extend(
                probes
                    .into_iter()
                    .filter(|p| wildcard_match(&format!("{}:{}:{}", p.path, p.provider, p.name), &search)),
            );
        }
        sort_usdt(&mut found);
        Ok(found)
    }

    /// The files process `pid` maps executable, each once, in the order of its address space.
    fn process_modules(&self, pid: u32) -> Result<Vec<String>, String> {
        let maps = self
            .source()
            .read(Path::new(&format!("/proc/{pid}/maps")))
            .map_err(|e| format!("cannot read the address space of process {pid}: {e}"))?;
        let mut modules: Vec<String> = Vec::new();
        for line in String::from_utf8_lossy(&maps).lines() {
            let mut fields = line.split_whitespace();
            let perms = fields.nth(1).unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            if perms.as_bytes().get(2) == Some(&b'x') && path.starts_with('/') && !modules.iter().any(|m| m == path) {
                modules.push(path.to_owned());
            }
        }
        Ok(modules)
    }
}

/// `path` under `/proc/PID/root`, unless it is there already.
fn in_process_root(pid: u32, path: &str) -> String {
    let root = format!("/proc/{pid}/root");
    if path.starts_with(&root) {
        return path.to_owned();
    }
    let separator = if path.starts_with('/') { "" } else { "/" };
    format!("{root}{separator}{path}")
}

/// Whether `path` is `/proc/N/root/...`, which bpftrace takes as absolute as it stands.
fn is_in_process_root(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/proc/") else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with("/root/")
}

/// USDT probes in the order of their binaries' paths, and in a binary in the order of their
/// places in it: the order they fire in when a loop passes them one after the other, so that
/// the first attached is the first to fire (listings sort names on their own).
fn sort_usdt(probes: &mut [UsdtProbe]) {
    probes.sort_by(|a, b| {
        (&a.path, a.file_offset, &a.provider, &a.name).cmp(&(&b.path, b.file_offset, &b.provider, &b.name))
    });
}

#[cfg(test)]
mod tests;
