//! printf format strings as bpftrace 0.17 reads them: which `%…` sequences are conversions, and
//! whether the arguments fit. Pure code with no IO and no crate dependencies, so the compiler's
//! checker can use it (or take it over) unchanged.
//!
//! # What counts as a conversion
//!
//! bpftrace searches the format with the regular expression
//! `%-?[0-9]*(\.[0-9]+)?(s|r|rx|rh|c|<len>d|<len>u|<len>o|<len>x|<len>X|<len>p)` where `<len>` is
//! empty, `hh`, `h`, `l`, `ll`, `j`, `z` or `t`. Anything else is plain text, which has surprising
//! consequences that rbt reproduces:
//! - Only the `-` flag exists, and only first; a leading `0` is part of the width (`%05d` works).
//!   `%+d`, `% d`, `%#x`, `%0-5d`, `%i`, `%f`, `%.d` (precision without digits) and `%%` are not
//!   conversions, so `printf("%i\n", 5)` fails with "Too many arguments … (1 supplied, 0 expected)".
//! - The search restarts one byte after a failed `%`, so in `%%d` the `%d` is a conversion.
//! - For `%r`, `%rx` and `%rh` the longest match wins (`%rx` is the hex-escaped buffer form).
//!
//! # Argument checks, in bpftrace's order, with its exact messages (`func` is e.g. `printf`)
//! 1. `printf: Not enough arguments for format string (1 supplied, 2 expected)`
//! 2. `printf: Too many arguments for format string (2 supplied, 1 expected)`
//! 3. `debugf` only: `debugf: Cannot use more than 3 conversion specifiers`
//! 4. `debugf` only, for conversions `bpf_trace_printk` lacks:
//!    `debugf: Unknown format string token: %hhd`
//! 5. per argument: `printf: %s specifier expects a value of type string (integer supplied)`;
//!    the specifier is printed without flags and width (`%-5.3ld` → `%ld`).
//!
//! Arguments that bpftrace converts before the type check: `ksym`, `usym`, `probe`, `username`,
//! `kstack`, `ustack`, `inet`, `timestamp`, `mac_address`, `cgroup_path` and `strerror` count as
//! `string`; pointers count as `integer`. Other types keep bpftrace's type name (`tuple`, `record`,
//! …), which only appears in the message.

use std::fmt;
use std::ops::Range;

/// The argument kind a conversion needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// `%d %u %o %x %X %p %c` with any length modifier.
    Integer,
    /// `%s`.
    String,
    /// `%r %rx %rh`: a `buf()` value.
    Buffer,
}

impl ArgKind {
    /// bpftrace's name for the type, as used in error messages.
    pub fn type_name(self) -> &'static str {
        match self {
            ArgKind::Integer => "integer",
            ArgKind::String => "string",
            ArgKind::Buffer => "buffer",
        }
    }
}

/// The type of an argument as the checker supplies it (after the conversions listed in the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppliedType {
    Integer,
    String,
    Buffer,
    /// Any other type, by bpftrace's name for it (e.g. `tuple`); never accepted.
    Other(String),
}

impl SuppliedType {
    fn name(&self) -> &str {
        match self {
            SuppliedType::Integer => "integer",
            SuppliedType::String => "string",
            SuppliedType::Buffer => "buffer",
            SuppliedType::Other(name) => name,
        }
    }

    fn matches(&self, kind: ArgKind) -> bool {
        matches!(
            (self, kind),
            (SuppliedType::Integer, ArgKind::Integer)
                | (SuppliedType::String, ArgKind::String)
                | (SuppliedType::Buffer, ArgKind::Buffer)
        )
    }
}

/// One conversion found in a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Byte offsets of the whole conversion, from `%` to the conversion letter.
    pub span: Range<usize>,
    /// The length modifier and conversion letter, e.g. `ld`, `s`, `rx`.
    pub specifier: &'static str,
    /// What argument it takes.
    pub expects: ArgKind,
}

