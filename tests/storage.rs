//! FileLog: what is written survives a reopen, a torn tail is dropped, a damaged middle is an
//! error, snapshots and compactions shrink the log.

use eterne::policy::raft_log::{LogStore, MemLog, StoreError};
use eterne::storage::{FileLog, LOG_FILE, SNAPSHOT_FILE};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::Storage;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A state directory of its own for one test, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("eterne-storage-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn log(&self) -> PathBuf {
        self.0.join(LOG_FILE)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range
        .map(|index| Entry {
            index,
            term,
            data: format!("cmd {index} @{term}").into_bytes().into(),
            ..Entry::default()
        })
        .collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    }
}

fn snap(index: u64, term: u64, voters: &[u64], data: &[u8]) -> Snapshot {
    let mut s = Snapshot {
        data: data.to_vec().into(),
        ..Snapshot::default()
    };
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().mut_conf_state().voters = voters.to_vec();
    s
}

fn reopen(dir: &Path) -> FileLog {
    FileLog::open(dir, &[1, 2, 3]).unwrap()
}

/// Start offsets of the framed records in a log file.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 8 <= bytes.len() {
        out.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    out
}

/// Collects what a tracing subscriber writes, to check the warnings a replay emits.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn fresh_directory_starts_a_founding_node() {
    let dir = TempDir::new("fresh");
    let log = FileLog::open(&dir.0, &[1, 2, 3]).unwrap();
    let state = log.initial_state().unwrap();
    assert!(state.initialized());
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    drop(log);
    // The membership on disk wins over the argument once state exists.
    let log = FileLog::open(&dir.0, &[7]).unwrap();
    assert_eq!(
        log.initial_state().unwrap().conf_state.voters,
        vec![1, 2, 3]
    );
}

#[test]
fn entries_and_hard_state_survive_reopen() {
    let dir = TempDir::new("reopen");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=3, 1)).unwrap();
    log.set_hardstate(hs(1, 2, 2)).unwrap();
    log.append(&ents(4..=6, 1)).unwrap();
    log.set_commit(5).unwrap();
    log.set_conf_state(ConfState {
        voters: vec![1, 2, 3, 4],
        ..ConfState::default()
    })
    .unwrap();
    log.sync().unwrap();
    let before = log.mem().clone();
    drop(log);

    let log = reopen(&dir.0);
    assert_eq!(log.mem(), &before);
    assert_eq!(log.last_index().unwrap(), 6);
    assert_eq!(log.initial_state().unwrap().hard_state, hs(1, 2, 5));
    assert_eq!(
        log.entries(1, 7, None, raft::GetEntriesContext::empty(false))
            .unwrap(),
        ents(1..=6, 1)
    );
}

#[test]
fn conflicting_suffix_stays_truncated_after_reopen() {
    let dir = TempDir::new("truncate");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=6, 1)).unwrap();
    log.append(&ents(4..=5, 2)).unwrap();
    log.sync().unwrap();
    drop(log);

    let log = reopen(&dir.0);
    assert_eq!(log.last_index().unwrap(), 5);
    assert_eq!(log.term(3).unwrap(), 1);
    assert_eq!(log.term(4).unwrap(), 2);
    assert_eq!(log.term(5).unwrap(), 2);
    assert!(log.term(6).is_err());
}

#[test]
fn refused_append_writes_nothing() {
    let dir = TempDir::new("refused");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=3, 1)).unwrap();
    assert!(matches!(
        log.append(&ents(9..=9, 1)),
        Err(StoreError::Gap { .. })
    ));
    log.sync().unwrap();
    drop(log);
    assert_eq!(reopen(&dir.0).last_index().unwrap(), 3);
}

#[test]
fn torn_tail_is_dropped_and_the_rest_kept() {
    let dir = TempDir::new("torn");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=3, 1)).unwrap();
    log.append(&ents(4..=5, 1)).unwrap();
    log.sync().unwrap();
    drop(log);

    let len = fs::metadata(dir.log()).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(dir.log()).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);

    let logs = SharedBuf::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let mut log = tracing::subscriber::with_default(subscriber, || reopen(&dir.0));
    let warning = logs.text();
    assert!(
        warning.contains("WARN") && warning.contains(LOG_FILE) && warning.contains("offset="),
        "{warning}"
    );
    assert_eq!(
        log.last_index().unwrap(),
        3,
        "the cut record is gone, the one before kept"
    );
    // The garbage was rewritten away: new records after it replay fine.
    log.append(&ents(4..=4, 2)).unwrap();
    log.sync().unwrap();
    drop(log);
    let log = reopen(&dir.0);
    assert_eq!(log.last_index().unwrap(), 4);
    assert_eq!(log.term(4).unwrap(), 2);
}

#[test]
fn zero_filled_tail_is_a_torn_write() {
    let dir = TempDir::new("zeros");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=2, 1)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut bytes = fs::read(dir.log()).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    fs::write(dir.log(), &bytes).unwrap();
    assert_eq!(reopen(&dir.0).last_index().unwrap(), 2);
}

