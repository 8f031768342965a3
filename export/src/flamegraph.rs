//! An SVG flame graph of a profile, drawn by inferno (the Rust port of `flamegraph.pl`) from the
//! profile's folded stacks, titled with the profile's title and unit ("Off-CPU time (ns)").

use std::io::Write;

use inferno::flamegraph::{self, color::BasicPalette, Direction};

use crate::folded::{fold, FoldedOptions};
use crate::{ExportError, Profile, ValueType};

/// The colors of the frames, as `flamegraph.pl --colors` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Palette {
    /// Reds and yellows: CPU time.
    #[default]
    Hot,
    /// Blues: off-CPU (blocked) time, as Brendan Gregg draws off-CPU flame graphs.
    Io,
    /// Greens: memory.
    Mem,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlameGraphOptions {
    /// How stacks become frames (BCC's delimiter and kernel annotations).
    pub folded: FoldedOptions,
    pub palette: Palette,
    /// An icicle graph: roots at the top, stacks growing down.
    pub inverted: bool,
    /// The image's width in pixels; by default the SVG fills its window.
    pub width: Option<usize>,
}

/// The longest subtitle drawn; a script longer than this is cut (the pprof export keeps it whole).
const SUBTITLE_CHARS: usize = 160;

/// Writes the flame graph as one SVG document. A profile whose values are all zero has no
/// width to draw and is refused with [`ExportError::NoSamples`] before anything is written.
/// Colors come from a hash of each frame's name, so the same profile draws the same bytes.
///
/// # Errors
/// [`ExportError::NoSamples`], or [`ExportError::Write`] when the writer fails.
pub fn write_flame_graph<W: Write>(
    profile: &Profile,
    options: &FlameGraphOptions,
    writer: W,
) -> Result<(), ExportError> {
    let stacks = fold(profile, &options.folded);
    if stacks.iter().all(|stack| stack.value == 0) {
        return Err(ExportError::NoSamples);
    }
    // inferno wants its input lines sorted; `fold` sorts by stack text, and since every stack
    // is distinct the lines are in the same order.
    let lines: Vec<String> = stacks.iter().map(ToString::to_string).collect();

    let count_name = count_name(&profile.sample_type);
    let mut inferno_options = flamegraph::Options::default();
    inferno_options.title = flame_graph_title(&profile.title, &count_name);
    inferno_options.subtitle = profile.script.as_deref().and_then(subtitle);
    inferno_options.count_name = count_name;
    inferno_options.colors = flamegraph::Palette::Basic(match options.palette {
        Palette::Hot => BasicPalette::Hot,
        Palette::Io => BasicPalette::Io,
        Palette::Mem => BasicPalette::Mem,
    });
    inferno_options.deterministic = true;
    inferno_options.direction = if options.inverted { Direction::Inverted } else { Direction::Straight };
    inferno_options.image_width = options.width;

    flamegraph::from_lines(&mut inferno_options, lines.iter().map(String::as_str), writer)
        .map_err(|source| ExportError::Write { format: "flame graph", source })
}

/// "Off-CPU time (ns)"; inferno's own default title when the profile has none.
fn flame_graph_title(title: &str, count_name: &str) -> String {
    let title = if title.trim().is_empty() { flamegraph::defaults::TITLE } else { title.trim() };
    format!("{title} ({count_name})")
}

/// What one unit of width is called in the graph's tooltips ("12,345 ns, 40%"): the unit,
/// shortened for time; for plain counts, the thing counted ("samples").
fn count_name(sample_type: &ValueType) -> String {
    match sample_type.unit.as_str() {
        "nanoseconds" => "ns".to_string(),
        "microseconds" => "us".to_string(),
        "milliseconds" => "ms".to_string(),
        "seconds" => "s".to_string(),
        "count" | "" if !sample_type.kind.is_empty() => sample_type.kind.clone(),
        "count" | "" => flamegraph::defaults::COUNT_NAME.to_string(),
        unit => unit.to_string(),
    }
}

