//! MessagePack-aware mutators: a walk that finds every item's marker, and mutations of
//! markers, lengths, integers, field names and nesting that a byte flip rarely hits.
//!
//! The walk is our own small reader of the format's framing (the marker table of the
//! MessagePack spec); it stops at the first item it cannot frame.

use super::mutate::{pick, pos};
use crate::policy::rng::Rng;

/// What an item is, as far as mutations care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer (fixint or sized).
    Int,
    /// A string.
    Str,
    /// Binary.
    Bin,
    /// An array.
    Array,
    /// A map.
    Map,
    /// nil, booleans, floats, extensions.
    Other,
}

/// One item found by [`walk`].
#[derive(Clone, Copy, Debug)]
pub struct Item {
    /// Its marker's offset.
    pub at: usize,
    /// Marker and length bytes.
    pub header: usize,
    /// Payload bytes after the header (0 for containers, whose elements follow as items).
    pub payload: usize,
    /// What it is.
    pub kind: Kind,
}

/// The items of `buf` in order, up to the first that cannot be framed, at most `max`.
pub fn walk(buf: &[u8], max: usize) -> Vec<Item> {
    let mut items = Vec::new();
    let mut at = 0;
    // Items still expected: one top-level value, plus the elements of open containers.
    let mut pending: u64 = 1;
    while pending > 0 && items.len() < max {
        let Some(item) = frame(buf, at) else { break };
        pending -= 1;
        let n = count(buf, &item);
        pending = pending.saturating_add(n);
        at = item.at + item.header + item.payload;
        items.push(item);
        if at > buf.len() {
            break;
        }
    }
    items
}

fn be(buf: &[u8], at: usize, n: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(n)?)?;
    Some(bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

/// Elements a container item holds (pairs count twice).
fn count(buf: &[u8], item: &Item) -> u64 {
    let m = buf[item.at];
    let n = match m {
        0x80..=0x8f => u64::from(m & 0x0f),
        0x90..=0x9f => u64::from(m & 0x0f),
        0xdc | 0xde => be(buf, item.at + 1, 2).unwrap_or(0),
        0xdd | 0xdf => be(buf, item.at + 1, 4).unwrap_or(0),
        _ => 0,
    };
    if item.kind == Kind::Map {
        n * 2
    } else {
        n
    }
}

/// The item whose marker is at `at`.
fn frame(buf: &[u8], at: usize) -> Option<Item> {
    let m = *buf.get(at)?;
    let item = |header, payload, kind| {
        Some(Item {
            at,
            header,
            payload,
            kind,
        })
    };
    let len = |n: usize| be(buf, at + 1, n).map(|v| v as usize);
    match m {
        0x00..=0x7f | 0xe0..=0xff => item(1, 0, Kind::Int),
        0x80..=0x8f => item(1, 0, Kind::Map),
        0x90..=0x9f => item(1, 0, Kind::Array),
        0xa0..=0xbf => item(1, usize::from(m & 0x1f), Kind::Str),
        0xc0 | 0xc2 | 0xc3 => item(1, 0, Kind::Other),
        0xc1 => None,
        0xc4 => item(2, len(1)?, Kind::Bin),
        0xc5 => item(3, len(2)?, Kind::Bin),
        0xc6 => item(5, len(4)?, Kind::Bin),
        0xc7 => item(3, len(1)?, Kind::Other),
        0xc8 => item(4, len(2)?, Kind::Other),
        0xc9 => item(6, len(4)?, Kind::Other),
        0xca => item(1, 4, Kind::Other),
        0xcb => item(1, 8, Kind::Other),
        0xcc | 0xd0 => item(1, 1, Kind::Int),
        0xcd | 0xd1 => item(1, 2, Kind::Int),
        0xce | 0xd2 => item(1, 4, Kind::Int),
        0xcf | 0xd3 => item(1, 8, Kind::Int),
        0xd4 => item(2, 1, Kind::Other),
        0xd5 => item(2, 2, Kind::Other),
        0xd6 => item(2, 4, Kind::Other),
        0xd7 => item(2, 8, Kind::Other),
        0xd8 => item(2, 16, Kind::Other),
        0xd9 => item(2, len(1)?, Kind::Str),
        0xda => item(3, len(2)?, Kind::Str),
        0xdb => item(5, len(4)?, Kind::Str),
        0xdc => item(3, 0, Kind::Array),
        0xdd => item(5, 0, Kind::Array),
        0xde => item(3, 0, Kind::Map),
        0xdf => item(5, 0, Kind::Map),
    }
}

/// A string's MessagePack encoding.
pub fn str_bytes(s: &str) -> Vec<u8> {
    let n = s.len();
    let mut out = if n < 32 {
        vec![0xa0 | n as u8]
    } else if n < 256 {
        vec![0xd9, n as u8]
    } else if n < 65536 {
        vec![0xda, (n >> 8) as u8, n as u8]
    } else {
        let mut h = vec![0xdb];
        h.extend_from_slice(&(n as u32).to_be_bytes());
        h
    };
    out.extend_from_slice(s.as_bytes());
    out
}

/// Integers on a boundary, as MessagePack.
const BOUNDARY_INTS: &[&[u8]] = &[
    &[0x00],
    &[0xff],
    &[0x7f],
    &[0xcc, 0xff],
    &[0xcd, 0x01, 0x00],
    &[0xcd, 0xff, 0xff],
    &[0xce, 0x00, 0x01, 0x00, 0x00],
    &[0xce, 0xff, 0xff, 0xff, 0xff],
    &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xcf, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
    &[0xd0, 0x80],
    &[0xd1, 0x80, 0x00],
    &[0xd2, 0x80, 0x00, 0x00, 0x00],
    &[0xd3, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xcb, 0x7f, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0xca, 0x7f, 0x80, 0x00, 0x00],
    &[0xc0],
    &[0xc3],
];

/// Headers that claim far more than any input holds.
const HUGE_HEADERS: &[&[u8]] = &[
    &[0xdd, 0xff, 0xff, 0xff, 0xff],
    &[0xdf, 0xff, 0xff, 0xff, 0xff],
    &[0xdb, 0xff, 0xff, 0xff, 0xff],
    &[0xc6, 0xff, 0xff, 0xff, 0xff],
    &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0xdc, 0xff, 0xff],
    &[0xde, 0xff, 0xff],
    &[0xda, 0xff, 0xff],
    &[0xc5, 0xff, 0xff],
    &[0x9f],
    &[0x8f],
    &[0xbf],
];

