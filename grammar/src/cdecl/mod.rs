//! C type definitions in scripts: `struct Foo { int a; char b[10]; }`, `union`, `enum`,
//! `typedef`, written at the top level beside the probes, as bpftrace scripts (and the headers
//! they include) write them. This module holds their syntax tree; `scan.rs` finds where one
//! definition ends at the top level and `parse.rs` parses its tokens. Laying the types out is
//! the compiler's job (`compiler/src/ctypes/`).
//!
//! ```text
//! struct Foo { int a; unsigned int flags:3; union { int x; long y; }; struct Foo *next; };
//! enum E { A, B = 5 };
//! typedef struct Foo foo_t;
//! ```

mod parse;
mod scan;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::ast::Ident;
use crate::Span;

pub(crate) use scan::{scan_definition, starts_definition};

/// One top-level C definition.
#[derive(Clone, Debug, PartialEq)]
pub struct CDefinition {
    pub kind: CDefinitionKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CDefinitionKind {
    /// `struct Foo { ... }`, `union U { ... }`, or a declaration alone: `struct Foo;`.
    Record(CRecord),
    /// `enum E { A, B = 5 }` (or `enum E;`).
    Enum(CEnum),
    /// `typedef TYPE NAME, *PNAME;`: one name per declarator, with its full type.
    Typedef(Vec<(Ident, CType)>),
}

/// A struct or union: its tag's name (none when anonymous) and, when defined here, its members.
#[derive(Clone, Debug, PartialEq)]
pub struct CRecord {
    pub union: bool,
    pub name: Option<Ident>,
    /// `None` for a declaration without a body (`struct Foo;`, or `struct Foo *p` naming it).
    pub members: Option<Vec<CMember>>,
    /// `__attribute__((packed))`.
    pub packed: bool,
    /// `__attribute__((aligned(N)))` on the record.
    pub aligned: Option<CConst>,
    pub span: Span,
}

/// A member: `int a`, `unsigned flags:3`, an unnamed bitfield `int :4`, or an anonymous struct
/// or union (no name, a record type), whose members C reaches as the outer record's own.
#[derive(Clone, Debug, PartialEq)]
pub struct CMember {
    pub name: Option<Ident>,
    pub ty: CType,
    /// A bitfield's width.
    pub bits: Option<CConst>,
    /// `__attribute__((aligned(N)))` on the member.
    pub aligned: Option<CConst>,
    pub span: Span,
}

/// An enum: its tag's name and, when defined here, its constants in order.
#[derive(Clone, Debug, PartialEq)]
pub struct CEnum {
    pub name: Option<Ident>,
    pub constants: Option<Vec<CEnumConstant>>,
    pub span: Span,
}

/// `NAME` or `NAME = VALUE` in an enum.
#[derive(Clone, Debug, PartialEq)]
pub struct CEnumConstant {
    pub name: Ident,
    pub value: Option<CConst>,
}

/// A C type as written, declarator included: `const char *`, `struct W [10]`, `int (*)(int)`.
#[derive(Clone, Debug, PartialEq)]
pub struct CType {
    pub kind: CTypeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CTypeKind {
    /// A type C itself names with keywords: `int`, `unsigned long long`, `char`, `_Bool`.
    Base(CBase),
    /// A typedef name: `uint8_t`, `u32`, `pid_t`, or one the script defines.
    Named(String),
    /// `struct NAME`, `union NAME` or `enum NAME` without a body here.
    Tagged {
        tag: CTag,
        name: String,
    },
    /// A struct or union defined in place: `struct { int m; } y` or `union { ... };`.
    Record(Box<CRecord>),
    /// An enum defined in place: `enum { Q, R } e`.
    Enum(Box<CEnum>),
    Pointer(Box<CType>),
    /// `T name[LEN]`; `len` is `None` for a flexible array member (`char data[]`).
    Array {
        elem: Box<CType>,
        len: Option<CConst>,
    },
    /// A function type (only ever pointed at: `int (*callback)(int)`); the parameters do not
    /// matter to a layout and are not kept.
    Function {
        ret: Box<CType>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CTag {
    Struct,
    Union,
    Enum,
}

/// The types C names with keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CBase {
    Void,
    /// `_Bool` (and `bool`).
    Bool,
    /// `char` (`signed: None`; signed on x86-64), `signed char`, `unsigned char`.
    Char {
        signed: Option<bool>,
    },
    /// `short`, `int`, `long`, `long long`, each signed or unsigned: 2, 4, 8 or 8 bytes.
    Int {
        bytes: u8,
        signed: bool,
    },
    /// `float`, `double`, `long double`: 4, 8 or 16 bytes.
    Float {
        bytes: u8,
    },
}

/// An integer constant expression: an enum value, an array length, a bitfield width.
#[derive(Clone, Debug, PartialEq)]
pub struct CConst {
    pub kind: CConstKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CConstKind {
    Int(u64),
    /// An enum constant defined before it.
    Name(String),
    /// `-x`, `~x`, `!x`, `+x`: the operator's character.
    Unary(char, Box<CConst>),
    /// `a OP b` for `+ - * / % << >> & | ^`: the operator as written.
    Binary(&'static str, Box<CConst>, Box<CConst>),
    /// `sizeof(TYPE)`.
    Sizeof(Box<CType>),
}

impl CTag {
    pub fn keyword(self) -> &'static str {
        match self {
            CTag::Struct => "struct",
            CTag::Union => "union",
            CTag::Enum => "enum",
        }
    }
}

impl CRecord {
    /// `struct Foo`, `union U`, or `struct (anonymous)`.
    pub fn display_name(&self) -> String {
        let tag = if self.union { "union" } else { "struct" };
        match &self.name {
            Some(name) => format!("{tag} {}", name.name),
            None => format!("{tag} (anonymous)"),
        }
    }
}

impl CBase {
    /// The type's name as C spells it in diagnostics (and as the kernel's BTF names it).
    pub fn c_name(self) -> &'static str {
        match self {
            CBase::Void => "void",
            CBase::Bool => "_Bool",
            CBase::Char { signed: None } => "char",
            CBase::Char { signed: Some(true) } => "signed char",
            CBase::Char { signed: Some(false) } => "unsigned char",
            CBase::Int { bytes: 2, signed: true } => "short",
            CBase::Int { bytes: 2, signed: false } => "unsigned short",
            CBase::Int { bytes: 4, signed: true } => "int",
            CBase::Int { bytes: 4, signed: false } => "unsigned int",
            CBase::Int { signed: true, .. } => "long",
            CBase::Int { signed: false, .. } => "unsigned long",
            CBase::Float { bytes: 4 } => "float",
            CBase::Float { bytes: 8 } => "double",
            CBase::Float { .. } => "long double",
        }
    }
}

/// C's spelling of a type without a declarator name: `struct Foo *`, `int [4]`, `char *[2]`.
impl fmt::Display for CType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.spell(String::new()))
    }
}

