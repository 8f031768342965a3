//! Where event records come from: the BPF ring buffer (Linux 5.8+), or on older kernels a perf
//! event array with one buffer per CPU. Both hand the decoder the same records (see
//! `compiler::program::EventKind`), read with aya's readers.

use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use aya::maps::perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer};
use aya::maps::{Map, MapData, RingBuf};

/// Pages of each CPU's perf buffer unless `RBT_PERF_RB_PAGES` says otherwise (bpftrace's
/// default and variable, `BPFTRACE_PERF_RB_PAGES`, too). A power of two.
const PERF_BUFFER_PAGES: usize = 64;

pub enum EventSource {
    Ring(RingBuf<MapData>),
    Perf {
        buffers: Vec<PerfEventArrayBuffer<MapData>>,
        /// A record that wrapped around the end of a buffer, put back together.
        joined: Vec<u8>,
    },
}

impl EventSource {
    /// A reader of the events map `map` (a ring buffer when `ring`, else a perf event array
    /// read on `cpus`), on a descriptor of its own so that it can be read while other maps
    /// are accessed.
    pub fn open(map: BorrowedFd<'_>, ring: bool, cpus: &[u32]) -> io::Result<EventSource> {
        let data = MapData::from_fd(map.try_clone_to_owned()?).map_err(|e| io::Error::other(e.to_string()))?;
        if ring {
            EventSource::ring(data)
        } else {
            EventSource::perf(data, cpus)
        }
    }

    fn ring(map: MapData) -> io::Result<EventSource> {
        let ring = RingBuf::try_from(Map::RingBuf(map)).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(EventSource::Ring(ring))
    }

    /// Opens one buffer for each CPU of `cpus` (the online ones) in the perf event array.
    fn perf(map: MapData, cpus: &[u32]) -> io::Result<EventSource> {
        let mut array =
            PerfEventArray::try_from(Map::PerfEventArray(map)).map_err(|e| io::Error::other(e.to_string()))?;
        let pages = std::env::var("RBT_PERF_RB_PAGES")
            .or_else(|_| std::env::var("BPFTRACE_PERF_RB_PAGES"))
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(PERF_BUFFER_PAGES, |p| p.clamp(1, 1 << 16).next_power_of_two());
        let mut buffers = Vec::new();
        for &cpu in cpus {
            let buffer = array
                .open(cpu, Some(pages))
                .map_err(|e| io::Error::other(format!("opening the perf buffer of CPU {cpu}: {e}")))?;
            buffers.push(buffer);
        }
        Ok(EventSource::Perf { buffers, joined: Vec::new() })
    }

    /// The descriptors to poll for new records.
    pub fn fds(&self) -> Vec<RawFd> {
        match self {
            EventSource::Ring(ring) => vec![ring.as_raw_fd()],
            EventSource::Perf { buffers, .. } => buffers.iter().map(AsRawFd::as_raw_fd).collect(),
        }
    }

    /// Calls `handle` on every queued record, in order per buffer, until one fails.
    pub fn for_each(&mut self, handle: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        self.for_each_bounded(usize::MAX, None, handle).map(|_| ())
    }

    /// Calls `handle` on queued records, at most `max` of them and stopping at `deadline`;
    /// returns how many it handled.
    pub fn for_each_bounded(
        &mut self,
        max: usize,
        deadline: Option<Instant>,
        mut handle: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let mut taken = 0usize;
        let more = |taken: usize| taken < max && deadline.is_none_or(|d| Instant::now() < d);
        match self {
            EventSource::Ring(ring) => {
                while more(taken) {
                    let Some(item) = ring.next() else { break };
                    taken += 1;
                    handle(&item)?;
                }
                Ok(taken)
            }
            EventSource::Perf { buffers, joined } => {
                for buffer in buffers {
                    let flow = buffer.try_fold((), |(), event| {
                        // Lost samples are counted in the program, when the output call fails.
                        let PerfEvent::Sample { head, tail } = event else { return ControlFlow::Continue(()) };
                        taken += 1;
                        let result = if tail.is_empty() {
                            handle(head)
                        } else {
                            joined.clear();
                            joined.extend_from_slice(head);
                            joined.extend_from_slice(tail);
                            handle(joined)
                        };
                        match result {
                            Err(e) => ControlFlow::Break(Err(e)),
                            Ok(()) if !more(taken) => ControlFlow::Break(Ok(())),
                            Ok(()) => ControlFlow::Continue(()),
                        }
                    });
                    match flow {
                        ControlFlow::Break(Err(e)) => return Err(e),
                        ControlFlow::Break(Ok(())) => return Ok(taken),
                        ControlFlow::Continue(()) => {}
                    }
                }
                Ok(taken)
            }
        }
    }
}
