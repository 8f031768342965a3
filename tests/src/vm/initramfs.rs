//! The VM's root file system: an initramfs written here as a `newc` cpio archive (the format the
//! kernel unpacks, `Documentation/driver-api/early-userspace/buffer-format.rst`), compressed with
//! the system `gzip`. Executables come with the shared libraries `ldd` names for them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFLNK: u32 = 0o120_000;

/// One entry of the archive.
enum Entry {
    Directory,
    File {
        contents: Vec<u8>,
        mode: u32,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    /// A symbolic link; its data is the target.
    Symlink {
        target: String,
    },
}

/// The files of a guest root file system, by absolute path. Parent directories are implied.
#[derive(Default)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
}

impl Initramfs {
    /// An initramfs holding only `/dev/console`, which the kernel opens for init's standard
    /// streams before init can mount devtmpfs.
    pub fn new() -> Initramfs {
        let mut initramfs = Initramfs::default();
        initramfs.add(Path::new("/dev/console"), Entry::CharDevice { major: 5, minor: 1 });
        initramfs
    }

    /// Adds a regular file with permission bits `mode` (e.g. `0o755`).
    pub fn add_file(&mut self, path: &str, contents: Vec<u8>, mode: u32) {
        self.add(Path::new(path), Entry::File { contents, mode });
    }

    /// Adds a symbolic link at `path` pointing to `target`.
    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.add(Path::new(path), Entry::Symlink { target: target.to_owned() });
    }

    /// Adds an empty directory (for mount points).
    pub fn add_directory(&mut self, path: &str) {
        self.add(Path::new(path), Entry::Directory);
    }

    /// Copies the host executable `host` to `path`, with every shared library it loads at the
    /// path the host has it (so the dynamic loader finds them the same way in the guest). With
    /// `strip_debug`, debug information is left out (`objcopy --strip-debug`, when objcopy is
    /// installed): a debug build of rbt shrinks from ~65 MB to ~12 MB, which the guest unpacks
    /// several times faster.
    pub fn add_executable(&mut self, path: &str, host: &Path, strip_debug: bool) -> Result<(), String> {
        let contents = if strip_debug { stripped(host) } else { None };
        let contents = match contents {
            Some(bytes) => bytes,
            None => std::fs::read(host).map_err(|e| format!("cannot read {}: {e}", host.display()))?,
        };
        self.add_file(path, contents, 0o755);
        for library in shared_libraries(host)? {
            let bytes = std::fs::read(&library).map_err(|e| format!("cannot read {library}: {e}"))?;
            self.add_file(&library, bytes, 0o755);
        }
        Ok(())
    }

    fn add(&mut self, path: &Path, entry: Entry) {
        for ancestor in path.ancestors().skip(1) {
            let name = ancestor.to_string_lossy();
            if name != "/" && !name.is_empty() {
                self.entries.entry(name.into_owned()).or_insert(Entry::Directory);
            }
        }
        self.entries.insert(path.to_string_lossy().into_owned(), entry);
    }

    /// The archive, uncompressed. Entries are sorted by path, so every directory comes before
    /// what it holds.
    pub fn to_cpio(&self) -> Vec<u8> {
        let mut archive = Vec::new();
        for (inode, (path, entry)) in self.entries.iter().enumerate() {
            let name = path.trim_start_matches('/');
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Directory => (S_IFDIR | 0o755, &[], (0, 0)),
                Entry::File { contents, mode } => (S_IFREG | mode, contents, (0, 0)),
                Entry::CharDevice { major, minor } => (S_IFCHR | 0o600, &[], (*major, *minor)),
                Entry::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes(), (0, 0)),
            };
            let links = if matches!(entry, Entry::Directory) { 2 } else { 1 };
            write_entry(&mut archive, name, inode as u32 + 1, mode, links, data, rdev);
        }
        write_entry(&mut archive, "TRAILER!!!", 0, 0, 1, &[], (0, 0));
        archive
    }

    /// The archive compressed with `gzip -1` (the system's; speed matters more than size here).
    pub fn to_cpio_gz(&self) -> Result<Vec<u8>, String> {
        let cpio = self.to_cpio();
        let mut gzip = Command::new("gzip")
            .arg("-1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run gzip to compress the initramfs: {e}"))?;
        let mut stdin = gzip.stdin.take().ok_or("gzip has no stdin")?;
        // Feed gzip on a thread: its output pipe would fill while we are still writing.
        let feeder = std::thread::spawn(move || stdin.write_all(&cpio));
        let output = gzip.wait_with_output().map_err(|e| format!("gzip failed: {e}"))?;
        feeder.join().map_err(|_| "the gzip feeder panicked")?.map_err(|e| format!("cannot feed gzip: {e}"))?;
        if !output.status.success() {
            return Err(format!("gzip failed ({})", output.status));
        }
        Ok(output.stdout)
    }
}

