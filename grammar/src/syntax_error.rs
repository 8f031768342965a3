//! Turns the parser's errors into diagnostics worded for people: "syntax error, unexpected `}`,
//! expecting `;`", naming token families ("an expression", "an operator") instead of listing
//! dozens of terminals.

use std::convert::Infallible;

use lalrpop_util::ParseError;

use crate::token::{describe_expected, ExpectedKind, Tok};
use crate::{Diagnostic, Sources, Span};

/// Lists longer than this are left out: they would not help anyone.
const MAX_EXPECTED_ITEMS: usize = 5;

/// `sources` gives the text of a token (its spans are in the original offset space).
pub(crate) fn syntax_diagnostic(error: &ParseError<usize, Tok, Infallible>, sources: &Sources) -> Diagnostic {
    let (found, span, expected) = match error {
        ParseError::UnrecognizedToken { token: (start, token, end), expected } => {
            let text = sources.text(Span::new(*start, *end));
            (token.describe(text), Span::new(*start, *end), expected.as_slice())
        }
        ParseError::UnrecognizedEof { location, expected } => {
            ("end of input".to_string(), Span::new(*location, *location), expected.as_slice())
        }
        ParseError::ExtraToken { token: (start, token, end) } => {
            let text = sources.text(Span::new(*start, *end));
            (token.describe(text), Span::new(*start, *end), &[][..])
        }
        ParseError::InvalidToken { location } => ("token".to_string(), Span::new(*location, *location), &[][..]),
        ParseError::User { error } => match *error {},
    };
    let mut message = format!("syntax error, unexpected {found}");
    if let Some(expected) = summarize_expected(expected) {
        message.push_str(", expecting ");
        message.push_str(&expected);
    }
    Diagnostic::error("syntax", message, span)
}

/// "`;`, `}` or an operator", or `None` when nothing useful can be said.
fn summarize_expected(expected: &[String]) -> Option<String> {
    let mut items: Vec<String> = Vec::new();
    let mut ambiguous: Vec<String> = Vec::new();
    let (mut expression, mut operator, mut assignment) = (false, false, false);
    let mut statement = false;
    let (mut identifier, mut type_name, mut type_keyword) = (false, false, false);
    for terminal in expected {
        let (kind, words) = describe_expected(terminal);
        match kind {
            ExpectedKind::ExpressionStart => expression = true,
            ExpectedKind::StatementStart => statement = true,
            ExpectedKind::Operator => operator = true,
            ExpectedKind::Assignment => assignment = true,
            ExpectedKind::Identifier => identifier = true,
            ExpectedKind::Type => type_name = true,
            ExpectedKind::TypeKeyword => type_keyword = true,
            ExpectedKind::Ambiguous => ambiguous.push(words),
            ExpectedKind::Other => {
                if !items.contains(&words) {
                    items.push(words);
                }
            }
        }
    }
    // `(` alone after `if` must be named; next to an expression or operator it is implied.
    if !expression && !operator {
        items.append(&mut ambiguous);
    }
    if type_name || (type_keyword && !identifier && !expression) {
        items.push("a type".to_string());
    }
    if statement {
        // Expressions, identifiers and `if` start statements too, so need no mention of their own.
        items.retain(|item| item != "`if`");
        items.push("a statement".to_string());
    } else if expression {
        // An identifier starts an expression too, so it needs no mention of its own.
        items.push("an expression".to_string());
    } else if identifier {
        items.push("an identifier".to_string());
    }
    if operator {
        items.push("an operator".to_string());
    }
    if assignment {
        items.push("`=`".to_string());
    }
    if items.is_empty() || items.len() > MAX_EXPECTED_ITEMS {
        return None;
    }
    let last = items.pop()?;
    Some(if items.is_empty() { last } else { format!("{} or {last}", items.join(", ")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(terminals: &[&str]) -> Vec<String> {
        terminals.iter().map(|t| format!("\"{t}\"")).collect()
    }

    #[test]
    fn plain_lists() {
        assert_eq!(summarize_expected(&names(&[";"])).as_deref(), Some("`;`"));
        assert_eq!(summarize_expected(&names(&[";", "}"])).as_deref(), Some("`;` or `}`"));
    }

    #[test]
    fn statement_starts_cover_expressions() {
        let mut expected = names(&["}", "if", "while", "unroll", "return", "(", "-"]);
        expected.extend(["INT", "VAR", "MAP", "IDENT"].map(String::from));
        assert_eq!(summarize_expected(&expected).as_deref(), Some("`}` or a statement"));
    }

    #[test]
    fn families_are_named_once() {
        let mut expected = names(&["(", "-", "!", "~", "*", "&", "++", "--"]);
        expected.extend(["INT", "STRING", "VAR", "MAP", "IDENT"].map(String::from));
        assert_eq!(summarize_expected(&expected).as_deref(), Some("an expression"));
        let after_operand = names(&[";", "}", "+", "-", "==", "?", "->"]);
        assert_eq!(summarize_expected(&after_operand).as_deref(), Some("`;`, `}` or an operator"));
    }
}
