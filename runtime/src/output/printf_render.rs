//! The printf engine: bpftrace 0.17's `FormatString::format` with glibc `snprintf` semantics.
//!
//! bpftrace splits the format after each conversion into parts (`"a %d b %s\n"` → `"a %d"`,
//! `" b %s"`, `"\n"`), hands part *i* with argument *i* to `snprintf`, and prints the text after the
//! last conversion verbatim. Consequences reproduced here, with what 0.17 prints:
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

use super::printf::parse_printf_format;

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

/// Formats a printf call exactly like bpftrace 0.17. `fmt` has its escapes already resolved.
/// Returns bytes because strings from the kernel need not be UTF-8.
pub fn format_printf(fmt: impl AsRef<[u8]>, args: &[PrintfArg]) -> Vec<u8> {
    let mut out = Vec::new();
    PreparedPrintf::new(fmt).format_into(args, &mut out);
    out
}

/// A format string split once into the parts bpftrace hands to `snprintf` one by one, so the
/// per-event path does not parse the format again.
#[derive(Debug, Clone)]
pub struct PreparedPrintf {
    parts: Vec<Vec<u8>>,
}

impl PreparedPrintf {
    pub fn new(fmt: impl AsRef<[u8]>) -> PreparedPrintf {
        let fmt = fmt.as_ref();
        let mut parts = Vec::new();
        let mut last = 0;
        for conversion in parse_printf_format(fmt) {
            parts.push(fmt[last..conversion.span.end].to_vec());
            last = conversion.span.end;
        }
        if last != fmt.len() {
            parts.push(fmt[last..].to_vec());
        }
        PreparedPrintf { parts }
    }

    /// Appends the formatted text to `out`.
    pub fn format_into(&self, args: &[PrintfArg], out: &mut Vec<u8>) {
        for (part, arg) in self.parts.iter().zip(args) {
            let mut rendered = format_part(part, arg);
            if let Some(nul) = rendered.iter().position(|&b| b == 0) {
                rendered.truncate(nul);
            }
            out.extend_from_slice(&rendered);
        }
        // bpftrace prints one more part verbatim (normally the text after the last conversion).
        if let Some(rest) = self.parts.get(args.len()) {
            out.extend_from_slice(rest);
        }
    }
}

/// What `snprintf` receives for one part: the integer bits or the string bytes.
enum CArg {
    Int(u64),
    Str(Vec<u8>),
}

