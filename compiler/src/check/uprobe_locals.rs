//! `locals.NAME` and, at source lines, `args.NAME`: a variable of the probed binary's DWARF
//! that is visible at the uprobe's address, read where its location says it is there: a
//! register, memory at a register plus an offset (the CFA's rule folded in by the catalog), a
//! static address moved by the load bias, a value, a constant, or pieces of those. The catalog
//! translates DWARF's expression in user space; what reaches BPF is plain register and memory
//! reads, so no expression is interpreted in the kernel.

use super::expr::error_expr;
use super::Checker;
use crate::hir::{AddrSpace, AttachPoint, BinaryOp, Expr, ExprKind};
use crate::tracepoint::{FieldType, UserVariable, VarExpr, VarOp, VarPlace};
use crate::types::{RecordField, Type};
use grammar::{ast, Diagnostic, Span};

/// The `pt_regs` word (as `reg()` numbers them: r15 first) of each x86-64 DWARF register: rax,
/// rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8..r15, rip.
const DWARF_TO_PT_REGS: [u32; 17] = [10, 12, 11, 5, 13, 14, 4, 19, 9, 8, 7, 6, 3, 2, 1, 0, 16];

/// DWARF's number for rip: at a uprobe it holds the probed address, so `rip - vaddr` is the
/// load bias (page-aligned, which also absorbs a kernel that reports the address after int3).
const RIP: u16 = 16;

/// A function whose registers on entry are read elsewhere (`DW_OP_entry_value`): the hidden
/// uprobe at its entry keeps them.
pub(super) struct EntrySave {
    path: String,
    func: String,
    /// The entry's file offset, where the uprobe goes.
    offset: u64,
    registers: Vec<u16>,
    span: Span,
}

/// Which variables a name may be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Visible {
    /// `locals.NAME`: any variable or parameter visible at the address.
    Any,
    /// `args.NAME` at a source line: a parameter of the function (or inlined call) there.
    Parameters,
}

/// A variable found for a name, with what reading it needs.
struct Found {
    place: VarPlace,
    ty: Type,
    vaddr: u64,
}

