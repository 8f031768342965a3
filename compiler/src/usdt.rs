//! USDT probes: what the catalog reports of a binary's `.note.stapsdt` notes, and the parser of
//! their argument specs. A note's arguments read like this (`readelf -n`):
//!
//! ```text
//! Arguments: -4@%ebx -4@%ecx -8@%rdx -4@$5 -8@total(%rip)
//! Arguments: -8@-8(%rbp) -8@-32(%rbp)
//! ```
//!
//! Each is `[-]SIZE@OPERAND` in GNU assembler syntax: a negative size is a signed value, and the
//! operand is a register, a constant (`$5`) or memory (`-8(%rbp)`, `sym(%rip)`).

/// One USDT probe of a binary, resolved for attaching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsdtProbe {
    /// The binary's path as the spec wrote it (a glob's match, a library's path from the ld.so
    /// cache, `/proc/PID/root/...` with `-p`); the kernel resolves it when attaching.
    pub path: String,
    pub provider: String,
    pub name: String,
    /// Where the probe's instruction is in the file (the uprobe's offset).
    pub file_offset: u64,
    /// The file offset of the probe's semaphore, which the kernel increments while the uprobe
    /// is attached (`ref_ctr_offset`); `None` when the probe has none.
    pub semaphore_offset: Option<u64>,
    pub args: Vec<UsdtArg>,
}

/// One argument of a USDT probe: how wide it is and where its value is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsdtArg {
    /// 1, 2, 4 or 8 bytes.
    pub size: u8,
    pub signed: bool,
    pub location: UsdtLocation,
}

/// Where a USDT argument's value is when the probe fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsdtLocation {
    /// A register: its offset in x86-64's `struct pt_regs`, and how far up the 8-byte slot its
    /// bits start (8 for `%ah`-style registers, 0 otherwise).
    Register { regs_offset: u32, shift: u8 },
    /// A constant (`$5`).
    Constant(i64),
    /// Memory at a register's value plus a displacement (`-8(%rbp)`).
    Memory { regs_offset: u32, displacement: i64 },
    /// Memory at a base register plus an index register times a scale (1, 2, 4 or 8) plus a
    /// displacement (`-88(%rsp,%rax,8)`: an element of an array on the stack).
    IndexedMemory { base_offset: u32, index_offset: u32, scale: u8, displacement: i64 },
    /// Memory at the probe's address plus `delta` (`sym(%rip)`: the symbol's virtual address
    /// less the probe's, so that it holds wherever the binary is loaded).
    IpRelative { delta: i64 },
}

/// `struct pt_regs` offset of `ip` on x86-64.
pub const REGS_IP: u32 = 128;

/// Parses a note's argument string. `pc` is the probe's virtual address and `symbol` resolves a
/// name to its virtual address, for `sym(%rip)` operands.
pub fn parse_arguments(text: &str, pc: u64, symbol: &dyn Fn(&str) -> Option<u64>) -> Result<Vec<UsdtArg>, String> {
    text.split_whitespace().map(|arg| parse_argument(arg, pc, symbol)).collect()
}

