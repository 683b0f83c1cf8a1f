//! `eterne-bench boot [--entries N]`: what a start reads of the raft log after a long history,
//! with the snapshots the node core takes ([`SNAPSHOT_EVERY`] applied entries apart) and,
//! for comparison, without any. The history is written through the daemon's own
//! [`FileLog`] (batches of 10 entries of 64 bytes with their hard state, as raft's readies
//! bring them, and a 4 KiB snapshot of the state each time the core would take one); the
//! figure is the time of [`FileLog::open`] on it, the replay every start does, best and median
//! of 5. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use eterne::policy::raft_log::Persist;
use eterne::policy::snapshot::SNAPSHOT_EVERY;
use eterne::storage::{FileLog, LOG_FILE, SNAPSHOT_FILE};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

const VOTERS: [u64; 3] = [1, 2, 3];

pub fn run(entries: u64) -> Result<(), String> {
    println!("raft log replay at start after {entries} committed entries");
    for every in [Some(SNAPSHOT_EVERY), None] {
        let dir = std::env::temp_dir().join(format!("eterne-boot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let wrote = Instant::now();
        write_history(&dir, entries, every)?;
        let wrote = wrote.elapsed();
        let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        let mut took: Vec<Duration> = Vec::new();
        let mut kept = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let log = FileLog::open(&dir, &VOTERS).map_err(|e| e.to_string())?;
            took.push(t.elapsed());
            kept = log.mem().all_entries().len();
        }
        took.sort();
        println!(
            "  {}: open {:.2} ms best, {:.2} ms median; {} entries replayed; raft.log {} KiB, raft.snap {} KiB (history written in {:.1} s)",
            match every {
                Some(e) => format!("snapshot every {e} entries"),
                None => "no snapshots".to_string(),
            },
            took[0].as_secs_f64() * 1e3,
            took[2].as_secs_f64() * 1e3,
            kept,
            size(LOG_FILE) / 1024,
            size(SNAPSHOT_FILE) / 1024,
            wrote.as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// `entries` committed entries through a `FileLog` in `dir`, compacted every `every`.
fn write_history(dir: &std::path::Path, entries: u64, every: Option<u64>) -> Result<(), String> {
    let mut log = FileLog::open(dir, &VOTERS).map_err(|e| e.to_string())?;
    let mut number = 0;
    let mut next = 1;
    while next <= entries {
        let last = (next + 9).min(entries);
        number += 1;
        let batch = Persist {
            number,
            entries: (next..=last)
                .map(|index| Entry {
                    index,
                    term: 1,
                    data: vec![0x5a; 64].into(),
                    ..Entry::default()
                })
                .collect(),
            hard_state: Some(HardState {
                term: 1,
                vote: 1,
                commit: last,
                ..HardState::default()
            }),
            must_sync: false,
            ..Persist::default()
        };
        log.persist(&batch).map_err(|e| e.to_string())?;
        if every.is_some_and(|e| last / e > (next - 1) / e) {
            let mut snap = Snapshot {
                data: vec![0xa5; 4096].into(),
                ..Snapshot::default()
            };
            let meta = snap.mut_metadata();
            meta.index = last;
            meta.term = 1;
            meta.set_conf_state(ConfState {
                voters: VOTERS.to_vec(),
                ..ConfState::default()
            });
            number += 1;
            let compact = Persist {
                number,
                compact: Some(snap),
                ..Persist::default()
            };
            log.persist(&compact).map_err(|e| e.to_string())?;
        }
        next = last + 1;
    }
    use eterne::policy::raft_log::LogStore;
    log.sync().map_err(|e| e.to_string())
}
