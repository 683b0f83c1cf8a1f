//! The consensus core: raft-rs driven as a pure state machine.
//!
//! The caller owns the loop: [`Consensus::tick`] on every raft tick, [`Consensus::step`] for
//! every consensus message, [`Consensus::propose`] for a command, then [`Consensus::drain`] to
//! persist, collect the messages to send and the committed commands to apply. Raft messages
//! leave as [`WireMessage`]s — never protobuf bytes.
//!
//! Two things are added to plain raft:
//!
//! - **Seeded elections.** raft-rs draws its randomized election timeout from the thread's
//!   generator; we overwrite it from our seeded [`Rng`] whenever raft reset it (a term or role
//!   change), before the next tick can read it, so a simulation replays exactly.
//! - **Heartbeat stamps** for the leader's quorum anchor ([`super::lease`]): the leader stamps
//!   each `MsgHeartbeat` with its clock; a follower that accepted it echoes the stamp on its
//!   `MsgHeartbeatResponse`; [`Consensus::step`] hands the echoes back to the caller.

use raft::eraftpb::{
    ConfChange, ConfChangeType, Entry, EntryType, Message as RaftMessage, MessageType, Snapshot,
};
use raft::{Config, ProgressState, RawNode, SnapshotStatus, StateRole, Storage};

use super::entry::{EntryError, Keys};
use super::raft_log::{MemLog, Persist, StoreError};
use super::raft_wire::WireMessage;
use super::rng::Rng;
use super::spec::{ClusterSpec, NodeId};
use super::state::Command;

/// Raft ids are 1-based (0 means "none").
pub fn raft_id(node: NodeId) -> u64 {
    u64::from(node) + 1
}

/// The node of a raft id, if it is one.
pub fn node_of(id: u64, nodes: usize) -> Option<NodeId> {
    (id >= 1 && id <= nodes as u64).then(|| (id - 1) as NodeId)
}

/// Why the consensus core could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// raft-rs refused (bad config or inconsistent storage).
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The log store failed to persist.
    #[error("log store: {0}")]
    Store(#[from] StoreError),
    /// The state could not be written as a snapshot.
    #[error("snapshot: {0}")]
    Snapshot(#[from] EntryError),
}

/// A message to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// To whom.
    pub to: NodeId,
    /// The raft message (boxed, as it travels in [`super::message::Message::Raft`]).
    pub msg: Box<WireMessage>,
    /// Heartbeat stamp or echo (0 if neither).
    pub stamp_us: u64,
}

/// The consensus core of one node.
pub struct Consensus {
    raw: RawNode<MemLog>,
    nodes: usize,
    rng: Rng,
    min_election: usize,
    max_election: usize,
    seen: (u64, StateRole),
    /// Follower side: (leader raft id, term, stamp) of the newest stamped heartbeat accepted.
    leader_stamp: Option<(u64, u64, u64)>,
    /// The number of the last `Ready` handed out as a [`Persist`] batch, and of the last one
    /// the shell reported durable: while they differ, batches are in flight.
    emitted: u64,
    persisted: u64,
    /// [`Consensus::go_alone`] waits for the log to be durable before it campaigns.
    campaign_waits: bool,
    /// How this node's config names groups and nodes in the log.
    keys: Keys,
    /// Committed entries this node could not read, since the last
    /// [`Consensus::take_unreadable`]: (index, why).
    unreadable: Vec<(u64, EntryError)>,
    /// A snapshot from the leader replaced the log since the last
    /// [`Consensus::take_restored`]: its index and data.
    restored: Option<(u64, Vec<u8>)>,
    /// The batch that holds a snapshot from the leader, not yet durable: raft may count
    /// nothing as applied until it is (raft-rs's rule for an asynchronous ready).
    snapshot_batch: Option<u64>,
    /// As leader, since the last [`Consensus::take_behind`]: followers whose log ends before
    /// what they had acknowledged (peer, acknowledged through, log ends at).
    behind: Vec<(NodeId, u64, u64)>,
    /// This node discarded its log to rejoin ([`Consensus::rejoin`]) and is not caught up.
    rejoin: Option<Rejoin>,
    /// As leader, per node: heartbeat answers since a snapshot was sent to it and not yet
    /// acknowledged ([`SNAPSHOT_PATIENCE`]).
    snapshot_waits: Vec<u32>,
}

/// Heartbeat answers a leader waits for a sent snapshot to be acknowledged before it takes
/// the snapshot for lost and sends again. raft-rs waits until the application reports the
/// snapshot's fate; a snapshot lost on the way (the follower restarted, a connection dropped)
/// would otherwise leave the follower without entries or snapshot for good.
const SNAPSHOT_PATIENCE: u32 = 10;

/// A node that discarded its log (a damaged disk, on an operator's explicit command) may have
/// acknowledged entries it no longer has, and voted in terms it no longer remembers: its vote
/// could elect a leader that lacks a committed entry. So it neither votes nor stands for
/// election until its log holds everything the coordinator had committed when it first took
/// an append from it (a coordinator counts acknowledgements only from then on, see
/// [`Consensus::take_behind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejoin {
    /// No append taken from a coordinator yet.
    Waiting,
    /// Caught up once the log is durable through this index.
    Through(u64),
}

