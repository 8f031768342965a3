//! The variables DWARF says are visible at an address, and where each one is there: for
//! `locals.NAME` and `args.NAME` at uprobes on source lines. The location expression in force at
//! the address (a `DW_AT_location` expression, or the entry of its location list that covers
//! the address) is translated here into one of a few shapes the BPF side reads directly; no
//! expression is interpreted in the kernel. `-lv 'uprobe:BIN@FILE:LINES'` shows them.

use gimli::{AttributeValue, Operation, Unit};

use super::{integrated, name_of, with_dwarf, Reader};

/// Where a variable is at one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// In DWARF register N (x86-64 numbering: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp,
    /// 7 rsp, 8-15 r8-r15).
    Register(u16),
    /// In memory at `base + offset`.
    Memory { base: Base, offset: i64 },
    /// Not in memory: `base + offset` is the value (`DW_OP_stack_value`).
    Value { base: Base, offset: i64 },
    /// A constant (`DW_AT_const_value`, or a constant with `DW_OP_stack_value`).
    Constant(u64),
    /// Optimized out here: no location covers the address.
    OptimizedOut,
    /// Computed from registers, memory and constants by a DWARF expression without branches:
    /// the variable's address, or (`value`) the variable itself (`DW_OP_stack_value`).
    Computed { expr: Computed, value: bool },
    /// In parts (`DW_OP_piece`), first byte first: a struct kept in two registers, a `long`
    /// half in a register and half optimized out.
    Pieces(Vec<Piece>),
    /// A location rbt cannot read yet, said in words (`an entry value`).
    Unsupported(String),
}

/// One part of a variable kept in pieces: `size` bytes where `location` says (a piece
/// `OptimizedOut` has no location).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub location: Location,
    pub size: u64,
}

/// A DWARF expression evaluated symbolically at compile time: what the BPF program computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Computed {
    Register(u16),
    Cfa,
    Constant(u64),
    /// A static address of the binary: the load bias added.
    Static(u64),
    Binary(ComputedOp, Box<Computed>, Box<Computed>),
    /// `size` bytes of user memory at the address, zero-extended.
    Deref {
        addr: Box<Computed>,
        size: u8,
    },
    /// What the register held when the function was entered (`DW_OP_entry_value`).
    EntryRegister(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputedOp {
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

/// What a location's address or value is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    Register(u16),
    /// The canonical frame address at the address (the CFA of the unwind tables): the frame
    /// base of code built by gcc and clang (`DW_AT_frame_base` `DW_OP_call_frame_cfa`).
    Cfa,
    /// A static address of the binary (add the load bias).
    Static,
}

/// A variable or parameter visible at the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    /// A `DW_TAG_formal_parameter`.
    pub parameter: bool,
    /// A variable of the compilation unit (a global, or a file's `static`), not of a function.
    pub global: bool,
    /// The `.debug_info` offset of its type DIE.
    pub type_offset: Option<usize>,
    pub location: Location,
    /// How deep its scope is (the function 0, a block or inlined call in it 1, ...): an inner
    /// name hides an outer one.
    pub depth: u32,
}

/// The variables and parameters of every scope holding each of `addresses`, innermost first,
/// then the variables of its compilation unit that have a location (globals, a file's
/// statics); the DWARF sections read (and inflated) once.
pub fn variables_at_each(data: &[u8], addresses: &[u64]) -> Vec<Vec<Variable>> {
    with_dwarf(data, |dwarf| addresses.iter().map(|&a| variables_in(dwarf, a)).collect())
        .unwrap_or_else(|| vec![Vec::new(); addresses.len()])
}

/// The variables at one address, over sections already read.
pub(super) fn variables_in(dwarf: &gimli::Dwarf<Reader<'_>>, vaddr: u64) -> Vec<Variable> {
    let mut found = Vec::new();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else { continue };
        collect(dwarf, &unit, vaddr, &mut found);
    }
    found.sort_by_key(|v| (v.global, std::cmp::Reverse(v.depth)));
    found
}

