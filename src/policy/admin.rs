//! Admin requests: an operator's words (group and node *names*) turned into an
//! [`AdminCommand`], or refused with a reason a person can act on.
//!
//! Every front end (the control socket today, REST and the console later) hands the same
//! [`AdminRequest`] to [`resolve`], so a name is looked up, a witness is refused as a target
//! and the cluster's own rules ([`ClusterState::check_admin`]) are applied in one place, against
//! the node core's one liveness view ([`super::node::NodeCore::alive_view`]). What passes here is
//! checked again by the coordinator when it proposes the command, against its own view.
//!
//! Data-driven cases: `src/policy/testdata/admin.txt`.

use super::spec::{ClusterSpec, GroupId, NodeId};
use super::state::{AdminCommand, ClusterState};

/// An admin request as an operator says it: by names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRequest<'a> {
    /// Move `group` to `node`, or to its next eligible node.
    Move {
        /// The group's name.
        group: &'a str,
        /// The target node's name, if any.
        node: Option<&'a str>,
    },
    /// Drain `node` (`on`) or let it host groups again.
    Standby {
        /// The node's name.
        node: &'a str,
        /// On or off.
        on: bool,
    },
    /// Stop managing (`on`), or resume.
    Maintenance {
        /// On or off.
        on: bool,
    },
    /// Return `group` to its most preferred eligible node now.
    Failback {
        /// The group's name.
        group: &'a str,
    },
    /// Stop `group` everywhere and start it nowhere (`on`), or let it run again.
    Disable {
        /// The group's name.
        group: &'a str,
        /// Disabled (true) or enabled.
        on: bool,
    },
    /// Take `resource` out of the cluster's hands (`on` false) or give it back.
    Manage {
        /// The resource's name.
        resource: &'a str,
        /// Managed (true) or not.
        on: bool,
    },
    /// Forget the failures of a group, named directly or through one of its resources.
    Clear {
        /// A group or resource name.
        target: &'a str,
    },
}

/// A request that may be submitted: the command, and how to name it in answers and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The command to submit.
    pub cmd: AdminCommand,
    /// What it is, in words: "move of web to n2".
    pub what: String,
}

/// Resolves `req` against the config, the applied state and the liveness view `alive` (per
/// node: can it host groups now, as [`super::node::NodeCore::alive_view`] says). Refuses
/// what the cluster cannot do, naming the group, node or rule.
pub fn resolve(
    spec: &ClusterSpec,
    state: &ClusterState,
    alive: &[bool],
    req: AdminRequest<'_>,
) -> Result<Resolved, String> {
    let r = match req {
        AdminRequest::Move { group, node } => {
            let gid = group_id(spec, group)?;
            let to = node
                .map(|name| move_target(spec, gid, alive, name))
                .transpose()?;
            let what = match to {
                Some(n) => format!("move of {group} to {}", spec.nodes[usize::from(n)].name),
                None => format!("move of {group} to its next node"),
            };
            Resolved {
                cmd: AdminCommand::Move { group: gid, to },
                what,
            }
        }
        AdminRequest::Standby { node, on } => Resolved {
            cmd: AdminCommand::Standby {
                node: host_id(spec, node)?,
                on,
            },
            what: format!("{} of {node}", if on { "standby" } else { "unstandby" }),
        },
        AdminRequest::Maintenance { on } => Resolved {
            cmd: AdminCommand::Maintenance { on },
            what: format!("maintenance {}", if on { "on" } else { "off" }),
        },
        AdminRequest::Failback { group } => Resolved {
            cmd: AdminCommand::FailbackNow {
                group: group_id(spec, group)?,
            },
            what: format!("failback of {group}"),
        },
        AdminRequest::Disable { group, on } => Resolved {
            cmd: AdminCommand::Disable {
                group: group_id(spec, group)?,
                on,
            },
            what: format!("{} of {group}", if on { "disable" } else { "enable" }),
        },
        AdminRequest::Manage { resource, on } => {
            let (n, _, _) = spec
                .resource_named(resource)
                .ok_or_else(|| format!("no resource {resource}"))?;
            Resolved {
                cmd: AdminCommand::Manage { resource: n, on },
                what: format!("{} of {resource}", if on { "manage" } else { "unmanage" }),
            }
        }
        AdminRequest::Clear { target } => {
            let gid = match group_id(spec, target) {
                Ok(g) => g,
                Err(e) => spec
                    .groups
                    .iter()
                    .position(|g| g.resources.iter().any(|r| r.name == target))
                    .map(|g| g as GroupId)
                    .ok_or_else(|| format!("{e}, and no resource of that name"))?,
            };
            Resolved {
                cmd: AdminCommand::ClearFailures {
                    group: gid,
                    node: None,
                },
                what: format!(
                    "clear of the failures of {}",
                    spec.groups[usize::from(gid)].name
                ),
            }
        }
    };
    state
        .check_admin(spec, alive, &r.cmd)
        .map_err(|e| e.to_string())?;
    Ok(r)
}

fn group_id(spec: &ClusterSpec, name: &str) -> Result<GroupId, String> {
    spec.group_id(name).ok_or_else(|| {
        format!(
            "no group \"{name}\" in the config (groups: {})",
            list(spec.groups.iter().map(|g| g.name.as_str()))
        )
    })
}

/// A node that may host groups: in the config and not the witness.
fn host_id(spec: &ClusterSpec, name: &str) -> Result<NodeId, String> {
    let n = spec.node_id(name).ok_or_else(|| {
        format!(
            "no node \"{name}\" in the config (nodes: {})",
            list(spec.nodes.iter().map(|n| n.name.as_str()))
        )
    })?;
    if spec.nodes[usize::from(n)].witness {
        return Err(format!(
            "node \"{name}\" is the witness: it votes and holds no resources"
        ));
    }
    Ok(n)
}

fn move_target(
    spec: &ClusterSpec,
    gid: GroupId,
    alive: &[bool],
    name: &str,
) -> Result<NodeId, String> {
    let n = host_id(spec, name)?;
    let gs = &spec.groups[usize::from(gid)];
    if !gs.nodes.contains(&n) {
        return Err(format!(
            "node \"{name}\" is not in group \"{}\"'s node list ({})",
            gs.name,
            list(
                gs.nodes
                    .iter()
                    .map(|n| spec.nodes[usize::from(*n)].name.as_str())
            )
        ));
    }
    if !alive.get(usize::from(n)).copied().unwrap_or(false) {
        return Err(format!("node \"{name}\" is down"));
    }
    Ok(n)
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
