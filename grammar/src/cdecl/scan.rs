//! Finding where a C definition at the top level ends, and lexing it. The rule is bpftrace's: a
//! `struct`, `union` or `enum` with a body ends at the `}` closing it (a `;` right after belongs
//! to it too), one without a body at its `;`; a `typedef` ends at its `;`.
//!
//! ```text
//! struct Foo { int a; struct { int b; } n; } uprobe:/bin/x:f { ... }
//! ^------------------------------------------^ the definition; then the probes go on
//! ```

use super::parse::parse_tokens;
use super::CDefinition;
use crate::lexer::{self, RawToken};
use crate::{Diagnostic, Span};

/// One token of a C definition: what logos saw, where, and its text.
#[derive(Clone, Copy, Debug)]
pub(super) struct CToken<'s> {
    pub(super) raw: RawToken,
    pub(super) span: Span,
    pub(super) text: &'s str,
}

/// How deeply braces and parentheses may nest inside one definition: the parser recurses once
/// per level.
const MAX_NESTING: usize = 64;

/// Whether the top-level item at `pos` is a C definition: it starts with the word `struct`,
/// `union`, `enum` or `typedef` (an attach point never does).
pub(crate) fn starts_definition(src: &str, pos: usize) -> bool {
    let rest = &src[pos..];
    let word_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let after = rest[word_len..].chars().next();
    matches!(&rest[..word_len], "struct" | "union" | "enum" | "typedef")
        && after.is_none_or(|c| c.is_whitespace() || c == '{' || c == '/')
}

/// Scans the definition starting at `start` (where [`starts_definition`] holds) and parses it.
/// Returns the definition (`None` after an error, which is reported) and where it ends.
pub(crate) fn scan_definition(
    src: &str,
    start: usize,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Option<CDefinition>, usize) {
    let (tokens, end, complete) = definition_tokens(src, start, diagnostics);
    if !complete {
        return (None, end);
    }
    (parse_tokens(&tokens, Span::new(start, end), diagnostics), end)
}

/// The tokens of the definition at `start`, where it ends, and whether it is whole enough to
/// parse (a lexical error or nesting too deep has been reported otherwise).
fn definition_tokens<'s>(
    src: &'s str,
    start: usize,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<CToken<'s>>, usize, bool) {
    let mut lexer = lexer::lexer_at(src, start);
    let mut tokens: Vec<CToken<'s>> = Vec::new();
    let mut depth = 0usize;
    let mut complete = true;
    let mut end = start;
    while let Some(raw) = lexer.next() {
        let span = Span::new(start + lexer.span().start, start + lexer.span().end);
        let Ok(raw) = raw else {
            let shown: String = lexer.slice().chars().take(1).collect();
            diagnostics.push(Diagnostic::error(
                "syntax",
                format!("invalid character '{}' in a C definition", shown.escape_debug()),
                span,
            ));
            complete = false;
            continue;
        };
        if matches!(raw, RawToken::LineComment | RawToken::BlockComment(_)) {
            continue;
        }
        let step = next_step(&tokens, raw, lexer.slice(), depth);
        if step == Step::EndBefore {
            break;
        }
        match raw {
            RawToken::LBrace | RawToken::LParen | RawToken::LBracket => depth += 1,
            RawToken::RBrace | RawToken::RParen | RawToken::RBracket => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            diagnostics.push(Diagnostic::error(
                "syntax",
                format!("a C definition nested more than {MAX_NESTING} deep"),
                span,
            ));
            return (tokens, src.len(), false);
        }
        tokens.push(CToken { raw, span, text: lexer.slice() });
        end = span.range().end;
        if step == Step::EndAfter {
            break;
        }
    }
    (tokens, end, complete)
}

/// What the next token does to the definition being scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// It belongs to the definition, which goes on.
    Take,
    /// It is the definition's last token.
    EndAfter,
    /// The definition ended before it.
    EndBefore,
}

/// Decides, from the tokens so far and the brace depth before `next`, whether `next` belongs
/// to the definition.
fn next_step(tokens: &[CToken<'_>], next: RawToken, text: &str, depth: usize) -> Step {
    let Some(first) = tokens.first() else { return Step::Take };
    let closes = matches!(next, RawToken::RBrace | RawToken::RParen | RawToken::RBracket);
    if first.raw == RawToken::Ident {
        // `typedef ...;`
        return if depth == 0 && next == RawToken::Semicolon { Step::EndAfter } else { Step::Take };
    }
    let last = tokens.last().map(|t| t.raw);
    let body_seen = tokens.iter().any(|t| t.raw == RawToken::LBrace);
    if body_seen {
        let attribute_opens = next == RawToken::LParen && tokens.last().is_some_and(|t| t.text == "__attribute__");
        return match (depth, next) {
            // A `;` right after the closing `}` (or the attributes after it) belongs to the
            // definition, and so do those attributes.
            (0, RawToken::Semicolon) if matches!(last, Some(RawToken::RBrace | RawToken::RParen)) => Step::EndAfter,
            (0, RawToken::Ident) if text == "__attribute__" => Step::Take,
            (0, _) if attribute_opens => Step::Take,
            (0, _) => Step::EndBefore,
            _ => Step::Take,
        };
    }
    if depth > 0 || closes || next == RawToken::LParen || next == RawToken::LBrace {
        return Step::Take;
    }
    match next {
        RawToken::Semicolon => Step::EndAfter,
        // The tag's name, or `__attribute__` words; a second name is the next item's.
        RawToken::Ident => {
            let names = tokens.iter().filter(|t| t.raw == RawToken::Ident && t.text != "__attribute__").count();
            if names == 0 || text == "__attribute__" {
                Step::Take
            } else {
                Step::EndBefore
            }
        }
        _ => Step::EndBefore,
    }
}
