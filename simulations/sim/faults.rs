//! The faults: drawn from their own random stream (so a change in the cores changes the
//! network's draws but not the fault schedule), scripted ones for the demo, and their
//! healing.

use super::*;

pub(super) enum HealKind {
    Cut {
        path: u8,
        from: NodeId,
        to: NodeId,
    },
    Loss {
        path: u8,
    },
    Bad {
        node: NodeId,
        group: GroupId,
        resource: ResourceId,
    },
}

impl Sim {
    pub(super) fn inject_fault(&mut self) {
        let n = self.nodes.len();
        let paths = self.spec.paths.len();
        let span = self.fault_rng.range(500_000, 5_000_000);
        let until = (self.now_us + span).min(self.sc.faults_until_us);
        self.fault_count += 1;
        let pick = self.fault_rng.range(0, 100);
        let node = self.fault_rng.range(0, n as u64) as NodeId;
        match pick {
            0..=19 => {
                let kind = self.fault_rng.range(0, 20);
                if kind >= 12 {
                    // One of the node's two processes, not the machine.
                    self.process_fault(node, kind - 12);
                } else if self.fault_rng.chance(500_000) {
                    // Half the crashes hit the node in the middle of its next raft log write,
                    // so that lost and torn writes are common, not a rare coincidence.
                    self.crash_during_next_write(node);
                } else if self.machine_up(node) {
                    self.crash(node, "fault: node crash", None);
                }
            }
            20..=34 => self.isolate(node, until),
            35..=44 => {
                // One-way: the node hears nothing (or is not heard).
                let inbound = self.fault_rng.chance(500_000);
                self.trace(format!(
                    "fault: {} one-way cut ({})",
                    self.name(node),
                    if inbound {
                        "hears nothing"
                    } else {
                        "is not heard"
                    }
                ));
                for p in 0..paths {
                    if self.spec.paths[p].kind != PathKind::Network {
                        continue;
                    }
                    for peer in 0..n as NodeId {
                        if peer != node {
                            if inbound {
                                self.set_cut(p, peer, node, true, until);
                            } else {
                                self.set_cut(p, node, peer, true, until);
                            }
                        }
                    }
                }
            }
            45..=54 => {
                // Split the cluster in two on every network path.
                let mut side = vec![false; n];
                for s in side.iter_mut() {
                    *s = self.fault_rng.chance(500_000);
                }
                self.trace(format!(
                    "fault: split {:?}",
                    side.iter().map(|&s| u8::from(s)).collect::<Vec<_>>()
                ));
                for p in 0..paths {
                    if self.spec.paths[p].kind != PathKind::Network {
                        continue;
                    }
                    for a in 0..n {
                        for b in 0..n {
                            if side[a] != side[b] {
                                self.set_cut(p, a as NodeId, b as NodeId, true, until);
                            }
                        }
                    }
                }
            }
            55..=62 => {
                // One network path fails everywhere: only an event.
                let p = self.fault_rng.range(0, paths as u64) as usize;
                if self.spec.paths[p].kind == PathKind::Network {
                    self.trace(format!(
                        "fault: path {} down everywhere",
                        self.spec.paths[p].name
                    ));
                    for a in 0..n as NodeId {
                        for b in 0..n as NodeId {
                            if a != b {
                                self.set_cut(p, a, b, true, until);
                            }
                        }
                    }
                }
            }
            63..=70 => {
                let p = self.fault_rng.range(0, paths as u64) as usize;
                let loss = self.fault_rng.range(50_000, 400_000) as u32;
                self.trace(format!(
                    "fault: {}% loss on {}",
                    loss / 10_000,
                    self.spec.paths[p].name
                ));
                self.net.path_loss_ppm[p] = loss;
                self.schedule(until, Ev::Heal(HealKind::Loss { path: p as u8 }));
            }
            71..=82 => {
                // An application crash: the process exits, seen at once.
                if let Some((g, r, owner)) = self.random_active() {
                    self.exit_process(g, r, owner);
                }
            }
            83..=90 => {
                // A health failure: monitors fail until the resource is stopped.
                if let Some((g, r, owner)) = self.random_active() {
                    let name = self.spec.groups[usize::from(g)].resources[usize::from(r)]
                        .name
                        .clone();
                    self.trace(format!("fault: {name} unhealthy on {}", self.name(owner)));
                    self.world.bad.push((owner, g, r));
                    self.schedule(
                        until,
                        Ev::Heal(HealKind::Bad {
                            node: owner,
                            group: g,
                            resource: r,
                        }),
                    );
                }
            }
            91..=92 => self.fail_disk(node, until),
            93..=94 => {
                // Stops hang on this node (until it reboots).
                if !self.world.hang_stops.contains(&node) {
                    self.trace(format!("fault: stops hang on {}", self.name(node)));
                    self.world.hang_stops.push(node);
                }
            }
            _ => self.admin_fault(),
        }
    }

