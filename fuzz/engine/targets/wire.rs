//! What travels between nodes: the envelope, the raft message inside it, a log entry's
//! command inside that, and the state a snapshot carries.

use raft::eraftpb;

use crate::config::ClusterConfig;
use crate::fuzz::mutate::pick;
use crate::fuzz::{kind_of, msgpack, Outcome, Target};
use crate::policy::entry::{EntryError, Keys};
use crate::policy::group::GroupStatus;
use crate::policy::lease::Grant;
use crate::policy::message::{Heartbeat, Message};
use crate::policy::raft_wire::{
    WireConfState, WireEntry, WireError, WireMessage, WireSnapshot, WireSnapshotMetadata,
};
use crate::policy::rng::Rng;
use crate::policy::snapshot;
use crate::policy::spec::ClusterSpec;
use crate::policy::state::{AdminCommand, Cause, ClusterState, Command, Release};
use crate::transport::envelope::{Body, DecodeError, Envelope, Expect, PROTOCOL_VERSION};

/// The config whose names the entries use.
const CONFIG: &str = include_str!("../../../config/three-node.toml");

/// Field and variant names of the envelope, the messages, raft's wire types and commands.
const NAMES: &[&str] = &[
    "version",
    "cluster",
    "digest",
    "sender",
    "incarnation",
    "body",
    "Hello",
    "HelloAck",
    "Heartbeat",
    "Message",
    "Raft",
    "Vote",
    "LeaseRequest",
    "LeaseGrant",
    "Report",
    "Admin",
    "AdminRefused",
    "msg",
    "stamp_us",
    "term",
    "echo_us",
    "valid_us",
    "commit",
    "group",
    "epoch",
    "status",
    "stopping",
    "cmd",
    "why",
    "Move",
    "Standby",
    "Maintenance",
    "FailbackNow",
    "ClearFailures",
    "FailuresExpired",
    "to",
    "node",
    "on",
    "msg_type",
    "from",
    "log_term",
    "index",
    "entries",
    "commit_term",
    "snapshot",
    "request_snapshot",
    "reject",
    "reject_hint",
    "context",
    "deprecated_priority",
    "priority",
    "entry_type",
    "data",
    "metadata",
    "conf_state",
    "voters",
    "learners",
    "voters_outgoing",
    "learners_next",
    "auto_leave",
    "Activate",
    "Stop",
    "Released",
    "Failed",
    "Fenced",
    "Solo",
    "Joined",
    "ScheduleFired",
    "Config",
    "cause",
    "how",
    "through",
    "peer",
    "stamp",
    "k",
    "c",
    "Initial",
    "Failure",
    "Failback",
    "Schedule",
    "Shutdown",
    "Capacity",
    "Confirmed",
    "LeaseExpired",
    "Starting",
    "Running",
    "Stopping",
    "Stopped",
    "CannotRun",
    "StopFailed",
    "fuzz",
    "n1",
    "n2",
    "",
];

fn spec() -> ClusterSpec {
    match ClusterConfig::from_str(CONFIG, "three-node.toml") {
        Ok(c) => c.spec(),
        Err(e) => panic!("the example config three-node.toml must load: {e}"),
    }
}

/// A number that is usually small, sometimes on a boundary, sometimes anything.
fn num(rng: &mut Rng) -> u64 {
    match rng.range(0, 4) {
        0 => rng.range(0, 4),
        1 => *pick(rng, &crate::fuzz::mutate::INTERESTING_INTS),
        2 => rng.range(0, 100_000),
        _ => rng.next_u64(),
    }
}

fn bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    (0..rng.range(0, max))
        .map(|_| rng.next_u64() as u8)
        .collect()
}

fn ids(rng: &mut Rng) -> Vec<u64> {
    (0..rng.range(0, 5)).map(|_| rng.range(1, 6)).collect()
}

