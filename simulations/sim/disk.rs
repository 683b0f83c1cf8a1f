//! Each node's raft log disk: the `Persist` batches of its node core are written in order,
//! each taking its time ([`DiskOptions`]: an fsync'ed batch longer than one that only moves
//! the commit index), and a batch counts only once it is durable: then the messages that
//! waited for it leave and the core is told `Input::Persisted`.
//!
//! With faults on, a disk may also fail for a while (full, or failing): its batches wait, the
//! core is told `Input::StateDiskFailed` at the first write it cannot make and
//! `Input::StateDiskRecovered` at the first that works again, tried every second as the
//! daemon's writer does.
//!
//! A crash takes the batches not yet durable with it. With faults on, the one being written
//! may be lost whole, or torn the way `FileLog` can tear it (each part of a batch is a record
//! of its own with a CRC: a prefix of snapshot, entries, hard state reaches the disk), or even
//! have made it without having been acknowledged. Whatever the disk keeps, the node boots on
//! it, and the checker's rules must still hold.

use std::collections::VecDeque;

use super::*;
use crate::policy::message::Waiting;
use crate::policy::raft_log::Persist;

/// One node's disk.
pub(super) struct Disk {
    /// What is durable: the log a reboot starts from.
    pub(super) log: MemLog,
    /// Batches not yet durable, in order; the first is being written.
    pending: VecDeque<(Persist, Waiting)>,
    /// A fault waits for the next write to crash the node in its middle.
    crash_next: bool,
    /// The disk fails (no write succeeds) until then (simulated time).
    failed_until: Option<u64>,
    /// A write failed and is being tried again: the core was told.
    failing: bool,
}

/// How long the daemon's writer waits before it tries a failed write again
/// (`actors/writer.rs`).
const RETRY_US: u64 = 1_000_000;

impl Disk {
    /// A fresh disk holding an empty log of `voters`.
    pub(super) fn new(voters: &[u64]) -> Disk {
        Disk {
            log: MemLog::new_with_conf_state(voters),
            pending: VecDeque::new(),
            crash_next: false,
            failed_until: None,
            failing: false,
        }
    }
}

impl Sim {
    /// A fault: `node` crashes part way through its next raft log write.
    pub(super) fn crash_during_next_write(&mut self, node: NodeId) {
        let i = usize::from(node);
        if self.nodes[i].core.is_none() {
            return;
        }
        self.trace(format!(
            "fault: {} will crash during its next log write",
            self.name(node)
        ));
        self.nodes[i].disk.crash_next = true;
        if !self.nodes[i].disk.pending.is_empty() {
            let inc = self.nodes[i].incarnation;
            self.schedule(self.now_us, Ev::CrashDuringWrite { node, inc });
        }
    }

    /// A fault: `node`'s state disk fails until `until` (full, or failing).
    pub(super) fn fail_disk(&mut self, node: NodeId, until: u64) {
        self.trace(format!("fault: {}'s state disk fails", self.name(node)));
        self.nodes[usize::from(node)].disk.failed_until = Some(until);
        self.disk_failures += 1;
    }

    /// The end of the faults: every disk works again (a write being tried again succeeds at
    /// its next try).
    pub(super) fn heal_disks(&mut self) {
        for n in &mut self.nodes {
            n.disk.failed_until = None;
        }
    }

    /// `Ev::DiskFailed`: the core learns its write failed.
    pub(super) fn disk_failed(&mut self, node: NodeId, inc: u64) {
        if self.nodes[usize::from(node)].incarnation == inc {
            let why = "raft.log: No space left on device (simulated)".to_string();
            self.tell_disk(node, Input::StateDiskFailed { why });
        }
    }

