//! Attach points: finding where one ends in the source, and splitting it into its `:` parts.
//!
//! Attach points are raw text, not tokens: `uprobe:/bin/bash:readline`, `kprobe:vfs_*`,
//! `kprobe:vfs_read+16`, `software:cpu-clock:100000`, `uprobe:"/path with space":func`.

use crate::ast::ProbeSpec;
use crate::{Diagnostic, Span};

/// Finds the end of the attach point starting at byte `start` of `src`.
///
/// It ends at whitespace, `,`, `{`, `}`, `;`, `(` or `)` outside quotes. A `/` belongs to it once a
/// `:` has been seen (`uprobe:/bin/bash:f`); before that it opens the predicate, as in
/// `BEGIN/pid == 1/`, which is also how bpftrace reads it. Quoted parts run to the closing quote;
/// one left open is reported and ends at the line end.
pub(crate) fn scan_attach_point(src: &str, start: usize, diagnostics: &mut Vec<Diagnostic>) -> usize {
    let mut seen_colon = false;
    let mut chars = src[start..].char_indices().peekable();
    while let Some(&(offset, c)) = chars.peek() {
        match c {
            '"' => {
                chars.next();
                if !skip_quoted(&mut chars) {
                    let end = chars.peek().map_or(src.len(), |&(i, _)| start + i);
                    diagnostics.push(
                        Diagnostic::error(
                            "syntax",
                            "unterminated quote in attach point",
                            Span::new(start + offset, end),
                        )
                        .with_help("close the quoted part with `\"`"),
                    );
                    return end;
                }
                continue;
            }
            ':' => seen_colon = true,
            '/' if !seen_colon => return start + offset,
            ',' | '{' | '}' | ';' | '(' | ')' => return start + offset,
            c if c.is_whitespace() => return start + offset,
            _ => {}
        }
        chars.next();
    }
    src.len()
}

/// Skips the rest of a quoted part (the opening quote is consumed); `false` if a newline or the
/// end of input came first. A backslash escapes the next character.
fn skip_quoted(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> bool {
    let mut escaped = false;
    while let Some(&(_, c)) = chars.peek() {
        if c == '\n' {
            return false;
        }
        chars.next();
        match c {
            '"' if !escaped => return true,
            '\\' if !escaped => escaped = true,
            _ => escaped = false,
        }
    }
    false
}

/// Builds the spec for attach point `text` found at `span`.
pub(crate) fn probe_spec(text: String, span: Span) -> ProbeSpec {
    let parts = split_parts(&text);
    ProbeSpec { text, parts, span }
}

/// Splits at `:` outside quotes and removes the quotes; inside quotes `\"` and `\\` stand for `"`
/// and `\`. `uprobe:"/a b":f` gives `["uprobe", "/a b", "f"]`.
pub fn split_parts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_quotes = !in_quotes,
            '\\' if in_quotes => match chars.next() {
                Some(escaped @ ('"' | '\\')) => current.push(escaped),
                Some(other) => {
                    current.push('\\');
                    current.push(other);
                }
                None => current.push('\\'),
            },
            ':' if !in_quotes => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(src: &str) -> &str {
        let mut diagnostics = Vec::new();
        let end = scan_attach_point(src, 0, &mut diagnostics);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        &src[..end]
    }

    #[test]
    fn attach_point_ends() {
        assert_eq!(scan("BEGIN { }"), "BEGIN");
        assert_eq!(scan("BEGIN/pid/{ }"), "BEGIN");
        assert_eq!(scan("BEGIN,END{}"), "BEGIN");
        assert_eq!(scan("uprobe:/bin/bash:readline /pid/"), "uprobe:/bin/bash:readline");
        assert_eq!(scan("kprobe:vfs_read+16{"), "kprobe:vfs_read+16");
        assert_eq!(scan("t:sched:sched*\n{"), "t:sched:sched*");
        assert_eq!(scan("uprobe:\"/a b/c\":f {"), "uprobe:\"/a b/c\":f");
        assert_eq!(scan("software:cpu-clock:100000"), "software:cpu-clock:100000");
    }

    #[test]
    fn unterminated_quote() {
        let mut diagnostics = Vec::new();
        let src = "uprobe:\"/a b\n{ }";
        let end = scan_attach_point(src, 0, &mut diagnostics);
        assert_eq!(end, 12);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].primary_span(), Span::new(7, 12));
    }

    #[test]
    fn parts() {
        assert_eq!(split_parts("BEGIN"), vec!["BEGIN"]);
        assert_eq!(
            split_parts("tracepoint:syscalls:sys_enter_openat"),
            vec!["tracepoint", "syscalls", "sys_enter_openat"]
        );
        assert_eq!(split_parts("uprobe:\"/a:b c\":f"), vec!["uprobe", "/a:b c", "f"]);
        assert_eq!(split_parts(r#"uprobe:"x\"y":f"#), vec!["uprobe", "x\"y", "f"]);
        assert_eq!(split_parts("uprobe::f"), vec!["uprobe", "", "f"]);
    }
}
