//! A symbolized stack frame and the ways bpftrace 0.17 prints one.
//!
//! Checked against bpftrace 0.17 on Linux 6.18 (`@[kstack]`, `@[ustack]`, `ustack(perf)`,
//! `usym()`): offsets are decimal, an unknown address is `0x` and lowercase hex, and only user
//! frames in perf mode carry their module. Default mode lines are indented by spaces, perf
//! mode lines by one tab (shown here as `→`):
//!
//! ```text
//!     do_syscall_64+113                                     kstack / ustack
//!     rbt_workload::main::hbbdd987af13b1f74+1467
//!     0x7f7c240e3b46                                        (unknown)
//! →ffffffff821ed6ce do_syscall_64+558                       kstack(perf)
//! →7f7c23f9f443 __clock_gettime+35 (/usr/lib/x86_64-linux-gnu/libc.so.6)   ustack(perf)
//! →7f7c240e3bc7 0x7f7c240e3bc7 ([unknown])
//! ```

use std::fmt::Write;

/// One stack frame. `name` is `None` when nothing names the address, and the printers then show
/// the raw address as bpftrace does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The address as the stack had it (a return address for every frame but the first; not
    /// adjusted, as bpftrace does not adjust it).
    pub addr: u64,
    /// The function, demangled (C++, Rust).
    pub name: Option<String>,
    /// `addr` minus the start of the function.
    pub offset: u64,
    /// For user frames: the file mapped at `addr` as the process named it (`[vdso]`, or the perf
    /// map's path for JIT code); for kernel frames: the module (`bpf` for BPF programs), `None`
    /// for the core kernel.
    pub module: Option<String>,
    /// The source file and line of `addr` from DWARF, when the file has debug information. When
    /// calls were inlined at `addr`, this is the outermost call site (in `name`), and the
    /// innermost location is the last entry of `inlined`.
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Functions inlined at `addr`, outermost first: `name` called `inlined[0]`, which called
    /// `inlined[1]`, and so on.
    pub inlined: Vec<InlinedFrame>,
    /// Whether this is a kernel frame (printing differs in perf mode).
    pub kernel: bool,
}

/// A function inlined into a frame's function; `file`/`line` is where in it `addr` is, or where
/// it calls the next inlined function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinedFrame {
    pub name: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

impl Frame {
    /// A frame nothing could name.
    #[must_use]
    pub fn unknown(addr: u64, kernel: bool) -> Self {
        Self { addr, kernel, ..Self::default() }
    }

    /// `sym+off` in decimal, or `0xADDR`: one line of bpftrace's `kstack`/`ustack` (without the
    /// indentation).
    #[must_use]
    pub fn bpftrace_text(&self) -> String {
        match &self.name {
            Some(name) => format!("{name}+{}", self.offset),
            None => format!("{:#x}", self.addr),
        }
    }

    /// The bare name, or `0xADDR`: bpftrace's `ksym()`/`usym()`.
    #[must_use]
    pub fn bpftrace_name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("{:#x}", self.addr),
        }
    }

    /// One line of `kstack(perf)` / `ustack(perf)` (without the leading tab): the address in
    /// hex, the frame as `bpftrace_text`, and for user frames the module in parentheses
    /// (`[unknown]` when the address is in no known mapping).
    #[must_use]
    pub fn bpftrace_perf_text(&self) -> String {
        let mut text = format!("{:x} {}", self.addr, self.bpftrace_text());
        if !self.kernel {
            let module = if self.name.is_some() { self.module.as_deref() } else { None };
            let _ = write!(text, " ({})", module.unwrap_or("[unknown]"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, addr: u64, offset: u64, module: Option<&str>, kernel: bool) -> Frame {
        Frame { addr, name: Some(name.into()), offset, module: module.map(Into::into), kernel, ..Frame::default() }
    }

    #[test]
    fn prints_like_bpftrace() {
        let kernel = named("do_syscall_64", 0xffff_ffff_821e_d6ce, 558, None, true);
        assert_eq!(kernel.bpftrace_text(), "do_syscall_64+558");
        assert_eq!(kernel.bpftrace_name(), "do_syscall_64");
        assert_eq!(kernel.bpftrace_perf_text(), "ffffffff821ed6ce do_syscall_64+558");

        let user = named("__clock_gettime", 0x7f7c_23f9_f443, 35, Some("/usr/lib/x86_64-linux-gnu/libc.so.6"), false);
        assert_eq!(user.bpftrace_text(), "__clock_gettime+35");
        assert_eq!(user.bpftrace_perf_text(), "7f7c23f9f443 __clock_gettime+35 (/usr/lib/x86_64-linux-gnu/libc.so.6)");

        let unknown = Frame::unknown(0x7f7c_240e_3bc7, false);
        assert_eq!(unknown.bpftrace_text(), "0x7f7c240e3bc7");
        assert_eq!(unknown.bpftrace_name(), "0x7f7c240e3bc7");
        assert_eq!(unknown.bpftrace_perf_text(), "7f7c240e3bc7 0x7f7c240e3bc7 ([unknown])");
        assert_eq!(
            Frame::unknown(0xffff_ffff_8100_0000, true).bpftrace_perf_text(),
            "ffffffff81000000 0xffffffff81000000"
        );
    }
}