fn parse_argument(arg: &str, pc: u64, symbol: &dyn Fn(&str) -> Option<u64>) -> Result<UsdtArg, String> {
    let bad = |why: &str| format!("cannot read USDT argument '{arg}': {why}");
    let (size, operand) = arg.split_once('@').ok_or_else(|| bad("no SIZE@ before the operand"))?;
    let (signed, digits) = match size.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, size),
    };
    let size: u8 = match digits.parse() {
        Ok(n @ (1 | 2 | 4 | 8)) => n,
        _ => return Err(bad("the size is not 1, 2, 4 or 8")),
    };
    let location = if let Some(value) = operand.strip_prefix('$') {
        // The assembler writes the constant's bits as a 64-bit number (`4@$-202182160` for the
        // u32 4092785136); the argument is its SIZE bytes, widened as its sign says.
        let value = parse_integer(value).ok_or_else(|| bad("not a constant"))?;
        UsdtLocation::Constant(truncate(value, size, signed))
    } else if let Some(name) = operand.strip_prefix('%') {
        let (regs_offset, shift) = register(name).ok_or_else(|| bad("unknown register"))?;
        UsdtLocation::Register { regs_offset, shift }
    } else if let Some((displacement, rest)) = operand.split_once('(') {
        let base =
            rest.strip_suffix(')').and_then(|r| r.strip_prefix('%')).ok_or_else(|| bad("not a memory operand"))?;
        if let Some((base, rest)) = base.split_once(',') {
            let (index, scale) = rest.split_once(',').unwrap_or((rest, "1"));
            let base_offset = full_register(base).ok_or_else(|| bad("unknown base register"))?;
            let index_offset =
                index.strip_prefix('%').and_then(full_register).ok_or_else(|| bad("unknown index register"))?;
            let scale = match scale {
                "1" | "2" | "4" | "8" => scale.parse().unwrap_or(1),
                _ => return Err(bad("the scale is not 1, 2, 4 or 8")),
            };
            let displacement = if displacement.is_empty() {
                0
            } else {
                parse_integer(displacement).ok_or_else(|| bad("bad displacement"))?
            };
            return Ok(UsdtArg {
                size,
                signed,
                location: UsdtLocation::IndexedMemory { base_offset, index_offset, scale, displacement },
            });
        }
        if base == "rip" {
            let (name, addend) = match displacement.find(['+', '-']) {
                Some(at) => {
                    (&displacement[..at], parse_integer(&displacement[at..]).ok_or_else(|| bad("bad displacement"))?)
                }
                None => (displacement, 0),
            };
            let address = if name.is_empty() {
                // A bare displacement is relative to the next instruction, which rbt cannot
                // know without decoding the probe's instruction.
                return Err(bad("a numeric %rip displacement"));
            } else {
                symbol(name).ok_or_else(|| bad(&format!("no symbol '{name}' in the binary")))?
            };
            #[allow(clippy::cast_possible_wrap, reason = "addresses of one binary differ by far less than 2^63")]
            let delta = address.wrapping_add(addend as u64).wrapping_sub(pc) as i64;
            UsdtLocation::IpRelative { delta }
        } else {
            let (regs_offset, shift) = register(base).ok_or_else(|| bad("unknown register"))?;
            if shift != 0 {
                return Err(bad("an 8-bit register as a base"));
            }
            let displacement = if displacement.is_empty() {
                0
            } else {
                parse_integer(displacement).ok_or_else(|| bad("bad displacement"))?
            };
            UsdtLocation::Memory { regs_offset, displacement }
        }
    } else {
        return Err(bad("unknown operand"));
    };
    Ok(UsdtArg { size, signed, location })
}

/// `value`'s low `size` bytes, sign- or zero-extended to 64 bits.
fn truncate(value: i64, size: u8, signed: bool) -> i64 {
    if size >= 8 {
        return value;
    }
    let bits = u32::from(size) * 8;
    let shift = 64 - bits;
    if signed {
        (value << shift) >> shift
    } else {
        #[allow(clippy::cast_possible_wrap, reason = "fewer than 64 bits")]
        let zero_extended = ((value as u64) << shift >> shift) as i64;
        zero_extended
    }
}

/// A register usable as a memory operand's base or index: any width but the 8-bit high ones
/// (the address is computed from the whole 64-bit register).
fn full_register(name: &str) -> Option<u32> {
    match register(name)? {
        (offset, 0) => Some(offset),
        _ => None,
    }
}

/// `5`, `-16`, `0x10`, `-0x10`.
fn parse_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    #[allow(clippy::cast_possible_wrap, reason = "two's complement, as the assembler wrote it")]
    let value = magnitude as i64;
    Some(if negative { value.wrapping_neg() } else { value })
}

