//! Preprocessing tokens: the words the preprocessor sees in directives, macro bodies and the
//! script's text (identifiers, numbers, string and character literals, punctuators), with their
//! byte ranges, and the line classifier that finds directives outside comments.
//!
//! In a script's body `@name`, `$name` and `$1` are one token each, so that map and variable
//! names are never taken for macros, as bpftrace 0.17's lexer never takes them for macros.

use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Ident,
    Number,
    Str,
    Char,
    Punct,
    /// `@map`, `$var`, a stray character: copied, never expanded.
    Other,
}

/// One preprocessing token. `hide` is the set of macros whose expansion produced it, which
/// may not expand again (the C standard's "painted blue" tokens).
#[derive(Clone, Debug)]
pub(super) struct PpToken {
    pub kind: Kind,
    pub text: Rc<str>,
    pub start: usize,
    pub end: usize,
    pub space_before: bool,
    pub hide: Rc<[Rc<str>]>,
}

impl PpToken {
    pub fn is(&self, text: &str) -> bool {
        &*self.text == text
    }

    pub fn hidden(&self, name: &str) -> bool {
        self.hide.iter().any(|h| &**h == name)
    }

    /// A token made by the preprocessor itself (a stringified argument, a pasted name).
    pub fn synthetic(kind: Kind, text: &str, space_before: bool) -> PpToken {
        PpToken { kind, text: text.into(), start: 0, end: 0, space_before, hide: Rc::from(Vec::new()) }
    }
}

/// Whether `@name`/`$name` are single tokens (a script) and `'x'` is a character (C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    Script,
    C,
}

const PUNCTUATORS: [&str; 24] = [
    "...", "<<=", ">>=", "->", "++", "--", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "*=", "/=", "%=", "+=",
    "-=", "&=", "^=", "|=", "##", "::",
];

/// Splits `text` into tokens; comments count as whitespace. Offsets are relative to `text`.
pub(super) fn tokens(text: &str, dialect: Dialect) -> Vec<PpToken> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut space = false;
    while pos < bytes.len() {
        let c = bytes[pos];
        if c.is_ascii_whitespace() {
            pos += 1;
            space = true;
            continue;
        }
        if text[pos..].starts_with("//") {
            pos = text[pos..].find('\n').map_or(bytes.len(), |i| pos + i);
            space = true;
            continue;
        }
        if text[pos..].starts_with("/*") {
            pos = text[pos + 2..].find("*/").map_or(bytes.len(), |i| pos + 2 + i + 2);
            space = true;
            continue;
        }
        let (kind, end) = token_at(text, pos, dialect);
        out.push(PpToken {
            kind,
            text: text[pos..end].into(),
            start: pos,
            end,
            space_before: space,
            hide: Rc::from(Vec::new()),
        });
        space = false;
        pos = end;
    }
    out
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The kind and end of the token starting at `pos` (not whitespace or a comment).
fn token_at(text: &str, pos: usize, dialect: Dialect) -> (Kind, usize) {
    let bytes = text.as_bytes();
    let c = bytes[pos];
    let ident_end =
        |from: usize| bytes[from..].iter().position(|&b| !is_ident_char(b)).map_or(bytes.len(), |i| from + i);
    if is_ident_start(c) {
        return (Kind::Ident, ident_end(pos));
    }
    if c.is_ascii_digit() || (c == b'.' && bytes.get(pos + 1).is_some_and(u8::is_ascii_digit)) {
        let mut end = pos + 1;
        while end < bytes.len() {
            let b = bytes[end];
            let exponent_sign = matches!(b, b'+' | b'-') && matches!(bytes[end - 1], b'e' | b'E' | b'p' | b'P');
            if !(exponent_sign || is_ident_char(b) || b == b'.') {
                break;
            }
            end += 1;
        }
        return (Kind::Number, end);
    }
    if dialect == Dialect::Script && matches!(c, b'@' | b'$') {
        return (Kind::Other, ident_end(pos + 1).max(pos + 1));
    }
    if c == b'"' || (c == b'\'' && dialect == Dialect::C) {
        return (if c == b'"' { Kind::Str } else { Kind::Char }, quoted_end(text, pos));
    }
    if let Some(p) = PUNCTUATORS.iter().find(|p| text[pos..].starts_with(**p)) {
        return (Kind::Punct, pos + p.len());
    }
    let len = text[pos..].chars().next().map_or(1, char::len_utf8);
    (if c.is_ascii_punctuation() { Kind::Punct } else { Kind::Other }, pos + len)
}

