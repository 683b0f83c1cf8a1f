//! Two nodes with a fencing device and no witness (docs/architecture.md §6, "Two nodes with
//! a fencing device"): the survivor of its peer fences it and goes on alone.
//!
//! Two voters make no majority alone, so when one node dies the other elects no coordinator.
//! With a fencing device it need not wait: once the device confirms the peer is off, the
//! peer can neither vote nor lead nor run anything, and the survivor may coordinate as the
//! only voter ([`super::consensus::Consensus::go_alone`]). This part of the node core decides
//! when to fence and what follows; [`super::node`] carries it out.
//!
//! | state | on | next |
//! |---|---|---|
//! | `Idle` | the peer is a voter, silent on every path, and this node may go alone | `Running` (asks the shell to fence the peer) |
//! | `Running` | the agent confirmed | `Alone` (go alone; propose [`Command::Solo`] once leader) |
//! | `Running` | the agent failed | `Failed`, retried after the fencer's backoff while still needed |
//! | `Failed` | the peer is heard again, or it is no longer needed | `Idle` |
//! | `Alone` | [`Command::Solo`] of this node applied | `Idle` (the replicated state says alone from now on) |
//!
//! Who may go alone ([`ClusterState::may_go_alone`]): only a node whose own
//! [`Command::Joined`] is applied, so never a node that came back with a stale log while its
//! peer was alone (it would lose what the peer committed alone). This implies corosync's
//! `wait_for_all`: a node that boots during a partition never shoots a healthy peer.
//!
//! Both nodes fencing each other at once is settled by the shell's `delay_ms` of the target
//! (Pacemaker's `pcmk_delay_base`): the node without delay is fenced late, after its own shot
//! has powered the other off. Validation asks for different delays on the two nodes.
//!
//! Fence attempts of this part are numbered from [`ATTEMPT_BASE`], so that the shell's outcome
//! finds its way back here and not to the coordinator's fencer.
//!
//! Pure: time comes in as `now_us`.

use super::fencing::{backoff_us, FenceRequest};
use super::spec::NodeId;
use super::state::{ClusterState, Command};

/// The first attempt number of a two-node fence; the coordinator's fencer counts from 1.
pub const ATTEMPT_BASE: u32 = 1 << 31;
/// How long a proposed [`Command::Solo`] or [`Command::Joined`] may take to commit before it
/// is proposed again.
const PROPOSE_AGAIN_US: u64 = 200_000;

/// Where the fencing of the peer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Nothing asked.
    Idle,
    /// `attempt` asked of the shell.
    Running {
        /// The attempt (from [`ATTEMPT_BASE`]).
        attempt: u32,
    },
    /// `attempt` failed; the next is due at `retry_us`.
    Failed {
        /// The attempt that failed.
        attempt: u32,
        /// When to try again.
        retry_us: u64,
    },
    /// The peer is fenced; this node goes alone and, as leader, proposes [`Command::Solo`].
    Alone {
        /// This node's last log index when the fence succeeded.
        through: u64,
        /// When [`Command::Solo`] was last proposed.
        proposed_us: Option<u64>,
    },
}

/// What the node core knows, for one step.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// The peer votes in this node's raft configuration.
    pub peer_votes: bool,
    /// The peer is heard on no path.
    pub peer_silent: bool,
    /// This node is the raft leader.
    pub leader: bool,
    /// The last index of this node's log.
    pub last_index: u64,
    /// This daemon's incarnation.
    pub incarnation: u64,
    /// The peer's incarnation, as its heartbeats tell it (0: unknown).
    pub peer_incarnation: u64,
    /// As leader: the highest index known to be in the peer's log.
    pub peer_matched: Option<u64>,
    /// Now.
    pub now_us: u64,
}

/// What the node core must do after a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Todo {
    /// Fence the peer (the shell runs it and feeds back the outcome).
    pub fence: Option<FenceRequest>,
    /// Make the peer a learner and campaign as the only voter.
    pub go_alone: bool,
    /// Make the learner peer a voter again.
    pub take_back: bool,
    /// Commands to propose (as leader).
    pub propose: Vec<Command>,
    /// When to step again without news, if ever.
    pub wake_us: Option<u64>,
}

/// The two-node part of one node's core.
#[derive(Clone, Debug)]
pub struct TwoNode {
    me: NodeId,
    peer: NodeId,
    stage: Stage,
    next_attempt: u32,
    /// A `Joined` proposed for (node, incarnation) at this time; slot 0 is this node.
    joined_proposed: [Option<(u64, u64)>; 2],
    /// This daemon made the peer a voter again (its `Joined` may not be applied yet).
    taken_back: bool,
}

