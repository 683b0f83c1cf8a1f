//! The status snapshot ([`Status`]) of one daemon, built from its node core and the little the
//! shell knows that the core does not (whether it is the witness, a drain in progress). Kept outside the
//! actors so that every front end (the control socket, `eternectl status`, a REST API or the
//! web console) shows the same thing.

use super::{
    snake, FailureView, FenceDeviceView, GroupView, InstanceView, NodeView, PathView, ResourceView,
    Status,
};
use crate::policy::detector::PathState;
use crate::policy::fencing::DeviceHealth;
use crate::policy::node::NodeCore;
use crate::policy::spec::{GroupId, NodeId, PartitionPolicy, PathId, PathKind};
use crate::policy::state::Phase;

/// What the shell adds to the core's view.
#[derive(Clone, Copy, Debug)]
pub struct Shell {
    /// This daemon is the witness.
    pub witness: bool,
    /// A drain (SIGTERM) is in progress.
    pub draining: bool,
    /// Now, on the core's clock (to say how long ago a failure was).
    pub now_us: u64,
}

/// The status of the daemon whose core is `core`.
pub fn build(core: &NodeCore, shell: &Shell) -> Status {
    let spec = core.spec();
    let me = core.me();
    let node_name = |n: NodeId| {
        spec.nodes
            .get(usize::from(n))
            .map_or_else(|| format!("node#{n}"), |s| s.name.clone())
    };
    let live = core.liveness();
    let state = core.state();
    let nodes = spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let id = i as NodeId;
            let here = id == me;
            NodeView {
                name: n.name.clone(),
                me: here,
                witness: n.witness,
                alive: here || !live.is_suspected(id),
                standby: state.standby.get(i).copied().unwrap_or(false),
                config_mismatch: if here {
                    core.config_differs().is_some()
                } else {
                    !core.config_agrees(id)
                },
                paths: if here {
                    Vec::new()
                } else {
                    spec.paths
                        .iter()
                        .enumerate()
                        .map(|(p, ps)| PathView {
                            name: ps.name.clone(),
                            kind: snake(&ps.kind),
                            state: match live.path_state(id, p as PathId) {
                                PathState::Up => "up",
                                PathState::Lost => "lost",
                                PathState::Unknown => "unknown",
                            }
                            .into(),
                            connected: (ps.kind == PathKind::Network)
                                .then(|| core.connected(id, p as PathId)),
                        })
                        .collect()
                },
            }
        })
        .collect();
    let groups = spec
        .groups
        .iter()
        .enumerate()
        .map(|(g, gs)| {
            let gid = g as GroupId;
            let local = core.local_group(gid);
            let gstate = &state.groups[g];
            let states: Vec<String> = local
                .map(|l| l.resource_states().map(|s| snake(&s)).collect())
                .unwrap_or_default();
            GroupView {
                name: gs.name.clone(),
                mode: if gs.is_exclusive() {
                    "exclusive"
                } else {
                    "clone"
                }
                .into(),
                nodes: gs.nodes.iter().map(|n| node_name(*n)).collect(),
                disabled: gstate.disabled,
                instances: gstate
                    .instances
                    .iter()
                    .map(|i| InstanceView {
                        node: node_name(i.node),
                        epoch: i.epoch,
                        phase: match i.phase {
                            Phase::Active => "active",
                            Phase::Stopping => "stopping",
                        }
                        .into(),
                        status: (i.node == me)
                            .then(|| local.filter(|l| l.epoch == i.epoch))
                            .flatten()
                            .map(|l| snake(&l.status())),
                    })
                    .collect(),
                failures: gstate
                    .failures
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(n, c)| (node_name(n as NodeId), *c))
                    .collect(),
                resources: gs
                    .resources
                    .iter()
                    .enumerate()
                    .map(|(r, rs)| ResourceView {
                        name: rs.name.clone(),
                        kind: agent_name(rs),
                        state: states.get(r).cloned(),
                        failures: core.resource_failures(gid, r as u16),
                        unmanaged: gstate.unmanaged.contains(&(r as u16)),
                        last_failure: core.last_failure(gid, r as u16).map(|f| FailureView {
                            action: snake(&f.action),
                            reason: f.reason.clone(),
                            seconds_ago: shell.now_us.saturating_sub(f.at_us) / 1_000_000,
                        }),
                    })
                    .collect(),
            }
        })
        .collect();
    Status {
        node: node_name(me),
        cluster: spec.name.clone(),
        witness: shell.witness,
        coordinator: core.coordinator().map(node_name),
        term: core.term(),
        holds_lease: core.holds_lease(),
        maintenance: state.maintenance,
        digest: format!("{:#018x}", spec.digest),
        config_differs: core.config_differs(),
        state_disk_failed: core.state_disk_failed().map(str::to_string),
        draining: shell.draining,
        nodes,
        groups,
        fence_device: (spec.partition == PartitionPolicy::Fence).then(|| {
            let (state, reason) = match core.fence_device() {
                DeviceHealth::Unknown => ("unknown", ""),
                DeviceHealth::Answers { .. } => ("answers", ""),
                DeviceHealth::Fails { reason, .. } => ("fails", reason.as_str()),
            };
            FenceDeviceView {
                state: state.into(),
                reason: reason.into(),
            }
        }),
    }
}

/// A resource's agent as an operator names it: `ocf:<provider>:<type>` for an OCF agent (as
/// Pacemaker shows it), the agent type otherwise.
fn agent_name(rs: &crate::policy::spec::ResourceSpec) -> String {
    if rs.agent != "ocf" {
        return rs.agent.clone();
    }
    let param = |k: &str| {
        rs.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    format!(
        "ocf:{}:{}",
        param("provider").unwrap_or(crate::resources::ocf::DEFAULT_PROVIDER),
        param("type").unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ocf_resource_is_shown_with_its_provider_and_type() {
        let spec = crate::policy::testutil::simple_spec(2, 1);
        let mut rs = spec.groups[0].resources[0].clone();
        rs.agent = "ocf".into();
        rs.params = vec![("type".into(), "IPaddr2".into())];
        assert_eq!(agent_name(&rs), "ocf:heartbeat:IPaddr2");
        rs.params.push(("provider".into(), "acme".into()));
        assert_eq!(agent_name(&rs), "ocf:acme:IPaddr2");
        rs.agent = "ip".into();
        assert_eq!(agent_name(&rs), "ip");
    }
}
