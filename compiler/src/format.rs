//! printf format strings, parsed once: the checker matches the conversions against the arguments,
//! and the runtime renders events from the same parse, carried in the compiled program.
//!
//! Two readings of the text meet here, and both come from one directive parser, [`directive_at`],
//! which reads a `%[flags][width][.precision][length]conversion` directive the way glibc's printf
//! does:
//!
//! - **Which `%…` sequences are conversions** is bpftrace 0.17's choice. It searches the format with
//!   the regular expression `%-?[0-9]*(\.[0-9]+)?(s|r|rx|rh|c|<len>d|<len>u|<len>o|<len>x|<len>X|<len>p)`,
//!   where `<len>` is empty, `hh`, `h`, `l`, `ll`, `j`, `z` or `t` (longest match, so `%rx` is the
//!   hex-escaped buffer form). Anything else is plain text, with consequences rbt reproduces:
//!   - Only the `-` flag exists, and only first; a leading `0` is part of the width (`%05d` works).
//!     `%+d`, `% d`, `%#x`, `%0-5d`, `%i`, `%f`, `%.d` (precision without digits) and `%%` are not
//!     conversions, so `printf("%i\n", 5)` has one argument too many.
//!   - The search restarts one byte after a failed `%`, so in `%%d` the `%d` is a conversion.
//!   - A `%` at the end of the text is just text.
//! - **How each piece prints** is glibc's `snprintf`: bpftrace cuts the format after each conversion
//!   into [`Part`]s (`"a %d b %s\n"` → `"a %d"`, `" b %s"`, `"\n"`) and hands part *i* with
//!   argument *i* to `snprintf`, which reads every directive of the part, stray ones included
//!   (`%%`, `%+d`). The runtime renders those directives; the last part without an argument
//!   prints verbatim.

use std::ops::Range;

/// A format string as bpftrace 0.17 splits it for printing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrintfFormat {
    /// The parts in order; together they cover the whole text.
    pub parts: Vec<Part>,
}

/// A piece of the format handed to `snprintf` with one argument: text up to and including a
/// conversion, or the text after the last conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Byte offsets inside the format text.
    pub span: Range<usize>,
    /// The conversion ending the part; `None` for the text after the last conversion.
    pub conversion: Option<Conversion>,
    /// The part's directives as `snprintf` reads them, with spans relative to the part's start.
    pub directives: Vec<Directive>,
}

/// A conversion bpftrace recognises: one argument per conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    /// Byte offsets inside the format text, from `%` to the end of the specifier.
    pub span: Range<usize>,
    /// The length modifier and conversion letter, e.g. `ld`, `s`, `rx`, as bpftrace's messages
    /// name it (without flags, width and precision).
    pub specifier: String,
    /// What argument it takes.
    pub expects: ArgKind,
}

/// The argument kind a conversion needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One `%` directive as glibc's printf reads it: `%-08.3lld` has flags `-0`, width 8, precision 3,
/// length `ll` and conversion `d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// Byte offsets from `%` to the end of the conversion character (or of the text, when the text
    /// ends first).
    pub span: Range<usize>,
    /// The flag characters (`-`, `+`, space, `#`, `0`) as written, in order.
    pub flags: String,
    pub width: Count,
    /// `None` without a `.`.
    pub precision: Option<Count>,
    pub length: Length,
    /// `None` when the text ends before the conversion character.
    pub conversion: Option<u8>,
}

impl Directive {
    pub fn has_flag(&self, flag: char) -> bool {
        self.flags.contains(flag)
    }

    /// A `*` width or precision, which would read an extra argument.
    pub fn has_star(&self) -> bool {
        self.width == Count::Star || self.precision == Some(Count::Star)
    }
}

/// A width or precision as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// No digits: no width, or a precision of just `.` (which C reads as 0).
    Omitted,
    Number(usize),
    /// `*`: taken from an argument.
    Star,
}

impl Count {
    /// The value C uses; 0 when omitted (a `*` is not emulated and also gives 0).
    pub fn value(self) -> usize {
        match self {
            Count::Number(n) => n,
            Count::Omitted | Count::Star => 0,
        }
    }
}

/// A length modifier, which sets the C type an integer argument is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    None,
    /// `hh`: `char`.
    Char,
    /// `h`: `short`.
    Short,
    /// `l`, `ll`, `q`, `L`, `j`, `z`, `Z`, `t`: 64 bits on x86-64, by their spelling.
    Long(&'static str),
}

/// glibc's length modifiers, longest first where one is a prefix of another.
const LENGTHS: [(&str, Length); 10] = [
    ("hh", Length::Char),
    ("h", Length::Short),
    ("ll", Length::Long("ll")),
    ("l", Length::Long("l")),
    ("q", Length::Long("q")),
    ("L", Length::Long("L")),
    ("j", Length::Long("j")),
    ("z", Length::Long("z")),
    ("Z", Length::Long("Z")),
    ("t", Length::Long("t")),
];

