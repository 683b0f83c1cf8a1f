//! The poison pill on the disk path (SBD's idea): fencing for a cluster with a shared disk
//! and no power switch (`[fencing] method = "poison_pill"`; docs/runtime.md, "Poison pill").
//!
//! After the slots the device has a pill area: per node two blocks of [`PILL_BLOCK_BYTES`],
//! the *pill* (written only by nodes that fence this one) and the *acknowledgement* (written
//! only by this node's monitor). A fencer writes a [`Pill`] with a fresh nonce into the
//! target's pill block; the target's monitor reads its pill block every `interval_ms` of the
//! disk path, and on a pill it has not acknowledged it kills its core, stops every exclusive
//! resource hard, writes an [`Ack`] with that nonce, and then reboots the machine or exits
//! (`[fencing] action`). The fencer counts the fence confirmed when it reads the ack, or when
//! the pill's bound (`pill_timeout_ms`) has passed without one: by then a node that never saw
//! the pill has lost its lease (validation asks for a bound past the lease) and its monitor
//! stopped everything at the lease's end, as it does for any lease (docs/architecture.md §3).
//!
//! ```text
//! pill block (little-endian)           ack block
//!   0  magic "ETRNPILL"  8 bytes         0  magic "ETRNPACK"  8 bytes
//!   8  target node       u16             8  node              u16
//!  10  fencing node      u16            10  everything stopped u16 (1, or 0: a hard stop failed)
//!  12  bound (ms)        u32            12  zero              u32
//!  16  nonce             u64            16  nonce acknowledged u64
//!  24  written (unix µs) u64            24  written (unix µs) u64
//!  32  FNV-1a 64 of the cluster name    32  FNV-1a 64 of the cluster name
//!  40  CRC-32 of bytes 0..40            40  CRC-32 of bytes 0..40
//! ```
//!
//! A pill whose bound has passed by the target's clock (with as much again for clock skew)
//! is stale: the fencer stopped waiting for it long ago, and a node powered on days later
//! must not shoot itself. The target acknowledges it without acting, and logs that.
//!
//! Every call blocks (one aligned `pread`/`pwrite` of one block, `O_DIRECT | O_DSYNC` where
//! the device allows): the monitor calls them from a thread of its own, the core from
//! `spawn_blocking`.

use std::path::{Path, PathBuf};

use crate::directio::AlignedBuf;
use crate::ondisk::{fnv1a64, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seal, sealed};
use crate::policy::spec::NodeId;

use super::device::Device;
use super::layout::{ack_offset, pill_offset, HeaderState, PILL_BLOCK_BYTES};
use super::DiskError;

const PILL_MAGIC: [u8; 8] = *b"ETRNPILL";
const ACK_MAGIC: [u8; 8] = *b"ETRNPACK";
pub(super) const CRC_AT: usize = 40;

/// A pill for `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pill {
    /// The node that must stop everything.
    pub target: NodeId,
    /// The node that fences it.
    pub from: NodeId,
    /// How long the fencer waits for the acknowledgement (ms).
    pub bound_ms: u32,
    /// Unique per pill; the acknowledgement repeats it.
    pub nonce: u64,
    /// When the fencer wrote it (its `CLOCK_REALTIME`, µs).
    pub written_unix_us: u64,
}

impl Pill {
    /// Whether the bound of this pill has passed, with as much again for clock skew, at
    /// `now_unix_us` (the reader's clock).
    pub fn stale(&self, now_unix_us: u64) -> bool {
        let bound_us = u64::from(self.bound_ms) * 1000;
        now_unix_us
            > self
                .written_unix_us
                .saturating_add(bound_us.saturating_mul(2))
    }
}

/// The target's acknowledgement of the pill with `nonce`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The node acknowledging.
    pub node: NodeId,
    /// Every hard stop succeeded (false: one failed; the fencer then waits for the bound).
    pub stopped: bool,
    /// The pill acknowledged.
    pub nonce: u64,
    /// When (the target's `CLOCK_REALTIME`, µs).
    pub written_unix_us: u64,
}

