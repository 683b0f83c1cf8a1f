//! Placement: a pure function from committed state and the liveness view to a target
//! placement (design.md §8).
//!
//! For an exclusive group the target is one node (or none), for a clone group a set of nodes.
//! The rules, in the order they apply:
//!
//! 1. A node can host a group when it is in the group's node list, alive, not in standby, not a
//!    witness, and the group has no failure counted there.
//! 2. A group that runs on a node that can still host it *stays* (stickiness), unless an
//!    administrator or schedule asked for a move, a failback is due (automatic failback, inside
//!    its window if one is set, or `failback now`), or it conflicts with an anti-affinity
//!    partner kept earlier on the same node. Staying groups reserve their load first.
//! 3. Every other group goes to the first node in its priority order (an admin or scheduled
//!    target first) that can host it, has room for its load and holds no anti-affinity
//!    partner. A group that wanted to move but finds no such node stays where it is.
//! 4. Clone groups keep their running copies on nodes that can host them and add copies in
//!    priority order up to `copies`.
//!
//! Groups are considered in config order, so earlier groups win capacity: config order is
//! priority order for M-to-N placement.

use super::schedule::CivilTime;
use super::spec::{ClusterSpec, Failback, GroupId, GroupKind, NodeId, PartitionPolicy};
use super::state::{Cause, ClusterState, Phase};

/// The target of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Exclusive group: where it should run and why it would be started there (a group that
    /// stays where it runs carries `Cause::Initial`); `None` when no node can host it.
    Exclusive(Option<(NodeId, Cause)>),
    /// Clone group: the nodes that should run a copy.
    Clone(Vec<NodeId>),
}

