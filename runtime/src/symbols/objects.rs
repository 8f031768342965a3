//! The object files (executables, shared libraries, vDSO images) that remembered processes
//! mapped, each held open by a descriptor so that it can be read after the process exits, after
//! the file is deleted or replaced, and from inside another mount namespace; and their symbols,
//! read with blazesym (ELF symbol tables, DWARF lines and inlined functions, demangling).
//!
//! Files are shared between processes: one descriptor and one parsed copy per file, found by the
//! device and inode the kernel lists in `/proc/PID/maps`, or by ELF build ID (the same library
//! in two containers' image layers).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{CodeInfo, Input, Sym, Symbolized, Symbolizer as BlazeSymbolizer};

use super::maps::{Backing, Mapping};
use super::Detail;

/// An index into [`Objects`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectId(u32);

/// One open object file.
#[derive(Debug)]
pub struct Object {
    /// Keeps the file alive; blazesym reads it through `/proc/self/fd/N`.
    file: File,
    /// The path the (first) process that mapped it saw, or `[vdso]`.
    pub name: String,
    pub build_id: Option<Vec<u8>>,
}

/// What the symbol tables say about one file offset. Names and paths are shared between the
/// cached answers (many addresses fall in one function), and the source lines, which only
/// [`Detail::Lines`] reads, are boxed: an answer is 32 bytes without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSymbol {
    pub name: Rc<str>,
    pub offset: u64,
    pub source: Option<Box<SourceLines>>,
}

/// Where in the source an address is, from DWARF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLines {
    pub file: Option<Rc<str>>,
    pub line: Option<u32>,
    pub inlined: Box<[InlinedSymbol]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinedSymbol {
    pub name: Rc<str>,
    pub file: Option<Rc<str>>,
    pub line: Option<u32>,
}

/// Every object file seen so far, and blazesym's parsed copies of them.
pub struct Objects {
    files: Vec<Object>,
    by_inode: HashMap<(u32, u32, u64), ObjectId>,
    by_build_id: HashMap<Vec<u8>, ObjectId>,
    /// vDSO images by content (a 64-bit and a 32-bit process see different ones).
    vdsos: Vec<(Vec<u8>, ObjectId)>,
    /// Reads the symbol tables, and DWARF for names alone ([`Detail::Names`]).
    blaze: BlazeSymbolizer,
    /// Reads DWARF with lines and inlined calls ([`Detail::Lines`]); made on first use. Its own
    /// parsed copies of the debug information: reading lines costs memory that lookups of names
    /// alone, the most common, should not pay.
    blaze_lines: Option<BlazeSymbolizer>,
    /// One copy of every function name and source path handed out.
    strings: HashSet<Rc<str>>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("files", &self.files).finish_non_exhaustive()
    }
}

impl Objects {
    pub fn new() -> Self {
        Self {
            files: Vec::new(),
            by_inode: HashMap::new(),
            by_build_id: HashMap::new(),
            vdsos: Vec::new(),
            blaze: blaze_symbolizer(Detail::Names),
            blaze_lines: None,
            strings: HashSet::new(),
        }
    }

    pub fn get(&self, id: ObjectId) -> &Object {
        &self.files[id.0 as usize]
    }

