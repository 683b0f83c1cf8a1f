//! The raft log in memory, and the [`LogStore`] trait the consensus core is generic over.
//!
//! [`MemLog`] is raft-rs's `MemStorage` without the `Arc<RwLock<_>>`: the `RawNode` owns its
//! store, so plain fields suffice. It keeps the same semantics (first/last index, the term of
//! the compaction point, truncation of a conflicting suffix on append, snapshot at the commit
//! index) with one difference: where `MemStorage` panics on a caller's mistake (a gap, an append
//! below the compaction point, an out-of-range read), `MemLog` returns an error, because in our
//! cluster those indices come from peers and from files.
//!
//! It is pure: no IO, no clock, no threads. The consensus core keeps its raft log in a
//! `MemLog` and never writes anything durable itself: each raft `Ready` becomes a [`Persist`]
//! batch (an effect), which the shell writes into its own [`LogStore`] and reports back as
//! persisted. The daemon's store is [`crate::storage::FileLog`] (files, fsync); the
//! simulator's is a `MemLog` per node that a crash may leave a batch short of.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::path::PathBuf;

/// Why a change to the log was refused or could not be made durable.
///
/// The first group comes from the log's own rules and is a bug in the caller (or a peer's bad
/// data reaching the store); the second comes only from [`crate::storage::FileLog`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An append started below the first index still in the log: those entries were compacted.
    #[error(
        "cannot append at index {index}: the log is compacted up to {first_index} (exclusive)"
    )]
    Compacted {
        /// First index of the appended batch.
        index: u64,
        /// First index the log still holds.
        first_index: u64,
    },
    /// An append would leave a hole after the last entry.
    #[error(
        "cannot append at index {index}: the log ends at {last_index}, entries must be contiguous"
    )]
    Gap {
        /// First index of the appended batch (or the first index that breaks contiguity).
        index: u64,
        /// Index the batch should have continued from.
        last_index: u64,
    },
    /// A compaction, commit or read asked for an index past the end of the log.
    #[error("index {index} is past the last log index {last_index}")]
    BeyondLog {
        /// The index asked for.
        index: u64,
        /// Last index in the log.
        last_index: u64,
    },
    /// A snapshot older than what the log already holds was offered.
    #[error("snapshot at index {index} is older than the log's first index {first_index}")]
    SnapshotOutOfDate {
        /// Index of the offered snapshot.
        index: u64,
        /// First index the log holds.
        first_index: u64,
    },
    /// A snapshot of this node's own state names an index the log does not hold with its
    /// term (a bug in the caller: it must snapshot what it applied).
    #[error("snapshot at index {index} (term {term}) does not match the log there")]
    SnapshotTerm {
        /// Index of the snapshot.
        index: u64,
        /// Its term.
        term: u64,
    },
    /// A file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing ("open", "write", "fsync", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A record could not be encoded for writing; with our plain types this is a bug.
    #[error("cannot encode a record for {path}: {source}")]
    Encode {
        /// The file the record was for.
        path: PathBuf,
        /// The encoder's error.
        source: rmp_serde::encode::Error,
    },
    /// A record in a log or snapshot file is damaged somewhere it cannot be a torn write, or
    /// decodes to something the log refuses. The node must not start on a log it cannot trust:
    /// restore the state directory or rejoin the node from a snapshot.
    #[error("corrupt raft state in {path} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// A durable raft log the shell keeps, whatever keeps it (memory or files).
