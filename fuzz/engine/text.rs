//! Text-aware mutators for TOML and JSON: numbers become boundary values, strings become
//! empty, long, odd or each other, keys are swapped or misspelt, lines are dropped,
//! duplicated, swapped and repeated, and values nest deep.

use super::mutate::{pick, pos};
use crate::policy::rng::Rng;

/// Numbers on a boundary of some type, or not numbers any parser agrees on.
pub const BOUNDARY_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "1e309",
    "-1e309",
    "1e-400",
    "0.0",
    "-0",
    "nan",
    "inf",
    "-inf",
    "0x7fffffff",
    "0o777",
    "0b1",
    "1_000",
    "01",
    "1.5",
    "0.01",
    "1e3",
    "999999999999999999999999999999",
];

/// Strings (the quotes included) that are empty, long, odd, or not quite strings.
const ODD_STRINGS: &[&str] = &[
    "\"\"",
    "\" \"",
    "\"\\u0000\"",
    "\"\\u0007bell\"",
    "\"é\"",
    "\"😀\"",
    "\"a/b\"",
    "\"../../etc/passwd\"",
    "\"%s%n\"",
    "\"\\\\\"",
    "\"\\\"\"",
    "\"\\ud800\"",
    "\"\\x41\"",
    "\"line\\nbreak\"",
    "'literal'",
    "\"\"\"multi\nline\"\"\"",
    "\"unterminated",
    "\"0.0.0.0:0\"",
    "\"[::1]:7400\"",
    "\"256.1.1.1:7400\"",
    "\"10.0.0.1:99999\"",
    "\"10.0.0.1/33\"",
    "\"* * * * *\"",
    "\"61 25 * * *\"",
    "\"25:00-26:00\"",
    "\"00:00-00:00\"",
    "true",
    "[]",
    "{}",
];

/// Bytes that mean something to TOML or JSON.
const PUNCTUATION: &[u8] = b"\"'[]{}=,.:#\\\n\r\t \x00\x7f";

/// A token of a text input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Number,
    Str,
    Word,
}

