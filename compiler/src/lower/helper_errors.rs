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
use crate::program::{EventKind, HelperErrorSite, EVENT_HEADER};
use grammar::{Sources, Span};

use super::bpftrace_location::locate;

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
    pub(super) fn checks(&self, helper: Helper) -> bool {
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
    pub(super) fn report_if_checked(&mut self, ret: VReg, helper: Helper) {
        if self.checks(helper) {
            self.report_failure(helper, Some(ret));
        }
    }

    /// After a call of `helper` returning `ret`: reports a negative return, if this level
    /// reports `helper`'s failures.
    pub(super) fn report_if_negative(&mut self, ret: VReg, helper: Helper) {
        if !self.checks(helper) {
            return;
        }
        // The low 32 bits, as bpftrace tests them: kernels before 6.4 call a map's own `int`
        // operation in place of `bpf_map_delete_elem`, which leaves -ENOENT zero-extended in r0.
        let code = self.b.reg();
        self.b.push(Op::Extend { dst: code, src: ret, bytes: 4, signed: true });
        let failed = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::SLt, code, Operand::Imm(0), failed, done);
        self.b.switch_to(failed);
        self.report_failure(helper, Some(ret));
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    /// Ends the current block on a map lookup's result: to `found` when `ptr` is not null, else
    /// to `missing`, reporting the failed lookup on the way under `-kk`.
    pub(super) fn branch_on_lookup(&mut self, ptr: VReg, found: BlockId, missing: BlockId) {
        if !self.checks(Helper::MapLookupElem) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