fn format_part(part: &[u8], arg: &PrintfArg) -> Vec<u8> {
    let last_percent = part.iter().rposition(|&b| b == b'%').unwrap_or(0);
    let (part, c_arg) = match (&part[last_percent..], arg) {
        (b"%r" | b"%rx" | b"%rh", PrintfArg::Buffer(bytes)) => {
            let token = &part[last_percent..];
            let keep_ascii = token == b"%r";
            let escape_hex = token != b"%rh";
            (
                replace_buffer_directives(part),
                CArg::Str(hex_format_buffer(bytes, keep_ascii, escape_hex)),
            )
        }
        (_, PrintfArg::Buffer(bytes)) => (
            part.to_vec(),
            CArg::Str(hex_format_buffer(bytes, true, true)),
        ),
        (_, PrintfArg::Int(v)) => (
            part.to_vec(),
            CArg::Int(u64::from_ne_bytes(v.to_ne_bytes())),
        ),
        (_, PrintfArg::UInt(v)) => (part.to_vec(), CArg::Int(*v)),
        (_, PrintfArg::Str(s)) => (part.to_vec(), CArg::Str(s.clone())),
    };
    c_snprintf(&part, c_arg)
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

/// bpftrace's `hex_format_buffer`: printable ASCII kept when `keep_ascii`, other bytes as `\xNN`
/// when `escape_hex`, else as space-separated two-digit hex.
fn hex_format_buffer(bytes: &[u8], keep_ascii: bool, escape_hex: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if keep_ascii && (32..=126).contains(&b) {
            out.push(b);
        } else if escape_hex {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else if i == bytes.len() - 1 {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        } else {
            out.extend_from_slice(format!("{b:02x} ").as_bytes());
        }
    }
    out
}

/// A parsed `%[flags][width][.precision][length]conversion` directive.
#[derive(Default)]
#[allow(clippy::struct_excessive_bools)] // one bool per C printf flag reads best
struct Directive {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
    /// Bits the integer is read as: 8, 16, 32 or 64.
    bits: u32,
    conversion: u8,
    /// The directive contains `*`, which rbt does not emulate.
    star: bool,
}

/// glibc `snprintf(buf, size, part, arg)` for a part with one integer-class argument.
fn c_snprintf(part: &[u8], arg: CArg) -> Vec<u8> {
    let mut out = Vec::new();
    let mut arg = Some(arg);
    let mut i = 0;
    while i < part.len() {
        if part[i] != b'%' {
            out.push(part[i]);
            i += 1;
            continue;
        }
        let (directive, end) = parse_directive(part, i);
        let text = &part[i..end];
        i = end;
        match directive.conversion {
            _ if directive.star => out.extend_from_slice(text),
            b'%' => out.push(b'%'),
            b'd' | b'i' | b'u' | b'o' | b'x' | b'X' | b'c' | b'p' | b's' => {
                if let Some(arg) = arg.take() {
                    render(&directive, &arg, &mut out);
                }
            }
            // Floating-point conversions read an SSE register, not the integer argument.
            b'e' | b'E' | b'f' | b'F' | b'g' | b'G' | b'a' | b'A' => {}
            _ => out.extend_from_slice(text),
        }
    }
    out
}

/// Parses the directive starting at `part[start] == '%'`; returns it and the index after it. An
/// unfinished directive gets conversion 0 and spans the rest of the part.
fn parse_directive(part: &[u8], start: usize) -> (Directive, usize) {
    let mut d = Directive {
        bits: 32,
        ..Directive::default()
    };
    let mut i = start + 1;
    while let Some(&b) = part.get(i) {
        match b {
            b'-' => d.left = true,
            b'+' => d.plus = true,
            b' ' => d.space = true,
            b'#' => d.alt = true,
            b'0' => d.zero = true,
            _ => break,
        }
        i += 1;
    }
    let number = |i: &mut usize| {
        let mut n = 0usize;
        while let Some(&b) = part.get(*i).filter(|b| b.is_ascii_digit()) {
            n = n.saturating_mul(10).saturating_add(usize::from(b - b'0'));
            *i += 1;
        }
        n
    };
    if part.get(i) == Some(&b'*') {
        d.star = true;
        i += 1;
    } else {
        d.width = number(&mut i);
    }
    if part.get(i) == Some(&b'.') {
        i += 1;
        if part.get(i) == Some(&b'*') {
            d.star = true;
            i += 1;
        } else {
            d.precision = Some(number(&mut i));
        }
    }
    let length: &[(&[u8], u32)] = &[
        (b"hh", 8),
        (b"h", 16),
        (b"ll", 64),
        (b"l", 64),
        (b"q", 64),
        (b"L", 64),
        (b"j", 64),
        (b"z", 64),
        (b"Z", 64),
        (b"t", 64),
    ];
    if let Some((text, bits)) = length.iter().find(|(text, _)| part[i..].starts_with(text)) {
        d.bits = *bits;
        i += text.len();
    }
    match part.get(i) {
        Some(&c) => {
            d.conversion = c;
            (d, i + 1)
        }
        None => (d, part.len()),
    }
}

/// Renders one argument-consuming directive. A string argument for an integer conversion (or the
/// reverse) cannot pass the checker; it renders as nothing.
fn render(d: &Directive, arg: &CArg, out: &mut Vec<u8>) {
    match (d.conversion, arg) {
        (b's', CArg::Str(s)) => {
            let s = super::value::c_str(s);
            let s = d.precision.map_or(s, |p| &s[..p.min(s.len())]);
            pad(d, b"", s, false, out);
        }
        (b'c', CArg::Int(bits)) => pad(d, b"", &[bits.to_le_bytes()[0]], false, out),
        (b'p', CArg::Int(0)) => pad(d, b"", b"(nil)", false, out),
        (b'p', CArg::Int(bits)) => {
            let sign: &[u8] = if d.plus {
                b"+"
            } else if d.space {
                b" "
            } else {
                b""
            };
            let digits = with_precision(d, format!("{bits:x}"));
            let prefix = [sign, b"0x"].concat();
            pad(d, &prefix, digits.as_bytes(), true, out);
        }
        (b'd' | b'i', CArg::Int(bits)) => {
            let value = signed(*bits, d.bits);
            let sign: &[u8] = if value < 0 {
                b"-"
            } else if d.plus {
                b"+"
            } else if d.space {
                b" "
            } else {
                b""
            };
            let digits = with_precision(d, value.unsigned_abs().to_string());
            pad(d, sign, digits.as_bytes(), true, out);
        }
        (b'u' | b'o' | b'x' | b'X', CArg::Int(bits)) => {
            let value = unsigned(*bits, d.bits);
            let digits = match d.conversion {
                b'u' => value.to_string(),
                b'o' => format!("{value:o}"),
                b'x' => format!("{value:x}"),
                _ => format!("{value:X}"),
            };
            let mut digits = with_precision(d, digits);
            let mut prefix: &[u8] = b"";
            if d.alt && d.conversion == b'o' && !digits.starts_with('0') {
                digits.insert(0, '0');
            } else if d.alt && value != 0 && d.conversion == b'x' {
                prefix = b"0x";
            } else if d.alt && value != 0 && d.conversion == b'X' {
                prefix = b"0X";
            }
            pad(d, prefix, digits.as_bytes(), true, out);
        }
        _ => {}
    }
}

/// Applies an integer precision: at least that many digits, and none at all for 0 with precision 0.
fn with_precision(d: &Directive, digits: String) -> String {
    match d.precision {
        Some(0) if digits == "0" => String::new(),
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits,
    }
}

/// Pads `prefix + body` to the width: on the right for `-`, with zeros after the prefix for a numeric
/// conversion with `0` and no precision, else with spaces on the left.
fn pad(d: &Directive, prefix: &[u8], body: &[u8], numeric: bool, out: &mut Vec<u8>) {
    let fill = d.width.saturating_sub(prefix.len() + body.len());
    if d.left {
        out.extend_from_slice(prefix);
        out.extend_from_slice(body);
        out.resize(out.len() + fill, b' ');
    } else if d.zero && numeric && d.precision.is_none() {
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
        assert_eq!(
            f(
                "%hhd %hd %d %ld\n",
                &[Int(300), Int(70000), Int(-1), Int(-1)]
            ),
            "44 4464 -1 -1\n"
        );
        assert_eq!(
            f("%hhd|%hhd|%hd", &[Int(-129), Int(128), Int(-32769)]),
            "127|-128|32767"
        );
        assert_eq!(
            f("%hhu %hu %u %lu", &[Int(-1), Int(-1), Int(-1), Int(-1)]),
            "255 65535 4294967295 18446744073709551615"
        );
        assert_eq!(f("%d", &[Int(0x1_0000_0005)]), "5");
        assert_eq!(
            f("%hhx %hx %hho %llX", &[Int(-1), Int(-1), Int(-1), Int(-1)]),
            "ff ffff 377 FFFFFFFFFFFFFFFF"
        );
    }

    #[test]
    fn widths_and_precisions() {
        assert_eq!(
            f(
                "[%5d] [%-5d] [%05d] [%5.2d] [%.3s] [%10.3s] [%-10s] [%-5.1s]",
                &[
                    Int(42),
                    Int(42),
                    Int(42),
                    Int(3),
                    s("abcdef"),
                    s("abcdef"),
                    s("ab"),
                    s("xyz")
                ]
            ),
            "[   42] [42   ] [00042] [   03] [abc] [       abc] [ab        ] [x    ]"
        );
        assert_eq!(
            f("%-08d|%08.3d|%.0d|", &[Int(5), Int(5), Int(0)]),
            "5       |     005||"
        );
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
        assert_eq!(
            f("%p %p %p", &[Int(0), Int(4096), Int(-1)]),
            "(nil) 0x1000 0xffffffffffffffff"
        );
        assert_eq!(
            f(
                "%20p|%-20p|%.5p|%020p",
                &[Int(16), Int(16), Int(16), Int(16)]
            ),
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
            String::from_utf8_lossy(&c_snprintf(fmt.as_bytes(), CArg::Int(v))).into_owned()
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
            f(
                "%r|%rx|%rh\n",
                &[
                    Buffer(b"a\x01b".to_vec()),
                    Buffer(b"ab".to_vec()),
                    Buffer(b"ab".to_vec())
                ]
            ),
            "a\\x01b|\\x61\\x62|61 62\n"
        );
        assert_eq!(f("%5r|", &[Buffer(b"ab".to_vec())]), "%5r|");
    }
}