/// The variables at `vaddr`, and for each one that cannot be read there
/// the lines of the function's code `function` (its start and end) where it can be: read in
/// one pass, for the error that says so.
pub fn variables_and_where_readable(
    data: &[u8],
    vaddr: u64,
    function: Option<(u64, u64)>,
) -> (Vec<Variable>, std::collections::HashMap<String, Vec<u32>>) {
    let readable = |l: &Location| !matches!(l, Location::OptimizedOut | Location::Unsupported(_));
    with_dwarf(data, |dwarf| {
        let here = variables_in(dwarf, vaddr);
        let mut lines = std::collections::HashMap::new();
        let wanted: Vec<&str> = here.iter().filter(|v| !readable(&v.location)).map(|v| v.name.as_str()).collect();
        if let (Some((start, end)), false) = (function, wanted.is_empty()) {
            for (line, at) in super::lines::lines_in_dwarf(dwarf, start, end) {
                for v in variables_in(dwarf, at) {
                    if wanted.contains(&v.name.as_str()) && readable(&v.location) {
                        let seen: &mut Vec<u32> = lines.entry(v.name).or_default();
                        if !seen.contains(&line) {
                            seen.push(line);
                        }
                    }
                }
            }
        }
        (here, lines)
    })
    .unwrap_or_default()
}

fn collect<'a>(dwarf: &gimli::Dwarf<Reader<'a>>, unit: &Unit<Reader<'a>>, vaddr: u64, out: &mut Vec<Variable>) {
    // Most units hold other code: skip them without walking their DIEs.
    let Ok(mut ranges) = dwarf.unit_ranges(unit) else { return };
    let mut holds = false;
    while let Ok(Some(range)) = ranges.next() {
        holds |= (range.begin..range.end).contains(&vaddr);
    }
    if !holds {
        return;
    }
    let Ok(mut tree) = unit.entries_tree(None) else { return };
    let Ok(root) = tree.root() else { return };
    walk(dwarf, unit, root, vaddr, None, out);
}

/// The variables of `node`'s children, and those of the scopes among them that hold `vaddr`
/// (a function's other blocks, and the unit's other functions, are skipped whole). `scope`:
/// the level and frame base of `node` when it is a scope holding the address; `None` at the
/// unit, whose variables are its globals.
fn walk<'a>(
    dwarf: &gimli::Dwarf<Reader<'a>>,
    unit: &Unit<Reader<'a>>,
    node: gimli::EntriesTreeNode<'_, '_, Reader<'a>>,
    vaddr: u64,
    scope: Option<(u32, Option<Base>)>,
    out: &mut Vec<Variable>,
) {
    let mut children = node.children();
    while let Ok(Some(child)) = children.next() {
        let entry = child.entry();
        match entry.tag() {
            gimli::DW_TAG_subprogram | gimli::DW_TAG_inlined_subroutine | gimli::DW_TAG_lexical_block => {
                if !covers(dwarf, unit, entry, vaddr) {
                    continue;
                }
                let inherited = scope.and_then(|(_, base)| base);
                let frame_base = match entry.attr_value(gimli::DW_AT_frame_base) {
                    Some(AttributeValue::Exprloc(expr)) => frame_base(unit, expr),
                    _ => inherited,
                };
                let level = scope.map_or(0, |(level, _)| level + 1);
                walk(dwarf, unit, child, vaddr, Some((level, frame_base)), out);
            }
            gimli::DW_TAG_variable | gimli::DW_TAG_formal_parameter => {
                let global = scope.is_none();
                if global && integrated(unit, entry.offset(), gimli::DW_AT_location).is_none() {
                    // A declaration (`extern int x;`): the variable is defined elsewhere.
                    continue;
                }
                let (depth, base) = scope.unwrap_or((0, None));
                let Some(name) = name_of(dwarf, unit, entry.offset()) else { continue };
                let type_offset = match integrated(unit, entry.offset(), gimli::DW_AT_type) {
                    Some(AttributeValue::UnitRef(t)) => t.to_debug_info_offset(&unit.header).map(|o| o.0),
                    Some(AttributeValue::DebugInfoRef(t)) => Some(t.0),
                    _ => None,
                };
                let location = location_at(dwarf, unit, entry, vaddr, base);
                out.push(Variable {
                    name,
                    parameter: entry.tag() == gimli::DW_TAG_formal_parameter,
                    global,
                    type_offset,
                    location,
                    depth,
                });
            }
            _ => {}
        }
    }
}

/// Whether the DIE's code ranges hold `vaddr`.
fn covers<'a>(
    dwarf: &gimli::Dwarf<Reader<'a>>,
    unit: &Unit<Reader<'a>>,
    entry: &gimli::DebuggingInformationEntry<Reader<'a>>,
    vaddr: u64,
) -> bool {
    let Ok(mut ranges) = dwarf.die_ranges(unit, entry) else { return false };
    while let Ok(Some(range)) = ranges.next() {
        if (range.begin..range.end).contains(&vaddr) {
            return true;
        }
    }
    false
}