/// Compute the target of every group. `alive[n]` is the coordinator's liveness view; `local`
/// is the coordinator's civil time (failback windows), `None` if unknown.
pub fn place(
    spec: &ClusterSpec,
    state: &ClusterState,
    alive: &[bool],
    local: Option<&CivilTime>,
) -> Vec<Target> {
    let n = spec.nodes.len();
    let node_ok: Vec<bool> = (0..n)
        .map(|i| {
            alive.get(i).copied().unwrap_or(false) && !state.standby[i] && !spec.nodes[i].witness
        })
        .collect();
    let can_host = |g: usize, node: NodeId| -> bool {
        let i = usize::from(node);
        i < n
            && node_ok[i]
            && spec.groups[g].nodes.contains(&node)
            && state.groups[g].failures[i] == 0
    };
    let mut room: Vec<u64> = spec.nodes.iter().map(|s| u64::from(s.capacity)).collect();
    let mut on_node: Vec<Vec<GroupId>> = vec![Vec::new(); n];
    let mut targets: Vec<Option<Target>> = vec![None; spec.groups.len()];
    let conflicts = |on_node: &Vec<Vec<GroupId>>, g: usize, node: NodeId| -> bool {
        on_node[usize::from(node)]
            .iter()
            .any(|other| spec.groups[g].anti_affinity.contains(other))
    };

    // Pass 1: groups that stay where they are.
    let mut wants: Vec<Option<(Option<NodeId>, Cause)>> = vec![None; spec.groups.len()];
    for (g, gs) in spec.groups.iter().enumerate() {
        if !gs.is_exclusive() {
            continue;
        }
        let st = &state.groups[g];
        let current = st
            .instances
            .iter()
            .find(|i| i.phase == Phase::Active)
            .map(|i| i.node);
        let Some(c) = current else {
            let cause = if st.last_epoch == 0 {
                Cause::Initial
            } else {
                st.last_cause.unwrap_or(Cause::Failure)
            };
            // An admin or scheduled target still counts while the group is down, or the group
            // would start elsewhere only to be moved again.
            let home = st.home.filter(|&h| can_host(g, h));
            wants[g] = Some((
                home,
                st.request_cause.filter(|_| home.is_some()).unwrap_or(cause),
            ));
            continue;
        };
        if !can_host(g, c) {
            let i = usize::from(c);
            // Without quorum or fencing we never take a group from a node we cannot see.
            if spec.partition == PartitionPolicy::NoAutoFailover
                && !alive.get(i).copied().unwrap_or(false)
            {
                room[i] = room[i].saturating_sub(u64::from(gs.load));
                on_node[i].push(g as GroupId);
                targets[g] = Some(Target::Exclusive(Some((c, Cause::Initial))));
                continue;
            }
            let cause = if state.standby[i] {
                Cause::Standby
            } else {
                Cause::Failure
            };
            wants[g] = Some((None, cause));
            continue;
        }
        let most_preferred = gs.nodes.iter().copied().find(|&m| can_host(g, m));
        let move_for = if let Some(h) = st.home.filter(|&h| h != c && can_host(g, h)) {
            Some((Some(h), st.request_cause.unwrap_or(Cause::Admin)))
        } else if st.avoid == Some(c) && gs.nodes.iter().any(|&m| m != c && can_host(g, m)) {
            Some((None, st.request_cause.unwrap_or(Cause::Admin)))
        } else if st.home.is_none()
            && most_preferred.is_some_and(|p| p != c && rank(gs, p) < rank(gs, c))
            && (st.failback_now || failback_due(&gs.failback, local))
        {
            Some((most_preferred, Cause::Failback))
        } else if conflicts(&on_node, g, c)
            || (!gs.stickiness && room[usize::from(c)] < u64::from(gs.load))
        {
            Some((None, Cause::Capacity))
        } else {
            None
        };
        match move_for {
            Some(w) => wants[g] = Some(w),
            None => {
                let i = usize::from(c);
                room[i] = room[i].saturating_sub(u64::from(gs.load));
                on_node[i].push(g as GroupId);
                targets[g] = Some(Target::Exclusive(Some((c, Cause::Initial))));
            }
        }
    }

    // Pass 2: groups that need a node.
    for (g, gs) in spec.groups.iter().enumerate() {
        let Some((preferred, cause)) = wants[g] else {
            continue;
        };
        let st = &state.groups[g];
        let current = st
            .instances
            .iter()
            .find(|i| i.phase == Phase::Active)
            .map(|i| i.node);
        let fits = |on_node: &Vec<Vec<GroupId>>, room: &Vec<u64>, m: NodeId| {
            can_host(g, m)
                && room[usize::from(m)] >= u64::from(gs.load)
                && !conflicts(on_node, g, m)
                && Some(m) != st.avoid.filter(|_| cause != Cause::Failure)
        };
        // A move toward a named node (admin, schedule, failback) from a node that can still
        // host the group goes there or nowhere: never to some third node.
        let voluntary = preferred.is_some() && current.is_some_and(|c| can_host(g, c));
        let pick = preferred
            .filter(|&m| fits(&on_node, &room, m))
            .or_else(|| {
                gs.nodes
                    .iter()
                    .copied()
                    .find(|&m| Some(m) != current && fits(&on_node, &room, m))
            })
            .filter(|&m| !voluntary || Some(m) == preferred);
        let chosen = match (pick, current) {
            (Some(m), _) => Some((m, cause)),
            // Wanted to move, nowhere better to go: stay.
            (None, Some(c)) if can_host(g, c) => Some((c, Cause::Initial)),
            _ => None,
        };
        if let Some((m, _)) = chosen {
            let i = usize::from(m);
            room[i] = room[i].saturating_sub(u64::from(gs.load));
            on_node[i].push(g as GroupId);
        }
        targets[g] = Some(Target::Exclusive(chosen));
    }

    // Clone groups.
    for (g, gs) in spec.groups.iter().enumerate() {
        let GroupKind::Clone { copies } = gs.kind else {
            continue;
        };
        let want = copies.map_or(gs.nodes.len(), usize::from);
        let st = &state.groups[g];
        let mut chosen: Vec<NodeId> = st
            .instances
            .iter()
            .filter(|i| i.phase == Phase::Active && can_host(g, i.node))
            .map(|i| i.node)
            .collect();
        chosen.truncate(want);
        for &m in &gs.nodes {
            if chosen.len() >= want {
                break;
            }
            if can_host(g, m) && !chosen.contains(&m) {
                chosen.push(m);
            }
        }
        targets[g] = Some(Target::Clone(chosen));
    }

    targets
        .into_iter()
        .enumerate()
        .map(|(g, t)| match t {
            // A disabled group runs nowhere; what it held is counted above as if it ran, so
            // no other group is placed into room it frees only once it stopped.
            _ if state.groups[g].disabled && spec.groups[g].is_exclusive() => {
                Target::Exclusive(None)
            }
            _ if state.groups[g].disabled => Target::Clone(Vec::new()),
            t => t.unwrap_or(Target::Exclusive(None)),
        })
        .collect()
}

fn rank(gs: &super::spec::GroupSpec, node: NodeId) -> usize {
    gs.nodes
        .iter()
        .position(|&m| m == node)
        .unwrap_or(usize::MAX)
}

fn failback_due(policy: &Failback, local: Option<&CivilTime>) -> bool {
    match policy {
        Failback::Manual => false,
        Failback::Auto { window: None } => true,
        Failback::Auto { window: Some(w) } => local.is_some_and(|t| w.contains(t)),
    }
}

#[cfg(test)]
mod tests;
