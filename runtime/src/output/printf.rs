//! The printf engine: bpftrace 0.17's `FormatString::format` with glibc `snprintf` semantics,
//! rendering a format the compiler parsed ([`compiler::format`], which describes the parts and
//! directives).
//!
//! Each part with an argument goes through `snprintf`; the text after the last conversion prints
//! verbatim. Consequences reproduced here, with what 0.17 prints:
//! - `%%` is only collapsed inside a part that reaches `snprintf`: `printf("%d%%\n", 5)` → `5%%`,
//!   `printf("100%%\n")` → `100%%`, but `printf("%% %d\n", 5)` → `% 5`.
//! - Each part's output stops at its first NUL (bpftrace prints it as a C string), so `%c` of 0
//!   prints nothing, and `%-5c` of 0 loses its padding: `printf("%-5c|%5c|\n", 0, 0)` → `|    |`.
//! - Integer arguments travel as 64-bit varargs and are read back per length modifier, so `%d` shows
//!   the low 32 bits signed, `%hhd` of 300 → `44`, `%hd` of 70000 → `4464`, `%u` of -1 →
//!   `4294967295`, `%c` of 0x142 → `B`, `%p` of 0 → `(nil)`.
//! - glibc ignores the `0` flag for `%s`, `%c` and `(nil)`: `%010s` pads with spaces.
//! - `%r` prints a buffer with non-printable bytes as `\xNN`, `%rx` every byte as `\xNN`, `%rh` as
//!   space-separated hex (`61 62`). With a width (`%5r`) glibc sees an unknown conversion and prints
//!   the directive itself.
//! - Text before a part's conversion also goes through `snprintf`. A stray directive there that is
//!   not a bpftrace conversion (`%+d`, `%#x`, `%i`) consumes the part's argument and leaves the real
//!   conversion reading a garbage register (`printf("%+d %d\n", 5)` printed `+5 -2134034064`). rbt
//!   prints nothing for the starved directive; floating-point directives (`%f`) read no integer
//!   argument and also print nothing. `*` widths, `%n` and `%m` are printed literally.

use super::bytes::hex_format_buffer;
use compiler::format::{self, parse_printf, Count, Directive, PrintfFormat};

/// One printf argument, as read from the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintfArg {
    Int(i64),
    UInt(u64),
    /// String bytes; anything from the first NUL on is ignored.
    Str(Vec<u8>),
    /// A `buf()` value, for `%r`, `%rx`, `%rh`.
    Buffer(Vec<u8>),
}

/// Formats a printf call exactly like bpftrace 0.17, parsing `fmt` first. `fmt` has its escapes
/// already resolved. Returns bytes because strings from the kernel need not be UTF-8.
pub fn format_printf(fmt: impl AsRef<[u8]>, args: &[PrintfArg]) -> Vec<u8> {
    let fmt = fmt.as_ref();
    let mut out = Vec::new();
    render_printf(fmt, &parse_printf(fmt), args, &mut out);
    out
}

/// Appends a printf call's output to `out`; `format` is `text` as [`parse_printf`] read it (the
/// compiled program carries it, so events never parse the format again).
pub fn render_printf(text: &[u8], format: &PrintfFormat, args: &[PrintfArg], out: &mut Vec<u8>) {
    for (part, arg) in format.parts.iter().zip(args) {
        let start = out.len();
        render_part(&text[part.span.clone()], &part.directives, arg, out);
        if let Some(nul) = out[start..].iter().position(|&b| b == 0) {
            out.truncate(start + nul);
        }
    }
    // bpftrace prints one more part verbatim (normally the text after the last conversion).
    if let Some(rest) = format.parts.get(args.len()) {
        out.extend_from_slice(&text[rest.span.clone()]);
    }
}

/// What `snprintf` receives for one part: the integer bits or the string bytes.
enum CArg {
    Int(u64),
    Str(Vec<u8>),
}