/// A function's frame base: the CFA (gcc, clang), or a register plus an offset.
fn frame_base<'a>(unit: &Unit<Reader<'a>>, expr: gimli::Expression<Reader<'a>>) -> Option<Base> {
    let ops = operations(unit, expr)?;
    match ops.as_slice() {
        [Operation::CallFrameCFA] => Some(Base::Cfa),
        [Operation::Register { register }] => Some(Base::Register(register.0)),
        _ => None,
    }
}

fn operations<'a>(unit: &Unit<Reader<'a>>, expr: gimli::Expression<Reader<'a>>) -> Option<Vec<Operation<Reader<'a>>>> {
    let mut ops = expr.operations(unit.encoding());
    let mut out = Vec::new();
    while let Ok(Some(op)) = ops.next() {
        out.push(op);
    }
    Some(out)
}

/// The variable's location at `vaddr`.
fn location_at<'a>(
    dwarf: &gimli::Dwarf<Reader<'a>>,
    unit: &Unit<Reader<'a>>,
    entry: &gimli::DebuggingInformationEntry<Reader<'a>>,
    vaddr: u64,
    frame_base: Option<Base>,
) -> Location {
    let expr = match integrated(unit, entry.offset(), gimli::DW_AT_location) {
        Some(AttributeValue::Exprloc(expr)) => Some(expr),
        Some(AttributeValue::LocationListsRef(offset)) => {
            let Ok(mut list) = dwarf.locations(unit, offset) else {
                return Location::Unsupported("a damaged location list".into());
            };
            let mut here = None;
            while let Ok(Some(item)) = list.next() {
                if (item.range.begin..item.range.end).contains(&vaddr) {
                    here = Some(item.data);
                    break;
                }
            }
            here
        }
        _ => match entry.attr_value(gimli::DW_AT_const_value).and_then(|v| v.udata_value()) {
            Some(value) => return Location::Constant(value),
            None => None,
        },
    };
    let Some(expr) = expr else { return Location::OptimizedOut };
    let Some(ops) = operations(unit, expr) else { return Location::Unsupported("an unreadable expression".into()) };
    translate(&ops, frame_base)
}

