//! The lines bpftrace 0.17 prints besides maps, and the entry points that write to a `Write`.
//!
//! Exact bytes (text, then `-f json`):
//!
//! ```text
//! Attaching 1 probe...            {"type": "attached_probes", "data": {"probes": 1}}
//! Attaching 2 probes...           {"type": "attached_probes", "data": {"probes": 2}}
//! Lost 7 events                   {"type": "lost_events", "data": {"events": 7}}
//! hi 5⏎ (printf: no newline added) {"type": "printf", "data": "hi 5\n"}
//! (1, a, (2, -3))                 {"type": "value", "data": [1,"a",[2,-3]]}
//! ```
//!
//! The exit dump is "\n\n" followed by every map in bytewise name order (`@` < `@A` < `@_a` < `@a`),
//! in both formats: 0.17 writes the two newlines to stdout even in JSON mode (and even with `-o`,
//! where the maps go to the file but the newlines still go to stdout). SIGUSR1 prints the maps
//! without the newlines.

use std::io::{self, Write};

use super::json::write_map_json;
use super::map::MapDump;
use super::text::write_map_text;
use super::value::{json_escape_into, Value};
use super::OutputFormat;

/// What produced a line of free text, which is its JSON `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `printf()`: printed as formatted, no newline added.
    Printf,
    /// `time()`: the `strftime` result, no newline added.
    Time,
    /// `cat()`: the file's bytes, no newline added.
    Cat,
    /// `join()`: the joined arguments; text mode adds a newline.
    Join,
    /// `system()`: the command's output, no newline added.
    Syscall,
    /// A watchpoint that could not be opened (bpftrace 0.17's `lost_events` message); text mode
    /// adds a newline.
    Lost,
}

impl MessageKind {
    fn json_type(self) -> &'static str {
        match self {
            MessageKind::Printf => "printf",
            MessageKind::Time => "time",
            MessageKind::Cat => "cat",
            MessageKind::Join => "join",
            MessageKind::Syscall => "syscall",
            MessageKind::Lost => "lost_events",
        }
    }
}

/// The banner after attaching: `Attaching N probe(s)...` (singular for exactly one).
pub fn write_attached_probes(out: &mut dyn Write, format: OutputFormat, probes: u64) -> io::Result<()> {
    let line = match format {
        OutputFormat::Text if probes == 1 => "Attaching 1 probe...\n".to_string(),
        OutputFormat::Text => format!("Attaching {probes} probes...\n"),
        OutputFormat::Json => {
            format!("{{\"type\": \"attached_probes\", \"data\": {{\"probes\": {probes}}}}}\n")
        }
    };
    out.write_all(line.as_bytes())
}

/// The perf buffer overflowed and `lost` events were dropped.
pub fn write_lost_events(out: &mut dyn Write, format: OutputFormat, lost: u64) -> io::Result<()> {
    let line = match format {
        OutputFormat::Text => format!("Lost {lost} events\n"),
        OutputFormat::Json => {
            format!("{{\"type\": \"lost_events\", \"data\": {{\"events\": {lost}}}}}\n")
        }
    };
    out.write_all(line.as_bytes())
}

/// Free text from `printf()`, `time()`, `cat()`, `join()` or `system()`.
pub fn write_message(out: &mut dyn Write, format: OutputFormat, kind: MessageKind, text: &[u8]) -> io::Result<()> {
    let mut line = Vec::with_capacity(text.len() + 40);
    match format {
        OutputFormat::Text => {
            line.extend_from_slice(text);
            if matches!(kind, MessageKind::Join | MessageKind::Lost) {
                line.push(b'\n');
            }
        }
        OutputFormat::Json => {
            line.extend_from_slice(format!("{{\"type\": \"{}\", \"data\": \"", kind.json_type()).as_bytes());
            json_escape_into(text, &mut line);
            line.extend_from_slice(b"\"}\n");
        }
    }
    out.write_all(&line)
}

/// `print(value)` of a non-map value.
pub fn write_value(out: &mut dyn Write, format: OutputFormat, value: &Value) -> io::Result<()> {
    let mut line = Vec::new();
    match format {
        OutputFormat::Text => {
            value.write_text(&mut line);
            line.push(b'\n');
        }
        OutputFormat::Json => {
            line.extend_from_slice(b"{\"type\": \"value\", \"data\": ");
            value.write_json(&mut line);
            line.extend_from_slice(b"}\n");
        }
    }
    out.write_all(&line)
}

/// `print(@m, top, div)`; `top` 0 prints every entry and `div` 0 means 1, as in bpftrace.
pub fn write_map(out: &mut dyn Write, format: OutputFormat, map: &MapDump, top: u32, div: u32) -> io::Result<()> {
    let mut bytes = Vec::new();
    match format {
        OutputFormat::Text => write_map_text(map, top, div, &mut bytes),
        OutputFormat::Json => write_map_json(map, top, div, &mut bytes),
    }
    out.write_all(&bytes)
}

/// Every map in bytewise name order, as on SIGUSR1.
pub fn write_all_maps(out: &mut dyn Write, format: OutputFormat, maps: &[MapDump]) -> io::Result<()> {
    let mut sorted: Vec<&MapDump> = maps.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for map in sorted {
        write_map(out, format, map, 0, 0)?;
    }
    Ok(())
}

/// What bpftrace prints after the probes detach: "\n\n", then every map.
pub fn write_exit_dump(out: &mut dyn Write, format: OutputFormat, maps: &[MapDump]) -> io::Result<()> {
    out.write_all(b"\n\n")?;
    write_all_maps(out, format, maps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap_or_else(|e| panic!("writing to a Vec failed: {e}"));
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn banner_and_lost_events() {
        use OutputFormat::{Json, Text};
        assert_eq!(render(|o| write_attached_probes(o, Text, 1)), "Attaching 1 probe...\n");
        assert_eq!(render(|o| write_attached_probes(o, Text, 3)), "Attaching 3 probes...\n");
        assert_eq!(
            render(|o| write_attached_probes(o, Json, 3)),
            "{\"type\": \"attached_probes\", \"data\": {\"probes\": 3}}\n"
        );
        assert_eq!(render(|o| write_lost_events(o, Text, 7)), "Lost 7 events\n");
        assert_eq!(
            render(|o| write_lost_events(o, Json, 7)),
            "{\"type\": \"lost_events\", \"data\": {\"events\": 7}}\n"
        );
    }

    #[test]
    fn messages() {
        use OutputFormat::{Json, Text};
        assert_eq!(render(|o| write_message(o, Text, MessageKind::Printf, b"hi")), "hi");
        assert_eq!(render(|o| write_message(o, Text, MessageKind::Join, b"a b")), "a b\n");
        assert_eq!(
            render(|o| write_message(o, Json, MessageKind::Time, b"17:08:22\n")),
            "{\"type\": \"time\", \"data\": \"17:08:22\\n\"}\n"
        );
        assert_eq!(
            render(|o| write_message(o, Json, MessageKind::Join, b"a b")),
            "{\"type\": \"join\", \"data\": \"a b\"}\n"
        );
        // A watchpoint without a register, as bpftrace 0.17 reports it.
        assert_eq!(render(|o| write_message(o, Text, MessageKind::Lost, b"no room.")), "no room.\n");
        assert_eq!(
            render(|o| write_message(o, Json, MessageKind::Lost, b"no room.")),
            "{\"type\": \"lost_events\", \"data\": \"no room.\"}\n"
        );
    }
}