    /// What `read` reads of an object file (for its unwind tables: `unwind::cfi_parts`).
    pub fn read_with<T>(&self, id: ObjectId, read: impl FnOnce(&File) -> std::io::Result<T>) -> std::io::Result<T> {
        read(&self.get(id).file)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Object> {
        self.files.iter()
    }

    /// The object behind an executable mapping of process `pid`, opened now if this file was
    /// not seen before. `None` for anonymous memory, and when the file cannot be opened.
    pub fn open_mapping(&mut self, pid: u32, mapping: &Mapping) -> Option<ObjectId> {
        match &mapping.backing {
            Backing::Anonymous => None,
            Backing::Vdso => self.open_vdso(pid, mapping),
            Backing::File { path, deleted } => {
                if let Some(&id) = self.by_inode.get(&mapping.inode) {
                    return Some(id);
                }
                let file = open_mapped_file(pid, mapping, path, *deleted)?;
                let id = self.add(file, path.display().to_string());
                self.by_inode.insert(mapping.inode, id);
                Some(id)
            }
        }
    }

    /// The object of the file at `path`, opened now unless a process already mapped it: for
    /// loading a file's unwind tables before any process maps it (`-c`'s program).
    pub fn open_path(&mut self, path: &Path) -> Option<ObjectId> {
        use std::os::unix::fs::MetadataExt;
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        let inode = (libc::major(meta.dev()), libc::minor(meta.dev()), meta.ino());
        if let Some(&id) = self.by_inode.get(&inode) {
            return Some(id);
        }
        let id = self.add(file, path.display().to_string());
        self.by_inode.insert(inode, id);
        Some(id)
    }

    /// Adds an open file, or finds the object with the same build ID.
    fn add(&mut self, file: File, name: String) -> ObjectId {
        let build_id =
            blazesym::helper::read_elf_build_id(&fd_path(&file)).ok().flatten().map(std::borrow::Cow::into_owned);
        if let Some(&id) = build_id.as_ref().and_then(|b| self.by_build_id.get(b)) {
            return id;
        }
        let id = ObjectId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        if let Some(build_id) = &build_id {
            self.by_build_id.insert(build_id.clone(), id);
        }
        self.files.push(Object { file, name, build_id });
        id
    }

    /// The vDSO is not a file: its image is copied out of the process's memory into a memfd.
    fn open_vdso(&mut self, pid: u32, mapping: &Mapping) -> Option<ObjectId> {
        let len = usize::try_from(mapping.end.checked_sub(mapping.start)?).ok()?;
        let mem = File::open(format!("/proc/{pid}/mem")).ok()?;
        let mut image = vec![0; len];
        mem.read_exact_at(&mut image, mapping.start).ok()?;
        if let Some((_, id)) = self.vdsos.iter().find(|(known, _)| *known == image) {
            return Some(*id);
        }
        let mut file = memfd("rbt-vdso")?;
        file.write_all(&image).ok()?;
        let id = self.add(file, "[vdso]".to_owned());
        self.vdsos.push((image, id));
        Some(id)
    }

    /// Symbolizes offsets into one object file, one answer per offset.
    ///
    /// Names come from the ELF symbol tables where they have one, as bcc (and so bpftrace)
    /// names frames: DWARF can name the same code differently (glibc's assembly functions are
    /// `__GI_getpid` in DWARF and `__getpid` in `.dynsym`). DWARF (in the file, or in a debug
    /// file found by build ID or debug link) names the functions the symbol tables lack (static
    /// functions of a stripped library whose -dbg package is installed), and with
    /// [`Detail::Lines`] adds file, line and inlined calls to every answer.
    pub fn symbolize(&mut self, id: ObjectId, file_offsets: &[u64], detail: Detail) -> Vec<Option<ObjectSymbol>> {
        let path = fd_path(&self.get(id).file);
        if detail == Detail::Lines && self.blaze_lines.is_none() {
            self.blaze_lines = Some(blaze_symbolizer(Detail::Lines));
        }
        let blaze_dwarf = match (&self.blaze_lines, detail) {
            (Some(lines), Detail::Lines) => lines,
            _ => &self.blaze,
        };
        let elf = lookup(&self.blaze, &path, false, file_offsets);
        let mut dwarf: Vec<Option<Sym<'_>>> = vec![None; file_offsets.len()];
        // For names alone DWARF is read only where the symbol tables have nothing: it is the
        // slow part.
        let wanted: Vec<usize> =
            (0..file_offsets.len()).filter(|&i| detail == Detail::Lines || elf[i].is_none()).collect();
        if !wanted.is_empty() {
            let offsets: Vec<u64> = wanted.iter().map(|&i| file_offsets[i]).collect();
            for (i, sym) in wanted.into_iter().zip(lookup(blaze_dwarf, &path, true, &offsets)) {
                dwarf[i] = sym;
            }
        }
        let strings = &mut self.strings;
        elf.iter().zip(&dwarf).map(|(elf, dwarf)| merge(strings, elf.as_ref(), dwarf.as_ref())).collect()
    }
}

/// One answer per offset into the file at `path`, from its symbol tables, or with `debug_syms`
/// from its DWARF.
fn lookup<'b>(blaze: &'b BlazeSymbolizer, path: &Path, debug_syms: bool, offsets: &[u64]) -> Vec<Option<Sym<'b>>> {
    let source = Source::Elf(Elf { debug_syms, ..Elf::new(path) });
    match blaze.symbolize(&source, Input::FileOffset(offsets)) {
        Ok(found) => found.into_iter().map(Symbolized::into_sym).collect(),
        // Not ELF, unreadable, or debug information in a form blazesym was built without
        // (zstd-compressed sections): no answers from this source.
        Err(_) => vec![None; offsets.len()],
    }
}