/// The few expression shapes compilers give plain variables, and pieces of them.
fn translate(ops: &[Operation<Reader<'_>>], frame_base: Option<Base>) -> Location {
    use Operation as Op;
    if !ops.iter().any(|op| matches!(op, Op::Piece { .. })) {
        return translate_whole(ops, frame_base);
    }
    let mut pieces = Vec::new();
    let mut rest = ops;
    while let Some(end) = rest.iter().position(|op| matches!(op, Op::Piece { .. })) {
        let Op::Piece { size_in_bits, bit_offset: None } = rest[end] else {
            return Location::Unsupported("kept in bit pieces".into());
        };
        if size_in_bits % 8 != 0 {
            return Location::Unsupported("kept in bit pieces".into());
        }
        let location = match translate_whole(&rest[..end], frame_base) {
            Location::Unsupported(why) => return Location::Unsupported(format!("kept in pieces, one {why}")),
            location => location,
        };
        pieces.push(Piece { location, size: size_in_bits / 8 });
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        return Location::Unsupported("kept in pieces rbt cannot follow".into());
    }
    Location::Pieces(pieces)
}

/// A location in one piece.
fn translate_whole(ops: &[Operation<Reader<'_>>], frame_base: Option<Base>) -> Location {
    use Operation as Op;
    match ops {
        [] => Location::OptimizedOut,
        [Op::Register { register }] => Location::Register(register.0),
        [Op::RegisterOffset { register, offset, .. }] => {
            Location::Memory { base: Base::Register(register.0), offset: *offset }
        }
        [Op::RegisterOffset { register, offset, .. }, Op::StackValue] => {
            Location::Value { base: Base::Register(register.0), offset: *offset }
        }
        [Op::FrameOffset { offset }] => match frame_base {
            Some(base) => Location::Memory { base, offset: *offset },
            None => Location::Unsupported("a frame base rbt cannot follow".into()),
        },
        [Op::Address { address }] => Location::Memory { base: Base::Static, offset: *address as i64 },
        [Op::UnsignedConstant { value }, Op::StackValue] => Location::Constant(*value),
        [Op::SignedConstant { value }, Op::StackValue] => Location::Constant(*value as u64),
        _ => computed(ops, frame_base),
    }
}

/// An expression of stack operations, run on symbols instead of numbers: what it computes,
/// for BPF to compute at the probe. Branches, entry values, TLS and typed operations are not
/// followed.
fn computed(ops: &[Operation<Reader<'_>>], frame_base: Option<Base>) -> Location {
    use Operation as Op;
    let unsupported = || {
        if ops.iter().any(|op| matches!(op, Op::EntryValue { .. })) {
            Location::Unsupported("known only as its value on entry to the function, where rbt cannot find it".into())
        } else {
            Location::Unsupported("a computed location rbt cannot follow".into())
        }
    };
    let mut stack: Vec<Computed> = Vec::new();
    let binary = |stack: &mut Vec<Computed>, op: ComputedOp| -> Option<()> {
        let rhs = stack.pop()?;
        let lhs = stack.pop()?;
        stack.push(Computed::Binary(op, Box::new(lhs), Box::new(rhs)));
        Some(())
    };
    let base = |b: Base| match b {
        Base::Register(r) => Computed::Register(r),
        Base::Cfa => Computed::Cfa,
        Base::Static => Computed::Static(0),
    };
    let plus = |e: Computed, offset: i64| {
        #[allow(clippy::cast_sign_loss, reason = "added modulo 2^64")]
        let offset = Computed::Constant(offset as u64);
        Computed::Binary(ComputedOp::Add, Box::new(e), Box::new(offset))
    };
    for (i, op) in ops.iter().enumerate() {
        let ok = match op {
            Op::RegisterOffset { register, offset, base_type } if base_type.0 == 0 => {
                stack.push(plus(Computed::Register(register.0), *offset));
                Some(())
            }
            Op::FrameOffset { offset } => frame_base.map(|b| stack.push(plus(base(b), *offset))),
            Op::CallFrameCFA => {
                stack.push(Computed::Cfa);
                Some(())
            }
            Op::UnsignedConstant { value } => {
                stack.push(Computed::Constant(*value));
                Some(())
            }
            #[allow(clippy::cast_sign_loss, reason = "two's complement")]
            Op::SignedConstant { value } => {
                stack.push(Computed::Constant(*value as u64));
                Some(())
            }
            Op::Address { address } => {
                stack.push(Computed::Static(*address));
                Some(())
            }
            Op::PlusConstant { value } => stack.pop().map(|e| {
                #[allow(clippy::cast_possible_wrap, reason = "added modulo 2^64")]
                stack.push(plus(e, *value as i64));
            }),
            Op::Plus => binary(&mut stack, ComputedOp::Add),
            Op::Minus => binary(&mut stack, ComputedOp::Sub),
            Op::Mul => binary(&mut stack, ComputedOp::Mul),
            Op::And => binary(&mut stack, ComputedOp::And),
            Op::Or => binary(&mut stack, ComputedOp::Or),
            Op::Xor => binary(&mut stack, ComputedOp::Xor),
            Op::Shl => binary(&mut stack, ComputedOp::Shl),
            Op::Shr => binary(&mut stack, ComputedOp::Shr),
            Op::Shra => binary(&mut stack, ComputedOp::Sar),
            Op::Neg => stack.pop().map(|e| {
                stack.push(Computed::Binary(ComputedOp::Sub, Box::new(Computed::Constant(0)), Box::new(e)));
            }),
            Op::Not => stack.pop().map(|e| {
                stack.push(Computed::Binary(ComputedOp::Xor, Box::new(e), Box::new(Computed::Constant(u64::MAX))));
            }),
            Op::Deref { base_type, size, space: false } if base_type.0 == 0 && [1, 2, 4, 8].contains(size) => {
                stack.pop().map(|addr| stack.push(Computed::Deref { addr: Box::new(addr), size: *size }))
            }
            Op::Pick { index } => {
                let at = stack.len().checked_sub(1 + usize::from(*index));
                at.map(|at| stack.push(stack[at].clone()))
            }
            Op::Drop => stack.pop().map(drop),
            Op::Swap => (stack.len() >= 2).then(|| {
                let n = stack.len();
                stack.swap(n - 1, n - 2);
            }),
            Op::Rot => (stack.len() >= 3).then(|| {
                let n = stack.len();
                stack[n - 3..].rotate_right(1);
            }),
            Op::Nop => Some(()),
            Op::EntryValue { expression } => entry_register(expression.slice()).map(|r| {
                stack.push(Computed::EntryRegister(r));
            }),
            Op::StackValue if i + 1 == ops.len() => {
                return match (stack.pop(), stack.is_empty()) {
                    (Some(expr), true) => Location::Computed { expr, value: true },
                    _ => unsupported(),
                };
            }
            _ => None,
        };
        if ok.is_none() {
            return unsupported();
        }
    }
    match (stack.pop(), stack.is_empty()) {
        (Some(expr), true) => Location::Computed { expr, value: false },
        _ => unsupported(),
    }
}

/// The register `DW_OP_entry_value`'s expression names, when it is only that (`DW_OP_regN`,
/// `DW_OP_regx N`): the value the register held on entry.
fn entry_register(expression: &[u8]) -> Option<u16> {
    match expression {
        [op] if (0x50..0x70).contains(op) => Some(u16::from(op - 0x50)),
        [0x90, n] if *n < 0x80 => Some(u16::from(*n)),
        _ => None,
    }
}

impl std::fmt::Display for Computed {
    /// As C writes it, fully parenthesized: `(rbx*3)`, `*(u32 *)(rsp+8)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Computed::Register(r) => write!(f, "{}", register_name(*r)),
            Computed::Cfa => write!(f, "CFA"),
            Computed::Constant(v) if *v > u64::from(u32::MAX) => write!(f, "{}", *v as i64),
            Computed::Constant(v) => write!(f, "{v}"),
            Computed::Static(a) => write!(f, "{a:#x}"),
            Computed::Deref { addr, size } => write!(f, "*(u{} *){addr}", u32::from(*size) * 8),
            Computed::EntryRegister(r) => write!(f, "{}@entry", register_name(*r)),
            Computed::Binary(op, lhs, rhs) => {
                let op = match op {
                    ComputedOp::Add => "+",
                    ComputedOp::Sub => "-",
                    ComputedOp::Mul => "*",
                    ComputedOp::And => "&",
                    ComputedOp::Or => "|",
                    ComputedOp::Xor => "^",
                    ComputedOp::Shl => "<<",
                    ComputedOp::Shr => ">>",
                    ComputedOp::Sar => " >>(signed) ",
                };
                write!(f, "({lhs}{op}{rhs})")
            }
        }
    }
}

impl std::fmt::Display for Location {
    /// Where the variable is, as `-lv` shows it: `in rdx`, `at CFA-32`, `rbx+1`, `optimized out`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base = |b: &Base| match b {
            Base::Register(r) => register_name(*r).to_owned(),
            Base::Cfa => "CFA".to_owned(),
            Base::Static => String::new(),
        };
        let signed = |o: i64| {
            if o < 0 {
                format!("-{}", o.unsigned_abs())
            } else if o > 0 {
                format!("+{o}")
            } else {
                String::new()
            }
        };
        match self {
            Location::Register(r) => write!(f, "in {}", register_name(*r)),
            Location::Memory { base: Base::Static, offset } => write!(f, "at {:#x}", *offset as u64),
            Location::Memory { base: b, offset } => write!(f, "at {}{}", base(b), signed(*offset)),
            Location::Value { base: b, offset } => write!(f, "value {}{}", base(b), signed(*offset)),
            Location::Constant(v) => write!(f, "constant {v}"),
            Location::Computed { expr, value: true } => write!(f, "value {expr}"),
            Location::Computed { expr, value: false } => write!(f, "at {expr}"),
            Location::OptimizedOut => write!(f, "optimized out"),
            Location::Pieces(pieces) => {
                write!(f, "pieces:")?;
                for (i, piece) in pieces.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{} bytes {}", piece.size, piece.location)?;
                }
                Ok(())
            }
            Location::Unsupported(why) => write!(f, "{why}"),
        }
    }
}

