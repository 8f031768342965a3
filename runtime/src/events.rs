//! Decoding event records into output: printf lines, time, print(), clear/zero, exit, and the
//! reports of failed helper calls (`-k`).
//! Record layout (see `compiler::program::EventKind`): u32 kind, u32 index, then 8-byte aligned
//! arguments laid out as their types.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::maps::{decode, read_u64};
use crate::output::{self, MessageKind, PrintfArg, Value};
use crate::session::Session;
use compiler::hir::FormatKind;
use compiler::program::{EventKind, EVENT_HEADER};
use compiler::types::{align8, Type};
use runtime::kernel::event_source::EventSource;

/// Most records, and longest time, one [`EventDecoder::drain`] spends.
const MAX_RECORDS: usize = 65_536;
const MAX_TIME: Duration = Duration::from_millis(100);

pub struct EventDecoder {
    exited: bool,
    /// Reused for every printf line.
    line: Vec<u8>,
}

impl EventDecoder {
    pub fn new() -> EventDecoder {
        EventDecoder { exited: false, line: Vec::new() }
    }

    /// Accepts records again after an exit, for the ones END produces.
    pub fn resume(&mut self) {
        self.exited = false;
    }

    /// Handles every queued record; returns true once `exit()` has been seen. Records after an
    /// exit are discarded, as bpftrace stops processing at exit.
    ///
    /// At most [`MAX_RECORDS`] records or [`MAX_TIME`] per call, so that probes producing
    /// records faster than they are handled (a `zero(@m)` per syscall costs two syscalls per key)
    /// cannot keep the caller from checking for signals or a lost exit.
    pub fn drain(&mut self, source: &mut EventSource, session: &Session, out: &mut dyn Write) -> io::Result<bool> {
        let deadline = Instant::now() + MAX_TIME;
        source.for_each_bounded(MAX_RECORDS, Some(deadline), |record| {
            if self.exited {
                after_exit(record, session);
                Ok(())
            } else {
                self.handle(record, session, out)
            }
        })?;
        Ok(self.exited)
    }

    /// Handles every queued record; for when no probe can add more.
    pub fn drain_all(&mut self, source: &mut EventSource, session: &Session, out: &mut dyn Write) -> io::Result<()> {
        source.for_each(|record| {
            if self.exited {
                after_exit(record, session);
                Ok(())
            } else {
                self.handle(record, session, out)
            }
        })
    }

    fn handle(&mut self, record: &[u8], session: &Session, out: &mut dyn Write) -> io::Result<()> {
        if record.len() < EVENT_HEADER as usize {
            return Ok(());
        }
        let kind = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
        let index = u32::from_le_bytes([record[4], record[5], record[6], record[7]]) as usize;
        let payload = &record[EVENT_HEADER as usize..];
        let program = &session.program;
        match EventKind::from_u32(kind) {
            Some(EventKind::Printf) | Some(EventKind::System) => {
                let Some(format) = program.formats.get(index) else { return Ok(()) };
                let Some(parsed) = &format.printf else { return Ok(()) };
                let args = decode_args(&format.args, payload, &session.stacks);
                self.line.clear();
                output::render_printf(format.text.as_bytes(), parsed, &args, &mut self.line);
                if format.kind == FormatKind::System {
                    run_system(&String::from_utf8_lossy(&self.line), session, out)?;
                } else if format.kind == FormatKind::Cat {
                    cat_file(&String::from_utf8_lossy(&self.line), session, out)?;
                } else if session.format == output::OutputFormat::Text {
                    out.write_all(&self.line)?;
                } else {
                    output::write_message(out, session.format, MessageKind::Printf, &self.line)?;
                }
            }
            Some(EventKind::Time) => {
                let Some(format) = program.formats.get(index) else { return Ok(()) };
                if let Some(text) = output::format_time(&format.text) {
                    output::write_message(out, session.format, MessageKind::Time, &text)?;
                }
            }
            Some(EventKind::Exit) => self.exited = true,
            Some(EventKind::PrintMap) if index < program.maps.len() => {
                let top = read_u64(payload, 0) as u32;
                let div = read_u64(payload, 8) as u32;
                let dump = session.loaded_map(index).dump()?;
                output::write_map(out, session.format, &dump, top, div)?;
            }
            Some(EventKind::Clear) if index < program.maps.len() => {
                session.loaded_map(index).clear()?;
                session.set_zeroed(index, false);
            }
            Some(EventKind::Zero) if index < program.maps.len() => {
                session.loaded_map(index).zero()?;
                session.set_zeroed(index, true);
            }
            Some(EventKind::PrintValue) => {
                if let Some(ty) = program.print_types.get(index) {
                    output::write_value(out, session.format, &decode(ty, payload, &session.stacks))?;
                }
            }
            Some(EventKind::PidSeen) => session.stacks.remember(read_u64(payload, 0) as u32),
            Some(EventKind::Join) => {
                let Some(format) = program.formats.get(index) else { return Ok(()) };
                self.line.clear();
                let strings = payload
                    .chunks(compiler::hir::JOIN_ARG_SIZE as usize)
                    .take(compiler::hir::JOIN_ARGS as usize)
                    .map(crate::output::c_str)
                    // As bpftrace 0.17: the arguments end at the first empty one.
                    .take_while(|s| !s.is_empty());
                for (i, s) in strings.enumerate() {
                    if i > 0 {
                        self.line.extend_from_slice(format.text.as_bytes());
                    }
                    self.line.extend_from_slice(s);
                }
                output::write_message(out, session.format, MessageKind::Join, &self.line)?;
            }
            Some(EventKind::Watch) => session.watch(index, read_u64(payload, 0), read_u64(payload, 8) as u32, out)?,
            Some(EventKind::Unwatch) => session.unwatch(read_u64(payload, 0)),
            Some(EventKind::HelperError) => {
                if let Some(site) = program.helper_errors.get(index) {
                    // The program keeps the helper's int return value, sign-extended.
                    let retcode = read_u64(payload, 0) as i64 as i32;
                    output::write_helper_error(out, session.format, site, retcode)?;
                }
            }
            // A map index the program does not have (a malformed record) or an unknown kind.
            Some(EventKind::PrintMap | EventKind::Clear | EventKind::Zero) | None => {}
        }
        Ok(())
    }
}

