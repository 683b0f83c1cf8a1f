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
//! after the slots, rounded up to ALIGN: the pill area, two blocks of 4096 bytes per node
//!   the node's pill (written by a node that fences it), then its acknowledgement (written
//!   by its own monitor); the records are in the `pill` module
//! ```
//!
//! Version 2 added the pill area; a device formatted by version 1 is refused with the
//! layout-version mismatch (format it again with every daemon stopped).
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
//!
//! # Parts
//!
//! - `layout`: the header and the slot record above, encoded and decoded, and the sizes and
//!   offsets ([`slot_offset`], [`record_bytes`], [`device_bytes`]).
//! - `device`: opening the device (direct or buffered, through [`crate::directio::open`]),
//!   whole-block reads and writes, reading and checking the header, formatting.
//! - `reader`: what counts as news: the rules above as a pure function of the bytes read and
//!   what was seen before, tested without a device.
//! - `worker`: the IO thread, its outbox, and the channel to the daemon.
//! - [`pill`]: the poison pill's records in the pill area, read and written one block at a
//!   time (by a fencer, and by the target's monitor; never by the IO thread).
//! - here: [`DiskPath`], its config and its errors, and the checks made before the device is
//!   touched.

mod device;
pub(crate) mod fuzz_api;
mod layout;
pub mod pill;
mod reader;
mod worker;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::policy::message::{Heartbeat, Message};
use crate::policy::spec::{NodeId, PathId};

use super::Inbound;
use device::Device;
use layout::HeaderState;
use worker::IoThread;

pub use crate::directio::IoMode;
pub use layout::{
    ack_offset, device_bytes, pill_area_offset, pill_offset, record_bytes, slot_offset, ALIGN,
    HEADER_BYTES, LAYOUT_VERSION, PILL_BLOCK_BYTES, SLOT_AREA_BYTES_MAX,
};

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
/// Dropped without [`DiskPath::stop`], it still tells its thread to end.
pub struct DiskPath {
    /// The IO thread and its outbox.
    io: IoThread,
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
        let mode = dev.mode();
        let io = IoThread::start(cfg.clone(), dev, inbound)?;
        Ok(DiskPath {
            mode,
            io,
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
        self.io.heartbeat(hb);
    }

    /// Puts a lease message into this node's mailbox for the next write: a `LeaseRequest`
    /// becomes this node's request stamp addressed to `to` (the leader), a `LeaseGrant` this
    /// node's grant for `to`. Anything else is ignored: the disk carries no consensus log.
    pub fn send(&self, to: NodeId, msg: &Message) {
        if usize::from(to) >= self.nodes || to == self.me {
            tracing::debug!(device = %self.device.display(), to, "disk path: no slot to send to");
            return;
        }
        match msg {
            Message::LeaseRequest { stamp_us } => self.io.request(to, *stamp_us),
            Message::LeaseGrant(grant) => self.io.grant(to, *grant),
            Message::Raft { .. }
            | Message::Vote { .. }
            | Message::Report { .. }
            | Message::Admin(_)
            | Message::AdminRefused { .. } => {}
        }
    }

    /// Stops the IO thread and joins it. A thread stuck in a disk read or write is waited
    /// for at most a few intervals (at least two seconds), then left behind with a warning:
    /// shutdown never hangs on a dead disk.
    pub fn stop(self) {
        let wait =
            Duration::from_millis(u64::from(self.interval_ms) * 4).max(Duration::from_secs(2));
        self.io.stop(wait, &self.device);
    }
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

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::Instant;

    use super::*;

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
}
