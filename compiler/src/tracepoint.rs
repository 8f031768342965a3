//! Tracepoint record layouts, as the runtime reads them from tracefs `format` files. The compiler
//! takes them as input and never reads files itself.

use crate::ktypes::{KFunction, KType, KTypeId};

/// The layout of one tracepoint's record, e.g. `syscalls:sys_enter_openat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointFormat {
    pub category: String,
    pub event: String,
    /// Every field in record order, the `common_*` header fields included (marked `common`).
    pub fields: Vec<TracepointField>,
}

/// One `field:` line of a `format` file, e.g.
/// `field:const char * filename;<TAB>offset:24;<TAB>size:8;<TAB>signed:0;`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointField {
    pub name: String,
    /// The C declaration's type as written, without the field name: `const char *`, `char[16]`,
    /// `__data_loc char[]`, `int`.
    pub c_type: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// True for the `common_*` fields shared by every event; `args` does not expose them.
    pub common: bool,
    pub ty: FieldType,
}

/// How bpftrace types a tracepoint field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// An integer of 1, 2, 4 or 8 bytes (also enums, `bool`, `pid_t`, `size_t`, ...).
    Integer { size: u8, signed: bool },
    /// A pointer (8 bytes). `pointee` is the C type pointed at, e.g. `const char`; `str()` reads it.
    Pointer { pointee: String },
    /// `char name[N]`: an inline string of at most N bytes.
    CharArray { len: u32 },
    /// Any other fixed array, e.g. `unsigned long args[6]`: `elem_size` bytes per element.
    IntArray { elem_size: u8, signed: bool, len: u32 },
    /// `__data_loc char[] name`: a u32 whose low 16 bits are the offset of the string inside the
    /// record and high 16 bits its length.
    DataLocString,
    /// A layout rbt cannot type; using such a field is a diagnostic.
    Unsupported,
}