/// `snprintf(part, arg)`; `directives` are the part's, as the compiler read them.
fn render_part(part: &[u8], directives: &[Directive], arg: &PrintfArg, out: &mut Vec<u8>) {
    let last_percent = part.iter().rposition(|&b| b == b'%').unwrap_or(0);
    let c_arg = match (&part[last_percent..], arg) {
        (token @ (b"%r" | b"%rx" | b"%rh"), PrintfArg::Buffer(bytes)) => {
            let keep_ascii = token == b"%r";
            let escape_hex = token != b"%rh";
            let part = replace_buffer_directives(part);
            let c_arg = CArg::Str(hex_format_buffer(bytes, keep_ascii, escape_hex));
            // The replaced text is new, so it is read again.
            return c_snprintf(&part, &format::directives(&part), &c_arg, out);
        }
        (_, PrintfArg::Buffer(bytes)) => CArg::Str(hex_format_buffer(bytes, true, true)),
        (_, PrintfArg::Int(v)) => CArg::Int(u64::from_ne_bytes(v.to_ne_bytes())),
        (_, PrintfArg::UInt(v)) => CArg::Int(*v),
        (_, PrintfArg::Str(s)) => CArg::Str(s.clone()),
    };
    c_snprintf(part, directives, &c_arg, out);
}

/// bpftrace's `std::regex_replace(part, "%r[x|h]?", "%s")` (the class really includes `|`).
fn replace_buffer_directives(part: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        if part[i] == b'%' && part.get(i + 1) == Some(&b'r') {
            out.extend_from_slice(b"%s");
            i += 2;
            if matches!(part.get(i), Some(b'x' | b'|' | b'h')) {
                i += 1;
            }
        } else {
            out.push(part[i]);
            i += 1;
        }
    }
    out
}

/// glibc `snprintf(buf, size, part, arg)` for a part with one integer-class argument, appended to
/// `out`.
fn c_snprintf(part: &[u8], directives: &[Directive], arg: &CArg, out: &mut Vec<u8>) {
    let mut arg = Some(arg);
    let mut pos = 0;
    for directive in directives {
        out.extend_from_slice(&part[pos..directive.span.start]);
        pos = directive.span.end;
        match directive.conversion {
            _ if directive.has_star() => out.extend_from_slice(&part[directive.span.clone()]),
            Some(b'%') => out.push(b'%'),
            Some(b'd' | b'i' | b'u' | b'o' | b'x' | b'X' | b'c' | b'p' | b's') => {
                if let Some(arg) = arg.take() {
                    render(directive, arg, out);
                }
            }
            // Floating-point conversions read an SSE register, not the integer argument.
            Some(b'e' | b'E' | b'f' | b'F' | b'g' | b'G' | b'a' | b'A') => {}
            _ => out.extend_from_slice(&part[directive.span.clone()]),
        }
    }
    out.extend_from_slice(&part[pos..]);
}

/// Renders one argument-consuming directive. A string argument for an integer conversion (or the
/// reverse) cannot pass the checker; it renders as nothing.
fn render(d: &Directive, arg: &CArg, out: &mut Vec<u8>) {
    let Some(letter) = d.conversion else { return };
    match (letter, arg) {
        (b's', CArg::Str(s)) => {
            let s = super::bytes::c_str(s);
            let s = d.precision.map(Count::value).map_or(s, |p| &s[..p.min(s.len())]);
            pad(d, b"", s, false, out);
        }
        (b'c', CArg::Int(bits)) => pad(d, b"", &[bits.to_le_bytes()[0]], false, out),
        (b'p', CArg::Int(0)) => pad(d, b"", b"(nil)", false, out),
        (b'p', CArg::Int(bits)) => {
            let sign: &[u8] = if d.has_flag('+') {
                b"+"
            } else if d.has_flag(' ') {
                b" "
            } else {
                b""
            };
            let digits = with_precision(d, format!("{bits:x}"));
            let prefix = [sign, b"0x"].concat();
            pad(d, &prefix, digits.as_bytes(), true, out);
        }
        (b'd' | b'i', CArg::Int(bits)) => {
            let value = signed(*bits, d.length.int_bits());
            let sign: &[u8] = if value < 0 {
                b"-"
            } else if d.has_flag('+') {
                b"+"
            } else if d.has_flag(' ') {
                b" "
            } else {
                b""
            };
            let digits = with_precision(d, value.unsigned_abs().to_string());
            pad(d, sign, digits.as_bytes(), true, out);
        }
        (b'u' | b'o' | b'x' | b'X', CArg::Int(bits)) => {
            let value = unsigned(*bits, d.length.int_bits());
            let digits = match letter {
                b'u' => value.to_string(),
                b'o' => format!("{value:o}"),
                b'x' => format!("{value:x}"),
                _ => format!("{value:X}"),
            };
            let mut digits = with_precision(d, digits);
            let mut prefix: &[u8] = b"";
            if d.has_flag('#') && letter == b'o' && !digits.starts_with('0') {
                digits.insert(0, '0');
            } else if d.has_flag('#') && value != 0 && letter == b'x' {
                prefix = b"0x";
            } else if d.has_flag('#') && value != 0 && letter == b'X' {
                prefix = b"0X";
            }
            pad(d, prefix, digits.as_bytes(), true, out);
        }
        _ => {}
    }
}

