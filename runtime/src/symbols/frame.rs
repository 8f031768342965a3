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
//!
//! rbt adds to perf mode what `perf script -F ip,sym,srcline --inline` shows: a user frame of a
//! binary with DWARF lines carries its source file and line before the module, and the
//! functions inlined at its address come first, innermost first, one line each at the same
//! address (a frame without DWARF prints exactly as above):
//!
//! ```text
//! →55d6c5a0 rbt_workload::inlined_step (inlined) /src/workload.rs:178 (/bin/rbt-workload)
//! →55d6c5a0 rbt_workload_outer+36 /src/workload.rs:173 (/bin/rbt-workload)
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

    /// One line of `kstack(perf)` / `ustack(perf)` as bpftrace prints it (without the leading
    /// tab): the address in hex, the frame as `bpftrace_text`, and for user frames the module
    /// in parentheses (`[unknown]` when the address is in no known mapping).
    #[must_use]
    pub fn bpftrace_perf_text(&self) -> String {
        self.perf_frame_line(None, None)
    }

    /// The lines of `kstack(perf)` / `ustack(perf)` for this frame (without the leading tabs):
    /// one per function inlined at the address, innermost first, as `ADDR NAME (inlined)
    /// FILE:LINE (MODULE)`, then the frame itself as `ADDR NAME+OFF FILE:LINE (MODULE)`. Where
    /// DWARF gave no file the location is left out, so a frame without DWARF is the one line of
    /// [`Frame::bpftrace_perf_text`].
    #[must_use]
    pub fn perf_lines(&self) -> Vec<String> {
        let mut lines = Vec::with_capacity(1 + self.inlined.len());
        for inlined in self.inlined.iter().rev() {
            let (name, file) = (&inlined.name, inlined.file.as_deref());
            lines.push(self.perf_line(format_args!("{name} (inlined)"), file, inlined.line));
        }
        lines.push(self.perf_frame_line(self.file.as_deref(), self.line));
        lines
    }

    /// The frame's own perf line, `sym+off` (or `0xADDR`) at `file`/`line`.
    fn perf_frame_line(&self, file: Option<&str>, line: Option<u32>) -> String {
        match &self.name {
            Some(name) => self.perf_line(format_args!("{name}+{}", self.offset), file, line),
            None => self.perf_line(format_args!("{:#x}", self.addr), file, line),
        }
    }

    /// `ADDR WHAT[ FILE[:LINE]][ (MODULE)]`: the module for user frames only. (Written into one
    /// buffer: perf-mode maps print hundreds of thousands of these.)
    fn perf_line(&self, what: std::fmt::Arguments<'_>, file: Option<&str>, line: Option<u32>) -> String {
        let paths = file.map_or(0, str::len) + self.module.as_deref().map_or(0, str::len);
        let mut text = String::with_capacity(64 + paths);
        let _ = write!(text, "{:x} {what}", self.addr);
        match (file, line) {
            (Some(file), Some(line)) => {
                let _ = write!(text, " {file}:{line}");
            }
            (Some(file), None) => {
                let _ = write!(text, " {file}");
            }
            (None, _) => {}
        }
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

    #[test]
    fn perf_lines_add_dwarf_locations_and_inlined_calls_innermost_first() {
        let module = "/bin/rbt-workload";
        let outer = Frame {
            file: Some("/src/workload.rs".into()),
            line: Some(250),
            inlined: vec![
                InlinedFrame {
                    name: "rbt_workload::inlined_step".into(),
                    file: Some("/src/workload.rs".into()),
                    line: Some(258),
                },
                InlinedFrame {
                    name: "core::num::wrapping_mul".into(),
                    file: Some("/rustc/library/core/src/num/mod.rs".into()),
                    line: None,
                },
            ],
            ..named("rbt_workload_outer", 0x55d6_c5a0, 22, Some(module), false)
        };
        assert_eq!(
            outer.perf_lines(),
            [
                "55d6c5a0 core::num::wrapping_mul (inlined) /rustc/library/core/src/num/mod.rs (/bin/rbt-workload)",
                "55d6c5a0 rbt_workload::inlined_step (inlined) /src/workload.rs:258 (/bin/rbt-workload)",
                "55d6c5a0 rbt_workload_outer+22 /src/workload.rs:250 (/bin/rbt-workload)",
            ]
        );

        // A line without inlined calls, and inlined calls whose frame has no line of its own.
        let leaf = Frame {
            file: Some("/src/workload.rs".into()),
            line: Some(262),
            ..named("rbt_workload_leaf", 0x55d6_c000, 0, Some(module), false)
        };
        assert_eq!(leaf.perf_lines(), ["55d6c000 rbt_workload_leaf+0 /src/workload.rs:262 (/bin/rbt-workload)"]);
        let bare = Frame {
            inlined: vec![InlinedFrame { name: "helper".into(), file: None, line: None }],
            ..named("caller", 0x4010, 3, Some(module), false)
        };
        assert_eq!(
            bare.perf_lines(),
            ["4010 helper (inlined) (/bin/rbt-workload)", "4010 caller+3 (/bin/rbt-workload)"]
        );
    }

    #[test]
    fn perf_lines_without_dwarf_are_bpftraces_line() {
        let frames = [
            named("do_syscall_64", 0xffff_ffff_821e_d6ce, 558, None, true),
            named("nvme_irq", 0xffff_ffff_c001_0000, 16, Some("nvme"), true),
            named("__clock_gettime", 0x7f7c_23f9_f443, 35, Some("/usr/lib/x86_64-linux-gnu/libc.so.6"), false),
            Frame::unknown(0x7f7c_240e_3bc7, false),
            Frame::unknown(0xffff_ffff_8100_0000, true),
        ];
        for frame in frames {
            assert_eq!(frame.perf_lines(), [frame.bpftrace_perf_text()], "{frame:?}");
        }
    }
}
