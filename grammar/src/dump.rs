//! A stable, readable text form of the AST for golden tests: an indented S-expression with every
//! span written as `@start..end` and names with their own span as `name@start..end`.
//!
//! ```text
//! BEGIN { printf("hello\n"); }
//!
//! (program @0..28
//!   (probe @0..28
//!     (spec "BEGIN" ["BEGIN"] @0..5)
//!     (block @6..28
//!       (expr-stmt @8..25
//!         (call printf@8..14 @8..25
//!           (str "hello\n" @15..24))))))
//! ```

use std::fmt::Write as _;

use crate::ast::{Block, Expr, ExprKind, Ident, MapAccess, Probe, Program, Stmt, StmtKind, TypeName, UnaryOp};
use crate::cdecl::{CConst, CConstKind, CDefinition, CDefinitionKind, CEnum, CRecord, CType, CTypeKind};
use crate::Span;

/// Renders `program` as an indented S-expression ending in a newline.
#[must_use]
pub fn dump(program: &Program) -> String {
    let mut printer = Printer { out: String::new(), depth: 0 };
    printer.open(format_args!("program {}", at(program.span)));
    for definition in &program.c_definitions {
        printer.c_definition(definition);
    }
    for probe in &program.probes {
        printer.probe(probe);
    }
    printer.close();
    printer.out.push('\n');
    printer.out
}

/// A C constant expression, fully parenthesized so its structure shows.
fn c_const(c: &CConst) -> String {
    match &c.kind {
        CConstKind::Int(value) => value.to_string(),
        CConstKind::Name(name) => name.clone(),
        CConstKind::Unary(op, operand) => format!("({op}{})", c_const(operand)),
        CConstKind::Binary(op, lhs, rhs) => format!("({} {op} {})", c_const(lhs), c_const(rhs)),
        CConstKind::Sizeof(ty) => format!("sizeof({ty})"),
    }
}

fn at(span: Span) -> String {
    format!("@{}..{}", span.start, span.end)
}

fn ident(ident: &Ident) -> String {
    format!("{}@{}..{}", ident.name, ident.span.start, ident.span.end)
}

struct Printer {
    out: String,
    depth: usize,
}

impl Printer {
    /// Starts a node on its own line: `(head`; children follow, indented, until `close`.
    fn open(&mut self, head: std::fmt::Arguments<'_>) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        // Writing to a String cannot fail.
        let _ = write!(self.out, "({head}");
        self.depth += 1;
    }

    fn close(&mut self) {
        self.out.push(')');
        self.depth -= 1;
    }

    fn leaf(&mut self, head: std::fmt::Arguments<'_>) {
        self.open(head);
        self.close();
    }

    fn c_definition(&mut self, definition: &CDefinition) {
        match &definition.kind {
            CDefinitionKind::Record(record) => self.c_record(record),
            CDefinitionKind::Enum(e) => self.c_enum(e),
            CDefinitionKind::Typedef(names) => {
                self.open(format_args!("c-typedef {}", at(definition.span)));
                for (name, ty) in names {
                    self.open(format_args!("name {} {:?} {}", ident(name), ty.to_string(), at(ty.span)));
                    self.c_type_body(ty);
                    self.close();
                }
                self.close();
            }
        }
    }

    fn c_record(&mut self, record: &CRecord) {
        let keyword = if record.union { "union" } else { "struct" };
        let name = record.name.as_ref().map_or("-".to_string(), ident);
        let packed = if record.packed { " packed" } else { "" };
        let aligned = record.aligned.as_ref().map_or(String::new(), |a| format!(" aligned({})", c_const(a)));
        self.open(format_args!("c-{keyword} {name}{packed}{aligned} {}", at(record.span)));
        match &record.members {
            None => self.leaf(format_args!("declaration-only")),
            Some(members) => {
                for member in members {
                    let name = member.name.as_ref().map_or("-".to_string(), ident);
                    let bits = member.bits.as_ref().map_or(String::new(), |b| format!(" bits {}", c_const(b)));
                    let aligned =
                        member.aligned.as_ref().map_or(String::new(), |a| format!(" aligned({})", c_const(a)));
                    let ty = member.ty.to_string();
                    self.open(format_args!("member {name} {ty:?}{bits}{aligned} {}", at(member.span)));
                    self.c_type_body(&member.ty);
                    self.close();
                }
            }
        }
        self.close();
    }

    fn c_enum(&mut self, e: &CEnum) {
        let name = e.name.as_ref().map_or("-".to_string(), ident);
        self.open(format_args!("c-enum {name} {}", at(e.span)));
        match &e.constants {
            None => self.leaf(format_args!("declaration-only")),
            Some(constants) => {
                for constant in constants {
                    let value = constant.value.as_ref().map_or(String::new(), |v| format!(" = {}", c_const(v)));
                    self.leaf(format_args!("constant {}{value}", ident(&constant.name)));
                }
            }
        }
        self.close();
    }

    /// A struct, union or enum defined inside a type (`struct { int m; } y`, `union { ... } *p`).
    fn c_type_body(&mut self, ty: &CType) {
        match &ty.kind {
            CTypeKind::Record(record) => self.c_record(record),
            CTypeKind::Enum(e) => self.c_enum(e),
            CTypeKind::Pointer(to) => self.c_type_body(to),
            CTypeKind::Array { elem, .. } => self.c_type_body(elem),
            CTypeKind::Function { ret } => self.c_type_body(ret),
            CTypeKind::Base(_) | CTypeKind::Named(_) | CTypeKind::Tagged { .. } => {}
        }
    }

