//! Rendering compiler diagnostics with miette: the source line, the span underlined, labels and
//! help. Colour only when stderr is a terminal.

use std::io::IsTerminal;

use grammar::{Diagnostic, Severity};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

/// Renders one diagnostic against its source; `name` is the file name (or `stdin`).
pub fn render(diag: &Diagnostic, name: &str, source: &str, colour: bool) -> String {
    let mut report = MietteDiagnostic::new(diag.message.clone())
        .with_code(format!("rbt::{}", diag.code))
        .with_severity(match diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        });
    let labels = diag.labels.iter().map(|l| {
        let start = (l.span.start as usize).min(source.len());
        let len = (l.span.end as usize).min(source.len()).saturating_sub(start);
        let text = if l.message.is_empty() { None } else { Some(l.message.clone()) };
        LabeledSpan::new(text, start, len)
    });
    report = report.with_labels(labels);
    if let Some(help) = &diag.help {
        report = report.with_help(help.clone());
    }
    let report = miette::Report::new(report).with_source_code(NamedSource::new(name, source.to_string()));
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    if handler.render_report(&mut out, report.as_ref()).is_err() {
        out = format!("{}: {}\n", name, diag.message);
    }
    out
}

/// Prints diagnostics to stderr.
pub fn emit(diags: &[Diagnostic], name: &str, source: &str) {
    let colour = std::io::stderr().is_terminal();
    for d in diags {
        eprint!("{}", render(d, name, source, colour));
    }
}
