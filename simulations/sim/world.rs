//! The world truth: which node really has each resource active, updated by the simulated
//! agents as they act, never by what the nodes believe.

use super::*;

/// Per (group, resource): which nodes have it active, with the epoch they started it under.
#[derive(Default, Clone)]
pub(super) struct Truth {
    pub(super) active: Vec<(NodeId, u64)>,
}

pub(super) struct World {
    pub(super) truth: Vec<Vec<Truth>>,
    pub(super) max_epoch: Vec<u64>,
    /// Injected health failures: (node, group, resource) whose monitor fails.
    pub(super) bad: Vec<(NodeId, GroupId, ResourceId)>,
    /// Agents whose stop hangs on this node (until reboot).
    pub(super) hang_stops: Vec<NodeId>,
}