/// x86-64's name for DWARF register `n`.
fn register_name(n: u16) -> &'static str {
    const NAMES: [&str; 17] = [
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "rip",
    ];
    NAMES.get(usize::from(n)).copied().unwrap_or("a register rbt does not name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use gimli::{EndianSlice, Expression, LittleEndian};

    fn ops(bytes: &[u8]) -> Vec<Operation<Reader<'_>>> {
        let encoding = gimli::Encoding { address_size: 8, format: gimli::Format::Dwarf32, version: 5 };
        let mut ops = Expression(EndianSlice::new(bytes, LittleEndian)).operations(encoding);
        let mut out = Vec::new();
        while let Ok(Some(op)) = ops.next() {
            out.push(op);
        }
        out
    }

    #[test]
    fn the_shapes_compilers_give_are_translated() {
        // DW_OP_reg5 (rdi)
        assert_eq!(translate(&ops(&[0x55]), None), Location::Register(5));
        // DW_OP_fbreg -20 with the CFA as frame base
        assert_eq!(translate(&ops(&[0x91, 0x6c]), Some(Base::Cfa)), Location::Memory { base: Base::Cfa, offset: -20 });
        // DW_OP_breg7 (rsp) +8
        assert_eq!(translate(&ops(&[0x77, 0x08]), None), Location::Memory { base: Base::Register(7), offset: 8 });
        // DW_OP_breg3 (rbx) +1; DW_OP_stack_value
        assert_eq!(translate(&ops(&[0x73, 0x01, 0x9f]), None), Location::Value { base: Base::Register(3), offset: 1 });
        // DW_OP_lit7; DW_OP_stack_value
        assert_eq!(translate(&ops(&[0x37, 0x9f]), None), Location::Constant(7));
        // DW_OP_reg3; DW_OP_piece 8; DW_OP_piece 8 (the second half optimized out)
        assert_eq!(
            translate(&ops(&[0x53, 0x93, 0x08, 0x93, 0x08]), None),
            Location::Pieces(vec![
                Piece { location: Location::Register(3), size: 8 },
                Piece { location: Location::OptimizedOut, size: 8 },
            ])
        );
        // DW_OP_reg0; DW_OP_bit_piece 3 0
        assert_eq!(
            translate(&ops(&[0x50, 0x9d, 0x03, 0x00]), None),
            Location::Unsupported("kept in bit pieces".into())
        );
        assert_eq!(translate(&[], None), Location::OptimizedOut);
    }

    #[test]
    fn computed_locations_are_evaluated_on_symbols() {
        // DW_OP_breg5 (rdi) 0; DW_OP_lit3; DW_OP_mul; DW_OP_stack_value: rdi*3
        let location = translate(&ops(&[0x75, 0x00, 0x33, 0x1e, 0x9f]), None);
        assert_eq!(location.to_string(), "value ((rdi+0)*3)");
        // DW_OP_breg3 (rbx) 0; DW_OP_breg6 (rbp) 0; DW_OP_plus; DW_OP_deref_size 4; DW_OP_stack_value
        let location = translate(&ops(&[0x73, 0x00, 0x76, 0x00, 0x22, 0x94, 0x04, 0x9f]), None);
        assert_eq!(location.to_string(), "value *(u32 *)((rbx+0)+(rbp+0))");
        // DW_OP_breg0 (rax) 0; DW_OP_dup; DW_OP_plus (rax+rax), as an address
        let location = translate(&ops(&[0x70, 0x00, 0x12, 0x22]), None);
        assert_eq!(location.to_string(), "at ((rax+0)+(rax+0))");
        // DW_OP_entry_value(DW_OP_reg5); DW_OP_stack_value: rdi as the function was entered
        let location = translate(&ops(&[0xa3, 0x01, 0x55, 0x9f]), None);
        assert_eq!(location.to_string(), "value rdi@entry");
        // A branch is not followed: DW_OP_lit0; DW_OP_bra 0; DW_OP_stack_value
        assert!(matches!(translate(&ops(&[0x30, 0x28, 0x00, 0x00, 0x9f]), None), Location::Unsupported(_)));
        // An unbalanced stack: DW_OP_plus alone
        assert!(matches!(translate(&ops(&[0x22]), None), Location::Unsupported(_)));
    }

    #[test]
    fn locations_are_shown_in_words() {
        assert_eq!(Location::Register(1).to_string(), "in rdx");
        assert_eq!(Location::Memory { base: Base::Cfa, offset: -32 }.to_string(), "at CFA-32");
        assert_eq!(Location::Value { base: Base::Register(3), offset: 1 }.to_string(), "value rbx+1");
        assert_eq!(Location::Memory { base: Base::Static, offset: 0x4010 }.to_string(), "at 0x4010");
        assert_eq!(Location::OptimizedOut.to_string(), "optimized out");
        let pieces = Location::Pieces(vec![
            Piece { location: Location::Register(3), size: 8 },
            Piece { location: Location::Memory { base: Base::Cfa, offset: -40 }, size: 8 },
        ]);
        assert_eq!(pieces.to_string(), "pieces: 8 bytes in rbx, 8 bytes at CFA-40");
    }
}
