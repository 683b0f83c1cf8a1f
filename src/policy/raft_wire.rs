//! Raft messages in our own serde types.
//!
//! Peers never make us decode protobuf (design §5.1): a raft message leaves this node as a
//! [`WireMessage`] inside our envelope, encoded with rmp-serde using named fields, and is turned
//! back into a `raft::eraftpb::Message` only after every enum value in it was checked. The
//! protobuf structs are only the in-process interface to raft-rs.
//!
//! - `From<&eraftpb::X> for WireX`: outgoing, infallible.
//! - `TryFrom<WireX> for eraftpb::X`: incoming, fails with [`WireError`] on an enum value raft-rs
//!   does not know. It never panics, whatever the bytes were.
//!
//! Every struct is `#[serde(default)]`: a field added in a later version is simply absent when an
//! older peer sends, which keeps rolling upgrades possible. The deprecated `Entry::sync_log` flag
//! is not carried: raft-rs 0.7 ignores it.

// Bytes from a peer must never be able to panic the daemon: outside tests, this module never
// unwraps, expects or panics (clippy enforces it; `scripts/test.sh` runs clippy). What raft-rs
// itself would panic on is refused in `consensus::Consensus::step`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use raft::eraftpb::{
    ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
};
use serde::{Deserialize, Serialize};

/// Why a message from the wire could not become a raft message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer sent a message type code raft-rs 0.7 does not define: a newer or broken peer.
    #[error("unknown raft message type code {0} (known: 0..={max})", max = MESSAGE_TYPES.len() - 1)]
    UnknownMessageType(u8),
    /// The peer sent an entry type code raft-rs 0.7 does not define.
    #[error("unknown raft entry type code {0} (known: 0..={max})", max = ENTRY_TYPES.len() - 1)]
    UnknownEntryType(u8),
    /// The bytes are not a MessagePack-encoded [`WireMessage`].
    #[error("cannot decode raft wire message: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// Encoding failed; with these plain types this means a bug, not bad input.
    #[error("cannot encode raft wire message: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Message types by wire code: the code is the index. One table so that both directions of the
/// mapping cannot drift apart (a test checks it against raft-rs's own discriminants).
const MESSAGE_TYPES: [MessageType; 19] = [
    MessageType::MsgHup,
    MessageType::MsgBeat,
    MessageType::MsgPropose,
    MessageType::MsgAppend,
    MessageType::MsgAppendResponse,
    MessageType::MsgRequestVote,
    MessageType::MsgRequestVoteResponse,
    MessageType::MsgSnapshot,
    MessageType::MsgHeartbeat,
    MessageType::MsgHeartbeatResponse,
    MessageType::MsgUnreachable,
    MessageType::MsgSnapStatus,
    MessageType::MsgCheckQuorum,
    MessageType::MsgTransferLeader,
    MessageType::MsgTimeoutNow,
    MessageType::MsgReadIndex,
    MessageType::MsgReadIndexResp,
    MessageType::MsgRequestPreVote,
    MessageType::MsgRequestPreVoteResponse,
];

/// Entry types by wire code, as for [`MESSAGE_TYPES`].
const ENTRY_TYPES: [EntryType; 3] = [
    EntryType::EntryNormal,
    EntryType::EntryConfChange,
    EntryType::EntryConfChangeV2,
];

/// The wire code of a raft message type (its eraftpb number, which fits a `u8`).
pub fn message_type_code(t: MessageType) -> u8 {
    t as u8
}

/// The raft message type of a wire code; an unknown code is an error, never a panic.
pub fn message_type_from_code(code: u8) -> Result<MessageType, WireError> {
    MESSAGE_TYPES
        .get(usize::from(code))
        .copied()
        .ok_or(WireError::UnknownMessageType(code))
}

/// The wire code of a raft entry type.
pub fn entry_type_code(t: EntryType) -> u8 {
    t as u8
}

/// The raft entry type of a wire code; an unknown code is an error, never a panic.
pub fn entry_type_from_code(code: u8) -> Result<EntryType, WireError> {
    ENTRY_TYPES
        .get(usize::from(code))
        .copied()
        .ok_or(WireError::UnknownEntryType(code))
}

