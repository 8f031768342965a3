//! The parts of an x86-64 ELF file the unwind tables need: its CFI sections, its executable
//! segments (to turn virtual addresses into file offsets) and its build id.

use std::borrow::Cow;
use std::io::Read;

use object::elf::{EM_X86_64, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{CompressionFormat, Endianness, Object, ObjectSection};

use crate::UnwindError;

/// One CFI section's contents and the virtual address it is loaded at (`.eh_frame`'s pointers
/// are relative to it).
pub(crate) struct CfiSection<'a> {
    pub data: Cow<'a, [u8]>,
    pub address: u64,
}

/// An executable PT_LOAD segment's file-backed part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub vaddr: u64,
    pub filesz: u64,
    pub offset: u64,
}

/// The executable segments of a file, which map the FDEs' virtual addresses to file offsets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Segments {
    pub executable: Vec<Segment>,
}

impl Segments {
    /// The file offsets of the code at virtual addresses `start..end`, cut at the end of the
    /// segment holding `start`; `None` when no executable segment holds `start`.
    pub fn file_range(&self, start: u64, end: u64) -> Option<(u64, u64)> {
        let segment = self.executable.iter().find(|s| start >= s.vaddr && start - s.vaddr < s.filesz)?;
        // Saturating: the numbers come from a file, and a damaged one must not overflow.
        let segment_end = segment.vaddr.saturating_add(segment.filesz);
        let to_offset = |vaddr: u64| vaddr.saturating_sub(segment.vaddr).saturating_add(segment.offset);
        Some((to_offset(start), to_offset(end.min(segment_end))))
    }

    pub fn executable_bytes(&self) -> u64 {
        self.executable.iter().fold(0u64, |total, s| total.saturating_add(s.filesz))
    }
}

/// What [`crate::build`] reads from one ELF file.
pub(crate) struct ElfCfi<'a> {
    pub eh_frame: Option<CfiSection<'a>>,
    pub debug_frame: Option<CfiSection<'a>>,
    /// The section addresses `.eh_frame`'s pointer encodings are relative to.
    pub bases: gimli::BaseAddresses,
    pub segments: Segments,
    pub build_id: Option<Vec<u8>>,
}

impl<'a> ElfCfi<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, UnwindError> {
        check_header(data)?;
        let file = ElfFile64::<Endianness>::parse(data).map_err(|source| UnwindError::MalformedElf { source })?;
        let endian = file.endian();
        let executable = file
            .elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == PT_LOAD && ph.p_flags(endian) & PF_X != 0)
            .map(|ph| Segment { vaddr: ph.p_vaddr(endian), filesz: ph.p_filesz(endian), offset: ph.p_offset(endian) })
            .collect();
        let address_of = |name: &str| file.section_by_name(name).map(|s| s.address());
        let mut bases = gimli::BaseAddresses::default();
        if let Some(address) = address_of(".text") {
            bases = bases.set_text(address);
        }
        if let Some(address) = address_of(".got") {
            bases = bases.set_got(address);
        }
        let eh_frame = cfi_section(&file, ".eh_frame")?;
        if let Some(section) = &eh_frame {
            bases = bases.set_eh_frame(section.address);
        }
        Ok(ElfCfi {
            eh_frame,
            debug_frame: cfi_section(&file, ".debug_frame")?,
            bases,
            segments: Segments { executable },
            build_id: file.build_id().ok().flatten().map(<[u8]>::to_vec),
        })
    }
}

/// Checks what `object` would report less clearly (or accept, for other machines): the magic, the
/// class and byte order, and the machine.
fn check_header(data: &[u8]) -> Result<(), UnwindError> {
    if data.len() < 20 || data[..4] != *b"\x7fELF" {
        return Err(UnwindError::NotElf { start: data.iter().take(4).copied().collect() });
    }
    let (class, byte_order) = (data[4], data[5]);
    if class != object::elf::ELFCLASS64 || byte_order != object::elf::ELFDATA2LSB {
        return Err(UnwindError::NotElf64Le { class, data: byte_order });
    }
    let machine = u16::from_le_bytes([data[18], data[19]]);
    if machine != EM_X86_64 {
        return Err(UnwindError::NotX86_64 { machine });
    }
    Ok(())
}

/// A CFI section's contents, decompressed; `None` when the file lacks it or it holds nothing
/// (a separate debug file's `.eh_frame` is `SHT_NOBITS`).
fn cfi_section<'a>(
    file: &ElfFile64<'a, Endianness>,
    name: &'static str,
) -> Result<Option<CfiSection<'a>>, UnwindError> {
    let Some(section) = file.section_by_name(name) else { return Ok(None) };
    let compressed = section.compressed_data().map_err(|source| UnwindError::MalformedElf { source })?;
    let data = match compressed.format {
        CompressionFormat::None => Cow::Borrowed(compressed.data),
        CompressionFormat::Zlib => {
            let mut out = Vec::with_capacity(usize::try_from(compressed.uncompressed_size).unwrap_or(0));
            flate2::read::ZlibDecoder::new(compressed.data)
                .read_to_end(&mut out)
                .map_err(|source| UnwindError::Decompression { section: name, source })?;
            Cow::Owned(out)
        }
        format => return Err(UnwindError::UnsupportedCompression { section: name, format: format!("{format:?}") }),
    };
    Ok((!data.is_empty()).then_some(CfiSection { data, address: section.address() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_range_goes_through_the_segment_holding_the_start() {
        let segments = Segments {
            executable: vec![
                Segment { vaddr: 0x40_1000, filesz: 0x1000, offset: 0x1000 },
                Segment { vaddr: 0x60_0000, filesz: 0x100, offset: 0x3000 },
            ],
        };
        assert_eq!(segments.file_range(0x40_1010, 0x40_1020), Some((0x1010, 0x1020)));
        assert_eq!(segments.file_range(0x60_0000, 0x60_0200), Some((0x3000, 0x3100)));
        assert_eq!(segments.file_range(0x40_2000, 0x40_2010), None);
        assert_eq!(segments.file_range(0, 0x10), None);
        assert_eq!(segments.executable_bytes(), 0x1100);
    }

    fn header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = class;
        bytes[5] = data;
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes
    }

    #[test]
    fn header_checks_say_what_is_wrong() {
        let not_elf = ElfCfi::parse(b"#!/bin/sh\n").err().map(|e| e.to_string());
        assert_eq!(not_elf.as_deref(), Some("not an ELF file (it starts with [23, 21, 2f, 62], not 7f 45 4c 46)"));
        let elf32 = ElfCfi::parse(&header(1, 1, 3)).err().map(|e| e.to_string());
        assert_eq!(elf32.as_deref(), Some("not a 64-bit little-endian ELF file (EI_CLASS 1, EI_DATA 1)"));
        let aarch64 = ElfCfi::parse(&header(2, 1, 183)).err().map(|e| e.to_string());
        assert_eq!(aarch64.as_deref(), Some("not an x86-64 ELF file (e_machine 183, x86-64 is 62)"));
        assert!(matches!(ElfCfi::parse(&header(2, 1, 62)), Err(UnwindError::MalformedElf { .. })));
    }
}
