//! Attaching a session's probes. Probes running the same code (a wildcard's expansions, unless
//! they use `probe` or `func`) attach as one link where the kernel has multi links: uprobes of
//! one binary as a uprobe_multi link (6.6+), kprobes at function entry or return as a
//! kprobe_multi link (with fprobe). The kernel registers and, far more slowly otherwise,
//! unregisters them in one go. Where it has no such links, the group's program is loaded again
//! as a plain one and its probes attach one by one. Other kprobes and uprobes attach from
//! several threads, since a wildcard can name hundreds.
//!
//! Several probes on one event run in the order they are declared, as in bpftrace: the kernel
//! runs the programs of some kinds of event in the order they were attached and of others in
//! the reverse order (kprobes and uprobes at one address, software events: each new one goes to
//! the head of a list), so those are attached last first, and probes on one target are attached
//! by one thread, in that order (probes on different targets keep their declaration order).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use super::{Session, SessionError};
use crate::host::HostCatalog;
use compiler::hir::{AttachPoint, PerfRate};
use compiler::program::CompiledProgram;
use runtime::kernel::attach::{self as kattach, Attachment, ClockRate, ProbeTarget};
use runtime::kernel::loader::{self, MultiLink};
use runtime::kernel::{cpus, AttachError};

/// Probes that can share one multi link: same binary (uprobes), same direction, same code.
#[derive(PartialEq, Eq, Hash)]
enum MultiKey<'a> {
    Uprobe { path: &'a str, ret: bool, code: &'a [u8] },
    Kprobe { ret: bool, code: &'a [u8] },
}

/// The multi-link groups among the probes of `program` from `from` on (`codes` holds their
/// instructions): each member's index mapped to its group's leader, the first member.
pub(super) fn multi_link_groups(program: &CompiledProgram, from: usize, codes: &[Vec<u8>]) -> HashMap<usize, usize> {
    let mut groups: HashMap<MultiKey, Vec<usize>> = HashMap::new();
    for (i, probe) in program.probes.iter().skip(from).enumerate() {
        let code = codes[i].as_slice();
        let key = match &probe.attach {
            AttachPoint::Uprobe { path, ret, .. } => MultiKey::Uprobe { path, ret: *ret, code },
            AttachPoint::Kprobe { offset: 0, ret, .. } => MultiKey::Kprobe { ret: *ret, code },
            _ => continue,
        };
        groups.entry(key).or_default().push(from + i);
    }
    let mut leader_of = HashMap::new();
    for members in groups.values().filter(|m| m.len() > 1) {
        for &m in members {
            leader_of.insert(m, members[0]);
        }
    }
    leader_of
}

/// The multi link a grouped probe's program is loaded for.
pub(super) fn multi_link_of(attach: &AttachPoint) -> MultiLink {
    match attach {
        AttachPoint::Uprobe { .. } => MultiLink::Uprobe,
        _ => MultiLink::Kprobe,
    }
}

/// Whether the kernel runs the programs of this kind of probe on one event in the reverse order
/// of their attachment (bpftrace 0.17's `attach_reverse` table, which the suite's `*_order`
/// tests check).
pub(super) fn fires_in_reverse(attach: &AttachPoint) -> bool {
    match attach {
        AttachPoint::Uprobe { .. } | AttachPoint::Usdt(_) => true,
        AttachPoint::Kprobe { ret, .. } | AttachPoint::Fentry { ret, .. } => !ret,
        AttachPoint::PerfCounter { hardware, .. } => !hardware,
        AttachPoint::Begin
        | AttachPoint::End
        | AttachPoint::Tracepoint { .. }
        | AttachPoint::Profile { .. }
        | AttachPoint::Interval { .. }
        | AttachPoint::RawTracepoint { .. }
        | AttachPoint::Watchpoint { .. }
        | AttachPoint::FunctionWatchpoint(_) => false,
    }
}

/// `indices` in the order to attach them: those that fire in attachment order first, in
/// declaration order, then the others, last first.
fn attach_order(program: &CompiledProgram, indices: impl Iterator<Item = usize>) -> Vec<usize> {
    let (mut reverse, mut order): (Vec<usize>, Vec<usize>) =
        indices.partition(|&i| fires_in_reverse(&program.probes[i].attach));
    reverse.reverse();
    order.append(&mut reverse);
    order
}

/// The event a dynamic probe attaches to: probes with the same one are attached one after the
/// other, in order.
#[derive(PartialEq, Eq, Hash)]
enum DynamicTarget<'a> {
    Uprobe { path: &'a str, offset: u64, ret: bool },
    Kprobe { func: &'a str, offset: u64, ret: bool },
}

fn dynamic_target(attach: &AttachPoint) -> Option<DynamicTarget<'_>> {
    match attach {
        AttachPoint::Uprobe { path, offset, ret, .. } => {
            Some(DynamicTarget::Uprobe { path, offset: *offset, ret: *ret })
        }
        AttachPoint::Usdt(usdt) => {
            Some(DynamicTarget::Uprobe { path: &usdt.path, offset: usdt.file_offset, ret: false })
        }
        AttachPoint::Kprobe { func, offset, ret } => Some(DynamicTarget::Kprobe { func, offset: *offset, ret: *ret }),
        _ => None,
    }
}