impl TwoNode {
    /// The part of node `me` whose peer is `peer`.
    pub fn new(me: NodeId, peer: NodeId) -> TwoNode {
        TwoNode {
            me,
            peer,
            stage: Stage::Idle,
            next_attempt: ATTEMPT_BASE,
            joined_proposed: [None; 2],
            taken_back: false,
        }
    }

    /// The peer.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// Where the fencing of the peer stands.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether `attempt` is one of ours.
    pub fn owns(attempt: u32) -> bool {
        attempt >= ATTEMPT_BASE
    }

    /// The shell's outcome of fence `attempt`; whether it was the awaited one. `last_index`
    /// is this node's last log index now.
    pub fn on_result(&mut self, attempt: u32, ok: bool, last_index: u64, now_us: u64) -> bool {
        if self.stage != (Stage::Running { attempt }) {
            return false;
        }
        self.stage = if ok {
            Stage::Alone {
                through: last_index,
                proposed_us: None,
            }
        } else {
            Stage::Failed {
                attempt,
                retry_us: now_us + backoff_us(attempt - ATTEMPT_BASE + 1),
            }
        };
        true
    }

    /// Whether this node's raft configuration should have the peer as a learner: it fenced
    /// the peer and its `Solo` is not yet applied, or the state says it goes alone and it has
    /// not taken the peer back.
    pub fn wants_alone(&self, state: &ClusterState, peer_votes: bool) -> bool {
        matches!(self.stage, Stage::Alone { .. }) || (state.solo == Some(self.me) && !peer_votes)
    }

    /// One step over the facts and the replicated state.
    pub fn step(&mut self, state: &ClusterState, f: Facts) -> Todo {
        let mut todo = Todo::default();
        let alone_in_state = state.solo == Some(self.me);
        if let Stage::Alone { .. } = self.stage {
            if alone_in_state {
                self.stage = Stage::Idle;
            }
        }
        match self.stage {
            Stage::Idle => {
                if f.peer_votes && f.peer_silent && state.may_go_alone(self.me, f.incarnation) {
                    todo.fence = Some(self.ask());
                }
            }
            Stage::Running { .. } => {}
            Stage::Failed { .. } if !f.peer_silent || !f.peer_votes => self.stage = Stage::Idle,
            Stage::Failed { retry_us, .. } if f.now_us >= retry_us => {
                todo.fence = Some(self.ask());
            }
            Stage::Failed { retry_us, .. } => todo.wake_us = Some(retry_us),
            Stage::Alone {
                through,
                proposed_us,
            } => {
                if f.peer_votes {
                    todo.go_alone = true;
                }
                if f.leader {
                    match proposed_us {
                        Some(p) if f.now_us < p + PROPOSE_AGAIN_US => {
                            todo.wake_us = Some(p + PROPOSE_AGAIN_US);
                        }
                        _ => {
                            todo.propose.push(Command::Solo {
                                node: self.me,
                                peer: self.peer,
                                through,
                            });
                            self.stage = Stage::Alone {
                                through,
                                proposed_us: Some(f.now_us),
                            };
                            todo.wake_us = Some(f.now_us + PROPOSE_AGAIN_US);
                        }
                    }
                }
            }
        }
        // The state says alone, the configuration does not: a restart replayed our `Solo`.
        if alone_in_state && f.peer_votes && !self.taken_back {
            todo.go_alone = true;
        }
        // The state no longer says alone (the peer's `Joined` applied), the configuration
        // still does: the peer holds everything (that is what its `Joined` proves).
        if !alone_in_state && !f.peer_votes && !matches!(self.stage, Stage::Alone { .. }) {
            todo.take_back = true;
        }
        if f.leader && alone_in_state && !f.peer_votes && !f.peer_silent && f.peer_incarnation != 0
        {
            // Alone, and the peer is back: take it back once it holds our whole log.
            if f.peer_matched.is_some_and(|m| m >= f.last_index) {
                todo.take_back = true;
            }
        }
        if todo.go_alone {
            todo.take_back = false;
            self.taken_back = false;
        } else if todo.take_back {
            self.taken_back = true;
        }
        if f.leader && !matches!(self.stage, Stage::Alone { .. }) {
            let peer_votes = f.peer_votes || todo.take_back;
            self.propose_joined(state, self.me, f.incarnation, f.now_us, &mut todo);
            if peer_votes && !f.peer_silent {
                self.propose_joined(state, self.peer, f.peer_incarnation, f.now_us, &mut todo);
            }
        }
        todo
    }