/// A command whose ids all name something of `spec` (so that it survives the log).
fn command(rng: &mut Rng, spec: &ClusterSpec) -> Command {
    let group = rng.range(0, spec.groups.len() as u64) as u16;
    let node = rng.range(0, spec.nodes.len() as u64) as u16;
    let cause = *pick(
        rng,
        &[
            Cause::Initial,
            Cause::Failure,
            Cause::Admin,
            Cause::Failback,
            Cause::Schedule,
            Cause::Standby,
            Cause::Shutdown,
            Cause::Capacity,
        ],
    );
    let epoch = num(rng);
    match rng.range(0, 10) {
        0 => Command::Activate { group, node, cause },
        1 => Command::Stop {
            group,
            node,
            epoch,
            cause,
        },
        2 => Command::Released {
            group,
            node,
            epoch,
            how: *pick(
                rng,
                &[Release::Confirmed, Release::LeaseExpired, Release::Fenced],
            ),
        },
        3 => Command::Failed {
            group,
            node,
            epoch,
            everywhere: epoch % 2 == 0,
        },
        4 => Command::Fenced {
            node,
            through: epoch,
        },
        5 => Command::Solo {
            node,
            peer: rng.range(0, spec.nodes.len() as u64) as u16,
            through: epoch,
        },
        6 => Command::Joined {
            node,
            incarnation: epoch,
        },
        7 => Command::Admin(admin(rng, spec)),
        8 if !spec.schedules.is_empty() => Command::ScheduleFired {
            index: rng.range(0, spec.schedules.len() as u64) as u16,
            stamp: epoch,
        },
        _ => Command::Config { digest: epoch },
    }
}

fn admin(rng: &mut Rng, spec: &ClusterSpec) -> AdminCommand {
    let group = rng.range(0, spec.groups.len() as u64) as u16;
    let node = rng.range(0, spec.nodes.len() as u64) as u16;
    let on = rng.chance(500_000);
    match rng.range(0, 5) {
        0 => AdminCommand::Move {
            group,
            to: on.then_some(node),
        },
        1 => AdminCommand::Standby { node, on },
        2 => AdminCommand::Maintenance { on },
        3 => AdminCommand::FailbackNow { group },
        _ => AdminCommand::ClearFailures {
            group,
            node: on.then_some(node),
        },
    }
}

fn wire_message(rng: &mut Rng, spec: &ClusterSpec, keys: &Keys) -> WireMessage {
    let entries = (0..rng.range(0, 4))
        .map(|_| WireEntry {
            entry_type: rng.range(0, 4) as u8,
            term: num(rng),
            index: num(rng),
            data: if rng.chance(700_000) {
                keys.encode(&command(rng, spec)).unwrap_or_default()
            } else {
                bytes(rng, 16)
            },
            context: bytes(rng, 4),
        })
        .collect();
    let snapshot = rng.chance(200_000).then(|| {
        Box::new(WireSnapshot {
            data: bytes(rng, 64),
            metadata: WireSnapshotMetadata {
                conf_state: WireConfState {
                    voters: ids(rng),
                    learners: ids(rng),
                    voters_outgoing: ids(rng),
                    learners_next: ids(rng),
                    auto_leave: rng.chance(500_000),
                },
                index: num(rng),
                term: num(rng),
            },
        })
    });
    WireMessage {
        msg_type: rng.range(0, 20) as u8,
        to: num(rng),
        from: num(rng),
        term: num(rng),
        log_term: num(rng),
        index: num(rng),
        entries,
        commit: num(rng),
        commit_term: num(rng),
        snapshot,
        request_snapshot: num(rng),
        reject: rng.chance(300_000),
        reject_hint: num(rng),
        context: bytes(rng, 8),
        deprecated_priority: num(rng),
        priority: num(rng) as i64,
    }
}