/// How a dynamic probe attaches through its PMU.
fn probe_target(attach: &AttachPoint, pid: Option<u32>) -> ProbeTarget<'_> {
    match attach {
        AttachPoint::Uprobe { path, offset, ret, .. } => {
            ProbeTarget { pmu: "uprobe", target: path, offset: *offset, ret: *ret, pid, ref_ctr_offset: 0 }
        }
        // USDT probes stay out of uprobe_multi groups: each is a uprobe of its own,
        // incrementing its semaphore (if any) while attached.
        AttachPoint::Usdt(usdt) => ProbeTarget {
            pmu: "uprobe",
            target: &usdt.path,
            offset: usdt.file_offset,
            ret: false,
            pid,
            ref_ctr_offset: usdt.semaphore_offset.unwrap_or(0),
        },
        AttachPoint::Kprobe { func, offset, ret } => {
            ProbeTarget { pmu: "kprobe", target: func, offset: *offset, ret: *ret, pid: None, ref_ctr_offset: 0 }
        }
        _ => unreachable!("only dynamic probes are attached here"),
    }
}

/// Whether the kernel refused a multi link for want of them (then probes attach one by one).
fn lacks_multi_links(e: &AttachError) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS))
}

impl Session {
    /// Attaches the probes in `range` except BEGIN and END. On an error, the probes of `range`
    /// attached so far stay attached; the caller decides whether to detach them.
    pub fn attach(&mut self, range: Range<usize>, tracefs: &HostCatalog) -> Result<(), SessionError> {
        let one_by_one = self.attach_multi_links(range.clone())?;
        self.attach_dynamic(range.clone(), &one_by_one)?;
        self.attach_others(range, tracefs)
    }

    fn attach_error(&self, index: usize, source: AttachError) -> SessionError {
        SessionError::Attach { probe: self.program.probes[index].attach.probe_name(), source }
    }

    /// Attaches each multi-link group of `range` as one link; returns the probes of groups the
    /// kernel has no multi links for, to be attached one by one.
    fn attach_multi_links(&mut self, range: Range<usize>) -> Result<HashSet<usize>, SessionError> {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in range {
            if let Some(leader) = self.probes[i].as_ref().and_then(|l| l.multi) {
                groups.entry(leader).or_default().push(i);
            }
        }
        let mut one_by_one = HashSet::new();
        let order = attach_order(&self.program, groups.keys().copied());
        for leader in order {
            let members = groups.remove(&leader).unwrap_or_default();
            let Some(loaded) = self.probes[leader].as_ref() else { continue };
            let prog_fd = loaded.fd.as_raw_fd();
            let probes = &self.program.probes;
            let attached = match &probes[leader].attach {
                AttachPoint::Uprobe { path, ret, .. } => {
                    let offsets: Vec<u64> = members
                        .iter()
                        .filter_map(|&m| match &probes[m].attach {
                            AttachPoint::Uprobe { offset, .. } => Some(*offset),
                            _ => None,
                        })
                        .collect();
                    kattach::uprobe_multi(prog_fd, path, &offsets, *ret, self.pid_filter)
                }
                AttachPoint::Kprobe { ret, .. } => {
                    let functions: Vec<String> = members
                        .iter()
                        .filter_map(|&m| match &probes[m].attach {
                            AttachPoint::Kprobe { func, .. } => Some(func.clone()),
                            _ => None,
                        })
                        .collect();
                    kattach::kprobe_multi(prog_fd, &functions, *ret)
                }
                _ => continue,
            };
            match attached {
                Ok(a) => self.probes[leader].as_mut().expect("loaded").attachments.push(a),
                Err(e) if lacks_multi_links(&e) => {
                    self.reload_plain(leader, &members)?;
                    one_by_one.extend(members);
                }
                Err(source) => return Err(self.attach_error(leader, source)),
            }
        }
        Ok(one_by_one)
    }

