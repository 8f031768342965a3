//! Integer constant expressions, as `#if` evaluates them and as a header's `#define NAME (1 <<
//! 3)` gives a value: C's operators and precedence over 64-bit integers, integer and character
//! literals (suffixes such as `UL` ignored), and identifiers through a lookup.

use super::scan::{Kind, PpToken};

/// C casts to integer types are read and skipped: `((__u32)1)` is 1.
const INTEGER_TYPE_WORDS: [&str; 24] = [
    "int",
    "unsigned",
    "signed",
    "long",
    "short",
    "char",
    "__u8",
    "__u16",
    "__u32",
    "__u64",
    "__s8",
    "__s16",
    "__s32",
    "__s64",
    "u8",
    "u16",
    "u32",
    "u64",
    "s8",
    "s16",
    "s32",
    "s64",
    "size_t",
    "__kernel_size_t",
];

/// Evaluates `tokens`; `ident` gives an identifier's value (`None`: not a constant).
pub(super) fn evaluate(tokens: &[PpToken], ident: &dyn Fn(&str) -> Option<i64>) -> Result<i64, String> {
    let mut parser = Parser { tokens, pos: 0, ident };
    let value = parser.ternary(true)?;
    match parser.tokens.get(parser.pos) {
        None => Ok(value),
        Some(t) => Err(format!("unexpected `{}` in the expression", t.text)),
    }
}

struct Parser<'t> {
    tokens: &'t [PpToken],
    pos: usize,
    ident: &'t dyn Fn(&str) -> Option<i64>,
}

/// Binary operators by precedence, loosest first.
const LEVELS: [&[&str]; 10] = [
    &["||"],
    &["&&"],
    &["|"],
    &["^"],
    &["&"],
    &["==", "!="],
    &["<", "<=", ">", ">="],
    &["<<", ">>"],
    &["+", "-"],
    &["*", "/", "%"],
];

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(|t| &*t.text)
    }

    fn expect(&mut self, text: &str) -> Result<(), String> {
        if self.peek() == Some(text) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{text}` in the expression"))
        }
    }

    /// `live` is false in a branch that is not evaluated (`0 && 1/0` is 0, not an error).
    fn ternary(&mut self, live: bool) -> Result<i64, String> {
        let cond = self.binary(0, live)?;
        if self.peek() != Some("?") {
            return Ok(cond);
        }
        self.pos += 1;
        let then = self.ternary(live && cond != 0)?;
        self.expect(":")?;
        let otherwise = self.ternary(live && cond == 0)?;
        Ok(if cond != 0 { then } else { otherwise })
    }

    fn binary(&mut self, level: usize, live: bool) -> Result<i64, String> {
        if level == LEVELS.len() {
            return self.unary(live);
        }
        let mut lhs = self.binary(level + 1, live)?;
        while let Some(op) = self.peek().filter(|op| LEVELS[level].contains(op)).map(str::to_owned) {
            self.pos += 1;
            let rhs_live = live && !(op == "&&" && lhs == 0) && !(op == "||" && lhs != 0);
            let rhs = self.binary(level + 1, rhs_live)?;
            lhs = apply(&op, lhs, rhs, rhs_live)?;
        }
        Ok(lhs)
    }

    fn unary(&mut self, live: bool) -> Result<i64, String> {
        let Some(token) = self.tokens.get(self.pos) else { return Err("the expression ends too early".into()) };
        self.pos += 1;
        match (&*token.text, token.kind) {
            ("-", _) => Ok(self.unary(live)?.wrapping_neg()),
            ("+", _) => self.unary(live),
            ("!", _) => Ok(i64::from(self.unary(live)? == 0)),
            ("~", _) => Ok(!self.unary(live)?),
            ("(", _) => {
                if self.skip_cast() {
                    return self.unary(live);
                }
                let value = self.ternary(live)?;
                self.expect(")")?;
                Ok(value)
            }
            (text, Kind::Number) => integer_literal(text).ok_or_else(|| format!("`{text}` is not an integer")),
            (text, Kind::Char) => char_literal(text).ok_or_else(|| format!("`{text}` is not a character")),
            (text, Kind::Ident) => (self.ident)(text).ok_or_else(|| format!("`{text}` is not a constant")),
            (text, _) => Err(format!("unexpected `{text}` in the expression")),
        }
    }

    /// After `(`: skips `TYPE WORDS )` when that is what follows, and says whether it did.
    fn skip_cast(&mut self) -> bool {
        let words = self.tokens[self.pos..]
            .iter()
            .take_while(|t| t.kind == Kind::Ident && INTEGER_TYPE_WORDS.contains(&&*t.text))
            .count();
        if words > 0 && self.tokens.get(self.pos + words).is_some_and(|t| t.is(")")) {
            self.pos += words + 1;
            return true;
        }
        false
    }
}

fn apply(op: &str, a: i64, b: i64, live: bool) -> Result<i64, String> {
    let shift = |b: i64| u32::try_from(b & 63).unwrap_or(0);
    Ok(match op {
        "||" => i64::from(a != 0 || b != 0),
        "&&" => i64::from(a != 0 && b != 0),
        "|" => a | b,
        "^" => a ^ b,
        "&" => a & b,
        "==" => i64::from(a == b),
        "!=" => i64::from(a != b),
        "<" => i64::from(a < b),
        "<=" => i64::from(a <= b),
        ">" => i64::from(a > b),
        ">=" => i64::from(a >= b),
        "<<" => a.wrapping_shl(shift(b)),
        ">>" => a.wrapping_shr(shift(b)),
        "+" => a.wrapping_add(b),
        "-" => a.wrapping_sub(b),
        "*" => a.wrapping_mul(b),
        "/" | "%" if b == 0 => {
            if live {
                return Err("division by zero in the expression".into());
            }
            0
        }
        "/" => a.wrapping_div(b),
        _ => a.wrapping_rem(b),
    })
}

/// A C integer literal: decimal, `0x` hex, `0b` binary, `0` octal, `'` separators and `u`/`l`
/// suffixes allowed. Values beyond `i64::MAX` wrap, as unsigned values do in C.
pub(super) fn integer_literal(text: &str) -> Option<i64> {
    let digits = text.trim_end_matches(['u', 'U', 'l', 'L']).replace('\'', "");
    let (radix, body) = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        (16, hex)
    } else if let Some(bin) = digits.strip_prefix("0b").or_else(|| digits.strip_prefix("0B")) {
        (2, bin)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits.as_str())
    };
    #[allow(clippy::cast_possible_wrap, reason = "C's unsigned constants wrap into the signed range")]
    u64::from_str_radix(body, radix).ok().map(|v| v as i64)
}