/// A raft message as it travels between nodes. Field meanings are raft-rs's
/// (`eraftpb.proto`); the enum is a plain code so that an unknown value from a peer is
/// rejected by [`TryFrom`] with a clear error instead of failing deep inside the decoder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireMessage {
    /// Raft message type code, see [`message_type_from_code`].
    pub msg_type: u8,
    /// Receiving node id.
    pub to: u64,
    /// Sending node id.
    pub from: u64,
    /// Sender's term.
    pub term: u64,
    /// Term of the entry at `index` (the entry before the appended ones, or the rejected one).
    pub log_term: u64,
    /// Log index the message refers to.
    pub index: u64,
    /// Entries carried by an append or a proposal.
    pub entries: Vec<WireEntry>,
    /// Leader's commit index.
    pub commit: u64,
    /// Term of the entry at `commit`, lets a follower commit by vote messages.
    pub commit_term: u64,
    /// Snapshot carried by `MsgSnapshot`; `None` when the protobuf field was unset.
    /// Boxed: snapshots are rare and large, and every raft message (and so every `Message`,
    /// `Effect` and `Input`) would otherwise carry their full size inline.
    pub snapshot: Option<Box<WireSnapshot>>,
    /// Index a follower asks a snapshot for (raft-rs's request-snapshot feature).
    pub request_snapshot: u64,
    /// Whether a response rejects the request.
    pub reject: bool,
    /// On a rejected append: the follower's hint where to retry.
    pub reject_hint: u64,
    /// Opaque context (read index requests, campaign type).
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
    /// Election priority as older raft-rs versions sent it; kept so mixed versions agree.
    pub deprecated_priority: u64,
    /// Election priority.
    pub priority: i64,
}

/// One raft log entry on the wire (and in our log file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireEntry {
    /// Entry type code, see [`entry_type_from_code`].
    pub entry_type: u8,
    /// Term the entry was proposed in.
    pub term: u64,
    /// Log index of the entry.
    pub index: u64,
    /// The command (or the encoded conf change); opaque to raft.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Opaque context attached by the proposer.
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
}

/// Cluster membership as raft-rs tracks it, including joint consensus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireConfState {
    /// Voters of the incoming (or only) configuration.
    pub voters: Vec<u64>,
    /// Learners: replicate the log, never vote.
    pub learners: Vec<u64>,
    /// Voters of the outgoing configuration; non-empty only in joint consensus.
    pub voters_outgoing: Vec<u64>,
    /// Nodes that become learners when the joint configuration is left.
    pub learners_next: Vec<u64>,
    /// Whether raft leaves the joint configuration on its own.
    pub auto_leave: bool,
}

/// What a snapshot covers: the log position it replaces and the membership at that point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireSnapshotMetadata {
    /// Membership as of `index`.
    pub conf_state: WireConfState,
    /// Last log index the snapshot includes.
    pub index: u64,
    /// Term of the entry at `index`.
    pub term: u64,
}

/// A raft snapshot: the state machine's bytes plus the log position they stand for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireSnapshot {
    /// The application's state at `metadata.index`; opaque to raft.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Log position and membership the data stands for.
    pub metadata: WireSnapshotMetadata,
}

/// The raft state that must survive a crash: the current term, the vote in it, the commit index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireHardState {
    /// Current term.
    pub term: u64,
    /// Node voted for in `term` (0: none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

impl WireMessage {
    /// Encodes with named fields (a map per struct), the form peers exchange.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        Ok(rmp_serde::to_vec_named(self)?)
    }

    /// Decodes bytes received from a peer. This only checks the shape; use
    /// [`Message::try_from`] to check the enum codes as well.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

impl From<&Entry> for WireEntry {
    fn from(e: &Entry) -> Self {
        WireEntry {
            entry_type: entry_type_code(e.entry_type),
            term: e.term,
            index: e.index,
            data: e.data.to_vec(),
            context: e.context.to_vec(),
        }
    }
}

impl TryFrom<WireEntry> for Entry {
    type Error = WireError;

    fn try_from(w: WireEntry) -> Result<Self, WireError> {
        Ok(Entry {
            entry_type: entry_type_from_code(w.entry_type)?,
            term: w.term,
            index: w.index,
            data: w.data.into(),
            context: w.context.into(),
            ..Entry::default()
        })
    }
}

