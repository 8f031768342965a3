//! The tokens the parser consumes, and how to name them in a syntax error.
//!
//! Literal values are already decoded here (escapes resolved, integers parsed); a literal that
//! could not be decoded carries `None` and its diagnostic has already been recorded by the lexer,
//! so the parser can build an `Error` node without reporting the same mistake twice.

/// One token. Attach points and the two predicate slashes only occur at the top level, where the
/// tokenizer (not the logos lexer) decides what they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An attach point as written, e.g. `kprobe:vfs_read` or `BEGIN`.
    AttachPoint(String),
    /// The `/` that opens a predicate.
    PredicateOpen,
    /// The `/` that closes a predicate (it is followed by `{`).
    PredicateClose,

    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Semicolon,
    Comma,
    Colon,
    Question,
    Dot,
    Arrow,

    Assign,
    /// A compound assignment such as `+=`; the text is kept for error messages.
    CompoundAssign(crate::ast::BinaryOp),

    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    Pipe,
    Caret,
    Tilde,
    Bang,
    Shl,
    Shr,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    PlusPlus,
    MinusMinus,

    If,
    Else,
    While,
    Unroll,
    Return,
    Struct,
    Union,
    Enum,
    Sizeof,
    Offsetof,
    /// A built-in type name usable in casts: `int8` ... `uint64`, `char`, `bool`, `void`.
    TypeKeyword(String),

    /// An integer literal; `None` when it was malformed or out of range.
    Int(Option<u64>),
    /// A string literal with escapes resolved.
    Str(String),
    /// `$name`, stored without the `$`.
    Var(String),
    /// `$1`; `None` when the number is out of range.
    Param(Option<u32>),
    /// `$#`
    ParamCount,
    /// `@name` without the `@`; the anonymous map `@` is the empty string.
    Map(String),
    Ident(String),
}

impl Tok {
    /// A human description of a found token for "unexpected ..." messages; `text` is its source.
    pub(crate) fn describe(&self, text: &str) -> String {
        let shown = shorten(text);
        match self {
            Tok::AttachPoint(_) => format!("attach point `{shown}`"),
            Tok::Int(_) => format!("integer `{shown}`"),
            Tok::Str(_) => format!("string {shown}"),
            Tok::Var(_) => format!("variable `{shown}`"),
            Tok::Param(_) | Tok::ParamCount => format!("positional parameter `{shown}`"),
            Tok::Map(_) => format!("map `{shown}`"),
            Tok::Ident(_) => format!("identifier `{shown}`"),
            Tok::TypeKeyword(_) => format!("type `{shown}`"),
            // The tokenizer closes blocks left open at the end of the input with empty `}` tokens.
            _ if text.is_empty() => "end of input".to_string(),
            _ => format!("`{shown}`"),
        }
    }
}

/// Long tokens (strings, attach points) are cut so one error message stays on one line.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    if text.chars().count() <= MAX_CHARS {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head}...")
    }
}

/// Turns a terminal name from the grammar (as lalrpop lists it in "expected") into words, and
/// says which family it belongs to so long lists can be summarised.
pub(crate) fn describe_expected(terminal: &str) -> (ExpectedKind, String) {
    let name = terminal.trim_matches('"');
    let kind = match name {
        "ATTACH_POINT" => return (ExpectedKind::Other, "an attach point".to_string()),
        "PREDICATE_OPEN" => return (ExpectedKind::Other, "a predicate".to_string()),
        "PREDICATE_CLOSE" => return (ExpectedKind::Other, "`/` closing the predicate".to_string()),
        "IDENT" => ExpectedKind::Identifier,
        "TYPE_KEYWORD" => ExpectedKind::TypeKeyword,
        "struct" | "union" | "enum" => ExpectedKind::Type,
        "INT" | "STRING" | "VAR" | "PARAM" | "PARAM_COUNT" | "MAP" | "sizeof" | "offsetof" | "!" | "~" => {
            ExpectedKind::ExpressionStart
        }
        "COMPOUND_ASSIGN" | "=" => ExpectedKind::Assignment,
        // Not `if`: after `else` it is expected alone, and must then be named.
        "while" | "unroll" | "return" => ExpectedKind::StatementStart,
        // These both start expressions and continue them (`(` after a name makes a call), so
        // alone they tell nothing about the context.
        "-" | "*" | "&" | "++" | "--" | "(" => ExpectedKind::Ambiguous,
        "+" | "/" | "%" | "|" | "^" | "<<" | ">>" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "&&" | "||" | "?"
        | "->" | "." | "[" => ExpectedKind::Operator,
        _ => ExpectedKind::Other,
    };
    (kind, format!("`{name}`"))
}

/// Families of expected tokens; a family is named once instead of listing its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExpectedKind {
    ExpressionStart,
    /// A keyword that starts a statement; where one is expected, any expression is too.
    StatementStart,
    Operator,
    Assignment,
    Identifier,
    /// `int8` and friends: a type in a cast, but also usable as a field name.
    TypeKeyword,
    /// `struct`, `union`, `enum`: only ever start a type.
    Type,
    Ambiguous,
    Other,
}