/// What a block held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block<T> {
    /// All zero: nothing written (or cleared).
    Blank,
    /// A valid record.
    Valid(T),
    /// Not a record of this cluster, or damaged.
    Damaged(&'static str),
}

fn check_common(buf: &[u8], magic: &[u8; 8], cluster_hash: u64) -> Result<(), &'static str> {
    if buf.get(..8) != Some(&magic[..]) {
        return Err("no pill magic");
    }
    if !sealed(buf, CRC_AT) {
        return Err("bad CRC (torn write or damaged)");
    }
    if get_u64(buf, 32) != Some(cluster_hash) {
        return Err("written for another cluster");
    }
    Ok(())
}

impl Pill {
    pub(super) fn encode(&self, buf: &mut [u8], cluster_hash: u64) {
        buf.fill(0);
        buf[..8].copy_from_slice(&PILL_MAGIC);
        put_u16(buf, 8, self.target);
        put_u16(buf, 10, self.from);
        put_u32(buf, 12, self.bound_ms);
        put_u64(buf, 16, self.nonce);
        put_u64(buf, 24, self.written_unix_us);
        put_u64(buf, 32, cluster_hash);
        seal(buf, CRC_AT);
    }

    pub(super) fn decode(buf: &[u8], node: NodeId, cluster_hash: u64) -> Block<Pill> {
        if buf.iter().all(|&b| b == 0) {
            return Block::Blank;
        }
        if let Err(why) = check_common(buf, &PILL_MAGIC, cluster_hash) {
            return Block::Damaged(why);
        }
        let (Some(target), Some(from), Some(bound_ms), Some(nonce), Some(written_unix_us)) = (
            get_u16(buf, 8),
            get_u16(buf, 10),
            get_u32(buf, 12),
            get_u64(buf, 16),
            get_u64(buf, 24),
        ) else {
            return Block::Damaged("short block");
        };
        if target != node {
            return Block::Damaged("a pill for another node");
        }
        Block::Valid(Pill {
            target,
            from,
            bound_ms,
            nonce,
            written_unix_us,
        })
    }
}

impl Ack {
    pub(super) fn encode(&self, buf: &mut [u8], cluster_hash: u64) {
        buf.fill(0);
        buf[..8].copy_from_slice(&ACK_MAGIC);
        put_u16(buf, 8, self.node);
        put_u16(buf, 10, u16::from(self.stopped));
        put_u64(buf, 16, self.nonce);
        put_u64(buf, 24, self.written_unix_us);
        put_u64(buf, 32, cluster_hash);
        seal(buf, CRC_AT);
    }

    pub(super) fn decode(buf: &[u8], node: NodeId, cluster_hash: u64) -> Block<Ack> {
        if buf.iter().all(|&b| b == 0) {
            return Block::Blank;
        }
        if let Err(why) = check_common(buf, &ACK_MAGIC, cluster_hash) {
            return Block::Damaged(why);
        }
        let (Some(n), Some(stopped), Some(nonce), Some(written_unix_us)) = (
            get_u16(buf, 8),
            get_u16(buf, 10),
            get_u64(buf, 16),
            get_u64(buf, 24),
        ) else {
            return Block::Damaged("short block");
        };
        if n != node {
            return Block::Damaged("an acknowledgement of another node");
        }
        Block::Valid(Ack {
            node: n,
            stopped: stopped == 1,
            nonce,
            written_unix_us,
        })
    }
}

/// Where the pills of one disk path are: what the fencer and the target's monitor both know
/// from the config.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PillPlace {
    /// The disk path's device.
    pub device: PathBuf,
    /// The cluster's name.
    pub cluster: String,
    /// The disk path's node count (the witness included).
    pub nodes: usize,
    /// The disk path's `slot_bytes`.
    pub slot_bytes: u32,
}

