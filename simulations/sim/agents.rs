//! The simulated resource agents: starts that take time and can fail, monitors that fail
//! on an unhealthy resource, processes that exit, stops that hang.

use super::*;

impl Sim {
    pub(super) fn agent_op(&mut self, node: NodeId, op: AgentOp) {
        let inc = self.nodes[usize::from(node)].incarnation;
        let g = usize::from(op.group);
        let r = usize::from(op.resource);
        let exclusive = self.spec.groups[g].is_exclusive();
        if matches!(op.action, Action::Start | Action::Stop) {
            let verb = if op.action == Action::Start {
                "starts"
            } else {
                "stops"
            };
            let line = format!(
                "{} {verb} {} (epoch {})",
                self.name(node),
                self.spec.groups[g].resources[r].name,
                op.epoch
            );
            self.narrate(&line);
        }
        let (outcome, took_us) = match op.action {
            Action::Probe => {
                let here = self.world.truth[g][r].active.iter().any(|a| a.0 == node);
                (
                    if here {
                        Outcome::Ok
                    } else {
                        Outcome::NotRunning
                    },
                    1_000,
                )
            }
            Action::Start if self.nodes[usize::from(node)].differs => {
                let detail = format!(
                    "{}, whose cluster.toml differs from every other node's, starts {}",
                    self.name(node),
                    self.spec.groups[g].resources[r].name
                );
                self.violate("CFG", detail);
                (Outcome::Ok, 1_000)
            }
            Action::Start => {
                // S2: never start under an epoch lower than one already used for the group.
                // (Clone copies each carry their own epoch and may run side by side.)
                if exclusive && op.epoch < self.world.max_epoch[g] {
                    let detail = format!(
                        "{} starts {} under epoch {} after epoch {} was used",
                        self.name(node),
                        self.spec.groups[g].resources[r].name,
                        op.epoch,
                        self.world.max_epoch[g]
                    );
                    self.violate("S2", detail);
                }
                self.world.max_epoch[g] = self.world.max_epoch[g].max(op.epoch);
                // World truth: active from the moment the start begins.
                let t = &mut self.world.truth[g][r];
                if !t.active.iter().any(|a| a.0 == node) {
                    t.active.push((node, op.epoch));
                }
                if exclusive && t.active.len() > 1 {
                    let holders: Vec<String> = t
                        .active
                        .iter()
                        .map(|(n, e)| {
                            format!("{} (epoch {e})", self.spec.nodes[usize::from(*n)].name)
                        })
                        .collect();
                    let detail = format!(
                        "{} active on {}",
                        self.spec.groups[g].resources[r].name,
                        holders.join(" and ")
                    );
                    self.violate("S1", detail);
                }
                let fails = self.faults_on && self.rng.chance(20_000);
                (
                    if fails { Outcome::Failed } else { Outcome::Ok },
                    self.rng.range(5_000, 60_000),
                )
            }
            Action::Stop => {
                if self.world.hang_stops.contains(&node) {
                    return; // never answers; the node's stop timeout and watchdog take over
                }
                (Outcome::Ok, self.rng.range(1_000, 20_000))
            }
            Action::MonitorQuick | Action::MonitorDeep => {
                let here = self.world.truth[g][r].active.iter().any(|a| a.0 == node);
                let bad = self.world.bad.contains(&(node, op.group, op.resource));
                let outcome = if bad {
                    Outcome::Failed
                } else if here {
                    Outcome::Ok
                } else {
                    Outcome::NotRunning
                };
                (outcome, self.rng.range(500, 5_000))
            }
        };
        self.schedule(
            self.now_us + took_us,
            Ev::AgentDone {
                node,
                inc,
                op,
                outcome,
            },
        );
    }

    pub(super) fn agent_done(&mut self, node: NodeId, inc: u64, op: AgentOp, outcome: Outcome) {
        let i = usize::from(node);
        if self.nodes[i].incarnation != inc || self.nodes[i].core.is_none() {
            return;
        }
        if op.action == Action::Stop && outcome == Outcome::Ok {
            let t = &mut self.world.truth[usize::from(op.group)][usize::from(op.resource)];
            t.active.retain(|a| a.0 != node);
            self.world
                .bad
                .retain(|b| *b != (node, op.group, op.resource));
        }
        let local = self.nodes[i].clock.local(self.now_us);
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.handle(
                Input::AgentResult {
                    group: op.group,
                    resource: op.resource,
                    op: op.op,
                    outcome,
                    reason: String::new(),
                },
                local,
            );
        }
        self.after_node(node);
    }

    /// A resource's process exits on `owner`; its node sees the exit at once.
    pub(super) fn exit_process(&mut self, g: GroupId, r: ResourceId, owner: NodeId) {
        let t = &mut self.world.truth[usize::from(g)][usize::from(r)];
        t.active.retain(|a| a.0 != owner);
        let name = self.spec.groups[usize::from(g)].resources[usize::from(r)]
            .name
            .clone();
        self.trace(format!("fault: {name} exits on {}", self.name(owner)));
        let local = self.nodes[usize::from(owner)].clock.local(self.now_us);
        if let Some(core) = self.nodes[usize::from(owner)].core.as_mut() {
            core.handle(
                Input::ResourceFailed {
                    group: g,
                    resource: r,
                    reason: String::new(),
                },
                local,
            );
            self.after_node(owner);
        }
    }
}
