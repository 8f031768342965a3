//! Where bpftrace 0.17 locates a node of a script: the line and columns its lexer counts,
//! which are not always the bytes' own. Its lexer moves a token's start only over blanks (a
//! token glued to the ones before it starts where they start: `(@m[1]`, `x,@m[1]`), and it
//! counts the `*` or `)` that ends a struct type name in a cast (`(struct foo *)p`) twice, so
//! every column after one on its line is one more than the byte's.
//!
//! Known differences: bpftrace also counts the expansion of each macro it substitutes, and scans
//! a line from its start, so a comment or definition running over from a line before is read
//! as code here.

use super::helper_errors::SiteSpan;
use crate::program::SourceLocation;
use grammar::{Sources, Span};

/// bpftrace's location of a site: the span its parser gives the node, whose start its lexer
/// moves back to the end of the last blank before it (bpftrace steps its location over blanks
/// only, so a token glued to the ones before it starts where they start: `(@m[1]`, `x,@m[1]`).
pub(super) fn locate(at: SiteSpan, sources: &Sources) -> SourceLocation {
    let node = match at {
        SiteSpan::Node(span) => unwrapped(span, sources),
        SiteSpan::Operator(span) => {
            let inner = unwrapped(span, sources);
            let text = sources.text(inner);
            let len = if text.starts_with("++") || text.starts_with("--") { 2 } else { 1 };
            Span::new(inner.start as usize, (inner.start as usize + len).min(inner.end as usize))
        }
        SiteSpan::Assignment { stmt, value } => {
            let before = sources.text(Span::new(stmt.start as usize, value.start as usize));
            let trimmed = before.trim_end();
            if trimmed.ends_with('=') {
                let at = stmt.start as usize + trimmed.len() - 1;
                Span::new(at, at + 1)
            } else {
                stmt
            }
        }
    };
    let Some((file, local)) = sources.locate(node) else {
        return SourceLocation {
            file: String::new(),
            line: 0,
            column: 0,
            end_line: 0,
            end_column: 0,
            source_line: String::new(),
        };
    };
    let text = file.text.as_str();
    let (start, end) = (local.start as usize, local.end as usize);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let lexed = lex_line(&text.as_bytes()[line_start..line_end.max(end.min(line_end))], start - line_start);
    let begin = line_start + lexed.token_start;
    let line = text[..start].matches('\n').count() as u32 + 1;
    let end_line = line + text[start..end].matches('\n').count() as u32;
    SourceLocation {
        file: file.name.clone(),
        line,
        column: lexed.column(begin - line_start),
        end_line,
        end_column: lexed.column(end.saturating_sub(line_start)),
        source_line: text[line_start..line_end].to_owned(),
    }
}

/// `span` without the parentheses around the whole of it, which rbt's spans include and
/// bpftrace's nodes do not (its lexer still moves the start back over them).
fn unwrapped(mut span: Span, sources: &Sources) -> Span {
    loop {
        let text = sources.text(span);
        if text.len() < 2 || !text.starts_with('(') || !text.ends_with(')') || !wraps_whole(text) {
            return span;
        }
        span = Span::new(span.start as usize + 1, span.end as usize - 1);
        let inner = sources.text(span);
        let leading = inner.len() - inner.trim_start().len();
        let trailing = inner.len() - inner.trim_end().len();
        span = Span::new(span.start as usize + leading, span.end as usize - trailing);
    }
}