/// Applies an integer precision: at least that many digits, and none at all for 0 with precision 0.
fn with_precision(d: &Directive, digits: String) -> String {
    match d.precision.map(Count::value) {
        Some(0) if digits == "0" => String::new(),
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits,
    }
}

/// Pads `prefix + body` to the width: on the right for `-`, with zeros after the prefix for a numeric
/// conversion with `0` and no precision, else with spaces on the left.
fn pad(d: &Directive, prefix: &[u8], body: &[u8], numeric: bool, out: &mut Vec<u8>) {
    let fill = d.width.value().saturating_sub(prefix.len() + body.len());
    if d.has_flag('-') {
        out.extend_from_slice(prefix);
        out.extend_from_slice(body);
        out.resize(out.len() + fill, b' ');
    } else if d.has_flag('0') && numeric && d.precision.is_none() {
        out.extend_from_slice(prefix);
        out.resize(out.len() + fill, b'0');
        out.extend_from_slice(body);
    } else {
        out.resize(out.len() + fill, b' ');
        out.extend_from_slice(prefix);
        out.extend_from_slice(body);
    }
}

/// The argument's low `width` bits, sign-extended (C's conversion of the vararg to the
/// length-modified signed type).
#[allow(clippy::cast_possible_truncation)] // reading the low bits is the point
fn signed(bits: u64, width: u32) -> i64 {
    match width {
        8 => i64::from(bits as i8),
        16 => i64::from(bits as i16),
        32 => i64::from(bits as i32),
        _ => i64::from_ne_bytes(bits.to_ne_bytes()),
    }
}

