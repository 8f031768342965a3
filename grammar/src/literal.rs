//! Decoding literals: integer literals (decimal, hex, octal, `1_000`, `1e6`) and string escapes.

use crate::{Diagnostic, Span};

/// Why an integer literal could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntError {
    /// The text is not a well-formed literal, e.g. `08`, `5K`, `1_`.
    Malformed,
    /// Well formed, but larger than `u64::MAX`.
    OutOfRange,
}

/// Decodes an integer literal the way bpftrace 0.17 does: `0x1f` is hex, `017` octal, `1_000` and
/// `1e3` decimal. `text` is everything the lexer took as one number (digits, letters and `_`).
pub(crate) fn parse_int(text: &str) -> Result<u64, IntError> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return digits_value(hex, 16, false);
    }
    if let Some((coefficient, exponent)) = text.split_once(['e', 'E']) {
        let coefficient = digits_value(coefficient, 10, true)?;
        let exponent = digits_value(exponent, 10, true)?;
        let exponent = u32::try_from(exponent).map_err(|_| IntError::OutOfRange)?;
        let scale = 10u64.checked_pow(exponent).ok_or(IntError::OutOfRange)?;
        return coefficient.checked_mul(scale).ok_or(IntError::OutOfRange);
    }
    if text.len() > 1 && text.starts_with('0') {
        return digits_value(text, 8, true);
    }
    digits_value(text, 10, true)
}

/// The value of `digits` in `radix`. Underscores may separate digits but not start or end them.
fn digits_value(digits: &str, radix: u32, underscores: bool) -> Result<u64, IntError> {
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return Err(IntError::Malformed);
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        if c == '_' && underscores {
            continue;
        }
        let digit = c.to_digit(radix).ok_or(IntError::Malformed)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(IntError::OutOfRange)?;
    }
    Ok(value)
}

/// Resolves the escapes in the body of a string literal (the text between the quotes, which
/// starts at byte `offset` of the source). Bad escapes are reported and left out of the result.
pub(crate) fn unescape(body: &str, offset: usize, diagnostics: &mut Vec<Diagnostic>) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, kind)) = chars.next() else {
            // A lone backslash before the closing quote cannot happen (it would escape the quote),
            // but an unterminated string can end with one.
            let span = Span::new(offset + start, offset + start + 1);
            diagnostics.push(Diagnostic::error("syntax", "string ends in a lone `\\`", span));
            break;
        };
        let resolved = match kind {
            'n' => Some(u32::from(b'\n')),
            't' => Some(u32::from(b'\t')),
            'r' => Some(u32::from(b'\r')),
            '\\' | '"' | '\'' => Some(u32::from(kind)),
            'x' => take_digits(&mut chars, 16, 2, None),
            '0'..='7' => take_digits(&mut chars, 8, 2, kind.to_digit(8)),
            _ => None,
        };
        let end = chars.peek().map_or(body.len(), |&(i, _)| i);
        let span = Span::new(offset + start, offset + end);
        let written = &body[start..end];
        match resolved {
            Some(value) if value <= 0x7f => out.extend(char::from_u32(value)),
            Some(value) if value <= 0xff => diagnostics.push(
                Diagnostic::error("syntax", format!("escape `{written}` is not an ASCII character"), span)
                    .with_help("rbt strings are UTF-8 text; bytes above 0x7f are not supported"),
            ),
            Some(_) => diagnostics.push(Diagnostic::error(
                "syntax",
                format!("octal escape `{written}` is out of range (the largest is `\\377`)"),
                span,
            )),
            None => diagnostics.push(
                Diagnostic::error("syntax", format!("invalid escape `{written}`"), span)
                    .with_help("known escapes: \\n \\t \\r \\\\ \\\" \\' \\xNN \\NNN (octal)"),
            ),
        }
    }
    out
}

/// Consumes up to `max` more digits in `radix`, continuing from `initial` (a digit already read);
/// `None` if there was no digit at all.
fn take_digits(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    radix: u32,
    max: usize,
    initial: Option<u32>,
) -> Option<u32> {
    let mut value = initial;
    for _ in 0..max {
        let Some(digit) = chars.peek().and_then(|&(_, c)| c.to_digit(radix)) else {
            break;
        };
        chars.next();
        value = Some(value.unwrap_or(0) * radix + digit);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_forms() {
        assert_eq!(parse_int("0"), Ok(0));
        assert_eq!(parse_int("1234"), Ok(1234));
        assert_eq!(parse_int("0x1F"), Ok(31));
        assert_eq!(parse_int("010"), Ok(8));
        assert_eq!(parse_int("0_1"), Ok(1));
        assert_eq!(parse_int("1_000_000"), Ok(1_000_000));
        assert_eq!(parse_int("1e3"), Ok(1000));
        assert_eq!(parse_int("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn integer_errors() {
        assert_eq!(parse_int("18446744073709551616"), Err(IntError::OutOfRange));
        assert_eq!(parse_int("0x10000000000000000"), Err(IntError::OutOfRange));
        assert_eq!(parse_int("1e20"), Err(IntError::OutOfRange));
        assert_eq!(parse_int("08"), Err(IntError::Malformed));
        assert_eq!(parse_int("5K"), Err(IntError::Malformed));
        assert_eq!(parse_int("1_"), Err(IntError::Malformed));
        assert_eq!(parse_int("0x"), Err(IntError::Malformed));
        assert_eq!(parse_int("0x1_F"), Err(IntError::Malformed));
    }

    fn unescape_ok(body: &str) -> String {
        let mut diagnostics = Vec::new();
        let out = unescape(body, 0, &mut diagnostics);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        out
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape_ok(r#"a\n\t\r\\\"\'b"#), "a\n\t\r\\\"'b");
        assert_eq!(unescape_ok(r"\x41\x4g"), "A\u{4}g");
        assert_eq!(unescape_ok(r"\101\0\1010"), "A\0A0");
        assert_eq!(unescape_ok(r"\7"), "\u{7}");
    }

    #[test]
    fn bad_escapes() {
        let mut diagnostics = Vec::new();
        let out = unescape(r"a\qb\777\xff\x", 10, &mut diagnostics);
        assert_eq!(out, "ab");
        let spans: Vec<_> = diagnostics.iter().map(|d| d.primary_span().range()).collect();
        assert_eq!(spans, vec![11..13, 14..18, 18..22, 22..24]);
    }
}
