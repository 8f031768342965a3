//! A recursive-descent parser for the C declarations scripts write: type specifiers (`unsigned
//! long long`, `const char`, `struct Foo`, typedef names), declarators in C's inside-out syntax
//! (`*p`, `a[2][3]`, `(*fp)(int)`), members with bitfield widths, enum constants, the
//! attributes layouts depend on (`packed`, `aligned(N)`), and integer constant expressions.
//! The first mistake in a definition is reported and the definition is left out.

use super::scan::CToken;
use super::{CBase, CConst, CConstKind, CDefinition, CDefinitionKind, CEnum, CEnumConstant, CMember, CRecord};
use super::{CTag, CType, CTypeKind};
use crate::ast::Ident;
use crate::lexer::RawToken;
use crate::literal::parse_int;
use crate::{Diagnostic, Span};

type Parsed<T> = Result<T, Diagnostic>;

/// Parses the tokens of one definition (as `scan.rs` delimited them, spanning `span`).
pub(super) fn parse_tokens(
    tokens: &[CToken<'_>],
    span: Span,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<CDefinition> {
    let mut parser = Parser { tokens, pos: 0, end: span.range().end, unary_depth: 0 };
    match parser.definition(span) {
        Ok(definition) => Some(definition),
        Err(diag) => {
            diagnostics.push(diag);
            None
        }
    }
}

/// Words that qualify a type without changing its layout.
const QUALIFIERS: &[&str] = &[
    "const",
    "volatile",
    "restrict",
    "__restrict",
    "__restrict__",
    "__const",
    "__const__",
    "__volatile",
    "__volatile__",
    "register",
    "static",
    "extern",
    "inline",
    "__inline",
    "__extension__",
    "_Atomic",
];

/// How deeply unary operators may nest in a constant (`- - - 1`): each is a recursion.
const MAX_UNARY_DEPTH: u32 = 64;

struct Parser<'t, 's> {
    tokens: &'t [CToken<'s>],
    pos: usize,
    /// Where the definition ends, for "end of definition" spans.
    end: usize,
    unary_depth: u32,
}

/// The attributes of a record or member that change its layout.
#[derive(Default)]
struct Attributes {
    packed: bool,
    aligned: Option<CConst>,
}

/// One step of a declarator, applied to the base type in order: `*a[3]` is `[Pointer, Array]`.
enum Derivation {
    Pointer,
    Array(Option<CConst>),
    Function,
}

/// The keywords of a type specifier seen so far: `unsigned long long` is `long: 2`.
#[derive(Default)]
struct Keywords {
    any: bool,
    signed: Option<bool>,
    short: bool,
    long: u8,
    int: bool,
    char: bool,
    void: bool,
    bool: bool,
    float: bool,
    double: bool,
}

impl<'s> Parser<'_, 's> {
    fn definition(&mut self, span: Span) -> Parsed<CDefinition> {
        if self.eat_word("typedef") {
            let base = self.specifiers()?;
            let mut names = Vec::new();
            loop {
                let (name, ty) = self.declarator(base.clone())?;
                let Some(name) = name else { return Err(self.expected("a name for the typedef")) };
                names.push((name, ty));
                if !self.eat(RawToken::Comma) {
                    break;
                }
            }
            self.expect(RawToken::Semicolon, "`;` after the typedef")?;
            return Ok(CDefinition { kind: CDefinitionKind::Typedef(names), span });
        }
        let ty = self.specifiers()?;
        let kind = match ty.kind {
            CTypeKind::Record(record) => CDefinitionKind::Record(*record),
            CTypeKind::Enum(e) => CDefinitionKind::Enum(*e),
            CTypeKind::Tagged { tag, name } => {
                let name_span = self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)).map_or(ty.span, |t| t.span);
                if !self.eat(RawToken::Semicolon) {
                    return Err(self.expected(&format!("`{{` or `;` after `{} {name}`", tag.keyword())));
                }
                let name = Some(Ident { name, span: name_span });
                match tag {
                    CTag::Enum => CDefinitionKind::Enum(CEnum { name, constants: None, span: ty.span }),
                    _ => CDefinitionKind::Record(CRecord {
                        union: tag == CTag::Union,
                        name,
                        members: None,
                        packed: false,
                        aligned: None,
                        span: ty.span,
                    }),
                }
            }
            _ => return Err(Diagnostic::error("syntax", "expected a struct, union or enum definition", ty.span)),
        };
        self.eat(RawToken::Semicolon);
        if let Some(token) = self.peek() {
            return Err(Diagnostic::error(
                "syntax",
                format!("unexpected `{}` after the definition of a C type", token.text),
                token.span,
            ));
        }
        Ok(CDefinition { kind, span })
    }

    // ---- Type specifiers -------------------------------------------------------------------

    /// `unsigned int`, `const struct Foo`, `struct { ... }`, `enum E { ... }`, `foo_t`.
    fn specifiers(&mut self) -> Parsed<CType> {
        let start = self.here();
        let mut keywords = Keywords::default();
        let mut named: Option<CType> = None;
        while let Some(token) = self.peek() {
            match (token.raw, token.text) {
                (RawToken::Ident, word) if QUALIFIERS.contains(&word) => self.pos += 1,
                (RawToken::Ident, "__attribute__") => {
                    self.attributes()?;
                }
                (RawToken::Struct | RawToken::Union | RawToken::Enum, _) if named.is_none() && !keywords.any => {
                    named = Some(if token.raw == RawToken::Enum { self.enumeration()? } else { self.record()? });
                }
                (RawToken::Ident | RawToken::TypeKeyword, word) if named.is_none() && keywords.take(word) => {
                    self.pos += 1;
                }
                (RawToken::Ident | RawToken::TypeKeyword, word) if named.is_none() && !keywords.any => {
                    self.pos += 1;
                    named = Some(CType { kind: CTypeKind::Named(word.to_string()), span: token.span });
                }
                _ => break,
            }
        }
        let span = Span::new(start, self.last_end().max(start));
        match (named, keywords.base()) {
            (Some(ty), None) => Ok(ty),
            (None, Some(base)) => Ok(CType { kind: CTypeKind::Base(base), span }),
            (None, None) if keywords.any => {
                Err(Diagnostic::error("syntax", "these type keywords do not make a C type", span))
            }
            _ => Err(self.expected("a type")),
        }
    }

    /// `struct NAME`, `struct NAME { members }`, `union { members }`, with attributes.
    fn record(&mut self) -> Parsed<CType> {
        let keyword = self.advance();
        let union = keyword.raw == RawToken::Union;
        let mut attributes = self.attributes()?;
        let name = self.name();
        let more = self.attributes()?;
        attributes.packed |= more.packed;
        attributes.aligned = attributes.aligned.or(more.aligned);
        if !self.eat(RawToken::LBrace) {
            let Some(name) = name else { return Err(self.expected("a name or `{` after `struct`")) };
            let tag = if union { CTag::Union } else { CTag::Struct };
            let span = keyword.span.to(name.span);
            return Ok(CType { kind: CTypeKind::Tagged { tag, name: name.name }, span });
        }
        let members = self.members()?;
        let after = self.attributes()?;
        let span = Span::new(keyword.span.range().start, self.last_end());
        let record = CRecord {
            union,
            name,
            members: Some(members),
            packed: attributes.packed || after.packed,
            aligned: attributes.aligned.or(after.aligned),
            span,
        };
        Ok(CType { kind: CTypeKind::Record(Box::new(record)), span })
    }

    /// The members of a record, after its `{`, through its `}`.
    fn members(&mut self) -> Parsed<Vec<CMember>> {
        let mut members = Vec::new();
        loop {
            if self.eat(RawToken::RBrace) {
                return Ok(members);
            }
            if self.eat(RawToken::Semicolon) {
                continue;
            }
            if self.peek().is_none() {
                return Err(self.expected("`}` closing the definition"));
            }
            let start = self.here();
            let base = self.specifiers()?;
            if matches!(self.peek_raw(), Some(RawToken::Semicolon | RawToken::RBrace)) {
                // `union { ... };`: an anonymous member (or, with a tag, only a declaration).
                let span = Span::new(start, self.last_end());
                members.push(CMember { name: None, ty: base, bits: None, aligned: None, span });
                self.eat(RawToken::Semicolon);
                continue;
            }
            let mut first = true;
            loop {
                let member_start = if first { start } else { self.here() };
                first = false;
                let (name, ty) = if self.peek_raw() == Some(RawToken::Colon) {
                    (None, base.clone())
                } else {
                    self.declarator(base.clone())?
                };
                let bits = if self.eat(RawToken::Colon) { Some(self.constant()?) } else { None };
                let attributes = self.attributes()?;
                if name.is_none() && bits.is_none() {
                    return Err(self.expected("a member name"));
                }
                let span = Span::new(member_start, self.last_end());
                members.push(CMember { name, ty, bits, aligned: attributes.aligned, span });
                if !self.eat(RawToken::Comma) {
                    break;
                }
            }
            // The `;` after the last member may be left out, as clang allows (with a warning) and
            // bpftrace scripts do: `struct x { unsigned long x };`.
            if !self.eat(RawToken::Semicolon) && self.peek_raw() != Some(RawToken::RBrace) {
                return Err(self.expected("`;` after the member"));
            }
        }
    }

    /// `enum NAME`, `enum NAME { A, B = 5, }`.
    fn enumeration(&mut self) -> Parsed<CType> {
        let keyword = self.advance();
        self.attributes()?;
        let name = self.name();
        self.attributes()?;
        if !self.eat(RawToken::LBrace) {
            let Some(name) = name else { return Err(self.expected("a name or `{` after `enum`")) };
            let span = keyword.span.to(name.span);
            return Ok(CType { kind: CTypeKind::Tagged { tag: CTag::Enum, name: name.name }, span });
        }
        let mut constants = Vec::new();
        while !self.eat(RawToken::RBrace) {
            let Some(constant) = self.name() else { return Err(self.expected("an enum constant's name")) };
            let value = if self.eat(RawToken::Assign) { Some(self.constant()?) } else { None };
            constants.push(CEnumConstant { name: constant, value });
            if !self.eat(RawToken::Comma) {
                self.expect(RawToken::RBrace, "`,` or `}` after the enum constant")?;
                break;
            }
        }
        self.attributes()?;
        let span = Span::new(keyword.span.range().start, self.last_end());
        let e = CEnum { name, constants: Some(constants), span };
        Ok(CType { kind: CTypeKind::Enum(Box::new(e)), span })
    }

    /// Any number of `__attribute__((...))`; only `packed` and `aligned(N)` are kept.
    fn attributes(&mut self) -> Parsed<Attributes> {
        let mut found = Attributes::default();
        while self.eat_word("__attribute__") {
            self.expect(RawToken::LParen, "`((` after `__attribute__`")?;
            self.expect(RawToken::LParen, "`((` after `__attribute__`")?;
            while !self.eat(RawToken::RParen) {
                let Some(word) = self.name() else { return Err(self.expected("an attribute")) };
                match word.name.trim_matches('_') {
                    "packed" => found.packed = true,
                    "aligned" if self.peek_raw() == Some(RawToken::LParen) => {
                        self.pos += 1;
                        found.aligned = Some(self.constant()?);
                        self.expect(RawToken::RParen, "`)` after the alignment")?;
                    }
                    // `aligned` alone is the largest alignment x86-64 has.
                    "aligned" => found.aligned = Some(CConst { kind: CConstKind::Int(16), span: word.span }),
                    _ => self.skip_parenthesized(),
                }
                if !self.eat(RawToken::Comma) {
                    self.expect(RawToken::RParen, "`))` closing the attribute")?;
                    break;
                }
            }
            self.expect(RawToken::RParen, "`))` closing the attribute")?;
        }
        Ok(found)
    }

    /// Skips a parenthesized group if one comes next (an attribute's or parameters' list).
    fn skip_parenthesized(&mut self) {
        if self.peek_raw() != Some(RawToken::LParen) {
            return;
        }
        let mut depth = 0usize;
        while let Some(token) = self.peek() {
            self.pos += 1;
            match token.raw {
                RawToken::LParen => depth += 1,
                RawToken::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    // ---- Declarators -----------------------------------------------------------------------

    /// A declarator applied to `base`: the name it declares (none for an abstract one) and the
    /// full type.
    fn declarator(&mut self, base: CType) -> Parsed<(Option<Ident>, CType)> {
        let (name, derivations) = self.derivations()?;
        let mut ty = base;
        for derivation in derivations {
            let span = Span::new(ty.span.range().start, self.last_end().max(ty.span.range().end));
            let kind = match derivation {
                Derivation::Pointer => CTypeKind::Pointer(Box::new(ty)),
                Derivation::Array(len) => CTypeKind::Array { elem: Box::new(ty), len },
                Derivation::Function => CTypeKind::Function { ret: Box::new(ty) },
            };
            ty = CType { kind, span };
        }
        Ok((name, ty))
    }

    /// The name and derivations of a declarator: pointers bind looser than the suffixes after
    /// the name, and a parenthesized declarator applies last: `(*fp)(int)` is a pointer to a
    /// function, `*a[3]` an array of pointers.
    fn derivations(&mut self) -> Parsed<(Option<Ident>, Vec<Derivation>)> {
        let mut pointers = 0;
        while self.eat(RawToken::Star) {
            pointers += 1;
            while self.peek().is_some_and(|t| t.raw == RawToken::Ident && QUALIFIERS.contains(&t.text)) {
                self.pos += 1;
            }
        }
        let nested = self.peek_raw() == Some(RawToken::LParen)
            && matches!(self.tokens.get(self.pos + 1).map(|t| t.raw), Some(RawToken::Star | RawToken::LParen));
        let (name, inner) = if nested {
            self.pos += 1;
            let inner = self.derivations()?;
            self.expect(RawToken::RParen, "`)` closing the declarator")?;
            inner
        } else {
            (self.name(), Vec::new())
        };
        let mut suffixes = Vec::new();
        loop {
            if self.eat(RawToken::LBracket) {
                let len = if self.peek_raw() == Some(RawToken::RBracket) { None } else { Some(self.constant()?) };
                self.expect(RawToken::RBracket, "`]` closing the array length")?;
                suffixes.push(Derivation::Array(len));
            } else if self.peek_raw() == Some(RawToken::LParen) {
                self.skip_parenthesized();
                suffixes.push(Derivation::Function);
            } else {
                break;
            }
        }
        let mut derivations: Vec<Derivation> = (0..pointers).map(|_| Derivation::Pointer).collect();
        derivations.extend(suffixes.into_iter().rev());
        derivations.extend(inner);
        Ok((name, derivations))
    }

    // ---- Constant expressions --------------------------------------------------------------

    /// An integer constant expression, C's precedence: `|` < `^` < `&` < shifts < `+ -` <
    /// `* / %` < unary.
    fn constant(&mut self) -> Parsed<CConst> {
        self.binary(0)
    }

    fn binary(&mut self, level: usize) -> Parsed<CConst> {
        const LEVELS: &[&[(RawToken, &str)]] = &[
            &[(RawToken::Pipe, "|")],
            &[(RawToken::Caret, "^")],
            &[(RawToken::Amp, "&")],
            &[(RawToken::Shl, "<<"), (RawToken::Shr, ">>")],
            &[(RawToken::Plus, "+"), (RawToken::Minus, "-")],
            &[(RawToken::Star, "*"), (RawToken::Slash, "/"), (RawToken::Percent, "%")],
        ];
        let Some(ops) = LEVELS.get(level) else { return self.unary() };
        let mut lhs = self.binary(level + 1)?;
        while let Some(&(_, symbol)) = ops.iter().find(|(raw, _)| self.peek_raw() == Some(*raw)) {
            self.pos += 1;
            let rhs = self.binary(level + 1)?;
            let span = lhs.span.to(rhs.span);
            lhs = CConst { kind: CConstKind::Binary(symbol, Box::new(lhs), Box::new(rhs)), span };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Parsed<CConst> {
        let Some(token) = self.peek() else { return Err(self.expected("a constant")) };
        let op = match token.raw {
            RawToken::Minus => Some('-'),
            RawToken::Plus => Some('+'),
            RawToken::Tilde => Some('~'),
            RawToken::Bang => Some('!'),
            _ => None,
        };
        if let Some(op) = op {
            self.unary_depth += 1;
            if self.unary_depth > MAX_UNARY_DEPTH {
                return Err(Diagnostic::error("syntax", "a constant nested too deeply", token.span));
            }
            self.pos += 1;
            let operand = self.unary()?;
            self.unary_depth -= 1;
            let span = token.span.to(operand.span);
            return Ok(CConst { kind: CConstKind::Unary(op, Box::new(operand)), span });
        }
        self.primary()
    }

    fn primary(&mut self) -> Parsed<CConst> {
        let Some(token) = self.peek() else { return Err(self.expected("a constant")) };
        match token.raw {
            RawToken::Number => {
                self.pos += 1;
                // C's suffixes (`10u`, `1UL`) do not change a value here.
                let digits = token.text.trim_end_matches(['u', 'U', 'l', 'L']);
                let value = parse_int(digits).map_err(|_| {
                    Diagnostic::error("syntax", format!("invalid integer constant `{}`", token.text), token.span)
                })?;
                Ok(CConst { kind: CConstKind::Int(value), span: token.span })
            }
            RawToken::Ident => {
                self.pos += 1;
                Ok(CConst { kind: CConstKind::Name(token.text.to_string()), span: token.span })
            }
            RawToken::LParen => {
                self.pos += 1;
                let inner = self.constant()?;
                self.expect(RawToken::RParen, "`)`")?;
                Ok(inner)
            }
            RawToken::Sizeof => {
                self.pos += 1;
                self.expect(RawToken::LParen, "`(` after `sizeof`")?;
                let base = self.specifiers()?;
                let (_, ty) = self.declarator(base)?;
                self.expect(RawToken::RParen, "`)` closing `sizeof`")?;
                let span = token.span.to(ty.span);
                Ok(CConst {
                    kind: CConstKind::Sizeof(Box::new(ty)),
                    span: Span::new(span.range().start, self.last_end()),
                })
            }
            _ => Err(self.expected("a constant")),
        }
    }

    // ---- Tokens ----------------------------------------------------------------------------

    fn peek(&self) -> Option<CToken<'s>> {
        self.tokens.get(self.pos).copied()
    }

    fn peek_raw(&self) -> Option<RawToken> {
        self.peek().map(|t| t.raw)
    }

    fn advance(&mut self) -> CToken<'s> {
        let token = self.tokens[self.pos];
        self.pos += 1;
        token
    }

    fn eat(&mut self, raw: RawToken) -> bool {
        let found = self.peek_raw() == Some(raw);
        if found {
            self.pos += 1;
        }
        found
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek().is_some_and(|t| t.raw == RawToken::Ident && t.text == word);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, raw: RawToken, what: &str) -> Parsed<()> {
        if self.eat(raw) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// An identifier that names something (not `__attribute__`).
    fn name(&mut self) -> Option<Ident> {
        let token = self.peek().filter(|t| t.raw == RawToken::Ident && t.text != "__attribute__")?;
        self.pos += 1;
        Some(Ident { name: token.text.to_string(), span: token.span })
    }

    /// Where the current token starts (the definition's end when there is none).
    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.span.range().start)
    }

    fn last_end(&self) -> usize {
        self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)).map_or(self.here(), |t| t.span.range().end)
    }

    fn expected(&self, what: &str) -> Diagnostic {
        match self.peek() {
            Some(token) => Diagnostic::error(
                "syntax",
                format!("syntax error in a C definition: expected {what}, found `{}`", token.text),
                token.span,
            ),
            // Point at the definition's last token: the mistake is that nothing follows it.
            None => Diagnostic::error(
                "syntax",
                format!("syntax error in a C definition: expected {what}, found the end of the definition"),
                self.tokens.last().map_or(Span::new(self.end, self.end), |t| t.span),
            ),
        }
    }
}

