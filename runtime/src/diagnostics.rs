//! Rendering compiler diagnostics with miette: the source line, the span underlined, labels and
//! help. Colour only when stderr is a terminal. A script that includes files has diagnostics in
//! those files too: each is rendered against the file its first label points into.

use std::io::IsTerminal;

use grammar::{Diagnostic, Label, Severity, Sources};
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

/// Prints diagnostics whose spans are in the original offset space of `sources` (a script and
/// the files it included; the script is shown as `name`) to stderr.
pub fn emit_in(diags: &[Diagnostic], name: &str, sources: &Sources) {
    let colour = std::io::stderr().is_terminal();
    for d in diags {
        let Some((file, _)) = sources.locate(d.primary_span()) else { continue };
        let is_script = file.base == 0;
        // Labels in other files than the first label's cannot be shown beside it; they are
        // left out (a macro's expansion maps to its use, so this is rare).
        let labels: Vec<Label> = d
            .labels
            .iter()
            .filter_map(|l| {
                let (f, local) = sources.locate(l.span)?;
                (f.base == file.base).then(|| Label { span: local, message: l.message.clone() })
            })
            .collect();
        let local = Diagnostic { labels, ..d.clone() };
        let shown = if is_script { name } else { file.name.as_str() };
        eprint!("{}", render(&local, shown, &file.text, colour));
    }
}

/// Prints diagnostics to stderr.
pub fn emit(diags: &[Diagnostic], name: &str, source: &str) {
    let colour = std::io::stderr().is_terminal();
    for d in diags {
        eprint!("{}", render(d, name, source, colour));
    }
}