/// The pill area of an open disk-path device.
pub struct PillDisk {
    dev: Device,
    place: PillPlace,
    cluster_hash: u64,
}

impl PillDisk {
    /// Opens the device and checks its header is this cluster's disk path of this shape. A
    /// blank device is an error: the disk path formats it when it starts, and a pill on a
    /// device no node uses would be read by no one.
    pub fn open(place: &PillPlace) -> Result<PillDisk, DiskError> {
        let dev = Device::open(&place.device, true)?;
        match dev.read_header()? {
            HeaderState::Blank => {
                return Err(DiskError::Config {
                    device: place.device.clone(),
                    why: "the device is not formatted yet".into(),
                    fix: "start the cluster's daemons (the disk path formats a blank device)",
                })
            }
            HeaderState::Formatted(h) => {
                h.check_shape(&place.device, &place.cluster, place.nodes, place.slot_bytes)?
            }
        }
        dev.check_size(place.nodes, place.slot_bytes)?;
        Ok(PillDisk {
            dev,
            cluster_hash: fnv1a64(place.cluster.as_bytes()),
            place: place.clone(),
        })
    }

    /// The device.
    pub fn device(&self) -> &Path {
        &self.place.device
    }

    fn read(&self, offset: u64, what: &'static str) -> Result<AlignedBuf, DiskError> {
        let mut buf = AlignedBuf::new(PILL_BLOCK_BYTES as usize).ok_or_else(|| {
            self.dev
                .io_err("allocate", std::io::ErrorKind::OutOfMemory.into())
        })?;
        self.dev
            .read_at(&mut buf, offset)
            .map_err(|e| self.dev.io_err(what, e))?;
        Ok(buf)
    }

    fn write(
        &self,
        offset: u64,
        what: &'static str,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), DiskError> {
        let mut buf = AlignedBuf::new(PILL_BLOCK_BYTES as usize).ok_or_else(|| {
            self.dev
                .io_err("allocate", std::io::ErrorKind::OutOfMemory.into())
        })?;
        fill(buf.as_mut_slice());
        self.dev
            .write_at(&buf, offset)
            .map_err(|e| self.dev.io_err(what, e))
    }

    fn pill_at(&self, node: NodeId) -> u64 {
        pill_offset(node, self.place.nodes, self.place.slot_bytes)
    }

    fn ack_at(&self, node: NodeId) -> u64 {
        ack_offset(node, self.place.nodes, self.place.slot_bytes)
    }

    /// The pill block of `node`.
    pub fn read_pill(&self, node: NodeId) -> Result<Block<Pill>, DiskError> {
        let buf = self.read(self.pill_at(node), "reading a pill")?;
        Ok(Pill::decode(buf.as_slice(), node, self.cluster_hash))
    }

    /// Writes `pill` into its target's pill block (durable when this returns).
    pub fn write_pill(&self, pill: &Pill) -> Result<(), DiskError> {
        let hash = self.cluster_hash;
        self.write(self.pill_at(pill.target), "writing a pill", |b| {
            pill.encode(b, hash)
        })
    }

    /// The acknowledgement block of `node`.
    pub fn read_ack(&self, node: NodeId) -> Result<Block<Ack>, DiskError> {
        let buf = self.read(self.ack_at(node), "reading an acknowledgement")?;
        Ok(Ack::decode(buf.as_slice(), node, self.cluster_hash))
    }

    /// Writes `ack` into its node's acknowledgement block (durable when this returns).
    pub fn write_ack(&self, ack: &Ack) -> Result<(), DiskError> {
        let hash = self.cluster_hash;
        self.write(self.ack_at(ack.node), "writing an acknowledgement", |b| {
            ack.encode(b, hash)
        })
    }
}