impl Length {
    pub fn as_str(self) -> &'static str {
        match self {
            Length::None => "",
            Length::Char => "hh",
            Length::Short => "h",
            Length::Long(text) => text,
        }
    }

    /// The bits of an integer argument C reads with this modifier.
    pub fn int_bits(self) -> u32 {
        match self {
            Length::None => 32,
            Length::Char => 8,
            Length::Short => 16,
            Length::Long(_) => 64,
        }
    }

    /// The modifiers bpftrace's conversion pattern allows.
    fn known_to_bpftrace(self) -> bool {
        matches!(self.as_str(), "" | "hh" | "h" | "l" | "ll" | "j" | "z" | "t")
    }
}

/// Reads the directive starting at `text[start] == b'%'`, as glibc does; it never fails. An
/// unfinished directive spans the rest of the text.
pub fn directive_at(text: &[u8], start: usize) -> Directive {
    let mut i = start + 1;
    let flags_start = i;
    while text.get(i).is_some_and(|b| b"-+ #0".contains(b)) {
        i += 1;
    }
    let flags = text[flags_start..i].iter().copied().map(char::from).collect();
    let width = count_at(text, &mut i);
    let precision = if text.get(i) == Some(&b'.') {
        i += 1;
        Some(count_at(text, &mut i))
    } else {
        None
    };
    let rest = text.get(i..).unwrap_or_default();
    let length = match LENGTHS.iter().find(|(spelling, _)| rest.starts_with(spelling.as_bytes())) {
        Some((spelling, length)) => {
            i += spelling.len();
            *length
        }
        None => Length::None,
    };
    let conversion = text.get(i).copied();
    let end = if conversion.is_some() { i + 1 } else { text.len() };
    Directive { span: start..end, flags, width, precision, length, conversion }
}

/// Reads a width or precision at `*i`: `*`, digits, or nothing.
fn count_at(text: &[u8], i: &mut usize) -> Count {
    if text.get(*i) == Some(&b'*') {
        *i += 1;
        return Count::Star;
    }
    let start = *i;
    let mut n = 0usize;
    while let Some(&b) = text.get(*i).filter(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(usize::from(b - b'0'));
        *i += 1;
    }
    if *i == start {
        Count::Omitted
    } else {
        Count::Number(n)
    }
}

/// The directives `snprintf` reads in `text`, in order: after each one it goes on where the
/// directive ends.
pub fn directives(text: &[u8]) -> Vec<Directive> {
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(offset) = text[pos..].iter().position(|&b| b == b'%') {
        let directive = directive_at(text, pos + offset);
        pos = directive.span.end;
        found.push(directive);
    }
    found
}

/// bpftrace's reading of the directive at `start`, if its pattern (see the module documentation)
/// matches there. The pattern is a narrower form of a C directive: of the flags only a leading
/// `-` (its `[0-9]*` width also takes the zeros C reads as flags), no `*`, digits after a `.`,
/// and the specifiers listed.
fn conversion_at(text: &[u8], start: usize) -> Option<Conversion> {
    let directive = directive_at(text, start);
    let flags = directive.flags.strip_prefix('-').unwrap_or(&directive.flags);
    let plain = flags.bytes().all(|b| b == b'0')
        && directive.width != Count::Star
        && matches!(directive.precision, None | Some(Count::Number(_)))
        && directive.length.known_to_bpftrace();
    if !plain {
        return None;
    }
    let letter = directive.conversion?;
    let expects = match letter {
        b'd' | b'u' | b'o' | b'x' | b'X' | b'p' => ArgKind::Integer,
        b'c' if directive.length == Length::None => ArgKind::Integer,
        b's' if directive.length == Length::None => ArgKind::String,
        b'r' if directive.length == Length::None => ArgKind::Buffer,
        _ => return None,
    };
    let mut specifier = format!("{}{}", directive.length.as_str(), char::from(letter));
    let mut end = directive.span.end;
    if let (b'r', Some(&suffix @ (b'x' | b'h'))) = (letter, text.get(end)) {
        specifier.push(char::from(suffix));
        end += 1;
    }
    Some(Conversion { span: start..end, specifier, expects })
}

/// Parses a format string (escapes already resolved) the way bpftrace 0.17 does. Format strings
/// alone never fail: mistakes show up as conversions that do not match the arguments.
pub fn parse_printf(text: &[u8]) -> PrintfFormat {
    let mut parts = Vec::new();
    let mut part_start = 0;
    let mut pos = 0;
    while let Some(offset) = text[pos..].iter().position(|&b| b == b'%') {
        let start = pos + offset;
        let Some(conversion) = conversion_at(text, start) else {
            pos = start + 1;
            continue;
        };
        let span = part_start..conversion.span.end;
        pos = span.end;
        part_start = span.end;
        parts.push(Part { directives: directives(&text[span.clone()]), span, conversion: Some(conversion) });
    }
    if part_start != text.len() {
        let span = part_start..text.len();
        parts.push(Part { directives: directives(&text[span.clone()]), span, conversion: None });
    }
    PrintfFormat { parts }
}

impl PrintfFormat {
    /// The conversions, in order: one argument each.
    pub fn conversions(&self) -> impl Iterator<Item = &Conversion> {
        self.parts.iter().filter_map(|part| part.conversion.as_ref())
    }