/// A blazesym symbolizer that reads DWARF lines and inlined calls if `detail` asks for them.
fn blaze_symbolizer(detail: Detail) -> BlazeSymbolizer {
    let lines = detail == Detail::Lines;
    BlazeSymbolizer::builder()
        // Our descriptors pin each file's contents; no need to stat it on every lookup.
        .enable_auto_reload(false)
        .enable_code_info(lines)
        .enable_inlined_fns(lines)
        .enable_demangling(true)
        .build()
}

/// One answer from the symbol table's name and offset and DWARF's lines and inlined calls.
fn merge(strings: &mut HashSet<Rc<str>>, elf: Option<&Sym<'_>>, dwarf: Option<&Sym<'_>>) -> Option<ObjectSymbol> {
    let (name, offset) = match (elf, dwarf) {
        (Some(sym), _) | (None, Some(sym)) => (intern(strings, &sym.name), sym.offset as u64),
        (None, None) => return None,
    };
    let source = dwarf.filter(|sym| sym.code_info.is_some() || !sym.inlined.is_empty()).map(|sym| {
        let path = |info: &CodeInfo<'_>| info.to_path().display().to_string();
        Box::new(SourceLines {
            file: sym.code_info.as_ref().map(|info| intern(strings, &path(info))),
            line: sym.code_info.as_ref().and_then(|info| info.line),
            inlined: sym
                .inlined
                .iter()
                .map(|f| InlinedSymbol {
                    name: intern(strings, &f.name),
                    file: f.code_info.as_ref().map(|info| intern(strings, &path(info))),
                    line: f.code_info.as_ref().and_then(|info| info.line),
                })
                .collect(),
        })
    });
    let symbol = ObjectSymbol { name, offset, source };
    Some(symbol)
}

impl Objects {
    /// Forgets the shared strings (the user-space cache is starting over).
    pub fn clear_strings(&mut self) {
        self.strings.clear();
    }
}

fn intern(strings: &mut HashSet<Rc<str>>, text: &str) -> Rc<str> {
    if let Some(known) = strings.get(text) {
        return Rc::clone(known);
    }
    let new: Rc<str> = Rc::from(text);
    strings.insert(Rc::clone(&new));
    new
}

/// The path through which this process reopens its own descriptor: the open file itself, even
/// when it has no name any more.
fn fd_path(file: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Opens the file behind a mapping: through `/proc/PID/map_files/`, which reaches the very file
/// mapped (deleted, replaced, or in another mount namespace) but needs `CAP_SYS_ADMIN`; else by
/// its path inside the process's root directory, which also crosses mount namespaces.
fn open_mapped_file(pid: u32, mapping: &Mapping, path: &Path, deleted: bool) -> Option<File> {
    let map_file = format!("/proc/{pid}/map_files/{:x}-{:x}", mapping.start, mapping.end);
    if let Ok(file) = File::open(map_file) {
        return Some(file);
    }
    if deleted {
        return None;
    }
    let relative = path.strip_prefix("/").unwrap_or(path);
    if let Ok(file) = File::open(Path::new(&format!("/proc/{pid}/root")).join(relative)) {
        return Some(file);
    }
    // The process is gone (its mappings came from the kernel's records): the file at the same
    // path in our root, if it is the very file (device and inode) it mapped.
    use std::os::unix::fs::MetadataExt;
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    ((libc::major(meta.dev()), libc::minor(meta.dev()), meta.ino()) == mapping.inode).then_some(file)
}

/// An anonymous in-memory file.
fn memfd(name: &str) -> Option<File> {
    crate::kernel::os::memfd(name).ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// Without `/proc/PID/map_files/` (here: a range nothing is mapped at), the file is found by
    /// its path inside the process's root directory.
    #[test]
    fn falls_back_to_the_path_inside_the_process_root() {
        let exe = std::env::current_exe().expect("our executable");
        let mapping = Mapping {
            start: 0x1000,
            end: 0x2000,
            offset: 0,
            inode: (0, 0, 0),
            backing: Backing::File { path: exe.clone(), deleted: false },
        };
        let file = open_mapped_file(std::process::id(), &mapping, &exe, false).expect("opened through /proc/PID/root");
        assert_eq!(file.metadata().expect("fstat").ino(), std::fs::metadata(&exe).expect("stat").ino());
        // A deleted file has no path to fall back to.
        assert!(open_mapped_file(std::process::id(), &mapping, &exe, true).is_none());
    }
}