#[test]
fn bad_checksum_on_the_last_record_is_a_torn_write() {
    let dir = TempDir::new("lastcrc");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=2, 1)).unwrap();
    log.append(&ents(3..=4, 1)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut bytes = fs::read(dir.log()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    fs::write(dir.log(), &bytes).unwrap();
    assert_eq!(reopen(&dir.0).last_index().unwrap(), 2);
}

#[test]
fn corrupt_middle_record_is_an_error_naming_file_and_offset() {
    let dir = TempDir::new("middle");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=3, 1)).unwrap();
    log.append(&ents(4..=6, 1)).unwrap();
    log.append(&ents(7..=9, 1)).unwrap();
    log.sync().unwrap();
    drop(log);

    let mut bytes = fs::read(dir.log()).unwrap();
    let offsets = record_offsets(&bytes);
    // Records: header, hard state, conf state, base, then the three appends.
    assert_eq!(offsets.len(), 7);
    let victim = offsets[5];
    bytes[victim + 12] ^= 0x55;
    fs::write(dir.log(), &bytes).unwrap();

    match FileLog::open(&dir.0, &[1, 2, 3]) {
        Err(StoreError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, dir.log());
            assert_eq!(offset, victim as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let msg = FileLog::open(&dir.0, &[1, 2, 3]).unwrap_err().to_string();
    assert!(
        msg.contains(LOG_FILE) && msg.contains(&victim.to_string()),
        "{msg}"
    );
}

/// One byte flipped in a middle record's length field: read as "cut short", it once made
/// the replay drop every record after it (synced, perhaps acknowledged) as a torn tail. The
/// records after it are still there, so it is damage: refused, with the offset of the
/// damaged record and of the good data after it, and the file left as it was.
#[test]
fn a_flipped_length_field_in_the_middle_is_refused_not_dropped_as_a_torn_tail() {
    let dir = TempDir::new("lenflip");
    let mut log = reopen(&dir.0);
    for b in 0..5 {
        log.append(&ents(b * 3 + 1..=b * 3 + 3, 1)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let mut bytes = fs::read(dir.log()).unwrap();
    let offsets = record_offsets(&bytes);
    let victim = offsets[5];
    // The length's high byte: the record now claims more bytes than the file has.
    bytes[victim + 3] ^= 0x40;
    fs::write(dir.log(), &bytes).unwrap();
    let before = fs::read(dir.log()).unwrap();

    let err = FileLog::open(&dir.0, &[1, 2, 3]).unwrap_err();
    match &err {
        StoreError::Corrupt { offset, reason, .. } => {
            assert_eq!(*offset, victim as u64);
            assert!(
                reason.contains(&format!("good record follows at offset {}", offsets[6])),
                "{reason}"
            );
            assert!(
                reason.contains("docs/runtime.md"),
                "says where to read on: {reason}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(dir.log()).unwrap(), before, "nothing rewritten");
}

#[test]
fn compaction_shrinks_the_log_and_survives_reopen() {
    let dir = TempDir::new("compact");
    let mut log = reopen(&dir.0);
    for batch in 0..10 {
        log.append(&ents(batch * 10 + 1..=batch * 10 + 10, 1))
            .unwrap();
    }
    log.set_hardstate(hs(1, 1, 100)).unwrap();
    log.sync().unwrap();
    let size_before = fs::metadata(dir.log()).unwrap().len();
    log.compact(91).unwrap();
    let size_after = fs::metadata(dir.log()).unwrap().len();
    assert!(
        size_after < size_before / 4,
        "{size_after} vs {size_before}"
    );
    let before = log.mem().clone();
    drop(log);

    let log = reopen(&dir.0);
    assert_eq!(log.mem(), &before);
    assert_eq!(log.first_index().unwrap(), 91);
    assert_eq!(log.last_index().unwrap(), 100);
}

#[test]
fn snapshot_survives_reopen_and_the_log_continues_after_it() {
    let dir = TempDir::new("snapshot");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=10, 1)).unwrap();
    log.set_hardstate(hs(2, 1, 8)).unwrap();
    log.compact(5).unwrap();
    log.apply_snapshot(snap(12, 3, &[1, 2, 3, 4], b"app state @12"))
        .unwrap();
    log.append(&ents(13..=15, 3)).unwrap();
    log.sync().unwrap();
    let before = log.mem().clone();
    drop(log);

    let log = reopen(&dir.0);
    assert_eq!(log.mem(), &before);
    assert_eq!(log.first_index().unwrap(), 13);
    assert_eq!(log.term(12).unwrap(), 3);
    assert_eq!(
        log.initial_state().unwrap().conf_state.voters,
        vec![1, 2, 3, 4]
    );
    assert_eq!(log.initial_state().unwrap().hard_state, hs(3, 1, 12));
    assert_eq!(
        log.last_snapshot().map(|s| s.data.to_vec()),
        Some(b"app state @12".to_vec())
    );
    assert!(dir.0.join(SNAPSHOT_FILE).exists());
}

#[test]
fn crash_between_snapshot_and_log_rewrite_recovers() {
    let dir = TempDir::new("snapcrash");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=6, 1)).unwrap();
    log.set_hardstate(hs(1, 3, 4)).unwrap();
    log.sync().unwrap();
    let old_log = fs::read(dir.log()).unwrap();
    log.apply_snapshot(snap(9, 2, &[1, 2], b"s9")).unwrap();
    let expected = log.mem().clone();
    drop(log);
    // The snapshot file was renamed into place, the log rewrite never happened.
    fs::write(dir.log(), &old_log).unwrap();

    let log = reopen(&dir.0);
    assert_eq!(log.mem(), &expected);
    assert_eq!(log.initial_state().unwrap().hard_state.vote, 3);
}

#[test]
fn an_own_snapshot_compacts_the_log_and_keeps_what_follows() {
    let dir = TempDir::new("ownsnap");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=20, 2)).unwrap();
    log.set_hardstate(hs(2, 1, 15)).unwrap();
    log.sync().unwrap();
    let size_before = fs::metadata(dir.log()).unwrap().len();
    log.compact_to(&snap(15, 2, &[1, 2, 3], b"state @15"))
        .unwrap();
    let expected = log.mem().clone();
    drop(log);
    assert!(fs::metadata(dir.log()).unwrap().len() < size_before);

    let log = reopen(&dir.0);
    assert_eq!(log.mem(), &expected);
    assert_eq!(log.first_index().unwrap(), 16);
    assert_eq!(log.last_index().unwrap(), 20);
    assert_eq!(log.initial_state().unwrap().hard_state, hs(2, 1, 15));
    assert_eq!(log.mem().snapshot_data(), b"state @15");
    // What raft sends a follower that needs entries before 16.
    assert_eq!(log.snapshot(0, 2).unwrap().get_metadata().index, 15);
}