impl Consensus {
    /// A consensus core over `store`, the raft log as the shell recovered it from durable
    /// storage (empty on a first start). Every node of `spec` votes; entries name what they
    /// concern as `spec` names it ([`Keys`]).
    pub fn new(
        me: NodeId,
        spec: &ClusterSpec,
        store: MemLog,
        seed: u64,
        logger: &slog::Logger,
    ) -> Result<Self, ConsensusError> {
        let nodes = spec.nodes.len();
        let timing = &spec.timing;
        let min_election = timing.election_ticks.max(2) as usize;
        let cfg = Config {
            id: raft_id(me),
            election_tick: min_election,
            heartbeat_tick: timing.heartbeat_ticks.max(1) as usize,
            min_election_tick: min_election,
            max_election_tick: 2 * min_election,
            check_quorum: true,
            pre_vote: true,
            // The state machine is rebuilt on every start: from the snapshot the log continues
            // from (raft-rs starts applying after it), then the entries.
            applied: 0,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            // A coordinator pass proposes a command per group it moves; without this each
            // proposal sends every follower a message of its own (and gets an answer each).
            batch_append: true,
            ..Config::default()
        };
        let raw = RawNode::new(&cfg, store, logger)?;
        let mut c = Consensus {
            raw,
            nodes,
            rng: Rng::new(seed ^ 0x05EE_D0FE_1EC7),
            min_election,
            max_election: 2 * min_election,
            seen: (u64::MAX, StateRole::Follower),
            leader_stamp: None,
            emitted: 0,
            persisted: 0,
            campaign_waits: false,
            keys: Keys::new(spec),
            unreadable: Vec::new(),
            restored: None,
            snapshot_batch: None,
            behind: Vec::new(),
            rejoin: None,
            snapshot_waits: vec![0; nodes],
        };
        c.reseed_timeout();
        Ok(c)
    }

    fn reseed_timeout(&mut self) {
        let now = (self.raw.raft.term, self.raw.raft.state);
        if now != self.seen {
            self.seen = now;
            let t = self
                .rng
                .range(self.min_election as u64, self.max_election as u64)
                as usize;
            self.raw.raft.set_randomized_election_timeout(t);
        }
    }

    /// As leader, a heartbeat to every follower now rather than at the next heartbeat tick
    /// (nothing otherwise).
    pub fn ping(&mut self) {
        self.raw.ping();
    }

    /// Two nodes, the peer fenced (docs/architecture.md §6, "Two nodes with a fencing
    /// device"): go on as the only voter. `peer` becomes a learner in this node's
    /// configuration alone, with no log entry (there is no quorum to commit one), and this node
    /// campaigns, which a single voter wins at once. Only for a peer a fencing device
    /// confirmed off, and only from a node whose log holds every committed entry: the caller
    /// decides both.
    ///
    /// A single voter wins its campaign at once, and raft-rs then asserts that its whole log
    /// is durable; while a batch is in flight the campaign waits for
    /// [`Consensus::on_persisted`] (and so does the election timer, see [`Consensus::tick`]).
    pub fn go_alone(&mut self, peer: NodeId) -> Result<(), ConsensusError> {
        self.change_locally(peer, ConfChangeType::AddLearnerNode)?;
        self.campaign_alone()
    }

    /// Campaign as the only voter if the log is durable; otherwise remember to.
    fn campaign_alone(&mut self) -> Result<(), ConsensusError> {
        if self.is_leader() {
            self.campaign_waits = false;
        } else if self.durable() {
            self.campaign_waits = false;
            self.raw.campaign()?;
            self.reseed_timeout();
        } else {
            self.campaign_waits = true;
        }
        Ok(())
    }

    /// Whether every entry of the log is durable.
    fn durable(&self) -> bool {
        self.raw.raft.raft_log.persisted == self.raw.raft.raft_log.last_index()
    }

    /// Whether this node is the only voter of its configuration.
    fn alone(&self) -> bool {
        let voters = &self.raw.store().conf_state().voters;
        voters.len() == 1 && voters[0] == self.raw.raft.id
    }

    /// The learner `peer` of [`Consensus::go_alone`] is a voter again (the caller checked it
    /// holds everything this node's log holds): from now on every commit needs its
    /// acknowledgement too.
    pub fn take_back(&mut self, peer: NodeId) -> Result<(), ConsensusError> {
        self.change_locally(peer, ConfChangeType::AddNode)
    }

    fn change_locally(&mut self, peer: NodeId, ty: ConfChangeType) -> Result<(), ConsensusError> {
        let mut cc = ConfChange {
            node_id: raft_id(peer),
            ..ConfChange::default()
        };
        cc.set_change_type(ty);
        let cs = self.raw.apply_conf_change(&cc)?;
        self.raw.mut_store().set_conf_state(cs);
        Ok(())
    }