    fn tell_disk(&mut self, node: NodeId, input: Input) {
        let i = usize::from(node);
        let local = self.nodes[i].clock.local(self.now_us);
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.handle(input, local);
            self.after_node(node);
        }
    }

    /// `Ev::DiskRetry`: the write that failed is tried again.
    pub(super) fn retry_write(&mut self, node: NodeId, inc: u64) {
        if self.nodes[usize::from(node)].incarnation == inc {
            self.start_write(node);
        }
    }

    /// `Ev::CrashDuringWrite`: the node crashes now if it is still writing.
    pub(super) fn crash_during_write(&mut self, node: NodeId, inc: u64) {
        let i = usize::from(node);
        if self.nodes[i].incarnation != inc
            || self.nodes[i].core.is_none()
            || self.nodes[i].disk.pending.is_empty()
        {
            return;
        }
        self.nodes[i].disk.crash_next = false;
        self.crash(node, "fault: node crash during a log write", None);
    }

    /// `Effect::Persist`: queue the batch behind those still being written.
    pub(super) fn persist(&mut self, node: NodeId, batch: Persist, then: Waiting) {
        let then = if self.breaker.ack_before_durable {
            for (to, paths, msg) in then {
                self.send_message(node, to, paths, msg);
            }
            Vec::new()
        } else {
            then
        };
        let disk = &mut self.nodes[usize::from(node)].disk;
        disk.pending.push_back((batch, then));
        if disk.pending.len() == 1 {
            self.start_write(node);
        }
    }

    /// The first pending batch starts to be written; it is durable after the disk's delay.
    fn start_write(&mut self, node: NodeId) {
        let i = usize::from(node);
        let Some((batch, _)) = self.nodes[i].disk.pending.front() else {
            return;
        };
        let must_sync = batch.must_sync;
        let inc = self.nodes[i].incarnation;
        let failed = self.nodes[i]
            .disk
            .failed_until
            .is_some_and(|t| self.now_us < t);
        let was_failing = std::mem::replace(&mut self.nodes[i].disk.failing, failed);
        if failed {
            if !was_failing {
                // Told through the event queue: this may run inside the core's own step.
                self.schedule(self.now_us, Ev::DiskFailed { node, inc });
            }
            self.schedule(self.now_us + RETRY_US, Ev::DiskRetry { node, inc });
            return;
        }
        if was_failing {
            // Only a retry (an event of its own) finds a failing disk working again.
            self.tell_disk(node, Input::StateDiskRecovered);
        }
        let (base, spread) = if must_sync {
            self.sc.disk.sync_us
        } else {
            self.sc.disk.write_us
        };
        let took = base + self.rng.range(0, spread.max(1));
        self.schedule(self.now_us + took, Ev::Written { node, inc });
        if self.nodes[i].disk.crash_next && self.faults_on {
            let at = self.now_us + self.rng.range(0, took);
            self.schedule(at, Ev::CrashDuringWrite { node, inc });
        }
    }

    /// `Ev::Written`: the first pending batch is durable.
    pub(super) fn written(&mut self, node: NodeId, inc: u64) {
        let i = usize::from(node);
        if self.nodes[i].incarnation != inc {
            return;
        }
        let Some((batch, then)) = self.nodes[i].disk.pending.pop_front() else {
            return;
        };
        if let Err(e) = batch.write_to(&mut self.nodes[i].disk.log) {
            self.violate(
                "PERSIST",
                format!("node {} cannot write its log: {e}", self.name(node)),
            );
            return;
        }
        self.snapshots_taken += u64::from(batch.compact.is_some());
        self.snapshots_installed += u64::from(batch.snapshot.is_some());
        for (to, paths, msg) in then {
            self.send_message(node, to, paths, msg);
        }
        let local = self.nodes[i].clock.local(self.now_us);
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.handle(
                Input::Persisted {
                    number: batch.number,
                },
                local,
            );
            self.after_node(node);
        }
        self.start_write(node);
    }

    /// The node crashed: what was not durable is lost, and with faults on the batch being
    /// written may be torn (a prefix of its records kept) or kept whole, unacknowledged.
    pub(super) fn crash_disk(&mut self, node: NodeId) {
        let i = usize::from(node);
        self.nodes[i].disk.crash_next = false;
        // The disk stays as it is; the new core is told at its first write that fails.
        self.nodes[i].disk.failing = false;
        let pending = std::mem::take(&mut self.nodes[i].disk.pending);
        let Some((batch, _)) = pending.into_iter().next() else {
            return;
        };
        if !self.faults_on {
            return;
        }
        // 0: lost; 1: the snapshot only; 2: snapshot and entries; 3: the whole batch.
        let kept = self.rng.range(0, 4);
        let torn = Persist {
            number: batch.number,
            snapshot: batch.snapshot,
            entries: if kept >= 2 { batch.entries } else { Vec::new() },
            hard_state: if kept >= 3 { batch.hard_state } else { None },
            // Written last, by an atomic rename: all or nothing.
            compact: if kept >= 3 { batch.compact } else { None },
            must_sync: false,
        };
        let torn = if kept >= 1 { torn } else { Persist::default() };
        let what = [
            "lost",
            "torn after its snapshot",
            "torn after its entries",
            "kept unacknowledged",
        ][kept as usize];
        if let Err(e) = torn.write_to(&mut self.nodes[i].disk.log) {
            self.violate(
                "PERSIST",
                format!("node {}'s torn write does not apply: {e}", self.name(node)),
            );
            return;
        }
        self.torn_writes += 1;
        self.trace(format!(
            "{}'s disk: the write of batch {} {what} at the crash",
            self.name(node),
            batch.number
        ));
    }
}
