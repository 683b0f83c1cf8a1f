//! The disk path's on-disk layout: the sizes and offsets of the header block and the slots,
//! and the codec of both (the table is in the [module doc](super)). Bytes, integers and CRC
//! seals come from [`crate::ondisk`], like every on-disk format of ours.
//!
//! Decoding is total: a slot another node (or a crash) left half-written decodes to a
//! [`SlotFault`], never to a panic. Nothing here touches the device.

use std::path::Path;

use crate::ondisk::{fnv1a64, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seal, sealed};
use crate::policy::lease::Grant;
use crate::policy::spec::NodeId;

use super::{DiskError, DiskPathConfig};

/// The version of the on-disk layout this code reads and writes.
pub const LAYOUT_VERSION: u32 = 2;
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
pub(super) const HEADER_CRC_AT: usize = 96;
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

/// The bytes a device must have for `nodes` slots of `slot_bytes` and the pill area after
/// them.
pub fn device_bytes(nodes: usize, slot_bytes: u32) -> u64 {
    pill_area_offset(nodes, slot_bytes) + nodes as u64 * 2 * PILL_BLOCK_BYTES
}

/// The length of one block of the pill area: a pill, or an acknowledgement.
pub const PILL_BLOCK_BYTES: u64 = ALIGN as u64;

/// Where the pill area starts: after the slots, rounded up to [`ALIGN`].
pub fn pill_area_offset(nodes: usize, slot_bytes: u32) -> u64 {
    let end = HEADER_BYTES + nodes as u64 * u64::from(slot_bytes);
    end.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// The byte offset of the block fencers write a pill for `node` into.
pub fn pill_offset(node: NodeId, nodes: usize, slot_bytes: u32) -> u64 {
    pill_area_offset(nodes, slot_bytes) + u64::from(node) * 2 * PILL_BLOCK_BYTES
}

/// The byte offset of the block `node`'s monitor acknowledges pills in.
pub fn ack_offset(node: NodeId, nodes: usize, slot_bytes: u32) -> u64 {
    pill_offset(node, nodes, slot_bytes) + PILL_BLOCK_BYTES
}

/// The slot of `node` within `slots`, the slot area as read from [`HEADER_BYTES`] on; `None`
/// if the area is too short to hold it.
pub(super) fn slot_in(slots: &[u8], node: NodeId, slot_bytes: usize) -> Option<&[u8]> {
    let at = usize::from(node) * slot_bytes;
    slots.get(at..at + slot_bytes)
}

/// What the header block holds.
pub(super) enum HeaderState {
    /// All zero: an unformatted device.
    Blank,
    /// A valid header.
    Formatted(Header),
}

/// A decoded header.
pub(super) struct Header {
    version: u32,
    slot_bytes: u32,
    nodes: u32,
    cluster_hash: u64,
    /// The name as stored (cut at 64 bytes), for error messages.
    cluster: String,
}

impl Header {
    pub(super) fn encode(buf: &mut [u8], cluster: &str, nodes: usize, slot_bytes: u32) {
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

    pub(super) fn decode(device: &Path, buf: &[u8]) -> Result<HeaderState, DiskError> {
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
    pub(super) fn check(&self, cfg: &DiskPathConfig) -> Result<(), DiskError> {
        self.check_shape(&cfg.device, &cfg.cluster, cfg.nodes, cfg.slot_bytes)
    }

    /// Whether this header is of `cluster` with `nodes` slots of `slot_bytes`.
    pub(super) fn check_shape(
        &self,
        device: &Path,
        cluster: &str,
        nodes: usize,
        slot_bytes: u32,
    ) -> Result<(), DiskError> {
        let mismatch = |field, found: String, expected: String| {
            Err(DiskError::Mismatch {
                device: device.to_path_buf(),
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
        if self.slot_bytes != slot_bytes {
            return mismatch(
                "slot_bytes",
                self.slot_bytes.to_string(),
                slot_bytes.to_string(),
            );
        }
        if self.nodes as usize != nodes {
            return mismatch("node count", self.nodes.to_string(), nodes.to_string());
        }
        Ok(())
    }
}

/// One node's slot record.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Record {
    pub(super) node: NodeId,
    pub(super) incarnation: u64,
    pub(super) digest: u64,
    pub(super) seq: u64,
    pub(super) beats: u64,
    pub(super) written_us: u64,
    /// The latest lease request: to whom, stamp (0 = none).
    pub(super) request_to: NodeId,
    pub(super) request_stamp_us: u64,
    /// The latest grant to each node.
    pub(super) grants: Vec<Option<Grant>>,
}

/// Why a slot's bytes are not a usable record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotFault {
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
    pub(super) fn reason(self) -> &'static str {
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
    pub(super) fn encode(&self, buf: &mut [u8]) {
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
    pub(super) fn decode(buf: &[u8], slot: NodeId, nodes: usize) -> Result<Record, SlotFault> {
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
    fn a_4096_byte_slot_holds_125_nodes() {
        assert!(record_bytes(125) <= 4096);
        assert!(record_bytes(126) > 4096);
    }
}