/// `CLOCK_REALTIME` now, in µs since the Unix epoch.
pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: u64 = 0x1234_5678_9abc_def0;

    #[test]
    fn a_pill_and_an_ack_survive_the_codec_and_damage_is_named() {
        let pill = Pill {
            target: 2,
            from: 0,
            bound_ms: 10_000,
            nonce: 77,
            written_unix_us: 1_000_000,
        };
        let mut buf = vec![0u8; PILL_BLOCK_BYTES as usize];
        assert_eq!(Pill::decode(&buf, 2, HASH), Block::Blank);
        pill.encode(&mut buf, HASH);
        assert_eq!(Pill::decode(&buf, 2, HASH), Block::Valid(pill));
        assert_eq!(
            Pill::decode(&buf, 1, HASH),
            Block::Damaged("a pill for another node")
        );
        assert_eq!(
            Pill::decode(&buf, 2, HASH + 1),
            Block::Damaged("written for another cluster")
        );
        buf[17] ^= 1;
        assert_eq!(
            Pill::decode(&buf, 2, HASH),
            Block::Damaged("bad CRC (torn write or damaged)")
        );

        let ack = Ack {
            node: 2,
            stopped: true,
            nonce: 77,
            written_unix_us: 1_000_500,
        };
        let mut buf = vec![0u8; PILL_BLOCK_BYTES as usize];
        ack.encode(&mut buf, HASH);
        assert_eq!(Ack::decode(&buf, 2, HASH), Block::Valid(ack));
        assert_eq!(
            Pill::decode(&buf, 2, HASH),
            Block::Damaged("no pill magic"),
            "an ack is no pill"
        );
    }

    #[test]
    fn a_pill_is_stale_after_twice_its_bound() {
        let pill = Pill {
            target: 1,
            from: 0,
            bound_ms: 1000,
            nonce: 1,
            written_unix_us: 5_000_000,
        };
        assert!(!pill.stale(5_000_000));
        assert!(!pill.stale(7_000_000), "two bounds: skew is allowed for");
        assert!(pill.stale(7_000_001));
        assert!(!pill.stale(1), "a clock behind the writer's: fresh");
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;
    use crate::transport::disk::DiskPath;

    #[test]
    fn pills_and_acks_go_to_their_own_blocks_of_a_formatted_device() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let device = dir.path().join("disk");
        std::fs::File::create(&device).expect("the device file");
        let place = PillPlace {
            device: device.clone(),
            cluster: "c".into(),
            nodes: 3,
            slot_bytes: 4096,
        };
        assert!(
            matches!(PillDisk::open(&place), Err(DiskError::Config { .. })),
            "a blank device carries no pills"
        );
        DiskPath::format(&device, "c", 3, 4096).expect("format");
        let disk = PillDisk::open(&place).expect("open");
        for n in 0..3 {
            assert_eq!(disk.read_pill(n).expect("read"), Block::Blank);
            assert_eq!(disk.read_ack(n).expect("read"), Block::Blank);
        }
        let pill = Pill {
            target: 1,
            from: 0,
            bound_ms: 5000,
            nonce: 9,
            written_unix_us: unix_us(),
        };
        disk.write_pill(&pill).expect("write");
        let ack = Ack {
            node: 1,
            stopped: true,
            nonce: 9,
            written_unix_us: unix_us(),
        };
        disk.write_ack(&ack).expect("write");
        assert_eq!(disk.read_pill(1).expect("read"), Block::Valid(pill));
        assert_eq!(disk.read_ack(1).expect("read"), Block::Valid(ack));
        for n in [0, 2] {
            assert_eq!(disk.read_pill(n).expect("read"), Block::Blank, "node {n}");
            assert_eq!(disk.read_ack(n).expect("read"), Block::Blank, "node {n}");
        }
        let other = PillPlace {
            cluster: "d".into(),
            ..place.clone()
        };
        assert!(matches!(
            PillDisk::open(&other),
            Err(DiskError::Mismatch {
                field: "cluster",
                ..
            })
        ));
    }
}
