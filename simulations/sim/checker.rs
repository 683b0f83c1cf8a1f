//! The checker: the invariants of the module docs, checked against the world truth and the
//! committed log after every step.

use super::*;
use crate::policy::snapshot;
use raft::eraftpb::MessageType;
use raft::Storage as _;

/// How long after a failure count expired the groups may still move for it (the moves it
/// causes are proposed in the next coordinator pass, and a stop and its activation may take
/// a few steps).
const EXPIRY_MOVES_US: u64 = 2_000_000;

impl Sim {
    pub(super) fn violate(&mut self, rule: &'static str, detail: String) {
        if self.violation.is_none() {
            self.trace(format!("VIOLATION {rule}: {detail}"));
            self.violation = Some(Violation {
                rule,
                detail,
                at_us: self.now_us,
                step: self.step,
            });
        }
    }

    /// Durability: a node tells another only what its disk holds. An append it accepts up to
    /// index *i* is on its disk up to *i*, and a vote it grants in term *t* is its disk's vote
    /// in *t*; raft's safety rests on both surviving a crash, and a breach here is what, much
    /// later and rarely, shows as LOG (a committed entry lost, the index reused).
    pub(super) fn check_durable(&mut self, node: NodeId, msg: &Message) {
        let Message::Raft { msg: m, .. } = msg else {
            return;
        };
        if m.reject {
            return;
        }
        let log = &self.nodes[usize::from(node)].disk.log;
        let detail = if m.msg_type == MessageType::MsgAppendResponse as u8 {
            let durable = log.last_index().unwrap_or(0);
            (durable < m.index).then(|| {
                format!(
                    "{} accepted appends up to index {} with only {durable} on its disk",
                    self.name(node),
                    m.index
                )
            })
        } else if m.msg_type == MessageType::MsgRequestVoteResponse as u8 {
            let hs = log.hard_state();
            (hs.term < m.term || (hs.term == m.term && hs.vote != m.to)).then(|| {
                format!(
                    "{} granted its vote in term {} to node id {} before its disk held it \
                     (term {}, vote {})",
                    self.name(node),
                    m.term,
                    m.to,
                    hs.term,
                    hs.vote
                )
            })
        } else {
            None
        };
        if let Some(detail) = detail {
            self.violate("DURABLE", detail);
        }
    }

    /// State agreement: a node of the common file whose state reached a new applied index
    /// holds what every other node held there.
    pub(super) fn check_state(&mut self, node: NodeId) {
        let sn = &mut self.nodes[usize::from(node)];
        let Some(core) = sn.core.as_ref().filter(|_| !sn.differs) else {
            return;
        };
        let state = core.state();
        if state.applied == sn.checked_applied || state.applied == 0 {
            return;
        }
        sn.checked_applied = state.applied;
        let applied = state.applied;
        let digest = match snapshot::encode(state, &self.keys) {
            Ok(bytes) => fnv1a64_from(0, &bytes),
            Err(e) => {
                let detail = format!("{}'s state cannot be encoded: {e}", self.name(node));
                return self.violate("STATE", detail);
            }
        };
        match self.state_at.get(&applied) {
            Some(&(d, first)) if d != digest => {
                let detail = format!(
                    "after index {applied} {} holds another state than {} did",
                    self.name(node),
                    self.name(first)
                );
                self.violate("STATE", detail);
            }
            Some(_) => {}
            None => {
                self.state_at.insert(applied, (digest, node));
            }
        }
    }

    pub(super) fn on_event(&mut self, node: NodeId, ev: Event) {
        match ev {
            Event::Committed { index, cmd } => {
                let i = index as usize;
                if self.log.len() <= i {
                    self.log.resize(i + 1, None);
                }
                match &self.log[i] {
                    Some(prev) if *prev != cmd => {
                        let detail = format!(
                            "index {index}: {} applied {cmd:?}, another node {prev:?}",
                            self.name(node)
                        );
                        self.violate("LOG", detail);
                    }
                    Some(_) => {}
                    None => {
                        self.commits += 1;
                        self.check_move(&cmd);
                        let line = self.describe(index, &cmd);
                        self.trace(line);
                        self.log[i] = Some(cmd);
                    }
                }
            }
            Event::BecameCoordinator { term } => {
                self.trace(format!("{} is coordinator (term {term})", self.name(node)));
                if self.nodes[usize::from(node)].differs {
                    let detail = format!(
                        "{}, whose cluster.toml differs from every other node's, became coordinator",
                        self.name(node)
                    );
                    self.violate("CFG", detail);
                }
            }
            Event::Liveness(LivenessEvent::PeerSuspected { peer }) => {
                let line = format!("{} suspects {}", self.name(node), self.name(peer));
                self.trace(line)
            }
            Event::LeaseLost => self.trace(format!("{} lost its lease", self.name(node))),
            Event::SelfFence => {
                self.trace(format!("{} fences itself (a stop failed)", self.name(node)))
            }
            Event::OrphanStopped { group } => {
                let line = format!(
                    "{}: {} was left running here and is not placed here: stopped",
                    self.name(node),
                    self.spec.groups[usize::from(group)].name
                );
                self.trace(line)
            }
            Event::MultipleActive { group, placed } => {
                let line = format!(
                    "{}: {} was found running here while placed on {}: stopped here",
                    self.name(node),
                    self.spec.groups[usize::from(group)].name,
                    self.name(placed)
                );
                self.trace(line)
            }
            Event::Escalated { group } => {
                let line = format!(
                    "{}: {} cannot run here, asks for failover",
                    self.name(node),
                    self.spec.groups[usize::from(group)].name
                );
                self.trace(line)
            }
            Event::ConfigDiffers { why } => {
                let line = match why {
                    Some(why) => format!("{}: acts on nothing: {why}", self.name(node)),
                    None => format!("{}: its config is the committed one again", self.name(node)),
                };
                self.trace(line)
            }
            Event::LocalRestart {
                group,
                resource,
                count,
            } => {
                let line = format!(
                    "{}: local restart of {} ({} in window)",
                    self.name(node),
                    self.spec.groups[usize::from(group)].resources[usize::from(resource)].name,
                    count
                );
                self.trace(line)
            }
            _ => {}
        }
    }

