//! `-k` and `-kk`: reports of failed helper calls, as bpftrace 0.17 sends them. Each checked call
//! site gets an id; when the call fails, the program sends an [`EventKind::HelperError`] record
//! (the id, the return value) through the event channel, and the runtime prints where the call
//! is in the script.
//!
//! Level 1 (`-k`) reports every checked helper except the reads of memory and map lookups,
//! whose failures the script sees as zero (bpftrace's `return_zero_if_err`); level 2 (`-kk`)
//! reports those too, a failed lookup with the return code 0. With no `-k` nothing here adds
//! an instruction.

use super::ProbeLowering;
use crate::bpf::helpers::Helper;
use crate::ir::{BlockId, Cond, Op, Operand, Term, VReg};
use crate::program::{EventKind, HelperErrorSite, SourceLocation, EVENT_HEADER};
use grammar::{Sources, Span};

/// The source of a checked call, as the lowering knows it: spans of rbt's tree, which
/// [`locate_sites`] turns into bpftrace's locations once the source text is at hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteSpan {
    /// An expression or statement, located as bpftrace locates the node it parses it to.
    Node(Span),
    /// A unary operator's expression (`*p`, `++@m[k]`), which bpftrace locates at the operator.
    Operator(Span),
    /// `@m[k] = v`: bpftrace locates the map update at its `=`, which lies between the start of
    /// the statement and the start of the value.
    Assignment { stmt: Span, value: Span },
}

/// One checked call: the helper and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelperSite {
    pub helper: Helper,
    pub at: SiteSpan,
}

/// The helpers whose failure the script sees as a zero value, which `-k` does not report
/// (`-kk` does).
fn returns_zero_on_failure(helper: Helper) -> bool {
    matches!(
        helper,
        Helper::ProbeRead
            | Helper::ProbeReadStr
            | Helper::ProbeReadKernel
            | Helper::ProbeReadKernelStr
            | Helper::ProbeReadUser
            | Helper::ProbeReadUserStr
            | Helper::MapLookupElem
    )
}

impl ProbeLowering<'_> {
    /// Whether a failure of `helper` is reported at this `-k` level.
    pub(super) fn reports(&self, helper: Helper) -> bool {
        match self.options.helper_checks {
            0 => false,
            1 => !returns_zero_on_failure(helper),
            _ => true,
        }
    }

    /// Sends the report of a failed call of `helper` from the current block: its return value
    /// `ret`, or 0 for a lookup that found nothing.
    fn report_failure(&mut self, helper: Helper, ret: Option<VReg>) {
        let id = self.helper_sites.len() as u32;
        let at = self.report_at.unwrap_or(SiteSpan::Node(self.b.span()));
        self.helper_sites.push(HelperSite { helper, at });
        let record = self.b.slot(EVENT_HEADER + 8);
        self.store_header(record, EventKind::HelperError, id);
        match ret {
            Some(ret) => {
                let code = self.b.reg();
                self.b.push(Op::Extend { dst: code, src: ret, bytes: 4, signed: true });
                self.b.store(record, EVENT_HEADER, code, 8);
            }
            None => self.b.store_imm(record, EVENT_HEADER, 0, 8),
        }
        self.send(record, EVENT_HEADER + 8);
    }

    /// Reports the failure of `helper` (a negative `ret`) from the current block, if this level
    /// reports it.
    pub(super) fn report_if_reported(&mut self, ret: VReg, helper: Helper) {
        if self.reports(helper) {
            self.report_failure(helper, Some(ret));
        }
    }

    /// After a call of `helper` returning `ret`: reports a negative return, if this level
    /// reports `helper`'s failures.
    pub(super) fn report_if_negative(&mut self, ret: VReg, helper: Helper) {
        if !self.reports(helper) {
            return;
        }
        let failed = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::SLt, ret, Operand::Imm(0), failed, done);
        self.b.switch_to(failed);
        self.report_failure(helper, Some(ret));
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    /// Ends the current block on a map lookup's result: to `found` when `ptr` is not null, else
    /// to `missing`, reporting the failed lookup on the way under `-kk`.
    pub(super) fn branch_on_lookup(&mut self, ptr: VReg, found: BlockId, missing: BlockId) {
        if !self.reports(Helper::MapLookupElem) {
            self.b.branch(Cond::Ne, ptr, Operand::Imm(0), found, missing);
            return;
        }
        let failed = self.b.new_block();
        self.b.branch(Cond::Ne, ptr, Operand::Imm(0), found, failed);
        self.b.switch_to(failed);
        self.report_failure(Helper::MapLookupElem, None);
        self.b.terminate(Term::Jump(missing));
    }

    /// Runs `lower` with the failures of the calls it makes itself (not those of the
    /// expressions it lowers, which have locations of their own) reported at `at`.
    pub(super) fn reporting_at<T>(&mut self, at: SiteSpan, lower: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.report_at.replace(at);
        let result = lower(self);
        self.report_at = saved;
        result
    }
}

