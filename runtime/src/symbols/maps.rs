//! `/proc/PID/maps` lines as data: the executable mappings a process has, what backs each one
//! (a file, the vDSO, or anonymous memory such as JIT code), and where in the file it starts.
//!
//! A real sample (columns: range, permissions, file offset, device, inode, path):
//!
//! ```text
//! 55a375b88000-55a375b8e000 r-xp 00002000 fe:00 247282                     /usr/bin/head
//! 7fc52f110000-7fc52f266000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
//! 7fc52f2bf000-7fc52f2cc000 rw-p 00000000 00:00 0
//! 7fc52f2dd000-7fc52f2df000 r-xp 00000000 00:00 0                          [vdso]
//! 7f1e0a000000-7f1e0a021000 r-xp 00000000 00:05 1043                       /memfd:jit (deleted)
//! ```

use std::path::PathBuf;

/// What backs an executable mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A file, by the path the process sees (inside its own mount namespace), without the
    /// kernel's ` (deleted)` suffix; `deleted` says whether that suffix was there.
    File { path: PathBuf, deleted: bool },
    /// The kernel's vDSO image.
    Vdso,
    /// Anonymous memory, or a special region other than the vDSO (`[vsyscall]`, `[anon:NAME]`):
    /// JIT-compiled code lives here, named only by a perf map if the runtime writes one.
    Anonymous,
}

/// One executable mapping: `[start, end)` in the process, `offset` into what backs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    /// `(major, minor, inode)` of the file as the kernel names it; zero for anonymous memory.
    pub inode: (u32, u32, u64),
    pub backing: Backing,
}

/// The executable mappings in the text of a `/proc/PID/maps` file, in address order. Lines
/// that do not parse are skipped: the kernel writes this file, so a bad line means a format
/// this parser does not know, and the rest is still worth having.
pub fn parse_executable(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).filter(|(exec, _)| *exec).map(|(_, m)| m).collect()
}

/// One line: whether it is executable, and the mapping.
fn parse_line(line: &str) -> Option<(bool, Mapping)> {
    let mut rest = line;
    let mut field = || {
        let trimmed = rest.trim_start();
        let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        let (word, after) = trimmed.split_at(end);
        rest = after;
        Some(word).filter(|w| !w.is_empty())
    };
    let (range, perms, offset, device, inode) = (field()?, field()?, field()?, field()?, field()?);
    // The path is the rest of the line after the padding; it may itself contain spaces.
    let path = rest.trim_start();

    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let exec = perms.as_bytes().get(2) == Some(&b'x');
    let offset = u64::from_str_radix(offset, 16).ok()?;
    let (major, minor) = device.split_once(':')?;
    let major = u32::from_str_radix(major, 16).ok()?;
    let minor = u32::from_str_radix(minor, 16).ok()?;
    let inode: u64 = inode.parse().ok()?;

    let backing = if path == "[vdso]" {
        Backing::Vdso
    } else if path.is_empty() || path.starts_with('[') || inode == 0 {
        Backing::Anonymous
    } else {
        match path.strip_suffix(" (deleted)") {
            Some(kept) => Backing::File { path: PathBuf::from(kept), deleted: true },
            None => Backing::File { path: PathBuf::from(path), deleted: false },
        }
    };
    Some((exec, Mapping { start, end, offset, inode: (major, minor, inode), backing }))
}

/// The process's start time (clock ticks after boot, field 22 of `/proc/PID/stat`), which with
/// the pid names one process: a pid that is reused gets a new start time.
///
/// ```text
/// 14477 (cat) R 14471 14471 8971 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 333767 3133440 ...
/// ```
pub fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may contain spaces and parentheses itself, so
    // count fields from the last ')': field 3 (state) follows it, field 22 is 20 further on.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// The pid the process has in its own pid namespace (the last number of `NSpid:` in
/// `/proc/PID/status`), which is the number a JIT runtime puts in its perf map's name. The
/// fields are separated by tabs:
///
/// ```text
/// NSpid:  14475   7
/// ```
pub fn parse_namespace_pid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55a375b86000-55a375b88000 r--p 00000000 fe:00 247282                     /usr/bin/head
55a375b88000-55a375b8e000 r-xp 00002000 fe:00 247282                     /usr/bin/head
7fc52f110000-7fc52f266000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
7fc52f2bf000-7fc52f2cc000 rwxp 00000000 00:00 0 
7fc52f2dd000-7fc52f2df000 r-xp 00000000 00:00 0                          [vdso]
7f1e0a000000-7f1e0a021000 r-xp 00001000 103:05 1043                      /tmp/with space/lib.so (deleted)
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
garbage line
";

    #[test]
    fn keeps_executable_mappings_with_their_backing() {
        let maps = parse_executable(SAMPLE);
        assert_eq!(maps.len(), 6);
        assert_eq!(
            maps[0],
            Mapping {
                start: 0x55a3_75b8_8000,
                end: 0x55a3_75b8_e000,
                offset: 0x2000,
                inode: (0xfe, 0, 247_282),
                backing: Backing::File { path: "/usr/bin/head".into(), deleted: false },
            }
        );
        assert_eq!(maps[2].backing, Backing::Anonymous);
        assert_eq!(maps[3].backing, Backing::Vdso);
        assert_eq!(maps[4].backing, Backing::File { path: "/tmp/with space/lib.so".into(), deleted: true });
        assert_eq!(maps[4].inode, (0x103, 5, 1043));
        assert_eq!(maps[4].offset, 0x1000);
        assert_eq!(maps[5].backing, Backing::Anonymous);
        assert_eq!((maps[1].start, maps[1].end), (0x7fc5_2f11_0000, 0x7fc5_2f26_6000));
    }

    #[test]
    fn start_time_counts_fields_after_the_command_name() {
        let stat = "14477 (a (b) c) R 14471 14471 8971 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 333767 3133440 390";
        assert_eq!(parse_start_time(stat), Some(333_767));
        assert_eq!(parse_start_time("1 (x) R 0"), None);
    }

    #[test]
    fn namespace_pid_is_the_innermost() {
        assert_eq!(parse_namespace_pid("Name:\tx\nNSpid:\t14475\t7\nNSpgid:\t1\n"), Some(7));
        assert_eq!(parse_namespace_pid("NSpid:\t14475\n"), Some(14475));
        assert_eq!(parse_namespace_pid("Name:\tx\n"), None);
    }
}
