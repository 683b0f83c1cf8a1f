//! The raft log writer: the one thread that makes the node core's [`Persist`] batches durable
//! ([`FileLog::persist`]: append, fsync), so no fsync ever runs on the actor thread that handles
//! heartbeats and leases.
//!
//! Batches are written in the order they were submitted. Once a batch is durable, the writer
//! hands it back ([`Written::Durable`]) with the messages that waited for it; the NodeActor
//! sends them and feeds `Input::Persisted`. A batch that cannot be written (a full or failing
//! disk) is reported once ([`Written::Failed`]: the node fails as a whole, see
//! `NodeCore::state_disk_failed`) and tried again every [`RETRY_EVERY`], with every later
//! batch waiting behind it, so none is ever acknowledged over a gap. The first try that
//! succeeds is reported ([`Written::Recovered`]) before the batch's `Durable`.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::policy::message::Waiting;
use crate::policy::raft_log::Persist;
use crate::storage::FileLog;

/// How long the writer waits before it tries a failed batch again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A batch made durable, or the first one that could not be.
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub enum Written {
    /// Batch `number` is durable; send `then`.
    Durable {
        /// The batch.
        number: u64,
        /// The messages that waited for it.
        then: Waiting,
    },
    /// Batch `number` could not be written (0: the log could not be rewritten at start); it
    /// is tried again every [`RETRY_EVERY`], and nothing after it is written before it.
    Failed {
        /// The batch.
        number: u64,
        /// Why (the file and the operating system's error).
        why: String,
    },
    /// Batch `number`, which had failed, is written: its `Durable` follows.
    Recovered {
        /// The batch.
        number: u64,
        /// How many tries failed before.
        tries: u32,
    },
}

/// The writer thread's handle.
pub struct Writer {
    tx: mpsc::Sender<(Persist, Waiting)>,
}

impl Writer {
    /// Starts the writer over `log`; every outcome goes to `done` (called on the writer
    /// thread, so it must only hand the value over, e.g. to an actor's mailbox).
    pub fn start(
        mut log: FileLog,
        done: impl Fn(Written) + Send + 'static,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<(Persist, Waiting)>();
        thread::Builder::new()
            .name("raft-writer".into())
            .spawn(move || {
                // A log the start could not rewrite (a full disk): repaired before anything.
                if log.needs_repair() {
                    retry(0, &done, || log.repair());
                }
                for (batch, then) in rx {
                    let number = batch.number;
                    retry(number, &done, || log.persist(&batch));
                    done(Written::Durable { number, then });
                }
            })?;
        Ok(Writer { tx })
    }

    /// Queues a batch (never blocks); it waits behind a batch that is being tried again.
    pub fn submit(&self, batch: Persist, then: Waiting) {
        let _ = self.tx.send((batch, then));
    }
}

/// Runs `write` until it succeeds, every [`RETRY_EVERY`]: the first failure is reported, and
/// the success after it.
fn retry(
    number: u64,
    done: &impl Fn(Written),
    mut write: impl FnMut() -> Result<(), crate::policy::raft_log::StoreError>,
) {
    let mut failed = 0u32;
    while let Err(e) = write() {
        if failed == 0 {
            done(Written::Failed {
                number,
                why: e.to_string(),
            });
        }
        failed = failed.saturating_add(1);
        thread::sleep(RETRY_EVERY);
    }
    if failed > 0 {
        done(Written::Recovered {
            number,
            tries: failed,
        });
    }
}
