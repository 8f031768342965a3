//! Positional parameters (`$1`, `$2`, `$#`) replaced by their values before checking, as
//! bpftrace 0.17 treats them: everywhere an integer literal may stand, a numeric parameter is one
//! (`unroll($1)`, `strncmp(a, b, $2)`, `lhist(x, $1, $2, $3)`, `p->x[$1]`), read as C's
//! `strtoll(text, 0)` reads it (`0x1f` hex, `0775` octal); `str($1)` is the parameter's text as a
//! string literal, and `str($1 + 2)` the text from its third byte (`kaddr(str($1))` works);
//! inside an attach point `$1` is spliced into the text (`BEG$1`, `uprobe:$1:main`). A missing
//! parameter is 0, or "" in `str()`. rbt also reads a non-numeric `$1` outside `str()` as its
//! string, where bpftrace refuses it.

use grammar::ast::{self, BinaryOp, Expr, ExprKind};
use grammar::Diagnostic;

/// The program with every positional parameter replaced, and the mistakes found doing it.
pub(super) fn substitute(program: &ast::Program, params: &[String]) -> (ast::Program, Vec<Diagnostic>) {
    let mut program = program.clone();
    let mut subst = Substitution { params, diags: Vec::new() };
    for probe in &mut program.probes {
        for spec in &mut probe.specs {
            spec.text = splice(&spec.text, params);
            for part in &mut spec.parts {
                *part = splice(part, params);
            }
        }
        if let Some(p) = &mut probe.predicate {
            subst.expr(p);
        }
        subst.block(&mut probe.body);
    }
    (program, subst.diags)
}

/// `$N` in an attach point's text replaced by the parameter's text ("" when missing).
fn splice(text: &str, params: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) if n >= 1 => out.push_str(params.get(n - 1).map_or("", String::as_str)),
            _ => out.push_str(&rest[at..=at + digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// What C's `strtoll(text, &end, 0)` reads when it reads all of `text`: an optional sign, then
/// `0x` hex, `0` octal or decimal, within `i64`. `None` when the text is not such a number.
pub(super) fn parse_c_integer(text: &str) -> Option<u64> {
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, hex)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from(u64::from_str_radix(digits, radix).ok()?);
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok().map(|v| v as u64)
}

struct Substitution<'a> {
    params: &'a [String],
    diags: Vec<Diagnostic>,
}