fn message(rng: &mut Rng, spec: &ClusterSpec, keys: &Keys) -> Message {
    match rng.range(0, 7) {
        0 => Message::Raft {
            msg: Box::new(wire_message(rng, spec, keys)),
            stamp_us: num(rng),
        },
        1 => Message::Vote {
            msg: Box::new(wire_message(rng, spec, keys)),
            digest: num(rng),
        },
        2 => Message::LeaseRequest { stamp_us: num(rng) },
        3 => Message::LeaseGrant(Grant {
            term: num(rng),
            echo_us: num(rng),
            valid_us: num(rng),
            commit: num(rng),
        }),
        4 => Message::Report {
            group: num(rng) as u16,
            epoch: num(rng),
            status: *pick(
                rng,
                &[
                    GroupStatus::Starting,
                    GroupStatus::Running,
                    GroupStatus::Stopping,
                    GroupStatus::Stopped,
                    GroupStatus::CannotRun,
                    GroupStatus::StopFailed,
                ],
            ),
            stopping: rng.chance(500_000),
        },
        5 => Message::Admin(admin(rng, spec)),
        _ => Message::AdminRefused {
            cmd: admin(rng, spec),
            why: pick(rng, &["", "no node \"n9\"", "é😀"]).to_string(),
        },
    }
}

fn envelope(rng: &mut Rng, spec: &ClusterSpec, keys: &Keys) -> Envelope {
    let body = match rng.range(0, 5) {
        0 => Body::Hello,
        1 => Body::HelloAck,
        2 => Body::Heartbeat(Heartbeat {
            incarnation: num(rng),
            digest: num(rng),
        }),
        _ => Body::Message(message(rng, spec, keys)),
    };
    Envelope {
        version: if rng.chance(950_000) {
            PROTOCOL_VERSION
        } else {
            num(rng) as u16
        },
        cluster: if rng.chance(950_000) { "fuzz" } else { "other" }.to_string(),
        digest: num(rng),
        sender: if rng.chance(950_000) { "n1" } else { "n2" }.to_string(),
        incarnation: num(rng),
        body,
    }
}

/// Seeds made by the generators from fixed seeds: every variant comes up among them.
fn seeds_of(mut make: impl FnMut(&mut Rng) -> Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x5eed);
    (0..64).filter_map(|_| make(&mut rng)).collect()
}

/// The `envelope` target: [`Envelope::decode`] as a node reads a peer's datagram or stream.
pub struct EnvelopeTarget {
    spec: ClusterSpec,
    keys: Keys,
    seeds: Vec<Vec<u8>>,
}

/// What a node expects of its peer n1 in cluster `fuzz`.
const EXPECT: Expect<'static> = Expect {
    cluster: "fuzz",
    sender: Some("n1"),
};

impl EnvelopeTarget {
    /// With its seeds.
    pub fn new() -> EnvelopeTarget {
        let spec = spec();
        let keys = Keys::new(&spec);
        let seeds = seeds_of(|rng| {
            let mut e = envelope(rng, &spec, &keys);
            (e.version, e.cluster, e.sender) = (PROTOCOL_VERSION, "fuzz".into(), "n1".into());
            e.encode().ok()
        });
        EnvelopeTarget { spec, keys, seeds }
    }
}

impl Default for EnvelopeTarget {
    fn default() -> EnvelopeTarget {
        EnvelopeTarget::new()
    }
}

impl Target for EnvelopeTarget {
    fn name(&self) -> &'static str {
        "envelope"
    }

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        envelope(rng, &self.spec, &self.keys).encode().ok()
    }

    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, _corpus: &[Vec<u8>]) {
        msgpack::mutate(rng, input, NAMES);
    }

    fn max_len(&self) -> usize {
        64 * 1024
    }

    fn exec(&self, input: &[u8]) -> Result<Outcome, String> {
        let env = match Envelope::decode(input, EXPECT) {
            Ok(env) => env,
            Err(e) => {
                return Ok(Outcome::Refused(match e {
                    DecodeError::Malformed(m) => format!("malformed: {}", kind_of(&m)),
                    DecodeError::TooLarge { .. } => "too large".into(),
                    DecodeError::WrongVersion { .. } => "wrong version".into(),
                    DecodeError::WrongCluster { .. } => "wrong cluster".into(),
                    DecodeError::WrongSender { .. } => "wrong sender".into(),
                }))
            }
        };
        let again = env
            .encode()
            .map_err(|e| format!("a decoded envelope does not encode: {e}"))?;
        match Envelope::decode(&again, EXPECT) {
            Ok(e2) if e2 == env => {}
            other => return Err(format!("{env:?} encoded again decodes to {other:?}")),
        }
        if let Body::Message(Message::Raft { msg, .. } | Message::Vote { msg, .. }) = env.body {
            raft_properties(*msg)?;
        }
        Ok(Outcome::Accepted)
    }
}

