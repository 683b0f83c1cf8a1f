//! Leases and the takeover rule (design.md §5, rules 3 and 4).
//!
//! A node keeps its exclusive groups active only while it holds a lease: an acknowledged
//! contact with a quorum leader, measured on the node's own monotonic clock **from when it sent
//! the request** (so message delay can only shorten a lease, never stretch it).
//!
//! The leader's authority itself is anchored: the leader stamps each consensus heartbeat with
//! its clock and followers echo the stamp back. The *quorum anchor* is the newest stamp that a
//! majority (the leader included, at `now`) has echoed. A follower that echoed a stamp refuses
//! to vote for `election_ticks - 1` ticks after receiving it (raft-rs with `check_quorum`), so
//! no other leader can exist before `anchor + vote_guard`. Every grant is cut to end by
//! `anchor + lease`, and config validation ensures `lease ≤ vote_guard`: every lease the
//! leader hands out ends before any successor could be elected.
//!
//! A grant also carries the leader's commit index at grant time; the holder may use it only
//! once it has applied that far, so a node with a stale log can never start a group that was
//! already moved away from it.

use super::spec::{NodeId, TimingSpec};

/// A lease grant as it travels from the leader to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// The leader's term.
    pub term: u64,
    /// The requester's own stamp (its clock, µs) from its request, echoed back.
    pub echo_us: u64,
    /// How long from `echo_us` the lease may run (already cut to the leader's authority).
    pub valid_us: u64,
    /// The leader's commit index when it granted.
    pub commit: u64,
}

/// The lease as held by one node.
#[derive(Clone, Debug, Default)]
pub struct LeaseHolder {
    until_us: u64,
    /// Grants that arrived before the log caught up with their commit index.
    pending: Vec<Grant>,
}

impl LeaseHolder {
    /// A grant arrived; `applied` is this node's last applied log index.
    pub fn handle_grant(&mut self, grant: Grant, applied: u64) {
        if grant.commit <= applied {
            self.until_us = self
                .until_us
                .max(grant.echo_us.saturating_add(grant.valid_us));
        } else if self.pending.len() < 8 {
            self.pending.push(grant);
        }
    }

    /// The log advanced: pending grants that are now covered take effect.
    pub fn handle_applied(&mut self, applied: u64) {
        let mut until = self.until_us;
        self.pending.retain(|g| {
            if g.commit <= applied {
                until = until.max(g.echo_us.saturating_add(g.valid_us));
                false
            } else {
                true
            }
        });
        self.until_us = until;
    }

    /// Whether the lease is valid at `now_us`.
    pub fn holds(&self, now_us: u64) -> bool {
        now_us < self.until_us
    }

    /// When the lease ends (µs, this node's clock); 0 if never held.
    pub fn until_us(&self) -> u64 {
        self.until_us
    }

    /// Give the lease up at once (a failed stop: the node fences itself).
    pub fn surrender(&mut self) {
        self.until_us = 0;
        self.pending.clear();
    }
}

/// The leader's bookkeeping: quorum anchor, grants, and when a silent owner may be replaced.
#[derive(Clone, Debug)]
pub struct LeaseKeeper {
    me: NodeId,
    quorum: usize,
    lease_us: u64,
    takeover_wait_us: u64,
    /// Per node: the newest stamp of ours it echoed (our clock); 0 = none this term.
    echoes: Vec<u64>,
    /// Per node: when we last granted it a lease (our clock).
    last_grant_us: Vec<u64>,
    /// Per node: the stamp of the request we last answered. A request travels on every path,
    /// so its copies arrive two or three times; one grant (itself sent on every path) is enough.
    answered: Vec<Option<u64>>,
    /// Per node: refuse further grants (its stop failed; it is being fenced).
    refused: Vec<bool>,
    scratch: Vec<u64>,
}

impl LeaseKeeper {
    /// Bookkeeping for a leader that took office at `now_us`. Every node counts as granted at
    /// that instant: we cannot know what the previous leader granted, so takeover of any node
    /// waits a full lease from now.
    pub fn new(
        me: NodeId,
        nodes: usize,
        quorum: usize,
        timing: &TimingSpec,
        now_us: u64,
    ) -> LeaseKeeper {
        LeaseKeeper {
            me,
            quorum,
            lease_us: u64::from(timing.lease_ms) * 1000,
            takeover_wait_us: timing.takeover_wait_us(),
            echoes: vec![0; nodes],
            last_grant_us: vec![now_us; nodes],
            answered: vec![None; nodes],
            refused: vec![false; nodes],
            scratch: Vec::with_capacity(nodes),
        }
    }

    /// How many voters (the leader included) make a majority now: a two-node survivor going
    /// on alone is a majority of one (docs/architecture.md §6), and two again once it took
    /// its peer back.
    pub fn set_quorum(&mut self, quorum: usize) {
        self.quorum = quorum.max(1);
    }

    /// A follower echoed our heartbeat stamp `stamp_us`.
    pub fn handle_echo(&mut self, node: NodeId, stamp_us: u64) {
        if let Some(e) = self.echoes.get_mut(usize::from(node)) {
            *e = (*e).max(stamp_us);
        }
    }