///
/// [`Persist::write_to`] calls the mutators in raft-rs's order (snapshot, entries, hard
/// state), then [`LogStore::sync`]; the shell sends the messages that depend on a batch only
/// after that returned. An error leaves the store in an unspecified state: the shell must stop
/// using it (a [`FileLog`] must be reopened).
///
/// [`FileLog`]: crate::storage::FileLog
pub trait LogStore: Storage {
    /// Appends entries, dropping any existing entries from `ents[0].index` on (a conflicting
    /// suffix from an older leader). `ents` must be contiguous and start no later than
    /// `last_index + 1` and no earlier than `first_index`.
    fn append(&mut self, ents: &[Entry]) -> Result<(), StoreError>;
    /// Replaces the hard state (term, vote, commit).
    fn set_hardstate(&mut self, hs: HardState) -> Result<(), StoreError>;
    /// Sets only the commit index (from a `LightReady`), keeping term and vote.
    fn set_commit(&mut self, commit: u64) -> Result<(), StoreError>;
    /// Replaces the membership (after a conf change was applied).
    fn set_conf_state(&mut self, cs: ConfState) -> Result<(), StoreError>;
    /// Replaces the whole log with a snapshot received from the leader.
    fn apply_snapshot(&mut self, snap: Snapshot) -> Result<(), StoreError>;
    /// Drops entries before `index` (which becomes the first index). The caller must not
    /// compact past what the state machine applied.
    fn compact(&mut self, index: u64) -> Result<(), StoreError>;
    /// Keeps a snapshot of this node's own applied state and drops the entries it covers
    /// (see [`MemLog::compact_to`]); durable once it returns.
    fn compact_to(&mut self, snap: &Snapshot) -> Result<(), StoreError>;
    /// Makes every change so far durable. No-op for memory.
    fn sync(&mut self) -> Result<(), StoreError>;
}

/// What one raft `Ready` asks to make durable, in the order it must be written. Batches must
/// be written in the order of their `number`; once batch `number` is durable the shell sends
/// the messages that waited for it and feeds `Input::Persisted { number }` to the core.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Persist {
    /// The raft `Ready` this batch comes from (increasing).
    pub number: u64,
    /// A snapshot received from the leader: it replaces the log.
    pub snapshot: Option<Snapshot>,
    /// A snapshot of this node's own applied state: it replaces the entries it covers
    /// (written last, after the batch's own changes).
    pub compact: Option<Snapshot>,
    /// Entries to append (a conflicting suffix from an older leader is dropped first).
    pub entries: Vec<Entry>,
    /// The new hard state (term, vote, commit).
    pub hard_state: Option<HardState>,
    /// Whether the batch must be fsync'ed before it counts as written: false when only the
    /// commit index moved (raft-rs's `must_sync`).
    pub must_sync: bool,
}

impl Persist {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.compact.is_none()
    }

    /// Writes the batch into `store`, durably if it must be.
    pub fn write_to<S: LogStore>(&self, store: &mut S) -> Result<(), StoreError> {
        if let Some(snap) = &self.snapshot {
            store.apply_snapshot(snap.clone())?;
        }
        if !self.entries.is_empty() {
            store.append(&self.entries)?;
        }
        if let Some(hs) = &self.hard_state {
            store.set_hardstate(hs.clone())?;
        }
        if self.must_sync {
            store.sync()?;
        }
        if let Some(snap) = &self.compact {
            store.compact_to(snap)?;
        }
        Ok(())
    }
}

/// The raft log in memory: hard state, membership, the last snapshot's position and the
/// entries after it.
///
/// Invariant: `entries[i].index == first_index() + i` and, when non-empty, the first entry is
/// the one right after the compaction point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemLog {
    /// Term, vote and commit as raft last asked us to keep them.
    hard_state: HardState,
    /// Current membership, returned by `initial_state` after a restart.
    conf_state: ConfState,
    /// Position of the last snapshot applied: its index and term answer `term()` for the entry
    /// right before the first one kept.
    snapshot_metadata: SnapshotMetadata,
    /// That snapshot's data (the application's state at its index; empty before the first),
    /// what a follower too far behind is sent.
    snapshot_data: Vec<u8>,
    /// The entries after the snapshot (or after the compaction point), contiguous.
    entries: Vec<Entry>,
}

impl MemLog {
    /// An empty, uninitialized log (raft reports it as not initialized; a node joining an
    /// existing cluster starts like this and receives a snapshot).
    pub fn new() -> Self {
        Self::default()
    }

