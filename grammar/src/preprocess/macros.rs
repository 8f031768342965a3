//! Macros: `#define` parsed into object-like and function-like macros, and their expansion as
//! the C preprocessor does it (arguments expanded before substitution, `#` stringification, `##`
//! pasting, `__VA_ARGS__`, a macro never expanding inside its own expansion).

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::scan::{self, Dialect, Kind, PpToken};

/// How many macro expansions one list of tokens may take; beyond it expansion stops, so that a
/// macro whose expansion grows without end cannot hang the preprocessor.
const MAX_EXPANSIONS: usize = 20_000;

/// How deeply arguments inside arguments are expanded (`F(F(F(x)))`); deeper ones are used as
/// written, so hostile input cannot exhaust the stack.
const MAX_ARGUMENT_DEPTH: usize = 100;

/// What one expansion may still spend.
struct Budget {
    expansions: usize,
    depth: usize,
}

#[derive(Debug)]
pub(super) struct Macro {
    /// `None` for an object-like macro; the parameter names of a function-like one, the last
    /// being `__VA_ARGS__` (or a GNU named variadic) when `variadic`.
    pub params: Option<Vec<String>>,
    pub variadic: bool,
    pub body: Vec<PpToken>,
    /// Defined by a system header: used in the script only as an integer constant.
    pub system: bool,
}

#[derive(Debug, Default)]
pub(super) struct Macros {
    map: HashMap<String, Rc<Macro>>,
}

impl Macros {
    pub fn get(&self, name: &str) -> Option<&Rc<Macro>> {
        self.map.get(name)
    }

