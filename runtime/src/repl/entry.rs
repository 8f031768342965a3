//! REPL entries as text: telling when typed input is complete, telling probe blocks from a bare
//! statement list, and assembling the session's program from its entries.
//!
//! The session's program is every entry's text, in order, compiled as one script. Compiling the
//! whole gives every entry the map types the earlier ones fixed, and keeps the indices of maps,
//! printf formats and probes stable as entries are added: a new entry's text comes last, so what
//! it adds comes last. Entries stay in the program after they are detached (their programs are
//! unloaded, their text still numbers formats and probes); `:save` leaves them out.

use grammar::ast;

/// One accepted entry.
pub struct Entry {
    /// 1-based, as `:probes` shows it.
    pub id: usize,
    /// The text as it appears in the session's program: `text`, or a bare statement list
    /// wrapped in a BEGIN block.
    pub source: String,
    /// Where `source` starts in the session's program.
    pub offset: usize,
}

/// The opening of a bare statement list's BEGIN block; the text follows on the same line.
const STATEMENTS_PREFIX: &str = "BEGIN { ";
/// A newline first, so a `//` comment at the end of the text cannot swallow the brace.
const STATEMENTS_SUFFIX: &str = "\n}";

/// How an entry's text is read.
#[derive(Debug, PartialEq, Eq)]
pub enum EntryShape {
    /// One or more probe blocks, used as they are.
    Probes,
    /// Statements that run once, as a BEGIN block would.
    Statements,
}

/// Reads `text` as probe blocks or, failing that, as a statement list. When neither parses,
/// returns the errors of the reading the text looks most like, with spans into `text`.
pub fn shape(text: &str) -> Result<EntryShape, Vec<grammar::Diagnostic>> {
    let (_, diags) = grammar::parse(text);
    if !diags.iter().any(grammar::Diagnostic::is_error) {
        return Ok(EntryShape::Probes);
    }
    let wrapped = wrap_statements(text);
    let (_, wrapped_diags) = grammar::parse(&wrapped);
    if !wrapped_diags.iter().any(grammar::Diagnostic::is_error) {
        return Ok(EntryShape::Statements);
    }
    if looks_like_probes(text) {
        Err(diags)
    } else {
        let shift = STATEMENTS_PREFIX.len();
        Err(wrapped_diags.into_iter().map(|d| shift_diagnostic(d, shift, text.len())).collect())
    }
}

/// The text as it goes into the session's program.
pub fn source_for(text: &str, shape: &EntryShape) -> String {
    match shape {
        EntryShape::Probes => text.to_owned(),
        EntryShape::Statements => wrap_statements(text),
    }
}

fn wrap_statements(text: &str) -> String {
    format!("{STATEMENTS_PREFIX}{text}{STATEMENTS_SUFFIX}")
}

/// Probe blocks start with `BEGIN`, `END` or an attach point such as `tracepoint:...` or `i:s:1`.
fn looks_like_probes(text: &str) -> bool {
    let first: String =
        text.trim_start().chars().take_while(|c| !c.is_whitespace() && *c != '{' && *c != '/').collect();
    first == "BEGIN" || first == "END" || (first.contains(':') && !first.starts_with(['@', '$', '"']))
}

/// Moves a diagnostic's spans back by `shift` bytes, clamped into `0..=len`.
pub fn shift_diagnostic(mut d: grammar::Diagnostic, shift: usize, len: usize) -> grammar::Diagnostic {
    for label in &mut d.labels {
        let start = (label.span.start as usize).saturating_sub(shift).min(len);
        let end = (label.span.end as usize).saturating_sub(shift).min(len).max(start);
        label.span = grammar::Span::new(start, end);
    }
    d
}

/// Whether typed input is still open: an unclosed brace, parenthesis, bracket, string or block
/// comment means more lines follow.
pub fn is_incomplete(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut depth: i64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= bytes.len() {
                    return true;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => match text[i + 2..].find("*/") {
                Some(end) => i += end + 3,
                None => return true,
            },
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    depth > 0
}

/// The attach points of an entry's probe blocks that are still wanted, as text to save: each
/// block with the specs `keep` accepts, blocks with none left dropped. Spans are into `text`.
pub fn saved_text(text: &str, keep: &dyn Fn(&ast::ProbeSpec) -> bool) -> String {
    let (program, _) = grammar::parse(text);
    let mut out = String::new();
    for probe in program.probes {
        let Some(last) = probe.specs.last() else { continue };
        let rest = &text[last.span.end as usize..probe.span.end as usize];
        let total = probe.specs.len();
        let kept: Vec<String> =
            probe.specs.iter().filter(|s| keep(s)).map(|s| text[s.span.range()].to_owned()).collect();
        if kept.is_empty() {
            continue;
        }
        if kept.len() == total {
            out.push_str(&text[probe.span.range()]);
        } else {
            out.push_str(&kept.join(", "));
            out.push_str(rest);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_braces_strings_and_comments_continue_the_entry() {
        assert!(is_incomplete("tracepoint:sched:sched_switch {"));
        assert!(is_incomplete("BEGIN { printf(\"a {"));
        assert!(is_incomplete("BEGIN { /* note"));
        assert!(is_incomplete("printf(\"%d\\n\","));
        assert!(!is_incomplete("BEGIN { printf(\"}{\"); }"));
        assert!(!is_incomplete("BEGIN { } // {"));
        assert!(!is_incomplete("@x = 1"));
        // Too many closing braces is an error for the parser to report, not more input.
        assert!(!is_incomplete("}"));
    }

    #[test]
    fn statements_and_probes_are_told_apart() {
        assert_eq!(shape("BEGIN { @x = 1; }"), Ok(EntryShape::Probes));
        assert_eq!(shape("i:s:1 { exit(); }"), Ok(EntryShape::Probes));
        assert_eq!(shape("@limit = 100"), Ok(EntryShape::Statements));
        assert_eq!(shape("printf(\"%d\\n\", 1 << 10)"), Ok(EntryShape::Statements));
        assert_eq!(shape("$x = 1; printf(\"%d\\n\", $x); // done"), Ok(EntryShape::Statements));
    }

    #[test]
    fn errors_come_from_the_likelier_reading_with_spans_into_the_text() {
        let errors = shape("@x = = 1").expect_err("not a program");
        let span = errors[0].primary_span();
        assert!(span.end as usize <= "@x = = 1".len(), "{span:?}");
        assert_eq!(&"@x = = 1"[span.range()], "=");
        let errors = shape("tracepoint:sched:sched_switch { @x = ; }").expect_err("not a program");
        assert!(errors[0].primary_span().start > 30);
    }

    #[test]
    fn saving_keeps_the_wanted_attach_points() {
        let text = "BEGIN { @a = 1; }\ni:s:1, i:s:2 /1/ { @b = 2; }";
        assert_eq!(saved_text(text, &|_| true), "BEGIN { @a = 1; }\ni:s:1, i:s:2 /1/ { @b = 2; }\n");
        assert_eq!(saved_text(text, &|s| s.text != "i:s:1"), "BEGIN { @a = 1; }\ni:s:2 /1/ { @b = 2; }\n");
        assert_eq!(saved_text(text, &|s| s.text == "BEGIN"), "BEGIN { @a = 1; }\n");
    }
}
