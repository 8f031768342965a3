//! Stacks: reading the addresses a stack id names out of its stack trace map, and turning them
//! into the lines bpftrace prints, through a symbolizer. Perf-mode user stacks are symbolized
//! with DWARF lines: a frame with them prints its source location and the calls inlined at it
//! (`Frame::perf_lines`); frames without print as bpftrace prints them.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::sync::mpsc;

use crate::output::StackText;
use compiler::lower::unwind::{STOP_MARKER, STOP_NOT_LOADED, STOP_NO_RULE, STOP_UNREADABLE, STOP_UNSUPPORTED_CFI};
use compiler::types::{StackMode, StackType};
use runtime::kernel::sys;
use runtime::symbols::{Detail, Frame, UnwindMaps, UnwindStats};

/// Names addresses: one frame per address, its `name` `None` where no symbol covers it.
pub trait Symbolize {
    fn kernel(&mut self, addrs: &[u64]) -> Vec<Frame>;
    /// User frames of process `pid`; with [`Detail::Lines`] also their DWARF locations and
    /// inlined calls.
    fn user(&mut self, pid: u32, addrs: &[u64], detail: Detail) -> Vec<Frame>;
    /// Called the first time a process shows up in a user stack, while it may still run, so its
    /// address space can be symbolized after it exits.
    fn remember(&mut self, pid: u32);
    /// From now on, remembering a process also loads its unwind tables into these maps.
    fn enable_unwinding(&mut self, _maps: UnwindMaps) {}
    /// Has the kernel record every executable mapping made from now on.
    fn record_mappings(&mut self, _cpus: Vec<u32>) {}
    /// Remembers every running process (see [`runtime::symbols::running_processes`]), in the
    /// background.
    fn remember_all(&mut self) {}
    /// Loads the unwind tables of executables no process maps yet, of rbt's own libraries
    /// (libc, ld.so, the vDSO: most processes map them) and of processes named up front,
    /// returning when they are loaded.
    fn preload(&mut self, _paths: &[std::path::PathBuf], _pids: &[u32]) {}
    /// What loading unwind tables did (files, rows, what could not be loaded).
    fn unwind_stats(&self) -> Option<UnwindStats> {
        None
    }
    /// The binaries user frames were found in, with their GNU build ids as lowercase hex.
    fn modules(&self) -> Vec<(String, Option<String>)> {
        Vec::new()
    }
}

/// The symbolizer of [`runtime::symbols`] (kallsyms, ELF symbol tables and DWARF, processes
/// remembered past their exit) behind [`Symbolize`], on a thread of its own.
///
/// blazesym's caches are `Rc`s, so a `Symbolizer` must stay on the thread that made it, while
/// the REPL shares its session, stacks included, between its input and output threads. So the
/// symbolizer is made on, and never leaves, a thread that does nothing else, started on first
/// use; `Symbols` hands it requests one at a time and waits for each answer.
#[derive(Default)]
pub struct Symbols {
    thread: Option<SymbolizerThread>,
}

struct SymbolizerThread {
    /// `None` once dropping: closing the channel ends the thread.
    requests: Option<mpsc::Sender<Request>>,
    answers: mpsc::Receiver<Answer>,
    handle: Option<std::thread::JoinHandle<()>>,
}

enum Request {
    Kernel(Vec<u64>),
    User {
        pid: u32,
        addrs: Vec<u64>,
        detail: Detail,
    },
    Remember(u32),
    RememberAll,
    /// Unwind tables of these executables, of rbt's own libraries and of these processes;
    /// answered when loaded.
    Preload(Vec<std::path::PathBuf>, Vec<u32>),
    /// Have the kernel record every executable mapping made on these CPUs.
    RecordMappings(Vec<u32>),
    EnableUnwinding(UnwindMaps),
    UnwindStats,
    Modules,
}

enum Answer {
    Frames(Vec<Frame>),
    Modules(Vec<(String, Option<String>)>),
    UnwindStats(Option<UnwindStats>),
}

impl Symbols {
    pub fn new() -> Symbols {
        Symbols::default()
    }