impl Checker<'_> {
    /// `locals.NAME` (or `args.NAME` at a line): the variable's value at the probe's address.
    pub(super) fn uprobe_variable(&mut self, field: &ast::Ident, visible: Visible, span: Span) -> Expr {
        let Some(found) = self.find_variable(field, visible, span) else { return error_expr(span) };
        if let VarPlace::Pieces(parts) = &found.place {
            if !found.ty.is_integer() && !whole_in_first(parts, &found.ty) {
                let what = describe_pieces(parts);
                self.error(
                    Diagnostic::error(
                        "unsupported",
                        format!("{} is a {} kept in pieces here ({what})", field.name, found.ty),
                        span,
                    )
                    .with_help(format!("read its fields one by one: locals.{}.FIELD", field.name)),
                );
                return error_expr(span);
            }
        }
        self.read_variable(&found.place, found.ty.clone(), found.vaddr, &field.name, span)
            .unwrap_or_else(|| error_expr(span))
    }

    /// `locals.NAME.FIELD` for a struct DWARF keeps in pieces (in registers, say): the field
    /// from the piece that holds it. `None` when NAME is not such a struct, for the caller to
    /// check the expression as any other member access.
    pub(super) fn uprobe_variable_member(&mut self, var: &ast::Ident, member: &ast::Ident, span: Span) -> Option<Expr> {
        let (path, vaddr) = self.probe_vaddr()?;
        let variable = self.catalog.user_variables(&path, vaddr).ok()?.into_iter().find(|v| v.name == var.name)?;
        let Ok(VarPlace::Pieces(parts)) = &variable.place else { return None };
        let Some(Type::Record(layout)) = variable.ty.and_then(|t| self.value_type(t, span)) else { return None };
        let Some(f) = layout.fields.iter().find(|f| f.name == member.name) else {
            let names: Vec<&str> = layout.fields.iter().map(|f| f.name.as_str()).collect();
            self.unknown_field(&layout.name, &names, member, span);
            return Some(error_expr(span));
        };
        Some(self.member_of_pieces(parts, f, vaddr, var, span).unwrap_or_else(|| error_expr(span)))
    }

    fn member_of_pieces(
        &mut self,
        parts: &[(Option<VarPlace>, u64)],
        f: &RecordField,
        vaddr: u64,
        var: &ast::Ident,
        span: Span,
    ) -> Option<Expr> {
        let size = u64::from(f.ty.native_size());
        let start = u64::from(f.offset);
        let mut at = 0;
        for (part, part_size) in parts {
            if start >= at && start + size <= at + part_size && f.bitfield.is_none() {
                let name = format!("{}.{}", var.name, f.name);
                let Some(part) = part else {
                    self.error(Diagnostic::error(
                        "unsupported",
                        format!("{name} cannot be read here: it is optimized out at this address"),
                        span,
                    ));
                    return None;
                };
                let within = start - at;
                return match part {
                    VarPlace::Memory { base, offset } => {
                        let addr = plus(self.register(*base, &name, span)?, offset + within as i64, span);
                        Some(user_read(addr, f.ty.clone(), span))
                    }
                    VarPlace::Static(address) => {
                        let addr = plus(self.load_bias(vaddr, span)?, (address + within) as i64, span);
                        Some(user_read(addr, f.ty.clone(), span))
                    }
                    _ if f.ty.is_integer() => {
                        let whole = self.read_variable(part, Type::U64, vaddr, &name, span)?;
                        let shifted = binary(BinaryOp::Shr, whole, int(within * 8, span), span);
                        Some(cast(truncated(shifted, size, span), f.ty.clone(), span))
                    }
                    _ => {
                        self.error(Diagnostic::error(
                            "unsupported",
                            format!(
                                "{name} is a {} kept in a register: only integers and pointers can be read from one",
                                f.ty
                            ),
                            span,
                        ));
                        None
                    }
                };
            }
            at += part_size;
        }
        self.error(Diagnostic::error(
            "unsupported",
            format!("{}.{} spans two of the pieces DWARF keeps {} in here", var.name, f.name, var.name),
            span,
        ));
        None
    }

    /// The uprobe's virtual address and binary: a source line's address, or a function's entry
    /// (plus the offset `FUNC+OFFSET` adds). `None` elsewhere.
    fn probe_vaddr(&self) -> Option<(String, u64)> {
        match self.scope.attach.clone()? {
            AttachPoint::Uprobe { path, address: Some(vaddr), ret: false, .. } => Some((path, vaddr)),
            AttachPoint::Uprobe { path, func, offset, address: None, ret: false } => {
                let (start, _) = self.catalog.user_symbol(&path, &func)?;
                let start_offset = self.catalog.user_address(&path, start).ok()?.file_offset?;
                Some((path, start + offset.checked_sub(start_offset)?))
            }
            _ => None,
        }
    }

    fn find_variable(&mut self, field: &ast::Ident, visible: Visible, span: Span) -> Option<Found> {
        let Some((path, vaddr)) = self.probe_vaddr() else {
            self.error(
                Diagnostic::error(
                    "bad-probe",
                    "locals can only be read at uprobes on functions and source lines",
                    span,
                )
                .with_help("attach at a line: uprobe:BINARY@FILE:LINE (rbt -l 'uprobe:BINARY@FILE:*' lists them)"),
            );
            return None;
        };
        let variables = match self.catalog.user_variables(&path, vaddr) {
            Ok(variables) => variables,
            Err(why) => {
                self.error(Diagnostic::error("no-debuginfo", why, span));
                return None;
            }
        };
        let candidates: Vec<&UserVariable> =
            variables.iter().filter(|v| visible == Visible::Any || v.parameter).collect();
        let Some(variable) = candidates.iter().find(|v| v.name == field.name).copied().cloned() else {
            let mut names: Vec<&str> = Vec::new();
            for v in &candidates {
                if !names.contains(&v.name.as_str()) {
                    names.push(&v.name);
                }
            }
            let what = match visible {
                Visible::Any => "variable",
                Visible::Parameters => "parameter",
            };
            let mut diag = Diagnostic::error(
                "unknown-field",
                format!("no {what} {} is visible at {path}:{vaddr:#x}", field.name),
                span,
            );
            diag = match (super::nearest(&field.name, names.iter().copied(), 1).first(), names.is_empty()) {
                (_, true) => diag.with_help(format!("DWARF names no {what}s there")),
                (Some(near), false) => diag.with_help(format!("did you mean `{near}`? visible: {}", names.join(", "))),
                (None, false) => diag.with_help(format!("visible: {}", names.join(", "))),
            };
            self.error(diag);
            return None;
        };
        let place = match &variable.place {
            Ok(place) => place.clone(),
            Err(why) => {
                self.error(Diagnostic::error(
                    "unsupported",
                    format!("{} cannot be read here: {why}", field.name),
                    span,
                ));
                return None;
            }
        };
        let ty = variable.ty.and_then(|t| self.value_type(t, span))?;
        Some(Found { place, ty, vaddr })
    }

    /// The value of type `ty` at `place`.
    fn read_variable(&mut self, place: &VarPlace, ty: Type, vaddr: u64, name: &str, span: Span) -> Option<Expr> {
        match place {
            VarPlace::Memory { base, offset } => {
                let addr = plus(self.register(*base, name, span)?, *offset, span);
                Some(user_read(addr, ty, span))
            }
            #[allow(clippy::cast_possible_wrap, reason = "added modulo 2^64")]
            VarPlace::Static(address) => {
                let addr = plus(self.load_bias(vaddr, span)?, *address as i64, span);
                Some(user_read(addr, ty, span))
            }
            VarPlace::Computed { expr, value: false } => {
                let addr = self.computed(expr, vaddr, name, span)?;
                Some(user_read(addr, ty, span))
            }
            VarPlace::Pieces(parts) if whole_in_first(parts, &ty) => {
                let Some((Some(first), _)) = parts.first() else { return None };
                self.read_variable(first, ty, vaddr, name, span)
            }
            _ if !ty.is_integer() => {
                self.error(Diagnostic::error(
                    "unsupported",
                    format!("{name} is a {ty} kept in a register: only integers and pointers can be read from one"),
                    span,
                ));
                None
            }
            VarPlace::Register(r) => Some(cast(self.register(*r, name, span)?, ty, span)),
            VarPlace::Value { base, offset } => {
                Some(cast(plus(self.register(*base, name, span)?, *offset, span), ty, span))
            }
            VarPlace::Constant(value) => Some(cast(int(*value, span), ty, span)),
            VarPlace::Computed { expr, value: true } => Some(cast(self.computed(expr, vaddr, name, span)?, ty, span)),
            VarPlace::Pieces(parts) => {
                // An integer in parts, low bytes first: each part masked to its size and shifted
                // to where it goes.
                let mut value: Option<Expr> = None;
                let mut at = 0;
                for (part, size) in parts {
                    if at >= u64::from(ty.int_bytes()) {
                        break;
                    }
                    let Some(part) = part else {
                        self.error(Diagnostic::error(
                            "unsupported",
                            format!(
                                "{name} cannot be read here: bytes {at}..{} of it are optimized out at this address",
                                at + size
                            ),
                            span,
                        ));
                        return None;
                    };
                    let bytes = u8::try_from(*size).ok().filter(|b| [1, 2, 4, 8].contains(b));
                    let piece_ty = Type::Int { bytes: bytes.unwrap_or(8), signed: false };
                    let piece = self.read_variable(part, piece_ty, vaddr, name, span)?;
                    let piece = truncated(piece, *size, span);
                    let piece = if at == 0 { piece } else { binary(BinaryOp::Shl, piece, int(at * 8, span), span) };
                    value = Some(match value {
                        None => piece,
                        Some(v) => binary(BinaryOp::BitOr, v, piece, span),
                    });
                    at += size;
                }
                Some(cast(value?, ty, span))
            }
        }
    }

    /// What a location expression computes, as BPF computes it at the probe.
    fn computed(&mut self, expr: &VarExpr, vaddr: u64, name: &str, span: Span) -> Option<Expr> {
        Some(match expr {
            VarExpr::Register(r) => self.register(*r, name, span)?,
            VarExpr::Constant(v) => int(*v, span),
            #[allow(clippy::cast_possible_wrap, reason = "added modulo 2^64")]
            VarExpr::Static(a) => plus(self.load_bias(vaddr, span)?, *a as i64, span),
            VarExpr::EntryRegister { register, cfa } => {
                let Some((path, func, start, offset)) = self.function_entry(vaddr) else {
                    self.error(Diagnostic::error(
                        "unsupported",
                        format!("{name} is known only as its value on entry, and rbt cannot find the function's entry"),
                        span,
                    ));
                    return None;
                };
                if start == vaddr {
                    // At the entry itself, the register holds it still.
                    return self.register(*register, name, span);
                }
                let cfa = self.computed(cfa, vaddr, name, span)?;
                let function = self.entry_save(path, func, offset, *register, span);
                Expr {
                    kind: ExprKind::EntryValue { function, register: *register, cfa: Box::new(cfa) },
                    ty: Type::U64,
                    span,
                }
            }
            VarExpr::Deref { addr, size } => {
                let addr = self.computed(addr, vaddr, name, span)?;
                user_read(addr, Type::Int { bytes: *size, signed: false }, span)
            }
            VarExpr::Binary(op, lhs, rhs) => {
                let mut lhs = self.computed(lhs, vaddr, name, span)?;
                let rhs = self.computed(rhs, vaddr, name, span)?;
                let op = match op {
                    VarOp::Add => BinaryOp::Add,
                    VarOp::Sub => BinaryOp::Sub,
                    VarOp::Mul => BinaryOp::Mul,
                    VarOp::And => BinaryOp::BitAnd,
                    VarOp::Or => BinaryOp::BitOr,
                    VarOp::Xor => BinaryOp::BitXor,
                    VarOp::Shl => BinaryOp::Shl,
                    VarOp::Shr => BinaryOp::Shr,
                    VarOp::Sar => {
                        // BPF's shift is arithmetic when the left operand is signed.
                        lhs = cast(lhs, Type::Int { bytes: 8, signed: true }, span);
                        BinaryOp::Shr
                    }
                };
                binary(op, lhs, rhs, span)
            }
        })
    }

    /// The function (not an inlined copy: the code's symbol) whose frame `vaddr` is in: its
    /// binary, name, entry address and entry file offset.
    fn function_entry(&self, vaddr: u64) -> Option<(String, String, u64, u64)> {
        let (path, _) = self.probe_vaddr()?;
        let (func, _) = self.catalog.user_address(&path, vaddr).ok()?.function?;
        let (start, _) = self.catalog.user_symbol(&path, &func)?;
        let offset = self.catalog.user_address(&path, start).ok()?.file_offset?;
        Some((path, func, start, offset))
    }

    /// The id of the entry value kept for `func`, asking for `register` too.
    fn entry_save(&mut self, path: String, func: String, offset: u64, register: u16, span: Span) -> u32 {
        let index = match self.entry_saves.iter().position(|e| e.path == path && e.offset == offset) {
            Some(index) => index,
            None => {
                self.entry_saves.push(EntrySave { path, func, offset, registers: Vec::new(), span });
                self.entry_saves.len() - 1
            }
        };
        let save = &mut self.entry_saves[index];
        if !save.registers.contains(&register) {
            save.registers.push(register);
        }
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// The hidden uprobes at the entries of the functions whose entry values the program reads.
    pub(super) fn entry_save_probes(&mut self) -> Vec<crate::hir::Probe> {
        let saves = std::mem::take(&mut self.entry_saves);
        let mut probes = Vec::new();
        for (index, save) in saves.iter().enumerate() {
            let span = save.span;
            let mut registers = Vec::new();
            for &r in &save.registers {
                if let Some(value) = self.register(r, "an entry value", span) {
                    registers.push((r, value));
                }
            }
            let Some(sp) = self.register(7, "the stack pointer", span) else { continue };
            let body = vec![crate::hir::Stmt {
                kind: crate::hir::StmtKind::SaveEntry {
                    function: u32::try_from(index).unwrap_or(u32::MAX),
                    cfa: plus(sp, 8, span),
                    registers,
                },
                span,
            }];
            let attach = AttachPoint::Uprobe {
                path: save.path.clone(),
                func: save.func.clone(),
                offset: save.offset,
                ret: false,
                address: None,
            };
            probes.push(crate::hir::Probe { attach, spec_span: span, span, predicate: None, body, vars: Vec::new() });
        }
        self.entry_saves = saves;
        probes
    }

    /// The load bias of the probed binary in the traced process.
    fn load_bias(&mut self, vaddr: u64, span: Span) -> Option<Expr> {
        let ip = self.register(RIP, "rip", span)?;
        let bias = binary(BinaryOp::Sub, ip, int(vaddr, span), span);
        Some(binary(BinaryOp::BitAnd, bias, int(!0xfff, span), span))
    }

    /// DWARF register `r` from the probe's `pt_regs`.
    fn register(&mut self, r: u16, name: &str, span: Span) -> Option<Expr> {
        let Some(index) = DWARF_TO_PT_REGS.get(usize::from(r)).copied() else {
            self.error(Diagnostic::error("unsupported", format!("{name} is in a register rbt cannot read"), span));
            return None;
        };
        Some(Expr {
            kind: ExprKind::ArgsField { offset: index * 8, size: 8, ty: FieldType::Integer { size: 8, signed: false } },
            ty: Type::U64,
            span,
        })
    }
}

