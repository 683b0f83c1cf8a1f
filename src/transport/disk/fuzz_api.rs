//! The disk path's decoders as `eterne-fuzz` drives them (crate-internal; see `fuzz/`): the
//! header block, a slot record, a pill and an acknowledgement. Each check decodes, and where a
//! value came out, encodes it again and decodes the copy: both must agree. The records
//! themselves stay private to the disk path; only these checks and the encoders that make
//! the fuzzer's seeds are visible to the crate.

use std::path::Path;

use crate::ondisk::seal;
use crate::policy::lease::Grant;
use crate::policy::spec::NodeId;

use super::layout::{record_bytes, Header, HeaderState, Record, HEADER_BYTES, HEADER_CRC_AT};
use super::pill::{Ack, Block, Pill, CRC_AT as PILL_CRC_AT};

/// What a decoder made of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A value (and it survived encoding again).
    Valid,
    /// Refused, with the decoder's reason.
    Refused(&'static str),
}

/// A broken property: what differed.
pub(crate) type Broken = String;

/// Decodes `buf` as the slot of `slot` among `nodes`; a record must encode to the same
/// record.
pub(crate) fn record(buf: &[u8], slot: NodeId, nodes: usize) -> Result<Verdict, Broken> {
    let rec = match Record::decode(buf, slot, nodes) {
        Ok(rec) => rec,
        Err(fault) => return Ok(Verdict::Refused(fault.reason())),
    };
    let mut copy = vec![0u8; buf.len()];
    rec.encode(&mut copy);
    match Record::decode(&copy, slot, nodes) {
        Ok(again) if again == rec => Ok(Verdict::Valid),
        other => Err(format!("record {rec:?} encoded again decodes to {other:?}")),
    }
}

/// Decodes `buf` as a header block and checks it against (`cluster`, `nodes`,
/// `slot_bytes`).
pub(crate) fn header(
    buf: &[u8],
    cluster: &str,
    nodes: usize,
    slot_bytes: u32,
) -> Result<Verdict, Broken> {
    let device = Path::new("/fuzz");
    match Header::decode(device, buf) {
        Ok(HeaderState::Blank) => Ok(Verdict::Refused("blank")),
        Err(e) => Ok(Verdict::Refused(disk_error_kind(&e))),
        Ok(HeaderState::Formatted(h)) => {
            Ok(match h.check_shape(device, cluster, nodes, slot_bytes) {
                Ok(()) => Verdict::Valid,
                Err(e) => Verdict::Refused(disk_error_kind(&e)),
            })
        }
    }
}

/// Decodes `buf` as the pill block of `node`; a pill must encode to the same pill.
pub(crate) fn pill(buf: &[u8], node: NodeId, cluster_hash: u64) -> Result<Verdict, Broken> {
    match Pill::decode(buf, node, cluster_hash) {
        Block::Blank => Ok(Verdict::Refused("blank")),
        Block::Damaged(why) => Ok(Verdict::Refused(why)),
        Block::Valid(p) => {
            let mut copy = vec![0u8; buf.len()];
            p.encode(&mut copy, cluster_hash);
            match Pill::decode(&copy, node, cluster_hash) {
                Block::Valid(again) if again == p => Ok(Verdict::Valid),
                other => Err(format!("pill {p:?} encoded again decodes to {other:?}")),
            }
        }
    }
}

/// Decodes `buf` as the acknowledgement block of `node`; an acknowledgement must encode to
/// the same one.
pub(crate) fn ack(buf: &[u8], node: NodeId, cluster_hash: u64) -> Result<Verdict, Broken> {
    match Ack::decode(buf, node, cluster_hash) {
        Block::Blank => Ok(Verdict::Refused("blank")),
        Block::Damaged(why) => Ok(Verdict::Refused(why)),
        Block::Valid(a) => {
            let mut copy = vec![0u8; buf.len()];
            a.encode(&mut copy, cluster_hash);
            match Ack::decode(&copy, node, cluster_hash) {
                Block::Valid(again) if again == a => Ok(Verdict::Valid),
                other => Err(format!("ack {a:?} encoded again decodes to {other:?}")),
            }
        }
    }
}

fn disk_error_kind(e: &super::DiskError) -> &'static str {
    use super::DiskError;
    match e {
        DiskError::Foreign { .. } => "foreign",
        DiskError::CorruptHeader { .. } => "corrupt header",
        DiskError::Mismatch { field, .. } => field,
        _ => "other disk error",
    }
}

/// Where the CRC of each block kind sits (for `nodes` nodes, for a slot record), so the
/// fuzzer can seal what it mutated and reach the checks behind the CRC.
pub(crate) fn crc_at(kind: BlockKind, nodes: usize) -> usize {
    match kind {
        BlockKind::Header => HEADER_CRC_AT,
        BlockKind::Record => record_bytes(nodes) - 4,
        BlockKind::Pill | BlockKind::Ack => PILL_CRC_AT,
    }
}

/// The disk path's block kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// The header block.
    Header,
    /// A node's slot record.
    Record,
    /// A pill.
    Pill,
    /// A pill's acknowledgement.
    Ack,
}

/// Seals `buf` with a CRC at `at`, if it is long enough.
pub(crate) fn reseal(buf: &mut [u8], at: usize) {
    if buf.len() >= at + 4 {
        seal(buf, at);
    }
}

/// A header block for `cluster` with `nodes` slots of `slot_bytes`.
pub(crate) fn sample_header(cluster: &str, nodes: usize, slot_bytes: u32) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_BYTES as usize];
    Header::encode(&mut buf, cluster, nodes, slot_bytes);
    buf
}

/// A slot record of `slot` among `nodes` in a slot of `slot_bytes` (at least
/// [`record_bytes`]), its fields from `draws`; every other grant is set.
pub(crate) fn sample_record(
    slot: NodeId,
    nodes: usize,
    slot_bytes: usize,
    draws: [u64; 8],
) -> Vec<u8> {
    let grants = (0..nodes)
        .map(|i| {
            (i % 2 == 0).then_some(Grant {
                term: draws[0].wrapping_add(i as u64),
                echo_us: draws[1],
                valid_us: draws[2],
                commit: draws[3],
            })
        })
        .collect();
    let rec = Record {
        node: slot,
        incarnation: draws[4],
        digest: draws[5],
        seq: draws[6],
        beats: draws[7],
        written_us: draws[0] ^ draws[7],
        request_to: (draws[1] % nodes.max(1) as u64) as NodeId,
        request_stamp_us: draws[2] ^ draws[3],
        grants,
    };
    let mut buf = vec![0u8; slot_bytes.max(record_bytes(nodes))];
    rec.encode(&mut buf);
    buf
}

/// A pill block for `target` (or, with `ack`, its acknowledgement) of the cluster with
/// `cluster_hash`, its fields from `draws`.
pub(crate) fn sample_pill(
    target: NodeId,
    ack: bool,
    cluster_hash: u64,
    draws: [u64; 3],
) -> Vec<u8> {
    let mut buf = vec![0u8; super::PILL_BLOCK_BYTES as usize];
    if ack {
        Ack {
            node: target,
            stopped: draws[0] % 2 == 0,
            nonce: draws[1],
            written_unix_us: draws[2],
        }
        .encode(&mut buf, cluster_hash);
    } else {
        Pill {
            target,
            from: draws[0] as NodeId,
            bound_ms: draws[0] as u32,
            nonce: draws[1],
            written_unix_us: draws[2],
        }
        .encode(&mut buf, cluster_hash);
    }
    buf
}
