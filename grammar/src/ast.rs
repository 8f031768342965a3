//! The abstract syntax tree of an rbt (bpftrace-language) program. Every node carries the byte span
//! of the source text it came from; later stages keep spans in side tables.

use crate::Span;

/// A whole script or one-liner: a list of probe blocks, and the C types it defines beside them.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub probes: Vec<Probe>,
    /// `struct`, `union`, `enum` and `typedef` definitions, in source order.
    pub c_definitions: Vec<crate::cdecl::CDefinition>,
    pub span: Span,
}

/// `spec, spec /predicate/ { body }`
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub specs: Vec<ProbeSpec>,
    pub predicate: Option<Expr>,
    pub body: Block,
    pub span: Span,
}

/// One attach point as written, e.g. `tracepoint:syscalls:sys_enter_openat`, `t:sched:sched*`,
/// `profile:hz:99`, `BEGIN`, `uprobe:/bin/bash:readline`, `kprobe:vfs_read+16`.
///
/// The parser only splits the text at `:` (outside quotes); deciding what the parts mean (probe type
/// aliases, wildcards, units) is the checker's job, so unknown probe types get a proper diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    /// The full attach point text, exactly as written.
    pub text: String,
    /// `text` split at `:`; quotes around a part are removed. `BEGIN` gives `["BEGIN"]`.
    pub parts: Vec<String>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// An expression evaluated for its effect: `printf(...)`, `$x++`, `exit()`.
    Expr(Expr),
    /// `$x = e` (op `None`) or `$x += e` (op `Some(BinaryOp::Add)`), and the other compound forms.
    AssignVar { var: Ident, op: Option<BinaryOp>, value: Expr },
    /// `@m = e`, `@m[k] = e`, `@m[k] += e`, `@m = count()`.
    AssignMap { map: MapAccess, op: Option<BinaryOp>, value: Expr },
    /// `if (c) { } else if (d) { } else { }`; an `else if` is an `else` block holding one `If`.
    If { cond: Expr, then_block: Block, else_block: Option<Block> },
    /// `while (c) { }`
    While { cond: Expr, body: Block },
    /// `unroll(N) { }`; `count` is an expression so the checker can report a non-constant.
    Unroll { count: Expr, body: Block },
    /// `return;`
    Return,
    /// A parse error was recovered here; the checker ignores it.
    Error,
}

/// A name with its span: variables are stored without the `$`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `@name` or `@name[k1, k2]`. The anonymous map `@` has an empty name.
#[derive(Clone, Debug, PartialEq)]
pub struct MapAccess {
    /// The map name without `@`.
    pub name: String,
    /// The span of `@name` alone.
    pub name_span: Span,
    /// Key expressions; empty for an unkeyed access.
    pub keys: Vec<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An integer literal (decimal, `0x` hex, `0` octal), its value as written. A leading `-` is a
    /// `Unary` node. Literals beyond `u64::MAX` are a parse error.
    Int(u64),
    /// A string literal, escapes already resolved (`\n`, `\t`, `\\`, `\"`, `\xNN`, `\NNN` octal).
    Str(String),
    /// `$name` scratch variable (name without `$`).
    Var(String),
    /// `$1`, `$2`, ... positional parameter; `$#` is `ParamCount`.
    Param(u32),
    ParamCount,
    /// `@name` / `@name[keys]` used as a value.
    Map(MapAccess),
    /// A bare identifier: a builtin such as `pid`, `comm`, `args`, `arg0`, `retval`, `nsecs`.
    Builtin(String),
    /// `name(args)`; `name` keeps its own span for diagnostics.
    Call {
        name: Ident,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `cond ? then : else`
    Ternary {
        cond: Box<Expr>,
        then_expr: Box<Expr>,
        else_expr: Box<Expr>,
    },
    /// `e->field` (`arrow: true`) or `e.field`.
    Field {
        expr: Box<Expr>,
        field: Ident,
        arrow: bool,
    },
    /// `e[index]`
    Index {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    /// `(type)e`
    Cast {
        ty: TypeName,
        expr: Box<Expr>,
    },
    /// `(a, b, c)`: at least two elements.
    Tuple(Vec<Expr>),
    /// `x++`, `++x`, `x--`, `--x` on a variable or map element.
    IncDec {
        target: Box<Expr>,
        increment: bool,
        prefix: bool,
    },
    /// `sizeof(type)` or `sizeof(expr)`.
    SizeofType(TypeName),
    SizeofExpr(Box<Expr>),
    /// `offsetof(struct name, field)`
    Offsetof {
        ty: TypeName,
        field: Ident,
    },
    /// A parse error was recovered here; the checker ignores it.
    Error,
}

/// A type as written in a cast or `sizeof`: `uint8`, `int64`, `struct task_struct *`, `char`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeName {
    /// The base name: `uint8` ... `int64`, `char`, `bool`, or a struct/union/enum name.
    pub name: String,
    /// `struct`, `union` or `enum` when written.
    pub tag: Option<String>,
    /// Number of `*` after the name.
    pub pointer_depth: u32,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-e`
    Neg,
    /// `!e`
    LogicalNot,
    /// `~e`
    BitNot,
    /// `*e`
    Deref,
    /// `&e`
    AddrOf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `&&`, short-circuit.
    LogicalAnd,
    /// `||`, short-circuit.
    LogicalOr,
}

impl BinaryOp {
    /// The operator as written in source.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::LogicalAnd => "&&",
            BinaryOp::LogicalOr => "||",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
    }
}
