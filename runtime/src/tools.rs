//! The standard library of tools (`stdlib/*.rbt`), embedded in the binary: `rbt -t` lists them,
//! `rbt -t NAME [ARGS]` runs one with ARGS as its positional parameters.
//!
//! A tool's header comment says what it measures, its units and options. Two header lines steer
//! `-t`: `// rbt-requires: tracepoint:CAT:NAME` names a tracepoint the tool needs, and
//! `// rbt-fallback: OTHER` the tool to run instead where the kernel lacks it.

use compiler::ProbeCatalog;

pub struct Tool {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! tools {
    ($($name:literal),* $(,)?) => {
        &[$(Tool { name: $name, source: include_str!(concat!("../../stdlib/", $name, ".rbt")) }),*]
    };
}

pub const TOOLS: &[Tool] = tools![
    "biolatency",
    "execsnoop",
    "lockstat",
    "lockstat_futex",
    "notsched",
    "offcputime",
    "offwaketime",
    "opensnoop",
    "profile",
    "runqlat",
    "slowsched",
    "syscount",
];

impl Tool {
    /// The header's comment text, lines joined, up to the first code line.
    fn header(&self) -> String {
        let lines: Vec<&str> = self
            .source
            .lines()
            .take_while(|l| l.starts_with("//"))
            .map(|l| l.trim_start_matches("//").trim())
            .collect();
        lines.join("\n")
    }

    /// The first sentence of the header: `// NAME: what it does.`
    pub fn summary(&self) -> String {
        let header = self.header().replace('\n', " ");
        let text = header.strip_prefix(self.name).and_then(|t| t.strip_prefix(':')).unwrap_or(&header).trim();
        text.split_once(". ").map_or(text, |(sentence, _)| sentence).trim_end_matches('.').to_owned()
    }

    /// The header's `Options` paragraph, lines joined.
    pub fn options(&self) -> Option<String> {
        let header = self.header();
        let start = header.find("Options")?;
        let paragraph = header[start..].split("\nExample").next().unwrap_or("");
        Some(paragraph.replace('\n', " "))
    }

    fn header_value(&self, key: &str) -> Option<&'static str> {
        self.source
            .lines()
            .take_while(|l| l.starts_with("//") || l.trim().is_empty())
            .find_map(|l| l.trim_start_matches("//").trim().strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    }
}

/// `rbt -t`: every tool and what it does.
pub fn list() -> String {
    let width = TOOLS.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for tool in TOOLS {
        out.push_str(&format!("{:<width$}  {}\n", tool.name, tool.summary()));
        if let Some(options) = tool.options() {
            out.push_str(&format!("{:<width$}  {options}\n", ""));
        }
    }
    out.push_str("\nRun one with `rbt -t NAME [ARGS...]`; the ARGS are its positional options ($1, $2, ...).\n");
    out
}

/// The tool to run for `name`: the tool itself, or its fallback when the kernel lacks a
/// tracepoint it requires.
pub fn find(name: &str, catalog: &dyn ProbeCatalog) -> Result<&'static Tool, String> {
    let name = name.strip_suffix(".rbt").unwrap_or(name);
    let tool = TOOLS.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        format!("no tool named '{name}'; the tools are: {}", names.join(", "))
    })?;
    let Some(required) = tool.header_value("rbt-requires") else { return Ok(tool) };
    let parts: Vec<&str> = required.split(':').collect();
    let present = match parts.as_slice() {
        ["tracepoint", category, event] => catalog.tracepoint_format(category, event).is_some(),
        _ => true,
    };
    match (present, tool.header_value("rbt-fallback")) {
        (true, _) | (false, None) => Ok(tool),
        (false, Some(fallback)) => {
            eprintln!("rbt: {required} is missing on this kernel; running {fallback} instead of {}", tool.name);
            find(fallback, catalog)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_header_naming_it() {
        for tool in TOOLS {
            assert!(tool.source.starts_with(&format!("// {}: ", tool.name)), "{} header", tool.name);
            assert!(!tool.summary().is_empty(), "{} summary", tool.name);
            assert!(tool.source.contains("// Units:") || tool.source.contains("// Units "), "{} units", tool.name);
            assert!(tool.source.contains("// Example:"), "{} example", tool.name);
        }
        assert_eq!(
            TOOLS.iter().find(|t| t.name == "lockstat").and_then(|t| t.header_value("rbt-fallback")),
            Some("lockstat_futex")
        );
    }
}