    /// The newest of our stamps that a majority has echoed (we count ourselves at `now_us`).
    pub fn quorum_anchor_us(&mut self, now_us: u64) -> Option<u64> {
        self.scratch.clear();
        for (i, &e) in self.echoes.iter().enumerate() {
            let v = if i == usize::from(self.me) { now_us } else { e };
            if v > 0 {
                self.scratch.push(v);
            }
        }
        if self.scratch.len() < self.quorum {
            return None;
        }
        // The quorum-th newest; a selection, not a sort (this runs on every grant).
        let (_, &mut nth, _) = self
            .scratch
            .select_nth_unstable_by(self.quorum - 1, |a, b| b.cmp(a));
        Some(nth)
    }

    /// Grant `node` a lease for its request stamped `echo_us`, if our authority allows one and
    /// this is not a second copy of a request already answered (requests travel on every path).
    pub fn grant(
        &mut self,
        node: NodeId,
        term: u64,
        echo_us: u64,
        commit: u64,
        now_us: u64,
    ) -> Option<Grant> {
        let i = usize::from(node);
        if i >= self.last_grant_us.len() || self.refused[i] || self.answered[i] == Some(echo_us) {
            return None;
        }
        let anchor = self.quorum_anchor_us(now_us)?;
        let authority_end = anchor + self.lease_us;
        if authority_end <= now_us {
            return None;
        }
        let valid_us = self.lease_us.min(authority_end - now_us);
        self.last_grant_us[i] = now_us;
        self.answered[i] = Some(echo_us);
        Some(Grant {
            term,
            echo_us,
            valid_us,
            commit,
        })
    }

    /// Refuse `node` any further lease (its stop failed: it must fence itself).
    pub fn refuse(&mut self, node: NodeId) {
        if let Some(r) = self.refused.get_mut(usize::from(node)) {
            *r = true;
        }
    }

    /// Whether `node` is refused further leases.
    pub fn is_refused(&self, node: NodeId) -> bool {
        self.refused
            .get(usize::from(node))
            .copied()
            .unwrap_or(false)
    }

    /// Allow grants to `node` again (it restarted with a clean slate).
    pub fn allow(&mut self, node: NodeId) {
        if let Some(r) = self.refused.get_mut(usize::from(node)) {
            *r = false;
        }
    }

    /// Rule 4b: has `node`'s last lease certainly run out at `now_us`?
    pub fn lease_expired(&self, node: NodeId, now_us: u64) -> bool {
        self.last_grant_us
            .get(usize::from(node))
            .is_some_and(|&g| now_us >= g.saturating_add(self.takeover_wait_us))
    }

    /// When `node`'s lease certainly runs out (our clock).
    pub fn expiry_us(&self, node: NodeId) -> u64 {
        self.last_grant_us
            .get(usize::from(node))
            .map_or(0, |&g| g + self.takeover_wait_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::default_timing;

    #[test]
    fn lease_runs_from_the_request_not_the_reply() {
        let mut h = LeaseHolder::default();
        h.handle_grant(
            Grant {
                term: 1,
                echo_us: 1_000,
                valid_us: 150_000,
                commit: 0,
            },
            0,
        );
        assert!(h.holds(150_999));
        assert!(!h.holds(151_000));
    }

    #[test]
    fn grant_waits_for_the_log() {
        let mut h = LeaseHolder::default();
        h.handle_grant(
            Grant {
                term: 1,
                echo_us: 0,
                valid_us: 100,
                commit: 5,
            },
            4,
        );
        assert!(!h.holds(1));
        h.handle_applied(5);
        assert!(h.holds(1));
    }

    #[test]
    fn leader_needs_a_quorum_anchor() {
        let t = default_timing();
        let mut k = LeaseKeeper::new(0, 3, 2, &t, 0);
        assert_eq!(
            k.grant(1, 1, 10, 0, 1_000),
            None,
            "no echo yet: no authority"
        );
        k.handle_echo(1, 500);
        let g = k.grant(1, 1, 900, 0, 1_000).unwrap();
        // Authority ends at anchor 500 + lease 150 ms.
        assert_eq!(g.valid_us, 150_000 - 500);
        assert_eq!(k.quorum_anchor_us(2_000), Some(500));
        // Past the anchor's lease, nothing more is granted.
        assert_eq!(k.grant(1, 1, 10, 0, 500 + 150_000), None);
    }

    #[test]
    fn copies_of_one_request_get_one_grant() {
        let t = default_timing();
        let mut k = LeaseKeeper::new(0, 3, 2, &t, 0);
        k.handle_echo(1, 500);
        assert!(k.grant(1, 1, 900, 0, 1_000).is_some());
        assert_eq!(
            k.grant(1, 1, 900, 0, 1_005),
            None,
            "the same request on another path"
        );
        assert!(k.grant(1, 1, 950, 0, 1_010).is_some(), "the next request");
        // A restarted requester's clock may start over: only an exact copy is dropped.
        assert!(k.grant(1, 1, 10, 0, 1_020).is_some());
    }

    #[test]
    fn takeover_waits_lease_times_drift_plus_margin() {
        let t = default_timing();
        let mut k = LeaseKeeper::new(0, 3, 2, &t, 1_000_000);
        assert!(!k.lease_expired(2, 1_000_000 + t.takeover_wait_us() - 1));
        assert!(k.lease_expired(2, 1_000_000 + t.takeover_wait_us()));
        k.handle_echo(1, 1_000_000);
        k.grant(2, 1, 0, 0, 1_100_000).unwrap();
        assert!(!k.lease_expired(2, 1_100_000 + t.takeover_wait_us() - 1));
        k.refuse(2);
        assert_eq!(k.grant(2, 1, 0, 0, 1_100_001), None);
    }
}