/// Where bpftrace 0.17 reports each site's failure, in the files of `sources`.
pub fn locate_sites(sites: &[HelperSite], sources: &Sources) -> Vec<HelperErrorSite> {
    sites
        .iter()
        .map(|site| HelperErrorSite {
            helper: site.helper.name().strip_prefix("bpf_").unwrap_or(site.helper.name()),
            location: locate(site.at, sources),
        })
        .collect()
}

/// bpftrace's location of a site: the span its parser gives the node, whose start its lexer
/// moves back to the end of the last blank before it (bpftrace steps its location over blanks
/// only, so a token glued to the ones before it starts where they start: `(@m[1]`, `x,@m[1]`).
fn locate(at: SiteSpan, sources: &Sources) -> SourceLocation {
    let node = match at {
        SiteSpan::Node(span) => unwrapped(span, sources),
        SiteSpan::Operator(span) => {
            let inner = unwrapped(span, sources);
            let text = sources.text(inner);
            let len = if text.starts_with("++") || text.starts_with("--") { 2 } else { 1 };
            Span::new(inner.start as usize, (inner.start as usize + len).min(inner.end as usize))
        }
        SiteSpan::Assignment { stmt, value } => {
            let before = sources.text(Span::new(stmt.start as usize, value.start as usize));
            let trimmed = before.trim_end();
            if trimmed.ends_with('=') {
                let at = stmt.start as usize + trimmed.len() - 1;
                Span::new(at, at + 1)
            } else {
                stmt
            }
        }
    };
    let Some((file, local)) = sources.locate(node) else {
        return SourceLocation {
            file: String::new(),
            line: 0,
            column: 0,
            end_line: 0,
            end_column: 0,
            source_line: String::new(),
        };
    };
    let text = file.text.as_str();
    let start = token_start(text, local.start as usize);
    let (line, column) = line_column(text, start);
    let (end_line, end_column) = line_column(text, local.end as usize);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let source_line = text[line_start..].lines().next().unwrap_or("").to_owned();
    SourceLocation { file: file.name.clone(), line, column, end_line, end_column, source_line }
}

/// `span` without the parentheses around the whole of it, which rbt's spans include and
/// bpftrace's nodes do not (its lexer still moves the start back over them).
fn unwrapped(mut span: Span, sources: &Sources) -> Span {
    loop {
        let text = sources.text(span);
        if text.len() < 2 || !text.starts_with('(') || !text.ends_with(')') || !wraps_whole(text) {
            return span;
        }
        span = Span::new(span.start as usize + 1, span.end as usize - 1);
        let inner = sources.text(span);
        let leading = inner.len() - inner.trim_start().len();
        let trailing = inner.len() - inner.trim_end().len();
        span = Span::new(span.start as usize + leading, span.end as usize - trailing);
    }
}