    fn slot(&self, node: NodeId) -> u8 {
        u8::from(node != self.me)
    }

    fn propose_joined(
        &mut self,
        state: &ClusterState,
        node: NodeId,
        incarnation: u64,
        now_us: u64,
        todo: &mut Todo,
    ) {
        if incarnation == 0 || state.joined.get(usize::from(node)) == Some(&incarnation) {
            return;
        }
        let slot = usize::from(self.slot(node));
        match self.joined_proposed[slot] {
            Some((inc, at)) if inc == incarnation && now_us < at + PROPOSE_AGAIN_US => {
                let due = at + PROPOSE_AGAIN_US;
                todo.wake_us = Some(todo.wake_us.map_or(due, |w| w.min(due)));
            }
            _ => {
                todo.propose.push(Command::Joined { node, incarnation });
                self.joined_proposed[slot] = Some((incarnation, now_us));
            }
        }
    }

    fn ask(&mut self) -> FenceRequest {
        let attempt = self.next_attempt;
        self.next_attempt = self.next_attempt.saturating_add(1);
        self.stage = Stage::Running { attempt };
        FenceRequest {
            target: self.peer,
            attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::simple_spec;

    const INC: u64 = 11;
    const PEER_INC: u64 = 22;

    fn facts(now_us: u64) -> Facts {
        Facts {
            peer_votes: true,
            peer_silent: false,
            leader: false,
            last_index: 40,
            incarnation: INC,
            peer_incarnation: PEER_INC,
            peer_matched: None,
            now_us,
        }
    }

    /// Node 0's `Solo` (through 44) applied at index 46.
    fn solo(spec: &crate::policy::spec::ClusterSpec, s: &mut ClusterState) {
        let cmd = Command::Solo {
            node: 0,
            peer: 1,
            through: 44,
        };
        s.apply(spec, 46, &cmd);
    }

    /// Node 0's state with its own `Joined` applied.
    fn joined_state() -> ClusterState {
        let spec = simple_spec(2, 1);
        let mut s = ClusterState::new(&spec);
        let cmd = Command::Joined {
            node: 0,
            incarnation: INC,
        };
        s.apply(&spec, 5, &cmd);
        s
    }

    #[test]
    fn a_node_whose_own_joined_is_not_applied_never_fences() {
        let spec = simple_spec(2, 1);
        let fresh = ClusterState::new(&spec);
        let mut t = TwoNode::new(0, 1);
        let silent = Facts {
            peer_silent: true,
            ..facts(1)
        };
        assert_eq!(t.step(&fresh, silent).fence, None, "wait_for_all");
        let mut stale = joined_state();
        stale.apply(
            &spec,
            6,
            &Command::Solo {
                node: 1,
                peer: 0,
                through: 6,
            },
        );
        assert_eq!(
            t.step(&stale, silent).fence,
            None,
            "the peer went alone: our log may lack what it committed"
        );
        let ok = joined_state();
        let wrong_daemon = Facts {
            incarnation: INC + 1,
            ..silent
        };
        assert_eq!(
            t.step(&ok, wrong_daemon).fence,
            None,
            "a Joined of an earlier daemon of ours proves nothing about this one's log"
        );
    }

    #[test]
    fn a_silent_peer_is_fenced_then_left_out_and_solo_is_proposed_as_leader() {
        let spec = simple_spec(2, 1);
        let mut s = joined_state();
        let mut t = TwoNode::new(0, 1);
        assert_eq!(
            t.step(&s, facts(1)),
            Todo::default(),
            "a peer heard: nothing"
        );
        let silent = Facts {
            peer_silent: true,
            ..facts(2)
        };
        let r = t
            .step(&s, silent)
            .fence
            .expect("a fence of the silent peer");
        assert_eq!(r.target, 1);
        assert!(TwoNode::owns(r.attempt));
        assert_eq!(t.step(&s, silent).fence, None, "one fence at a time");

        // It fails: retried after the backoff while the peer stays silent.
        assert!(
            !t.on_result(r.attempt + 1, true, 40, 3),
            "not the awaited attempt"
        );
        assert!(t.on_result(r.attempt, false, 40, 3));
        let todo = t.step(
            &s,
            Facts {
                now_us: 4,
                ..silent
            },
        );
        assert_eq!(todo.fence, None);
        let due = todo.wake_us.expect("a retry is due later");
        let again = t.step(
            &s,
            Facts {
                now_us: due,
                ..silent
            },
        );
        let r2 = again.fence.expect("the retry");
        assert_eq!(r2.attempt, r.attempt + 1);

        // It succeeds: leave the peer out; as leader, propose Solo through our last index.
        assert!(t.on_result(r2.attempt, true, 44, due + 1));
        let todo = t.step(
            &s,
            Facts {
                now_us: due + 2,
                ..silent
            },
        );
        assert!(todo.go_alone && todo.propose.is_empty());
        let leader = Facts {
            peer_votes: false,
            leader: true,
            now_us: due + 3,
            ..silent
        };
        let todo = t.step(&s, leader);
        assert!(!todo.go_alone);
        assert_eq!(
            todo.propose,
            vec![Command::Solo {
                node: 0,
                peer: 1,
                through: 44
            }]
        );
        assert!(
            t.step(&s, leader).propose.is_empty(),
            "not proposed twice at once"
        );
        solo(&spec, &mut s);
        let todo = t.step(&s, leader);
        assert_eq!(t.stage(), Stage::Idle);
        assert!(todo.fence.is_none() && !todo.go_alone && !todo.take_back);
        assert!(todo.propose.is_empty(), "{:?}", todo.propose);
    }

    #[test]
    fn a_failed_fence_is_dropped_once_the_peer_is_heard_again() {
        let s = joined_state();
        let mut t = TwoNode::new(0, 1);
        let silent = Facts {
            peer_silent: true,
            ..facts(1)
        };
        let r = t.step(&s, silent).fence.unwrap();
        t.on_result(r.attempt, false, 40, 2);
        t.step(&s, facts(3));
        assert_eq!(t.stage(), Stage::Idle);
    }

    #[test]
    fn alone_the_survivor_takes_its_peer_back_once_it_holds_the_whole_log() {
        let spec = simple_spec(2, 1);
        let mut s = joined_state();
        solo(&spec, &mut s);
        let mut t = TwoNode::new(0, 1);
        // A restart replays Solo: the configuration is left alone again at once.
        assert!(t.step(&s, facts(1)).go_alone);
        let back = Facts {
            peer_votes: false,
            leader: true,
            last_index: 60,
            peer_matched: Some(50),
            ..facts(2)
        };
        let todo = t.step(&s, back);
        assert!(!todo.take_back, "the learner is behind");
        assert!(todo.propose.is_empty());
        let caught_up = Facts {
            peer_matched: Some(60),
            now_us: 3,
            ..back
        };
        let todo = t.step(&s, caught_up);
        assert!(todo.take_back);
        assert_eq!(
            todo.propose,
            vec![Command::Joined {
                node: 1,
                incarnation: PEER_INC
            }]
        );
        // Taken back, its Joined not yet applied: the replayed Solo must not undo it.
        let voter = Facts {
            peer_votes: true,
            now_us: 4,
            ..caught_up
        };
        let todo = t.step(&s, voter);
        assert!(!todo.go_alone && !todo.take_back);
        s.apply(
            &spec,
            61,
            &Command::Joined {
                node: 1,
                incarnation: PEER_INC,
            },
        );
        assert_eq!(s.solo, None, "the peer's Joined ends the solo state");
        assert!(s.may_go_alone(1, PEER_INC), "and the peer may fence us now");
    }

    #[test]
    fn a_replay_that_ends_the_solo_state_takes_the_peer_back() {
        let spec = simple_spec(2, 1);
        let mut s = joined_state();
        let mut t = TwoNode::new(0, 1);
        for (i, cmd) in [
            Command::Solo {
                node: 0,
                peer: 1,
                through: 44,
            },
            Command::Joined {
                node: 1,
                incarnation: PEER_INC,
            },
        ]
        .into_iter()
        .enumerate()
        {
            s.apply(&spec, 50 + i as u64, &cmd);
        }
        let left_out = Facts {
            peer_votes: false,
            ..facts(1)
        };
        assert!(t.step(&s, left_out).take_back);
    }

    #[test]
    fn solo_releases_every_instance_of_the_fenced_peer_placed_through_its_index() {
        let spec = simple_spec(2, 2);
        let mut s = ClusterState::new(&spec);
        for (i, g) in [0u16, 1].into_iter().enumerate() {
            let cmd = Command::Activate {
                group: g,
                node: 1,
                cause: crate::policy::state::Cause::Initial,
            };
            s.apply(&spec, 10 + i as u64, &cmd);
        }
        s.apply(
            &spec,
            20,
            &Command::Solo {
                node: 0,
                peer: 1,
                through: 10,
            },
        );
        assert!(s.groups[0].instances.is_empty(), "placed up to 10: gone");
        assert_eq!(
            s.groups[1].instances.len(),
            1,
            "placed after the survivor's last index: not this fence's"
        );
        assert_eq!(s.solo, Some(0));
    }
}