    /// The log of a node of a fresh cluster whose voters are `voters`. Every founding node
    /// must be created with the same list, as raft-rs requires.
    pub fn new_with_conf_state(voters: &[u64]) -> Self {
        MemLog {
            conf_state: ConfState {
                voters: voters.to_vec(),
                ..ConfState::default()
            },
            ..Self::default()
        }
    }

    /// The hard state as last set.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The membership as last set.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Position of the last applied snapshot (index 0 when none was).
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot_metadata
    }

    /// The data of the last snapshot (empty when none was taken or received).
    pub fn snapshot_data(&self) -> &[u8] {
        &self.snapshot_data
    }

    /// The last snapshot, with its data, as it is written to disk and sent to a follower.
    pub fn last_snapshot(&self) -> Snapshot {
        Snapshot {
            data: self.snapshot_data.clone().into(),
            metadata: Some(self.snapshot_metadata.clone()).into(),
            ..Snapshot::default()
        }
    }

    /// The entries held, first index first (for persisting and for checks).
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }

    fn first(&self) -> u64 {
        match self.entries.first() {
            Some(e) => e.index,
            None => self.snapshot_metadata.index + 1,
        }
    }

    fn last(&self) -> u64 {
        match self.entries.last() {
            Some(e) => e.index,
            None => self.snapshot_metadata.index,
        }
    }

    /// Checks an append without changing anything; `FileLog` calls it before writing.
    pub fn check_append(&self, ents: &[Entry]) -> Result<(), StoreError> {
        let Some(head) = ents.first() else {
            return Ok(());
        };
        let first_index = self.first();
        if head.index < first_index {
            return Err(StoreError::Compacted {
                index: head.index,
                first_index,
            });
        }
        let last_index = self.last();
        if head.index > last_index + 1 {
            return Err(StoreError::Gap {
                index: head.index,
                last_index,
            });
        }
        for pair in ents.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return Err(StoreError::Gap {
                    index: pair[1].index,
                    last_index: pair[0].index,
                });
            }
        }
        Ok(())
    }

    /// Appends entries, truncating the conflicting suffix; see [`LogStore::append`].
    pub fn append(&mut self, ents: &[Entry]) -> Result<(), StoreError> {
        self.check_append(ents)?;
        let Some(head) = ents.first() else {
            return Ok(());
        };
        // check_append guarantees first <= head.index <= last + 1, so this is in bounds.
        let keep = (head.index - self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Replaces the hard state.
    pub fn set_hardstate(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Sets the commit index, keeping term and vote. Refuses an index past the last entry:
    /// raft never commits what the log does not hold, and `snapshot()` relies on it.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        let last_index = self.last();
        if commit > last_index {
            return Err(StoreError::BeyondLog {
                index: commit,
                last_index,
            });
        }
        self.hard_state.commit = commit;
        Ok(())
    }

    /// Replaces the membership.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Checks that a snapshot is not older than the log; `FileLog` calls it before writing.
    pub fn check_snapshot(&self, snap: &Snapshot) -> Result<(), StoreError> {
        let index = snap.get_metadata().index;
        let first_index = self.first();
        if first_index > index {
            return Err(StoreError::SnapshotOutOfDate { index, first_index });
        }
        Ok(())
    }

    /// Replaces the log with a snapshot: all entries go, the commit index becomes the snapshot
    /// index, the term never goes back, the membership becomes the snapshot's. The vote is kept.
    pub fn apply_snapshot(&mut self, mut snap: Snapshot) -> Result<(), StoreError> {
        self.check_snapshot(&snap)?;
        let meta = snap.take_metadata();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = meta.index;
        self.entries.clear();
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot_metadata = meta;
        self.snapshot_data = snap.data.to_vec();
        Ok(())
    }

    /// Checks a snapshot of this node's own applied state without changing anything: its
    /// index must be in the log (or be the current snapshot's) with the term the log has there.
    pub fn check_compact_to(&self, snap: &Snapshot) -> Result<(), StoreError> {
        let meta = snap.get_metadata();
        let (index, first_index, last_index) = (meta.index, self.first(), self.last());
        if index + 1 < first_index {
            return Err(StoreError::SnapshotOutOfDate { index, first_index });
        }
        if index > last_index.min(self.hard_state.commit) {
            return Err(StoreError::BeyondLog {
                index,
                last_index: last_index.min(self.hard_state.commit),
            });
        }
        match self.term(index) {
            Ok(t) if t == meta.term => Ok(()),
            _ => Err(StoreError::SnapshotTerm {
                index,
                term: meta.term,
            }),
        }
    }

    /// Takes a snapshot of this node's own applied state: the entries up to its index go, the
    /// ones after it stay (unlike [`MemLog::apply_snapshot`], which replaces the whole log
    /// with the leader's). Hard state and membership are kept.
    pub fn compact_to(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        self.check_compact_to(snap)?;
        let meta = snap.get_metadata();
        let drop = (meta.index + 1).saturating_sub(self.first()) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot_metadata = meta.clone();
        self.snapshot_data = snap.data.to_vec();
        Ok(())
    }

    /// Sets the data of the current snapshot, as read back from disk at start.
    pub fn set_snapshot_data(&mut self, data: Vec<u8>) {
        self.snapshot_data = data;
    }

    /// Drops entries before `index`. Compacting at or below the first index is a no-op, as
    /// in `MemStorage`; past `last_index + 1` is an error.
    pub fn compact(&mut self, index: u64) -> Result<(), StoreError> {
        let first_index = self.first();
        if index <= first_index {
            return Ok(());
        }
        let last_index = self.last();
        if index > last_index + 1 {
            return Err(StoreError::BeyondLog { index, last_index });
        }
        self.entries.drain(..(index - first_index) as usize);
        Ok(())
    }

    /// Rebuilds a log from persisted parts, checking the invariants; used by `FileLog` when it
    /// replays a rewritten log. The entries must be contiguous and start right after the
    /// snapshot or later (a log compacted without a snapshot starts later).
    pub fn restore(
        hard_state: HardState,
        conf_state: ConfState,
        snapshot_metadata: SnapshotMetadata,
        entries: Vec<Entry>,
    ) -> Result<Self, StoreError> {
        let log = MemLog {
            hard_state,
            conf_state,
            snapshot_metadata,
            snapshot_data: Vec::new(),
            entries: Vec::new(),
        };
        if let Some(head) = entries.first() {
            if head.index <= log.snapshot_metadata.index {
                return Err(StoreError::Compacted {
                    index: head.index,
                    first_index: log.snapshot_metadata.index + 1,
                });
            }
        }
        for pair in entries.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return Err(StoreError::Gap {
                    index: pair[1].index,
                    last_index: pair[0].index,
                });
            }
        }
        Ok(MemLog { entries, ..log })
    }
}