/// A record after `exit()`, which prints nothing: a function watchpoint's setup still stopped
/// its process, which must go on.
fn after_exit(record: &[u8], session: &Session) {
    let kind = record.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if kind.and_then(EventKind::from_u32) == Some(EventKind::Watch) && record.len() >= EVENT_HEADER as usize {
        let index = u32::from_le_bytes([record[4], record[5], record[6], record[7]]) as usize;
        let payload = &record[EVENT_HEADER as usize..];
        session.watch_after_exit(index, read_u64(payload, 0), read_u64(payload, 8) as u32);
    }
}

fn decode_args(types: &[Type], payload: &[u8], stacks: &crate::stacks::Stacks) -> Vec<PrintfArg> {
    let mut args = Vec::with_capacity(types.len());
    let mut off = 0usize;
    for ty in types {
        let bytes = payload.get(off..).unwrap_or(&[]);
        args.push(match decode(ty, bytes, stacks) {
            Value::Int(v) => PrintfArg::Int(v),
            Value::UInt(v) | Value::Pointer(v) | Value::KernelPointer(v) => PrintfArg::UInt(v),
            Value::Str(s) => PrintfArg::Str(s),
            Value::Buffer(b) => PrintfArg::Buffer(b),
            // The checker lets no tuple reach a conversion, as in bpftrace 0.17; its text form
            // is a harmless fallback.
            other => {
                let mut text = Vec::new();
                other.write_text(&mut text);
                PrintfArg::Str(text)
            }
        });
        off += align8(ty.size()) as usize;
    }
    args
}

/// `cat()`: prints the file's contents (at most `BPFTRACE_CAT_BYTES_MAX` bytes), or says on stderr why
/// it cannot be read, as bpftrace 0.17.
fn cat_file(path: &str, session: &Session, out: &mut dyn Write) -> io::Result<()> {
    use std::io::Read as _;
    let mut contents = Vec::new();
    match std::fs::File::open(path)
        .and_then(|f| f.take(crate::settings::current().cat_bytes_max).read_to_end(&mut contents))
    {
        Ok(_) => output::write_message(out, session.format, MessageKind::Cat, &contents),
        Err(e) => {
            out.flush()?;
            eprintln!("ERROR: failed to open file '{path}': {}", strerror(&e));
            // bpftrace 0.17 still prints the (empty) contents: nothing as text, a JSON message.
            output::write_message(out, session.format, MessageKind::Cat, b"")
        }
    }
}

/// An error's text as C's `strerror` words it, without Rust's ` (os error N)`.
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// `system()`: runs the formatted command through the shell and prints its output.
fn run_system(command: &str, session: &Session, out: &mut dyn Write) -> io::Result<()> {
    out.flush()?;
    let result = std::process::Command::new("/bin/sh").arg("-c").arg(command).output()?;
    output::write_message(out, session.format, MessageKind::Syscall, &result.stdout)
}
