//! Network address functions: `ntop` (IPv4 and IPv6 addresses) and `macaddr`, both formatted
//! as text by the runtime when printed, and `pton`, an address literal as its bytes.

use super::Call;
use crate::check::expr::error_expr;
use crate::check::Checker;
use crate::hir::{Expr, ExprKind};
use crate::types::Type;
use grammar::{ast, Diagnostic};
use std::net::{Ipv4Addr, Ipv6Addr};

impl Checker<'_> {
    /// `None` when the call is not a network address function.
    pub(super) fn check_net_call(&mut self, call: &Call<'_>) -> Option<Expr> {
        Some(match call.name() {
            "ntop" => self.check_ntop(call),
            "macaddr" => self.check_macaddr(call),
            "pton" => self.check_pton(call),
            _ => return None,
        })
    }

    /// `ntop(ADDR)`, `ntop(AF, ADDR)`.
    fn check_ntop(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let (af, addr) = match call.args {
            [af, addr] => (Some(af), addr),
            _ => (None, &call.args[0]),
        };
        let af = af.map(|a| {
            let e = self.check_expr(a);
            self.expect_integer(&e, "address family");
            e
        });
        let addr = self.check_expr(addr);
        // bpftrace 0.17: an integer is an IPv4 address; 4 or 16 bytes of an array are
        // IPv4 or IPv6 (the family, when not given, from the size).
        let bytes = match &addr.ty {
            t if t.is_integer() => 4,
            Type::Str { len } if *len == 4 || *len == 16 => *len,
            Type::Array { elem, len } if elem.native_size() == 1 && (*len == 4 || *len == 16) => *len,
            Type::None => return error_expr(span),
            other => {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!("ntop() expects an integer or an array of 4 or 16 bytes, not a '{other}'"),
                    addr.span,
                ));
                return error_expr(span);
            }
        };
        let af = af.unwrap_or(Expr { kind: ExprKind::Int(if bytes == 4 { 2 } else { 10 }), ty: Type::U64, span });
        Expr { kind: ExprKind::Inet { af: Box::new(af), addr: Box::new(addr) }, ty: Type::Inet, span }
    }

    /// `pton("ADDR")`: an address literal as its bytes in network order, a `uint8[4]` for IPv4
    /// (the text has a `.`) or a `uint8[16]` for IPv6 (it has a `:`), as bpftrace 0.17 decides.
    fn check_pton(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let text = match &call.args[0].kind {
            ast::ExprKind::Str(text) => text.clone(),
            _ => {
                let arg = self.check_expr(&call.args[0]);
                self.error(Diagnostic::error(
                    "bad-argument",
                    format!("pton() expects a string literal ({} provided)", arg.ty),
                    call.args[0].span,
                ));
                return error_expr(span);
            }
        };
        let bytes = if text.contains('.') {
            text.parse::<Ipv4Addr>().map(|a| a.octets().to_vec())
        } else if text.contains(':') {
            text.parse::<Ipv6Addr>().map(|a| a.octets().to_vec())
        } else {
            self.error(Diagnostic::error(
                "bad-argument",
                format!("pton() expects an string argument of an IPv4/IPv6 address, got {text}"),
                span,
            ));
            return error_expr(span);
        };
        let Ok(bytes) = bytes else {
            self.error(Diagnostic::error(
                "bad-argument",
                format!("pton() expects a valid IPv4/IPv6 address, got {text}"),
                span,
            ));
            return error_expr(span);
        };
        let ty = Type::Array { elem: Box::new(Type::Int { bytes: 1, signed: false }), len: bytes.len() as u32 };
        Expr { kind: ExprKind::Str(bytes), ty, span }
    }

    /// `macaddr(ADDR)`: 6 bytes of a string or an array.
    fn check_macaddr(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let value = self.check_expr(&call.args[0]);
        let six = match &value.ty {
            Type::Str { len } => *len == 6,
            Type::Array { elem, len } => elem.native_size() == 1 && *len == 6,
            Type::None => return error_expr(span),
            _ => false,
        };
        if !six {
            self.error(Diagnostic::error("bad-argument", "macaddr() argument must be 6 bytes in size", span));
            return error_expr(span);
        }
        Expr { kind: ExprKind::Member { base: Box::new(value), offset: 0, bitfield: None }, ty: Type::MacAddr, span }
    }
}