/// Single markers of every family, the unused one (0xc1) included.
const MARKERS: &[u8] = &[
    0xc0, 0xc1, 0xc2, 0xc3, 0x80, 0x81, 0x90, 0x91, 0xa0, 0xa1, 0xc4, 0xca, 0xcb, 0xcc, 0xd0, 0xd4,
    0xd8, 0xd9, 0xdc, 0xde, 0xe0, 0x00, 0x7f,
];

/// One MessagePack-aware mutation of `buf`. `names` are field and variant names the format
/// knows (a string item may become one of them, or lose a letter).
pub fn mutate(rng: &mut Rng, buf: &mut Vec<u8>, names: &[&str]) {
    let items = walk(buf, 4096);
    if items.is_empty() {
        buf.splice(0..0, pick(rng, HUGE_HEADERS).iter().copied());
        return;
    }
    let it = *pick(rng, &items);
    let head = it.at..(it.at + it.header).min(buf.len());
    match rng.range(0, 8) {
        0 => {
            buf.splice(head, pick(rng, HUGE_HEADERS).iter().copied());
        }
        1 => {
            buf.splice(head, [*pick(rng, MARKERS)]);
        }
        2 => {
            let end = (it.at + it.header + it.payload).min(buf.len());
            buf.splice(it.at..end, pick(rng, BOUNDARY_INTS).iter().copied());
        }
        3 => {
            // A length or count one off, or zero.
            let m = buf[it.at];
            let delta: i16 = *pick(rng, &[1, -1, 16, -16]);
            if (0x80..=0xbf).contains(&m) {
                let low = (m & 0x0f) as i16 + delta;
                if (0..16).contains(&low) {
                    buf[it.at] = (m & 0xf0) | low as u8;
                }
            } else if let Some(b) = buf.get_mut(it.at + it.header - 1).filter(|_| it.header > 1) {
                *b = (*b as i16 + delta) as u8;
            }
        }
        4 => {
            // Deep nesting: the item wrapped in many one-element arrays or maps.
            let depth = *pick(rng, &[10usize, 100, 200, 1000, 1023, 1024, 1025, 5000]);
            let wrap: Vec<u8> = if rng.chance(500_000) {
                vec![0x91; depth]
            } else {
                std::iter::repeat_n([0x81, 0xa1, b'a'], depth)
                    .flatten()
                    .collect()
            };
            buf.splice(it.at..it.at, wrap);
        }
        5 if it.kind == Kind::Str && !names.is_empty() => {
            let end = (it.at + it.header + it.payload).min(buf.len());
            let name = pick(rng, names).to_string();
            let new = if rng.chance(300_000) && name.len() > 1 {
                // A typo: one character lost.
                let cut = rng.range(0, name.len() as u64) as usize;
                let mut n = name.clone();
                if n.is_char_boundary(cut) && n.is_char_boundary(cut + 1) {
                    n.remove(cut);
                }
                n
            } else {
                name
            };
            buf.splice(it.at..end, str_bytes(&new));
        }
        6 => {
            // An item's bytes copied after itself (a duplicated field or element).
            let end = (it.at + it.header + it.payload).min(buf.len());
            let copy = buf[it.at..end].to_vec();
            buf.splice(end..end, copy);
        }
        _ => {
            // The input cut inside an item.
            let end = (it.at + it.header + it.payload).min(buf.len());
            let cut = it.at + pos(rng, end - it.at);
            buf.truncate(cut);
        }
    }
}
