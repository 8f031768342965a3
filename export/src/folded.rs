//! Brendan Gregg's folded stacks: one line per distinct stack, frames from the root to the leaf
//! joined by `;`, a space, then the value — the input of `flamegraph.pl` and inferno.
//!
//! The line is built the way BCC's `profile -f` and `offcputime -f` build it: the process name
//! (here, the sample's leading frames), then the user stack root to leaf, then the kernel stack
//! root to leaf. By default there is nothing between the user and the kernel part; BCC's `-d`
//! puts a `-` frame there when a sample has both, and `profile -a` appends `_[k]` to kernel
//! frames. A line from `offcputime -f`:
//!
//! ```text
//! sshd;__libc_start_main;main;server_loop;__select;entry_SYSCALL_64;do_syscall_64;schedule 1840
//! ```
//!
//! Unlike BCC, lines are merged (identical stacks summed) and sorted by their stack text, so
//! the output is the same for the same profile whatever order the map was read in.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

use crate::{ExportError, Frame, Profile, Sample};

/// The one frame of a sample that has no frames at all (an empty `kstack` of a user-space
/// sample, with no other key part), so that its value still shows.
pub const EMPTY_STACK: &str = "[empty]";

/// How the folded line is built; the default is BCC's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldedOptions {
    /// BCC's `-d`: a `-` frame between the user and the kernel stack when a sample has both.
    pub delimited: bool,
    /// BCC `profile`'s `-a`: `_[k]` after each kernel frame's name.
    pub kernel_annotations: bool,
}

/// One line of folded output: the `;`-joined stack and its summed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedStack {
    pub stack: String,
    pub value: u64,
}

impl fmt::Display for FoldedStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.stack, self.value)
    }
}

/// The profile's samples as folded stacks: identical stacks merged (values summed, saturating),
/// sorted by stack text.
#[must_use]
pub fn fold(profile: &Profile, options: &FoldedOptions) -> Vec<FoldedStack> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for sample in &profile.samples {
        let total = merged.entry(fold_sample(sample, options)).or_insert(0);
        *total = total.saturating_add(sample.value);
    }
    merged.into_iter().map(|(stack, value)| FoldedStack { stack, value }).collect()
}

/// Writes [`fold`]'s lines, each ending in a newline.
///
/// # Errors
/// [`ExportError::Write`] when the writer fails.
pub fn write_folded<W: Write>(profile: &Profile, options: &FoldedOptions, mut writer: W) -> Result<(), ExportError> {
    let write_error = |source| ExportError::Write { format: "folded stacks", source };
    for line in fold(profile, options) {
        writeln!(writer, "{line}").map_err(write_error)?;
    }
    writer.flush().map_err(write_error)
}

fn fold_sample(sample: &Sample, options: &FoldedOptions) -> String {
    let mut frames: Vec<Cow<'_, str>> = Vec::new();
    frames.extend(sample.leading.iter().map(|name| frame_name(name)));
    frames.extend(sample.user.iter().map(|frame| frame_name(&frame.name)));
    if options.delimited && !sample.user.is_empty() && !sample.kernel.is_empty() {
        frames.push(Cow::Borrowed("-"));
    }
    frames.extend(sample.kernel.iter().map(|frame| kernel_frame_name(frame, options)));
    if frames.is_empty() {
        return EMPTY_STACK.to_string();
    }
    frames.join(";")
}

fn kernel_frame_name<'a>(frame: &'a Frame, options: &FoldedOptions) -> Cow<'a, str> {
    let name = frame_name(&frame.name);
    if options.kernel_annotations {
        Cow::Owned(format!("{name}_[k]"))
    } else {
        name
    }
}