    /// Cut `node` off every network path in both directions until `until` (a disk path
    /// survives: partitioned, not dead).
    pub(super) fn isolate(&mut self, node: NodeId, until: u64) {
        let n = self.nodes.len();
        self.trace(format!(
            "fault: {} partitioned from every network",
            self.name(node)
        ));
        for p in 0..self.spec.paths.len() {
            if self.spec.paths[p].kind != PathKind::Network {
                continue;
            }
            for peer in 0..n as NodeId {
                if peer != node {
                    self.set_cut(p, node, peer, true, until);
                    self.set_cut(p, peer, node, true, until);
                }
            }
        }
    }

    pub(super) fn scripted(&mut self, f: Scripted) {
        self.fault_count += 1;
        match f {
            Scripted::Crash { node, down_us } => {
                if self.machine_up(node) {
                    self.crash(node, "fault: node crash", Some(down_us));
                }
            }
            Scripted::Exit { group, resource } => {
                let owner = self.world.truth[usize::from(group)][usize::from(resource)]
                    .active
                    .first()
                    .map(|a| a.0);
                if let Some(owner) = owner {
                    self.exit_process(group, resource, owner);
                }
            }
            Scripted::Isolate { node, for_us } => self.isolate(node, self.now_us + for_us),
        }
    }

    /// One seed in four, one node restarts with a `cluster.toml` of its own for 2–8 s of the
    /// faults, then with the agreed one again. Drawn from a stream of its own when the run is
    /// built, so the seeds without it run as they did before it existed. Needs three voters:
    /// two cannot elect anybody while one of them differs, and the point is that the others
    /// go on without it.
    pub(super) fn plan_own_config(&mut self) {
        let n = self.nodes.len();
        let mut rng = Rng::new(self.sc.seed ^ 0xC0F1_6D1F);
        if !self.sc.faults || n < 3 || !rng.chance(250_000) {
            return;
        }
        let node = rng.range(0, n as u64) as NodeId;
        let last = self.sc.faults_until_us.saturating_sub(8_000_000);
        if last <= 2_000_000 {
            return;
        }
        let from = rng.range(2_000_000, last);
        let until = from + rng.range(2_000_000, 8_000_000);
        self.schedule(from, Ev::OwnConfig { node, on: true });
        self.schedule(until, Ev::OwnConfig { node, on: false });
    }

    /// The node restarts with a differing file (`on`) or with the agreed one: a daemon
    /// restart after an edit, modelled as the machine's (what it ran is gone either way).
    pub(super) fn own_config(&mut self, node: NodeId, on: bool) {
        self.nodes[usize::from(node)].differs = on;
        let why = if on {
            "fault: restarts with a cluster.toml that differs from the others'"
        } else {
            "heal: restarts with the agreed cluster.toml"
        };
        if self.machine_up(node) {
            self.crash(node, why, Some(100_000));
        } else {
            self.trace(format!("{} (while down) {why}", self.name(node)));
        }
    }