    fn thread(&mut self) -> &SymbolizerThread {
        self.thread.get_or_insert_with(SymbolizerThread::start)
    }

    /// Asks for frames; if the thread is gone (it panicked), the addresses print unnamed.
    fn frames(&mut self, request: Request, addrs: &[u64], kernel: bool) -> Vec<Frame> {
        match self.thread().ask(request) {
            Some(Answer::Frames(frames)) => frames,
            _ => addrs.iter().map(|&a| Frame::unknown(a, kernel)).collect(),
        }
    }
}

impl SymbolizerThread {
    fn start() -> SymbolizerThread {
        let (requests, inbox) = mpsc::channel();
        let (outbox, answers) = mpsc::channel();
        let handle = std::thread::Builder::new().name("rbt-symbolizer".into()).spawn(move || serve(&inbox, &outbox));
        SymbolizerThread { requests: Some(requests), answers, handle: handle.ok() }
    }

    fn ask(&self, request: Request) -> Option<Answer> {
        let answered = !matches!(
            request,
            Request::Remember(_) | Request::RememberAll | Request::EnableUnwinding(_) | Request::RecordMappings(_)
        );
        self.requests.as_ref()?.send(request).ok()?;
        if answered {
            self.answers.recv().ok()
        } else {
            None
        }
    }
}

