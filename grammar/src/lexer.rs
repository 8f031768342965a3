//! The logos lexer for everything inside predicates and action blocks, and the step that turns its
//! raw tokens into parser tokens with decoded literals.
//!
//! Attach points are not lexed here: they follow different rules (`/`, `*`, `:` and `-` are part of
//! them) and only occur at the top level, which `tokenize` scans by hand.

use logos::{Lexer, Logos};

use crate::ast::BinaryOp;
use crate::literal::{self, IntError};
use crate::token::Tok;
use crate::{Diagnostic, Span};

/// Tokens as logos recognises them, without values; `convert` decodes the text.
#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\x0B\x0C]+")]
pub(crate) enum RawToken {
    // Greedy on purpose: a line comment runs to the end of its line, which stops the repetition.
    #[regex(r"//[^\n]*", allow_greedy = true)]
    LineComment,
    /// `/* ... */`; the flag says whether the closing `*/` was found.
    #[token("/*", block_comment)]
    BlockComment(bool),
    /// `"..."`; the flag says whether the closing quote was found on the same line.
    #[token("\"", string_literal)]
    Str(bool),

    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(";")]
    Semicolon,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token("?")]
    Question,
    #[token(".")]
    Dot,
    #[token("->")]
    Arrow,

    #[token("=")]
    Assign,
    #[token("+=", |_| BinaryOp::Add)]
    #[token("-=", |_| BinaryOp::Sub)]
    #[token("*=", |_| BinaryOp::Mul)]
    #[token("/=", |_| BinaryOp::Div)]
    #[token("%=", |_| BinaryOp::Mod)]
    #[token("&=", |_| BinaryOp::BitAnd)]
    #[token("|=", |_| BinaryOp::BitOr)]
    #[token("^=", |_| BinaryOp::BitXor)]
    #[token("<<=", |_| BinaryOp::Shl)]
    #[token(">>=", |_| BinaryOp::Shr)]
    CompoundAssign(BinaryOp),

    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("&")]
    Amp,
    #[token("|")]
    Pipe,
    #[token("^")]
    Caret,
    #[token("~")]
    Tilde,
    #[token("!")]
    Bang,
    #[token("<<")]
    Shl,
    #[token(">>")]
    Shr,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("++")]
    PlusPlus,
    #[token("--")]
    MinusMinus,

    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("while")]
    While,
    #[token("unroll")]
    Unroll,
    #[token("return")]
    Return,
    #[token("struct")]
    Struct,
    #[token("union")]
    Union,
    #[token("enum")]
    Enum,
    #[token("sizeof")]
    Sizeof,
    #[token("offsetof")]
    Offsetof,
    #[token("int8")]
    #[token("int16")]
    #[token("int32")]
    #[token("int64")]
    #[token("uint8")]
    #[token("uint16")]
    #[token("uint32")]
    #[token("uint64")]
    #[token("char")]
    #[token("bool")]
    #[token("void")]
    TypeKeyword,

    /// Digits followed by any letters, digits and `_`: taking the whole run lets `5K` or `08` be
    /// reported as one bad literal instead of a number followed by a stray identifier.
    #[regex(r"[0-9][0-9A-Za-z_]*")]
    Number,
    #[regex(r"\$[A-Za-z_][A-Za-z0-9_]*")]
    Var,
    #[regex(r"\$[0-9]+")]
    Param,
    #[token("$#")]
    ParamCount,
    #[regex(r"@[A-Za-z_][A-Za-z0-9_]*")]
    #[token("@")]
    Map,
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
}

/// Skips to the end of a block comment; reports whether `*/` was found.
fn block_comment(lex: &mut Lexer<'_, RawToken>) -> bool {
    match lex.remainder().find("*/") {
        Some(index) => {
            lex.bump(index + 2);
            true
        }
        None => {
            lex.bump(lex.remainder().len());
            false
        }
    }
}

/// Skips to the end of a string literal; reports whether the closing quote came before the end of
/// the line. A backslash escapes the next character, so `\"` does not end the string.
fn string_literal(lex: &mut Lexer<'_, RawToken>) -> bool {
    let mut escaped = false;
    for (index, c) in lex.remainder().char_indices() {
        match c {
            '\n' => {
                lex.bump(index);
                return false;
            }
            '"' if !escaped => {
                lex.bump(index + 1);
                return true;
            }
            '\\' if !escaped => escaped = true,
            _ => escaped = false,
        }
    }
    lex.bump(lex.remainder().len());
    false
}