/// What holds of every decoded raft message: it encodes and decodes to itself, and if it
/// becomes a raft-rs message, that message becomes the same wire message again.
fn raft_properties(w: WireMessage) -> Result<Outcome, String> {
    let again = w
        .encode()
        .map_err(|e| format!("a decoded raft message does not encode: {e}"))?;
    match WireMessage::decode(&again) {
        Ok(w2) if w2 == w => {}
        other => return Err(format!("{w:?} encoded again decodes to {other:?}")),
    }
    match eraftpb::Message::try_from(w.clone()) {
        Ok(m) => {
            let back = WireMessage::from(&m);
            if back != w {
                return Err(format!("{w:?} through raft-rs comes back as {back:?}"));
            }
            Ok(Outcome::Accepted)
        }
        Err(e) => Ok(Outcome::Refused(wire_error_kind(&e))),
    }
}

fn wire_error_kind(e: &WireError) -> String {
    match e {
        WireError::UnknownMessageType(_) => "unknown message type".into(),
        WireError::UnknownEntryType(_) => "unknown entry type".into(),
        WireError::Decode(d) => format!("decode: {}", kind_of(&d.to_string())),
        WireError::Encode(_) => "encode".into(),
    }
}

/// The `raft` target: [`WireMessage::decode`], then its round trips (encoded again, and
/// through raft-rs's own message and back).
pub struct RaftTarget {
    spec: ClusterSpec,
    keys: Keys,
    seeds: Vec<Vec<u8>>,
}

impl RaftTarget {
    /// With its seeds.
    pub fn new() -> RaftTarget {
        let spec = spec();
        let keys = Keys::new(&spec);
        let seeds = seeds_of(|rng| wire_message(rng, &spec, &keys).encode().ok());
        RaftTarget { spec, keys, seeds }
    }
}

impl Default for RaftTarget {
    fn default() -> RaftTarget {
        RaftTarget::new()
    }
}

impl Target for RaftTarget {
    fn name(&self) -> &'static str {
        "raft"
    }

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        wire_message(rng, &self.spec, &self.keys).encode().ok()
    }

    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, _corpus: &[Vec<u8>]) {
        msgpack::mutate(rng, input, NAMES);
    }

    fn max_len(&self) -> usize {
        64 * 1024
    }

    fn exec(&self, input: &[u8]) -> Result<Outcome, String> {
        match WireMessage::decode(input) {
            Ok(w) => raft_properties(w),
            Err(e) => Ok(Outcome::Refused(wire_error_kind(&e))),
        }
    }
}

/// The `entry` target: [`Keys::decode`] of a committed entry's data, as every node applies
/// it; a command read must encode to the same bytes' meaning.
pub struct EntryTarget {
    spec: ClusterSpec,
    keys: Keys,
    seeds: Vec<Vec<u8>>,
}

impl EntryTarget {
    /// With its seeds.
    pub fn new() -> EntryTarget {
        let spec = spec();
        let keys = Keys::new(&spec);
        let seeds = seeds_of(|rng| keys.encode(&command(rng, &spec)).ok());
        EntryTarget { spec, keys, seeds }
    }
}

impl Default for EntryTarget {
    fn default() -> EntryTarget {
        EntryTarget::new()
    }
}