/// A name as one folded frame: `;` would split it and a line break would end the line, so both
/// become `_`; an empty name would vanish between two `;` and becomes `[unknown]`, perf's word.
fn frame_name(name: &str) -> Cow<'_, str> {
    if name.is_empty() {
        Cow::Borrowed("[unknown]")
    } else if name.contains([';', '\n', '\r']) {
        Cow::Owned(name.replace([';', '\n', '\r'], "_"))
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<Frame> {
        names.iter().map(|name| Frame::new(*name)).collect()
    }

    fn sample(leading: &[&str], user: &[&str], kernel: &[&str], value: u64) -> Sample {
        Sample {
            leading: leading.iter().map(ToString::to_string).collect(),
            user: names(user),
            kernel: names(kernel),
            value,
            labels: Vec::new(),
        }
    }

    fn folded_text(samples: Vec<Sample>, options: &FoldedOptions) -> String {
        let profile = Profile { samples, ..Profile::default() };
        let mut out = Vec::new();
        write_folded(&profile, options, &mut out).expect("writing to a Vec");
        String::from_utf8(out).expect("folded output is UTF-8")
    }

    fn offcpu_samples() -> Vec<Sample> {
        vec![
            sample(&["sshd"], &["main", "server_loop", "__select"], &["do_syscall_64", "schedule"], 30),
            sample(&["bash"], &["main", "read"], &["ksys_read", "schedule"], 7),
            sample(&["kworker/0:1"], &[], &["worker_thread", "schedule"], 5),
            sample(&["sshd"], &["main", "server_loop", "__select"], &["do_syscall_64", "schedule"], 12),
        ]
    }

    #[test]
    fn bcc_default_user_then_kernel_merged_and_sorted() {
        assert_eq!(
            folded_text(offcpu_samples(), &FoldedOptions::default()),
            "bash;main;read;ksys_read;schedule 7\n\
             kworker/0:1;worker_thread;schedule 5\n\
             sshd;main;server_loop;__select;do_syscall_64;schedule 42\n"
        );
    }

    #[test]
    fn delimiter_only_between_two_stacks() {
        let options = FoldedOptions { delimited: true, ..FoldedOptions::default() };
        assert_eq!(
            folded_text(offcpu_samples(), &options),
            "bash;main;read;-;ksys_read;schedule 7\n\
             kworker/0:1;worker_thread;schedule 5\n\
             sshd;main;server_loop;__select;-;do_syscall_64;schedule 42\n"
        );
    }

    #[test]
    fn kernel_annotations() {
        let options = FoldedOptions { kernel_annotations: true, ..FoldedOptions::default() };
        assert_eq!(
            folded_text(vec![sample(&["bash"], &["main"], &["ksys_read", "schedule"], 3)], &options),
            "bash;main;ksys_read_[k];schedule_[k] 3\n"
        );
    }

    #[test]
    fn several_leading_frames_and_no_leading_frames() {
        let samples = vec![
            sample(&["nginx", "1234"], &["main", "epoll_wait"], &[], 2),
            sample(&[], &[], &["cpu_startup_entry", "do_idle"], 99),
        ];
        assert_eq!(
            folded_text(samples, &FoldedOptions::default()),
            "cpu_startup_entry;do_idle 99\nnginx;1234;main;epoll_wait 2\n"
        );
    }

    #[test]
    fn empty_stacks_awkward_names_and_saturation() {
        let samples = vec![
            sample(&[], &[], &[], u64::MAX),
            sample(&[], &[], &[], 1),
            sample(&["a;b"], &["", "line\nbreak"], &["0xffffffff81000000"], 4),
        ];
        assert_eq!(
            folded_text(samples, &FoldedOptions::default()),
            format!("[empty] {}\na_b;[unknown];line_break;0xffffffff81000000 4\n", u64::MAX)
        );
    }

    #[test]
    fn fold_keeps_zero_values_as_bcc_prints_them() {
        let profile = Profile { samples: vec![sample(&["x"], &["f"], &[], 0)], ..Profile::default() };
        assert_eq!(fold(&profile, &FoldedOptions::default()), vec![FoldedStack { stack: "x;f".to_string(), value: 0 }]);
    }
}