    pub(super) fn describe(&self, index: u64, cmd: &Command) -> String {
        let g = |g: &GroupId| self.spec.groups[usize::from(*g)].name.clone();
        match cmd {
            Command::Activate { group, node, cause } => {
                format!(
                    "#{index} activate {} on {} (epoch {index}, {cause:?})",
                    g(group),
                    self.name(*node)
                )
            }
            Command::Stop {
                group,
                node,
                epoch,
                cause,
            } => {
                format!(
                    "#{index} stop {} on {} (epoch {epoch}, {cause:?})",
                    g(group),
                    self.name(*node)
                )
            }
            Command::Released {
                group,
                node,
                epoch,
                how,
            } => {
                format!(
                    "#{index} released {} from {} (epoch {epoch}, {how:?})",
                    g(group),
                    self.name(*node)
                )
            }
            Command::Failed {
                group, node, epoch, ..
            } => {
                format!(
                    "#{index} {} failed on {} (epoch {epoch})",
                    g(group),
                    self.name(*node)
                )
            }
            other => format!("#{index} {other:?}"),
        }
    }

    /// L2: after the faults stopped and the cluster settled, a group moves only for a failback
    /// or a schedule, or because a failure count expired (`failure_timeout_ms`: the node it
    /// failed on may host it again, and the placement may prefer it, as Pacemaker's
    /// failure-timeout does), in the same batch as that expiry or just after it.
    pub(super) fn check_move(&mut self, cmd: &Command) {
        if let Command::FailuresExpired { .. } = cmd {
            self.failures_expired_us = Some(self.now_us);
        }
        let after_expiry = self
            .failures_expired_us
            .is_some_and(|t| self.now_us <= t + EXPIRY_MOVES_US);
        if let Command::Activate {
            cause: Cause::Failure,
            ..
        } = cmd
        {
            self.failovers += 1;
        }
        let settled =
            !self.faults_on && self.now_us >= self.sc.faults_until_us + SETTLE_US && self.sc.faults;
        if !settled {
            return;
        }
        if let Command::Stop {
            group, node, cause, ..
        } = cmd
        {
            if !matches!(cause, Cause::Failback | Cause::Schedule) && !after_expiry {
                let detail = format!(
                    "{} stopped on {} for {cause:?} after the faults stopped",
                    self.spec.groups[usize::from(*group)].name,
                    self.name(*node)
                );
                self.violate("L2", detail);
            }
        }
    }

    /// L1: every group that has an eligible node runs (world truth: every resource active on
    /// the node the committed state names).
    pub(super) fn check_recovery(&mut self, final_check: bool) {
        if self.recovered_at.is_some() || !self.sc.faults {
            return;
        }
        let since = self.now_us.saturating_sub(self.sc.faults_until_us);
        // Use the state of any live node that holds a lease and has caught up with the leader.
        let leader = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .find(|c| c.is_coordinator());
        let Some(leader) = leader else {
            if since > RECOVERY_BOUND_US || final_check {
                self.violate(
                    "L1",
                    format!(
                        "no coordinator {}s after the faults stopped",
                        since / 1_000_000
                    ),
                );
            }
            return;
        };
        let state = leader.state().clone();
        // Which groups have somewhere to run: a node in their list that is up, not in standby,
        // without a failure there, with room for the group and no anti-affinity partner. That
        // is the placement rule itself; its unit tests check it against hand-written cases.
        let up: Vec<bool> = self.nodes.iter().map(|n| n.core.is_some()).collect();
        let targets = place(&self.spec, &state, &up, None);
        let mut missing = None;
        for (g, gs) in self.spec.groups.iter().enumerate() {
            let eligible = match &targets[g] {
                Target::Exclusive(t) => t.is_some(),
                Target::Clone(nodes) => !nodes.is_empty(),
            };
            if !eligible || state.maintenance {
                continue;
            }
            let owners: Vec<NodeId> = state.groups[g].instances.iter().map(|i| i.node).collect();
            let ok = if gs.is_exclusive() {
                owners.len() == 1
                    && state.groups[g].instances[0].phase == crate::policy::state::Phase::Active
                    && self.world.truth[g]
                        .iter()
                        .all(|t| t.active.len() == 1 && t.active[0].0 == owners[0])
            } else {
                let running: Vec<NodeId> = state.groups[g]
                    .instances
                    .iter()
                    .filter(|i| i.phase == crate::policy::state::Phase::Active)
                    .map(|i| i.node)
                    .collect();
                !running.is_empty()
                    && running.iter().all(|o| {
                        self.world.truth[g]
                            .iter()
                            .all(|t| t.active.iter().any(|a| a.0 == *o))
                    })
            };
            if !ok {
                missing = Some(g);
                break;
            }
        }
        match missing {
            None => {
                self.recovered_at = Some(self.now_us);
                self.trace(format!(
                    "every group is active again, {} ms after the faults stopped",
                    since / 1000
                ));
            }
            Some(g) if since > RECOVERY_BOUND_US || final_check => {
                let detail = format!(
                    "{} not active {} s after the faults stopped (bound {} s)",
                    self.spec.groups[g].name,
                    since / 1_000_000,
                    RECOVERY_BOUND_US / 1_000_000
                );
                self.violate("L1", detail);
            }
            Some(_) => {}
        }
    }
}