/// Why a printf-like call's arguments do not fit its format string. `Display` gives bpftrace's
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    NotEnoughArguments {
        func: String,
        supplied: usize,
        expected: usize,
    },
    TooManyArguments {
        func: String,
        supplied: usize,
        expected: usize,
    },
    /// `debugf` (`bpf_trace_printk`) takes at most three arguments.
    TooManyForDebugf { func: String },
    /// A conversion `debugf` cannot pass to `bpf_trace_printk`.
    UnknownToken { func: String, specifier: String },
    TypeMismatch {
        func: String,
        specifier: String,
        expected: ArgKind,
        supplied: String,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::NotEnoughArguments { func, supplied, expected } => write!(
                f,
                "{func}: Not enough arguments for format string ({supplied} supplied, {expected} expected)"
            ),
            FormatError::TooManyArguments { func, supplied, expected } => write!(
                f,
                "{func}: Too many arguments for format string ({supplied} supplied, {expected} expected)"
            ),
            FormatError::TooManyForDebugf { func } => {
                write!(f, "{func}: Cannot use more than {DEBUGF_MAX_ARGS} conversion specifiers")
            }
            FormatError::UnknownToken { func, specifier } => {
                write!(f, "{func}: Unknown format string token: %{specifier}")
            }
            FormatError::TypeMismatch { func, specifier, expected, supplied } => write!(
                f,
                "{func}: %{specifier} specifier expects a value of type {} ({supplied} supplied)",
                expected.type_name()
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// `bpf_trace_printk` takes at most three arguments.
const DEBUGF_MAX_ARGS: usize = 3;

/// The conversions `bpf_trace_printk` understands (bcc's list, as bpftrace 0.17 copies it).
const DEBUGF_SPECIFIERS: [&str; 11] = [
    "d", "u", "x", "ld", "lu", "lx", "lld", "llu", "llx", "p", "s",
];

const LENGTHS: [&str; 8] = ["", "hh", "h", "l", "ll", "j", "z", "t"];
const INT_LETTERS: [char; 6] = ['d', 'u', 'o', 'x', 'X', 'p'];

/// The specifiers bpftrace accepts, longest first where one is a prefix of another.
fn specifiers() -> impl Iterator<Item = (&'static str, ArgKind)> {
    const FIXED: [(&str, ArgKind); 5] = [
        ("s", ArgKind::String),
        ("rx", ArgKind::Buffer),
        ("rh", ArgKind::Buffer),
        ("r", ArgKind::Buffer),
        ("c", ArgKind::Integer),
    ];
    const INTS: [&str; 48] = [
        "d", "u", "o", "x", "X", "p", "hhd", "hhu", "hho", "hhx", "hhX", "hhp", "hd", "hu", "ho",
        "hx", "hX", "hp", "ld", "lu", "lo", "lx", "lX", "lp", "lld", "llu", "llo", "llx", "llX",
        "llp", "jd", "ju", "jo", "jx", "jX", "jp", "zd", "zu", "zo", "zx", "zX", "zp", "td", "tu",
        "to", "tx", "tX", "tp",
    ];
    debug_assert_eq!(INTS.len(), LENGTHS.len() * INT_LETTERS.len());
    FIXED
        .into_iter()
        .chain(INTS.into_iter().map(|s| (s, ArgKind::Integer)))
}

/// Finds the conversions in `fmt` the way bpftrace 0.17 does (see the module documentation).
/// Format strings alone never fail in 0.17; errors only arise against the arguments.
pub fn parse_printf_format(fmt: impl AsRef<[u8]>) -> Vec<Conversion> {
    let fmt = fmt.as_ref();
    let mut conversions = Vec::new();
    let mut pos = 0;
    while let Some(offset) = fmt[pos..].iter().position(|&b| b == b'%') {
        let start = pos + offset;
        match match_conversion(fmt, start) {
            Some(conversion) => {
                pos = conversion.span.end;
                conversions.push(conversion);
            }
            None => pos = start + 1,
        }
    }
    conversions
}

/// Matches `%-?[0-9]*(\.[0-9]+)?<specifier>` at `start`.
fn match_conversion(fmt: &[u8], start: usize) -> Option<Conversion> {
    let mut i = start + 1;
    if fmt.get(i) == Some(&b'-') {
        i += 1;
    }
    while fmt.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if fmt.get(i) == Some(&b'.') && fmt.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while fmt.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let rest = &fmt[i..];
    specifiers()
        .filter(|(spec, _)| rest.starts_with(spec.as_bytes()))
        .max_by_key(|(spec, _)| spec.len())
        .map(|(specifier, expects)| Conversion {
            span: start..i + specifier.len(),
            specifier,
            expects,
        })
}

/// Checks a printf-like call (`func` is `printf`, `system`, `cat`, `debugf`, …) the way bpftrace
/// 0.17's `validate_format_string` does, returning the conversions when the arguments fit.
pub fn validate_printf_args(
    func: &str,
    fmt: impl AsRef<[u8]>,
    args: &[SuppliedType],
) -> Result<Vec<Conversion>, FormatError> {
    let conversions = parse_printf_format(fmt);
    let (supplied, expected) = (args.len(), conversions.len());
    if supplied < expected {
        return Err(FormatError::NotEnoughArguments {
            func: func.to_string(),
            supplied,
            expected,
        });
    }
    if supplied > expected {
        return Err(FormatError::TooManyArguments {
            func: func.to_string(),
            supplied,
            expected,
        });
    }
    let debugf = func == "debugf";
    if debugf && supplied > DEBUGF_MAX_ARGS {
        return Err(FormatError::TooManyForDebugf {
            func: func.to_string(),
        });
    }
    for (conversion, arg) in conversions.iter().zip(args) {
        if debugf && !DEBUGF_SPECIFIERS.contains(&conversion.specifier) {
            return Err(FormatError::UnknownToken {
                func: func.to_string(),
                specifier: conversion.specifier.to_string(),
            });
        }
        if !arg.matches(conversion.expects) {
            return Err(FormatError::TypeMismatch {
                func: func.to_string(),
                specifier: conversion.specifier.to_string(),
                expected: conversion.expects,
                supplied: arg.name().to_string(),
            });
        }
    }
    Ok(conversions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(fmt: &str) -> Vec<&'static str> {
        parse_printf_format(fmt)
            .iter()
            .map(|c| c.specifier)
            .collect()
    }

    fn error(func: &str, fmt: &str, args: &[SuppliedType]) -> String {
        validate_printf_args(func, fmt, args).map_or_else(|e| e.to_string(), |_| "ok".to_string())
    }

    #[test]
    fn finds_what_bpftrace_finds() {
        assert_eq!(specs("%hhd %hd %d %ld\n"), ["hhd", "hd", "d", "ld"]);
        assert_eq!(
            specs("[%-5d] [%05d] [%5.2d] [%.3s] [%-10.3s]"),
            ["d", "d", "d", "s", "s"]
        );
        assert_eq!(specs("%rx|%r|%rh"), ["rx", "r", "rh"]);
        assert_eq!(
            specs("%lld %llu %zu %ju %tX %lp %c"),
            ["lld", "llu", "zu", "ju", "tX", "lp", "c"]
        );
        // Not conversions in 0.17.
        assert!(specs("%i %f %+d % d %#x %0-5d %.d %5.s %% %5% %").is_empty());
        // The search resumes right after a failed '%'.
        assert_eq!(specs("%%d"), ["d"]);
        let conversions = parse_printf_format("a %-05.3ld b");
        assert_eq!(conversions.len(), 1);
        assert_eq!(conversions[0].span, 2..10);
    }

    #[test]
    fn argument_count_errors() {
        use SuppliedType::{Integer, String};
        assert_eq!(
            error("printf", "%d %d\n", &[Integer]),
            "printf: Not enough arguments for format string (1 supplied, 2 expected)"
        );
        assert_eq!(
            error("printf", "%d\n", &[Integer, Integer]),
            "printf: Too many arguments for format string (2 supplied, 1 expected)"
        );
        assert_eq!(
            error("printf", "%i\n", &[Integer]),
            "printf: Too many arguments for format string (1 supplied, 0 expected)"
        );
        assert_eq!(
            error("printf", "%f\n", &[Integer]),
            "printf: Too many arguments for format string (1 supplied, 0 expected)"
        );
        assert_eq!(error("printf", "%s %d\n", &[String, Integer]), "ok");
    }

    #[test]
    fn type_errors() {
        use SuppliedType::{Integer, Other, String};
        assert_eq!(
            error("printf", "%s\n", &[Integer]),
            "printf: %s specifier expects a value of type string (integer supplied)"
        );
        assert_eq!(
            error("printf", "%-5.3ld\n", &[String]),
            "printf: %ld specifier expects a value of type integer (string supplied)"
        );
        assert_eq!(
            error("printf", "%d\n", &[Other("tuple".into())]),
            "printf: %d specifier expects a value of type integer (tuple supplied)"
        );
        assert_eq!(
            error("printf", "%r\n", &[String]),
            "printf: %r specifier expects a value of type buffer (string supplied)"
        );
    }

    #[test]
    fn debugf_limits() {
        use SuppliedType::Integer;
        assert_eq!(
            error(
                "debugf",
                "%d %d %d %d",
                &[Integer, Integer, Integer, Integer]
            ),
            "debugf: Cannot use more than 3 conversion specifiers"
        );
        assert_eq!(
            error("debugf", "%hhd", &[Integer]),
            "debugf: Unknown format string token: %hhd"
        );
        assert_eq!(error("debugf", "%llx", &[Integer]), "ok");
    }
}