/// The tokens of `buf`: (kind, start, end).
fn tokens(buf: &[u8], max: usize) -> Vec<(Tok, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() && out.len() < max {
        let c = buf[i];
        let start = i;
        if c == b'"' {
            i += 1;
            while i < buf.len() && buf[i] != b'"' && buf[i] != b'\n' {
                i += if buf[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(buf.len());
            out.push((Tok::Str, start, i));
        } else if c.is_ascii_digit()
            || (c == b'-' && buf.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
            while i < buf.len() && (buf[i].is_ascii_alphanumeric() || b"._+-".contains(&buf[i])) {
                i += 1;
            }
            out.push((Tok::Number, start, i));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < buf.len()
                && (buf[i].is_ascii_alphanumeric() || buf[i] == b'_' || buf[i] == b'-')
            {
                i += 1;
            }
            out.push((Tok::Word, start, i));
        } else {
            i += 1;
        }
    }
    out
}

/// The start of every line (offsets), and the end.
fn lines(buf: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        buf.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    if *starts.last().unwrap_or(&0) != buf.len() {
        starts.push(buf.len());
    }
    starts
}

/// A random line's range (its newline included).
fn line(rng: &mut Rng, buf: &[u8]) -> (usize, usize) {
    let starts = lines(buf);
    if starts.len() < 2 {
        return (0, buf.len());
    }
    let k = rng.range(0, starts.len() as u64 - 1) as usize;
    (starts[k], starts[k + 1])
}

/// The grammar a text is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// TOML (`cluster.toml`).
    Toml,
    /// One JSON line (a control request).
    Json,
}

/// One text-aware mutation of `buf`. `words` are keys and values the format knows;
/// `lines_to_add` are whole lines (TOML) or fragments (JSON) worth inserting.
pub fn mutate(
    rng: &mut Rng,
    buf: &mut Vec<u8>,
    syntax: Syntax,
    words: &[&str],
    lines_to_add: &[&str],
) {
    let toks = tokens(buf, 20_000);
    let of = |rng: &mut Rng, kind: Tok| {
        let found: Vec<_> = toks.iter().filter(|t| t.0 == kind).collect();
        (!found.is_empty()).then(|| *pick(rng, &found)).copied()
    };
    match rng.range(0, 14) {
        0 | 1 => {
            if let Some((_, a, b)) = of(rng, Tok::Number) {
                buf.splice(a..b, pick(rng, BOUNDARY_NUMBERS).bytes());
            }
        }
        2 => {
            if let Some((_, a, b)) = of(rng, Tok::Str) {
                let new: Vec<u8> = match rng.range(0, 3) {
                    0 => pick(rng, ODD_STRINGS).bytes().collect(),
                    1 => {
                        let n = if rng.chance(20_000) {
                            70_000
                        } else {
                            *pick(rng, &[64usize, 65, 256, 4096])
                        };
                        let mut s = vec![b'"'];
                        s.extend(std::iter::repeat_n(b'x', n));
                        s.push(b'"');
                        s
                    }
                    _ => {
                        // Another string of the input: names that collide.
                        let other = toks.iter().filter(|t| t.0 == Tok::Str).collect::<Vec<_>>();
                        let &&(_, c, d) = pick(rng, &other);
                        buf[c..d].to_vec()
                    }
                };
                buf.splice(a..b, new);
            }
        }
        3 => {
            if let Some((_, a, b)) = of(rng, Tok::Word) {
                let new = if words.is_empty() || rng.chance(300_000) {
                    let other = toks.iter().filter(|t| t.0 == Tok::Word).collect::<Vec<_>>();
                    let &&(_, c, d) = pick(rng, &other);
                    buf[c..d].to_vec()
                } else {
                    pick(rng, words).as_bytes().to_vec()
                };
                buf.splice(a..b, new);
            }
        }
        4 => {
            if let Some((_, a, b)) = of(rng, Tok::Word) {
                // A typo: a letter dropped or doubled.
                if b > a {
                    let at = a + pos(rng, b - a - 1);
                    if rng.chance(500_000) {
                        buf.remove(at);
                    } else {
                        let c = buf[at];
                        buf.insert(at, c);
                    }
                }
            }
        }
        5 => {
            let (a, b) = line(rng, buf);
            buf.drain(a..b);
        }
        6 => {
            let (a, b) = line(rng, buf);
            let copy = buf[a..b].to_vec();
            buf.splice(a..a, copy);
        }
        7 => {
            // A block of lines repeated: many sections, a long list.
            let starts = lines(buf);
            if starts.len() >= 2 {
                let i = rng.range(0, starts.len() as u64 - 1) as usize;
                let j = (i + 1 + rng.range(0, 12) as usize).min(starts.len() - 1);
                let copy = buf[starts[i]..starts[j]].to_vec();
                let times = match rng.range(0, 100) {
                    0..=1 => 1000,
                    2..=6 => 200,
                    7..=20 => 30,
                    _ => rng.range(2, 6) as usize,
                };
                let at = starts[j];
                let mut block = Vec::with_capacity(copy.len() * times);
                for _ in 0..times {
                    block.extend_from_slice(&copy);
                }
                buf.splice(at..at, block);
            }
        }
        8 => {
            let (a, b) = line(rng, buf);
            let (c, d) = line(rng, buf);
            if b <= c {
                let first = buf[a..b].to_vec();
                let second = buf[c..d].to_vec();
                buf.splice(c..d, first);
                buf.splice(a..b, second);
            }
        }
        9 => {
            let depth = *pick(rng, &[10usize, 64, 127, 128, 129, 200, 1000, 5000]);
            let nest: String = match (syntax, rng.range(0, 2)) {
                (Syntax::Toml, 0) => format!("x = {}1{}\n", "[".repeat(depth), "]".repeat(depth)),
                (Syntax::Toml, _) => format!("x = {}1{}\n", "{a=".repeat(depth), "}".repeat(depth)),
                (Syntax::Json, 0) => format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
                (Syntax::Json, _) => format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
            };
            let at = match syntax {
                Syntax::Toml => line(rng, buf).0,
                Syntax::Json => {
                    // After a colon, where a value goes.
                    let colons: Vec<usize> = buf
                        .iter()
                        .enumerate()
                        .filter(|&(_, &b)| b == b':')
                        .map(|(i, _)| i + 1)
                        .collect();
                    if colons.is_empty() {
                        0
                    } else {
                        *pick(rng, &colons)
                    }
                }
            };
            buf.splice(at..at, nest.into_bytes());
        }
        10 if !lines_to_add.is_empty() => {
            let at = match syntax {
                Syntax::Toml => line(rng, buf).0,
                Syntax::Json => pos(rng, buf.len()),
            };
            buf.splice(at..at, pick(rng, lines_to_add).bytes());
        }
        11 => {
            let at = pos(rng, buf.len());
            buf.insert(at, *pick(rng, PUNCTUATION));
        }
        12 => {
            if let Some((_, _, b)) = of(rng, Tok::Number) {
                // A number stretched: many digits, or an exponent.
                let tail = *pick(
                    rng,
                    &["0000000000000000000000", "e308", ".5", "_", "e", "."],
                );
                buf.splice(b..b, tail.bytes());
            }
        }
        _ => {
            // A key's value replaced by a value of another type.
            if let Some(eq) = toks
                .iter()
                .filter(|t| t.0 != Tok::Word)
                .map(|t| (t.1, t.2))
                .collect::<Vec<_>>()
                .get(rng.range(0, toks.len().max(1) as u64) as usize)
                .copied()
            {
                let v = *pick(
                    rng,
                    &[
                        "true",
                        "[]",
                        "{}",
                        "\"\"",
                        "0",
                        "-1",
                        "[1, \"a\"]",
                        "1979-05-27T07:32:00Z",
                        "null",
                    ],
                );
                buf.splice(eq.0..eq.1, v.bytes());
            }
        }
    }
}
