//! The raft log writer: the one thread that makes the node core's [`Persist`] batches durable
//! ([`FileLog`]: append, fsync), so no fsync ever runs on the actor thread that handles
//! heartbeats and leases.
//!
//! Batches are written in the order they were submitted. Once a batch is durable, the writer
//! hands it back ([`Written`]) with the messages that waited for it; the NodeActor sends them
//! and feeds `Input::Persisted`. A batch that cannot be written poisons the writer: it writes
//! nothing more, so no later batch can be acknowledged over a gap, and the node stops
//! acknowledging raft traffic (its lease runs out and its exclusive resources stop, as on any
//! node that falls behind).

use std::sync::mpsc;
use std::thread;

use crate::policy::message::Waiting;
use crate::policy::raft_log::Persist;
use crate::storage::FileLog;

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
    /// Batch `number` could not be written; the writer has stopped.
    Failed {
        /// The batch.
        number: u64,
        /// Why (the file and the operating system's error).
        why: String,
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
                for (batch, then) in rx {
                    match batch.write_to(&mut log) {
                        Ok(()) => done(Written::Durable {
                            number: batch.number,
                            then,
                        }),
                        Err(e) => {
                            done(Written::Failed {
                                number: batch.number,
                                why: e.to_string(),
                            });
                            return;
                        }
                    }
                }
            })?;
        Ok(Writer { tx })
    }

    /// Queues a batch (never blocks). After a failure the batch is dropped: nothing that
    /// depends on it is ever sent.
    pub fn submit(&self, batch: Persist, then: Waiting) {
        let _ = self.tx.send((batch, then));
    }
}