fn store_err(e: StorageError) -> raft::Error {
    raft::Error::Store(e)
}

impl Storage for MemLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    /// Entries in `[low, high)`, at least one if any, then up to `max_size` bytes. Below the
    /// first index is `Compacted`; past the end is `Unavailable` (raft-rs's `MemStorage`
    /// panics there). Never asynchronous: the context is ignored.
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first_index = self.first();
        if low < first_index {
            return Err(store_err(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(store_err(StorageError::Unavailable));
        }
        let lo = (low - first_index) as usize;
        let hi = (high - first_index) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_metadata.index {
            return Ok(self.snapshot_metadata.term);
        }
        let first_index = self.first();
        if idx < first_index {
            return Err(store_err(StorageError::Compacted));
        }
        match self.entries.get((idx - first_index) as usize) {
            Some(e) => Ok(e.term),
            None => Err(store_err(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// The last snapshot taken or received, with its data: what raft sends a follower that
    /// needs entries this log no longer holds. `MemStorage` builds one at the commit index
    /// instead, with no data; our state machine's data exists only at the indices where the
    /// node core took a snapshot ([`MemLog::compact_to`]).
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_metadata.index < request_index {
            return Err(store_err(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.last_snapshot())
    }
}

impl LogStore for MemLog {
    fn append(&mut self, ents: &[Entry]) -> Result<(), StoreError> {
        MemLog::append(self, ents)
    }

    fn set_hardstate(&mut self, hs: HardState) -> Result<(), StoreError> {
        MemLog::set_hardstate(self, hs);
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        MemLog::set_commit(self, commit)
    }

    fn set_conf_state(&mut self, cs: ConfState) -> Result<(), StoreError> {
        MemLog::set_conf_state(self, cs);
        Ok(())
    }

    fn apply_snapshot(&mut self, snap: Snapshot) -> Result<(), StoreError> {
        MemLog::apply_snapshot(self, snap)
    }

    fn compact(&mut self, index: u64) -> Result<(), StoreError> {
        MemLog::compact(self, index)
    }

    fn compact_to(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        MemLog::compact_to(self, snap)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::storage::MemStorage;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 16].into(),
            ..Entry::default()
        }
    }

    fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| ent(i, term)).collect()
    }

    fn snap(index: u64, term: u64, voters: &[u64]) -> Snapshot {
        let mut s = Snapshot::default();
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.mut_metadata().mut_conf_state().voters = voters.to_vec();
        s
    }

    fn ctx() -> GetEntriesContext {
        GetEntriesContext::empty(false)
    }

    /// One step of a scenario, applied to both raft-rs's MemStorage and our MemLog.
    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<Entry>),
        Compact(u64),
        Snapshot(Snapshot),
        HardState(u64, u64, u64),
        Conf(Vec<u64>),
    }

    fn apply(ms: &MemStorage, ml: &mut MemLog, op: &Op) {
        match op.clone() {
            Op::Append(e) => {
                ms.wl().append(&e).unwrap();
                ml.append(&e).unwrap();
            }
            Op::Compact(i) => {
                ms.wl().compact(i).unwrap();
                ml.compact(i).unwrap();
            }
            Op::Snapshot(s) => {
                let a = ms.wl().apply_snapshot(s.clone()).is_ok();
                let b = ml.apply_snapshot(s).is_ok();
                assert_eq!(a, b);
            }
            Op::HardState(term, vote, commit) => {
                let hs = HardState {
                    term,
                    vote,
                    commit,
                    ..HardState::default()
                };
                ms.wl().set_hardstate(hs.clone());
                ml.set_hardstate(hs);
            }
            Op::Conf(v) => {
                let cs = ConfState {
                    voters: v,
                    ..ConfState::default()
                };
                ms.wl().set_conf_state(cs.clone());
                ml.set_conf_state(cs);
            }
        }
    }

    /// Compares every read the raft core can make, over a window around the log.
    fn same_reads(ms: &MemStorage, ml: &MemLog, case: &str) {
        let first = ms.first_index().unwrap();
        let last = ms.last_index().unwrap();
        assert_eq!(ml.first_index().unwrap(), first, "{case}: first_index");
        assert_eq!(ml.last_index().unwrap(), last, "{case}: last_index");
        let (a, b) = (ms.initial_state().unwrap(), ml.initial_state().unwrap());
        assert_eq!(a.hard_state, b.hard_state, "{case}: hard state");
        assert_eq!(a.conf_state, b.conf_state, "{case}: conf state");
        for idx in first.saturating_sub(2)..=last + 2 {
            assert_eq!(ml.term(idx), ms.term(idx), "{case}: term({idx})");
        }
        for low in first.saturating_sub(1)..=last + 1 {
            for high in low.max(first)..=last + 1 {
                for max in [None, Some(0), Some(30), Some(1000)] {
                    let b = ml.entries(low, high, max, ctx());
                    if ml.all_entries().is_empty() && low >= first {
                        // MemStorage indexes entries[0] and panics here; MemLog answers.
                        assert_eq!(b.unwrap(), Vec::<Entry>::new(), "{case}");
                        continue;
                    }
                    let a = ms.entries(low, high, max, ctx());
                    assert_eq!(b, a, "{case}: entries({low}, {high}, {max:?})");
                }
            }
        }
        // Unlike MemStorage's (built at the commit index, without data), our snapshot is the
        // last one taken or received, with its data: a request past it must wait.
        let snap_index = ml.snapshot_metadata().index;
        assert_eq!(ml.snapshot(0, 2).unwrap(), ml.last_snapshot(), "{case}");
        assert!(ml.snapshot(snap_index + 1, 2).is_err(), "{case}");
    }

    #[test]
    fn an_own_snapshot_keeps_the_entries_after_it() {
        let mut ml = MemLog::new_with_conf_state(&[1, 2, 3]);
        ml.append(&ents(1..=10, 2)).unwrap();
        ml.set_commit(8).unwrap();
        let snap = |index, term| {
            let mut s = Snapshot {
                data: b"state".to_vec().into(),
                ..Snapshot::default()
            };
            s.mut_metadata().index = index;
            s.mut_metadata().term = term;
            s
        };
        // Past the commit index, or with another term than the log's: refused, nothing changed.
        assert!(ml.compact_to(&snap(9, 2)).is_err());
        assert!(ml.compact_to(&snap(6, 1)).is_err());
        assert_eq!(ml.first_index().unwrap(), 1);
        ml.compact_to(&snap(6, 2)).unwrap();
        assert_eq!(ml.first_index().unwrap(), 7);
        assert_eq!(ml.last_index().unwrap(), 10);
        assert_eq!(ml.term(6).unwrap(), 2);
        assert_eq!(ml.snapshot(0, 2).unwrap().data.to_vec(), b"state".to_vec());
        assert_eq!(ml.snapshot(0, 2).unwrap().get_metadata().index, 6);
        // The hard state is ours, not the snapshot's.
        assert_eq!(ml.hard_state().commit, 8);
        // Older than what we hold: refused.
        assert!(ml.compact_to(&snap(4, 2)).is_err());
        // Again at the same point, or up to the last committed entry: fine.
        ml.compact_to(&snap(8, 2)).unwrap();
        assert_eq!(ml.first_index().unwrap(), 9);
    }

    #[test]
    fn behaves_like_raft_mem_storage() {
        let cases: Vec<(&str, Vec<Op>)> = vec![
            ("fresh", vec![]),
            ("append", vec![Op::Append(ents(1..=5, 1))]),
            (
                "append continues",
                vec![Op::Append(ents(1..=3, 1)), Op::Append(ents(4..=6, 1))],
            ),
            (
                "conflicting suffix is truncated",
                vec![Op::Append(ents(1..=6, 1)), Op::Append(ents(4..=5, 2))],
            ),
            (
                "overwrite from the first index",
                vec![Op::Append(ents(1..=3, 1)), Op::Append(ents(1..=2, 3))],
            ),
            (
                "same entries again",
                vec![Op::Append(ents(1..=4, 1)), Op::Append(ents(2..=4, 1))],
            ),
            (
                "compact middle",
                vec![Op::Append(ents(1..=6, 1)), Op::Compact(4)],
            ),
            (
                "compact no-op below first",
                vec![Op::Append(ents(1..=6, 1)), Op::Compact(4), Op::Compact(2)],
            ),
            (
                "compact everything",
                vec![Op::Append(ents(1..=6, 1)), Op::Compact(7)],
            ),
            (
                "compact then append",
                vec![
                    Op::Append(ents(1..=6, 1)),
                    Op::Compact(3),
                    Op::Append(ents(5..=9, 2)),
                ],
            ),
            (
                "snapshot replaces the log",
                vec![
                    Op::Append(ents(1..=6, 1)),
                    Op::HardState(5, 1, 3),
                    Op::Snapshot(snap(8, 4, &[1, 2, 3])),
                ],
            ),
            (
                "snapshot keeps the higher term",
                vec![
                    Op::Append(ents(1..=6, 1)),
                    Op::HardState(9, 2, 6),
                    Op::Snapshot(snap(6, 1, &[1, 2])),
                ],
            ),
            (
                "snapshot then append",
                vec![
                    Op::Snapshot(snap(10, 3, &[1, 2, 3])),
                    Op::Append(ents(11..=14, 3)),
                    Op::HardState(3, 1, 12),
                ],
            ),
            (
                "stale snapshot refused",
                vec![
                    Op::Append(ents(1..=6, 1)),
                    Op::Compact(5),
                    Op::Snapshot(snap(3, 1, &[1])),
                ],
            ),
            (
                "hard state and conf state",
                vec![
                    Op::Conf(vec![1, 2, 3]),
                    Op::Append(ents(1..=4, 2)),
                    Op::HardState(2, 3, 4),
                    Op::Compact(3),
                ],
            ),
        ];
        for (name, ops) in cases {
            let ms = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
            let mut ml = MemLog::new_with_conf_state(&[1, 2, 3]);
            same_reads(&ms, &ml, name);
            for (i, op) in ops.iter().enumerate() {
                apply(&ms, &mut ml, op);
                same_reads(&ms, &ml, &format!("{name}, after step {i} {op:?}"));
            }
        }
    }

    #[test]
    fn errors_where_mem_storage_panics() {
        let mut ml = MemLog::new_with_conf_state(&[1]);
        ml.append(&ents(1..=5, 1)).unwrap();
        ml.compact(3).unwrap();
        assert!(matches!(
            ml.append(&ents(2..=4, 2)),
            Err(StoreError::Compacted {
                index: 2,
                first_index: 3
            })
        ));
        assert!(matches!(
            ml.append(&ents(7..=8, 2)),
            Err(StoreError::Gap {
                index: 7,
                last_index: 5
            })
        ));
        let holey = vec![ent(6, 1), ent(8, 1)];
        assert!(matches!(ml.append(&holey), Err(StoreError::Gap { .. })));
        assert!(matches!(
            ml.compact(9),
            Err(StoreError::BeyondLog { index: 9, .. })
        ));
        assert!(ml.entries(3, 9, None, ctx()).is_err());
        assert!(ml.entries(5, 4, None, ctx()).is_err());
        assert!(ml.set_commit(6).is_err());
        ml.set_commit(5).unwrap();
        assert_eq!(ml.hard_state().commit, 5);
        // Nothing above changed the log.
        assert_eq!(ml.first_index().unwrap(), 3);
        assert_eq!(ml.last_index().unwrap(), 5);
    }

    #[test]
    fn fresh_cluster_is_initialized() {
        let ml = MemLog::new_with_conf_state(&[1, 2, 3]);
        assert!(ml.initial_state().unwrap().initialized());
        assert!(!MemLog::new().initial_state().unwrap().initialized());
    }

    #[test]
    fn restore_checks_contiguity() {
        let meta = SnapshotMetadata {
            index: 4,
            term: 2,
            ..SnapshotMetadata::default()
        };
        let ok = MemLog::restore(
            HardState::default(),
            ConfState::default(),
            meta.clone(),
            ents(5..=7, 2),
        )
        .unwrap();
        assert_eq!(ok.first_index().unwrap(), 5);
        assert_eq!(ok.term(4).unwrap(), 2);
        assert!(MemLog::restore(
            HardState::default(),
            ConfState::default(),
            meta.clone(),
            ents(3..=7, 2)
        )
        .is_err());
        assert!(MemLog::restore(
            HardState::default(),
            ConfState::default(),
            meta,
            vec![ent(5, 2), ent(7, 2)]
        )
        .is_err());
    }
}