impl Drop for SymbolizerThread {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The symbolizer thread: answers requests until the channel closes.
fn serve(requests: &mpsc::Receiver<Request>, answers: &mpsc::Sender<Answer>) {
    let mut inner = runtime::symbols::Symbolizer::new();
    // kallsyms is read on first use (and holds the BPF programs loaded by then).
    let mut kernel_loaded = false;
    // Processes to remember when nothing else is asked (`RememberAll`): one at a time between
    // requests, so that a process announced by its first stack is not kept waiting behind them.
    let mut background: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
    loop {
        let request = match requests.try_recv() {
            Ok(request) => request,
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => match background.pop_front() {
                Some(pid) => {
                    // One file's tables at a time: the process goes to the back of the queue
                    // while it has more.
                    if let Ok(false) = inner.remember_in_background(pid) {
                        background.push_back(pid);
                    }
                    continue;
                }
                // With the kernel's mapping records on, they are read at least every 100 ms so
                // that their buffers do not fill; otherwise the thread sleeps until asked (each
                // wake-up is system calls a script tracing rbt's own would see).
                None if inner.records_mappings() => {
                    match requests.recv_timeout(std::time::Duration::from_millis(100)) {
                        Ok(request) => request,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            inner.read_mmap_records();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match requests.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
            },
        };
        let answer = match request {
            Request::Kernel(addrs) => {
                if !kernel_loaded {
                    // Without kallsyms (no root, or hidden) every kernel frame prints as its address.
                    let _ = inner.load_kernel_symbols();
                    kernel_loaded = true;
                }
                Answer::Frames(inner.kernel(&addrs))
            }
            Request::User { pid, addrs, detail } => {
                if !inner.remembers(pid) {
                    // Not announced (or announced too late): the live process, while it still exists.
                    let _ = inner.remember(pid);
                }
                Answer::Frames(inner.user_in_detail(pid, &addrs, detail))
            }
            Request::Remember(pid) => {
                // A process that exited before it could be read prints its frames as addresses.
                let _ = inner.remember(pid);
                continue;
            }
            Request::RememberAll => {
                background.extend(runtime::symbols::running_processes());
                continue;
            }
            Request::Preload(paths, pids) => {
                for path in &paths {
                    inner.preload_unwind_tables(path);
                }
                inner.preload_own_libraries();
                for pid in pids {
                    let _ = inner.remember(pid);
                }
                Answer::Frames(Vec::new())
            }
            Request::RecordMappings(cpus) => {
                // Without them (no CAP_PERFMON), processes gone before they are read print as
                // addresses, as before.
                let _ = inner.enable_mmap_records(&cpus);
                continue;
            }
            Request::EnableUnwinding(maps) => {
                inner.enable_unwinding(maps);
                continue;
            }
            Request::UnwindStats => Answer::UnwindStats(inner.unwind_stats()),
            Request::Modules => {
                let hex = |id: &[u8]| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
                Answer::Modules(inner.object_files().map(|(path, id)| (path.to_owned(), id.map(hex))).collect())
            }
        };
        if answers.send(answer).is_err() {
            return;
        }
    }
}

impl Symbolize for Symbols {
    fn kernel(&mut self, addrs: &[u64]) -> Vec<Frame> {
        self.frames(Request::Kernel(addrs.to_vec()), addrs, true)
    }

    fn user(&mut self, pid: u32, addrs: &[u64], detail: Detail) -> Vec<Frame> {
        self.frames(Request::User { pid, addrs: addrs.to_vec(), detail }, addrs, false)
    }

    fn remember(&mut self, pid: u32) {
        self.thread().ask(Request::Remember(pid));
    }

    fn remember_all(&mut self) {
        self.thread().ask(Request::RememberAll);
    }

    fn record_mappings(&mut self, cpus: Vec<u32>) {
        self.thread().ask(Request::RecordMappings(cpus));
    }

    fn preload(&mut self, paths: &[std::path::PathBuf], pids: &[u32]) {
        self.thread().ask(Request::Preload(paths.to_vec(), pids.to_vec()));
    }

    fn enable_unwinding(&mut self, maps: UnwindMaps) {
        self.thread().ask(Request::EnableUnwinding(maps));
    }

    fn unwind_stats(&self) -> Option<UnwindStats> {
        match self.thread.as_ref().and_then(|t| t.ask(Request::UnwindStats)) {
            Some(Answer::UnwindStats(stats)) => stats,
            _ => None,
        }
    }

    fn modules(&self) -> Vec<(String, Option<String>)> {
        // Nothing was symbolized without a thread: no modules.
        match self.thread.as_ref().and_then(|t| t.ask(Request::Modules)) {
            Some(Answer::Modules(modules)) => modules,
            _ => Vec::new(),
        }
    }
}

/// The session's stack maps and symbolizer.
pub struct Stacks {
    /// The stack trace map of each depth.
    maps: Vec<(u32, RawFd)>,
    /// The map of user stacks unwound in the program (`compiler::lower::unwind`) of each depth.
    user_maps: Vec<(u32, RawFd)>,
    /// `--json-stacks=frames`.
    pub json_frames: bool,
    symbolizer: RefCell<Box<dyn Symbolize + Send>>,
}

impl Stacks {
    pub fn new(symbolizer: Box<dyn Symbolize + Send>) -> Stacks {
        Stacks { maps: Vec::new(), user_maps: Vec::new(), json_frames: false, symbolizer: RefCell::new(symbolizer) }
    }

    /// Records the stack trace map holding stacks of at most `limit` frames.
    pub fn set_map(&mut self, limit: u32, fd: RawFd) {
        match self.maps.iter_mut().find(|(l, _)| *l == limit) {
            Some(entry) => entry.1 = fd,
            None => self.maps.push((limit, fd)),
        }
    }

    /// Records the map of unwound user stacks of at most `limit` frames.
    pub fn set_user_map(&mut self, limit: u32, fd: RawFd) {
        match self.user_maps.iter_mut().find(|(l, _)| *l == limit) {
            Some(entry) => entry.1 = fd,
            None => self.user_maps.push((limit, fd)),
        }
    }

    pub fn remember(&self, pid: u32) {
        self.symbolizer.borrow_mut().remember(pid);
    }

    pub fn remember_all(&self) {
        self.symbolizer.borrow_mut().remember_all();
    }

    /// Has the kernel record every executable mapping made from now on, so that processes gone
    /// before they are read still symbolize.
    pub fn record_mappings(&self, cpus: Vec<u32>) {
        self.symbolizer.borrow_mut().record_mappings(cpus);
    }

    /// Loads unwind tables for executables not running yet (`-c`'s), rbt's own libraries and
    /// processes named up front (`-p`'s), and returns when they are loaded.
    pub fn preload(&self, paths: &[std::path::PathBuf], pids: &[u32]) {
        self.symbolizer.borrow_mut().preload(paths, pids);
    }

    /// Has processes remembered from now on get unwind tables for the programs' unwinder.
    pub fn enable_unwinding(&self, maps: UnwindMaps) {
        self.symbolizer.borrow_mut().enable_unwinding(maps);
    }

    pub fn unwind_stats(&self) -> Option<UnwindStats> {
        self.symbolizer.borrow().unwind_stats()
    }

    /// The binaries user frames came from, with build ids, for pprof's mappings.
    pub fn modules(&self) -> Vec<(String, Option<String>)> {
        self.symbolizer.borrow().modules()
    }

    /// The text of stack `id` (of process `pid`, for user stacks).
    pub fn text(&self, ty: &StackType, id: i64, pid: u32) -> StackText {
        let mut text = StackText {
            perf: ty.mode == StackMode::Perf,
            user: ty.user,
            pid,
            json_frames: self.json_frames,
            ..StackText::default()
        };
        if id == -i64::from(libc::EFAULT) {
            // Nothing to walk: an empty stack, as bpftrace prints it.
            return text;
        }
        if id < 0 {
            text.frames = vec![capture_error(id)];
            return text;
        }
        let mut addrs = match self.addresses(ty.user, ty.limit, id) {
            Ok(addrs) => addrs,
            Err(e) => {
                text.frames = vec![format!("[stack {id} unreadable: {e}]")];
                return text;
            }
        };
        // The unwinder's marker of a stack that ended early: not an address to symbolize.
        let stopped = match addrs.last() {
            Some(&last) if ty.user && last >= STOP_MARKER => {
                addrs.pop();
                Some(stop_marker(last - STOP_MARKER))
            }
            _ => None,
        };
        // DWARF lines only where they are printed: reading them costs about twice the time.
        let detail = if ty.mode == StackMode::Perf { Detail::Lines } else { Detail::Names };
        let frames = match ty.mode {
            StackMode::Raw => addrs.iter().map(|&a| Frame::unknown(a, !ty.user)).collect(),
            StackMode::Bpftrace | StackMode::Perf if ty.user => self.symbolizer.borrow_mut().user(pid, &addrs, detail),
            StackMode::Bpftrace | StackMode::Perf => self.symbolizer.borrow_mut().kernel(&addrs),
        };
        for frame in frames {
            push_frame_lines(&mut text.frames, &frame, ty.mode);
            text.detail.push(frame);
        }
        if let Some(marker) = stopped {
            text.frames.push(marker.clone());
            text.detail.push(Frame { name: Some(marker), ..Frame::unknown(0, false) });
        }
        text
    }

    /// `ksym(addr)` / `usym(addr)`: the name of the function covering `addr`, or the address in
    /// hex when no symbol covers it, as bpftrace prints them.
    pub fn symbol_name(&self, user: bool, pid: u32, addr: u64) -> String {
        let mut symbolizer = self.symbolizer.borrow_mut();
        let found = if user { symbolizer.user(pid, &[addr], Detail::Names) } else { symbolizer.kernel(&[addr]) };
        found.into_iter().next().and_then(|f| f.name).unwrap_or_else(|| format!("0x{addr:x}"))
    }

    /// The addresses of a stack, leaf first, up to the first zero: from the map of unwound user
    /// stacks (keyed by a u64 id) for user stacks where the program unwinds them, else from the
    /// stack trace map (keyed by a u32 id).
    fn addresses(&self, user: bool, limit: u32, id: i64) -> std::io::Result<Vec<u64>> {
        let unwound = if user { self.user_maps.iter().find(|(l, _)| *l == limit) } else { None };
        let (fd, key) = match unwound {
            Some(&(_, fd)) => (fd, (id as u64).to_le_bytes().to_vec()),
            None => (
                self.maps
                    .iter()
                    .find(|(l, _)| *l == limit)
                    .map(|(_, fd)| *fd)
                    .ok_or_else(|| std::io::Error::other(format!("no stack map for depth {limit}")))?,
                (id as u32).to_le_bytes().to_vec(),
            ),
        };
        let mut value = vec![0u8; 8 * limit as usize];
        if !sys::lookup(fd, &key, &mut value)? {
            return Err(std::io::Error::other("not in the stack map"));
        }
        Ok(value
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .take_while(|&a| a != 0)
            .collect())
    }
}

/// The lines of one frame in the stack's mode: bpftrace 0.17's one line, or in perf mode with
/// DWARF lines, one more per inlined call.
fn push_frame_lines(lines: &mut Vec<String>, frame: &Frame, mode: StackMode) {
    match mode {
        StackMode::Raw => lines.push(format!("0x{:x}", frame.addr)),
        StackMode::Bpftrace => lines.push(frame.bpftrace_text()),
        StackMode::Perf => lines.extend(frame.perf_lines()),
    }
}

/// The frame that ends a user stack the unwinder could not finish, saying why
/// (`compiler::lower::unwind`'s `STOP_*` reasons).
fn stop_marker(reason: u64) -> String {
    let why = match reason {
        STOP_UNSUPPORTED_CFI => "unwind rule rbt cannot follow",
        STOP_NO_RULE => "no unwind rule and no frame pointer",
        STOP_UNREADABLE => "stack memory unreadable",
        STOP_NOT_LOADED => "unwind tables not loaded yet",
        _ => "unwinding stopped",
    };
    format!("[{why}]")
}

/// What a failed capture prints instead of frames (bpftrace prints an empty stack).
fn capture_error(id: i64) -> String {
    let why = match -id {
        e if e == i64::from(libc::EEXIST) => "another stack had the same hash in the stack map (EEXIST)",
        e if e == i64::from(libc::ENOMEM) => "the stack map is full (ENOMEM)",
        _ => "the capture failed",
    };
    format!("[stack not captured: {why}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(frame: &Frame, mode: StackMode) -> Vec<String> {
        let mut out = Vec::new();
        push_frame_lines(&mut out, frame, mode);
        out
    }

    #[test]
    fn frames_print_as_bpftrace_does_in_each_mode() {
        let named = |addr, kernel| Frame {
            addr,
            name: Some("do_syscall_64".into()),
            offset: 506,
            module: Some("/bin/x".into()),
            kernel,
            ..Frame::default()
        };
        assert_eq!(lines(&named(0xffff_ffff_8141_5d70, true), StackMode::Bpftrace), ["do_syscall_64+506"]);
        assert_eq!(lines(&Frame::unknown(0x7fe4_aeb0_1829, true), StackMode::Bpftrace), ["0x7fe4aeb01829"]);
        assert_eq!(
            lines(&Frame::unknown(0x55ba_1d9f_5d55, false), StackMode::Perf),
            ["55ba1d9f5d55 0x55ba1d9f5d55 ([unknown])"]
        );
        assert_eq!(lines(&named(0x4010, false), StackMode::Perf), ["4010 do_syscall_64+506 (/bin/x)"]);
        assert_eq!(lines(&named(0xffff_ffff_8141_5d70, true), StackMode::Perf), ["ffffffff81415d70 do_syscall_64+506"]);
        assert_eq!(lines(&named(0x4010, false), StackMode::Raw), ["0x4010"]);
        assert!(capture_error(-i64::from(libc::EEXIST)).contains("EEXIST"));
    }

    /// DWARF locations and inlined calls show in perf mode alone.
    #[test]
    fn only_perf_mode_prints_lines_and_inlined_calls() {
        let frame = Frame {
            addr: 0x4010,
            name: Some("outer".into()),
            offset: 16,
            module: Some("/bin/x".into()),
            file: Some("/src/x.rs".into()),
            line: Some(7),
            inlined: vec![runtime::symbols::InlinedFrame {
                name: "inner".into(),
                file: Some("/src/x.rs".into()),
                line: Some(3),
            }],
            kernel: false,
        };
        assert_eq!(
            lines(&frame, StackMode::Perf),
            ["4010 inner (inlined) /src/x.rs:3 (/bin/x)", "4010 outer+16 /src/x.rs:7 (/bin/x)"]
        );
        assert_eq!(lines(&frame, StackMode::Bpftrace), ["outer+16"]);
        assert_eq!(lines(&frame, StackMode::Raw), ["0x4010"]);
    }
}
