//! Splits the source into parser tokens. The top level is scanned by hand, because attach points
//! are raw text and the predicate's slashes need context; predicates and blocks go to the logos
//! lexer.
//!
//! ```text
//! kprobe:vfs_read, kprobe:vfs_write /pid == 42/ { @[probe] = count(); }
//! ^attach point    ^attach point    ^open    ^close (a `/` followed by `{`)
//!                                             ^block: logos until the matching `}`
//! ```

use crate::lexer::{self, RawToken};
use crate::probe_spec::scan_attach_point;
use crate::token::Tok;
use crate::{Diagnostic, Span};

/// A token with its byte range, as lalrpop expects it.
pub(crate) type Spanned = (usize, Tok, usize);

/// How deeply `{`, `(` and `[` may nest. The passes after the parser recurse once per level, so
/// this bounds their stack use on hostile input; real programs stay far below it.
const MAX_NESTING: usize = 1024;

/// How many tokens one statement or predicate may have. An expression is never deeper than its
/// token count, so this bounds the trees the parser builds (and drops during error recovery)
/// before `depth_limit` trims them further; real statements have a few dozen tokens.
const MAX_STATEMENT_TOKENS: usize = 4096;

pub(crate) struct Tokenized {
    pub(crate) tokens: Vec<Spanned>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// The C definitions at the top level (`struct Foo { ... }`), parsed on the spot: they
    /// are C, not rbt, so they never reach the grammar.
    pub(crate) c_definitions: Vec<crate::cdecl::CDefinition>,
}

pub(crate) fn tokenize(src: &str) -> Tokenized {
    let mut tokenizer =
        Tokenizer { src, pos: 0, tokens: Vec::new(), diagnostics: Vec::new(), c_definitions: Vec::new() };
    if src.starts_with("#!") {
        tokenizer.pos = line_end(src, 0);
    }
    while tokenizer.top_level_step() {}
    Tokenized { tokens: tokenizer.tokens, diagnostics: tokenizer.diagnostics, c_definitions: tokenizer.c_definitions }
}

struct Tokenizer<'s> {
    src: &'s str,
    pos: usize,
    tokens: Vec<Spanned>,
    diagnostics: Vec<Diagnostic>,
    c_definitions: Vec<crate::cdecl::CDefinition>,
}

