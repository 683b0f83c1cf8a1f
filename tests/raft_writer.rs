//! The raft log writer on a disk that fills up (a real tmpfs with a size limit): the batches
//! written before the disk filled are durable and acknowledged in order, the first one that
//! does not fit is reported failed, and nothing after it is ever acknowledged, so a node on a
//! full disk can never answer raft for entries it did not keep.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use eterne::actors::writer::{Writer, Written};
use eterne::policy::raft_log::Persist;
use eterne::storage::FileLog;
use raft::eraftpb::Entry;
use raft::Storage;

#[path = "support/mod.rs"]
mod support;

/// A tmpfs of `size` mounted on a fresh temporary directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("temp dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "mount a tmpfs on {}", dir.path().display());
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

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
fn a_full_disk_stops_the_writer_at_the_first_batch_that_does_not_fit() {
    if support::skip_unless_root(
        "a_full_disk_stops_the_writer_at_the_first_batch_that_does_not_fit",
        "mounting a size-limited tmpfs",
    ) {
        return;
    }
    let disk = SmallDisk::mount("256k");
    let raft_dir = disk.dir.path().join("raft");
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
        failed.1.contains("No space"),
        "the reason names the error: {}",
        failed.1
    );
    // Later batches are never acknowledged, and a batch submitted now neither.
    writer.submit(batch(65), Vec::new());
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "nothing is acknowledged after a failed batch"
    );
    drop(writer);
    // The operator makes room (here: grows the tmpfs) and restarts: what was acknowledged is
    // on the disk, and the log reopens with at least those entries (a torn tail of the failed
    // batch is dropped on replay).
    let ok = Command::new("mount")
        .args(["-o", "remount,size=2m"])
        .arg(disk.dir.path())
        .status()
        .expect("run mount")
        .success();
    assert!(ok, "grow the tmpfs");
    let reopened = FileLog::open(&raft_dir, &[1, 2, 3]).expect("reopen the log");
    let last = reopened.last_index().expect("last index");
    assert!(
        (k..=k + 1).contains(&last),
        "acknowledged {k} batches, the log holds entries up to {last}"
    );
}
