//! The on-disk lease area of the `disk_lock` agent and the device it lives on.
//!
//! # Layout (version [`VERSION`], little-endian)
//!
//! ```text
//! offset 0                     owner block, BLOCK (4096) bytes
//!   0   magic "ETRNLOCK"         8 bytes
//!   8   layout version           u32
//!  12   owner node               u16   (NO_OWNER = 0xffff: released)
//!  14   zero                     u16
//!  16   epoch                    u64   (the owner's fencing token; kept on release)
//!  24   renewed                  u64   (bumped by every write of the record)
//!  32   CRC-32 of bytes 0..32    u32   (the rest of the block is zero)
//! offset BLOCK × (1 + n)       the request slot of node n, BLOCK bytes
//!   0   magic "ETRNLKRQ"         8 bytes
//!   8   layout version           u32
//!  12   node                     u16   (must equal n)
//!  14   zero                     u16
//!  16   requested epoch          u64   (0 = no request)
//!  24   writes                   u64   (bumped by every write of the slot)
//!  32   CRC-32 of bytes 0..32    u32
//! ```
//!
//! An all-zero owner block is a lease that was never taken (a fresh device or file). Every
//! block is read and written whole, at an aligned offset, from an aligned buffer, so the same
//! code works with `O_DIRECT` on 512-byte and 4K-native devices.

use crate::ondisk::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seal, sealed};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::Path;

use crate::directio::{self, AlignedBuf, OpenError, ALIGN};

/// The version of the layout this code reads and writes.
pub const VERSION: u32 = 1;
/// The size of the owner block and of each slot.
pub const BLOCK: usize = ALIGN;
/// The owner field of a released lease.
pub const NO_OWNER: u16 = 0xffff;
const OWNER_MAGIC: [u8; 8] = *b"ETRNLOCK";
const SLOT_MAGIC: [u8; 8] = *b"ETRNLKRQ";
const CRC_AT: usize = 32;

/// The bytes a device needs for `nodes` slots.
pub fn device_bytes(nodes: u16) -> u64 {
    BLOCK as u64 * (1 + u64::from(nodes))
}

/// The owner record, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The node holding the lease, `None` once released.
    pub node: Option<u16>,
    /// The fencing token of the activation that took it.
    pub epoch: u64,
    /// Bumped by every write; a holder bumps it at every renewal.
    pub renewed: u64,
}

/// What the owner block holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerBlock {
    /// All zero: never taken.
    Blank,
    /// A valid record.
    Valid(Owner),
    /// Neither: a torn write, another program's data, bit rot. Its first bytes are kept so
    /// that a watcher can tell whether it changes. Never taken for a free lease.
    Corrupt {
        /// Why it was refused.
        why: &'static str,
        /// The record area as read (the fingerprint a watcher compares).
        raw: [u8; 36],
    },
}

impl Owner {
    /// Encodes into a block buffer (the buffer's other bytes are zeroed).
    pub fn encode(&self, buf: &mut [u8]) {
        buf.fill(0);
        buf[0..8].copy_from_slice(&OWNER_MAGIC);
        put_u32(buf, 8, VERSION);
        put_u16(buf, 12, self.node.unwrap_or(NO_OWNER));
        put_u64(buf, 16, self.epoch);
        put_u64(buf, 24, self.renewed);
        seal(buf, CRC_AT);
    }
}

impl OwnerBlock {
    /// Decodes a block (total: any bytes give an answer).
    pub fn decode(buf: &[u8]) -> OwnerBlock {
        let mut raw = [0u8; 36];
        let n = buf.len().min(36);
        raw[..n].copy_from_slice(&buf[..n]);
        if raw.iter().all(|&b| b == 0) {
            return OwnerBlock::Blank;
        }
        let corrupt = |why| OwnerBlock::Corrupt { why, raw };
        if raw[0..8] != OWNER_MAGIC {
            return corrupt("no lock magic");
        }
        if !sealed(&raw, CRC_AT) {
            return corrupt("CRC mismatch");
        }
        if get_u32(&raw, 8) != Some(VERSION) {
            return corrupt("unknown layout version");
        }
        // `raw` is a whole record: every field is there.
        let (Some(node), Some(epoch), Some(renewed)) =
            (get_u16(&raw, 12), get_u64(&raw, 16), get_u64(&raw, 24))
        else {
            return corrupt("short record");
        };
        OwnerBlock::Valid(Owner {
            node: (node != NO_OWNER).then_some(node),
            epoch,
            renewed,
        })
    }
}

/// A request slot, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The epoch the node wants or holds the lease at (0 = none).
    pub epoch: u64,
    /// Bumped by every write of the slot.
    pub writes: u64,
}

impl Slot {
    /// Encodes the slot of `node` into a block buffer.
    pub fn encode(&self, node: u16, buf: &mut [u8]) {
        buf.fill(0);
        buf[0..8].copy_from_slice(&SLOT_MAGIC);
        put_u32(buf, 8, VERSION);
        put_u16(buf, 12, node);
        put_u64(buf, 16, self.epoch);
        put_u64(buf, 24, self.writes);
        seal(buf, CRC_AT);
    }

    /// Decodes the slot of `node`; `None` if it is blank, corrupt or another node's.
    pub fn decode(node: u16, buf: &[u8]) -> Option<Slot> {
        let raw = buf.get(..36)?;
        if raw[0..8] != SLOT_MAGIC
            || !sealed(raw, CRC_AT)
            || get_u32(raw, 8)? != VERSION
            || get_u16(raw, 12)? != node
        {
            return None;
        }
        Some(Slot {
            epoch: get_u64(raw, 16)?,
            writes: get_u64(raw, 24)?,
        })
    }
}

