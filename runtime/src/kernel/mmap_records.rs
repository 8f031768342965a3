//! The kernel's own record of every executable mapping made, as `perf record` keeps it: a dummy
//! software perf event on each CPU with `mmap2`, `task` and `comm_exec` set writes an MMAP2
//! record (address, length, file offset, device and inode, path) whenever any process maps code,
//! a FORK record for every new process and a COMM record with the exec flag for every exec, into
//! a ring buffer rbt reads when it likes. The records are written synchronously, in the
//! process's own mmap call, so a process that lives under a millisecond still leaves its address
//! space behind, and reading them never takes the traced process's mmap lock (as reading
//! `/proc/PID/maps` does).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, Ordering};

use aya_obj::generated::{perf_event_attr, perf_event_mmap_page, perf_sw_ids, perf_type_id};

/// Pages of each CPU's buffer, besides the header page (a power of two): 256 KiB, some 2,500
/// mapping records between two reads.
const DATA_PAGES: usize = 64;

const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_COMM: u32 = 3;
const PERF_RECORD_FORK: u32 = 7;
const PERF_RECORD_MMAP2: u32 = 10;
const PERF_RECORD_MISC_COMM_EXEC: u16 = 1 << 13;
const PERF_RECORD_MISC_MMAP_BUILD_ID: u16 = 1 << 14;

/// One record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MmapRecord {
    /// Process `pid` mapped `path` (executable) at `[start, start + len)` from file offset
    /// `offset`; `inode` is `(major, minor, inode)`, zero where the kernel gave a build id.
    Map { pid: u32, start: u64, len: u64, offset: u64, inode: (u32, u32, u64), path: String },
    /// A new process `pid`, a copy of `parent`'s address space.
    Fork { pid: u32, parent: u32 },
    /// Process `pid` ran exec: its old mappings are gone.
    Exec { pid: u32 },
    /// Records the kernel could not write into a full buffer.
    Lost(u64),
}

/// Per-CPU buffers of mapping records, from the moment they are opened.
pub struct MmapRecords {
    buffers: Vec<Buffer>,
}