/// The argument's low `width` bits, zero-extended.
fn unsigned(bits: u64, width: u32) -> u64 {
    match width {
        8 => bits & 0xff,
        16 => bits & 0xffff,
        32 => bits & 0xffff_ffff,
        _ => bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PrintfArg::{Buffer, Int, Str};

    fn f(fmt: &str, args: &[PrintfArg]) -> String {
        String::from_utf8_lossy(&format_printf(fmt, args)).into_owned()
    }

    fn s(text: &str) -> PrintfArg {
        Str(text.as_bytes().to_vec())
    }

    #[test]
    fn length_modifiers_truncate_like_c() {
        assert_eq!(f("%hhd %hd %d %ld\n", &[Int(300), Int(70000), Int(-1), Int(-1)]), "44 4464 -1 -1\n");
        assert_eq!(f("%hhd|%hhd|%hd", &[Int(-129), Int(128), Int(-32769)]), "127|-128|32767");
        assert_eq!(
            f("%hhu %hu %u %lu", &[Int(-1), Int(-1), Int(-1), Int(-1)]),
            "255 65535 4294967295 18446744073709551615"
        );
        assert_eq!(f("%d", &[Int(0x1_0000_0005)]), "5");
        assert_eq!(f("%hhx %hx %hho %llX", &[Int(-1), Int(-1), Int(-1), Int(-1)]), "ff ffff 377 FFFFFFFFFFFFFFFF");
    }

    #[test]
    fn widths_and_precisions() {
        assert_eq!(
            f(
                "[%5d] [%-5d] [%05d] [%5.2d] [%.3s] [%10.3s] [%-10s] [%-5.1s]",
                &[Int(42), Int(42), Int(42), Int(3), s("abcdef"), s("abcdef"), s("ab"), s("xyz")]
            ),
            "[   42] [42   ] [00042] [   03] [abc] [       abc] [ab        ] [x    ]"
        );
        assert_eq!(f("%-08d|%08.3d|%.0d|", &[Int(5), Int(5), Int(0)]), "5       |     005||");
        assert_eq!(f("%.10d|%3.5x", &[Int(-42), Int(255)]), "-0000000042|000ff");
        assert_eq!(f("%010s|", &[s("ab")]), "        ab|");
        assert_eq!(f("%-5d|%05d", &[Int(-1), Int(-42)]), "-1   |-0042");
    }

    #[test]
    fn chars_and_pointers() {
        assert_eq!(f("%c%c", &[Int(65), Int(0x142)]), "AB");
        assert_eq!(f("%5c|%-3c|", &[Int(66), Int(67)]), "    B|C  |");
        assert_eq!(f("a%cb%d\n", &[Int(0), Int(5)]), "ab5\n");
        assert_eq!(f("%-5c|%5c|\n", &[Int(0), Int(0)]), "|    |\n");
        assert_eq!(f("%p %p %p", &[Int(0), Int(4096), Int(-1)]), "(nil) 0x1000 0xffffffffffffffff");
        assert_eq!(
            f("%20p|%-20p|%.5p|%020p", &[Int(16), Int(16), Int(16), Int(16)]),
            "                0x10|0x10                |0x00010|0x000000000000000010"
        );
        assert_eq!(f("%10p|%-8p|", &[Int(0), Int(0)]), "     (nil)|(nil)   |");
    }

    #[test]
    fn percent_signs_depend_on_the_part() {
        assert_eq!(f("%d%%\n", &[Int(5)]), "5%%\n");
        assert_eq!(f("100%%\n", &[]), "100%%\n");
        assert_eq!(f("%% %d\n", &[Int(5)]), "% 5\n");
        assert_eq!(f("%%d\n", &[Int(5)]), "%d\n");
        assert_eq!(f("%5%|%s\n", &[s("t")]), "%|t\n");
        assert_eq!(f("no args %", &[]), "no args %");
    }

    #[test]
    fn stray_directives_take_the_argument() {
        assert_eq!(f("%+d %d\n", &[Int(5)]), "+5 \n");
        assert_eq!(f("%#x|%d", &[Int(255)]), "0xff|");
        assert_eq!(f("%f %d", &[Int(5)]), " 5");
    }

    #[test]
    fn glibc_flags_in_directives() {
        let c = |fmt: &str, v: u64| {
            let mut out = Vec::new();
            c_snprintf(fmt.as_bytes(), &format::directives(fmt.as_bytes()), &CArg::Int(v), &mut out);
            String::from_utf8_lossy(&out).into_owned()
        };
        assert_eq!(c("[%#x]", 255), "[0xff]");
        assert_eq!(c("[%#x]", 0), "[0]");
        assert_eq!(c("[%#o]", 8), "[010]");
        assert_eq!(c("[%#.0o]", 0), "[0]");
        assert_eq!(c("[%#.3o]", 8), "[010]");
        assert_eq!(c("[%#05x]", 10), "[0x00a]");
        assert_eq!(c("[%-#8x]", 10), "[0xa     ]");
        assert_eq!(c("[%+.0d]", 0), "[+]");
        assert_eq!(c("[% .0d]", 0), "[ ]");
        assert_eq!(c("[%+5.0d]", 0), "[    +]");
        assert_eq!(c("[%+u]", 5), "[5]");
        assert_eq!(c("[%+p]", 16), "[+0x10]");
        assert_eq!(c("[%05p]", 16), "[0x010]");
        assert_eq!(c("[%0-5d]", 1), "[1    ]");
        assert_eq!(c("[%-+05d]", 2), "[+2   ]");
        assert_eq!(c("[%0.3d]", 5), "[005]");
        assert_eq!(c("[%08.3x]", 6), "[     006]");
        assert_eq!(c("[%#08x]", 7), "[0x000007]");
        assert_eq!(c("[%05c]", u64::from(b'a')), "[    a]");
        assert_eq!(c("[%y][%5y][%ll%]", 0), "[%y][%5y][%]");
    }

    #[test]
    fn buffers() {
        assert_eq!(
            f("%r|%rx|%rh\n", &[Buffer(b"a\x01b".to_vec()), Buffer(b"ab".to_vec()), Buffer(b"ab".to_vec())]),
            "a\\x01b|\\x61\\x62|61 62\n"
        );
        assert_eq!(f("%5r|", &[Buffer(b"ab".to_vec())]), "%5r|");
    }
}
