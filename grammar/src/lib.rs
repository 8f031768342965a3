//! rbt's front end: the logos lexer and the lalrpop grammar turn source text into an AST whose every
//! node carries a byte span. Parsing never gives up: it returns the AST it could build and every
//! syntax error it found.

pub mod ast;
mod diagnostic;
mod span;

pub use diagnostic::{Diagnostic, Label, Severity};
pub use span::Span;