struct Buffer {
    _fd: OwnedFd,
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by the `Buffer` alone and read from one thread at a time (`read`
// takes `&mut self`).
unsafe impl Send for Buffer {}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are the mapping `open` made, unmapped once, here.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

impl MmapRecords {
    /// Opens a buffer on each of `cpus`.
    pub fn open(cpus: &[u32]) -> io::Result<MmapRecords> {
        let buffers = cpus.iter().map(|&cpu| Buffer::open(cpu)).collect::<io::Result<_>>()?;
        Ok(MmapRecords { buffers })
    }

    /// Every record written since the last read, CPU by CPU.
    pub fn read(&mut self) -> Vec<MmapRecord> {
        let mut records = Vec::new();
        for buffer in &mut self.buffers {
            buffer.drain(&mut records);
        }
        records
    }
}

impl Buffer {
    fn open(cpu: u32) -> io::Result<Buffer> {
        // SAFETY: `perf_event_attr` is plain integers and unions of integers: all zeroes is valid.
        let mut attr: perf_event_attr = unsafe { std::mem::zeroed() };
        attr.type_ = perf_type_id::PERF_TYPE_SOFTWARE as u32;
        attr.config = perf_sw_ids::PERF_COUNT_SW_DUMMY as u64;
        attr.size = std::mem::size_of::<perf_event_attr>() as u32;
        attr.set_mmap(1);
        attr.set_mmap2(1);
        attr.set_comm(1);
        attr.set_comm_exec(1);
        attr.set_task(1);
        attr.set_exclude_kernel(1);
        let flags = libc::c_ulong::from(aya_obj::generated::PERF_FLAG_FD_CLOEXEC);
        // SAFETY: `attr` is a fully initialised perf_event_attr whose `size` says how much of it
        // the kernel may read; pid -1 with a CPU means every process on that CPU.
        let fd = unsafe {
            libc::syscall(libc::SYS_perf_event_open, &attr as *const perf_event_attr, -1, cpu as i32, -1, flags)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("perf_event_open returned a bad descriptor"))?;
        // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let page = page_size();
        let len = page * (1 + DATA_PAGES);
        // SAFETY: a fresh shared mapping of the perf event's buffer, of the size the kernel
        // expects (a header page and a power of two of data pages); checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Buffer { _fd: fd, base: base.cast(), len })
    }

    fn header(&self) -> *mut perf_event_mmap_page {
        self.base.cast()
    }

    /// Moves every complete record between the kernel's head and our tail into `out`.
    fn drain(&mut self, out: &mut Vec<MmapRecord>) {
        let page = page_size();
        let size = (DATA_PAGES * page) as u64;
        let header = self.header();
        // SAFETY: `header` points at the mapping's first page, the kernel's
        // perf_event_mmap_page; data_head is read before the data it covers (the fence).
        let head = unsafe { std::ptr::addr_of!((*header).data_head).read_volatile() };
        fence(Ordering::Acquire);
        // SAFETY: as above; data_tail is ours to read and write.
        let mut tail = unsafe { std::ptr::addr_of!((*header).data_tail).read_volatile() };
        let data_at = |offset: u64| (page as u64 + offset % size) as usize;
        let mut bytes = Vec::new();
        while tail + 8 <= head {
            let mut fixed = [0u8; 8];
            self.copy(data_at(tail), size, &mut fixed);
            let kind = u32::from_le_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
            let misc = u16::from_le_bytes([fixed[4], fixed[5]]);
            let len = u64::from(u16::from_le_bytes([fixed[6], fixed[7]]));
            if len < 8 || tail + len > head {
                break;
            }
            bytes.resize(len as usize, 0);
            self.copy(data_at(tail), size, &mut bytes);
            if let Some(record) = decode(kind, misc, &bytes[8..]) {
                out.push(record);
            }
            tail += len;
        }
        fence(Ordering::Release);
        // SAFETY: as above; the kernel may reuse the space up to the new tail.
        unsafe { std::ptr::addr_of_mut!((*header).data_tail).write_volatile(tail) };
    }

    /// Copies `out.len()` bytes from the data area at mapping offset `at`, wrapping at its end.
    fn copy(&self, at: usize, size: u64, out: &mut [u8]) {
        let page = page_size();
        let end = page + size as usize;
        let first = out.len().min(end - at);
        // SAFETY: `[at, at + first)` and `[page, page + rest)` lie inside the data area of the
        // mapping (`at` is in `[page, end)`, records are at most the data area's size).
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(at), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(self.base.add(page), out.as_mut_ptr().add(first), out.len() - first);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// One record's body (after its 8-byte header).
fn decode(kind: u32, misc: u16, body: &[u8]) -> Option<MmapRecord> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?));
    let c_string = |at: usize| {
        let bytes = body.get(at..)?;
        let end = bytes.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
    };
    match kind {
        PERF_RECORD_MMAP2 => {
            let (pid, start, len, offset) = (u32_at(0)?, u64_at(8)?, u64_at(16)?, u64_at(24)?);
            let inode = if misc & PERF_RECORD_MISC_MMAP_BUILD_ID != 0 {
                (0, 0, 0)
            } else {
                (u32_at(32)?, u32_at(36)?, u64_at(40)?)
            };
            // pid tid addr len pgoff (40 bytes), maj min ino ino_generation (24), prot flags (8).
            Some(MmapRecord::Map { pid, start, len, offset, inode, path: c_string(64)? })
        }
        PERF_RECORD_FORK => {
            let (pid, parent, tid) = (u32_at(0)?, u32_at(4)?, u32_at(8)?);
            // A new thread is a fork whose tid is not its pid: the address space is its pid's.
            (pid == tid && pid != parent).then_some(MmapRecord::Fork { pid, parent })
        }
        PERF_RECORD_COMM if misc & PERF_RECORD_MISC_COMM_EXEC != 0 => Some(MmapRecord::Exec { pid: u32_at(0)? }),
        PERF_RECORD_LOST => Some(MmapRecord::Lost(u64_at(8)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_as_the_kernel_lays_them_out() {
        let mut mmap2 = Vec::new();
        for v in [7u32, 8] {
            mmap2.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0x5555_0000_u64, 0x2000, 0x1000] {
            mmap2.extend_from_slice(&v.to_le_bytes());
        }
        mmap2.extend_from_slice(&8u32.to_le_bytes());
        mmap2.extend_from_slice(&1u32.to_le_bytes());
        mmap2.extend_from_slice(&1234u64.to_le_bytes());
        mmap2.extend_from_slice(&0u64.to_le_bytes());
        mmap2.extend_from_slice(&[5, 0, 0, 0, 2, 0, 0, 0]);
        mmap2.extend_from_slice(b"/bin/x\0\0");
        assert_eq!(
            decode(PERF_RECORD_MMAP2, 0, &mmap2),
            Some(MmapRecord::Map {
                pid: 7,
                start: 0x5555_0000,
                len: 0x2000,
                offset: 0x1000,
                inode: (8, 1, 1234),
                path: "/bin/x".into()
            })
        );
        let fork: Vec<u8> = [9u32, 7, 9, 7].iter().flat_map(|v| v.to_le_bytes()).chain([0; 8]).collect();
        assert_eq!(decode(PERF_RECORD_FORK, 0, &fork), Some(MmapRecord::Fork { pid: 9, parent: 7 }));
        let thread: Vec<u8> = [7u32, 7, 10, 7].iter().flat_map(|v| v.to_le_bytes()).chain([0; 8]).collect();
        assert_eq!(decode(PERF_RECORD_FORK, 0, &thread), None);
        let comm: Vec<u8> = [9u32, 9].iter().flat_map(|v| v.to_le_bytes()).chain(*b"ls\0\0\0\0\0\0").collect();
        assert_eq!(decode(PERF_RECORD_COMM, PERF_RECORD_MISC_COMM_EXEC, &comm), Some(MmapRecord::Exec { pid: 9 }));
        assert_eq!(decode(PERF_RECORD_COMM, 0, &comm), None);
    }
}