/// Whether the first piece holds the whole value (the rest, if any, is padding).
fn whole_in_first(parts: &[(Option<VarPlace>, u64)], ty: &Type) -> bool {
    matches!(parts.first(), Some((Some(_), size)) if *size >= u64::from(ty.native_size()))
}

fn describe_pieces(parts: &[(Option<VarPlace>, u64)]) -> String {
    let words: Vec<String> = parts
        .iter()
        .map(|(part, size)| match part {
            Some(VarPlace::Register(_)) => format!("{size} bytes in a register"),
            Some(VarPlace::Memory { .. } | VarPlace::Static(_)) => format!("{size} bytes in memory"),
            Some(_) => format!("{size} bytes computed"),
            None => format!("{size} bytes optimized out"),
        })
        .collect();
    words.join(", ")
}

fn int(value: u64, span: Span) -> Expr {
    Expr { kind: ExprKind::Int(value), ty: Type::U64, span }
}

fn binary(op: BinaryOp, lhs: Expr, rhs: Expr, span: Span) -> Expr {
    Expr { kind: ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, ty: Type::U64, span }
}

#[allow(clippy::cast_sign_loss, reason = "added modulo 2^64")]
fn plus(lhs: Expr, offset: i64, span: Span) -> Expr {
    binary(BinaryOp::Add, lhs, int(offset as u64, span), span)
}

/// The low `size` bytes of `value`.
fn truncated(value: Expr, size: u64, span: Span) -> Expr {
    if size >= 8 {
        return value;
    }
    binary(BinaryOp::BitAnd, value, int((1u64 << (size * 8)) - 1, span), span)
}

fn cast(value: Expr, ty: Type, span: Span) -> Expr {
    Expr { kind: ExprKind::Cast { expr: Box::new(value) }, ty, span }
}

fn user_read(addr: Expr, ty: Type, span: Span) -> Expr {
    Expr {
        kind: ExprKind::KernelRead { addr: Box::new(addr), offset: 0, bitfield: None, space: AddrSpace::User },
        ty,
        span,
    }
}