/// What the compiler asks of the system while checking a program. The runtime implements it over
/// tracefs; tests implement it over fixed data. `Sync`, because the compiler runs its passes on a
/// thread of its own (see `compile.rs`).
pub trait ProbeCatalog: Sync {
    /// Every `(category, event)` matching the wildcard patterns (`*` only, as bpftrace), sorted.
    fn match_tracepoints(&self, category: &str, event: &str) -> Vec<(String, String)>;
    /// The record layout of one tracepoint, or `None` when it does not exist.
    fn tracepoint_format(&self, category: &str, event: &str) -> Option<TracepointFormat>;
    /// Every tracepoint name (`category:event`), for "did you mean" suggestions.
    fn all_tracepoints(&self) -> Vec<String>;
    /// The address of a kernel symbol, for `kaddr("name")`; `None` when unknown (or when the
    /// catalog has no symbol table, as in tests).
    fn kernel_symbol(&self, _name: &str) -> Option<u64> {
        None
    }
    /// The size in bytes of a kernel function, for the bounds of a kprobe's offset; `None` when
    /// unknown (the catalog reads it from `/proc/kallsyms`: the distance to the next function).
    fn kernel_function_size(&self, _name: &str) -> Option<u64> {
        None
    }
    /// Whether a tracepoint event of that name exists in any category (for raw tracepoints).
    fn tracepoint_exists(&self, name: &str) -> bool {
        self.all_tracepoints().iter().any(|t| t.split_once(':').is_some_and(|(_, event)| event == name))
    }
    /// The functions of `target` (a path, a glob over paths such as `./bin/prog*`, or a library
    /// name such as `libc`) matching `pattern` (`*` wildcards), with the path of the binary as
    /// the script wrote it (a library's from the ld.so cache) and each function's file offset.
    fn user_functions(&self, _target: &str, _pattern: &str) -> Result<Vec<UserFunction>, String> {
        Err("this catalog cannot read binaries".into())
    }
    /// What lies at virtual address `address` of `target` (`uprobe:PATH:0x1234`): the binary's
    /// path, the address's file offset, and the function holding it.
    fn user_address(&self, _target: &str, _address: u64) -> Result<UserAddress, String> {
        Err("this catalog cannot read binaries".into())
    }
    /// The address and size of the symbol `name` (a function or a variable) in the ELF symbol
    /// tables of `target`, for `uaddr("name")`; `None` when it has none.
    /// The statements of source `file` at `line` (and `column`) in `target`'s DWARF line
    /// tables: each one's virtual address and where it is. The error says why there are none
    /// (no DWARF, no such file, the nearest lines that have a statement).
    fn user_lines(
        &self,
        _target: &str,
        _file: &str,
        _line: u32,
        _column: Option<u32>,
    ) -> Result<Vec<(u64, UserAddress)>, String> {
        Err("no binaries can be read here".into())
    }
    /// Function `func` of `target` in source lines, for `uprobe:BIN:FUNC:LINE` (lines counted
    /// from the function's, as `perf probe` counts them): its file, its own line, and the last
    /// line where a statement of it starts.
    fn user_function_lines(&self, _target: &str, _func: &str) -> Result<(String, u32, u32), String> {
        Err("no binaries can be read here".into())
    }
    /// The variables visible at virtual address `vaddr` of the binary at `path`, innermost
    /// first, from its DWARF.
    fn user_variables(&self, _path: &str, _vaddr: u64) -> Result<Vec<UserVariable>, String> {
        Err("no binaries can be read here".into())
    }
    fn user_symbol(&self, _target: &str, _name: &str) -> Option<(u64, u64)> {
        None
    }
    /// The USDT probes of `target` (a path, a glob over paths or a library name) whose provider
    /// and name match the patterns (`*` wildcards), sorted by `path:provider:name`.
    fn usdt_probes(&self, _target: &str, _provider: &str, _name: &str) -> Result<Vec<crate::usdt::UsdtProbe>, String> {
        Err("this catalog cannot read binaries".into())
    }
    /// With `-p PID`: the USDT probes of every module process `pid` maps, named by their paths
    /// under `/proc/PID/root`, matching `target` (any module when empty), `provider` (any when
    /// empty) and `name`, as bpftrace 0.17 searches them.
    fn process_usdt_probes(
        &self,
        _pid: u32,
        _target: &str,
        _provider: &str,
        _name: &str,
    ) -> Result<Vec<crate::usdt::UsdtProbe>, String> {
        Err("this catalog cannot read processes".into())
    }
    /// With `-p PID` and no binary (`uprobe:FUNC`): the process's executable,
    /// `/proc/PID/root/PATH`.
    fn process_executable(&self, _pid: u32) -> Result<String, String> {
        Err("this catalog cannot read processes".into())
    }
    /// A binary path of a spec with `-p PID`, as that process sees it (through its root when it
    /// is in another mount namespace).
    fn process_path(&self, _pid: u32, path: &str) -> String {
        path.to_owned()
    }
    /// The parameters and return type of `func` in the binary at `path` (a uprobe's, as its
    /// attach point names it), typed from the binary's DWARF, for a uprobe's `args`: no
    /// parameters when DWARF does not describe the function, the reason when the binary has no
    /// DWARF. The types' ids answer `kernel_type` like BTF ids (from `DWARF_TYPE_BASE` up).
    fn user_function_signature(&self, path: &str, _func: &str) -> Result<KFunction, String> {
        Err(format!("No debuginfo found for {path}"))
    }
    /// A struct, union or enum (`struct Foo`) that the DWARF of the binary at `path` defines, for
    /// casts in that binary's uprobes; `None` when it has none of that name.
    fn user_type_named(&self, _path: &str, _name: &str) -> Option<KTypeId> {
        None
    }
    /// Kernel functions matching `pattern` that kprobes can attach to; an error when the kernel
    /// has no kprobes.
    fn kernel_functions(&self, _pattern: &str) -> Result<Vec<String>, String> {
        Err("this catalog knows no kernel functions".into())
    }
    /// Why kernel types cannot be used, or `None` when the catalog has them (the kernel's BTF).
    fn kernel_types_missing(&self) -> Option<String> {
        Some("this catalog has no kernel types".into())
    }
    /// The kernel type a cast names: `struct task_struct`, `union bpf_attr`, `pid_t`.
    fn kernel_type_named(&self, _name: &str) -> Option<KTypeId> {
        None
    }
    /// One kernel type by id, typedefs and qualifiers looked through.
    fn kernel_type(&self, _id: KTypeId) -> Option<KType> {
        None
    }
    /// A kernel type's C name, e.g. `struct task_struct *`.
    fn kernel_type_name(&self, id: KTypeId) -> String {
        format!("type {id}")
    }
    /// A kernel type's size in bytes (arrays included).
    fn kernel_type_size(&self, _id: KTypeId) -> Option<u32> {
        None
    }
    /// Every struct and union name with its tag, for suggestions.
    fn kernel_record_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// The type "pointer to `to`", for casts such as `(struct foo **)p` and `(int32 **)p`;
    /// `None` when the catalog cannot make one.
    fn kernel_pointer_type(&self, _to: KTypeId) -> Option<KTypeId> {
        None
    }
    /// A kernel function's BTF signature, for fentry/fexit.
    fn kernel_function_signature(&self, _name: &str) -> Option<KFunction> {
        None
    }
    /// Why fentry/fexit programs cannot attach to `func` on this kernel (no BPF trampolines, or
    /// not allowed), or `None` when they can.
    fn trampolines_missing(&self, _func: &KFunction) -> Option<String> {
        None
    }
    /// A raw tracepoint's arguments from BTF (its `btf_trace_NAME` prototype without the leading
    /// `void *`), or `None` when the kernel's BTF does not describe it.
    fn raw_tracepoint_signature(&self, _name: &str) -> Option<KFunction> {
        None
    }
    /// The id of the cgroup (v2) at `path`, for `cgroupid("/sys/fs/cgroup/...")`; the reason
    /// when there is none.
    fn cgroup_id(&self, _path: &str) -> Result<u64, String> {
        Err("this catalog cannot look up cgroups".into())
    }
    /// Kernel functions with BTF signatures matching `pattern` (`*` wildcards), sorted.
    fn kernel_btf_functions(&self, _pattern: &str) -> Vec<String> {
        Vec::new()
    }
    /// The value of a kernel enum constant (`TCP_FIN_WAIT1`, `SKB_DROP_REASON_NOT_SPECIFIED`)
    /// from BTF; bpftrace 0.17 resolves these without any `#include`.
    fn kernel_enum_constant(&self, _name: &str) -> Option<u64> {
        None
    }
    /// The text of a file a script `#include`s (a path as the preprocessor built it), or
    /// `None` when there is no such file or the catalog reads no files.
    fn include_file(&self, _path: &str) -> Option<String> {
        None
    }
    /// Where system headers are on this system (the kernel's include tree, the C library's).
    fn system_includes(&self) -> grammar::SystemIncludes {
        grammar::SystemIncludes::default()
    }
}