    pub fn is_defined(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn undefine(&mut self, name: &str) {
        self.map.remove(name);
    }

    /// Defines an object-like macro from its body's text, as `-D NAME=VALUE` does.
    pub fn define_text(&mut self, name: &str, body: &str, system: bool) {
        let mut body = scan::tokens(body, Dialect::C);
        if let Some(first) = body.first_mut() {
            first.space_before = false;
        }
        self.map.insert(name.to_owned(), Rc::new(Macro { params: None, variadic: false, body, system }));
    }

    /// Defines a macro from the tokens after `#define`. Returns the macro's name, or why the
    /// definition is malformed.
    pub fn define(&mut self, tokens: &[PpToken], system: bool) -> Result<String, String> {
        let Some(name) = tokens.first().filter(|t| t.kind == Kind::Ident) else {
            return Err("macro names must be identifiers".into());
        };
        let mut rest = &tokens[1..];
        let mut params = None;
        let mut variadic = false;
        if rest.first().is_some_and(|t| t.is("(") && !t.space_before) {
            let (names, is_variadic, used) = parameters(&rest[1..])?;
            params = Some(names);
            variadic = is_variadic;
            rest = &rest[1 + used..];
        }
        let mut body = rest.to_vec();
        if let Some(first) = body.first_mut() {
            first.space_before = false;
        }
        let name = name.text.to_string();
        self.map.insert(name.clone(), Rc::new(Macro { params, variadic, body, system }));
        Ok(name)
    }

    /// Expands every macro in `input`, rescanning each expansion, as the preprocessor does.
    pub fn expand(&self, input: Vec<PpToken>) -> Vec<PpToken> {
        let mut budget = Budget { expansions: MAX_EXPANSIONS, depth: 0 };
        self.expand_with(input, &mut budget)
    }

    fn expand_with(&self, input: Vec<PpToken>, budget: &mut Budget) -> Vec<PpToken> {
        let mut pending: VecDeque<PpToken> = input.into();
        let mut out = Vec::new();
        while let Some(token) = pending.pop_front() {
            let found = (token.kind == Kind::Ident && !token.hidden(&token.text) && budget.expansions > 0)
                .then(|| self.map.get(&*token.text))
                .flatten();
            let Some(mac) = found else {
                out.push(token);
                continue;
            };
            let args = match &mac.params {
                None => Vec::new(),
                Some(params) => match take_arguments(&mut pending, params.len(), mac.variadic) {
                    Some(args) => args,
                    None => {
                        out.push(token);
                        continue;
                    }
                },
            };
            budget.expansions -= 1;
            let mut hide: Vec<Rc<str>> = token.hide.to_vec();
            hide.push(token.text.clone());
            let hide: Rc<[Rc<str>]> = hide.into();
            let mut body = self.substitute(mac, &args, budget);
            for t in &mut body {
                let mut merged: Vec<Rc<str>> = t.hide.to_vec();
                merged.extend(hide.iter().filter(|h| !t.hidden(h)).cloned());
                t.hide = merged.into();
            }
            if let Some(first) = body.first_mut() {
                first.space_before = token.space_before;
            }
            for t in body.into_iter().rev() {
                pending.push_front(t);
            }
        }
        out
    }

    /// A macro's body with its parameters replaced by the arguments: expanded ones in general,
    /// the arguments as written beside `#` and `##`.
    fn substitute(&self, mac: &Macro, args: &[Vec<PpToken>], budget: &mut Budget) -> Vec<PpToken> {
        let params = mac.params.as_deref().unwrap_or(&[]);
        let param = |t: &PpToken| (t.kind == Kind::Ident).then(|| params.iter().position(|p| **p == *t.text)).flatten();
        let body = &mac.body;
        let mut out: Vec<PpToken> = Vec::new();
        let mut i = 0;
        while i < body.len() {
            let t = &body[i];
            if t.is("#") && mac.params.is_some() {
                if let Some(p) = body.get(i + 1).and_then(param) {
                    out.push(PpToken::synthetic(Kind::Str, &stringify(&args[p]), t.space_before));
                    i += 2;
                    continue;
                }
            }
            if t.is("##") && i + 1 < body.len() {
                let next = &body[i + 1];
                let rhs: Vec<PpToken> = match param(next) {
                    Some(p) => args[p].clone(),
                    None => vec![next.clone()],
                };
                paste(&mut out, rhs, mac.variadic && param(next) == Some(params.len() - 1));
                i += 2;
                continue;
            }
            match param(t) {
                Some(p) => {
                    let beside_paste = body.get(i + 1).is_some_and(|n| n.is("##"));
                    let mut arg = if beside_paste || budget.depth >= MAX_ARGUMENT_DEPTH {
                        args[p].clone()
                    } else {
                        budget.depth += 1;
                        let expanded = self.expand_with(args[p].clone(), budget);
                        budget.depth -= 1;
                        expanded
                    };
                    if let Some(first) = arg.first_mut() {
                        first.space_before = t.space_before;
                    }
                    out.extend(arg);
                }
                None => out.push(t.clone()),
            }
            i += 1;
        }
        out
    }
}

/// The parameter list after `(`: the names, whether the macro is variadic, and how many tokens
/// the list took (its `)` included).
fn parameters(tokens: &[PpToken]) -> Result<(Vec<String>, bool, usize), String> {
    let mut names = Vec::new();
    let mut i = 0;
    if tokens.first().is_some_and(|t| t.is(")")) {
        return Ok((names, false, 1));
    }
    loop {
        let Some(t) = tokens.get(i) else { return Err("missing `)` in the macro's parameter list".into()) };
        if t.is("...") {
            names.push("__VA_ARGS__".to_owned());
            return match tokens.get(i + 1) {
                Some(close) if close.is(")") => Ok((names, true, i + 2)),
                _ => Err("`...` must be the last parameter".into()),
            };
        }
        if t.kind != Kind::Ident {
            return Err(format!("expected a parameter name, found `{}`", t.text));
        }
        names.push(t.text.to_string());
        match tokens.get(i + 1) {
            Some(n) if n.is(",") => i += 2,
            Some(n) if n.is(")") => return Ok((names, false, i + 2)),
            Some(n) if n.is("...") && tokens.get(i + 2).is_some_and(|c| c.is(")")) => {
                return Ok((names, true, i + 3));
            }
            _ => return Err("expected `,` or `)` in the macro's parameter list".into()),
        }
    }
}

/// Takes `( args )` off the front of `pending`: the arguments split at top-level commas (the
/// variadic part keeps its commas). `None`, with `pending` untouched, when no `(` follows or it
/// is not closed.
fn take_arguments(pending: &mut VecDeque<PpToken>, count: usize, variadic: bool) -> Option<Vec<Vec<PpToken>>> {
    if !pending.front().is_some_and(|t| t.is("(")) {
        return None;
    }
    let mut depth = 0usize;
    let mut args: Vec<Vec<PpToken>> = vec![Vec::new()];
    let mut taken = Vec::new();
    let mut closed = false;
    taken.extend(pending.pop_front());
    while let Some(t) = pending.pop_front() {
        taken.push(t.clone());
        if t.is(")") && depth == 0 {
            closed = true;
            break;
        }
        if t.is("(") {
            depth += 1;
        } else if t.is(")") {
            depth -= 1;
        } else if t.is(",") && depth == 0 && !(variadic && args.len() == count) {
            args.push(Vec::new());
            continue;
        }
        if let Some(arg) = args.last_mut() {
            arg.push(t);
        }
    }
    let fits = args.len() == count || (count == 0 && args.len() == 1 && args[0].is_empty());
    let fits = fits || (variadic && args.len() + 1 == count);
    if !closed || !fits {
        for t in taken.into_iter().rev() {
            pending.push_front(t);
        }
        return None;
    }
    args.resize_with(count, Vec::new);
    Some(args)
}

/// `#arg`: the argument's spelling as a string literal.
fn stringify(arg: &[PpToken]) -> String {
    let mut text = String::from("\"");
    for (i, t) in arg.iter().enumerate() {
        if i > 0 && t.space_before {
            text.push(' ');
        }
        if matches!(t.kind, Kind::Str | Kind::Char) {
            for c in t.text.chars() {
                if matches!(c, '"' | '\\') {
                    text.push('\\');
                }
                text.push(c);
            }
        } else {
            text.push_str(&t.text);
        }
    }
    text.push('"');
    text
}

/// `lhs ## rhs`: the last token so far and the first of `rhs` become one token. GNU's `, ##
/// __VA_ARGS__` drops the comma when the variadic arguments are empty.
fn paste(out: &mut Vec<PpToken>, mut rhs: Vec<PpToken>, rhs_is_variadic: bool) {
    if rhs.is_empty() {
        if rhs_is_variadic && out.last().is_some_and(|t| t.is(",")) {
            out.pop();
        }
        return;
    }
    let Some(lhs) = out.pop() else {
        out.extend(rhs);
        return;
    };
    if rhs_is_variadic && lhs.is(",") {
        out.push(lhs);
        out.extend(rhs);
        return;
    }
    let first = rhs.remove(0);
    let joined = format!("{}{}", lhs.text, first.text);
    let relexed = scan::tokens(&joined, Dialect::C);
    let kind = match relexed.as_slice() {
        [one] => one.kind,
        _ => Kind::Other,
    };
    let mut token = PpToken::synthetic(kind, &joined, lhs.space_before);
    token.hide = lhs.hide.clone();
    out.push(token);
    out.extend(rhs);
}

/// Tokens back to text: a space where the source had one, and between two tokens that would
/// otherwise run together into one.
pub(super) fn render(tokens: &[PpToken]) -> String {
    let mut text = String::new();
    let mut previous: Option<&PpToken> = None;
    for t in tokens {
        if let Some(p) = previous {
            if t.space_before || would_merge(p, t) {
                text.push(' ');
            }
        }
        text.push_str(&t.text);
        previous = Some(t);
    }
    text
}

/// Whether `a` written right before `b` would be read as another token.
fn would_merge(a: &PpToken, b: &PpToken) -> bool {
    let joined = format!("{}{}", a.text, b.text);
    scan::tokens(&joined, Dialect::Script).first().is_none_or(|first| first.end != a.text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn macros(defs: &[&str]) -> Macros {
        let mut m = Macros::default();
        for d in defs {
            m.define(&scan::tokens(d, Dialect::C), false).expect("a valid definition");
        }
        m
    }

    fn expand(m: &Macros, text: &str) -> String {
        render(&m.expand(scan::tokens(text, Dialect::Script)))
    }

    #[test]
    fn object_and_function_like_macros_expand() {
        let m = macros(&["A 1 + 2", "SQ(x) ((x) * (x))", "MAX(a, b) ((a) > (b) ? (a) : (b))", "B A"]);
        assert_eq!(expand(&m, "A * 2"), "1 + 2 * 2");
        assert_eq!(expand(&m, "SQ(B)"), "((1 + 2) * (1 + 2))");
        assert_eq!(expand(&m, "MAX($x, f(1, 2))"), "(($x) > (f(1, 2)) ? ($x) : (f(1, 2)))");
        assert_eq!(expand(&m, "SQ + 1"), "SQ + 1");
    }

    #[test]
    fn self_reference_stops_and_stringify_and_paste_work() {
        let m = macros(&["X X + 1", "S(a) #a", "CAT(a, b) a ## b", "V(f, ...) f(0, ## __VA_ARGS__)"]);
        assert_eq!(expand(&m, "X"), "X + 1");
        assert_eq!(expand(&m, "S(a \"b\")"), r#""a \"b\"""#);
        assert_eq!(expand(&m, "CAT(AF_, INET)"), "AF_INET");
        assert_eq!(expand(&m, "V(g)"), "g(0)");
        assert_eq!(expand(&m, "V(g, 1, 2)"), "g(0, 1, 2)");
    }

    #[test]
    fn malformed_definitions_are_errors() {
        let mut m = Macros::default();
        assert!(m.define(&scan::tokens("F(a b", Dialect::C), false).is_err());
        assert!(m.define(&scan::tokens("1 2", Dialect::C), false).is_err());
    }
}