/// The end of the string or character literal opening at `pos`: after its closing quote, or at
/// the end of the line when it is not closed.
pub(super) fn quoted_end(text: &str, pos: usize) -> usize {
    let bytes = text.as_bytes();
    let quote = bytes[pos];
    let mut i = pos + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1 + text[i + 1..].chars().next().map_or(0, char::len_utf8),
            b'\n' => return i,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Where `pattern` (ASCII) occurs in `bytes` at or after `from`: a byte search, so `from` need
/// not be a character boundary.
fn find_from(bytes: &[u8], from: usize, pattern: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(pattern.len()).position(|w| w == pattern).map(|i| from + i)
}

/// One line of a file as the preprocessor sees it.
#[derive(Debug)]
pub(super) enum Line {
    /// Text that is not a directive, up to and including its newline (several lines when a
    /// block comment runs on).
    Body { start: usize, end: usize },
    /// A directive: its physical range (continuation lines included, its last newline not),
    /// and its logical text with continuations joined and comments made spaces, where byte `i`
    /// came from `start + offsets[i]`.
    Directive { start: usize, end: usize, text: String, offsets: Vec<usize> },
}

/// Splits a file into body runs and directives. A `#` starts a directive only at the start of a
/// line outside a block comment; `skip_shebang` leaves a first line `#!...` to the body.
pub(super) fn lines(text: &str, dialect: Dialect, skip_shebang: bool) -> Vec<Line> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut in_comment = false;
    let mut body_start = 0;
    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let first = text[pos..line_end].trim_start();
        let shebang = pos == 0 && skip_shebang && text.starts_with("#!");
        if !in_comment && first.starts_with('#') && !shebang {
            if body_start < pos {
                out.push(Line::Body { start: body_start, end: pos });
            }
            let directive = directive_at(text, pos);
            pos = match &directive {
                Line::Directive { end, .. } => *end,
                Line::Body { end, .. } => *end,
            };
            out.push(directive);
            body_start = pos;
            continue;
        }
        in_comment = scan_body_line(&text[pos..line_end], in_comment, dialect);
        pos = (line_end + 1).min(text.len());
    }
    if body_start < text.len() {
        out.push(Line::Body { start: body_start, end: text.len() });
    }
    out
}

/// Whether a block comment is still open after `line`, given whether one was open before it.
fn scan_body_line(line: &str, mut in_comment: bool, dialect: Dialect) -> bool {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if in_comment {
            match find_from(bytes, i, b"*/") {
                Some(j) => {
                    i = j + 2;
                    in_comment = false;
                }
                None => return true,
            }
            continue;
        }
        match bytes[i] {
            b'"' => i = quoted_end(line, i),
            b'\'' if dialect == Dialect::C => i = quoted_end(line, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => return false,
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                in_comment = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    in_comment
}

/// The directive starting on the line at `pos`: lines ending in `\` continue it, and so does a
/// block comment opened in it.
fn directive_at(text: &str, pos: usize) -> Line {
    let bytes = text.as_bytes();
    let mut logical = String::new();
    let mut offsets = Vec::new();
    let mut i = pos;
    let mut in_comment = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_comment {
            match find_from(bytes, i, b"*/") {
                Some(j) => {
                    in_comment = false;
                    i = j + 2;
                }
                None => i = bytes.len(),
            }
            continue;
        }
        if c == b'\\' && bytes[i + 1..].starts_with(b"\n") {
            i += 2;
            continue;
        }
        if c == b'\\' && bytes[i + 1..].starts_with(b"\r\n") {
            i += 3;
            continue;
        }
        if c == b'\n' {
            break;
        }
        if bytes[i..].starts_with(b"/*") {
            in_comment = true;
            logical.push(' ');
            offsets.push(i - pos);
            i += 2;
            continue;
        }
        if bytes[i..].starts_with(b"//") {
            i = find_from(bytes, i, b"\n").unwrap_or(bytes.len());
            break;
        }
        if c == b'"' || c == b'\'' {
            let end = quoted_end(text, i);
            for (k, ch) in text[i..end].char_indices() {
                logical.push(ch);
                offsets.extend(std::iter::repeat_n(i + k - pos, ch.len_utf8()));
            }
            i = end;
            continue;
        }
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        logical.push_str(&text[i..i + len]);
        offsets.extend(std::iter::repeat_n(i - pos, len));
        i += len;
    }
    let end = if in_comment { text.len() } else { i };
    Line::Directive { start: pos, end, text: logical, offsets }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str, dialect: Dialect) -> Vec<String> {
        tokens(src, dialect).iter().map(|t| t.text.to_string()).collect()
    }

    #[test]
    fn script_names_are_one_token_and_comments_are_space() {
        assert_eq!(
            texts("@map[$x] = FOO /* c */ + $1; // x", Dialect::Script),
            ["@map", "[", "$x", "]", "=", "FOO", "+", "$1", ";"]
        );
        assert_eq!(texts("a->b <<= 0x1fUL 'c'", Dialect::C), ["a", "->", "b", "<<=", "0x1fUL", "'c'"]);
    }

    #[test]
    fn directives_are_found_outside_comments_and_continue_over_backslashes() {
        let src = "/* #if not */\n#define A \\\n  1 // c\nx\n  # endif\n";
        let found = lines(src, Dialect::Script, true);
        let directives: Vec<&str> = found
            .iter()
            .filter_map(|l| match l {
                Line::Directive { text, .. } => Some(text.as_str()),
                Line::Body { .. } => None,
            })
            .collect();
        assert_eq!(directives, ["#define A   1 ", "  # endif"]);
    }

    #[test]
    fn a_shebang_is_body() {
        let found = lines("#!/usr/bin/env bpftrace\n#define A 1\n", Dialect::Script, true);
        assert!(matches!(found[0], Line::Body { start: 0, end: 24 }));
    }
}
