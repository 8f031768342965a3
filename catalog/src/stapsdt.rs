//! USDT probes read from a binary's `.note.stapsdt` section. Each note (type 3, owner
//! `stapsdt`) describes one probe; its descriptor is three addresses and three strings:
//!
//! ```text
//! u64 pc, u64 base (link-time address of .stapsdt.base), u64 semaphore (0: none),
//! "rbt\0" "add\0" "-4@%ebx -4@%ecx -8@%rdx -4@$5 -8@total(%rip)\0"
//! ```

use compiler::usdt::{parse_arguments, UsdtProbe};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::elf_symbols::{file_offset, parse_elf};
use crate::wildcard::wildcard_match;

const NT_STAPSDT: u32 = 3;

/// One note as written, before its addresses are resolved.
#[derive(Debug, PartialEq, Eq)]
struct Note<'a> {
    pc: u64,
    base: u64,
    semaphore: u64,
    provider: &'a str,
    name: &'a str,
    args: &'a str,
}

/// The USDT probes of the binary at `path` (its bytes `data`) whose provider and name match
/// the patterns, sorted by provider and name (bpftrace's order).
pub fn usdt_probes(path: &str, data: &[u8], provider: &str, name: &str) -> Result<Vec<UsdtProbe>, String> {
    let file = parse_elf(path, data)?;
    // A prelinked binary moved `.stapsdt.base`: its probes moved by as much.
    let actual_base = file.section_by_name(".stapsdt.base").map(|s| s.address());
    let symbol = |wanted: &str| {
        file.symbols().chain(file.dynamic_symbols()).find(|s| s.name() == Ok(wanted)).map(|s| s.address())
    };
    let mut probes = Vec::new();
    for section in file.sections().filter(|s| s.name() == Ok(".note.stapsdt")) {
        let bytes = section.data().map_err(|e| format!("cannot read the USDT notes of {path}: {e}"))?;
        for note in parse_notes(bytes) {
            if !wildcard_match(note.provider, provider) || !wildcard_match(note.name, name) {
                continue;
            }
            let shift = |addr: u64| match actual_base {
                Some(actual) if note.base != 0 && actual != note.base => {
                    addr.wrapping_add(actual).wrapping_sub(note.base)
                }
                _ => addr,
            };
            let pc = shift(note.pc);
            let at = format!("USDT probe {}:{} of {path}", note.provider, note.name);
            let probe_offset =
                file_offset(&file, pc).ok_or_else(|| format!("{at}: address {pc:#x} is in no loadable segment"))?;
            let semaphore_offset = match note.semaphore {
                0 => None,
                sema => Some(
                    file_offset(&file, shift(sema))
                        .ok_or_else(|| format!("{at}: its semaphore is in no loadable segment"))?,
                ),
            };
            let args = parse_arguments(note.args, pc, &symbol).map_err(|e| format!("{at}: {e}"))?;
            probes.push(UsdtProbe {
                path: path.to_owned(),
                provider: note.provider.to_owned(),
                name: note.name.to_owned(),
                file_offset: probe_offset,
                semaphore_offset,
                args,
            });
        }
    }
    probes.sort_by(|a, b| (&a.provider, &a.name, a.file_offset).cmp(&(&b.provider, &b.name, b.file_offset)));
    Ok(probes)
}

/// The stapsdt notes of a `.note.stapsdt` section's bytes (little-endian, 64-bit); notes of
/// other owners or types are skipped, a truncated note ends the list.
fn parse_notes(bytes: &[u8]) -> Vec<Note<'_>> {
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let align4 = |n: usize| (n + 3) & !3;
    let mut notes = Vec::new();
    let mut at = 0;
    while let (Some(namesz), Some(descsz), Some(kind)) = (u32_at(at), u32_at(at + 4), u32_at(at + 8)) {
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let name_at = at + 12;
        let desc_at = name_at + align4(namesz);
        let (Some(owner), Some(desc)) = (bytes.get(name_at..name_at + namesz), bytes.get(desc_at..desc_at + descsz))
        else {
            break;
        };
        at = desc_at + align4(descsz);
        if kind != NT_STAPSDT || owner != b"stapsdt\0" {
            continue;
        }
        if let Some(note) = parse_descriptor(desc) {
            notes.push(note);
        }
    }
    notes
}

fn parse_descriptor(desc: &[u8]) -> Option<Note<'_>> {
    let u64_at = |at: usize| desc.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    let mut strings = desc.get(24..)?.split(|&b| b == 0).map(|s| std::str::from_utf8(s).ok());
    Some(Note {
        pc: u64_at(0)?,
        base: u64_at(8)?,
        semaphore: u64_at(16)?,
        provider: strings.next()??,
        name: strings.next()??,
        args: strings.next()?.unwrap_or(""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(desc: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(8u32.to_le_bytes());
        bytes.extend(u32::try_from(desc.len()).expect("small").to_le_bytes());
        bytes.extend(NT_STAPSDT.to_le_bytes());
        bytes.extend(b"stapsdt\0");
        bytes.extend(desc);
        bytes.resize((bytes.len() + 3) & !3, 0);
        bytes
    }

    #[test]
    fn notes_as_gcc_writes_them() {
        let mut desc = Vec::new();
        for v in [0x127bu64, 0x2009, 0x402e] {
            desc.extend(v.to_le_bytes());
        }
        desc.extend(b"rbt\0add\0-4@%ebx 8@$5\0");
        let mut bytes = note(&desc);
        // A note of another owner in between is skipped.
        bytes.extend(4u32.to_le_bytes());
        bytes.extend(1u32.to_le_bytes());
        bytes.extend(1u32.to_le_bytes());
        bytes.extend(b"GNU\0\x07\0\0\0");
        desc.truncate(24);
        desc.extend(b"rbt\0tick\0\0");
        bytes.extend(note(&desc));
        let notes = parse_notes(&bytes);
        assert_eq!(
            notes,
            [
                Note {
                    pc: 0x127b,
                    base: 0x2009,
                    semaphore: 0x402e,
                    provider: "rbt",
                    name: "add",
                    args: "-4@%ebx 8@$5"
                },
                Note { pc: 0x127b, base: 0x2009, semaphore: 0x402e, provider: "rbt", name: "tick", args: "" },
            ]
        );
    }
}