impl From<&ConfState> for WireConfState {
    fn from(c: &ConfState) -> Self {
        WireConfState {
            voters: c.voters.clone(),
            learners: c.learners.clone(),
            voters_outgoing: c.voters_outgoing.clone(),
            learners_next: c.learners_next.clone(),
            auto_leave: c.auto_leave,
        }
    }
}

impl From<WireConfState> for ConfState {
    fn from(w: WireConfState) -> Self {
        ConfState {
            voters: w.voters,
            learners: w.learners,
            voters_outgoing: w.voters_outgoing,
            learners_next: w.learners_next,
            auto_leave: w.auto_leave,
            ..ConfState::default()
        }
    }
}

impl From<&SnapshotMetadata> for WireSnapshotMetadata {
    fn from(m: &SnapshotMetadata) -> Self {
        WireSnapshotMetadata {
            conf_state: m.get_conf_state().into(),
            index: m.index,
            term: m.term,
        }
    }
}

impl From<WireSnapshotMetadata> for SnapshotMetadata {
    fn from(w: WireSnapshotMetadata) -> Self {
        let mut m = SnapshotMetadata {
            index: w.index,
            term: w.term,
            ..SnapshotMetadata::default()
        };
        m.set_conf_state(w.conf_state.into());
        m
    }
}

impl From<&Snapshot> for WireSnapshot {
    fn from(s: &Snapshot) -> Self {
        WireSnapshot {
            data: s.data.to_vec(),
            metadata: s.get_metadata().into(),
        }
    }
}

impl From<WireSnapshot> for Snapshot {
    fn from(w: WireSnapshot) -> Self {
        let mut s = Snapshot {
            data: w.data.into(),
            ..Snapshot::default()
        };
        s.set_metadata(w.metadata.into());
        s
    }
}

impl From<&HardState> for WireHardState {
    fn from(h: &HardState) -> Self {
        WireHardState {
            term: h.term,
            vote: h.vote,
            commit: h.commit,
        }
    }
}

impl From<WireHardState> for HardState {
    fn from(w: WireHardState) -> Self {
        HardState {
            term: w.term,
            vote: w.vote,
            commit: w.commit,
            ..HardState::default()
        }
    }
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> Self {
        WireMessage {
            msg_type: message_type_code(m.msg_type),
            to: m.to,
            from: m.from,
            term: m.term,
            log_term: m.log_term,
            index: m.index,
            entries: m.entries.iter().map(WireEntry::from).collect(),
            commit: m.commit,
            commit_term: m.commit_term,
            snapshot: m.snapshot.as_ref().map(|s| Box::new(WireSnapshot::from(s))),
            request_snapshot: m.request_snapshot,
            reject: m.reject,
            reject_hint: m.reject_hint,
            context: m.context.to_vec(),
            deprecated_priority: m.deprecated_priority,
            priority: m.priority,
        }
    }
}

impl TryFrom<WireMessage> for Message {
    type Error = WireError;

