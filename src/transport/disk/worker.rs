//! The disk path's IO thread and its channel to the rest of the daemon. The API side
//! ([`super::DiskPath`]) puts what the next write carries into a shared outbox and holds the
//! [`IoThread`]; the thread writes this node's slot every interval, reads every slot, hands
//! the bytes to the pure [`SlotReader`] and sends what it found to the daemon's
//! [`Inbound`] channel. It logs IO failures and unreadable slots once per change, not per
//! tick, and is the only place that reads the clock.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::directio::AlignedBuf;
use crate::policy::lease::Grant;
use crate::policy::message::Heartbeat;
use crate::policy::spec::NodeId;
use crate::transport::Inbound;

use super::device::Device;
use super::layout::{slot_in, slot_offset, Record, SlotFault, HEADER_BYTES};
use super::reader::{SlotNote, SlotReader};
use super::{DiskError, DiskPathConfig};

/// The running IO thread, as the API side holds it: the outbox it writes from, and the means
/// to stop it. Dropped, it tells the thread to end (without waiting for it).
pub(super) struct IoThread {
    /// Shared with the thread: what to write next, and the stop flag.
    shared: Arc<Shared>,
    /// The thread; `None` once joined or left behind.
    thread: Option<JoinHandle<()>>,
    /// Signalled by the thread as it exits, so that `stop` can wait for it with a bound.
    done: mpsc::Receiver<()>,
}