/// An x86-64 register name (any width) as its `struct pt_regs` offset and bit shift.
fn register(name: &str) -> Option<(u32, u8)> {
    // The legacy registers by their 64-, 32-, 16- and 8-bit names (and the high bytes).
    const LEGACY: &[(u32, [&str; 4], Option<&str>)] = &[
        (80, ["rax", "eax", "ax", "al"], Some("ah")),
        (40, ["rbx", "ebx", "bx", "bl"], Some("bh")),
        (88, ["rcx", "ecx", "cx", "cl"], Some("ch")),
        (96, ["rdx", "edx", "dx", "dl"], Some("dh")),
        (104, ["rsi", "esi", "si", "sil"], None),
        (112, ["rdi", "edi", "di", "dil"], None),
        (32, ["rbp", "ebp", "bp", "bpl"], None),
        (152, ["rsp", "esp", "sp", "spl"], None),
    ];
    for (offset, names, high) in LEGACY {
        if names.contains(&name) {
            return Some((*offset, 0));
        }
        if *high == Some(name) {
            return Some((*offset, 8));
        }
    }
    if name == "rip" {
        return Some((REGS_IP, 0));
    }
    // r8..r15, with the suffixes d, w, b for 32, 16 and 8 bits.
    let number = name.strip_prefix('r')?.trim_end_matches(['d', 'w', 'b']);
    const NUMBERED: [u32; 8] = [72, 64, 56, 48, 24, 16, 8, 0];
    let n: usize = number.parse().ok()?;
    let suffix = &name[1 + number.len()..];
    (8..=15).contains(&n).then_some(())?;
    matches!(suffix, "" | "d" | "w" | "b").then_some((NUMBERED[n - 8], 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<UsdtArg>, String> {
        parse_arguments(text, 0x1000, &|name| (name == "total").then_some(0x4010))
    }

    fn arg(size: u8, signed: bool, location: UsdtLocation) -> UsdtArg {
        UsdtArg { size, signed, location }
    }

    #[test]
    fn registers_of_every_width() {
        let args = parse("-4@%ebx 8@%rax 2@%r9w 1@%ah -1@%r15b 8@%rsp 4@%r10d").expect("parses");
        assert_eq!(
            args,
            [
                arg(4, true, UsdtLocation::Register { regs_offset: 40, shift: 0 }),
                arg(8, false, UsdtLocation::Register { regs_offset: 80, shift: 0 }),
                arg(2, false, UsdtLocation::Register { regs_offset: 64, shift: 0 }),
                arg(1, false, UsdtLocation::Register { regs_offset: 80, shift: 8 }),
                arg(1, true, UsdtLocation::Register { regs_offset: 0, shift: 0 }),
                arg(8, false, UsdtLocation::Register { regs_offset: 152, shift: 0 }),
                arg(4, false, UsdtLocation::Register { regs_offset: 56, shift: 0 }),
            ]
        );
    }

    #[test]
    fn constants_and_memory() {
        let args = parse("-4@$5 8@$-0x10 -8@-16(%rbp) 4@(%rdi) 8@0x18(%r12)").expect("parses");
        assert_eq!(
            args,
            [
                arg(4, true, UsdtLocation::Constant(5)),
                arg(8, false, UsdtLocation::Constant(-16)),
                arg(8, true, UsdtLocation::Memory { regs_offset: 32, displacement: -16 }),
                arg(4, false, UsdtLocation::Memory { regs_offset: 112, displacement: 0 }),
                arg(8, false, UsdtLocation::Memory { regs_offset: 24, displacement: 24 }),
            ]
        );
    }

    #[test]
    fn symbols_relative_to_the_probe() {
        let args = parse("-8@total(%rip) 4@total+8(%rip)").expect("parses");
        assert_eq!(
            args,
            [
                arg(8, true, UsdtLocation::IpRelative { delta: 0x3010 }),
                arg(4, false, UsdtLocation::IpRelative { delta: 0x3018 })
            ]
        );
    }

    #[test]
    fn constants_keep_their_size_and_sign() {
        let args = parse("4@$-202182160 -4@$-202182160 2@$-3600 -2@$-3600 1@$-16 -1@$-16 8@$-16").expect("parses");
        let values: Vec<UsdtLocation> = args.into_iter().map(|a| a.location).collect();
        let expected = [4_092_785_136, -202_182_160, 61936, -3600, 240, -16, -16].map(UsdtLocation::Constant);
        assert_eq!(values, expected);
    }

    #[test]
    fn indexed_memory() {
        let args = parse("8@-88(%rsp,%rax,8) -4@(%rdi,%rsi) 2@16(%rbx,%r9,2)").expect("parses");
        let at = |base_offset, index_offset, scale, displacement| UsdtLocation::IndexedMemory {
            base_offset,
            index_offset,
            scale,
            displacement,
        };
        assert_eq!(
            args,
            [arg(8, false, at(152, 80, 8, -88)), arg(4, true, at(112, 104, 1, 0)), arg(2, false, at(40, 64, 2, 16))]
        );
    }

    #[test]
    fn mistakes_name_the_argument() {
        for bad in ["3@%rax", "8@%xmm0", "8%rax", "8@nowhere(%rip)", "8@8(%rax,%rbx,3)", "8@-8(%ah)", "8@%r16"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
        assert_eq!(parse("").expect("an empty spec is a probe without arguments"), []);
    }
}
