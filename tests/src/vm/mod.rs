//! A throwaway Linux 6.1 VM for kernel tests on a second kernel: QEMU (TCG emulation, no KVM
//! needed) boots Debian's 6.1 kernel with an initramfs built here — busybox, the programs to run
//! with their shared libraries, data files — whose `/init` runs a list of commands, reports each
//! one's stdout, stderr and exit status on a serial port, and powers off. One boot runs the whole
//! list; a boot takes a few seconds.
//!
//! ```text
//! Guest { files, executables, commands } ──initramfs.rs──▶ cpio.gz ─┐
//! /boot/vmlinuz-6.1.* ──kernel_image.rs──▶ ELF kernel ──────────────┴─▶ qemu-system-x86_64
//!   ttyS0 ──▶ console log (kernel messages, for failures)
//!   ttyS1 ──guest.rs parse_report──▶ CommandResult per command name
//! ```
//!
//! Missing tools are errors with the package to install, never a skip: `Vm::locate`.

mod guest;
mod initramfs;
mod kernel_image;
pub mod suite;

pub use guest::{CommandResult, GuestCommand};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The host programs a VM run needs.
#[derive(Debug)]
pub struct Vm {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub busybox: PathBuf,
}

/// What to put in the guest and what to run there.
pub struct Guest {
    initramfs: initramfs::Initramfs,
    commands: Vec<GuestCommand>,
    /// Each command is killed (SIGKILL) after this long.
    pub command_timeout: Duration,
    /// A command still there this long after its SIGKILL is stuck in the kernel: the guest
    /// reports it and powers off. Exiting can legitimately take a while under emulation (closing
    /// hundreds of perf events, an RCU grace period each), hence the default of 20 s.
    pub stuck_grace: Duration,
    /// The whole VM is killed after this long.
    pub vm_timeout: Duration,
}

/// The outcome of one boot.
#[derive(Debug)]
pub struct VmRun {
    /// Results by command name; a command the guest never reached is missing.
    pub results: BTreeMap<String, CommandResult>,
    /// The kernel's console (first serial port): boot messages, oopses, verifier warnings.
    pub console: String,
    /// From starting QEMU until `/init` reported in (host clock).
    pub boot: Option<Duration>,
    /// The guest kernel's uptime when `/init` reported in.
    pub guest_boot: Option<f64>,
    /// From starting QEMU until it exited.
    pub total: Duration,
    /// Whether the guest ran every command and reported done.
    pub done: bool,
    /// When not `done`: the command the guest was in when it stopped, with its kernel stack if it
    /// was stuck and its stderr so far (`guest::Report::describe_interruption`).
    pub interruption: String,
    /// The kernel image booted.
    pub kernel: PathBuf,
}

impl VmRun {
    /// The result of `name`, or an error that says why there is none (or why it is cut short, with
    /// no exit status): the command the guest stopped in, and the console's tail.
    pub fn result(&self, name: &str) -> Result<&CommandResult, String> {
        match self.results.get(name) {
            Some(result) if result.status.is_some() => Ok(result),
            found => Err(format!(
                "the VM gave {} for {name} (guest finished: {}); {}\nconsole tail:\n{}",
                if found.is_some() { "no exit status" } else { "no result" },
                self.done,
                self.interruption,
                tail(&self.console, 60)
            )),
        }
    }

    /// The commands by how long they ran in the guest, longest first.
    pub fn slowest(&self, count: usize) -> Vec<(&str, f64)> {
        let mut timed: Vec<(&str, f64)> =
            self.results.iter().filter_map(|(name, r)| Some((name.as_str(), r.duration()?))).collect();
        timed.sort_by(|a, b| b.1.total_cmp(&a.1));
        timed.truncate(count);
        timed
    }
}

impl Vm {
    /// Finds QEMU, the 6.1 kernel and busybox, or says which is missing and how to install it.
    pub fn locate() -> Result<Vm, String> {
        Vm::with_kernel(kernel_image::find()?)
    }

    /// The same with the newest `/boot/vmlinuz-SERIES.*` kernel, e.g. `6.12`.
    pub fn locate_series(series: &str) -> Result<Vm, String> {
        Vm::with_kernel(kernel_image::find_series(series)?)
    }

    fn with_kernel(kernel: PathBuf) -> Result<Vm, String> {
        if !cfg!(target_arch = "x86_64") {
            return Err(
                "the VM tests boot an x86_64 guest and run host x86_64 binaries in it: run them on x86_64".into()
            );
        }
        let qemu = on_path("qemu-system-x86_64")
            .ok_or("qemu-system-x86_64 is not on PATH: apt-get install qemu-system-x86 (the VM tests never skip)")?;
        let busybox = on_path("busybox")
            .ok_or("busybox is not on PATH: apt-get install busybox-static (the VM tests never skip)")?;
        Ok(Vm { qemu, kernel, busybox })
    }

    /// A guest with busybox as its shell and tools.
    pub fn guest(&self) -> Result<Guest, String> {
        let mut initramfs = initramfs::Initramfs::new();
        initramfs.add_executable("/bin/busybox", &self.busybox, false)?;
        for dir in ["/proc", "/sys", "/tmp", "/root", "/run"] {
            initramfs.add_directory(dir);
        }
        Ok(Guest {
            initramfs,
            commands: Vec::new(),
            command_timeout: Duration::from_secs(40),
            stuck_grace: Duration::from_secs(20),
            vm_timeout: Duration::from_secs(280),
        })
    }

