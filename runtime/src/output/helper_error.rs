//! A failed helper call reported under `-k`/`-kk`, printed as bpftrace 0.17 prints it: in text a
//! warning located in the script (the source line and the call underlined), in JSON one line.
//!
//! ```text
//! stdin:1:22-34: WARNING: Failed to map_delete_elem: No such file or directory (-2)
//! i:ms:100 { @[1] = 1; delete(@[2]); delete(@[3]); exit(); }
//!                      ~~~~~~~~~~~~
//! {"type": "helper_error", "helper": "probe_read", "retcode": -14, "line": 1, "col": 37}
//! ```

use std::io::{self, Write};

use super::OutputFormat;
use compiler::program::{HelperErrorSite, SourceLocation};

/// Writes the report of `site`'s failure with return code `retcode`.
pub fn write_helper_error(
    out: &mut dyn Write,
    format: OutputFormat,
    site: &HelperErrorSite,
    retcode: i32,
) -> io::Result<()> {
    let location = &site.location;
    match format {
        OutputFormat::Json => writeln!(
            out,
            "{{\"type\": \"helper_error\", \"helper\": \"{}\", \"retcode\": {retcode}, \"line\": {}, \"col\": {}}}",
            site.helper, location.line, location.column
        ),
        OutputFormat::Text => {
            let message = if retcode < 0 {
                format!("Failed to {}: {} ({retcode})", site.helper, strerror(-retcode))
            } else {
                format!("Failed to {}: {retcode}", site.helper)
            };
            out.write_all(&located_warning(location, &message))
        }
    }
}

/// `FILE:LINE:COL-END: WARNING: MESSAGE`, then the source line and the located part underlined
/// with `~`, tabs widened to four columns; for a location over several lines only
/// `FILE:LINE-END_LINE: WARNING: MESSAGE`.
fn located_warning(at: &SourceLocation, message: &str) -> Vec<u8> {
    let mut text = Vec::new();
    if at.line < at.end_line {
        let _ = writeln!(text, "{}:{}-{}: WARNING: {message}", at.file, at.line, at.end_line);
        return text;
    }
    let _ = writeln!(text, "{}:{}:{}-{}: WARNING: {message}", at.file, at.line, at.column, at.end_column);
    if at.source_line.is_empty() {
        return text;
    }
    let mut marker = Vec::new();
    for (x, c) in at.source_line.bytes().enumerate() {
        let width = if c == b'\t' { 4 } else { 1 };
        text.extend(if c == b'\t' { b"    ".as_slice() } else { std::slice::from_ref(&c) });
        if x + 1 < at.end_column as usize {
            let mark = if x + 1 < at.column as usize { b' ' } else { b'~' };
            marker.extend(std::iter::repeat_n(mark, width));
        }
    }
    text.push(b'\n');
    text.extend(marker);
    text.push(b'\n');
    text
}

/// C's `strerror` text of an errno value (`No such file or directory`).
fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(
        helper: &'static str,
        line: u32,
        column: u32,
        end_line: u32,
        end_column: u32,
        source: &str,
    ) -> HelperErrorSite {
        let location =
            SourceLocation { file: "stdin".into(), line, column, end_line, end_column, source_line: source.into() };
        HelperErrorSite { helper, location }
    }

    fn text(site: &HelperErrorSite, retcode: i32, format: OutputFormat) -> String {
        let mut out = Vec::new();
        write_helper_error(&mut out, format, site, retcode).expect("writes to a Vec");
        String::from_utf8(out).expect("UTF-8")
    }

    // Expected bytes are bpftrace 0.17's.

    #[test]
    fn text_reports_show_the_line_and_the_call() {
        let source = "i:ms:100 { @[1] = 1; delete(@[2]); delete(@[3]); exit(); }";
        let delete = site("map_delete_elem", 1, 22, 1, 34, source);
        assert_eq!(
            text(&delete, -2, OutputFormat::Text),
            format!(
                "stdin:1:22-34: WARNING: Failed to map_delete_elem: No such file or directory (-2)\n{source}\n{}{}\n",
                " ".repeat(21),
                "~".repeat(12)
            )
        );
        let lookup = site("map_lookup_elem", 1, 37, 1, 41, "x");
        assert_eq!(
            text(&lookup, 0, OutputFormat::Text),
            "stdin:1:37-41: WARNING: Failed to map_lookup_elem: 0\nx\n \n"
        );
    }

    #[test]
    fn tabs_widen_and_several_lines_show_no_source() {
        let tabbed = site("probe_read", 1, 2, 1, 4, "\t$a\tb");
        assert_eq!(
            text(&tabbed, -14, OutputFormat::Text),
            "stdin:1:2-4: WARNING: Failed to probe_read: Bad address (-14)\n    $a    b\n    ~~\n"
        );
        let long = site("map_update_elem", 2, 3, 3, 5, "  @x[");
        assert_eq!(
            text(&long, -7, OutputFormat::Text),
            "stdin:2-3: WARNING: Failed to map_update_elem: Argument list too long (-7)\n"
        );
    }

    #[test]
    fn json_reports_are_one_line() {
        let read = site("probe_read", 1, 37, 1, 58, "");
        assert_eq!(
            text(&read, -14, OutputFormat::Json),
            "{\"type\": \"helper_error\", \"helper\": \"probe_read\", \"retcode\": -14, \"line\": 1, \"col\": 37}\n"
        );
    }
}
