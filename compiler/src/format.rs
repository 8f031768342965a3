//! Parsing printf-style format strings: the checker validates arguments against the conversions,
//! and the runtime formats event records with the same parse.

/// One piece of a parsed format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Conversion(Conversion),
}

/// A `%...` conversion: `%-08.3lld` has flags `-0`, width 8, precision 3, length `ll`, conv `d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    pub flags: String,
    pub width: Option<usize>,
    pub precision: Option<usize>,
    pub length: String,
    pub conv: char,
    /// Byte range of the conversion inside the format text.
    pub start: usize,
    pub end: usize,
}

/// What kind of argument a conversion consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    Integer,
    String,
}

impl Conversion {
    pub fn arg_kind(&self) -> ArgKind {
        if self.conv == 's' {
            ArgKind::String
        } else {
            ArgKind::Integer
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub message: String,
    /// Byte range inside the format text.
    pub start: usize,
    pub end: usize,
}

const CONVERSIONS: &str = "duxXoscp";

/// Splits a format string into literal text and conversions; `%%` becomes a literal `%`.
pub fn parse_format(text: &str) -> Result<Vec<Piece>, FormatError> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let Some(rel) = text[i..].find('%') else {
            literal.push_str(&text[i..]);
            break;
        };
        literal.push_str(&text[i..i + rel]);
        let start = i + rel;
        let mut j = start + 1;
        if bytes.get(j) == Some(&b'%') {
            literal.push('%');
            i = j + 1;
            continue;
        }
        // bpftrace 0.17 only knows `%-?[0-9]*(\.[0-9]+)?` before the length and conversion; any
        // other `%` sequence is plain text (and then usually an argument-count error).
        let flags_start = j;
        if bytes.get(j) == Some(&b'-') {
            j += 1;
        }
        let flags = text[flags_start..j].to_string();
        let width = digits(text, &mut j);
        let precision = if bytes.get(j) == Some(&b'.') {
            j += 1;
            Some(digits(text, &mut j).unwrap_or(0))
        } else {
            None
        };
        let length_start = j;
        while j < bytes.len() && b"hlzjt".contains(&bytes[j]) {
            j += 1;
        }
        let length = text[length_start..j].to_string();
        let Some(conv) = text[j..].chars().next() else {
            return Err(FormatError {
                message: "incomplete conversion at the end of the format string".into(),
                start,
                end: j,
            });
        };
        let end = j + conv.len_utf8();
        let valid = CONVERSIONS.contains(conv) && (length.is_empty() || "duoxXp".contains(conv));
        if !valid {
            literal.push_str(&text[start..end]);
            i = end;
            continue;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Conversion(Conversion { flags, width, precision, length, conv, start, end }));
        i = end;
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn digits(text: &str, j: &mut usize) -> Option<usize> {
    let start = *j;
    while *j < text.len() && text.as_bytes()[*j].is_ascii_digit() {
        *j += 1;
    }
    text[start..*j].parse().ok()
}

/// The conversions of a parsed format, in order.
pub fn conversions(pieces: &[Piece]) -> impl Iterator<Item = &Conversion> {
    pieces.iter().filter_map(|p| match p {
        Piece::Conversion(c) => Some(c),
        Piece::Literal(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_width_precision_length() {
        let pieces = parse_format("a %-08.3lld b %s%%").expect("valid");
        assert_eq!(pieces.len(), 5);
        let Piece::Conversion(c) = &pieces[1] else { panic!("conversion expected") };
        assert_eq!((c.flags.as_str(), c.width, c.precision, c.length.as_str(), c.conv), ("-", Some(8), Some(3), "ll", 'd'));
        assert_eq!(pieces[4], Piece::Literal("%".into()));
    }

    #[test]
    fn unknown_conversions_are_text() {
        let pieces = parse_format("x %f %i").expect("valid");
        assert_eq!(conversions(&pieces).count(), 0);
    }
}
