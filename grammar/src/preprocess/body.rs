//! Text that is not a directive: a script's, with its macros expanded and header constants
//! replaced by their values; a system header's, where only enum constants are looked for
//! (`enum __socket_type { SOCK_STREAM = 1, ... }`, so that `SOCK_STREAM` has a value).

use super::scan::{self, Dialect, Kind, PpToken};
use super::{eval, macros, FileState, Preprocessor};

/// Where a system header's text is in an `enum { ... }` declaration. It lives across the
/// header's body runs, since headers put `#define` lines between enumerators.
#[derive(Debug, Default)]
pub(super) enum EnumHarvest {
    #[default]
    Outside,
    /// After `enum` (and its tag).
    Keyword,
    Inside {
        next: Option<i64>,
        name: Option<String>,
        value: Vec<PpToken>,
        in_value: bool,
        depth: usize,
    },
}

/// Characters of attach points (`uprobe:/bin/bash:readline`, `kprobe:f+0x10`): an identifier
/// in a run of them that holds a `:` is part of an attach point, never a macro.
fn is_attach_point_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '/' | '.' | '*' | '-' | '+' | '$')
}

fn in_attach_point(chunk: &str, token: &PpToken) -> bool {
    let before = chunk[..token.start].chars().rev().take_while(|&c| is_attach_point_char(c));
    let after = chunk[token.end..].chars().take_while(|&c| is_attach_point_char(c));
    before.chain(after).any(|c| c == ':')
}

/// A header constant's value as script text.
fn constant_text(value: i64) -> String {
    if value < 0 {
        format!("({value})")
    } else {
        value.to_string()
    }
}

impl Preprocessor<'_> {
    /// A run of a script's text with its macros expanded; everything else is copied as is.
    pub(super) fn expand_body(&mut self, f: &mut FileState<'_>, start: usize, end: usize) {
        let chunk = &f.text[start..end];
        let tokens = scan::tokens(chunk, Dialect::Script);
        let origin = f.base + start;
        let mut copied = 0;
        let mut i = 0;
        while i < tokens.len() {
            let t = &tokens[i];
            if t.is("{") {
                f.braces += 1;
            } else if t.is("}") {
                f.braces = f.braces.saturating_sub(1);
            }
            let candidate = t.kind == Kind::Ident && !(f.braces == 0 && in_attach_point(chunk, t));
            if let Some((last, text)) = candidate.then(|| self.expansion(&tokens, i)).flatten() {
                self.copy(origin + copied, &chunk[copied..t.start]);
                self.produce(&text, origin + t.start..origin + tokens[last].end);
                copied = tokens[last].end;
                i = last + 1;
                continue;
            }
            i += 1;
        }
        self.copy(origin + copied, &chunk[copied..]);
    }

    /// What the identifier at `tokens[i]` becomes, with the index of the last token of its
    /// invocation; `None` when it stays. A system header's macro is used only when its value is
    /// an integer constant.
    fn expansion(&self, tokens: &[PpToken], i: usize) -> Option<(usize, String)> {
        let name = &*tokens[i].text;
        let Some(mac) = self.macros.get(name) else {
            return self.enums.get(name).map(|&v| (i, constant_text(v)));
        };
        let last = match mac.params {
            None => i,
            Some(_) => matching_paren(tokens, i + 1)?,
        };
        let mut invocation = tokens[i..=last].to_vec();
        invocation[0].space_before = false;
        let expanded = self.macros.expand(invocation);
        if mac.system {
            let value = eval::evaluate(&expanded, &|n| self.enums.get(n).copied()).ok()?;
            return Some((last, constant_text(value)));
        }
        Some((last, macros::render(&expanded)))
    }

    /// Enum constants of a system header's text.
    pub(super) fn harvest_enums(&mut self, f: &mut FileState<'_>, start: usize, end: usize) {
        for t in scan::tokens(&f.text[start..end], Dialect::C) {
            let state = std::mem::take(&mut f.enums);
            f.enums = self.enum_step(state, t);
        }
    }

    fn enum_step(&mut self, state: EnumHarvest, t: PpToken) -> EnumHarvest {
        match state {
            EnumHarvest::Outside if t.is("enum") => EnumHarvest::Keyword,
            EnumHarvest::Outside => EnumHarvest::Outside,
            EnumHarvest::Keyword if t.is("{") => {
                EnumHarvest::Inside { next: Some(0), name: None, value: Vec::new(), in_value: false, depth: 0 }
            }
            EnumHarvest::Keyword if t.kind == Kind::Ident => EnumHarvest::Keyword,
            EnumHarvest::Keyword => EnumHarvest::Outside,
            EnumHarvest::Inside { next, mut name, mut value, mut in_value, mut depth } => {
                if depth == 0 && (t.is(",") || t.is("}")) {
                    let next = name.take().and_then(|name| self.enumerator(name, &value, next));
                    if t.is("}") {
                        return EnumHarvest::Outside;
                    }
                    return EnumHarvest::Inside { next, name: None, value: Vec::new(), in_value: false, depth: 0 };
                }
                if t.is("(") {
                    depth += 1;
                } else if t.is(")") {
                    depth = depth.saturating_sub(1);
                }
                if in_value {
                    value.push(t);
                } else if t.is("=") {
                    in_value = true;
                } else if name.is_none() && t.kind == Kind::Ident {
                    name = Some(t.text.to_string());
                }
                EnumHarvest::Inside { next, name, value, in_value, depth }
            }
        }
    }

    /// Records one enumerator; returns the value the next one has unless it says otherwise.
    fn enumerator(&mut self, name: String, value: &[PpToken], implicit: Option<i64>) -> Option<i64> {
        let value = if value.is_empty() {
            implicit?
        } else {
            let expanded = self.macros.expand(value.to_vec());
            eval::evaluate(&expanded, &|n| self.enums.get(n).copied()).ok()?
        };
        self.enums.insert(name, value);
        value.checked_add(1)
    }
}

/// The index of the `)` closing the `(` at `open`, when `tokens[open]` is one.
fn matching_paren(tokens: &[PpToken], open: usize) -> Option<usize> {
    if !tokens.get(open)?.is("(") {
        return None;
    }
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        if t.is("(") {
            depth += 1;
        } else if t.is(")") {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}
