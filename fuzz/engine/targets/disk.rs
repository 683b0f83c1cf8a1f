//! The blocks of shared disks: the disk path's header, slot records, pills and
//! acknowledgements (through `transport::disk::fuzz_api`), and `disk_lock`'s owner block and
//! request slots.
//!
//! An input is a selector byte (which block), a node byte, a node-count byte, then the block.
//! The mutators know where each block's CRC sits and seal it again after a change now and
//! then, so that the checks behind the CRC are reached too.

use crate::fuzz::mutate::{self, pick};
use crate::fuzz::{Outcome, Target};
use crate::ondisk::fnv1a64;
use crate::policy::rng::Rng;
use crate::resources::disk_lock::layout::{Owner, OwnerBlock, Slot, BLOCK};
use crate::transport::disk::fuzz_api::{self, BlockKind, Verdict};

/// The cluster every disk block is checked against.
const CLUSTER: &str = "fuzz";
/// Bytes before the block: selector, node, node count.
const PREFIX: usize = 3;
/// The block kinds, by selector.
const KINDS: u8 = 6;

fn cluster_hash() -> u64 {
    fnv1a64(CLUSTER.as_bytes())
}

/// A valid block of kind `sel` for `node` among `nodes`.
fn block(rng: &mut Rng, sel: u8, node: u8, nodes: u8) -> Vec<u8> {
    let draws = [0u64; 8].map(|_| rng.next_u64() >> rng.range(0, 64));
    let nodes_n = usize::from(nodes);
    let mut out = vec![sel, node, nodes];
    let body = match sel {
        0 => fuzz_api::sample_header(CLUSTER, nodes_n, 4096),
        1 => fuzz_api::sample_record(u16::from(node), nodes_n, 4096, draws),
        2 => fuzz_api::sample_pill(
            u16::from(node),
            false,
            cluster_hash(),
            [draws[0], draws[1], draws[2]],
        ),
        3 => fuzz_api::sample_pill(
            u16::from(node),
            true,
            cluster_hash(),
            [draws[0], draws[1], draws[2]],
        ),
        4 => {
            let mut b = vec![0u8; BLOCK];
            Owner {
                node: (draws[0] % 3 != 0).then_some(u16::from(node)),
                epoch: draws[1],
                renewed: draws[2],
            }
            .encode(&mut b);
            b
        }
        _ => {
            let mut b = vec![0u8; BLOCK];
            Slot {
                epoch: draws[1],
                writes: draws[2],
            }
            .encode(u16::from(node), &mut b);
            b
        }
    };
    out.extend_from_slice(&body);
    out
}

/// Where the block of an input keeps its CRC, if it has one the fuzzer can seal.
fn crc_at(sel: u8, nodes: u8) -> usize {
    match sel {
        0 => fuzz_api::crc_at(BlockKind::Header, 0),
        1 => fuzz_api::crc_at(BlockKind::Record, usize::from(nodes)),
        2 => fuzz_api::crc_at(BlockKind::Pill, 0),
        3 => fuzz_api::crc_at(BlockKind::Ack, 0),
        // disk_lock: the CRC sits at 32 in both its blocks.
        _ => 32,
    }
}

/// The `disk` target.
pub struct DiskTarget {
    seeds: Vec<Vec<u8>>,
}

impl DiskTarget {
    /// A valid block of every kind for a few shapes, and blank ones.
    pub fn new() -> DiskTarget {
        let mut rng = Rng::new(0x5eed);
        let mut seeds = Vec::new();
        for sel in 0..KINDS {
            for (node, nodes) in [(0u8, 1u8), (1, 3), (2, 3), (124, 125), (7, 64)] {
                seeds.push(block(&mut rng, sel, node, nodes));
            }
            let mut blank = vec![sel, 0, 3];
            blank.extend(std::iter::repeat_n(0u8, 4096));
            seeds.push(blank);
        }
        DiskTarget { seeds }
    }
}

impl Default for DiskTarget {
    fn default() -> DiskTarget {
        DiskTarget::new()
    }
}

impl Target for DiskTarget {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        let sel = rng.range(0, u64::from(KINDS)) as u8;
        let nodes = rng.range(0, 130) as u8;
        let node = rng.range(0, u64::from(nodes) + 2) as u8;
        Some(block(rng, sel, node, nodes))
    }

    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        if input.len() < PREFIX {
            input.resize(PREFIX, 0);
        }
        match rng.range(0, 10) {
            0 => input[rng.range(0, PREFIX as u64) as usize] = rng.next_u64() as u8,
            1 => input[1] = input[1].wrapping_add(*pick(rng, &[1u8, 255])),
            2 => input[2] = input[2].wrapping_add(*pick(rng, &[1u8, 255])),
            _ => {
                let mut body = input.split_off(PREFIX);
                mutate::bytes(rng, &mut body, corpus);
                if rng.chance(600_000) {
                    fuzz_api::reseal(&mut body, crc_at(input[0] % KINDS, input[2]));
                }
                input.extend_from_slice(&body);
            }
        }
    }

    fn max_len(&self) -> usize {
        PREFIX + 16 * 1024
    }

    fn exec(&self, input: &[u8]) -> Result<Outcome, String> {
        let (sel, node, nodes) = match input {
            [s, n, c, ..] => (s % KINDS, *n, *c),
            _ => return Ok(Outcome::Refused("no prefix".into())),
        };
        let buf = &input[PREFIX..];
        let verdict = match sel {
            0 => fuzz_api::header(buf, CLUSTER, usize::from(nodes), 4096)?,
            1 => fuzz_api::record(buf, u16::from(node), usize::from(nodes))?,
            2 => fuzz_api::pill(buf, u16::from(node), cluster_hash())?,
            3 => fuzz_api::ack(buf, u16::from(node), cluster_hash())?,
            4 => owner(buf)?,
            _ => lock_slot(buf, u16::from(node))?,
        };
        Ok(match verdict {
            Verdict::Valid => Outcome::Accepted,
            Verdict::Refused(why) => Outcome::Refused(format!("{sel}: {why}")),
        })
    }
}

fn owner(buf: &[u8]) -> Result<Verdict, String> {
    match OwnerBlock::decode(buf) {
        OwnerBlock::Blank => Ok(Verdict::Refused("blank")),
        OwnerBlock::Corrupt { why, .. } => Ok(Verdict::Refused(why)),
        OwnerBlock::Valid(o) => {
            let mut copy = vec![0u8; BLOCK];
            o.encode(&mut copy);
            match OwnerBlock::decode(&copy) {
                OwnerBlock::Valid(again) if again == o => Ok(Verdict::Valid),
                other => Err(format!("owner {o:?} encoded again decodes to {other:?}")),
            }
        }
    }
}

fn lock_slot(buf: &[u8], node: u16) -> Result<Verdict, String> {
    match Slot::decode(node, buf) {
        None => Ok(Verdict::Refused("blank, corrupt or another node's")),
        Some(s) => {
            let mut copy = vec![0u8; BLOCK];
            s.encode(node, &mut copy);
            match Slot::decode(node, &copy) {
                Some(again) if again == s => Ok(Verdict::Valid),
                other => Err(format!("slot {s:?} encoded again decodes to {other:?}")),
            }
        }
    }
}