/// Whether the `(` that starts `text` closes at its last byte (strings and characters aside).
fn wraps_whole(text: &str) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut bytes = text.bytes().enumerate();
    while let Some((i, c)) = bytes.next() {
        match (in_string, c) {
            (true, b'\\') => {
                bytes.next();
            }
            (_, b'"') => in_string = !in_string,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i == text.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// Where bpftrace's lexer starts the token at `pos`: after the last blank before it on its
/// line, blanks inside strings and comments aside (its lexer steps only over blanks between
/// tokens and newlines).
fn token_start(text: &str, pos: usize) -> usize {
    let bytes = text.as_bytes();
    let line_start = text[..pos.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let (mut start, mut i) = (line_start, line_start);
    let (mut in_string, mut in_comment) = (false, false);
    while i < pos.min(bytes.len()) {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if in_comment {
            if c == b'*' && next == Some(b'/') {
                in_comment = false;
                i += 1;
            }
        } else if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                b' ' | b'\t' | b'\r' => start = i + 1,
                b'"' => in_string = true,
                b'/' if next == Some(b'*') => {
                    in_comment = true;
                    i += 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    start
}

/// The 1-based line and byte column of offset `pos` in `text`.
fn line_column(text: &str, pos: usize) -> (u32, u32) {
    let before = &text.as_bytes()[..pos.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    (line as u32, (pos.min(text.len()) - line_start + 1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(text: &str, at: impl Fn(&str) -> SiteSpan) -> (u32, u32, u32, u32, String) {
        let sources = Sources::of_script("stdin", text);
        let l = locate(at(text), &sources);
        (l.line, l.column, l.end_line, l.end_column, l.source_line)
    }

    fn span_of(text: &str, part: &str) -> Span {
        let start = text.find(part).expect("part of the text");
        Span::new(start, start + part.len())
    }

    // The columns below are bpftrace 0.17's for these programs (run with `-kk`).

    #[test]
    fn nodes_start_after_the_last_blank_before_them() {
        let text = "i:ms:100 { @[1] = 1; delete(@[2]); printf(\"%d\\n\",@[3]); if (@[8]) {} exit(); }";
        let at = |part: &'static str| move |t: &str| SiteSpan::Node(span_of(t, part));
        let delete = located(text, at("delete(@[2])"));
        assert_eq!((delete.1, delete.3), (22, 34));
        // Glued to the format string: bpftrace's token starts with `printf(`.
        let glued = located(text, at("@[3]"));
        assert_eq!((glued.1, glued.3), (36, 54));
        // rbt's span of the parenthesized condition includes the parentheses; bpftrace's node
        // is the map, whose token starts at the `(`.
        let condition = located(text, at("(@[8])"));
        assert_eq!((condition.1, condition.3), (60, 65));
    }

    #[test]
    fn blanks_in_strings_and_comments_do_not_move_the_start() {
        let text = "BEGIN { @x[0]=1; @y[0]=1; printf(\"a b%d\\n\",@x[1]); /* c d */@y[2]; exit(); }";
        let string = located(text, |t| SiteSpan::Node(span_of(t, "@x[1]")));
        assert_eq!((string.1, string.3), (27, 49));
        let comment = located(text, |t| SiteSpan::Node(span_of(t, "@y[2]")));
        assert_eq!((comment.1, comment.3), (52, 66));
    }

    #[test]
    fn operators_and_assignments_are_located_at_their_operator() {
        let text = "BEGIN { @z[0]=0; $a = *(int32*)8; ++@y[3]; @x[2] = 2; @z[1]=3; exit(); }";
        let deref = located(text, |t| SiteSpan::Operator(span_of(t, "*(int32*)8")));
        assert_eq!((deref.1, deref.3), (23, 24));
        let increment = located(text, |t| SiteSpan::Operator(span_of(t, "++@y[3]")));
        assert_eq!((increment.1, increment.3), (35, 37));
        let assign = |stmt: &'static str| {
            move |t: &str| {
                let stmt = span_of(t, stmt);
                SiteSpan::Assignment { stmt, value: Span::new(stmt.end as usize - 1, stmt.end as usize) }
            }
        };
        let plain = located(text, assign("@x[2] = 2"));
        assert_eq!((plain.1, plain.3), (50, 51));
        // Without blanks the `=` token starts where the map does.
        let glued = located(text, assign("@z[1]=3"));
        assert_eq!((glued.1, glued.3), (55, 61));
    }

    #[test]
    fn locations_over_several_lines_keep_both_lines() {
        let text = "BEGIN {\n  delete(@x[\n    1]);\n}";
        let (line, _, end_line, _, source) = located(text, |t| SiteSpan::Node(span_of(t, "delete(@x[\n    1])")));
        assert_eq!((line, end_line, source.as_str()), (2, 3, "  delete(@x["));
    }

    #[test]
    fn names_are_bpftraces() {
        let sources = Sources::of_script("a.bt", "BEGIN { delete(@x[1]); }");
        let sites = [HelperSite { helper: Helper::MapDeleteElem, at: SiteSpan::Node(Span::new(8, 21)) }];
        let located = locate_sites(&sites, &sources);
        assert_eq!(located[0].helper, "map_delete_elem");
        assert_eq!((located[0].location.file.as_str(), located[0].location.column), ("a.bt", 9));
        assert!(returns_zero_on_failure(Helper::ProbeReadUserStr));
        assert!(!returns_zero_on_failure(Helper::MapUpdateElem));
    }
}