    /// Directives C would read that bpftrace does not take as conversions (`%i`, `%+d`, `%.d`;
    /// not `%%`), as byte offsets inside the format text: the likely reason for an argument too
    /// many.
    pub fn stray_directives(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.parts.iter().flat_map(|part| {
            let conversion_start = part.conversion.as_ref().map(|c| c.span.start);
            part.directives.iter().filter_map(move |directive| {
                let start = part.span.start + directive.span.start;
                let stray = Some(start) != conversion_start && directive.conversion != Some(b'%');
                stray.then(|| start..part.span.start + directive.span.end)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(text: &str) -> Vec<String> {
        parse_printf(text.as_bytes()).conversions().map(|c| c.specifier.clone()).collect()
    }

    #[test]
    fn finds_what_bpftrace_finds() {
        assert_eq!(specs("%hhd %hd %d %ld\n"), ["hhd", "hd", "d", "ld"]);
        assert_eq!(specs("[%-5d] [%05d] [%5.2d] [%.3s] [%-10.3s]"), ["d", "d", "d", "s", "s"]);
        assert_eq!(specs("%rx|%r|%rh|%-5rx"), ["rx", "r", "rh", "rx"]);
        assert_eq!(specs("%lld %llu %zu %ju %tX %lp %c"), ["lld", "llu", "zu", "ju", "tX", "lp", "c"]);
        assert_eq!(specs("%-0005d %-d %.0x %u%s"), ["d", "d", "x", "u", "s"]);
        // Not conversions in 0.17.
        assert!(specs("%i %f %+d % d %#x %0-5d %--5d %.d %5.s %*d %.*d %% %5% %").is_empty());
        assert!(specs("%hhhd %llld %lhd %qd %Ld %Zd %ls %lc %lr %hs").is_empty());
        // The search resumes right after a failed '%'.
        assert_eq!(specs("%%d"), ["d"]);
        assert_eq!(specs("%%-5ld"), ["ld"]);
    }

    #[test]
    fn conversions_know_their_span_and_argument() {
        let format = parse_printf(b"a %-05.3ld b %s %rh");
        let conversions: Vec<_> = format.conversions().collect();
        assert_eq!(conversions.len(), 3);
        assert_eq!(conversions[0].span, 2..10);
        assert_eq!(conversions[0].expects, ArgKind::Integer);
        assert_eq!(conversions[1].expects, ArgKind::String);
        assert_eq!((conversions[2].span.clone(), conversions[2].expects), (16..19, ArgKind::Buffer));
    }

    #[test]
    fn parts_end_after_each_conversion() {
        let spans = |text: &str| -> Vec<_> {
            parse_printf(text.as_bytes()).parts.iter().map(|p| (p.span.start, p.span.end)).collect()
        };
        assert_eq!(spans("a %d b %s\n"), [(0, 4), (4, 9), (9, 10)]);
        assert_eq!(spans("%d"), [(0, 2)]);
        assert!(spans("").is_empty());
        assert_eq!(spans("100%%\n"), [(0, 6)]);
        let format = parse_printf(b"%% %5d|%d\n");
        assert_eq!(format.parts[0].directives.iter().map(|d| d.span.clone()).collect::<Vec<_>>(), [0..2, 3..6]);
        assert_eq!(format.parts[1].directives[0].span, 1..3);
        assert!(format.parts[2].conversion.is_none());
    }

    #[test]
    fn stray_directives_are_the_ones_bpftrace_skips() {
        let text = "%i %d %% %+d|%5.s %-5ld %rx %";
        let strays: Vec<_> = parse_printf(text.as_bytes()).stray_directives().map(|span| &text[span]).collect();
        assert_eq!(strays, ["%i", "%+d", "%5.s", "%"]);
    }

    #[test]
    fn directives_read_like_glibc() {
        let d = directive_at(b"%-08.3lld", 0);
        assert_eq!((d.flags.as_str(), d.width, d.precision), ("-0", Count::Number(8), Some(Count::Number(3))));
        assert_eq!((d.length, d.conversion, d.span), (Length::Long("ll"), Some(b'd'), 0..9));
        let d = directive_at(b"x%+ #5.d", 1);
        assert_eq!((d.flags.as_str(), d.width, d.precision), ("+ #", Count::Number(5), Some(Count::Omitted)));
        assert_eq!(d.span, 1..8);
        assert!(d.has_flag('#') && !d.has_flag('-'));
        let d = directive_at(b"%*.*hhx", 0);
        assert!(d.has_star());
        assert_eq!((d.length.int_bits(), d.conversion), (8, Some(b'x')));
        // A directive cut off by the end of the text spans the rest.
        let d = directive_at(b"ab%-5l", 2);
        assert_eq!((d.conversion, d.span), (None, 2..6));
        let spans: Vec<_> = directives(b"%%d %5% %y%").into_iter().map(|d| (d.span, d.conversion)).collect();
        assert_eq!(spans, [(0..2, Some(b'%')), (4..7, Some(b'%')), (8..10, Some(b'y')), (10..11, None)]);
    }
}