/// Lexes the text starting at byte `offset` of `src`.
pub(crate) fn lexer_at(src: &str, offset: usize) -> Lexer<'_, RawToken> {
    RawToken::lexer(src.get(offset..).unwrap_or(""))
}

/// Turns one logos result into a parser token. Comments and invalid characters give `None` (the
/// latter after reporting); malformed literals are reported and give a token holding `None`.
pub(crate) fn convert(
    raw: Result<RawToken, ()>,
    text: &str,
    span: Span,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Tok> {
    let Ok(raw) = raw else {
        let shown: String = text.chars().take(1).collect();
        let message = if shown == "$" {
            "`$` must be followed by a variable name, a number or `#`".to_string()
        } else {
            format!("invalid character '{}'", shown.escape_debug())
        };
        let first_char = Span::new(span.range().start, span.range().start + shown.len());
        diagnostics.push(Diagnostic::error("syntax", message, first_char));
        return None;
    };
    let token = match raw {
        RawToken::LineComment => return None,
        RawToken::BlockComment(terminated) => {
            if !terminated {
                diagnostics.push(
                    Diagnostic::error(
                        "syntax",
                        "unterminated comment",
                        Span::new(span.range().start, span.range().start + 2),
                    )
                    .with_help("close the comment with `*/`"),
                );
            }
            return None;
        }
        RawToken::Str(terminated) => string_token(text, span, terminated, diagnostics),
        RawToken::LBrace => Tok::LBrace,
        RawToken::RBrace => Tok::RBrace,
        RawToken::LParen => Tok::LParen,
        RawToken::RParen => Tok::RParen,
        RawToken::LBracket => Tok::LBracket,
        RawToken::RBracket => Tok::RBracket,
        RawToken::Semicolon => Tok::Semicolon,
        RawToken::Comma => Tok::Comma,
        RawToken::Colon => Tok::Colon,
        RawToken::Question => Tok::Question,
        RawToken::Dot => Tok::Dot,
        RawToken::Arrow => Tok::Arrow,
        RawToken::Assign => Tok::Assign,
        RawToken::CompoundAssign(op) => Tok::CompoundAssign(op),
        RawToken::Plus => Tok::Plus,
        RawToken::Minus => Tok::Minus,
        RawToken::Star => Tok::Star,
        RawToken::Slash => Tok::Slash,
        RawToken::Percent => Tok::Percent,
        RawToken::Amp => Tok::Amp,
        RawToken::Pipe => Tok::Pipe,
        RawToken::Caret => Tok::Caret,
        RawToken::Tilde => Tok::Tilde,
        RawToken::Bang => Tok::Bang,
        RawToken::Shl => Tok::Shl,
        RawToken::Shr => Tok::Shr,
        RawToken::EqEq => Tok::EqEq,
        RawToken::NotEq => Tok::NotEq,
        RawToken::Lt => Tok::Lt,
        RawToken::Le => Tok::Le,
        RawToken::Gt => Tok::Gt,
        RawToken::Ge => Tok::Ge,
        RawToken::AndAnd => Tok::AndAnd,
        RawToken::OrOr => Tok::OrOr,
        RawToken::PlusPlus => Tok::PlusPlus,
        RawToken::MinusMinus => Tok::MinusMinus,
        RawToken::If => Tok::If,
        RawToken::Else => Tok::Else,
        RawToken::While => Tok::While,
        RawToken::Unroll => Tok::Unroll,
        RawToken::Return => Tok::Return,
        RawToken::Struct => Tok::Struct,
        RawToken::Union => Tok::Union,
        RawToken::Enum => Tok::Enum,
        RawToken::Sizeof => Tok::Sizeof,
        RawToken::Offsetof => Tok::Offsetof,
        RawToken::TypeKeyword => Tok::TypeKeyword(text.to_string()),
        RawToken::Number => Tok::Int(int_value(text, span, diagnostics)),
        RawToken::Var => Tok::Var(text[1..].to_string()),
        RawToken::Param => Tok::Param(param_index(text, span, diagnostics)),
        RawToken::ParamCount => Tok::ParamCount,
        RawToken::Map => Tok::Map(text[1..].to_string()),
        RawToken::Ident => Tok::Ident(text.to_string()),
    };
    Some(token)
}

fn string_token(text: &str, span: Span, terminated: bool, diagnostics: &mut Vec<Diagnostic>) -> Tok {
    let body = if terminated { &text[1..text.len() - 1] } else { &text[1..] };
    let value = literal::unescape(body, span.range().start + 1, diagnostics);
    if !terminated {
        diagnostics.push(
            Diagnostic::error("syntax", "unterminated string", span)
                .with_help("strings end with `\"` on the line where they start"),
        );
    }
    Tok::Str(value)
}

fn int_value(text: &str, span: Span, diagnostics: &mut Vec<Diagnostic>) -> Option<u64> {
    match literal::parse_int(text) {
        Ok(value) => Some(value),
        Err(IntError::OutOfRange) => {
            diagnostics.push(
                Diagnostic::error("syntax", "integer literal out of range", span)
                    .with_help("the largest integer is 18446744073709551615 (0xffffffffffffffff)"),
            );
            None
        }
        Err(IntError::Malformed) => {
            diagnostics.push(Diagnostic::error("syntax", format!("invalid integer literal `{text}`"), span));
            None
        }
    }
}

fn param_index(text: &str, span: Span, diagnostics: &mut Vec<Diagnostic>) -> Option<u32> {
    match text[1..].parse::<u32>() {
        Ok(index) if index > 0 => Some(index),
        _ => {
            diagnostics.push(
                Diagnostic::error("syntax", format!("positional parameter `{text}` is out of range"), span)
                    .with_help("positional parameters are numbered from $1"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> (Vec<Tok>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let mut lexer = lexer_at(src, 0);
        let mut tokens = Vec::new();
        while let Some(raw) = lexer.next() {
            let span = Span::new(lexer.span().start, lexer.span().end);
            tokens.extend(convert(raw, lexer.slice(), span, &mut diagnostics));
        }
        (tokens, diagnostics)
    }

    #[test]
    fn operators_take_the_longest_match() {
        let (tokens, diagnostics) = lex("<<= >>= << <= -> -- -= && &= || ++ == !=");
        assert!(diagnostics.is_empty());
        assert_eq!(
            tokens,
            vec![
                Tok::CompoundAssign(BinaryOp::Shl),
                Tok::CompoundAssign(BinaryOp::Shr),
                Tok::Shl,
                Tok::Le,
                Tok::Arrow,
                Tok::MinusMinus,
                Tok::CompoundAssign(BinaryOp::Sub),
                Tok::AndAnd,
                Tok::CompoundAssign(BinaryOp::BitAnd),
                Tok::OrOr,
                Tok::PlusPlus,
                Tok::EqEq,
                Tok::NotEq,
            ]
        );
    }

    #[test]
    fn names_and_sigils() {
        let (tokens, _) = lex("$x $1 $# @m @ pid int8 uint64x if iffy");
        assert_eq!(
            tokens,
            vec![
                Tok::Var("x".into()),
                Tok::Param(Some(1)),
                Tok::ParamCount,
                Tok::Map("m".into()),
                Tok::Map(String::new()),
                Tok::Ident("pid".into()),
                Tok::TypeKeyword("int8".into()),
                Tok::Ident("uint64x".into()),
                Tok::If,
                Tok::Ident("iffy".into()),
            ]
        );
    }

    #[test]
    fn comments_are_skipped() {
        let (tokens, diagnostics) = lex("1 // one\n/* two\n */ 3");
        assert!(diagnostics.is_empty());
        assert_eq!(tokens, vec![Tok::Int(Some(1)), Tok::Int(Some(3))]);
    }

    #[test]
    fn strings_decode_escapes() {
        let (tokens, diagnostics) = lex(r#""a\"b\n" "c""#);
        assert!(diagnostics.is_empty());
        assert_eq!(tokens, vec![Tok::Str("a\"b\n".into()), Tok::Str("c".into())]);
    }

    #[test]
    fn lexer_errors_become_diagnostics() {
        let (tokens, diagnostics) = lex("1 # 99999999999999999999 \"open\n/* never closed");
        assert_eq!(tokens, vec![Tok::Int(Some(1)), Tok::Int(None), Tok::Str("open".into())]);
        let messages: Vec<_> = diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "invalid character '#'",
                "integer literal out of range",
                "unterminated string",
                "unterminated comment",
            ]
        );
        assert_eq!(diagnostics[1].primary_span(), Span::new(4, 24));
    }

    #[test]
    fn bad_params() {
        let (tokens, diagnostics) = lex("$0 $99999999999");
        assert_eq!(tokens, vec![Tok::Param(None), Tok::Param(None)]);
        assert_eq!(diagnostics.len(), 2);
    }
}