impl Tokenizer<'_> {
    /// Scans one top-level item; `false` at the end of the input.
    fn top_level_step(&mut self) -> bool {
        self.pos = self.skip_trivia(self.pos, true);
        let Some(c) = self.src[self.pos..].chars().next() else {
            return false;
        };
        match c {
            '{' => self.block(),
            '/' => self.predicate(),
            '#' if self.at_line_start() => self.directive(),
            _ if crate::cdecl::starts_definition(self.src, self.pos) => {
                let (definition, end) = crate::cdecl::scan_definition(self.src, self.pos, &mut self.diagnostics);
                self.c_definitions.extend(definition);
                self.pos = end.max(self.pos + 1);
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let end = scan_attach_point(self.src, self.pos, &mut self.diagnostics);
                let text = self.src[self.pos..end].to_string();
                self.tokens.push((self.pos, Tok::AttachPoint(text), end));
                self.pos = end;
            }
            _ => self.stray_token(),
        }
        true
    }

    /// Something that cannot start a probe, such as `}` or `42`: lexed normally so the parser can
    /// name it in its error and resynchronise at the next attach point.
    fn stray_token(&mut self) {
        let mut lexer = lexer::lexer_at(self.src, self.pos);
        let start = self.pos;
        match lexer.next() {
            Some(raw) => {
                let span = Span::new(start + lexer.span().start, start + lexer.span().end);
                self.pos = start + lexer.span().end;
                let token = lexer::convert(raw, lexer.slice(), span, &mut self.diagnostics);
                if let Some(token) = token {
                    self.tokens.push((span.range().start, token, span.range().end));
                }
            }
            None => self.pos = self.src.len(),
        }
        if self.pos <= start {
            // Never stall: step over one character whatever happened.
            self.pos = start + self.src[start..].chars().next().map_or(1, char::len_utf8);
        }
    }

    /// Lexes a block from its `{` to the matching `}`. Blocks still open at the end of the input
    /// are reported once and closed with empty `}` tokens so the parser keeps what it has.
    fn block(&mut self) {
        let start = self.pos;
        let mut lexer = lexer::lexer_at(self.src, start);
        let mut open_braces: Vec<usize> = Vec::new();
        let mut nesting = 0usize;
        let mut statement = StatementLength::default();
        while let Some(raw) = lexer.next() {
            let span = Span::new(start + lexer.span().start, start + lexer.span().end);
            if !statement.admit(raw, span, &mut self.diagnostics) {
                continue;
            }
            match raw {
                Ok(RawToken::LBrace) => open_braces.push(span.range().start),
                Ok(RawToken::RBrace) => {
                    open_braces.pop();
                }
                Ok(RawToken::LParen | RawToken::LBracket) => nesting += 1,
                Ok(RawToken::RParen | RawToken::RBracket) => nesting = nesting.saturating_sub(1),
                _ => {}
            }
            if open_braces.len() + nesting > MAX_NESTING {
                self.too_deep(span);
                return;
            }
            if let Some(token) = lexer::convert(raw, lexer.slice(), span, &mut self.diagnostics) {
                self.tokens.push((span.range().start, token, span.range().end));
            }
            if open_braces.is_empty() {
                self.pos = span.range().end;
                return;
            }
        }
        self.pos = self.src.len();
        if let Some(&innermost) = open_braces.last() {
            let end = Span::new(self.src.len(), self.src.len());
            self.diagnostics.push(
                Diagnostic::error("syntax", "syntax error, unexpected end of input, expecting `}`", end)
                    .with_label(Span::new(innermost, innermost + 1), "this `{` is never closed"),
            );
            for _ in &open_braces {
                self.tokens.push((self.src.len(), Tok::RBrace, self.src.len()));
            }
        }
    }

    /// Lexes a predicate: the opening `/`, then tokens until a `/` that is followed by `{`. A `{`
    /// before that ends the predicate too (the parser reports the missing `/`).
    fn predicate(&mut self) {
        let start = self.pos;
        self.tokens.push((start, Tok::PredicateOpen, start + 1));
        let mut lexer = lexer::lexer_at(self.src, start + 1);
        let mut nesting = 0usize;
        let mut statement = StatementLength::default();
        while let Some(raw) = lexer.next() {
            let span = Span::new(start + 1 + lexer.span().start, start + 1 + lexer.span().end);
            if !statement.admit(raw, span, &mut self.diagnostics) {
                continue;
            }
            match raw {
                Ok(RawToken::Slash) if self.next_is_brace(span.range().end) => {
                    self.tokens.push((span.range().start, Tok::PredicateClose, span.range().end));
                    self.pos = span.range().end;
                    return;
                }
                Ok(RawToken::LBrace) => {
                    self.pos = span.range().start;
                    return;
                }
                Ok(RawToken::LParen | RawToken::LBracket) => nesting += 1,
                Ok(RawToken::RParen | RawToken::RBracket) => nesting = nesting.saturating_sub(1),
                _ => {}
            }
            if nesting > MAX_NESTING {
                self.too_deep(span);
                return;
            }
            if let Some(token) = lexer::convert(raw, lexer.slice(), span, &mut self.diagnostics) {
                self.tokens.push((span.range().start, token, span.range().end));
            }
        }
        self.pos = self.src.len();
    }

    /// Gives up on the rest of the input: deeper nesting than this is never a real program.
    fn too_deep(&mut self, span: Span) {
        self.diagnostics.push(Diagnostic::error(
            "syntax",
            format!("brackets nested more than {MAX_NESTING} deep; the rest of the input is ignored"),
            span,
        ));
        self.pos = self.src.len();
    }

    /// A `#` at the start of a line. The preprocessor has taken every directive out of the text
    /// by now, so this one came from a macro's expansion; it is reported, and the line skipped.
    fn directive(&mut self) {
        let end = line_end(self.src, self.pos);
        let span = Span::new(self.pos, end);
        self.diagnostics.push(
            Diagnostic::error("preprocessor", "a preprocessor directive cannot come from a macro's expansion", span)
                .with_help("write the directive on a line of its own"),
        );
        self.pos = end;
    }

    fn at_line_start(&self) -> bool {
        self.src[..self.pos].chars().rev().take_while(|&c| c != '\n').all(char::is_whitespace)
    }

    /// Whether the next thing after `pos`, past whitespace and comments, is `{`.
    fn next_is_brace(&mut self, pos: usize) -> bool {
        let next = self.skip_trivia(pos, false);
        self.src[next..].starts_with('{')
    }

    /// Skips whitespace and comments from `pos`. `report` says whether an unterminated block
    /// comment is reported here (at the top level) or left for the lexer to report.
    fn skip_trivia(&mut self, mut pos: usize, report: bool) -> usize {
        loop {
            let rest = &self.src[pos..];
            let trimmed = rest.trim_start();
            pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                pos = line_end(self.src, pos);
            } else if trimmed.starts_with("/*") {
                match trimmed.find("*/") {
                    Some(index) => pos += index + 2,
                    None => {
                        if report {
                            self.diagnostics.push(
                                Diagnostic::error("syntax", "unterminated comment", Span::new(pos, pos + 2))
                                    .with_help("close the comment with `*/`"),
                            );
                        }
                        return self.src.len();
                    }
                }
            } else {
                return pos;
            }
        }
    }
}

/// Counts the tokens of the current statement (they end at `;`, `{` and `}`) and drops those
/// beyond `MAX_STATEMENT_TOKENS`, reporting that once per statement.
#[derive(Default)]
struct StatementLength {
    tokens: usize,
}

impl StatementLength {
    fn admit(&mut self, raw: Result<RawToken, ()>, span: Span, diagnostics: &mut Vec<Diagnostic>) -> bool {
        if matches!(raw, Ok(RawToken::Semicolon | RawToken::LBrace | RawToken::RBrace)) {
            self.tokens = 0;
            return true;
        }
        self.tokens += 1;
        if self.tokens == MAX_STATEMENT_TOKENS + 1 {
            diagnostics.push(Diagnostic::error(
                "syntax",
                format!("statement longer than {MAX_STATEMENT_TOKENS} tokens; the rest of it is ignored"),
                span,
            ));
        }
        self.tokens <= MAX_STATEMENT_TOKENS
    }
}

/// The byte offset of the end of the line containing `pos` (before its `\n`).
fn line_end(src: &str, pos: usize) -> usize {
    src[pos..].find('\n').map_or(src.len(), |index| pos + index)
}
