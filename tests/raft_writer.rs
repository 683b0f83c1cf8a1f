//! The raft log writer on a disk that fills up (a real tmpfs with a size limit): the batches
//! written before the disk filled are durable and acknowledged in order; the first one that
//! does not fit is reported failed and leaves no partial record (its space is reserved before
//! a byte is written); nothing after it is acknowledged while the disk is full; once there is
//! room again it is written, reported recovered, and every batch after it follows in order.

use std::sync::mpsc;
use std::time::Duration;

use eterne::actors::writer::{Writer, Written};
use eterne::policy::raft_log::Persist;
use eterne::storage::FileLog;
use raft::eraftpb::Entry;
use raft::Storage;

#[path = "support/mod.rs"]
mod support;

use support::small_disk::SmallDisk;

fn batch(number: u64) -> Persist {
    Persist {
        number,
        entries: vec![Entry {
            index: number,
            term: 1,
            data: vec![number as u8; 16 * 1024].into(),
            ..Entry::default()
        }],
        must_sync: true,
        ..Persist::default()
    }
}

#[test]
fn a_full_disk_holds_the_writer_at_the_first_batch_that_does_not_fit_until_there_is_room() {
    if support::skip_unless_root(
        "a_full_disk_holds_the_writer_at_the_first_batch_that_does_not_fit_until_there_is_room",
        "mounting a size-limited tmpfs",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let disk = SmallDisk::mount(tmp.path(), "256k");
    let raft_dir = disk.dir.join("raft");
    let log = FileLog::open(&raft_dir, &[1, 2, 3]).expect("open the log");
    let (tx, rx) = mpsc::channel();
    let writer = Writer::start(log, move |w| {
        let _ = tx.send(w);
    })
    .expect("start the writer");
    // 64 batches of 16 KiB cannot fit in 256 KiB.
    for n in 1..=64 {
        writer.submit(batch(n), Vec::new());
    }
    let mut durable = Vec::new();
    let failed = loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Written::Durable { number, .. }) => durable.push(number),
            Ok(Written::Failed { number, why }) => break (number, why),
            Ok(w) => panic!("nothing to recover from yet: {w:?}"),
            Err(e) => panic!("the writer neither filled the disk nor failed: {e}"),
        }
    };
    let k = durable.len() as u64;
    assert!(k > 0, "some batches fit");
    assert_eq!(
        durable,
        (1..=k).collect::<Vec<_>>(),
        "acknowledged in order"
    );
    assert_eq!(failed.0, k + 1, "the first batch that did not fit failed");
    assert!(
        failed.1.contains("No space") && failed.1.contains("raft.log"),
        "the reason names the file and the error: {}",
        failed.1
    );
    // Nothing after it is acknowledged while the disk stays full, and the log on disk is
    // whole: a start now would find exactly the acknowledged batches, no torn record.
    writer.submit(batch(65), Vec::new());
    assert!(
        rx.recv_timeout(Duration::from_millis(2500)).is_err(),
        "nothing is acknowledged while the failed batch waits (it is tried every second)"
    );
    let seen = eterne::storage::inspect(&raft_dir).expect("the log reads whole");
    assert!(!seen.needs_rewrite, "no partial record on the full disk");
    assert_eq!(seen.log.last_index().ok(), Some(k));

    // Room again (the tmpfs grows): the failed batch is written, then all after it, in order.
    disk.resize("4m");
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Written::Recovered { number, tries }) => {
            assert_eq!(number, k + 1);
            assert!(tries >= 2, "tried every second while full: {tries}");
        }
        other => panic!("the failed batch is reported recovered first: {other:?}"),
    }
    let mut after = Vec::new();
    while after.len() < (65 - k) as usize {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Written::Durable { number, .. }) => after.push(number),
            other => panic!("only acknowledgements after the recovery: {other:?}"),
        }
    }
    assert_eq!(
        after,
        (k + 1..=65).collect::<Vec<_>>(),
        "in order, none lost"
    );
    drop(writer);
    let seen = eterne::storage::inspect(&raft_dir).expect("the log reads whole");
    assert!(!seen.needs_rewrite);
    assert_eq!(
        seen.log.last_index().ok(),
        Some(65),
        "every batch is in the log"
    );
}

/// A first start on a full disk: the log cannot even be created whole. The start goes on (the
/// node fails as a whole until it can write, instead of refusing to start), and the log is
/// written once there is room, before any batch.
#[test]
fn a_start_on_a_full_disk_waits_for_room_instead_of_refusing() {
    if support::skip_unless_root(
        "a_start_on_a_full_disk_waits_for_room_instead_of_refusing",
        "mounting a size-limited tmpfs",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let disk = SmallDisk::mount(tmp.path(), "64k");
    let raft_dir = disk.dir.join("raft");
    std::fs::create_dir_all(&raft_dir).expect("the raft dir");
    let filler = disk.dir.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let log = FileLog::open(&raft_dir, &[1, 2, 3]).expect("opened on a full disk");
    assert!(log.needs_repair(), "its first write is a whole new log");
    let (tx, rx) = mpsc::channel();
    let writer = Writer::start(log, move |w| {
        let _ = tx.send(w);
    })
    .expect("start the writer");
    writer.submit(batch(1), Vec::new());
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Written::Failed { number: 0, why }) => assert!(why.contains("No space"), "{why}"),
        other => panic!("the log that could not be written is reported first: {other:?}"),
    }
    std::fs::remove_file(&filler).expect("make room");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(w) => seen.push(format!("{w:?}")),
            Err(e) => panic!("after {seen:?}: {e}"),
        }
    }
    assert!(seen[0].starts_with("Recovered { number: 0"), "{seen:?}");
    assert!(seen[1].starts_with("Durable { number: 1"), "{seen:?}");
    drop(writer);
    let seen = eterne::storage::inspect(&raft_dir).expect("the log reads whole");
    assert_eq!(seen.log.last_index().ok(), Some(1));
    assert_eq!(seen.log.conf_state().voters, vec![1, 2, 3]);
}