impl Keywords {
    /// Records `word` if it is one of C's type keywords.
    fn take(&mut self, word: &str) -> bool {
        match word {
            "signed" | "__signed__" | "__signed" => self.signed = Some(true),
            "unsigned" => self.signed = Some(false),
            "short" => self.short = true,
            "long" => self.long += 1,
            "int" => self.int = true,
            "char" => self.char = true,
            "void" => self.void = true,
            "_Bool" | "bool" => self.bool = true,
            "float" => self.float = true,
            "double" => self.double = true,
            _ => return false,
        }
        self.any = true;
        true
    }

    /// The type the keywords name together; `None` when they name none.
    fn base(&self) -> Option<CBase> {
        if !self.any {
            return None;
        }
        let others = |n: usize| -> bool {
            let count = [self.short, self.long > 0, self.int, self.char, self.void, self.bool, self.float, self.double]
                .iter()
                .filter(|b| **b)
                .count();
            count == n
        };
        Some(if self.void && others(1) && self.signed.is_none() {
            CBase::Void
        } else if self.bool && others(1) && self.signed.is_none() {
            CBase::Bool
        } else if self.char && others(1) {
            CBase::Char { signed: self.signed }
        } else if self.float && others(1) && self.signed.is_none() {
            CBase::Float { bytes: 4 }
        } else if self.double && self.signed.is_none() && (others(1) || (self.long == 1 && others(2))) {
            CBase::Float { bytes: if self.long == 1 { 16 } else { 8 } }
        } else if self.void || self.bool || self.char || self.float || self.double || self.long > 2 {
            return None;
        } else {
            let bytes = if self.short {
                if self.long > 0 {
                    return None;
                }
                2
            } else if self.long > 0 {
                8
            } else {
                4
            };
            CBase::Int { bytes, signed: self.signed.unwrap_or(true) }
        })
    }
}
