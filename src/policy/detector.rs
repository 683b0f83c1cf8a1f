//! Failure detection: one detector per peer per heartbeat path, and node liveness across paths.
//!
//! A path to a peer is *up* while heartbeats arrive within `interval_ms × misses`; it is *lost*
//! once they stop. A lost path is only an event (an alert). A peer is *suspected* only when
//! every path to it is lost — a node that is silent on every network but still writes its disk
//! slot is partitioned, not dead, and stays alive here.
//!
//! The detector keeps one deadline per (peer, path) and reports the earliest with
//! [`Liveness::next_timeout_us`], so the caller wakes exactly when a path could expire instead
//! of polling.

use super::spec::{ClusterSpec, NodeId, PathId};

/// The state of one path to one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathState {
    /// Never heard from the peer on this path since we started.
    Unknown,
    /// Heartbeats arrive in time.
    Up,
    /// Heartbeats stopped for longer than the path's timeout.
    Lost,
}

/// What changed, for events and for the node core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivenessEvent {
    /// The first heartbeat (or the first after a loss) arrived on this path.
    PathUp {
        /// The peer.
        peer: NodeId,
        /// The path.
        path: PathId,
    },
    /// Heartbeats on this path stopped; other paths may still be up.
    PathLost {
        /// The peer.
        peer: NodeId,
        /// The path.
        path: PathId,
    },
    /// Every path to the peer is lost (or none ever came up within the startup grace).
    PeerSuspected {
        /// The peer.
        peer: NodeId,
    },
    /// A suspected peer was heard again on some path.
    PeerAlive {
        /// The peer.
        peer: NodeId,
    },
    /// The peer's daemon restarted (a new incarnation number).
    PeerRestarted {
        /// The peer.
        peer: NodeId,
    },
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    state: PathState,
    /// When the path expires if nothing more is heard (meaningful while `Up`).
    deadline_us: u64,
}

/// Liveness of every peer, as seen by one node.
#[derive(Clone, Debug)]
pub struct Liveness {
    me: NodeId,
    path_count: usize,
    timeout_us: Vec<u64>,
    slots: Vec<Slot>,
    suspected: Vec<bool>,
    incarnation: Vec<u64>,
    /// Earliest deadline among `Up` slots, recomputed lazily: it may be early.
    next_timeout_us: Option<u64>,
    /// `next_timeout_us` may be early (its slot heard a heartbeat since).
    stale: bool,
}

impl Liveness {
    /// A fresh view at `now_us`: every peer is unknown and counts as suspected until heard,
    /// except that the first check happens only after one path timeout (a startup grace).
    pub fn new(spec: &ClusterSpec, me: NodeId, now_us: u64) -> Liveness {
        let path_count = spec.paths.len();
        let timeout_us: Vec<u64> = spec.paths.iter().map(|p| p.timeout_us()).collect();
        let n = spec.nodes.len();
        Liveness {
            me,
            path_count,
            timeout_us,
            slots: vec![
                Slot {
                    state: PathState::Unknown,
                    deadline_us: now_us
                };
                n * path_count
            ],
            suspected: (0..n).map(|i| i != usize::from(me)).collect(),
            incarnation: vec![0; n],
            next_timeout_us: None,
            stale: false,
        }
    }

    fn index(&self, peer: NodeId, path: PathId) -> usize {
        usize::from(peer) * self.path_count + usize::from(path)
    }

    /// The common case of a heartbeat: from a peer that is alive, on a path that is up, with
    /// the incarnation we know. Moves the path's deadline and returns true; returns false,
    /// changing nothing, for anything else (call [`Liveness::handle_heartbeat`] then).
    pub fn renew(&mut self, peer: NodeId, path: PathId, incarnation: u64, now_us: u64) -> bool {
        let p = usize::from(peer);
        if peer == self.me
            || usize::from(path) >= self.path_count
            || p >= self.suspected.len()
            || self.suspected[p]
            || incarnation != self.incarnation[p]
        {
            return false;
        }
        let deadline_us = now_us.saturating_add(self.timeout_us[usize::from(path)]);
        let slot = &mut self.slots[p * self.path_count + usize::from(path)];
        if slot.state != PathState::Up {
            return false;
        }
        if Some(slot.deadline_us) == self.next_timeout_us {
            self.stale = true;
        }
        slot.deadline_us = deadline_us;
        true
    }

