//! The byte-level mutators every target shares: bit flips, interesting bytes and integers,
//! insertions, deletions, duplicated ranges, splices of two inputs, truncation.

use crate::policy::rng::Rng;

/// Bytes that sit on a boundary of some encoding.
pub const INTERESTING_BYTES: [u8; 10] =
    [0x00, 0x01, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x20, 0x0a];

/// Integers on a boundary of 16, 32 and 64 bits, signed or not.
pub const INTERESTING_INTS: [u64; 12] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// A position in `0..=len`.
pub fn pos(rng: &mut Rng, len: usize) -> usize {
    rng.range(0, len as u64 + 1) as usize
}

/// A random range `start..end` inside `0..len` (empty when `len` is 0), at most `max` long.
pub fn range(rng: &mut Rng, len: usize, max: usize) -> (usize, usize) {
    let start = pos(rng, len);
    let end = start + pos(rng, (len - start).min(max));
    (start, end)
}

/// One element of `items`.
pub fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.range(0, items.len() as u64) as usize]
}

/// One byte-level mutation of `buf`; `corpus` is what a splice takes from.
pub fn bytes(rng: &mut Rng, buf: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let len = buf.len();
    match rng.range(0, 11) {
        0 if len > 0 => {
            let i = rng.range(0, len as u64) as usize;
            buf[i] ^= 1 << rng.range(0, 8);
        }
        1 if len > 0 => {
            let i = rng.range(0, len as u64) as usize;
            buf[i] = *pick(rng, &INTERESTING_BYTES);
        }
        2 if len > 0 => {
            let i = rng.range(0, len as u64) as usize;
            buf[i] = rng.next_u64() as u8;
        }
        3 => {
            let width = *pick(rng, &[2usize, 4, 8]);
            let v = *pick(rng, &INTERESTING_INTS);
            let b = if rng.chance(500_000) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let at = pos(rng, len.saturating_sub(width));
            let src = if rng.chance(500_000) {
                &b[..width]
            } else {
                &b[8 - width..]
            };
            for (k, &x) in src.iter().enumerate() {
                if let Some(slot) = buf.get_mut(at + k) {
                    *slot = x;
                }
            }
        }
        4 => {
            let at = pos(rng, len);
            let n = rng.range(1, 17) as usize;
            let fill: Vec<u8> = if rng.chance(500_000) {
                vec![*pick(rng, &INTERESTING_BYTES); n]
            } else {
                (0..n).map(|_| rng.next_u64() as u8).collect()
            };
            buf.splice(at..at, fill);
        }
        5 => {
            let (a, b) = range(rng, len, 64);
            buf.drain(a..b);
        }
        6 => {
            let (a, b) = range(rng, len, 256);
            let copy = buf[a..b].to_vec();
            let at = pos(rng, len);
            let times = if rng.chance(100_000) {
                rng.range(2, 64)
            } else {
                1
            };
            for _ in 0..times {
                buf.splice(at..at, copy.iter().copied());
            }
        }
        7 => {
            let other = pick(rng, corpus);
            let cut = pos(rng, len);
            let from = pos(rng, other.len());
            buf.truncate(cut);
            buf.extend_from_slice(&other[from..]);
        }
        8 => {
            let other = pick(rng, corpus);
            let (a, b) = range(rng, other.len(), 128);
            let at = pos(rng, len);
            for (k, &x) in other[a..b].iter().enumerate() {
                match buf.get_mut(at + k) {
                    Some(slot) => *slot = x,
                    None => buf.push(x),
                }
            }
        }
        9 => {
            let cut = pos(rng, len);
            buf.truncate(cut);
        }
        _ => {
            // Swap two bytes.
            if len > 1 {
                let i = rng.range(0, len as u64) as usize;
                let j = rng.range(0, len as u64) as usize;
                buf.swap(i, j);
            }
        }
    }
}