/// A function of a user binary that a uprobe can attach to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFunction {
    /// The binary's path as the spec wrote it (a glob's match, a library's path from the ld.so
    /// cache, `/proc/PID/root/...` with `-p`); the kernel resolves it when attaching.
    pub path: String,
    /// The symbol's name as written in the binary.
    pub name: String,
    /// Where the function's first instruction is in the file.
    pub file_offset: u64,
    /// The symbol's size in bytes (0 when the symbol table does not say).
    pub size: u64,
}

/// Where a variable of a user binary is at a probe's address, in x86-64 DWARF register numbers
/// (0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8-15 r8-r15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VarPlace {
    Register(u16),
    /// In memory at the register's value plus `offset`.
    Memory {
        base: u16,
        offset: i64,
    },
    /// The register's value plus `offset` is the value.
    Value {
        base: u16,
        offset: i64,
    },
    Constant(u64),
    /// In memory at a static address of the binary, moved by the load bias.
    Static(u64),
    /// In parts, first byte first: `(where, size in bytes)`, `None` for a part optimized out.
    Pieces(Vec<(Option<VarPlace>, u64)>),
    /// Computed from registers and memory: its address, or (`value`) the variable itself.
    Computed {
        expr: VarExpr,
        value: bool,
    },
}

/// What a DWARF location expression computes, for the BPF program to compute at the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VarExpr {
    Register(u16),
    Constant(u64),
    /// A static address of the binary, moved by the load bias.
    Static(u64),
    Binary(VarOp, Box<VarExpr>, Box<VarExpr>),
    /// `size` bytes of user memory, zero-extended.
    Deref {
        addr: Box<VarExpr>,
        size: u8,
    },
    /// What `register` held when the function at the address was entered; `cfa`, the frame's
    /// CFA at the address, tells the frame apart (it was the stack pointer plus 8 on entry).
    EntryRegister {
        register: u16,
        cfa: Box<VarExpr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarOp {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    /// Arithmetic shift right.
    Sar,
}

/// A variable or parameter visible at a probe's address (`locals.NAME`, `args.NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserVariable {
    pub name: String,
    pub ty: Option<KTypeId>,
    /// A parameter of the function (or inlined call) the address is in.
    pub parameter: bool,
    /// Where it is, or why it cannot be read there (optimized out, an entry value...).
    pub place: Result<VarPlace, String>,
}

/// A virtual address of a user binary, as `uprobe:PATH:ADDRESS` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAddress {
    /// The binary's path as the spec wrote it (a glob's match, a library's path from the ld.so
    /// cache, `/proc/PID/root/...` with `-p`); the kernel resolves it when attaching.
    pub path: String,
    /// Where the address is in the file; `None` when no loadable segment holds it.
    pub file_offset: Option<u64>,
    /// The symbol whose bytes hold the address, and how far into them it is.
    pub function: Option<(String, u64)>,
}
