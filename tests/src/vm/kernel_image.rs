//! The guest kernel: finding Debian's 6.1 image under `/boot`, and unpacking the ELF kernel out
//! of it so QEMU can start it directly (PVH entry) instead of running the compressed image's own
//! decompressor, which takes seconds under TCG emulation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The kernel series the VM tests run on.
pub const SERIES: &str = "6.1";

/// `$RBT_VM_KERNEL` if set, else the newest `/boot/vmlinuz-6.1.*`.
pub fn find() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("RBT_VM_KERNEL") {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(format!("RBT_VM_KERNEL={} is not a file", path.display())) };
    }
    find_series(SERIES)
}

/// The newest `/boot/vmlinuz-SERIES.*` (e.g. SERIES `6.12` for Debian's `linux-image-6.12.*`).
pub fn find_series(series: &str) -> Result<PathBuf, String> {
    let prefix = format!("vmlinuz-{series}.");
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/boot")
        .map_err(|e| format!("cannot read /boot: {e}"))?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("vmlinuz-")?.to_owned();
            name.starts_with(&prefix).then(|| (version_key(&version), entry.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, path)| path).ok_or_else(|| {
        format!(
            "no Linux {series} kernel: /boot/vmlinuz-{series}.* is missing. Run .ci/run, which unpacks it from \
             Debian's newest linux-image-{series}.*-amd64 package (or set RBT_VM_KERNEL=/path/to/vmlinuz for 6.1)"
        )
    })
}

/// Orders versions like `6.1.0-57-amd64` by their numbers.
fn version_key(version: &str) -> Vec<u64> {
    version.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect()
}

/// The uncompressed ELF kernel inside the bzImage `vmlinuz`, written to `target`; `Ok(false)`
/// when it cannot be had (a compression other than xz or gzip, or the tool missing), and the
/// caller boots the bzImage as it is.
///
/// The x86 boot protocol (`Documentation/arch/x86/boot.rst`) puts the compressed kernel at
/// `payload_offset` (0x248) for `payload_length` (0x24C) bytes, counted from the protected-mode
/// code, which follows the `setup_sects` (0x1F1) 512-byte sectors of real-mode setup and the boot
/// sector; the header signature `HdrS` sits at 0x202. The payload of Debian's image is an xz
/// stream (`FD 37 7A 58 5A 00`) followed by the 4-byte uncompressed size.
pub fn unpack_elf(vmlinuz: &Path, target: &Path) -> Result<bool, String> {
    let image = std::fs::read(vmlinuz).map_err(|e| format!("cannot read {}: {e}", vmlinuz.display()))?;
    let Some(payload) = payload(&image) else { return Ok(false) };
    let tool = match payload {
        [0xFD, b'7', b'z', b'X', b'Z', 0, ..] => ["xz", "-dc", "--single-stream"],
        [0x1F, 0x8B, ..] => ["gzip", "-dc", "-q"],
        _ => return Ok(false),
    };
    let Ok(file) = std::fs::File::create(target) else { return Ok(false) };
    let Ok(mut child) =
        Command::new(tool[0]).args(&tool[1..]).stdin(Stdio::piped()).stdout(file).stderr(Stdio::null()).spawn()
    else {
        return Ok(false);
    };
    if let Some(mut stdin) = child.stdin.take() {
        // The trailing size bytes make gzip complain; the stream before them is what counts.
        let _ = std::io::Write::write_all(&mut stdin, payload);
    }
    let _ = child.wait();
    let mut magic = [0u8; 4];
    let is_elf = std::fs::File::open(target).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && magic == *b"\x7fELF";
    Ok(is_elf)
}

fn payload(image: &[u8]) -> Option<&[u8]> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?) as usize);
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let setup_sects = match *image.get(0x1F1)? {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)?;
    image.get(start..start + u32_at(0x24C)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_found_from_the_boot_header() {
        let mut image = vec![0u8; 4096];
        image[0x1F1] = 2;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x248..0x24C].copy_from_slice(&100u32.to_le_bytes());
        image[0x24C..0x250].copy_from_slice(&6u32.to_le_bytes());
        let start = 3 * 512 + 100;
        image[start..start + 6].copy_from_slice(b"\xFD7zXZ\0");
        assert_eq!(payload(&image), Some(&b"\xFD7zXZ\0"[..]));
        image[0x202] = b'X';
        assert_eq!(payload(&image), None);
    }

    #[test]
    fn versions_order_numerically() {
        assert!(version_key("6.1.0-57-amd64") > version_key("6.1.0-9-amd64"));
    }
}