pub use crate::directio::IoMode;

/// The open lease device. All calls block: run them off the async runtime.
#[derive(Debug)]
pub struct Device {
    file: File,
    mode: IoMode,
    nodes: u16,
}

impl Device {
    /// Opens `path` for direct IO (buffered where refused), checks (or, for a regular file,
    /// extends) its size for `nodes` slots.
    pub fn open(path: &Path, nodes: u16) -> Result<Device, String> {
        let shown = path.display();
        // The size is fitted before direct IO is probed, so the probe reads real blocks.
        let opened =
            directio::open(path, true, |file| fit(file, path, nodes)).map_err(|e| match e {
                OpenError::Open(e) => format!("cannot open {shown}: {e}"),
                OpenError::NoMemory => "cannot allocate an IO buffer".to_string(),
                OpenError::Prepare(why) => why,
            })?;
        if let Some(e) = opened.probe_error {
            return Err(format!("cannot read {shown}: {e}"));
        }
        Ok(Device {
            file: opened.file,
            mode: opened.mode,
            nodes,
        })
    }

    /// How this device is read and written.
    pub fn mode(&self) -> IoMode {
        self.mode
    }

    fn read_at(&self, buf: &mut AlignedBuf, offset: u64) -> io::Result<()> {
        crate::directio::read_at(&self.file, self.mode, buf, offset)
    }

    fn write_at(&self, buf: &AlignedBuf, offset: u64) -> io::Result<()> {
        crate::directio::write_at(&self.file, self.mode, buf, offset)
    }

    fn block() -> io::Result<AlignedBuf> {
        AlignedBuf::new(BLOCK).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
    }

    /// Reads the owner block.
    pub fn read_owner(&self) -> io::Result<OwnerBlock> {
        let mut b = Self::block()?;
        self.read_at(&mut b, 0)?;
        Ok(OwnerBlock::decode(b.as_slice()))
    }

    /// Writes the owner block (durable when it returns).
    pub fn write_owner(&self, o: &Owner) -> io::Result<()> {
        let mut b = Self::block()?;
        o.encode(b.as_mut_slice());
        self.write_at(&b, 0)
    }

    /// Reads every slot, in node order (`None` for a blank or corrupt one).
    pub fn read_slots(&self) -> io::Result<Vec<Option<Slot>>> {
        let mut b = AlignedBuf::new(BLOCK * usize::from(self.nodes))
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        self.read_at(&mut b, BLOCK as u64)?;
        Ok(b.as_slice()
            .chunks(BLOCK)
            .enumerate()
            .map(|(n, c)| Slot::decode(n as u16, c))
            .collect())
    }

    /// Writes the slot of `node`.
    pub fn write_slot(&self, node: u16, s: &Slot) -> io::Result<()> {
        let mut b = Self::block()?;
        s.encode(node, b.as_mut_slice());
        self.write_at(&b, BLOCK as u64 * (1 + u64::from(node)))
    }
}

/// Makes sure the device at `path` holds the owner block and the slots of `nodes` nodes,
/// extending a regular file that is too short.
fn fit(file: &File, path: &Path, nodes: u16) -> Result<(), String> {
    let needed = device_bytes(nodes);
    let size = (&*file)
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("cannot find the size of {}: {e}", path.display()))?;
    if size >= needed {
        return Ok(());
    }
    let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    if is_file {
        // Growing is idempotent, so two nodes doing it at once agree.
        return file
            .set_len(needed)
            .map_err(|e| format!("cannot extend {} to {needed} bytes: {e}", path.display()));
    }
    Err(format!(
        "{} has {size} bytes; the lease area of {nodes} nodes needs {needed}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_records_round_trip() {
        let mut buf = vec![0u8; BLOCK];
        for o in [
            Owner {
                node: Some(3),
                epoch: 42,
                renewed: 7,
            },
            Owner {
                node: None,
                epoch: 42,
                renewed: 8,
            },
        ] {
            o.encode(&mut buf);
            assert_eq!(OwnerBlock::decode(&buf), OwnerBlock::Valid(o));
        }
        assert_eq!(OwnerBlock::decode(&[0u8; BLOCK]), OwnerBlock::Blank);
    }

    #[test]
    fn every_flipped_byte_of_an_owner_record_is_caught() {
        let mut buf = vec![0u8; BLOCK];
        Owner {
            node: Some(1),
            epoch: 9,
            renewed: 100,
        }
        .encode(&mut buf);
        for i in 0..36 {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            assert!(
                matches!(OwnerBlock::decode(&b), OwnerBlock::Corrupt { .. }),
                "byte {i}"
            );
        }
    }

    #[test]
    fn slots_round_trip_and_belong_to_their_node() {
        let mut buf = vec![0u8; BLOCK];
        let s = Slot {
            epoch: 5,
            writes: 2,
        };
        s.encode(4, &mut buf);
        assert_eq!(Slot::decode(4, &buf), Some(s));
        assert_eq!(Slot::decode(3, &buf), None);
        buf[20] ^= 1;
        assert_eq!(Slot::decode(4, &buf), None);
        assert_eq!(Slot::decode(0, &[0u8; BLOCK]), None);
    }
}
