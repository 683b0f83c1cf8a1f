//! The disk heartbeat path (design.md §6): a slot per node on a shared block device or file.
//!
//! Every node writes its own slot every `interval_ms` and reads every other slot. The failure
//! detector treats the disk like any network path, and the lease messages
//! ([`Message::LeaseRequest`], [`Message::LeaseGrant`]) ride along in a small mailbox in each
//! slot, so a node alive on disk but silent on every network is *partitioned, not dead*: it
//! keeps its lease while the leader still grants it through the disk, and loses it otherwise.
//! The consensus log never uses the disk.
//!
//! # On-disk layout (version [`LAYOUT_VERSION`], little-endian)
//!
//! ```text
//! offset 0              header block, HEADER_BYTES (4096) long
//!   0   magic "ETRNDISK"        8 bytes
//!   8   layout version          u32
//!  12   slot_bytes              u32
//!  16   node count              u32
//!  20   cluster name length     u32
//!  24   FNV-1a 64 of the name   u64   (compared; the name below is for error messages)
//!  32   cluster name            64 bytes, zero padded, cut at 64
//!  96   CRC-32 of bytes 0..96   u32   (the rest of the block is zero)
//! offset HEADER_BYTES + n × slot_bytes: the slot of node n (NodeId order), slot_bytes long
//!   0   magic "ETRNSLOT"        8 bytes
//!   8   node id                 u16   (must equal the slot's index)
//!  10   zero                    u16
//!  12   grant entries           u32   (= node count)
//!  16   incarnation             u64   (from the latest heartbeat)
//!  24   config digest           u64   (from the latest heartbeat)
//!  32   sequence                u64   bumped on every write
//!  40   beats                   u64   bumped on a write that carries a fresh heartbeat
//!  48   writer's clock          u64   CLOCK_MONOTONIC in µs, for diagnostics only
//!  56   lease request to        u16   (the leader the request is for)
//!  58   zero                    6 bytes
//!  64   lease request stamp     u64   (0 = none)
//!  72   grants, one per node    32 bytes each: term, echo_us, valid_us, commit (all 0 = none)
//!  72 + 32 × nodes: CRC-32 of everything before it, u32; the rest of the slot is zero
//! ```
//!
//! # Sequence and beats
//!
//! The IO thread writes every interval, bumping the sequence, but a peer counts a heartbeat
//! only when *beats* advanced: a write carries a fresh beat only if the node core handed a
//! [`Heartbeat`] in through [`DiskPath::heartbeat`] since the previous write. A node whose core
//! is wedged therefore goes silent on disk as on the network, even though its IO thread still
//! runs; the disk never vouches for a node that has stopped deciding.
//!
//! # What is delivered
//!
//! The records found when the path starts are a baseline: they deliver nothing, so an old
//! record left by a node that died long ago, or a grant meant for a previous incarnation of
//! this node, is never mistaken for news (a slot first seen valid later was written since,
//! and all of it is news). After that, per peer: a heartbeat when its beats
//! advanced (or it restarted with a new incarnation and has beaten), a `LeaseRequest` when it
//! holds a new request stamp addressed to this node, a `LeaseGrant` when its grant for this
//! node changed and answers a request this node made in this run. A slot that stops changing
//! delivers nothing; the failure detector times it out.
//!
//! # IO
//!
//! The device is opened with `O_DIRECT | O_DSYNC` and read and written in whole blocks from
//! buffers aligned to [`ALIGN`]. Where the kernel refuses direct IO (tmpfs, some filesystems)
//! the path falls back to buffered IO with `fdatasync` after each write and
//! `POSIX_FADV_DONTNEED` before each read (so a read goes to the device rather than a stale
//! page cache), and logs that it did. Each write of a slot is one `pwrite`; the slots are read
//! with one `pread`. All blocking IO runs on one dedicated thread per disk path: a stalled
//! disk never blocks the async runtime or the network heartbeats.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::directio::AlignedBuf;
use crate::ondisk::{fnv1a64, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seal, sealed};
use crate::policy::lease::Grant;
use crate::policy::message::{Heartbeat, Message};
use crate::policy::spec::{NodeId, PathId};

use super::Inbound;

/// The version of the on-disk layout this code reads and writes.
pub const LAYOUT_VERSION: u32 = 1;
/// The length of the header block; the slots start at this offset.
pub const HEADER_BYTES: u64 = 4096;
/// The alignment of every IO buffer (and of the slot area), as `O_DIRECT` requires.
pub const ALIGN: usize = crate::directio::ALIGN;
/// The most nodes × slot_bytes a disk path may span (64 MiB): a bound on the buffer the IO
/// thread reads the slots into.
pub const SLOT_AREA_BYTES_MAX: u64 = 64 << 20;

const HEADER_MAGIC: [u8; 8] = *b"ETRNDISK";
const SLOT_MAGIC: [u8; 8] = *b"ETRNSLOT";
const NAME_BYTES: usize = 64;
const HEADER_CRC_AT: usize = 96;
const RECORD_FIXED_BYTES: usize = 72;
const GRANT_BYTES: usize = 32;

