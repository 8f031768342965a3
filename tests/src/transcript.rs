//! Reading a REPL session transcript (`examples/repl_session.txt`) into the steps that replay it:
//! the entries typed at `rbt> ` (continued on `...> `), the commands run "in another terminal",
//! and the lines the session prints, in order.
//!
//! ```text
//! $ sudo rbt
//! rbt> tracepoint:syscalls:sys_enter_getppid /comm == "rbt-workload"/ { @calls = count(); }
//! Attached 1 probe (entry 1).
//! (in another terminal) $ rbt-workload getppid 7
//! rbt> :print @calls
//! @calls: 7
//! ```

/// The line that starts the session, first in every transcript.
pub const START: &str = "$ sudo rbt";

/// The prefix of a command run beside the session, between two entries.
pub const ELSEWHERE: &str = "(in another terminal) $ ";

/// One step of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An entry: its first line (typed at `rbt> `) and its continuation lines (at `...> `).
    Entry(Vec<String>),
    /// A command run beside the session, split into words.
    Elsewhere(Vec<String>),
    /// A line the session prints (blank lines included, as the session prints them).
    Output(String),
}

impl Step {
    /// The entry's text as rbt compiles it (its lines joined), unless it is a `:command`.
    pub fn program(&self) -> Option<String> {
        match self {
            Step::Entry(lines) if !lines[0].starts_with(':') => Some(lines.join("\n")),
            _ => None,
        }
    }
}

/// The steps of `text`, or why it is not a transcript.
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(START) {
        return Err(format!("a transcript starts with `{START}`"));
    }
    let mut steps = Vec::new();
    for (number, line) in lines.enumerate() {
        if let Some(input) = line.strip_prefix("rbt> ") {
            steps.push(Step::Entry(vec![input.to_owned()]));
        } else if let Some(more) = line.strip_prefix("...> ") {
            match steps.last_mut() {
                Some(Step::Entry(entry)) => entry.push(more.to_owned()),
                _ => return Err(format!("line {}: `...> ` continues no entry", number + 2)),
            }
        } else if let Some(command) = line.strip_prefix(ELSEWHERE) {
            steps.push(Step::Elsewhere(crate::split_words(command)));
        } else {
            steps.push(Step::Output(line.to_owned()));
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_commands_and_output_in_order() {
        let text = "$ sudo rbt\nbanner\nrbt> BEGIN {\n...>   exit();\n...> }\n\n(in another terminal) $ ls -l\n\
                    rbt> :quit\n";
        let steps = parse(text).expect("a transcript");
        assert_eq!(
            steps,
            [
                Step::Output("banner".into()),
                Step::Entry(vec!["BEGIN {".into(), "  exit();".into(), "}".into()]),
                Step::Output(String::new()),
                Step::Elsewhere(vec!["ls".into(), "-l".into()]),
                Step::Entry(vec![":quit".into()]),
            ]
        );
        assert_eq!(steps[1].program().as_deref(), Some("BEGIN {\n  exit();\n}"));
        assert_eq!(steps[4].program(), None);
    }

    #[test]
    fn a_transcript_starts_the_session_and_continues_only_entries() {
        assert!(parse("rbt> BEGIN {}\n").is_err());
        assert!(parse("$ sudo rbt\n...> }\n").is_err());
    }
}