/// The script on one line (whitespace runs become one space), cut to [`SUBTITLE_CHARS`].
fn subtitle(script: &str) -> Option<String> {
    let one_line = script.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return None;
    }
    if one_line.chars().count() <= SUBTITLE_CHARS {
        return Some(one_line);
    }
    let mut cut: String = one_line.chars().take(SUBTITLE_CHARS - 3).collect();
    cut.push_str("...");
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, Sample};

    fn offcpu_profile() -> Profile {
        let frames = |names: &[&str]| names.iter().map(|name| Frame::new(*name)).collect();
        Profile {
            title: "Off-CPU time".to_string(),
            script: Some(
                "tracepoint:sched:sched_switch {\n  @[kstack, ustack, comm] = sum(nsecs - $t);\n}".to_string(),
            ),
            sample_type: ValueType::new("offcpu", "nanoseconds"),
            samples: vec![
                Sample {
                    leading: vec!["sshd".to_string()],
                    user: frames(&["main", "server_loop"]),
                    kernel: frames(&["do_syscall_64", "schedule"]),
                    value: 3_000_000,
                    labels: Vec::new(),
                },
                Sample {
                    leading: vec!["bash".to_string()],
                    user: frames(&["main", "read<T>&"]),
                    kernel: frames(&["ksys_read", "schedule"]),
                    value: 1_000_000,
                    labels: Vec::new(),
                },
            ],
            ..Profile::default()
        }
    }

    fn svg(profile: &Profile, options: &FlameGraphOptions) -> String {
        let mut out = Vec::new();
        write_flame_graph(profile, options, &mut out).expect("drawing the flame graph");
        String::from_utf8(out).expect("the SVG is UTF-8")
    }

    #[test]
    fn svg_has_title_unit_subtitle_and_every_frame() {
        let text = svg(&offcpu_profile(), &FlameGraphOptions::default());
        assert!(text.starts_with("<?xml"), "{}", &text[..100]);
        assert!(text.contains("<svg"));
        assert!(text.trim_end().ends_with("</svg>"));
        assert!(text.contains(">Off-CPU time (ns)</text>"));
        assert!(text.contains("tracepoint:sched:sched_switch { @[kstack, ustack, comm] = sum(nsecs - $t); }"));
        for name in ["sshd", "server_loop", "do_syscall_64", "schedule", "bash", "ksys_read"] {
            assert!(text.contains(&format!("<title>{name} (")), "no frame {name}");
        }
        // Names are escaped, so the document stays well-formed.
        assert!(text.contains("read&lt;T&gt;&amp;"));
        assert!(!text.contains("read<T>&"));
        // Tooltips count in the unit: the root holds all 4,000,000 ns.
        assert!(text.contains("<title>all (4,000,000 ns, 100%)</title>"), "{text}");
    }

    #[test]
    fn svg_is_well_formed_xml() {
        use quick_xml::events::Event;
        // The reader checks that every end tag closes the element open at that point.
        let text = svg(&offcpu_profile(), &FlameGraphOptions::default());
        let mut reader = quick_xml::Reader::from_str(&text);
        let (mut depth, mut frames) = (0usize, 0usize);
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(start) => {
                    depth += 1;
                    frames += usize::from(start.name().as_ref() == b"rect" || start.name().as_ref() == b"g");
                }
                Event::End(_) => depth = depth.checked_sub(1).expect("an end tag with no start"),
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0, "every element is closed");
        assert!(frames >= 9, "a group per frame");
    }

    #[test]
    fn same_profile_same_bytes() {
        let options = FlameGraphOptions { palette: Palette::Io, inverted: true, ..FlameGraphOptions::default() };
        assert_eq!(svg(&offcpu_profile(), &options), svg(&offcpu_profile(), &options));
    }

    #[test]
    fn all_zero_is_refused_before_writing() {
        let mut profile = offcpu_profile();
        for sample in &mut profile.samples {
            sample.value = 0;
        }
        let mut out = Vec::new();
        let error = write_flame_graph(&profile, &FlameGraphOptions::default(), &mut out);
        assert!(matches!(error, Err(ExportError::NoSamples)));
        assert!(out.is_empty());
    }

    #[test]
    fn titles_and_count_names() {
        assert_eq!(count_name(&ValueType::new("samples", "count")), "samples");
        assert_eq!(count_name(&ValueType::new("", "")), "samples");
        assert_eq!(count_name(&ValueType::new("offcpu", "microseconds")), "us");
        assert_eq!(count_name(&ValueType::new("alloc", "bytes")), "bytes");
        assert_eq!(flame_graph_title("", "samples"), "Flame Graph (samples)");
        assert_eq!(flame_graph_title("CPU", "samples"), "CPU (samples)");
        assert_eq!(subtitle("  \n "), None);
        let long = subtitle(&"x".repeat(500)).expect("a subtitle");
        assert_eq!(long.chars().count(), SUBTITLE_CHARS);
        assert!(long.ends_with("..."));
    }
}