/// The byte offset of node `node`'s slot on a device with slots of `slot_bytes`.
pub fn slot_offset(node: NodeId, slot_bytes: u32) -> u64 {
    HEADER_BYTES + u64::from(node) * u64::from(slot_bytes)
}

/// The bytes a slot record of a cluster of `nodes` nodes takes (CRC included); `slot_bytes`
/// must be at least this.
pub fn record_bytes(nodes: usize) -> usize {
    RECORD_FIXED_BYTES + GRANT_BYTES * nodes + 4
}

/// The bytes a device must have for `nodes` slots of `slot_bytes`.
pub fn device_bytes(nodes: usize, slot_bytes: u32) -> u64 {
    HEADER_BYTES + nodes as u64 * u64::from(slot_bytes)
}

/// What a disk path needs to know; the daemon fills it from the resolved config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskPathConfig {
    /// The disk path's index among the heartbeat paths (the disk path comes after the network
    /// paths); heartbeats are delivered with it.
    pub path: PathId,
    /// The shared block device or file (`device` of the `[[path]]`). It must exist.
    pub device: PathBuf,
    /// Bytes per node slot, a multiple of 512 (`slot_bytes`, default 4096).
    pub slot_bytes: u32,
    /// Time between two writes of this node's slot (and two reads of the others).
    pub interval_ms: u32,
    /// The cluster's name: a device formatted for another cluster is refused.
    pub cluster: String,
    /// This node: the slot it writes.
    pub me: NodeId,
    /// How many slots (all nodes of the config, the witness included, in NodeId order).
    pub nodes: usize,
    /// This daemon's incarnation, written until the first [`DiskPath::heartbeat`].
    pub incarnation: u64,
    /// This node's config digest, written until the first [`DiskPath::heartbeat`].
    pub digest: u64,
}

