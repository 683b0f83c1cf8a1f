//! The byte-level pieces every on-disk format of ours shares: little-endian integers at fixed
//! offsets, a CRC-32 sealing a record, and FNV-1a fingerprints. The disk heartbeat path's
//! header and slots (`transport::disk`), the disk lock's owner block and request slots
//! (`resources::disk_lock::layout`) and the raft log's records (`storage`) are written with
//! these, so one reading of "offset, width, little-endian, CRC of what came before" holds for
//! all of them.
//!
//! Readers return `None` for a field past the end of the buffer: what they read comes from a
//! device another node (or a crash) wrote, so a short or torn buffer is an answer, not a panic.
//! Writers index the buffer they were given: its size is ours.

/// FNV-1a's 64-bit offset basis: the hash of nothing.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits, of `bytes`: tiny, and stable across Rust versions and platforms (std's
/// hasher is not), so nodes can compare it.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_from(FNV_OFFSET, bytes)
}

/// FNV-1a continued from the running hash `h` over `bytes` (a digest built piece by piece).
pub fn fnv1a64_from(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// Writes `v` little-endian at `at`.
pub fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `at`.
pub fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `at`.
pub fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The little-endian `u16` at `at`, if the buffer holds it.
pub fn get_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        buf.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The little-endian `u32` at `at`, if the buffer holds it.
pub fn get_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The little-endian `u64` at `at`, if the buffer holds it.
pub fn get_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        buf.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Seals a record: writes the CRC-32 of `buf[..at]` little-endian at `at`.
pub fn seal(buf: &mut [u8], at: usize) {
    let crc = crc32fast::hash(&buf[..at]);
    put_u32(buf, at, crc);
}

/// Whether the CRC-32 stored at `at` is that of `buf[..at]` (false if the buffer is short).
pub fn sealed(buf: &[u8], at: usize) -> bool {
    match (buf.get(..at), get_u32(buf, at)) {
        (Some(body), Some(crc)) => crc32fast::hash(body) == crc,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64_from(fnv1a64(b"foo"), b"bar"), fnv1a64(b"foobar"));
    }

    #[test]
    fn integers_round_trip_and_short_buffers_read_as_none() {
        let mut b = [0u8; 16];
        put_u16(&mut b, 0, 0xBEEF);
        put_u32(&mut b, 2, 0xDEAD_BEEF);
        put_u64(&mut b, 8, 0x0123_4567_89AB_CDEF);
        assert_eq!(b[0], 0xEF, "little-endian");
        assert_eq!(get_u16(&b, 0), Some(0xBEEF));
        assert_eq!(get_u32(&b, 2), Some(0xDEAD_BEEF));
        assert_eq!(get_u64(&b, 8), Some(0x0123_4567_89AB_CDEF));
        assert_eq!(get_u64(&b, 9), None);
        assert_eq!(get_u32(&b, usize::MAX), None);
    }

    #[test]
    fn a_sealed_record_detects_a_flipped_bit_and_a_short_read() {
        let mut b = [7u8; 40];
        seal(&mut b, 36);
        assert!(sealed(&b, 36));
        b[3] ^= 1;
        assert!(!sealed(&b, 36));
        assert!(!sealed(&b[..38], 36));
    }
}
