//! Uprobes typed from the probed binary's DWARF, as bpftrace 0.17 built with libdw types them:
//! `args->NAME` is the function's parameter of that name, read from its argument register with
//! the parameter's type (so `args->foo1->a` follows a `struct Foo *` into user memory), and a
//! cast names the binary's own structs (`(struct Foo *)arg0`).
//!
//! Type names are looked up in order: the script's own C definitions (which the catalog the
//! checker is handed puts first), then the probed binary's DWARF, then the kernel's BTF.

use super::expr::error_expr;
use super::Checker;
use crate::hir::{AttachPoint, Builtin, Expr, ExprKind};
use crate::ktypes::{KFunction, KTypeId};
use crate::types::Type;
use grammar::{ast, Diagnostic, Span};

/// Arguments after the sixth are on the stack, where bpftrace 0.17 does not read them either.
const REGISTER_ARGS: usize = 6;

impl Checker<'_> {
    /// `args->NAME` in a uprobe on `func` of the binary at `path`.
    pub(super) fn uprobe_arg(&mut self, path: &str, func: &str, field: &ast::Ident, span: Span) -> Expr {
        let Some(signature) = self.uprobe_signature(path, func) else { return error_expr(span) };
        let Some(index) = signature.params.iter().position(|p| p.name == field.name) else {
            let names: Vec<&str> = signature.params.iter().map(|p| p.name.as_str()).collect();
            let mut diag =
                Diagnostic::error("unknown-field", format!("Can't find function parameter {}", field.name), span);
            diag = match (super::nearest(&field.name, names.iter().copied(), 1).first(), names.is_empty()) {
                (_, true) => diag.with_help(format!("the DWARF of {path} describes no parameters of {func}")),
                (Some(near), false) => {
                    diag.with_help(format!("did you mean `{near}`? parameters: {}", names.join(", ")))
                }
                (None, false) => diag.with_help(format!("parameters: {}", names.join(", "))),
            };
            self.error(diag);
            return error_expr(span);
        };
        if index >= REGISTER_ARGS {
            self.error(Diagnostic::error(
                "unsupported",
                format!(
                    "{} is argument {} of {func}: only the first {REGISTER_ARGS} arguments, passed in registers, can be read",
                    field.name,
                    index + 1
                ),
                span,
            ));
            return error_expr(span);
        }
        let Some(ty) = self.value_type(signature.params[index].ty, span) else { return error_expr(span) };
        if !ty.is_integer() {
            let name = self.catalog.kernel_type_name(signature.params[index].ty);
            self.error(Diagnostic::error(
                "unsupported",
                format!("{} has unsupported type: '{name}' is passed by value", field.name),
                span,
            ));
            return error_expr(span);
        }
        #[allow(clippy::cast_possible_truncation, reason = "fewer than REGISTER_ARGS")]
        let register = Expr { kind: ExprKind::Builtin(Builtin::Arg(index as u8)), ty: Type::U64, span };
        Expr { kind: ExprKind::Cast { expr: Box::new(register) }, ty, span }
    }

    /// The probed function's DWARF signature; `None` after an error (no DWARF, or attach points
    /// of the block whose functions' parameters differ, which bpftrace refuses).
    fn uprobe_signature(&mut self, path: &str, func: &str) -> Option<KFunction> {
        let spec_span = self.scope.spec_span;
        let signature = match self.catalog.user_function_signature(path, func) {
            Ok(signature) => signature,
            Err(why) => {
                self.error(Diagnostic::error("no-debuginfo", why, spec_span));
                return None;
            }
        };
        let names = |f: &KFunction| f.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let mixed = self.block_uprobes().into_iter().any(|(other_path, other_func)| {
            (other_path != path || other_func != func)
                && self
                    .catalog
                    .user_function_signature(&other_path, &other_func)
                    .is_ok_and(|o| names(&o) != names(&signature))
        });
        if mixed {
            self.error(
                Diagnostic::error("mixed-args", "Probe has attach points with mixed arguments", spec_span)
                    .with_help("args names the parameters of every function the probe attaches to: split the probe"),
            );
            return None;
        }
        Some(signature)
    }

    /// `(path, function)` of each uprobe and uretprobe of the probe block being checked.
    fn block_uprobes(&self) -> Vec<(String, String)> {
        let Some(specs) = self.resolved.get(self.scope.block_index) else { return Vec::new() };
        specs
            .iter()
            .flat_map(|spec| &spec.points)
            .filter_map(|point| match point {
                AttachPoint::Uprobe { path, func, .. } => Some((path.clone(), func.clone())),
                _ => None,
            })
            .collect()
    }

    /// The type `ty` names (`struct Foo`) in the DWARF of the binary a uprobe of this block
    /// probes, that of the attach point being checked first; `None` elsewhere, and for names
    /// without a tag (integer types and typedefs come from BTF, as in bpftrace).
    pub(super) fn probed_binary_type(&self, ty: &ast::TypeName) -> Option<KTypeId> {
        let tag = ty.tag.as_ref()?;
        let name = format!("{tag} {}", ty.name);
        let current = match &self.scope.attach {
            Some(AttachPoint::Uprobe { path, .. }) => Some(path.clone()),
            _ => None,
        };
        current
            .into_iter()
            .chain(self.block_uprobes().into_iter().map(|(path, _)| path))
            .find_map(|path| self.catalog.user_type_named(&path, &name))
    }
}
