//! The control request parser: one line from a client of the control socket, through
//! [`parse_request`], the function the server reads every line with.

use crate::control::{parse_request, LineError, Request, MAX_REQUEST_BYTES};
use crate::fuzz::mutate::pick;
use crate::fuzz::text::{self, Syntax};
use crate::fuzz::{kind_of, Outcome, Target};
use crate::policy::rng::Rng;

const WORDS: &[&str] = &[
    "cmd",
    "status",
    "watch",
    "move",
    "standby",
    "unstandby",
    "maintenance",
    "failback",
    "clear",
    "cut_path",
    "interval_ms",
    "group",
    "node",
    "on",
    "target",
    "path",
    "true",
    "false",
    "null",
    "Status",
    "MOVE",
    "nod",
    "dry_run",
];

const FRAGMENTS: &[&str] = &[
    ",\"node\":\"n2\"",
    ",\"node\":null",
    ",\"group\":\"web\"",
    ",\"x\":1",
    ",\"cmd\":\"status\"",
    ",\"interval_ms\":4294967296",
    ",\"on\":1",
    "\"cmd\":\"move\",",
    "\\u0000",
    "\n",
    " ",
    "{}",
    "[]",
];

fn name(rng: &mut Rng) -> String {
    pick(
        rng,
        &["web", "n1", "", "é😀", "a\"b", "a\\b", "\u{0}", "x y"],
    )
    .to_string()
}

fn request(rng: &mut Rng) -> Request {
    match rng.range(0, 9) {
        0 => Request::Status {},
        1 => Request::Watch {
            interval_ms: rng
                .chance(500_000)
                .then(|| *pick(rng, &[0, 99, 100, 1000, u32::MAX])),
        },
        2 => Request::Move {
            group: name(rng),
            node: rng.chance(500_000).then(|| name(rng)),
        },
        3 => Request::Standby { node: name(rng) },
        4 => Request::Unstandby { node: name(rng) },
        5 => Request::Maintenance {
            on: rng.chance(500_000),
        },
        6 => Request::Failback { group: name(rng) },
        7 => Request::Clear { target: name(rng) },
        _ => Request::CutPath { path: name(rng) },
    }
}

/// The `control` target.
pub struct ControlTarget {
    seeds: Vec<Vec<u8>>,
}

impl ControlTarget {
    /// Every request kind, written as a client writes it.
    pub fn new() -> ControlTarget {
        let mut rng = Rng::new(0x5eed);
        let seeds = (0..64)
            .filter_map(|_| serde_json::to_vec(&request(&mut rng)).ok())
            .collect();
        ControlTarget { seeds }
    }
}

impl Default for ControlTarget {
    fn default() -> ControlTarget {
        ControlTarget::new()
    }
}

impl Target for ControlTarget {
    fn name(&self) -> &'static str {
        "control"
    }

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        serde_json::to_vec(&request(rng)).ok()
    }

    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, _corpus: &[Vec<u8>]) {
        text::mutate(rng, input, Syntax::Json, WORDS, FRAGMENTS);
    }

    fn max_len(&self) -> usize {
        MAX_REQUEST_BYTES + 16
    }

    fn is_text(&self) -> bool {
        true
    }

    fn exec(&self, input: &[u8]) -> Result<Outcome, String> {
        let req = match parse_request(input) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Outcome::Refused("blank".into())),
            Err(LineError::TooLong) => return Ok(Outcome::Refused("too long".into())),
            Err(LineError::NotText) => return Ok(Outcome::Refused("not text".into())),
            Err(LineError::Malformed(m)) => return Ok(Outcome::Refused(kind_of(&m))),
        };
        let line = serde_json::to_vec(&req).map_err(|e| format!("{req:?} does not encode: {e}"))?;
        match parse_request(&line) {
            Ok(Some(again)) if again == req => Ok(Outcome::Accepted),
            other => Err(format!("{req:?} written again reads as {other:?}")),
        }
    }
}