impl CType {
    /// The type written around `inner`, the declarator built so far (C's inside-out syntax).
    fn spell(&self, inner: String) -> String {
        let base = match &self.kind {
            CTypeKind::Base(base) => base.c_name().to_string(),
            CTypeKind::Named(name) => name.clone(),
            CTypeKind::Tagged { tag, name } => format!("{} {name}", tag.keyword()),
            CTypeKind::Record(record) => record.display_name(),
            CTypeKind::Enum(e) => format!("enum {}", e.name.as_ref().map_or("(anonymous)", |n| n.name.as_str())),
            CTypeKind::Pointer(to) => {
                let wrapped = matches!(to.kind, CTypeKind::Array { .. } | CTypeKind::Function { .. });
                return to.spell(if wrapped { format!("(*{inner})") } else { format!("*{inner}") });
            }
            CTypeKind::Array { elem, len } => {
                let len = match len.as_ref().map(|c| &c.kind) {
                    Some(CConstKind::Int(n)) => n.to_string(),
                    Some(_) => "N".to_string(),
                    None => String::new(),
                };
                return elem.spell(format!("{inner}[{len}]"));
            }
            CTypeKind::Function { ret } => return ret.spell(format!("{inner}()")),
        };
        if inner.is_empty() {
            base
        } else {
            format!("{base} {inner}")
        }
    }
}

/// Moving every span of a definition, as the preprocessor's map moves them from the expanded
/// text back to the original files.
impl CDefinition {
    pub fn map_spans(&mut self, f: &impl Fn(Span) -> Span) {
        self.span = f(self.span);
        match &mut self.kind {
            CDefinitionKind::Record(record) => record.map_spans(f),
            CDefinitionKind::Enum(e) => e.map_spans(f),
            CDefinitionKind::Typedef(names) => {
                for (name, ty) in names {
                    name.span = f(name.span);
                    ty.map_spans(f);
                }
            }
        }
    }
}

impl CRecord {
    fn map_spans(&mut self, f: &impl Fn(Span) -> Span) {
        self.span = f(self.span);
        if let Some(name) = &mut self.name {
            name.span = f(name.span);
        }
        if let Some(aligned) = &mut self.aligned {
            aligned.map_spans(f);
        }
        for member in self.members.iter_mut().flatten() {
            member.span = f(member.span);
            if let Some(name) = &mut member.name {
                name.span = f(name.span);
            }
            member.ty.map_spans(f);
            for c in member.bits.iter_mut().chain(member.aligned.iter_mut()) {
                c.map_spans(f);
            }
        }
    }
}

impl CEnum {
    fn map_spans(&mut self, f: &impl Fn(Span) -> Span) {
        self.span = f(self.span);
        if let Some(name) = &mut self.name {
            name.span = f(name.span);
        }
        for constant in self.constants.iter_mut().flatten() {
            constant.name.span = f(constant.name.span);
            if let Some(value) = &mut constant.value {
                value.map_spans(f);
            }
        }
    }
}

impl CType {
    fn map_spans(&mut self, f: &impl Fn(Span) -> Span) {
        self.span = f(self.span);
        match &mut self.kind {
            CTypeKind::Record(record) => record.map_spans(f),
            CTypeKind::Enum(e) => e.map_spans(f),
            CTypeKind::Pointer(inner) | CTypeKind::Function { ret: inner } => inner.map_spans(f),
            CTypeKind::Array { elem, len } => {
                elem.map_spans(f);
                if let Some(len) = len {
                    len.map_spans(f);
                }
            }
            CTypeKind::Base(_) | CTypeKind::Named(_) | CTypeKind::Tagged { .. } => {}
        }
    }
}

impl CConst {
    fn map_spans(&mut self, f: &impl Fn(Span) -> Span) {
        self.span = f(self.span);
        match &mut self.kind {
            CConstKind::Unary(_, operand) => operand.map_spans(f),
            CConstKind::Binary(_, lhs, rhs) => {
                lhs.map_spans(f);
                rhs.map_spans(f);
            }
            CConstKind::Sizeof(ty) => ty.map_spans(f),
            CConstKind::Int(_) | CConstKind::Name(_) => {}
        }
    }
}