    /// A heartbeat from `peer` on `path`, with the peer's incarnation number.
    pub fn handle_heartbeat(
        &mut self,
        peer: NodeId,
        path: PathId,
        incarnation: u64,
        now_us: u64,
        events: &mut Vec<LivenessEvent>,
    ) {
        if peer == self.me || usize::from(path) >= self.path_count {
            return;
        }
        let p = usize::from(peer);
        if p >= self.suspected.len() {
            return;
        }
        if incarnation != self.incarnation[p] {
            if self.incarnation[p] != 0 {
                events.push(LivenessEvent::PeerRestarted { peer });
            }
            self.incarnation[p] = incarnation;
        }
        let i = self.index(peer, path);
        let deadline_us = now_us.saturating_add(self.timeout_us[usize::from(path)]);
        let slot = &mut self.slots[i];
        if slot.state == PathState::Up && Some(slot.deadline_us) == self.next_timeout_us {
            // The earliest deadline moved later: `refresh_next_timeout` finds the new one.
            self.stale = true;
        }
        slot.deadline_us = deadline_us;
        if slot.state != PathState::Up {
            slot.state = PathState::Up;
            events.push(LivenessEvent::PathUp { peer, path });
            if self.next_timeout_us.is_none_or(|d| deadline_us < d) {
                self.next_timeout_us = Some(deadline_us);
            }
        }
        if self.suspected[p] {
            self.suspected[p] = false;
            events.push(LivenessEvent::PeerAlive { peer });
        }
    }

    /// Expire paths whose deadline passed. Call when `now_us >= next_timeout_us()`.
    pub fn handle_timeout(&mut self, now_us: u64, events: &mut Vec<LivenessEvent>) {
        let mut next: Option<u64> = None;
        for peer in 0..self.suspected.len() {
            if peer == usize::from(self.me) {
                continue;
            }
            let mut any_up = false;
            for path in 0..self.path_count {
                let slot = &mut self.slots[peer * self.path_count + path];
                if slot.state == PathState::Up {
                    if slot.deadline_us <= now_us {
                        slot.state = PathState::Lost;
                        events.push(LivenessEvent::PathLost {
                            peer: peer as NodeId,
                            path: path as PathId,
                        });
                    } else {
                        any_up = true;
                        next = Some(next.map_or(slot.deadline_us, |n| n.min(slot.deadline_us)));
                    }
                }
            }
            if !any_up && !self.suspected[peer] {
                self.suspected[peer] = true;
                events.push(LivenessEvent::PeerSuspected {
                    peer: peer as NodeId,
                });
            }
        }
        self.next_timeout_us = next;
        self.stale = false;
    }

    /// When a path could next expire, if any is up.
    pub fn next_timeout_us(&self) -> Option<u64> {
        self.next_timeout_us
    }

    /// Make [`Liveness::next_timeout_us`] exact again if it is before `horizon_us` (when the
    /// caller wakes anyway). Heartbeats only move deadlines later, so without this the caller
    /// would wake at a deadline that has already moved; an early value beyond the horizon
    /// costs nothing, and is looked at again on a later call.
    pub fn refresh_next_timeout(&mut self, horizon_us: u64) {
        if self.stale && self.next_timeout_us.is_some_and(|d| d < horizon_us) {
            self.stale = false;
            self.next_timeout_us = self
                .slots
                .iter()
                .filter(|s| s.state == PathState::Up)
                .map(|s| s.deadline_us)
                .min();
        }
    }

    /// Whether `peer` is suspected (every path lost or never heard). A node never suspects
    /// itself.
    pub fn is_suspected(&self, peer: NodeId) -> bool {
        self.suspected
            .get(usize::from(peer))
            .copied()
            .unwrap_or(true)
    }

    /// The incarnation `peer`'s heartbeats carry (0: not heard yet).
    pub fn incarnation(&self, peer: NodeId) -> u64 {
        self.incarnation
            .get(usize::from(peer))
            .copied()
            .unwrap_or(0)
    }

    /// The state of one path to one peer.
    pub fn path_state(&self, peer: NodeId, path: PathId) -> PathState {
        if usize::from(peer) >= self.suspected.len() || usize::from(path) >= self.path_count {
            return PathState::Unknown;
        }
        self.slots[self.index(peer, path)].state
    }