    /// Attaches the uprobes, USDT probes and kprobes of `range` that are in no multi link, from
    /// several threads.
    fn attach_dynamic(&mut self, range: Range<usize>, one_by_one: &HashSet<usize>) -> Result<(), SessionError> {
        let dynamic: Vec<(usize, RawFd)> = range
            .filter(|&i| {
                matches!(
                    self.program.probes[i].attach,
                    AttachPoint::Uprobe { .. } | AttachPoint::Usdt(_) | AttachPoint::Kprobe { .. }
                )
            })
            .filter(|&i| self.probes[i].as_ref().is_some_and(|l| l.multi.is_none()) || one_by_one.contains(&i))
            .filter_map(|i| Some((i, self.probes[i].as_ref()?.fd.as_raw_fd())))
            .collect();
        // One work item per target, in declaration order (different events keep the order they
        // always had), its probes in the order they must attach for their event.
        let mut by_target: HashMap<DynamicTarget, usize> = HashMap::new();
        let mut targets: Vec<Vec<(usize, RawFd)>> = Vec::new();
        for (i, fd) in dynamic {
            let Some(target) = dynamic_target(&self.program.probes[i].attach) else { continue };
            let slot = by_target.entry(target).or_insert_with(|| {
                targets.push(Vec::new());
                targets.len() - 1
            });
            targets[*slot].push((i, fd));
        }
        for probes in &mut targets {
            if probes.first().is_some_and(|&(i, _)| fires_in_reverse(&self.program.probes[i].attach)) {
                probes.reverse();
            }
        }
        let pid = self.pid_filter;
        let program = &self.program;
        let results: Vec<(usize, Result<Attachment, AttachError>)> = kattach::in_parallel(targets, |probes| {
            probes
                .into_iter()
                .map(|(index, prog_fd)| {
                    (index, kattach::probe(prog_fd, &probe_target(&program.probes[index].attach, pid)))
                })
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        let mut first_error = None;
        for (index, attached) in results {
            match attached {
                Ok(a) => self.probes[index].as_mut().expect("loaded").attachments.push(a),
                Err(source) => {
                    first_error.get_or_insert(self.attach_error(index, source));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Attaches the tracepoints, timers, counters, raw tracepoints and trampolines of `range`.
    fn attach_others(&mut self, range: Range<usize>, tracefs: &HostCatalog) -> Result<(), SessionError> {
        let cpus = cpus::cpu_list("online")?;
        let order = attach_order(&self.program, range);
        // Every tracepoint's id is read before the first attaches: rbt's own reads of tracefs
        // must not fire the probes it has attached already (a script tracing `statx` or `openat`
        // would see them).
        let mut event_ids: std::collections::HashMap<usize, std::io::Result<u64>> = order
            .iter()
            .filter_map(|&index| match &self.program.probes[index].attach {
                AttachPoint::Tracepoint { category, event, .. } => Some((index, tracefs.event_id(category, event))),
                _ => None,
            })
            .collect();
        for index in order {
            let probe = &self.program.probes[index];
            let Some(loaded) = self.probes[index].as_mut() else { continue };
            let prog_fd = loaded.fd.as_raw_fd();
            let attached: Result<Vec<Attachment>, AttachError> = match &probe.attach {
                AttachPoint::Begin | AttachPoint::End => continue,
                AttachPoint::Uprobe { .. } | AttachPoint::Usdt(_) | AttachPoint::Kprobe { .. } => continue,
                AttachPoint::Tracepoint { category, event, .. } => event_ids
                    .remove(&index)
                    .unwrap_or_else(|| tracefs.event_id(category, event))
                    .map_err(AttachError::Io)
                    .and_then(|id| kattach::tracepoint(prog_fd, id))
                    .map(|a| vec![a]),
                AttachPoint::Profile { rate } | AttachPoint::Interval { rate } => {
                    let rate = match *rate {
                        PerfRate::Hz(hz) => ClockRate::Hz(hz),
                        PerfRate::PeriodNs(ns) => ClockRate::PeriodNs(ns),
                    };
                    // profile fires on every CPU; interval on one, as in bpftrace.
                    let on = match probe.attach {
                        AttachPoint::Profile { .. } => &cpus[..],
                        _ => &cpus[..cpus.len().min(1)],
                    };
                    on.iter().map(|&cpu| kattach::cpu_clock(prog_fd, cpu, rate)).collect()
                }
                AttachPoint::PerfCounter { hardware, config, period, .. } => {
                    cpus.iter().map(|&cpu| kattach::counter(prog_fd, cpu, *hardware, *config, *period)).collect()
                }
                AttachPoint::RawTracepoint { name, .. } => kattach::raw_tracepoint(prog_fd, name).map(|a| vec![a]),
                AttachPoint::Fentry { .. } => kattach::trampoline(prog_fd).map(|a| vec![a]),
                // Attached as their setup uprobes report addresses (`watch.rs`).
                AttachPoint::FunctionWatchpoint(_) => continue,
                AttachPoint::Watchpoint { address, len, mode, pid } => {
                    let bp = kattach::Breakpoint { address: *address, len: *len, mode, pid: *pid };
                    kattach::breakpoint(prog_fd, &bp, &cpus)
                }
            };
            let attached =
                attached.map_err(|source| SessionError::Attach { probe: probe.attach.probe_name(), source })?;
            loaded.attachments.extend(attached);
        }
        Ok(())
    }

    /// Loads a multi-link group's program again without the multi attach type, for kernels
    /// without multi links, and gives it to every probe of the group.
    fn reload_plain(&mut self, leader: usize, members: &[usize]) -> Result<(), SessionError> {
        let probe = &self.program.probes[leader];
        let Some(code) = self.probes[leader].as_mut().and_then(|l| l.code.take()) else { return Ok(()) };
        let prog = loader::load_program(probe.kind, None, &probe.name, &code, self.verbose)
            .map_err(|e| super::verifier_error(probe, e))?;
        let fd = Arc::new(prog.fd);
        for &m in members {
            if let Some(l) = self.probes[m].as_mut() {
                l.fd = fd.clone();
                l.multi = None;
            }
        }
        Ok(())
    }
}