#[test]
fn crash_between_an_own_snapshot_and_the_log_rewrite_loses_nothing() {
    let dir = TempDir::new("ownsnapcrash");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=12, 1)).unwrap();
    log.set_hardstate(hs(1, 2, 9)).unwrap();
    log.sync().unwrap();
    let old_log = fs::read(dir.log()).unwrap();
    log.compact_to(&snap(9, 1, &[1, 2], b"s9")).unwrap();
    let expected = log.mem().clone();
    drop(log);
    // raft.snap was renamed into place; the log is still the old one, entries 10..=12 in it.
    fs::write(dir.log(), &old_log).unwrap();

    let log = reopen(&dir.0);
    assert_eq!(log.mem(), &expected);
    assert_eq!(log.last_index().unwrap(), 12);
    assert_eq!(log.term(12).unwrap(), 1);
}

#[test]
fn stale_snapshot_is_refused_without_touching_disk() {
    let dir = TempDir::new("stalesnap");
    let mut log = reopen(&dir.0);
    log.append(&ents(1..=10, 1)).unwrap();
    log.compact(8).unwrap();
    assert!(matches!(
        log.apply_snapshot(snap(5, 1, &[1], b"old")),
        Err(StoreError::SnapshotOutOfDate { .. })
    ));
    assert!(!dir.0.join(SNAPSHOT_FILE).exists());
}

/// The same script through any store: what the consensus core does, generically.
fn drive<S: LogStore>(store: &mut S) {
    for step in [ents(1..=4, 1), ents(3..=7, 2), ents(8..=8, 2)] {
        store.append(&step).unwrap();
    }
    store.set_hardstate(hs(2, 1, 6)).unwrap();
    store.compact(4).unwrap();
    store.sync().unwrap();
}

#[test]
fn memlog_and_filelog_agree() {
    let dir = TempDir::new("agree");
    let mut file = reopen(&dir.0);
    let mut mem = MemLog::new_with_conf_state(&[1, 2, 3]);
    drive(&mut file);
    drive(&mut mem);
    assert_eq!(file.mem(), &mem);
    drop(file);
    assert_eq!(reopen(&dir.0).mem(), &mem);
}

/// The writer tries a batch again after a failure (a full disk): a batch written twice,
/// whatever part of it reached the log the first time, leaves the log as written once.
#[test]
fn a_batch_written_again_leaves_the_log_as_written_once() {
    use eterne::policy::raft_log::Persist;
    let dir = TempDir::new("again");
    let mut log = FileLog::open(&dir.0, &[1, 2, 3]).unwrap();
    let first = Persist {
        number: 1,
        entries: ents(1..=4, 1),
        hard_state: Some(hs(1, 1, 2)),
        must_sync: true,
        ..Persist::default()
    };
    let second = Persist {
        number: 2,
        snapshot: Some(snap(10, 2, &[1, 2, 3], b"state")),
        entries: ents(11..=12, 2),
        hard_state: Some(hs(2, 1, 11)),
        must_sync: true,
        ..Persist::default()
    };
    for batch in [&first, &first, &second, &second] {
        log.persist(batch).expect("written");
    }
    drop(log);
    let log = reopen(&dir.0);
    assert_eq!(log.first_index().unwrap(), 11);
    assert_eq!(log.last_index().unwrap(), 12);
    assert_eq!(log.mem().hard_state(), &hs(2, 1, 11));
    assert_eq!(
        log.last_snapshot().map(|s| s.data.to_vec()),
        Some(b"state".to_vec())
    );
}