    /// Per node: alive (true for this node itself).
    pub fn alive_view(&self) -> Vec<bool> {
        self.suspected.iter().map(|s| !s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::spec_with_paths;

    fn run(script: &str) -> Vec<String> {
        // Two paths (50 ms × 4 network, 200 ms × 5 disk), three nodes, we are node 0.
        let spec = spec_with_paths(3, &[(50, 4), (200, 5)]);
        let mut live = Liveness::new(&spec, 0, 0);
        let mut out = Vec::new();
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut ev = Vec::new();
            match words.as_slice() {
                ["hb", peer, path, at] => live.handle_heartbeat(
                    peer.parse().unwrap(),
                    path.parse().unwrap(),
                    1,
                    at.parse().unwrap(),
                    &mut ev,
                ),
                ["check", at] => live.handle_timeout(at.parse().unwrap(), &mut ev),
                _ => panic!("bad line {line}"),
            }
            for e in ev {
                out.push(format!("{e:?}"));
            }
        }
        out
    }

    #[test]
    fn lost_path_alone_is_only_an_event() {
        let out = run("hb 1 0 0\nhb 1 1 0\nhb 1 1 150000\ncheck 200000");
        assert_eq!(
            out,
            vec![
                "PathUp { peer: 1, path: 0 }",
                "PeerAlive { peer: 1 }",
                "PathUp { peer: 1, path: 1 }",
                "PathLost { peer: 1, path: 0 }",
            ]
        );
    }

    #[test]
    fn peer_suspected_only_when_every_path_is_lost() {
        let out =
            run("hb 1 0 0\nhb 1 1 0\ncheck 200000\ncheck 999999\ncheck 1000000\nhb 1 0 1000100");
        assert_eq!(
            out,
            vec![
                "PathUp { peer: 1, path: 0 }",
                "PeerAlive { peer: 1 }",
                "PathUp { peer: 1, path: 1 }",
                "PathLost { peer: 1, path: 0 }",
                "PathLost { peer: 1, path: 1 }",
                "PeerSuspected { peer: 1 }",
                "PathUp { peer: 1, path: 0 }",
                "PeerAlive { peer: 1 }",
            ]
        );
    }

    #[test]
    fn deadline_tracks_the_earliest_up_path() {
        let spec = spec_with_paths(3, &[(50, 4)]);
        let mut live = Liveness::new(&spec, 0, 0);
        let mut ev = Vec::new();
        live.handle_heartbeat(1, 0, 1, 10, &mut ev);
        live.handle_heartbeat(2, 0, 1, 20, &mut ev);
        assert_eq!(live.next_timeout_us(), Some(200_010));
        live.handle_heartbeat(1, 0, 1, 100, &mut ev);
        live.handle_timeout(200_010, &mut ev);
        assert_eq!(live.next_timeout_us(), Some(200_020));
        assert!(!live.is_suspected(1));
        assert!(!live.is_suspected(2));
    }

    #[test]
    fn refresh_makes_a_moved_deadline_exact() {
        let spec = spec_with_paths(3, &[(50, 4)]);
        let mut live = Liveness::new(&spec, 0, 0);
        let mut ev = Vec::new();
        live.handle_heartbeat(1, 0, 1, 10, &mut ev);
        live.handle_heartbeat(2, 0, 1, 20, &mut ev);
        // Peer 1 is heard again: the earliest deadline moved, but stays early until refreshed.
        live.handle_heartbeat(1, 0, 1, 100, &mut ev);
        assert_eq!(live.next_timeout_us(), Some(200_010));
        // Beyond the horizon an early value costs nothing: it stays until a later call.
        live.refresh_next_timeout(200_010);
        assert_eq!(live.next_timeout_us(), Some(200_010));
        live.refresh_next_timeout(200_011);
        assert_eq!(live.next_timeout_us(), Some(200_020));
        // A heartbeat on a path that is not the earliest changes nothing.
        live.handle_heartbeat(1, 0, 1, 150, &mut ev);
        live.refresh_next_timeout(u64::MAX);
        assert_eq!(live.next_timeout_us(), Some(200_020));
        live.handle_timeout(200_020, &mut ev);
        assert!(live.is_suspected(2), "peer 2 fell silent on its only path");
        assert_eq!(live.next_timeout_us(), Some(200_150));
    }

    #[test]
    fn renew_takes_only_the_common_case() {
        let spec = spec_with_paths(3, &[(50, 4), (50, 4)]);
        let mut live = Liveness::new(&spec, 0, 0);
        let mut ev = Vec::new();
        // Never heard on path 0: not the common case, nothing changes.
        assert!(!live.renew(1, 0, 7, 10));
        assert_eq!(live.path_state(1, 0), PathState::Unknown);
        live.handle_heartbeat(1, 0, 7, 10, &mut ev);
        assert!(
            live.renew(1, 0, 7, 20),
            "an up path with the known incarnation"
        );
        assert!(!live.renew(1, 0, 8, 30), "a new incarnation is an event");
        assert!(!live.renew(1, 1, 7, 30), "path 1 never came up");
        assert!(!live.renew(0, 0, 7, 30), "not from ourselves");
        assert!(!live.renew(1, 9, 7, 30), "no such path");
        // The renewal moved the deadline: at 200_015 the path is still up.
        live.handle_timeout(200_015, &mut ev);
        assert_eq!(live.path_state(1, 0), PathState::Up);
        live.handle_timeout(200_020, &mut ev);
        assert_eq!(live.path_state(1, 0), PathState::Lost);
        assert!(
            !live.renew(1, 0, 7, 200_030),
            "a lost path coming back is an event"
        );
    }

    #[test]
    fn restart_is_reported() {
        let spec = spec_with_paths(2, &[(50, 4)]);
        let mut live = Liveness::new(&spec, 0, 0);
        let mut ev = Vec::new();
        live.handle_heartbeat(1, 0, 5, 10, &mut ev);
        ev.clear();
        live.handle_heartbeat(1, 0, 6, 20, &mut ev);
        assert_eq!(ev, vec![LivenessEvent::PeerRestarted { peer: 1 }]);
    }
}