impl Target for EntryTarget {
    fn name(&self) -> &'static str {
        "entry"
    }

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        self.keys.encode(&command(rng, &self.spec)).ok()
    }

    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, _corpus: &[Vec<u8>]) {
        msgpack::mutate(rng, input, NAMES);
    }

    fn max_len(&self) -> usize {
        4096
    }

    fn exec(&self, input: &[u8]) -> Result<Outcome, String> {
        let cmd = match self.keys.decode(input) {
            Ok(c) => c,
            Err(EntryError::Malformed(m)) => {
                return Ok(Outcome::Refused(format!("malformed: {}", kind_of(&m))))
            }
            Err(EntryError::Unknown { kind, .. }) => {
                return Ok(Outcome::Refused(format!("unknown {kind}")))
            }
        };
        let again = self
            .keys
            .encode(&cmd)
            .map_err(|e| format!("a decoded command does not encode: {e}"))?;
        match self.keys.decode(&again) {
            Ok(c2) if c2 == cmd => Ok(Outcome::Accepted),
            other => Err(format!("{cmd:?} encoded again decodes to {other:?}")),
        }
    }
}

/// Field names of a snapshot's stored form (`policy/snapshot.rs`).
const SNAPSHOT_NAMES: &[&str] = &[
    "format",
    "groups",
    "standby",
    "maintenance",
    "schedule_fired",
    "solo",
    "joined",
    "config",
    "applied",
    "instances",
    "failures",
    "home",
    "avoid",
    "failback_now",
    "request_cause",
    "last_cause",
    "last_epoch",
    "version",
    "node",
    "epoch",
    "stopping",
    "stop_cause",
];

/// The `snapshot` target: [`snapshot::decode`] of the state a coordinator sends a follower
/// too far behind, and a node reads at start; a state read must encode to the same meaning.
pub struct SnapshotTarget {
    spec: ClusterSpec,
    keys: Keys,
    seeds: Vec<Vec<u8>>,
}

impl SnapshotTarget {
    /// With its seeds: states reached by applying random commands.
    pub fn new() -> SnapshotTarget {
        let spec = spec();
        let keys = Keys::new(&spec);
        let seeds = seeds_of(|rng| snapshot::encode(&state(rng, &spec), &keys).ok());
        SnapshotTarget { spec, keys, seeds }
    }
}

impl Default for SnapshotTarget {
    fn default() -> SnapshotTarget {
        SnapshotTarget::new()
    }
}

/// A state after up to 40 random commands.
fn state(rng: &mut Rng, spec: &ClusterSpec) -> ClusterState {
    let mut s = ClusterState::new(spec);
    for index in 1..=rng.range(0, 41) {
        s.apply(spec, index, &command(rng, spec));
    }
    s
}

impl Target for SnapshotTarget {
    fn name(&self) -> &'static str {
        "snapshot"
    }

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        snapshot::encode(&state(rng, &self.spec), &self.keys).ok()
    }

    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, _corpus: &[Vec<u8>]) {
        msgpack::mutate(rng, input, SNAPSHOT_NAMES);
    }

    fn max_len(&self) -> usize {
        16384
    }

    fn exec(&self, input: &[u8]) -> Result<Outcome, String> {
        let (state, unknown) = match snapshot::decode(input, &self.spec, &self.keys) {
            Ok(x) => x,
            Err(EntryError::Malformed(m)) => {
                return Ok(Outcome::Refused(format!("malformed: {}", kind_of(&m))))
            }
            Err(EntryError::Unknown { kind, .. }) => {
                return Ok(Outcome::Refused(format!("unknown {kind}")))
            }
        };
        let again = snapshot::encode(&state, &self.keys)
            .map_err(|e| format!("a decoded state does not encode: {e}"))?;
        match snapshot::decode(&again, &self.spec, &self.keys) {
            Ok((s2, None)) if s2 == state => Ok(match unknown {
                None => Outcome::Accepted,
                Some(_) => Outcome::Refused("names what this config lacks".into()),
            }),
            other => Err(format!("{state:?} encoded again decodes to {other:?}")),
        }
    }
}