/// Whether the `(` that starts `text` closes at its last byte (strings and characters aside).
fn wraps_whole(text: &str) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut bytes = text.bytes().enumerate();
    while let Some((i, c)) = bytes.next() {
        match (in_string, c) {
            (true, b'\\') => {
                bytes.next();
            }
            (_, b'"') => in_string = !in_string,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i == text.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// What bpftrace's lexer does on one line, up to a token.
struct LexedLine {
    /// Where its location's start is when it reaches the token: after the last blank.
    token_start: usize,
    /// The bytes it counts twice, in order.
    doubled: Vec<usize>,
}

impl LexedLine {
    /// bpftrace's column (from 1) of the byte at `offset` in the line.
    fn column(&self, offset: usize) -> u32 {
        (offset + 1 + self.doubled.iter().filter(|&&d| d < offset).count()) as u32
    }
}

/// Lexes `line` as bpftrace 0.17's lexer does, as far as locations go: blanks between tokens
/// step the location (up to `token`), strings and comments do not; `struct`, `union` and
/// `enum` start a type name, which a `{` makes a definition and a `*` or `)` ends, that byte
/// lexed twice.
fn lex_line(line: &[u8], token: usize) -> LexedLine {
    #[derive(PartialEq)]
    enum State {
        Code,
        String,
        Comment,
        TypeName,
        Definition(u32),
    }
    let mut lexed = LexedLine { token_start: 0, doubled: Vec::new() };
    let mut state = State::Code;
    let mut i = 0;
    while i < line.len() {
        let (c, next) = (line[i], line.get(i + 1).copied());
        match state {
            State::Code => match c {
                b' ' | b'\t' | b'\r' if i < token => lexed.token_start = i + 1,
                b'"' => state = State::String,
                b'/' if next == Some(b'*') => {
                    state = State::Comment;
                    i += 1;
                }
                b'/' if next == Some(b'/') => break,
                _ if starts_type_name(line, i) => {
                    state = State::TypeName;
                    i += line[i..].iter().position(|b| !b.is_ascii_alphabetic()).unwrap_or(line.len() - i) - 1;
                }
                _ => {}
            },
            State::String => match c {
                b'\\' => i += 1,
                b'"' => state = State::Code,
                _ => {}
            },
            State::Comment => {
                if c == b'*' && next == Some(b'/') {
                    state = State::Code;
                    i += 1;
                }
            }
            State::TypeName => match c {
                b'*' | b')' => {
                    lexed.doubled.push(i);
                    state = State::Code;
                    // The byte is lexed again as code.
                    continue;
                }
                b'{' => state = State::Definition(1),
                _ => {}
            },
            State::Definition(depth) => match c {
                b'{' => state = State::Definition(depth + 1),
                b'}' if depth == 1 => state = State::Code,
                b'}' => state = State::Definition(depth - 1),
                _ => {}
            },
        }
        i += 1;
    }
    lexed
}

/// Whether the keyword `struct`, `union` or `enum` (a whole word) starts at `i`.
fn starts_type_name(line: &[u8], i: usize) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    if i > 0 && word(&line[i - 1]) {
        return false;
    }
    let end = line[i..].iter().position(|b| !word(b)).map_or(line.len(), |n| i + n);
    matches!(&line[i..end], b"struct" | b"union" | b"enum")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(text: &str, at: impl Fn(&str) -> SiteSpan) -> (u32, u32, u32, u32, String) {
        let sources = Sources::of_script("stdin", text);
        let l = locate(at(text), &sources);
        (l.line, l.column, l.end_line, l.end_column, l.source_line)
    }

    fn span_of(text: &str, part: &str) -> Span {
        let start = text.find(part).expect("part of the text");
        Span::new(start, start + part.len())
    }

    // The columns below are bpftrace 0.17's for these programs (run with `-kk`).

    #[test]
    fn nodes_start_after_the_last_blank_before_them() {
        let text = "i:ms:100 { @[1] = 1; delete(@[2]); printf(\"%d\\n\",@[3]); if (@[8]) {} exit(); }";
        let at = |part: &'static str| move |t: &str| SiteSpan::Node(span_of(t, part));
        let delete = located(text, at("delete(@[2])"));
        assert_eq!((delete.1, delete.3), (22, 34));
        // Glued to the format string: bpftrace's token starts with `printf(`.
        let glued = located(text, at("@[3]"));
        assert_eq!((glued.1, glued.3), (36, 54));
        // rbt's span of the parenthesized condition includes the parentheses; bpftrace's node
        // is the map, whose token starts at the `(`.
        let condition = located(text, at("(@[8])"));
        assert_eq!((condition.1, condition.3), (60, 65));
    }

    #[test]
    fn blanks_in_strings_and_comments_do_not_move_the_start() {
        let text = "BEGIN { @x[0]=1; @y[0]=1; printf(\"a b%d\\n\",@x[1]); /* c d */@y[2]; exit(); }";
        let string = located(text, |t| SiteSpan::Node(span_of(t, "@x[1]")));
        assert_eq!((string.1, string.3), (27, 49));
        let comment = located(text, |t| SiteSpan::Node(span_of(t, "@y[2]")));
        assert_eq!((comment.1, comment.3), (52, 66));
    }

    #[test]
    fn operators_and_assignments_are_located_at_their_operator() {
        let text = "BEGIN { @z[0]=0; $a = *(int32*)8; ++@y[3]; @x[2] = 2; @z[1]=3; exit(); }";
        let deref = located(text, |t| SiteSpan::Operator(span_of(t, "*(int32*)8")));
        assert_eq!((deref.1, deref.3), (23, 24));
        let increment = located(text, |t| SiteSpan::Operator(span_of(t, "++@y[3]")));
        assert_eq!((increment.1, increment.3), (35, 37));
        let assign = |stmt: &'static str| {
            move |t: &str| {
                let stmt = span_of(t, stmt);
                SiteSpan::Assignment { stmt, value: Span::new(stmt.end as usize - 1, stmt.end as usize) }
            }
        };
        let plain = located(text, assign("@x[2] = 2"));
        assert_eq!((plain.1, plain.3), (50, 51));
        // Without blanks the `=` token starts where the map does.
        let glued = located(text, assign("@z[1]=3"));
        assert_eq!((glued.1, glued.3), (55, 61));
    }

    #[test]
    fn struct_casts_count_their_last_byte_twice() {
        // bpftrace 0.17: 61-68, 76-99 and 107-114.
        let text = "struct foo {int abc;}; BEGIN { $p = (struct foo*)0; $tmp = $p->abc; \
                    $t2 = ((struct foo*) 0)->abc; $t3 = $p->abc + 1; exit(); }";
        let nth = |n: usize, part: &'static str| {
            move |t: &str| {
                let start = t.match_indices(part).nth(n).expect("part of the text").0;
                SiteSpan::Node(Span::new(start, start + part.len()))
            }
        };
        let columns = |at| {
            let l = located(text, at);
            (l.1, l.3)
        };
        assert_eq!(columns(nth(0, "$p->abc")), (61, 68));
        assert_eq!(columns(nth(0, "((struct foo*) 0)->abc")), (76, 99));
        assert_eq!(columns(nth(1, "$p->abc")), (107, 114));
    }

    #[test]
    fn locations_over_several_lines_keep_both_lines() {
        let text = "BEGIN {\n  delete(@x[\n    1]);\n}";
        let (line, _, end_line, _, source) = located(text, |t| SiteSpan::Node(span_of(t, "delete(@x[\n    1])")));
        assert_eq!((line, end_line, source.as_str()), (2, 3, "  delete(@x["));
    }
}