/// `'a'`, `'\n'`, `'\x41'`, `'\0'`.
fn char_literal(text: &str) -> Option<i64> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let value = match inner.strip_prefix('\\') {
        None => u32::from(inner.chars().next()?),
        Some(escape) => match escape.chars().next()? {
            'n' => 10,
            't' => 9,
            'r' => 13,
            '0'..='7' => u32::from_str_radix(escape, 8).ok()?,
            'x' => u32::from_str_radix(&escape[1..], 16).ok()?,
            other => u32::from(other),
        },
    };
    Some(i64::from(value))
}

#[cfg(test)]
mod tests {
    use super::super::scan::{tokens, Dialect};
    use super::*;

    fn eval(text: &str) -> Result<i64, String> {
        evaluate(&tokens(text, Dialect::C), &|name| (name == "TEN").then_some(10))
    }

    #[test]
    fn operators_follow_c_precedence() {
        assert_eq!(eval("1 + 2 * 3 << 1"), Ok(14));
        assert_eq!(eval("!0 && (TEN > 5 || 1 / 0)"), Ok(1));
        assert_eq!(eval("TEN == 10 ? 0x10 : 010"), Ok(16));
        assert_eq!(eval("-1 < 0"), Ok(1));
        assert_eq!(eval("((__u32)1UL << 4) | 'A'"), Ok(81));
        assert_eq!(eval("0 && 1 / 0"), Ok(0));
    }

    #[test]
    fn mistakes_are_errors() {
        assert!(eval("1 +").is_err());
        assert!(eval("1 / 0").is_err());
        assert!(eval("FOO").is_err());
        assert!(eval("(1").is_err());
    }
}