    fn probe(&mut self, probe: &Probe) {
        self.open(format_args!("probe {}", at(probe.span)));
        for spec in &probe.specs {
            let parts: Vec<String> = spec.parts.iter().map(|p| format!("{p:?}")).collect();
            self.leaf(format_args!("spec {:?} [{}] {}", spec.text, parts.join(" "), at(spec.span)));
        }
        if let Some(predicate) = &probe.predicate {
            self.open(format_args!("predicate"));
            self.expr(predicate);
            self.close();
        }
        self.block(&probe.body);
        self.close();
    }

    fn block(&mut self, block: &Block) {
        self.open(format_args!("block {}", at(block.span)));
        for stmt in &block.stmts {
            self.stmt(stmt);
        }
        self.close();
    }

    fn stmt(&mut self, stmt: &Stmt) {
        let span = at(stmt.span);
        match &stmt.kind {
            StmtKind::Expr(expr) => {
                self.open(format_args!("expr-stmt {span}"));
                self.expr(expr);
            }
            StmtKind::AssignVar { var, op, value } => {
                let op = op.map_or("", |op| op.symbol());
                self.open(format_args!("assign-var ${} {op}= {span}", ident(var)));
                self.expr(value);
            }
            StmtKind::AssignMap { map, op, value } => {
                let op = op.map_or("", |op| op.symbol());
                self.open(format_args!("assign-map {op}= {span}"));
                self.map(map);
                self.expr(value);
            }
            StmtKind::If { cond, then_block, else_block } => {
                self.open(format_args!("if {span}"));
                self.expr(cond);
                self.block(then_block);
                if let Some(else_block) = else_block {
                    self.open(format_args!("else"));
                    self.block(else_block);
                    self.close();
                }
            }
            StmtKind::While { cond, body } => {
                self.open(format_args!("while {span}"));
                self.expr(cond);
                self.block(body);
            }
            StmtKind::Unroll { count, body } => {
                self.open(format_args!("unroll {span}"));
                self.expr(count);
                self.block(body);
            }
            StmtKind::Return => self.open(format_args!("return {span}")),
            StmtKind::Error => self.open(format_args!("error-stmt {span}")),
        }
        self.close();
    }

    fn map(&mut self, map: &MapAccess) {
        self.open(format_args!("map @{}@{}..{} {}", map.name, map.name_span.start, map.name_span.end, at(map.span)));
        for key in &map.keys {
            self.expr(key);
        }
        self.close();
    }

    fn type_name(&mut self, ty: &TypeName) {
        let tag = ty.tag.as_ref().map_or(String::new(), |tag| format!("{tag} "));
        let stars = "*".repeat(ty.pointer_depth as usize);
        let space = if stars.is_empty() { "" } else { " " };
        self.leaf(format_args!("type {tag}{}{space}{stars} {}", ty.name, at(ty.span)));
    }

    fn expr(&mut self, expr: &Expr) {
        let span = at(expr.span);
        match &expr.kind {
            ExprKind::Int(value) => self.open(format_args!("int {value} {span}")),
            ExprKind::Str(value) => self.open(format_args!("str {value:?} {span}")),
            ExprKind::Var(name) => self.open(format_args!("var ${name} {span}")),
            ExprKind::Param(index) => self.open(format_args!("param ${index} {span}")),
            ExprKind::ParamCount => self.open(format_args!("param-count {span}")),
            ExprKind::Map(map) => {
                // The expression spans exactly its map access, so only the access is printed.
                self.map(map);
                return;
            }
            ExprKind::Builtin(name) => self.open(format_args!("builtin {name} {span}")),
            ExprKind::Call { name, args } => {
                self.open(format_args!("call {} {span}", ident(name)));
                for arg in args {
                    self.expr(arg);
                }
            }
            ExprKind::Unary { op, expr } => {
                let symbol = match op {
                    UnaryOp::Neg => "-",
                    UnaryOp::LogicalNot => "!",
                    UnaryOp::BitNot => "~",
                    UnaryOp::Deref => "*",
                    UnaryOp::AddrOf => "&",
                };
                self.open(format_args!("unary {symbol} {span}"));
                self.expr(expr);
            }
            ExprKind::Binary { op, lhs, rhs } => {
                self.open(format_args!("binary {} {span}", op.symbol()));
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Ternary { cond, then_expr, else_expr } => {
                self.open(format_args!("ternary {span}"));
                self.expr(cond);
                self.expr(then_expr);
                self.expr(else_expr);
            }
            ExprKind::Field { expr, field, arrow } => {
                let access = if *arrow { "->" } else { "." };
                self.open(format_args!("field {access} {} {span}", ident(field)));
                self.expr(expr);
            }
            ExprKind::Index { expr, index } => {
                self.open(format_args!("index {span}"));
                self.expr(expr);
                self.expr(index);
            }
            ExprKind::Cast { ty, expr } => {
                self.open(format_args!("cast {span}"));
                self.type_name(ty);
                self.expr(expr);
            }
            ExprKind::Tuple(elements) => {
                self.open(format_args!("tuple {span}"));
                for element in elements {
                    self.expr(element);
                }
            }
            ExprKind::IncDec { target, increment, prefix } => {
                let fix = if *prefix { "pre" } else { "post" };
                let op = if *increment { "++" } else { "--" };
                self.open(format_args!("{fix}{op} {span}"));
                self.expr(target);
            }
            ExprKind::SizeofType(ty) => {
                self.open(format_args!("sizeof-type {span}"));
                self.type_name(ty);
            }
            ExprKind::SizeofExpr(expr) => {
                self.open(format_args!("sizeof-expr {span}"));
                self.expr(expr);
            }
            ExprKind::Offsetof { ty, field } => {
                self.open(format_args!("offsetof {} {span}", ident(field)));
                self.type_name(ty);
            }
            ExprKind::Error => self.open(format_args!("error {span}")),
        }
        self.close();
    }
}