impl IoThread {
    /// Reads the slots once as a baseline (IO errors here fail the start), then spawns the
    /// thread on `dev`.
    pub(super) fn start(
        cfg: DiskPathConfig,
        dev: Device,
        inbound: UnboundedSender<Inbound>,
    ) -> Result<IoThread, DiskError> {
        let worker = Worker::baseline(cfg, dev, inbound)?;
        let shared = Arc::clone(&worker.shared);
        let (name, device) = (
            format!("disk-path-{}", worker.cfg.path),
            worker.cfg.device.clone(),
        );
        let (done_tx, done) = mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || {
                worker.run();
                // The receiver may be gone (a DiskPath dropped without stop): nothing to do.
                let _ = done_tx.send(());
            })
            .map_err(|source| DiskError::Thread { device, source })?;
        Ok(IoThread {
            shared,
            thread: Some(thread),
            done,
        })
    }

    /// The next write carries `hb` and one fresh beat.
    pub(super) fn heartbeat(&self, hb: Heartbeat) {
        let mut out = self.shared.outbox();
        out.hb = hb;
        out.fresh = true;
    }

    /// The next write carries this lease request for `to`.
    pub(super) fn request(&self, to: NodeId, stamp_us: u64) {
        let mut out = self.shared.outbox();
        out.request = Some((to, stamp_us));
        out.first_request_us.get_or_insert(stamp_us);
    }

    /// The next write carries `grant` for `to` (a node of the config).
    pub(super) fn grant(&self, to: NodeId, grant: Grant) {
        if let Some(g) = self.shared.outbox().grants.get_mut(usize::from(to)) {
            *g = Some(grant);
        }
    }

    /// Tells the thread to stop and joins it, waiting at most `wait`: a thread stuck in disk
    /// IO is left behind with a warning. `device` is for the log lines.
    pub(super) fn stop(mut self, wait: Duration, device: &Path) {
        self.signal_stop();
        match self.done.recv_timeout(wait) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    if t.join().is_err() {
                        tracing::error!(device = %device.display(),
                            "disk path IO thread panicked");
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(device = %device.display(), waited_ms = wait.as_millis() as u64,
                    "disk path IO thread is stuck in disk IO; leaving it behind");
                self.thread = None;
            }
        }
    }

    fn signal_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for IoThread {
    /// A disk path dropped without [`super::DiskPath::stop`] still tells its thread to end.
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// What the API side hands the IO thread.
struct Shared {
    outbox: Mutex<Outbox>,
    stop: AtomicBool,
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // The outbox holds plain values that are always consistent: a panic elsewhere while it
        // was locked cannot have left it half-written, so a poisoned lock is still usable.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This node's mailbox and latest heartbeat, as the next write will carry them.
#[derive(Clone, Debug)]
struct Outbox {
    hb: Heartbeat,
    /// A heartbeat was handed in since the last write.
    fresh: bool,
    /// The latest lease request: to whom, stamp.
    request: Option<(NodeId, u64)>,
    /// The stamp of this run's first lease request: older grants are not for this run.
    first_request_us: Option<u64>,
    /// The latest grant to each node.
    grants: Vec<Option<Grant>>,
}

/// The IO thread's state.
struct Worker {
    cfg: DiskPathConfig,
    dev: Device,
    shared: Arc<Shared>,
    inbound: UnboundedSender<Inbound>,
    /// This node's slot, encoded.
    mine: AlignedBuf,
    /// Every slot, as read.
    all: AlignedBuf,
    seq: u64,
    beats: u64,
    /// What every peer's slot said so far, and what is news.
    reader: SlotReader,
    /// The last IO error kind reported, so a failing disk is logged on change, not per tick.
    io_fault: Option<io::ErrorKind>,
}

impl Worker {
    /// The first read, before the thread runs: IO errors here fail `start`. Continues this
    /// node's own counters from its old slot (a restarted node counts on, so its sequence
    /// never goes back) and takes every peer's record as the baseline.
    fn baseline(
        cfg: DiskPathConfig,
        dev: Device,
        inbound: UnboundedSender<Inbound>,
    ) -> Result<Worker, DiskError> {
        let oom = || dev.io_err("allocate", io::ErrorKind::OutOfMemory.into());
        let mine = AlignedBuf::new(cfg.slot_bytes as usize).ok_or_else(oom)?;
        let mut all = AlignedBuf::new(cfg.nodes * cfg.slot_bytes as usize).ok_or_else(oom)?;
        dev.read_at(&mut all, HEADER_BYTES)
            .map_err(|e| dev.io_err("reading the slots", e))?;
        let slot_bytes = cfg.slot_bytes as usize;
        let (mut seq, mut beats) = (0, 0);
        if let Some(Ok(old)) = slot_in(all.as_slice(), cfg.me, slot_bytes)
            .map(|b| Record::decode(b, cfg.me, cfg.nodes))
        {
            (seq, beats) = (old.seq, old.beats);
            tracing::info!(device = %cfg.device.display(), node = cfg.me,
                old_incarnation = old.incarnation, seq = old.seq,
                "disk path: rejoining with this node's old slot");
        }
        let (reader, notes) =
            SlotReader::baseline(cfg.me, cfg.path, cfg.nodes, slot_bytes, all.as_slice());
        log_notes(&cfg.device, &notes);
        let shared = Arc::new(Shared {
            outbox: Mutex::new(Outbox {
                hb: Heartbeat {
                    incarnation: cfg.incarnation,
                    digest: cfg.digest,
                },
                fresh: false,
                request: None,
                first_request_us: None,
                grants: vec![None; cfg.nodes],
            }),
            stop: AtomicBool::new(false),
        });
        Ok(Worker {
            cfg,
            dev,
            shared,
            inbound,
            mine,
            all,
            seq,
            beats,
            reader,
            io_fault: None,
        })
    }

    fn run(mut self) {
        let interval = Duration::from_millis(u64::from(self.cfg.interval_ms));
        let mut next = Instant::now();
        while !self.stopping() {
            let now = Instant::now();
            if now >= next {
                self.tick();
                // Skip missed ticks after a stall rather than writing in a burst.
                next = (next + interval).max(now);
                continue;
            }
            thread::park_timeout(next - now);
        }
        tracing::debug!(device = %self.cfg.device.display(), "disk path IO thread stopped");
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// One interval: write this node's slot, then read and deliver from every other.
    fn tick(&mut self) {
        let out = {
            let mut out = self.shared.outbox();
            let snapshot = out.clone();
            out.fresh = false;
            snapshot
        };
        self.seq += 1;
        if out.fresh {
            self.beats += 1;
        }
        let (request_to, request_stamp_us) = out.request.unwrap_or((0, 0));
        let rec = Record {
            node: self.cfg.me,
            incarnation: out.hb.incarnation,
            digest: out.hb.digest,
            seq: self.seq,
            beats: self.beats,
            written_us: monotonic_us(),
            request_to,
            request_stamp_us,
            grants: out.grants,
        };
        rec.encode(self.mine.as_mut_slice());
        let offset = slot_offset(self.cfg.me, self.cfg.slot_bytes);
        let wrote = self.dev.write_at(&self.mine, offset);
        self.note_io("writing this node's slot", wrote);
        if self.stopping() {
            return;
        }
        let read = self.dev.read_at(&mut self.all, HEADER_BYTES);
        if self.note_io("reading the slots", read) {
            let round = self.reader.read(self.all.as_slice(), out.first_request_us);
            log_notes(&self.cfg.device, &round.notes);
            self.deliver(round.news);
        }
    }

    /// Logs an IO failure when it starts or changes, and recovery; true if `res` is Ok.
    fn note_io(&mut self, op: &'static str, res: io::Result<()>) -> bool {
        match res {
            Ok(()) => {
                if self.io_fault.take().is_some() {
                    tracing::info!(device = %self.cfg.device.display(), op,
                        "disk path IO works again");
                }
                true
            }
            Err(e) => {
                if self.io_fault != Some(e.kind()) {
                    tracing::warn!(device = %self.cfg.device.display(), op, error = %e,
                        "disk path IO failed; peers will see this node go silent on disk");
                    self.io_fault = Some(e.kind());
                }
                false
            }
        }
    }

    fn deliver(&mut self, news: Vec<Inbound>) {
        for item in news {
            if self.inbound.send(item).is_err() {
                tracing::info!(device = %self.cfg.device.display(),
                    "disk path: the daemon stopped listening; stopping the IO thread");
                self.shared.stop.store(true, Ordering::Release);
                return;
            }
        }
    }
}

/// Logs the slots whose readability changed: a blank slot at debug (a node that has not
/// written yet), any other fault as a warning, a slot readable again as info.
fn log_notes(device: &Path, notes: &[SlotNote]) {
    for &note in notes {
        match note {
            SlotNote::Unreadable {
                slot,
                fault: fault @ SlotFault::Blank,
            } => {
                tracing::debug!(device = %device.display(), slot,
                    reason = fault.reason(), "disk path slot not yet written");
            }
            SlotNote::Unreadable { slot, fault } => {
                tracing::warn!(device = %device.display(), slot,
                    reason = fault.reason(), detail = ?fault, "disk path slot ignored");
            }
            SlotNote::Readable { slot } => {
                tracing::info!(device = %device.display(), slot,
                    "disk path slot readable again");
            }
        }
    }
}

/// CLOCK_MONOTONIC in µs (written into the slot for diagnostics).
fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1000)
}
