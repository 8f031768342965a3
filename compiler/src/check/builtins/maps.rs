//! Map functions: the aggregations assigned to map elements (`@[k] = count()`, `sum`, `min`,
//! `max`, `avg`, `stats`, `hist`, `lhist`) and the statements on whole maps or elements (`clear`,
//! `zero`, `delete`).

use super::Call;
use crate::builtins::{self as table, Role};
use crate::check::expr::key_type;
use crate::check::stmt::literal_int;
use crate::check::Checker;
use crate::hir::{self, Expr, ExprKind, Stmt, StmtKind};
use crate::types::MapValue;
use grammar::ast;
use grammar::{Diagnostic, Span};

impl Checker<'_> {
    /// `@m[k] = count()` and friends (`span` the statement's, `call_span` the call's); `None`
    /// when `name` is not an aggregation, `Some(None)` after an error.
    pub(in crate::check) fn check_aggregation(
        &mut self,
        access: &ast::MapAccess,
        name: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
        call_span: Span,
    ) -> Option<Option<Stmt>> {
        let spec = table::function(&name.name).filter(|f| f.role == Role::Aggregation)?;
        let call = Call { name, args, span, spec };
        if !self.check_arity(&call) {
            return Some(None);
        }
        let keys: Vec<Expr> = access.keys.iter().map(|k| self.check_expr(k)).collect();
        let key_types: Vec<_> = keys.iter().map(|k| key_type(&k.ty)).collect();
        let arg = args.first().map(|a| self.check_expr(a));
        if let Some(a) = &arg {
            if !a.ty.is_integer() {
                if a.ty != crate::types::Type::None {
                    self.error(Diagnostic::error(
                        "type-mismatch",
                        format!("{}() expects an integer, not '{}'", name.name, a.ty),
                        a.span,
                    ));
                }
                return Some(None);
            }
        }
        let signed = arg.as_ref().is_some_and(|a| a.ty.is_signed());
        let value = match name.name.as_str() {
            "count" => MapValue::Count,
            "sum" => MapValue::Sum { signed },
            "min" => MapValue::Min { signed },
            "max" => MapValue::Max { signed },
            "avg" => MapValue::Avg { signed },
            "stats" => MapValue::Stats { signed },
            "hist" => MapValue::Hist,
            _ => match self.lhist_range(&args[1..], span) {
                Some(value) => value,
                None => return Some(None),
            },
        };
        let id = self.define_map(access, &key_types, value);
        Some(Some(Stmt { kind: StmtKind::Aggregate { map: id, keys, value: arg, call: call_span }, span }))
    }

    /// `lhist()`'s literal min, max and step.
    fn lhist_range(&mut self, args: &[ast::Expr], span: Span) -> Option<MapValue> {
        let mut consts = [0i64; 3];
        for (i, a) in args.iter().enumerate() {
            let Some(v) = literal_int(a) else {
                self.error(Diagnostic::error(
                    "bad-argument",
                    "lhist() min, max and step must be integer literals",
                    a.span,
                ));
                return None;
            };
            consts[i] = v;
        }
        let [min, max, step] = consts;
        if step <= 0 || max <= min || (max - min) / step > 1000 {
            self.error(
                Diagnostic::error("bad-argument", "invalid lhist() range", span)
                    .with_help("lhist(value, min, max, step) needs min < max, step > 0 and at most 1000 buckets"),
            );
            return None;
        }
        Some(MapValue::Lhist { min, max, step })
    }

    /// `None` when the call is not a statement on a map; `Some(None)` after an error.
    pub(super) fn check_map_statement(&mut self, call: &Call<'_>) -> Option<Option<StmtKind>> {
        let kind = match call.name() {
            "clear" => self.map_argument(call).map(|map| StmtKind::Clear { map }),
            "zero" => self.map_argument(call).map(|map| StmtKind::Zero { map }),
            "delete" => self.check_delete(call),
            _ => return None,
        };
        Some(kind)
    }

    /// The map `clear(@m)` or `zero(@m)` names.
    fn map_argument(&mut self, call: &Call<'_>) -> Option<hir::MapId> {
        let arg = &call.args[0];
        match &arg.kind {
            ast::ExprKind::Map(access) if access.keys.is_empty() => self.lookup_map(access),
            _ => {
                self.error(Diagnostic::error(
                    "bad-argument",
                    format!("{}() expects a map, e.g. {}(@m)", call.name(), call.name()),
                    arg.span,
                ));
                None
            }
        }
    }

    /// `delete(@m[KEY])`.
    fn check_delete(&mut self, call: &Call<'_>) -> Option<StmtKind> {
        let arg = &call.args[0];
        let ast::ExprKind::Map(access) = &arg.kind else {
            self.error(Diagnostic::error("bad-argument", "delete() expects a map element", arg.span));
            return None;
        };
        let read = self.check_map_read(access);
        let ExprKind::MapRead { map, keys } = read.kind else { return None };
        // bpftrace 0.17 deletes with the user key alone, which on a keyed histogram
        // reads past it into whatever the stack holds.
        if !keys.is_empty() && matches!(self.maps[map.0 as usize].value, MapValue::Hist | MapValue::Lhist { .. }) {
            self.error(Diagnostic::error(
                "unsupported",
                "delete() of a hist or lhist element is not supported; use clear()",
                arg.span,
            ));
            return None;
        }
        Some(StmtKind::Delete { map, keys })
    }
}