/// Why a disk path could not be formatted or started. Each says which device, what was wrong
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The settings cannot work (checked before the device is touched).
    #[error("disk path {}: {why}; {fix}", device.display())]
    Config {
        /// The device.
        device: PathBuf,
        /// What is wrong.
        why: String,
        /// What to do.
        fix: &'static str,
    },
    /// The device could not be opened.
    #[error("disk path {}: cannot open the device: {source}; check that it exists on this \
             node (it is never created) and that eterned may read and write it", device.display())]
    Open {
        /// The device.
        device: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A read, write or sync failed while opening or formatting.
    #[error("disk path {}: {op} failed: {source}", device.display())]
    Io {
        /// The device.
        device: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The header block holds something that is not a disk-path header.
    #[error("disk path {}: the first {HEADER_BYTES} bytes are neither zero nor an EterneCluster \
             disk-path header, so the device may hold someone's data and is left alone; check \
             `device` in cluster.toml, and if the device really is free, zero its first \
             {HEADER_BYTES} bytes or format it", device.display())]
    Foreign {
        /// The device.
        device: PathBuf,
    },
    /// The header has the magic but a bad CRC.
    #[error("disk path {}: the header is damaged (bad CRC); stop eterned on every node and \
             format the disk path again", device.display())]
    CorruptHeader {
        /// The device.
        device: PathBuf,
    },
    /// The header was written for another cluster, layout or node count.
    #[error("disk path {}: formatted with {field} = {found}, but this node's config says \
             {expected}; if cluster.toml changed on purpose, stop eterned on every node and \
             format the disk path again, otherwise point `device` at this cluster's disk",
             device.display())]
    Mismatch {
        /// The device.
        device: PathBuf,
        /// Which header field differs.
        field: &'static str,
        /// What the header says.
        found: String,
        /// What the config says.
        expected: String,
    },
    /// The device is smaller than the header and the slots.
    #[error("disk path {}: {size} bytes, too small for the header and {nodes} slots of \
             {slot_bytes} bytes ({needed} bytes needed); use a larger device or smaller \
             slot_bytes", device.display())]
    TooSmall {
        /// The device.
        device: PathBuf,
        /// Its size.
        size: u64,
        /// The node count.
        nodes: usize,
        /// The slot size.
        slot_bytes: u32,
        /// The size needed.
        needed: u64,
    },
    /// The IO thread could not be spawned.
    #[error("disk path {}: cannot start its IO thread: {source}", device.display())]
    Thread {
        /// The device.
        device: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A running disk heartbeat path: its IO thread and the mailbox the thread writes from.
pub struct DiskPath {
    /// Shared with the IO thread: what to write next, and the stop flag.
    shared: Arc<Shared>,
    /// The IO thread; `None` once joined.
    thread: Option<JoinHandle<()>>,
    /// Signalled by the IO thread as it exits, so that `stop` can wait for it with a bound.
    done: mpsc::Receiver<()>,
    /// Direct or buffered IO, for status and tests.
    mode: IoMode,
    /// This node (grants addressed to it are not stored).
    me: NodeId,
    /// The node count (grants to nodes past it are dropped).
    nodes: usize,
    /// The interval, to bound how long `stop` waits.
    interval_ms: u32,
    /// The device, for log lines.
    device: PathBuf,
}

impl DiskPath {
    /// Formats `device` for `cluster` with `nodes` slots of `slot_bytes`: zeroes every slot,
    /// then writes the header (so a format cut short leaves a blank header, not a valid one).
    /// Whatever the device held is overwritten: only for an operator or for tests; `start`
    /// formats a blank device itself and never erases a formatted one.
    pub fn format(
        device: &Path,
        cluster: &str,
        nodes: usize,
        slot_bytes: u32,
    ) -> Result<(), DiskError> {
        check_layout(device, cluster, nodes, slot_bytes)?;
        let dev = Device::open(device, true)?;
        dev.format(cluster, nodes, slot_bytes)
    }

    /// Opens the device, formats it if its header is blank or checks the header against the
    /// config, reads the slots once as a baseline, and spawns the IO thread. Blocking: call it
    /// before the async runtime starts or from `spawn_blocking`.
    pub fn start(
        cfg: DiskPathConfig,
        inbound: UnboundedSender<Inbound>,
    ) -> Result<DiskPath, DiskError> {
        DiskPath::start_with(cfg, inbound, true)
    }

    /// `start`, with direct IO not even tried when `try_direct` is false (so that tests can
    /// run the buffered fallback on filesystems that accept O_DIRECT).
    fn start_with(
        cfg: DiskPathConfig,
        inbound: UnboundedSender<Inbound>,
        try_direct: bool,
    ) -> Result<DiskPath, DiskError> {
        check_config(&cfg)?;
        let dev = Device::open(&cfg.device, try_direct)?;
        match dev.read_header()? {
            HeaderState::Blank => {
                tracing::info!(device = %cfg.device.display(), cluster = %cfg.cluster,
                    nodes = cfg.nodes, slot_bytes = cfg.slot_bytes,
                    "disk path header is blank: formatting");
                dev.format(&cfg.cluster, cfg.nodes, cfg.slot_bytes)?;
            }
            HeaderState::Formatted(h) => h.check(&cfg)?,
        }
        dev.check_size(cfg.nodes, cfg.slot_bytes)?;
        let mode = dev.mode;
        let mut worker = Worker::new(cfg.clone(), dev, inbound)?;
        worker.baseline()?;
        let shared = Arc::clone(&worker.shared);
        let (done_tx, done) = mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name(format!("disk-path-{}", cfg.path))
            .spawn(move || {
                worker.run();
                // The receiver may be gone (a DiskPath dropped without stop): nothing to do.
                let _ = done_tx.send(());
            })
            .map_err(|source| DiskError::Thread {
                device: cfg.device.clone(),
                source,
            })?;
        Ok(DiskPath {
            mode,
            shared,
            thread: Some(thread),
            done,
            me: cfg.me,
            nodes: cfg.nodes,
            interval_ms: cfg.interval_ms,
            device: cfg.device,
        })
    }

    /// Whether the device is used with direct IO or with the buffered fallback.
    pub fn io_mode(&self) -> IoMode {
        self.mode
    }

    /// What the next write carries: this node's incarnation and config digest, and one fresh
    /// beat. Call it for every `Effect::Heartbeat` on the disk path; when the calls stop, the
    /// slot stops beating and peers time this node out on the disk path.
    pub fn heartbeat(&self, hb: Heartbeat) {
        let mut out = self.shared.outbox();
        out.hb = hb;
        out.fresh = true;
    }

    /// Puts a lease message into this node's mailbox for the next write: a `LeaseRequest`
    /// becomes this node's request stamp addressed to `to` (the leader), a `LeaseGrant` this
    /// node's grant for `to`. Anything else is ignored: the disk carries no consensus log.
    pub fn send(&self, to: NodeId, msg: &Message) {
        if usize::from(to) >= self.nodes || to == self.me {
            tracing::debug!(device = %self.device.display(), to, "disk path: no slot to send to");
            return;
        }
        let mut out = self.shared.outbox();
        match msg {
            Message::LeaseRequest { stamp_us } => {
                out.request = Some((to, *stamp_us));
                out.first_request_us.get_or_insert(*stamp_us);
            }
            Message::LeaseGrant(grant) => out.grants[usize::from(to)] = Some(*grant),
            Message::Raft { .. } | Message::Report { .. } | Message::Admin(_) => {}
        }
    }

    /// Stops the IO thread and joins it. A thread stuck in a disk read or write is waited
    /// for at most a few intervals (at least two seconds), then left behind with a warning:
    /// shutdown never hangs on a dead disk.
    pub fn stop(mut self) {
        self.signal_stop();
        let wait =
            Duration::from_millis(u64::from(self.interval_ms) * 4).max(Duration::from_secs(2));
        match self.done.recv_timeout(wait) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    if t.join().is_err() {
                        tracing::error!(device = %self.device.display(),
                            "disk path IO thread panicked");
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(device = %self.device.display(), waited_ms = wait.as_millis() as u64,
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

impl Drop for DiskPath {
    /// A disk path dropped without [`DiskPath::stop`] still tells its thread to end.
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

fn check_layout(
    device: &Path,
    cluster: &str,
    nodes: usize,
    slot_bytes: u32,
) -> Result<(), DiskError> {
    let bad = |why: String, fix: &'static str| {
        Err(DiskError::Config {
            device: device.to_path_buf(),
            why,
            fix,
        })
    };
    if cluster.is_empty() {
        return bad("the cluster name is empty".into(), "set [cluster] name");
    }
    if slot_bytes == 0 || slot_bytes % 512 != 0 {
        return bad(
            format!("slot_bytes = {slot_bytes} is not a positive multiple of 512"),
            "use 4096 (the default)",
        );
    }
    if nodes == 0 || nodes > usize::from(NodeId::MAX) {
        return bad(
            format!("{nodes} nodes"),
            "give the disk path 1 to 65535 nodes",
        );
    }
    if record_bytes(nodes) > slot_bytes as usize {
        return bad(
            format!(
                "a slot of {slot_bytes} bytes cannot hold the record of a {nodes}-node cluster \
                 ({} bytes)",
                record_bytes(nodes)
            ),
            "raise slot_bytes (4096 holds up to 125 nodes)",
        );
    }
    if nodes as u64 * u64::from(slot_bytes) > SLOT_AREA_BYTES_MAX {
        return bad(
            format!("{nodes} slots of {slot_bytes} bytes exceed {SLOT_AREA_BYTES_MAX} bytes"),
            "lower slot_bytes",
        );
    }
    Ok(())
}

fn check_config(cfg: &DiskPathConfig) -> Result<(), DiskError> {
    check_layout(&cfg.device, &cfg.cluster, cfg.nodes, cfg.slot_bytes)?;
    let bad = |why: String, fix: &'static str| {
        Err(DiskError::Config {
            device: cfg.device.clone(),
            why,
            fix,
        })
    };
    if usize::from(cfg.me) >= cfg.nodes {
        return bad(
            format!("this node is node {} of {}", cfg.me, cfg.nodes),
            "pass this node's index in the config's node order",
        );
    }
    if cfg.interval_ms == 0 {
        return bad("interval_ms = 0".into(), "use 200 (the disk default)");
    }
    Ok(())
}

pub use crate::directio::IoMode;

/// The open device and how it is used.
struct Device {
    file: File,
    path: PathBuf,
    mode: IoMode,
}

impl Device {
    /// Opens `path` for direct IO, or buffered IO where direct IO is refused (at open, or on
    /// the first read of the header block, as some filesystems only refuse at IO time).
    fn open(path: &Path, try_direct: bool) -> Result<Device, DiskError> {
        let open = |flags: i32| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(flags)
                .open(path)
        };
        let direct = if try_direct {
            open(libc::O_DIRECT | libc::O_DSYNC)
        } else {
            Err(io::Error::other("not tried"))
        };
        let why = match direct {
            Ok(file) => {
                let dev = Device {
                    file,
                    path: path.to_path_buf(),
                    mode: IoMode::Direct,
                };
                let mut probe = AlignedBuf::new(HEADER_BYTES as usize)
                    .ok_or_else(|| dev.io_err("allocate", io::ErrorKind::OutOfMemory.into()))?;
                match dev.read_at(&mut probe, 0) {
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => e,
                    // Anything else (a short file included) is judged by the header check.
                    _ => {
                        tracing::info!(device = %path.display(), io = "direct",
                            "disk path opened with O_DIRECT|O_DSYNC");
                        return Ok(dev);
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) || !try_direct => e,
            Err(source) => {
                return Err(DiskError::Open {
                    device: path.to_path_buf(),
                    source,
                })
            }
        };
        let file = open(0).map_err(|source| DiskError::Open {
            device: path.to_path_buf(),
            source,
        })?;
        tracing::warn!(device = %path.display(), io = "buffered", direct_error = %why,
            "disk path: O_DIRECT refused here; using buffered IO with fdatasync");
        Ok(Device {
            file,
            path: path.to_path_buf(),
            mode: IoMode::Buffered,
        })
    }

    fn io_err(&self, op: &'static str, source: io::Error) -> DiskError {
        DiskError::Io {
            device: self.path.clone(),
            op,
            source,
        }
    }

    /// One `pread` of the whole buffer at `offset`; a short read is an error.
    fn read_at(&self, buf: &mut AlignedBuf, offset: u64) -> io::Result<()> {
        crate::directio::read_at(&self.file, self.mode, buf, offset)
    }

    /// One `pwrite` of the whole buffer at `offset`, durable before it returns.
    fn write_at(&self, buf: &AlignedBuf, offset: u64) -> io::Result<()> {
        crate::directio::write_at(&self.file, self.mode, buf, offset)
    }

    fn read_header(&self) -> Result<HeaderState, DiskError> {
        let mut buf = AlignedBuf::new(HEADER_BYTES as usize)
            .ok_or_else(|| self.io_err("allocate", io::ErrorKind::OutOfMemory.into()))?;
        match self.read_at(&mut buf, 0) {
            Ok(()) => {}
            // A file shorter than the header block (a fresh, empty file) reads as blank.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(HeaderState::Blank),
            Err(e) => return Err(self.io_err("reading the header", e)),
        }
        Header::decode(&self.path, buf.as_slice())
    }

    /// The device's size: the file length, or the block device's size.
    fn size(&self) -> Result<u64, DiskError> {
        (&self.file)
            .seek(SeekFrom::End(0))
            .map_err(|e| self.io_err("finding the size", e))
    }

    fn check_size(&self, nodes: usize, slot_bytes: u32) -> Result<(), DiskError> {
        let size = self.size()?;
        let needed = device_bytes(nodes, slot_bytes);
        if size < needed {
            return Err(DiskError::TooSmall {
                device: self.path.clone(),
                size,
                nodes,
                slot_bytes,
                needed,
            });
        }
        Ok(())
    }

    /// Zeroes the slots, then writes the header. A regular file is extended as needed.
    fn format(&self, cluster: &str, nodes: usize, slot_bytes: u32) -> Result<(), DiskError> {
        let needed = device_bytes(nodes, slot_bytes);
        let meta = self
            .file
            .metadata()
            .map_err(|e| self.io_err("reading metadata", e))?;
        if meta.file_type().is_file() && self.size()? < needed {
            self.file
                .set_len(needed)
                .map_err(|e| self.io_err("extending the file", e))?;
        }
        self.check_size(nodes, slot_bytes)?;
        let oom = || self.io_err("allocate", io::ErrorKind::OutOfMemory.into());
        let slots = AlignedBuf::new(nodes * slot_bytes as usize).ok_or_else(oom)?;
        self.write_at(&slots, HEADER_BYTES)
            .map_err(|e| self.io_err("zeroing the slots", e))?;
        let mut head = AlignedBuf::new(HEADER_BYTES as usize).ok_or_else(oom)?;
        Header::encode(head.as_mut_slice(), cluster, nodes, slot_bytes);
        self.write_at(&head, 0)
            .map_err(|e| self.io_err("writing the header", e))?;
        tracing::info!(device = %self.path.display(), cluster, nodes, slot_bytes,
            version = LAYOUT_VERSION, "disk path formatted");
        Ok(())
    }
}

/// What the header block holds.
enum HeaderState {
    /// All zero: an unformatted device.
    Blank,
    /// A valid header.
    Formatted(Header),
}

/// A decoded header.
struct Header {
    version: u32,
    slot_bytes: u32,
    nodes: u32,
    cluster_hash: u64,
    /// The name as stored (cut at 64 bytes), for error messages.
    cluster: String,
}

impl Header {
    fn encode(buf: &mut [u8], cluster: &str, nodes: usize, slot_bytes: u32) {
        buf.fill(0);
        buf[0..8].copy_from_slice(&HEADER_MAGIC);
        put_u32(buf, 8, LAYOUT_VERSION);
        put_u32(buf, 12, slot_bytes);
        put_u32(buf, 16, nodes as u32);
        put_u32(buf, 20, cluster.len() as u32);
        put_u64(buf, 24, fnv1a64(cluster.as_bytes()));
        let name = &cluster.as_bytes()[..cluster.len().min(NAME_BYTES)];
        buf[32..32 + name.len()].copy_from_slice(name);
        seal(buf, HEADER_CRC_AT);
    }

    fn decode(device: &Path, buf: &[u8]) -> Result<HeaderState, DiskError> {
        if buf.iter().all(|&b| b == 0) {
            return Ok(HeaderState::Blank);
        }
        if buf.get(0..8) != Some(&HEADER_MAGIC[..]) {
            return Err(DiskError::Foreign {
                device: device.to_path_buf(),
            });
        }
        let corrupt = || DiskError::CorruptHeader {
            device: device.to_path_buf(),
        };
        if !sealed(buf, HEADER_CRC_AT) {
            return Err(corrupt());
        }
        let name = buf.get(32..32 + NAME_BYTES).ok_or_else(corrupt)?;
        let name_len = name.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
        Ok(HeaderState::Formatted(Header {
            version: get_u32(buf, 8).ok_or_else(corrupt)?,
            slot_bytes: get_u32(buf, 12).ok_or_else(corrupt)?,
            nodes: get_u32(buf, 16).ok_or_else(corrupt)?,
            cluster_hash: get_u64(buf, 24).ok_or_else(corrupt)?,
            cluster: String::from_utf8_lossy(&name[..name_len]).into_owned(),
        }))
    }

    /// Whether this header fits the config; the first difference is the error.
    fn check(&self, cfg: &DiskPathConfig) -> Result<(), DiskError> {
        let cluster = cfg.cluster.as_str();
        let mismatch = |field, found: String, expected: String| {
            Err(DiskError::Mismatch {
                device: cfg.device.clone(),
                field,
                found,
                expected,
            })
        };
        if self.version != LAYOUT_VERSION {
            return mismatch(
                "layout version",
                self.version.to_string(),
                LAYOUT_VERSION.to_string(),
            );
        }
        if self.cluster_hash != fnv1a64(cluster.as_bytes()) {
            return mismatch(
                "cluster",
                format!("{:?}", self.cluster),
                format!("{cluster:?}"),
            );
        }
        if self.slot_bytes != cfg.slot_bytes {
            return mismatch(
                "slot_bytes",
                self.slot_bytes.to_string(),
                cfg.slot_bytes.to_string(),
            );
        }
        if self.nodes as usize != cfg.nodes {
            return mismatch("node count", self.nodes.to_string(), cfg.nodes.to_string());
        }
        Ok(())
    }
}

/// One node's slot record.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    node: NodeId,
    incarnation: u64,
    digest: u64,
    seq: u64,
    beats: u64,
    written_us: u64,
    /// The latest lease request: to whom, stamp (0 = none).
    request_to: NodeId,
    request_stamp_us: u64,
    /// The latest grant to each node.
    grants: Vec<Option<Grant>>,
}

/// Why a slot's bytes are not a usable record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotFault {
    /// All zero: the node never wrote (or the device was just formatted).
    Blank,
    /// No slot magic.
    BadMagic,
    /// The CRC does not match: a torn write or damaged bytes.
    BadCrc,
    /// The record names another node than its slot.
    WrongNode(NodeId),
    /// The record was written for another node count.
    WrongCount(u32),
}

impl SlotFault {
    fn reason(self) -> &'static str {
        match self {
            SlotFault::Blank => "never written",
            SlotFault::BadMagic => "no slot magic",
            SlotFault::BadCrc => "bad CRC (torn write or damaged)",
            SlotFault::WrongNode(_) => "record of another node",
            SlotFault::WrongCount(_) => "record for another node count",
        }
    }
}

impl Record {
    fn encode(&self, buf: &mut [u8]) {
        buf.fill(0);
        buf[0..8].copy_from_slice(&SLOT_MAGIC);
        put_u16(buf, 8, self.node);
        put_u32(buf, 12, self.grants.len() as u32);
        put_u64(buf, 16, self.incarnation);
        put_u64(buf, 24, self.digest);
        put_u64(buf, 32, self.seq);
        put_u64(buf, 40, self.beats);
        put_u64(buf, 48, self.written_us);
        put_u16(buf, 56, self.request_to);
        put_u64(buf, 64, self.request_stamp_us);
        for (i, g) in self.grants.iter().enumerate() {
            let at = RECORD_FIXED_BYTES + i * GRANT_BYTES;
            let g = g.unwrap_or(ZERO_GRANT);
            put_u64(buf, at, g.term);
            put_u64(buf, at + 8, g.echo_us);
            put_u64(buf, at + 16, g.valid_us);
            put_u64(buf, at + 24, g.commit);
        }
        seal(buf, record_bytes(self.grants.len()) - 4);
    }

    /// Decodes the record in `buf`, the slot of `slot` in a cluster of `nodes` nodes.
    fn decode(buf: &[u8], slot: NodeId, nodes: usize) -> Result<Record, SlotFault> {
        let head = buf.get(..RECORD_FIXED_BYTES).ok_or(SlotFault::BadMagic)?;
        if head[..8] != SLOT_MAGIC {
            return Err(if buf.iter().all(|&b| b == 0) {
                SlotFault::Blank
            } else {
                SlotFault::BadMagic
            });
        }
        let count = get_u32(buf, 12).ok_or(SlotFault::BadMagic)?;
        if count as usize != nodes {
            return Err(SlotFault::WrongCount(count));
        }
        if !sealed(buf, record_bytes(nodes) - 4) {
            return Err(SlotFault::BadCrc);
        }
        let node = get_u16(buf, 8).ok_or(SlotFault::BadCrc)?;
        if node != slot {
            return Err(SlotFault::WrongNode(node));
        }
        let u64_at = |at| get_u64(buf, at).ok_or(SlotFault::BadCrc);
        let mut grants = Vec::with_capacity(nodes);
        for i in 0..nodes {
            let at = RECORD_FIXED_BYTES + i * GRANT_BYTES;
            let g = Grant {
                term: u64_at(at)?,
                echo_us: u64_at(at + 8)?,
                valid_us: u64_at(at + 16)?,
                commit: u64_at(at + 24)?,
            };
            grants.push((g != ZERO_GRANT).then_some(g));
        }
        Ok(Record {
            node,
            incarnation: u64_at(16)?,
            digest: u64_at(24)?,
            seq: u64_at(32)?,
            beats: u64_at(40)?,
            written_us: u64_at(48)?,
            request_to: get_u16(buf, 56).ok_or(SlotFault::BadCrc)?,
            request_stamp_us: u64_at(64)?,
            grants,
        })
    }
}

const ZERO_GRANT: Grant = Grant {
    term: 0,
    echo_us: 0,
    valid_us: 0,
    commit: 0,
};

/// What this node last saw of a peer's slot.
#[derive(Clone, Debug, Default)]
struct PeerView {
    /// The last valid record's fields that decide what is news; `None` until the baseline.
    seen: Option<Seen>,
    /// The last fault reported for the slot, so a broken slot is logged once, not per read.
    fault: Option<SlotFault>,
}

#[derive(Clone, Debug)]
struct Seen {
    incarnation: u64,
    seq: u64,
    beats: u64,
    request_to: NodeId,
    request_stamp_us: u64,
    grant_to_me: Option<Grant>,
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
    peers: Vec<PeerView>,
    /// The last IO error kind reported, so a failing disk is logged on change, not per tick.
    io_fault: Option<io::ErrorKind>,
    /// The baseline was read: a slot first seen valid from now on was written after we
    /// started, and is news.
    started: bool,
}

impl Worker {
    fn new(
        cfg: DiskPathConfig,
        dev: Device,
        inbound: UnboundedSender<Inbound>,
    ) -> Result<Worker, DiskError> {
        let oom = || dev.io_err("allocate", io::ErrorKind::OutOfMemory.into());
        let mine = AlignedBuf::new(cfg.slot_bytes as usize).ok_or_else(oom)?;
        let all = AlignedBuf::new(cfg.nodes * cfg.slot_bytes as usize).ok_or_else(oom)?;
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
            peers: vec![PeerView::default(); cfg.nodes],
            cfg,
            dev,
            shared,
            inbound,
            mine,
            all,
            seq: 0,
            beats: 0,
            io_fault: None,
            started: false,
        })
    }

    /// The first read, before the thread runs: IO errors here fail `start`. Continues this
    /// node's own counters from its old slot (a restarted node counts on, so its sequence
    /// never goes back) and takes every peer's record as the baseline.
    fn baseline(&mut self) -> Result<(), DiskError> {
        self.dev
            .read_at(&mut self.all, HEADER_BYTES)
            .map_err(|e| self.dev.io_err("reading the slots", e))?;
        let slot_bytes = self.cfg.slot_bytes as usize;
        let me = usize::from(self.cfg.me);
        if let Some(Ok(old)) = self
            .all
            .as_slice()
            .get(me * slot_bytes..(me + 1) * slot_bytes)
            .map(|b| Record::decode(b, self.cfg.me, self.cfg.nodes))
        {
            self.seq = old.seq;
            self.beats = old.beats;
            tracing::info!(device = %self.cfg.device.display(), node = self.cfg.me,
                old_incarnation = old.incarnation, seq = old.seq,
                "disk path: rejoining with this node's old slot");
        }
        // Every view is empty, so this only records the baseline: nothing is news yet.
        let news = self.read_peers(None);
        debug_assert!(news.is_empty());
        self.started = true;
        Ok(())
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
            let news = self.read_peers(out.first_request_us);
            self.deliver(news);
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

    /// Decodes every peer's slot from the last read and returns what is news.
    fn read_peers(&mut self, first_request_us: Option<u64>) -> Vec<Inbound> {
        let mut news = Vec::new();
        for peer in 0..self.cfg.nodes as NodeId {
            if peer != self.cfg.me {
                self.read_peer(peer, first_request_us, &mut news);
            }
        }
        news
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

    /// Decodes `peer`'s slot and pushes what is news into `news`.
    fn read_peer(&mut self, peer: NodeId, first_request_us: Option<u64>, news: &mut Vec<Inbound>) {
        let slot_bytes = self.cfg.slot_bytes as usize;
        let at = usize::from(peer) * slot_bytes;
        let decoded = match self.all.as_slice().get(at..at + slot_bytes) {
            Some(bytes) => Record::decode(bytes, peer, self.cfg.nodes),
            None => Err(SlotFault::BadMagic),
        };
        let started = self.started;
        let view = &mut self.peers[usize::from(peer)];
        let rec = match decoded {
            Ok(rec) => rec,
            Err(fault) => {
                if view.fault != Some(fault) {
                    view.fault = Some(fault);
                    if fault == SlotFault::Blank {
                        tracing::debug!(device = %self.cfg.device.display(), slot = peer,
                            reason = fault.reason(), "disk path slot not yet written");
                    } else {
                        tracing::warn!(device = %self.cfg.device.display(), slot = peer,
                            reason = fault.reason(), detail = ?fault,
                            "disk path slot ignored");
                    }
                }
                return;
            }
        };
        if view.fault.take().is_some() {
            tracing::info!(device = %self.cfg.device.display(), slot = peer,
                "disk path slot readable again");
        }
        let me = usize::from(self.cfg.me);
        let grant_to_me = rec.grants.get(me).copied().flatten();
        let now = Seen {
            incarnation: rec.incarnation,
            seq: rec.seq,
            beats: rec.beats,
            request_to: rec.request_to,
            request_stamp_us: rec.request_stamp_us,
            grant_to_me,
        };
        let before = match view.seen.replace(now) {
            Some(before) => before,
            // Read before this node started: a baseline, not news (it may be years old).
            None if !started => return,
            // First written after this node started: everything in it is news.
            None => Seen {
                incarnation: rec.incarnation,
                seq: 0,
                beats: 0,
                request_to: 0,
                request_stamp_us: 0,
                grant_to_me: None,
            },
        };
        // A new incarnation, or a sequence that went back (a writer that restarted without a
        // new incarnation over a lost slot): a fresh start whose contents are all news.
        let restarted = rec.incarnation != before.incarnation || rec.seq < before.seq;
        if !restarted && rec.seq == before.seq {
            return; // not written since: silence
        }
        let path = self.cfg.path;
        let beat = if restarted {
            rec.beats > 0 && rec.beats != before.beats
        } else {
            rec.beats > before.beats
        };
        if beat {
            news.push(Inbound::Heartbeat {
                from: peer,
                path,
                hb: Heartbeat {
                    incarnation: rec.incarnation,
                    digest: rec.digest,
                },
            });
        }
        let new_request = rec.request_stamp_us != 0
            && (restarted
                || rec.request_stamp_us != before.request_stamp_us
                || rec.request_to != before.request_to);
        if new_request && usize::from(rec.request_to) == me {
            news.push(Inbound::Message {
                from: peer,
                path,
                msg: Message::LeaseRequest {
                    stamp_us: rec.request_stamp_us,
                },
            });
        }
        if let Some(g) = grant_to_me {
            let changed = restarted || Some(g) != before.grant_to_me;
            let for_this_run = first_request_us.is_some_and(|first| g.echo_us >= first);
            if changed && for_this_run {
                news.push(Inbound::Message {
                    from: peer,
                    path,
                    msg: Message::LeaseGrant(g),
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nodes: usize) -> Record {
        let mut grants = vec![None; nodes];
        grants[1] = Some(Grant {
            term: 3,
            echo_us: 1000,
            valid_us: 150_000,
            commit: 42,
        });
        Record {
            node: 0,
            incarnation: 7,
            digest: 0xdead_beef,
            seq: 9,
            beats: 8,
            written_us: 123,
            request_to: 2,
            request_stamp_us: 555,
            grants,
        }
    }

    #[test]
    fn record_round_trips() {
        let mut buf = vec![0u8; 512];
        let rec = record(3);
        rec.encode(&mut buf);
        assert_eq!(Record::decode(&buf, 0, 3), Ok(rec));
    }

    #[test]
    fn every_flipped_byte_of_a_record_is_caught() {
        let rec = record(3);
        let mut buf = vec![0u8; 512];
        rec.encode(&mut buf);
        for i in 0..record_bytes(3) {
            let mut bad = buf.clone();
            bad[i] ^= 0x5a;
            assert!(
                Record::decode(&bad, 0, 3).is_err(),
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn slot_faults_are_told_apart() {
        let zero = vec![0u8; 512];
        assert_eq!(Record::decode(&zero, 0, 3), Err(SlotFault::Blank));
        let mut buf = vec![0u8; 512];
        record(3).encode(&mut buf);
        assert_eq!(Record::decode(&buf, 1, 3), Err(SlotFault::WrongNode(0)));
        assert_eq!(Record::decode(&buf, 0, 4), Err(SlotFault::WrongCount(3)));
        assert_eq!(Record::decode(&buf[..10], 0, 3), Err(SlotFault::BadMagic));
    }

    #[test]
    fn header_round_trips_and_checks() {
        let mut buf = vec![0u8; HEADER_BYTES as usize];
        Header::encode(&mut buf, "prod", 3, 4096);
        let Ok(HeaderState::Formatted(h)) = Header::decode(Path::new("/d"), &buf) else {
            panic!("header did not decode");
        };
        assert_eq!(
            (h.version, h.slot_bytes, h.nodes),
            (LAYOUT_VERSION, 4096, 3)
        );
        assert_eq!(h.cluster, "prod");
        buf[20] ^= 1;
        assert!(matches!(
            Header::decode(Path::new("/d"), &buf),
            Err(DiskError::CorruptHeader { .. })
        ));
    }

    #[test]
    fn the_buffered_fallback_carries_heartbeats_and_leases() {
        let dev = tempfile::NamedTempFile::new().expect("a temporary file");
        let cfg = |me| DiskPathConfig {
            path: 1,
            device: dev.path().to_path_buf(),
            slot_bytes: 512,
            interval_ms: 5,
            cluster: "c".into(),
            me,
            nodes: 2,
            incarnation: 1,
            digest: 2,
        };
        let (tx0, mut rx0) = tokio::sync::mpsc::unbounded_channel();
        let (tx1, _rx1) = tokio::sync::mpsc::unbounded_channel();
        let start = |me, tx| DiskPath::start_with(cfg(me), tx, false).expect("start");
        let (a, b) = (start(0, tx0), start(1, tx1));
        assert_eq!(
            (a.io_mode(), b.io_mode()),
            (IoMode::Buffered, IoMode::Buffered)
        );
        b.send(0, &Message::LeaseRequest { stamp_us: 3 });
        let (mut beats, mut request) = (0, false);
        let deadline = Instant::now() + Duration::from_secs(20);
        for _ in 0..4000 {
            let hb = Heartbeat {
                incarnation: 1,
                digest: 2,
            };
            a.heartbeat(hb);
            b.heartbeat(hb);
            while let Ok(item) = rx0.try_recv() {
                match item {
                    Inbound::Heartbeat { from: 1, .. } => beats += 1,
                    Inbound::Message {
                        from: 1,
                        msg: Message::LeaseRequest { stamp_us: 3 },
                        ..
                    } => request = true,
                    other => panic!("unexpected {other:?}"),
                }
            }
            if (beats >= 3 && request) || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
        assert!(beats >= 3 && request, "beats {beats}, request {request}");
        a.stop();
        b.stop();
    }

    #[test]
    fn a_4096_byte_slot_holds_125_nodes() {
        assert!(record_bytes(125) <= 4096);
        assert!(record_bytes(126) > 4096);
    }
}