impl Substitution<'_> {
    fn text(&self, n: u32) -> Option<&str> {
        (n as usize).checked_sub(1).and_then(|i| self.params.get(i)).map(String::as_str)
    }

    fn block(&mut self, block: &mut ast::Block) {
        for stmt in &mut block.stmts {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &mut ast::Stmt) {
        match &mut stmt.kind {
            ast::StmtKind::Expr(e) | ast::StmtKind::AssignVar { value: e, .. } => self.expr(e),
            ast::StmtKind::AssignMap { map, value, .. } => {
                self.keys(map);
                self.expr(value);
            }
            ast::StmtKind::If { cond, then_block, else_block } => {
                self.expr(cond);
                self.block(then_block);
                if let Some(b) = else_block {
                    self.block(b);
                }
            }
            ast::StmtKind::While { cond: e, body } | ast::StmtKind::Unroll { count: e, body } => {
                self.expr(e);
                self.block(body);
            }
            ast::StmtKind::Return | ast::StmtKind::Error => {}
        }
    }

    fn keys(&mut self, map: &mut ast::MapAccess) {
        for k in &mut map.keys {
            self.expr(k);
        }
    }

    fn expr(&mut self, e: &mut Expr) {
        match &mut e.kind {
            ExprKind::Param(n) => {
                e.kind = match self.text(*n) {
                    Some(text) => match parse_c_integer(text) {
                        Some(v) => ExprKind::Int(v),
                        None => ExprKind::Str(text.to_string()),
                    },
                    None => ExprKind::Int(0),
                };
            }
            ExprKind::ParamCount => e.kind = ExprKind::Int(self.params.len() as u64),
            ExprKind::Call { name, args } if name.name == "str" && args.len() == 1 => {
                if let Some(text) = self.str_argument(&args[0]) {
                    e.kind = ExprKind::Str(text);
                    return;
                }
                self.expr(&mut args[0]);
            }
            ExprKind::Call { args: items, .. } | ExprKind::Tuple(items) => {
                for a in items {
                    self.expr(a);
                }
            }
            ExprKind::Map(map) => self.keys(map),
            ExprKind::Unary { expr, .. }
            | ExprKind::Field { expr, .. }
            | ExprKind::Cast { expr, .. }
            | ExprKind::IncDec { target: expr, .. }
            | ExprKind::SizeofExpr(expr) => self.expr(expr),
            ExprKind::Binary { lhs, rhs, .. } | ExprKind::Index { expr: lhs, index: rhs } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Ternary { cond, then_expr, else_expr } => {
                self.expr(cond);
                self.expr(then_expr);
                self.expr(else_expr);
            }
            ExprKind::Int(_)
            | ExprKind::Str(_)
            | ExprKind::Var(_)
            | ExprKind::Builtin(_)
            | ExprKind::SizeofType(_)
            | ExprKind::Offsetof { .. }
            | ExprKind::Error => {}
        }
    }

    /// The text `str(arg)` stands for when `arg` is `$N`, `$N + K` or `K + $N`; a diagnostic when
    /// it is a parameter used otherwise.
    fn str_argument(&mut self, arg: &Expr) -> Option<String> {
        let (n, offset) = match &arg.kind {
            ExprKind::Param(n) => (*n, 0),
            ExprKind::ParamCount => {
                self.diags.push(Diagnostic::error("bad-argument", "use $#, not str($#)", arg.span));
                return Some(String::new());
            }
            ExprKind::Binary { op, lhs, rhs } => match (&lhs.kind, &rhs.kind) {
                (ExprKind::Param(n), other) | (other, ExprKind::Param(n)) => {
                    let text_len = self.text(*n).unwrap_or("").len();
                    match other {
                        ExprKind::Int(k) if *op == BinaryOp::Add && *k as usize <= text_len => (*n, *k as usize),
                        _ => {
                            self.diags.push(Diagnostic::error(
                                "bad-argument",
                                format!(
                                    "only addition of a single constant less or equal to the length of ${n} (which is {text_len}) is allowed inside str()"
                                ),
                                arg.span,
                            ));
                            return Some(String::new());
                        }
                    }
                }
                _ => return None,
            },
            _ => return None,
        };
        let text = self.text(n).unwrap_or("");
        Some(String::from_utf8_lossy(&text.as_bytes()[offset..]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_read_as_strtoll_reads_them() {
        assert_eq!(parse_c_integer("123"), Some(123));
        assert_eq!(parse_c_integer("0775"), Some(0o775));
        assert_eq!(parse_c_integer("0x123"), Some(0x123));
        assert_eq!(parse_c_integer("-1"), Some(u64::MAX));
        assert_eq!(parse_c_integer(" 7"), Some(7));
        assert_eq!(parse_c_integer("0"), Some(0));
        assert_eq!(parse_c_integer("-9223372036854775808"), Some(1 << 63));
        for bad in ["", "0x", "08", "12a", "hello", "9223372036854775808", "1 "] {
            assert_eq!(parse_c_integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn attach_points_splice_parameters() {
        let params = vec!["IN".to_string(), "/bin/sh".to_string()];
        assert_eq!(splice("BEG$1", &params), "BEGIN");
        assert_eq!(splice("uprobe:$2:main", &params), "uprobe:/bin/sh:main");
        assert_eq!(splice("i:ms:$3", &params), "i:ms:");
        assert_eq!(splice("a$b", &params), "a$b");
    }
}