    /// Whether `node` votes in this node's configuration.
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.raw
            .store()
            .conf_state()
            .voters
            .contains(&raft_id(node))
    }

    /// As leader: the highest index known to be in `node`'s log.
    pub fn matched(&self, node: NodeId) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        self.raw.raft.prs().get(raft_id(node)).map(|p| p.matched)
    }

    /// The index of the last entry in this node's log.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// This node's log was discarded to rejoin the cluster: it takes no part in elections
    /// until it is caught up (see [`Rejoin`]).
    pub fn rejoin(&mut self) {
        self.rejoin = Some(Rejoin::Waiting);
    }

    /// Where a rejoin stands; `None` once caught up (or when the log was never discarded).
    pub fn rejoining(&self) -> Option<Rejoin> {
        self.rejoin
    }

    fn check_rejoined(&mut self) {
        if let Some(Rejoin::Through(target)) = self.rejoin {
            if self.raw.raft.raft_log.persisted >= target {
                self.rejoin = None;
            }
        }
    }

    /// One raft tick.
    pub fn tick(&mut self) {
        if self.rejoin.is_some() && !self.is_leader() {
            // Ticks only drive a follower's election timeout: a rejoining node never stands.
            return;
        }
        if !self.is_leader() && self.snapshot_batch.is_some() {
            // A snapshot from the leader is being written (a slow or failed disk): until it
            // is durable raft-rs cannot read the entries it replaced, and the election this
            // tick may start would ask for them, a fatal error. Wait for the write.
            return;
        }
        if self.alone() && !self.is_leader() && !self.durable() {
            // An election would be won at once, over a log not yet durable (raft-rs asserts
            // it is): wait for the batch in flight.
            return;
        }
        self.raw.tick();
        self.reseed_timeout();
    }

    /// A consensus message from `from`. Returns the echoed stamp if it was a heartbeat
    /// response from a follower to us as leader.
    pub fn step(
        &mut self,
        from: NodeId,
        msg: WireMessage,
        stamp_us: u64,
    ) -> Result<Option<u64>, String> {
        let m: RaftMessage = msg
            .try_into()
            .map_err(|e: super::raft_wire::WireError| e.to_string())?;
        if m.from != raft_id(from) || m.to != self.raw.raft.id {
            return Err(format!(
                "raft message claims from {} to {}, came from node {from}",
                m.from, m.to
            ));
        }
        // Local message types must never come from the network.
        if raft::raw_node::is_local_msg(m.get_msg_type()) {
            return Err(format!(
                "local raft message type {:?} from a peer",
                m.get_msg_type()
            ));
        }
        self.refuse_fatal(&m)?;
        let mut m = m;
        let mt = m.get_msg_type();
        let term = m.term;
        if self.rejoin.is_some() {
            if matches!(
                mt,
                MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
            ) {
                return Err(
                    "this node discarded its log to rejoin: it votes once caught up".into(),
                );
            }
            let log = &self.raw.raft.raft_log;
            if self.rejoin == Some(Rejoin::Waiting)
                && mt == MessageType::MsgAppend
                && term >= self.raw.raft.term
                && log.match_term(m.index, m.log_term)
            {
                self.rejoin = Some(Rejoin::Through(m.commit.max(m.index)));
            }
        }
        let mut lost_tail = None;
        if mt == MessageType::MsgHeartbeat {
            // A leader commits on a heartbeat up to what it believes we hold; after our log
            // lost its tail (or was discarded to rejoin) that is past our end. Committing up
            // to our own end is what the leader means for the entries we still have (they
            // matched its log when we acknowledged them). The leader believes we hold them
            // and sends nothing more, so tell it where our log ends, as a refused append.
            let last = self.raw.raft.raft_log.last_index();
            if m.commit > last {
                lost_tail = Some((m.from, m.commit, last));
                m.commit = last;
            }
        }
        let lost_acks = (mt == MessageType::MsgAppendResponse
            && m.reject
            && self.is_leader()
            && term == self.term())
        .then(|| self.raw.raft.prs().get(m.from).map(|pr| pr.matched))
        .flatten()
        .filter(|&matched| m.reject_hint < matched)
        .map(|matched| (m.from, matched, m.reject_hint));
        let mut echo = None;
        if mt == MessageType::MsgHeartbeatResponse
            && self.is_leader()
            && term == self.term()
            && stamp_us > 0
        {
            echo = Some(stamp_us);
        }
        let _ = self.raw.step(m);
        if let Some((leader, commit, last)) = lost_tail {
            if self.raw.raft.leader_id == leader && self.raw.raft.term == term {
                let mut refusal = RaftMessage::default();
                refusal.set_msg_type(MessageType::MsgAppendResponse);
                refusal.from = self.raw.raft.id;
                refusal.to = leader;
                refusal.term = term;
                refusal.index = commit;
                refusal.reject = true;
                refusal.reject_hint = last;
                self.raw.raft.msgs.push(refusal);
            }
        }
        if mt == MessageType::MsgHeartbeatResponse && self.is_leader() {
            self.watch_snapshot(from);
        }
        self.check_rejoined();
        if let Some((id, matched, ends_at)) = lost_acks {
            self.catch_up(id, ends_at);
            self.behind.push((from, matched, ends_at));
        }
        if mt == MessageType::MsgHeartbeat
            && stamp_us > 0
            && self.raw.raft.leader_id == raft_id(from)
            && self.raw.raft.term == term
        {
            self.leader_stamp = Some((raft_id(from), term, stamp_us));
        }
        self.reseed_timeout();
        Ok(echo)
    }

    /// A follower's log ends at `ends_at`, before what it acknowledged: raft-rs keeps its
    /// progress at the acknowledged index and takes every later refusal for a stale one, so
    /// the follower would wait forever. Start again from its end: resend the entries, or a
    /// snapshot where the log no longer holds them. Counting less as matched only delays
    /// commits; nothing committed is undone.
    fn catch_up(&mut self, id: u64, ends_at: u64) {
        let Some(pr) = self.raw.raft.mut_prs().get_mut(id) else {
            return;
        };
        pr.matched = 0;
        pr.become_probe();
        pr.next_idx = ends_at + 1;
        self.raw.raft.send_append(id);
    }

    /// A heartbeat answer from `node`: if a snapshot sent to it is still unacknowledged after
    /// [`SNAPSHOT_PATIENCE`] of them, it was lost; raft-rs sends it again once told.
    fn watch_snapshot(&mut self, node: NodeId) {
        let id = raft_id(node);
        let sending = self
            .raw
            .raft
            .prs()
            .get(id)
            .is_some_and(|pr| pr.state == ProgressState::Snapshot);
        let Some(waits) = self.snapshot_waits.get_mut(usize::from(node)) else {
            return;
        };
        if !sending {
            *waits = 0;
            return;
        }
        *waits += 1;
        if *waits >= SNAPSHOT_PATIENCE {
            *waits = 0;
            self.raw.report_snapshot(id, SnapshotStatus::Failure);
        }
    }

    /// Followers found behind what they had acknowledged since the last call: (peer,
    /// acknowledged through, its log ends at). The coordinator says so in an event.
    pub fn take_behind(&mut self) -> Vec<(NodeId, u64, u64)> {
        std::mem::take(&mut self.behind)
    }

    /// raft-rs treats a few impossible messages as fatal and panics: appended entries that are not consecutive or that contradict an
    /// entry we have committed. A correct leader never sends them; refuse them here, so that
    /// no message from a peer can panic the daemon.
    fn refuse_fatal(&self, m: &RaftMessage) -> Result<(), String> {
        let log = &self.raw.raft.raft_log;
        match m.get_msg_type() {
            MessageType::MsgAppend => {
                for (k, e) in m.entries.iter().enumerate() {
                    if e.index != m.index + 1 + k as u64 {
                        return Err(format!(
                            "raft append after index {} carries entry {} at position {k}",
                            m.index, e.index
                        ));
                    }
                    if e.index <= log.committed && log.term(e.index).is_ok_and(|t| t != e.term) {
                        return Err(format!(
                            "raft append contradicts committed entry {} (term {})",
                            e.index, e.term
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Propose a command; `false` if this node is not the leader (or raft dropped it).
    pub fn propose(&mut self, cmd: &Command) -> bool {
        self.propose_all(std::slice::from_ref(cmd))
    }

    /// Propose several commands as one batch: one append to each follower for all of them
    /// (a coordinator pass that moves many groups proposes a command per group). `false` if
    /// this node is not the leader or raft dropped the batch.
    pub fn propose_all(&mut self, cmds: &[Command]) -> bool {
        if !self.is_leader() || cmds.is_empty() {
            return cmds.is_empty();
        }
        let mut entries = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let Ok(data) = self.keys.encode(cmd) else {
                return false;
            };
            entries.push(Entry {
                data: data.into(),
                ..Entry::default()
            });
        }
        // What RawNode::propose builds for one entry, with all of them.
        let mut m = RaftMessage::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = self.raw.raft.id;
        m.set_entries(entries.into());
        self.raw.raft.step(m).is_ok()
    }

    /// Take raft's `Ready`: messages that may go at once into `out`, committed commands into
    /// `committed`, and what must be made durable first into `persist`, with the messages that
    /// wait for it (a follower's answers, a vote). The log in memory is updated here; nothing
    /// is written: the shell writes each batch in order and reports it with
    /// [`Consensus::on_persisted`] (raft-rs's asynchronous ready).
    pub fn drain(
        &mut self,
        now_us: u64,
        out: &mut Vec<Outgoing>,
        committed: &mut Vec<(u64, Command)>,
        persist: &mut Vec<(Persist, Vec<Outgoing>)>,
    ) -> Result<(), ConsensusError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        self.send(now_us, rd.take_messages(), out);
        let mut batch = Persist {
            number: rd.number(),
            must_sync: rd.must_sync(),
            ..Persist::default()
        };
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.raw.mut_store().apply_snapshot(snap.clone())?;
            self.restored = Some((snap.get_metadata().index, snap.data.to_vec()));
            self.snapshot_batch = Some(batch.number);
            batch.snapshot = Some(snap);
        }
        self.collect(rd.take_committed_entries(), committed);
        if !rd.entries().is_empty() {
            self.raw.mut_store().append(rd.entries())?;
            batch.entries = rd.take_entries();
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hardstate(hs.clone());
            batch.hard_state = Some(hs.clone());
        }
        let mut waiting = Vec::new();
        self.send(now_us, rd.take_persisted_messages(), &mut waiting);
        self.raw.advance_append_async(rd);
        if self.snapshot_batch.is_none() {
            self.raw.advance_apply();
        }
        if batch.is_empty() && self.persisted == self.emitted {
            // Nothing to write and nothing in flight before it: durable already.
            self.raw.on_persist_ready(batch.number);
            self.emitted = batch.number;
            self.persisted = batch.number;
            out.append(&mut waiting);
        } else {
            self.emitted = batch.number;
            persist.push((batch, waiting));
        }
        self.reseed_timeout();
        Ok(())
    }

    /// A snapshot of the state machine at the applied index, `data` its bytes: the log up to
    /// there is dropped here, and the returned batch drops it from the shell's store (after
    /// every batch before it). `None` when nothing was applied since the last snapshot.
    pub fn snapshot(&mut self, data: Vec<u8>) -> Result<Option<Persist>, ConsensusError> {
        let index = self.raw.raft.raft_log.applied;
        let store = self.raw.store();
        if index <= store.snapshot_metadata().index {
            return Ok(None);
        }
        let term = store.term(index)?;
        let mut snap = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        // Every node a voter, as at a first start: a two-node survivor's learner peer is a
        // change of its own configuration alone (see `go_alone`), which the receiver of this
        // snapshot must not take for its own; each node derives it again from the state.
        meta.mut_conf_state().voters = (1..=self.nodes as u64).collect();
        self.raw.mut_store().compact_to(&snap)?;
        Ok(Some(Persist {
            // Not a Ready of its own: reporting `emitted` again once written changes nothing.
            number: self.emitted,
            compact: Some(snap),
            ..Persist::default()
        }))
    }

    /// The snapshot from the leader that replaced the log since the last call, if any: the
    /// state machine must be replaced by its data before the entries committed after it.
    pub fn take_restored(&mut self) -> Option<(u64, Vec<u8>)> {
        self.restored.take()
    }

    /// How this node's config names groups and nodes in the log and in snapshots.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The index of the last snapshot taken or received (0: none).
    pub fn snapshot_index(&self) -> u64 {
        self.raw.store().snapshot_metadata().index
    }

    /// The shell made every batch up to `number` durable (and sent what waited for them).
    pub fn on_persisted(&mut self, number: u64) {
        if number > self.persisted && number <= self.emitted {
            self.persisted = number;
            self.raw.on_persist_ready(number);
            if self.snapshot_batch.is_some_and(|b| b <= number) {
                self.snapshot_batch = None;
                self.raw.advance_apply();
            }
            self.check_rejoined();
        }
        if self.campaign_waits {
            // An error here is raft refusing to campaign (a pending configuration change);
            // the election timer tries again.
            let _ = self.campaign_alone();
        }
    }

    fn send(&self, now_us: u64, msgs: Vec<RaftMessage>, out: &mut Vec<Outgoing>) {
        for m in msgs {
            let Some(to) = node_of(m.to, self.nodes) else {
                continue;
            };
            let stamp_us = match m.get_msg_type() {
                MessageType::MsgHeartbeat => now_us.max(1),
                MessageType::MsgHeartbeatResponse => match self.leader_stamp {
                    Some((leader, term, stamp)) if leader == m.to && term == m.term => stamp,
                    _ => 0,
                },
                _ => 0,
            };
            out.push(Outgoing {
                to,
                msg: Box::new(WireMessage::from(&m)),
                stamp_us,
            });
        }
    }

    fn collect(&mut self, entries: Vec<Entry>, committed: &mut Vec<(u64, Command)>) {
        for e in entries {
            if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                continue;
            }
            match self.keys.decode(&e.data) {
                Ok(cmd) => committed.push((e.index, cmd)),
                // Never skipped silently: the node's state no longer follows the log.
                Err(why) => self.unreadable.push((e.index, why)),
            }
        }
    }

    /// Committed entries this node could not read since the last call: they name what its
    /// config does not have, or come from another version. Its state misses them.
    pub fn take_unreadable(&mut self) -> Vec<(u64, EntryError)> {
        std::mem::take(&mut self.unreadable)
    }

    /// Whether this node is the raft leader (the coordinator).
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The current leader, if known.
    pub fn leader(&self) -> Option<NodeId> {
        node_of(self.raw.raft.leader_id, self.nodes)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The commit index.
    pub fn commit(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The index of the last entry handed to the state machine (empty entries included).
    pub fn applied(&self) -> u64 {
        self.raw.raft.raft_log.applied
    }

    /// The raft log in memory (what the persisted batches add up to, and what is in flight).
    pub fn log(&self) -> &MemLog {
        self.raw.store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::raft_log::MemLog;
    use crate::policy::state::Cause;
    use crate::policy::testutil::simple_spec;
    use raft::Storage;

    /// A one-voter core elects itself; a batch of proposals commits whole, in order, at
    /// consecutive indices.
    #[test]
    fn a_batch_of_proposals_commits_in_order() {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let store = MemLog::new_with_conf_state(&[1]);
        let mut c = Consensus::new(0, &simple_spec(1, 5), store, 7, &logger).unwrap();
        let (mut out, mut committed) = (Vec::new(), Vec::new());
        // The shell's side: every batch is durable at once, in order.
        let mut disk = MemLog::new_with_conf_state(&[1]);
        let mut drain = |c: &mut Consensus, committed: &mut Vec<(u64, Command)>| {
            let mut persist = Vec::new();
            c.drain(0, &mut out, committed, &mut persist).unwrap();
            for (batch, _) in persist {
                batch.write_to(&mut disk).unwrap();
                c.on_persisted(batch.number);
            }
        };
        for _ in 0..100 {
            if c.is_leader() {
                break;
            }
            c.tick();
            drain(&mut c, &mut committed);
        }
        assert!(c.is_leader(), "a single voter elects itself");
        let cmds: Vec<Command> = (0..3)
            .map(|g| Command::Activate {
                group: g,
                node: 0,
                cause: Cause::Initial,
            })
            .collect();
        assert!(c.propose_all(&cmds));
        committed.clear();
        for _ in 0..3 {
            drain(&mut c, &mut committed);
        }
        let got: Vec<&Command> = committed.iter().map(|(_, cmd)| cmd).collect();
        assert_eq!(got, cmds.iter().collect::<Vec<_>>());
        let first = committed[0].0;
        let indices: Vec<u64> = committed.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, vec![first, first + 1, first + 2]);
        assert!(c.propose_all(&[]), "an empty batch is nothing to do");
        assert_eq!(
            disk.last_index().ok(),
            c.log().last_index().ok(),
            "what was persisted is the log"
        );
    }

    /// Nothing commits, even on a single voter, until the shell says its batch is durable:
    /// the leader counts its own copy only once it is written.
    #[test]
    fn a_leader_commits_nothing_before_its_own_copy_is_durable() {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let store = MemLog::new_with_conf_state(&[1]);
        let mut c = Consensus::new(0, &simple_spec(1, 5), store, 7, &logger).unwrap();
        let (mut out, mut committed, mut persist) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..100 {
            if c.is_leader() {
                break;
            }
            c.tick();
            c.drain(0, &mut out, &mut committed, &mut persist).unwrap();
            for (batch, _) in persist.drain(..) {
                c.on_persisted(batch.number);
            }
        }
        assert!(c.is_leader());
        let cmd = Command::Activate {
            group: 0,
            node: 0,
            cause: Cause::Initial,
        };
        assert!(c.propose(&cmd));
        committed.clear();
        for _ in 0..3 {
            c.drain(0, &mut out, &mut committed, &mut persist).unwrap();
        }
        assert!(committed.is_empty(), "committed before it was durable");
        let last = persist
            .last()
            .map(|(b, _)| b.number)
            .expect("a batch to write");
        assert!(persist.iter().any(|(b, _)| !b.entries.is_empty()));
        c.on_persisted(last);
        c.drain(0, &mut out, &mut committed, &mut persist).unwrap();
        assert_eq!(committed.iter().map(|(_, c)| c).collect::<Vec<_>>(), [&cmd]);
    }

    /// Messages raft-rs would panic on are refused with a reason instead.
    #[test]
    fn messages_raft_would_panic_on_are_refused() {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let store = MemLog::new_with_conf_state(&[1, 2, 3]);
        let mut c = Consensus::new(0, &simple_spec(3, 5), store, 7, &logger).unwrap();
        let from_node_1 = |t: MessageType, f: &dyn Fn(&mut RaftMessage)| {
            let mut m = RaftMessage::default();
            m.set_msg_type(t);
            m.from = raft_id(1);
            m.to = raft_id(0);
            m.term = 1;
            f(&mut m);
            WireMessage::from(&m)
        };
        // A heartbeat that commits past our log is what a leader sends a follower that lost
        // entries it had acknowledged: taken (raft-rs would panic on it), up to our end.
        let beat = from_node_1(MessageType::MsgHeartbeat, &|m| m.commit = 100);
        assert!(c.step(1, beat, 5).is_ok());
        assert_eq!(c.commit(), c.last_index());
        let gap = from_node_1(MessageType::MsgAppend, &|m| {
            m.index = 0;
            let e = Entry {
                index: 3,
                term: 1,
                ..Entry::default()
            };
            m.set_entries(vec![e].into());
        });
        let err = c.step(1, gap, 0).unwrap_err();
        assert!(err.contains("carries entry 3"), "{err}");
        // A heartbeat within our log is taken.
        let fine = from_node_1(MessageType::MsgHeartbeat, &|m| m.commit = 0);
        assert!(c.step(1, fine, 5).is_ok());
    }

    /// Two cores and the wire between them: every batch durable at once, messages delivered
    /// while `linked`.
    struct Pair {
        c: [Consensus; 2],
        linked: bool,
        /// Per node: its disk writes nothing (its batches are never durable).
        stuck: [bool; 2],
        /// Per node: its disk fails at the first batch holding a snapshot.
        fail_at_snapshot: [bool; 2],
        committed: [Vec<(u64, Command)>; 2],
        now: u64,
    }

    impl Pair {
        fn new() -> Pair {
            let logger = slog::Logger::root(slog::Discard, slog::o!());
            let mk = |me: NodeId, seed| {
                let store = MemLog::new_with_conf_state(&[1, 2]);
                Consensus::new(me, &simple_spec(2, 5), store, seed, &logger).unwrap()
            };
            Pair {
                c: [mk(0, 1), mk(1, 2)],
                linked: true,
                stuck: [false; 2],
                fail_at_snapshot: [false; 2],
                committed: [Vec::new(), Vec::new()],
                now: 1,
            }
        }

        /// One round: drain both, deliver what may go; ticks too when `tick`.
        fn round(&mut self, tick: bool) {
            self.now += 10_000;
            let mut wire = Vec::new();
            for i in 0..2 {
                if tick {
                    self.c[i].tick();
                }
                let (mut out, mut persist) = (Vec::new(), Vec::new());
                self.c[i]
                    .drain(self.now, &mut out, &mut self.committed[i], &mut persist)
                    .unwrap();
                for (batch, then) in persist {
                    self.stuck[i] |= self.fail_at_snapshot[i] && batch.snapshot.is_some();
                    if !self.stuck[i] {
                        self.c[i].on_persisted(batch.number);
                        out.extend(then);
                    }
                }
                wire.extend(out.into_iter().map(|o| (i as NodeId, o)));
            }
            if self.linked {
                for (from, o) in wire {
                    let _ = self.c[usize::from(o.to)].step(from, *o.msg, o.stamp_us);
                }
            }
        }

        fn rounds(&mut self, n: usize) {
            for _ in 0..n {
                self.round(true);
            }
        }

        fn leader(&self) -> Option<usize> {
            (0..2).find(|&i| self.c[i].is_leader())
        }

        fn cmd(group: u16) -> Command {
            Command::Activate {
                group,
                node: 0,
                cause: Cause::Initial,
            }
        }

        fn has(&self, i: usize, cmd: &Command) -> bool {
            self.committed[i].iter().any(|(_, c)| c == cmd)
        }
    }

    /// A follower whose log lost entries it had acknowledged (a disk that lost them, or a log
    /// discarded to rejoin) is caught up by the leader, with entries while the leader still
    /// holds them and with a snapshot once it compacted them, instead of dropping every
    /// heartbeat forever.
    #[test]
    fn a_follower_that_lost_acknowledged_entries_is_caught_up() {
        for (compacted, empty) in [(false, false), (true, false), (true, true), (false, true)] {
            let mut p = Pair::new();
            p.rounds(200);
            let a = p.leader().expect("two voters elect a leader");
            let b = 1 - a;
            for k in 0..30 {
                assert!(p.c[a].propose(&Pair::cmd(k % 5)));
                p.rounds(2);
            }
            let end = p.c[a].last_index();
            assert_eq!(p.c[b].last_index(), end);
            if compacted {
                let batch = p.c[a].snapshot(b"state".to_vec()).unwrap();
                assert!(batch.is_some_and(|b| b.compact.is_some()));
            }
            // The follower restarts with only its first 5 entries.
            let log = p.c[b].log().clone();
            let mut hs = log.hard_state().clone();
            hs.commit = 5;
            let kept = log.all_entries()[..5].to_vec();
            let short = MemLog::restore(
                hs,
                log.conf_state().clone(),
                log.snapshot_metadata().clone(),
                kept,
            )
            .unwrap();
            let short = if empty {
                MemLog::new_with_conf_state(&[1, 2])
            } else {
                short
            };
            let logger = slog::Logger::root(slog::Discard, slog::o!());
            p.c[b] = Consensus::new(b as NodeId, &simple_spec(2, 5), short, 9, &logger).unwrap();
            p.c[b].rejoin();
            // Rejoining, it grants no vote (it may have voted in a term it forgot).
            let mut ask = RaftMessage::default();
            ask.set_msg_type(MessageType::MsgRequestVote);
            ask.from = raft_id(a as NodeId);
            ask.to = raft_id(b as NodeId);
            ask.term = p.c[a].term() + 1;
            ask.index = end;
            ask.log_term = p.c[a].term();
            let refused = p.c[b].step(a as NodeId, WireMessage::from(&ask), 0);
            assert!(refused.is_err_and(|e| e.contains("rejoin")));
            p.rounds(20);
            assert_eq!(p.c[b].rejoining(), None, "caught up, it votes again");
            assert_eq!(
                p.c[b].last_index(),
                end,
                "compacted: {compacted}, empty: {empty}"
            );
            assert_eq!(p.c[b].commit(), p.c[a].commit(), "compacted: {compacted}");
            let behind = p.c[a].take_behind();
            // Where the follower says its log stops agreeing: at most where it ends.
            assert!(
                matches!(behind[..], [(n, e, at)] if n == b as NodeId && e == end && at <= 5),
                "compacted: {compacted}, empty: {empty}: {behind:?}"
            );
            let restored = p.c[b].take_restored();
            assert_eq!(
                restored.map(|(_, data)| data),
                compacted.then(|| b"state".to_vec()),
                "compacted: {compacted}"
            );
        }
    }

    /// The raft half of going on alone in a two-node cluster (architecture.md §6): the
    /// survivor commits alone once it made its fenced peer a learner; the peer, back with its
    /// old two-voter configuration, cannot elect itself and catches up as a learner; taken
    /// back as a voter, nothing commits without it again.
    #[test]
    fn a_two_node_survivor_goes_on_alone_and_takes_its_peer_back() {
        let mut p = Pair::new();
        p.rounds(200);
        let a = p.leader().expect("two voters elect a leader");
        let b = 1 - a;
        assert!(p.c[a].propose(&Pair::cmd(1)));
        p.rounds(5);
        assert!(p.has(a, &Pair::cmd(1)) && p.has(b, &Pair::cmd(1)));

        // The peer is cut off: one voter of two commits nothing, and steps down.
        p.linked = false;
        assert!(p.c[a].propose(&Pair::cmd(2)));
        p.rounds(200);
        assert!(
            !p.has(a, &Pair::cmd(2)),
            "one of two voters committed alone"
        );
        assert!(
            p.leader().is_none(),
            "check_quorum: no leader without its peer"
        );

        // Fenced: the survivor goes on alone, and what waited commits.
        p.c[a].go_alone(b as NodeId).unwrap();
        p.rounds(3);
        assert!(p.c[a].is_leader(), "a single voter elects itself");
        assert!(!p.c[a].is_voter(b as NodeId));
        assert!(p.c[a].propose(&Pair::cmd(3)));
        p.rounds(3);
        assert!(p.has(a, &Pair::cmd(2)) && p.has(a, &Pair::cmd(3)));

        // The peer is back with its old configuration: it never leads, it catches up.
        p.linked = true;
        p.rounds(300);
        assert_eq!(p.leader(), Some(a), "the peer cannot elect itself");
        assert!(p.c[b].is_voter(a as NodeId) && p.c[b].is_voter(b as NodeId));
        assert_eq!(p.c[a].matched(b as NodeId), Some(p.c[a].last_index()));
        assert!(
            p.has(b, &Pair::cmd(3)),
            "the learner applies what the survivor committed"
        );

        // Taken back: a commit needs the peer again.
        p.c[a].take_back(b as NodeId).unwrap();
        assert!(p.c[a].is_voter(b as NodeId));
        p.linked = false;
        assert!(p.c[a].propose(&Pair::cmd(4)));
        p.rounds(3);
        assert!(
            !p.has(a, &Pair::cmd(4)),
            "committed without the voter taken back"
        );
        p.linked = true;
        p.rounds(20);
        assert!(p.has(a, &Pair::cmd(4)) && p.has(b, &Pair::cmd(4)));
        assert_eq!(p.leader(), Some(a));
    }
    /// A snapshot names every node a voter, whatever its taker's configuration: a two-node
    /// survivor's learner peer is that survivor's own change (`go_alone`), and a peer that
    /// took it from a snapshot for its own could never campaign once the survivor died.
    #[test]
    fn a_survivors_snapshot_leaves_its_peer_a_voter() {
        let mut p = Pair::new();
        p.rounds(200);
        let a = p.leader().expect("two voters elect a leader");
        let b = 1 - a;
        p.linked = false;
        p.rounds(200);
        p.c[a].go_alone(b as NodeId).unwrap();
        p.rounds(3);
        for k in 0..10 {
            assert!(p.c[a].propose(&Pair::cmd(k % 5)));
            p.rounds(2);
        }
        assert!(!p.c[a].is_voter(b as NodeId));
        let batch = p.c[a]
            .snapshot(b"state".to_vec())
            .unwrap()
            .expect("applied entries");
        let conf = batch
            .compact
            .expect("a compaction")
            .take_metadata()
            .take_conf_state();
        assert_eq!(conf.voters, vec![1, 2]);
        assert!(conf.learners.is_empty(), "{conf:?}");

        // The peer comes back with an empty log and is caught up with that snapshot.
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let empty = MemLog::new_with_conf_state(&[1, 2]);
        p.c[b] = Consensus::new(b as NodeId, &simple_spec(2, 5), empty, 9, &logger).unwrap();
        p.c[b].rejoin();
        p.linked = true;
        p.rounds(30);
        assert!(
            p.c[b].take_restored().is_some(),
            "caught up by the snapshot"
        );
        assert!(p.c[b].is_voter(b as NodeId) && p.c[b].is_voter(a as NodeId));
    }
    /// A follower whose disk has not yet made a leader's snapshot durable (a slow or failed
    /// disk) holds no election: raft-rs could not read the entries the snapshot replaced, and
    /// would stop the process.
    #[test]
    fn a_follower_writing_a_snapshot_holds_no_election() {
        let mut p = Pair::new();
        p.rounds(200);
        let a = p.leader().expect("two voters elect a leader");
        let b = 1 - a;
        for k in 0..10 {
            assert!(p.c[a].propose(&Pair::cmd(k % 5)));
            p.rounds(2);
        }
        assert!(p.c[a].snapshot(b"state".to_vec()).unwrap().is_some());
        // The follower comes back empty, is sent the snapshot, and its disk then fails.
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let empty = MemLog::new_with_conf_state(&[1, 2]);
        p.c[b] = Consensus::new(b as NodeId, &simple_spec(2, 5), empty, 9, &logger).unwrap();
        p.fail_at_snapshot[b] = true;
        for _ in 0..50 {
            if p.c[b].snapshot_index() > 0 {
                break;
            }
            p.round(true);
        }
        assert!(p.c[b].snapshot_index() > 0, "the snapshot arrived");
        assert_eq!(p.c[b].applied(), 0, "not durable, not applied");
        // The leader is gone; the follower's election timeout passes many times over.
        p.linked = false;
        p.rounds(300);
        assert!(!p.c[b].is_leader());
    }
}