    pub(super) fn admin_fault(&mut self) {
        let n = self.spec.nodes.len();
        let groups = self.spec.groups.len();
        let g = self.fault_rng.range(0, groups as u64) as GroupId;
        let node = self.fault_rng.range(0, n as u64) as NodeId;
        let cmd = match self.fault_rng.range(0, 5) {
            0 => AdminCommand::Move { group: g, to: None },
            1 => AdminCommand::Move {
                group: g,
                to: Some(node),
            },
            2 => AdminCommand::Standby { node, on: true },
            3 => AdminCommand::Standby { node, on: false },
            _ => AdminCommand::FailbackNow { group: g },
        };
        self.trace(format!("admin: {cmd:?}"));
        let via = self.fault_rng.range(0, n as u64) as NodeId;
        let local = self.nodes[usize::from(via)].clock.local(self.now_us);
        if let Some(core) = self.nodes[usize::from(via)].core.as_mut() {
            core.handle(Input::Admin(cmd), local);
            self.after_node(via);
        }
    }

    pub(super) fn random_active(&mut self) -> Option<(GroupId, ResourceId, NodeId)> {
        let mut all = Vec::new();
        for (g, rs) in self.world.truth.iter().enumerate() {
            for (r, t) in rs.iter().enumerate() {
                for a in &t.active {
                    all.push((g as GroupId, r as ResourceId, a.0));
                }
            }
        }
        if all.is_empty() {
            return None;
        }
        let k = self.fault_rng.range(0, all.len() as u64) as usize;
        Some(all[k])
    }

    pub(super) fn heal(&mut self, h: HealKind) {
        match h {
            HealKind::Cut { path, from, to } => self.write_cut(usize::from(path), from, to, false),
            HealKind::Loss { path } => self.net.path_loss_ppm[usize::from(path)] = 0,
            HealKind::Bad {
                node,
                group,
                resource,
            } => self.world.bad.retain(|b| *b != (node, group, resource)),
        }
    }

    pub(super) fn end_faults(&mut self) {
        self.faults_on = false;
        if !self.sc.faults {
            return;
        }
        self.trace("faults stop; everything heals".into());
        let n = self.nodes.len() as NodeId;
        for p in 0..self.spec.paths.len() {
            for from in 0..n {
                for to in (0..n).filter(|&to| to != from) {
                    self.write_cut(p, from, to, false);
                }
            }
        }
        self.net.path_loss_ppm.iter_mut().for_each(|l| *l = 0);
        self.net.opts.loss_ppm = 0;
        self.net.opts.dup_ppm = 0;
        self.world.bad.clear();
        self.world.hang_stops.clear();
        self.heal_disks();
        // Take every node out of standby so that every group has somewhere to go.
        let n = self.spec.nodes.len();
        for node in 0..n as NodeId {
            let via = node;
            if self.nodes[usize::from(via)].core.is_some() {
                let local = self.nodes[usize::from(via)].clock.local(self.now_us);
                if let Some(core) = self.nodes[usize::from(via)].core.as_mut() {
                    core.handle(
                        Input::Admin(AdminCommand::Standby { node, on: false }),
                        local,
                    );
                }
                self.after_node(via);
            }
        }
        self.schedule(self.now_us + 50_000, Ev::Check);
    }

    /// After the faults, an operator takes every node out of standby and repeats the command
    /// until the coordinator has committed it (an admin command sent while no coordinator was
    /// known is refused, not queued).
    pub(super) fn retry_unstandby(&mut self) {
        if self.now_us < self.next_unstandby_us {
            return;
        }
        self.next_unstandby_us = self.now_us + 500_000;
        let Some(leader) = self
            .nodes
            .iter()
            .position(|n| n.core.as_ref().is_some_and(|c| c.is_coordinator()))
        else {
            return;
        };
        let standby: Vec<NodeId> = match self.nodes[leader].core.as_ref() {
            Some(c) => (0..self.spec.nodes.len() as NodeId)
                .filter(|&n| c.state().standby[usize::from(n)])
                .collect(),
            None => return,
        };
        let local = self.nodes[leader].clock.local(self.now_us);
        for node in standby {
            if let Some(core) = self.nodes[leader].core.as_mut() {
                core.handle(
                    Input::Admin(AdminCommand::Standby { node, on: false }),
                    local,
                );
            }
        }
        self.after_node(leader as NodeId);
    }
}