    fn try_from(w: WireMessage) -> Result<Self, WireError> {
        let entries = w
            .entries
            .into_iter()
            .map(Entry::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let mut m = Message {
            msg_type: message_type_from_code(w.msg_type)?,
            to: w.to,
            from: w.from,
            term: w.term,
            log_term: w.log_term,
            index: w.index,
            entries: entries.into(),
            commit: w.commit,
            commit_term: w.commit_term,
            request_snapshot: w.request_snapshot,
            reject: w.reject,
            reject_hint: w.reject_hint,
            context: w.context.into(),
            deprecated_priority: w.deprecated_priority,
            priority: w.priority,
            ..Message::default()
        };
        if let Some(snap) = w.snapshot {
            m.set_snapshot((*snap).into());
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny xorshift64 PRNG: deterministic from its seed, no global randomness.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn entry(index: u64, term: u64, t: EntryType, data: &[u8]) -> Entry {
        Entry {
            entry_type: t,
            index,
            term,
            data: data.to_vec().into(),
            context: b"ctx".to_vec().into(),
            ..Entry::default()
        }
    }

    fn snapshot() -> Snapshot {
        let mut s = Snapshot {
            data: b"state machine bytes".to_vec().into(),
            ..Snapshot::default()
        };
        let meta = s.mut_metadata();
        meta.index = 42;
        meta.term = 7;
        let cs = meta.mut_conf_state();
        cs.voters = vec![1, 2, 3];
        cs.learners = vec![4];
        cs.voters_outgoing = vec![1, 2, 5];
        cs.learners_next = vec![5];
        cs.auto_leave = true;
        s
    }

    fn full_message(t: MessageType) -> Message {
        let mut m = Message {
            msg_type: t,
            to: 2,
            from: 1,
            term: 9,
            log_term: 8,
            index: 100,
            entries: vec![
                entry(101, 9, EntryType::EntryNormal, b"cmd"),
                entry(102, 9, EntryType::EntryConfChange, b"cc"),
                entry(103, 9, EntryType::EntryConfChangeV2, b""),
            ]
            .into(),
            commit: 99,
            commit_term: 8,
            request_snapshot: 41,
            reject: true,
            reject_hint: 77,
            context: b"read-index".to_vec().into(),
            deprecated_priority: 3,
            priority: -4,
            ..Message::default()
        };
        m.set_snapshot(snapshot());
        m
    }

    #[test]
    fn code_tables_match_raft_discriminants() {
        for (code, t) in MESSAGE_TYPES.iter().enumerate() {
            assert_eq!(*t as usize, code);
        }
        for (code, t) in ENTRY_TYPES.iter().enumerate() {
            assert_eq!(*t as usize, code);
        }
    }

    #[test]
    fn every_message_type_round_trips() {
        for t in MESSAGE_TYPES {
            let original = full_message(t);
            let bytes = WireMessage::from(&original).encode().unwrap();
            let back = Message::try_from(WireMessage::decode(&bytes).unwrap()).unwrap();
            assert_eq!(back, original, "{t:?}");
        }
    }

    #[test]
    fn unset_snapshot_stays_unset() {
        let original = Message {
            msg_type: MessageType::MsgHeartbeat,
            ..Message::default()
        };
        let bytes = WireMessage::from(&original).encode().unwrap();
        let back = Message::try_from(WireMessage::decode(&bytes).unwrap()).unwrap();
        assert!(!back.has_snapshot());
        assert_eq!(back, original);
    }

    #[test]
    fn unknown_message_type_is_an_error() {
        let w = WireMessage {
            msg_type: 19,
            ..WireMessage::default()
        };
        assert!(matches!(
            Message::try_from(w),
            Err(WireError::UnknownMessageType(19))
        ));
        let w = WireMessage {
            msg_type: u8::MAX,
            ..WireMessage::default()
        };
        assert!(Message::try_from(w).is_err());
    }

    #[test]
    fn unknown_entry_type_is_an_error() {
        let mut w = WireMessage::from(&full_message(MessageType::MsgAppend));
        w.entries[1].entry_type = 3;
        assert!(matches!(
            Message::try_from(w),
            Err(WireError::UnknownEntryType(3))
        ));
    }

    #[test]
    fn out_of_range_msg_type_in_bytes_is_an_error() {
        // A msg_type that does not fit a u8 fails in the decoder, not with a panic.
        #[derive(Serialize)]
        struct Evil {
            msg_type: u64,
        }
        let bytes = rmp_serde::to_vec_named(&Evil { msg_type: 1 << 40 }).unwrap();
        assert!(WireMessage::decode(&bytes).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let valid = WireMessage::from(&full_message(MessageType::MsgAppend))
            .encode()
            .unwrap();
        let mut accepted = 0u32;
        for round in 0..20_000u32 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                // Pure noise.
                let len = rng.below(200) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                // A valid message with a few bytes flipped and maybe cut short: reaches deeper.
                let mut b = valid.clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(b.len() as u64) as usize;
                    b[at] = rng.next() as u8;
                }
                let keep = b.len() - rng.below(4) as usize;
                b.truncate(keep);
                b
            };
            if let Ok(w) = WireMessage::decode(&bytes) {
                if Message::try_from(w).is_ok() {
                    accepted += 1;
                }
            }
        }
        // Some mutations only touch values, so some inputs must still be accepted.
        assert!(accepted > 0);
    }
}