    /// Boots the guest once, runs its commands in order, and returns what they did.
    pub fn run(&self, guest: Guest) -> Result<VmRun, String> {
        let work = std::env::temp_dir().join(format!("rbt-vm-{}-{}", std::process::id(), nonce()));
        std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let outcome = self.run_in(guest, &work);
        // RBT_VM_KEEP=1 keeps the initramfs, kernel, console log and report, to look at or boot by
        // hand.
        if std::env::var_os("RBT_VM_KEEP").is_some_and(|v| v == "1") {
            eprintln!("VM work directory kept: {}", work.display());
        } else {
            let _ = std::fs::remove_dir_all(&work);
        }
        outcome
    }

    fn run_in(&self, mut guest: Guest, work: &Path) -> Result<VmRun, String> {
        let marker = format!("rbt-vm-{}", nonce());
        let secs = |limit: Duration| u32::try_from(limit.as_secs().max(1)).unwrap_or(u32::MAX);
        let init =
            guest::init_script(&marker, &guest.commands, (secs(guest.command_timeout), secs(guest.stuck_grace)))?;
        guest.initramfs.add_file("/init", init.into_bytes(), 0o755);
        let initrd = work.join("initrd.cpio.gz");
        std::fs::write(&initrd, guest.initramfs.to_cpio_gz()?)
            .map_err(|e| format!("cannot write the initramfs: {e}"))?;
        let elf = work.join("vmlinux");
        let kernel = if kernel_image::unpack_elf(&self.kernel, &elf)? { elf } else { self.kernel.clone() };
        let console = work.join("console.log");

        let mut qemu = Command::new(&self.qemu);
        qemu.args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1G"])
            .args(["-nodefaults", "-no-user-config", "-display", "none", "-net", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            // RBT_VM_APPEND adds kernel parameters, for experiments (`tsc=reliable`, `nosmp`...).
            .args([
                "-append",
                &format!("console=ttyS0 quiet panic=-1 {}", std::env::var("RBT_VM_APPEND").unwrap_or_default()),
            ])
            // ttyS0: the console, to a file; ttyS1: the guest's report, to our stdout.
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .args(["-serial", "stdio"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = qemu.spawn().map_err(|e| format!("cannot start {}: {e}", self.qemu.display()))?;
        let up_line = format!("{marker} up ");
        let mut stdout = child.stdout.take().ok_or("qemu has no stdout")?;
        // Read the report as it comes, noting when /init first speaks.
        let reader = std::thread::spawn(move || {
            let (mut bytes, mut boot, mut chunk) = (Vec::new(), None, [0u8; 8192]);
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                bytes.extend_from_slice(&chunk[..n]);
                if boot.is_none() && bytes.windows(up_line.len()).any(|w| w == up_line.as_bytes()) {
                    boot = Some(started.elapsed());
                }
            }
            (bytes, boot)
        });
        let mut stderr = child.stderr.take().ok_or("qemu has no stderr")?;
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = started + guest.vm_timeout;
        let exited = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Err(e) => return Err(format!("cannot wait for qemu: {e}")),
            }
        };
        let total = started.elapsed();
        let (report_bytes, boot) = reader.join().map_err(|_| "the report reader panicked")?;
        let qemu_errors = errors.join().unwrap_or_default();
        let console_text = String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).into_owned();
        // Kept with the console under RBT_VM_KEEP=1: the raw report shows each command's times.
        let _ = std::fs::write(work.join("report.log"), &report_bytes);
        let report = guest::parse_report(&marker, &report_bytes);
        match exited {
            None => {
                return Err(format!(
                    "the VM ran past {:?} and was killed (guest finished: {}); {}\nconsole tail:\n{}",
                    guest.vm_timeout,
                    report.done,
                    report.describe_interruption(),
                    tail(&console_text, 60)
                ))
            }
            Some(status) if !status.success() && !report.done => {
                return Err(format!(
                    "qemu failed ({status}): {qemu_errors}\n{}\nconsole tail:\n{}",
                    report.describe_interruption(),
                    tail(&console_text, 60)
                ))
            }
            Some(_) => {}
        }
        Ok(VmRun {
            interruption: report.describe_interruption(),
            results: report.results,
            console: console_text,
            boot,
            guest_boot: report.init_uptime,
            total,
            done: report.done,
            kernel: self.kernel.clone(),
        })
    }
}

impl Guest {
    /// Puts a host executable, with its shared libraries, at `path` in the guest. Debug
    /// information is left out.
    pub fn add_executable(&mut self, path: &str, host: &Path) -> Result<(), String> {
        self.initramfs.add_executable(path, host, true)
    }

    /// Puts a file at `path` in the guest.
    pub fn add_file(&mut self, path: &str, contents: Vec<u8>) {
        self.initramfs.add_file(path, contents, 0o644);
    }

    /// Puts an executable file (a script, or a program with no shared libraries) at `path`.
    pub fn add_executable_file(&mut self, path: &str, contents: Vec<u8>) {
        self.initramfs.add_file(path, contents, 0o755);
    }

    /// Makes `path` a symbolic link to `target`.
    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.initramfs.add_symlink(path, target);
    }

    /// Adds a command to run; commands run in the order added.
    pub fn add_command(&mut self, command: GuestCommand) {
        self.commands.push(command);
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // Root's usual directories, for a PATH that lacks them.
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from));
    dirs.into_iter().map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// A value that differs between runs, for the report marker and the work directory.
fn nonce() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}", nanos ^ (u128::from(std::process::id()) << 64))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