/// One `newc` entry: a 110-byte ASCII header of 13 eight-digit hex fields, the NUL-terminated
/// name padded to a multiple of 4 bytes (header included), the data padded the same way:
///
/// ```text
/// 070701 00000002 000081ED 00000000 00000000 00000001 00000000 00000A2C 00000000 ... 0000000A 00000000 bin/busybox\0
/// magic  ino      mode     uid      gid      nlink    mtime    filesize devmajor ... namesize check
/// ```
fn write_entry(out: &mut Vec<u8>, name: &str, inode: u32, mode: u32, links: u32, data: &[u8], rdev: (u32, u32)) {
    let fields = [inode, mode, 0, 0, links, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

/// `host` without its debug sections, or `None` when objcopy is not installed or fails.
fn stripped(host: &Path) -> Option<Vec<u8>> {
    // Unique per call: two tests of one process (one boot per kernel, in parallel) strip at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let target = std::env::temp_dir().join(format!("rbt-vm-strip-{}-{call}", std::process::id()));
    let status = Command::new("objcopy").arg("--strip-debug").arg(host).arg(&target).stderr(Stdio::null()).status();
    let bytes = match status {
        Ok(status) if status.success() => std::fs::read(&target).ok(),
        _ => None,
    };
    let _ = std::fs::remove_file(&target);
    bytes
}

/// The shared libraries the dynamic loader maps for `executable`, the loader itself included,
/// as `ldd` prints them:
///
/// ```text
///         linux-vdso.so.1 (0x00007ffd3c5f1000)
///         libgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0b1c8a1000)
///         libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b1c6c0000)
///         /lib64/ld-linux-x86-64.so.2 (0x00007f0b1c8d2000)
/// ```
///
/// A static executable has none (`ldd` says "not a dynamic executable" and fails).
fn shared_libraries(executable: &Path) -> Result<Vec<String>, String> {
    let output = Command::new("ldd")
        .arg(executable)
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", executable.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<String> {
    let mut libraries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            libraries.push(path.to_owned());
        }
    }
    libraries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd3c5f1000)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0b1c8a1000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0b1c8d2000)\n";
        assert_eq!(parse_ldd(text), ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib64/ld-linux-x86-64.so.2"]);
    }

    #[test]
    fn symlinks_hold_their_target_as_data() {
        let mut initramfs = Initramfs::new();
        initramfs.add_symlink("/suite/bin/bpftrace", "/bin/rbt");
        let cpio = initramfs.to_cpio();
        let name = b"suite/bin/bpftrace\0";
        let at = cpio.windows(name.len()).position(|w| w == name).unwrap() - 110;
        assert_eq!(&cpio[at + 14..at + 22], b"0000A1FF", "S_IFLNK | 0o777");
        assert_eq!(&cpio[at + 54..at + 62], b"00000008", "the target's length");
        let data = (at + 110 + name.len()).next_multiple_of(4);
        assert_eq!(&cpio[data..data + 8], b"/bin/rbt");
    }

    #[test]
    fn archive_has_parents_first_and_aligned_entries() {
        let mut initramfs = Initramfs::new();
        initramfs.add_file("/bin/init", b"#!/bin/sh\n".to_vec(), 0o755);
        let cpio = initramfs.to_cpio();
        // Every header starts at a multiple of 4 with the newc magic; read the names back.
        let mut names = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(at % 4, 0);
            assert_eq!(&cpio[at..at + 6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&cpio[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap(), 16).unwrap()
                    as usize
            };
            let (size, name_len) = (field(6), field(11));
            let name = std::str::from_utf8(&cpio[at + 110..at + 110 + name_len - 1]).unwrap().to_owned();
            at = (at + 110 + name_len).next_multiple_of(4);
            at = (at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                break;
            }
            names.push(name);
        }
        assert_eq!(at, cpio.len());
        assert_eq!(names, ["bin", "bin/init", "dev", "dev/console"]);
    }
}
