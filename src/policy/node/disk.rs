//! A state disk that fails is a node failure (docs/architecture.md, "A state disk that fails
//! is a node failure"): the node core's mode while the shell cannot write its raft log. The
//! guards that keep the rest of the core out of it (no lease, no coordination, no two-node
//! step, nothing heard) read [`NodeCore::state_disk_failed`] where they stand.

use super::*;

impl NodeCore {
    /// Why this node's state disk failed, while it does: a node that cannot keep its raft
    /// log fails as a whole, as if it had died. It gives up its lease at once (its exclusive
    /// groups stop), coordinates nothing and falls silent: no heartbeat, no message out, none
    /// taken in, so the others see it lost within the failure-detection time and move its
    /// groups once its lease has run out, as after a crash. What it sent could never have
    /// been backed by its log; what it kept hearing could never be acknowledged. Once a write
    /// succeeds again it is heard again and rejoins as any node coming back.
    pub fn state_disk_failed(&self) -> Option<&str> {
        self.disk_failed.as_deref()
    }

    /// `Input::StateDiskFailed`: the lease is given up at once (its exclusive groups stop on
    /// this pass) and the node falls silent until [`NodeCore::state_disk_recovers`].
    pub(super) fn state_disk_fails(&mut self, why: String) {
        if self.disk_failed.is_none() {
            self.lease.surrender();
            self.effects
                .push(Effect::Event(Event::StateDiskFailed { why: why.clone() }));
        }
        self.disk_failed = Some(why);
        self.locals.mark_all();
    }

    /// `Input::StateDiskRecovered`: heard again, it may ask for a lease and coordinate.
    /// Whether it had failed (else nothing changes).
    pub(super) fn state_disk_recovers(&mut self) -> bool {
        if self.disk_failed.take().is_none() {
            return false;
        }
        self.effects.push(Effect::Event(Event::StateDiskRecovered));
        self.locals.mark_all();
        if let Some(c) = &mut self.coordinator {
            c.dirty = true;
        }
        true
    }

    /// While the disk fails, nothing goes out: no heartbeat, no message, and none of raft's
    /// answers that wait for a write either.
    pub(super) fn silence_if_disk_failed(&mut self) {
        if self.disk_failed.is_some() {
            self.effects.retain_mut(|e| match e {
                Effect::Heartbeat { .. } | Effect::Send { .. } => false,
                Effect::Persist { then, .. } => {
                    then.clear();
                    true
                }
                _ => true,
            });
        }
    }
}
