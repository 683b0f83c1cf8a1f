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
use super::state::{AdminCommand, AdminError, Cause, ClusterState};

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

/// How an admin command changes the replicated state, and whether it may: kept with the
/// rest of what admin commands mean, beside the state they change (`policy/state.rs`).
impl ClusterState {
    pub(super) fn apply_admin(&mut self, spec: &ClusterSpec, a: &AdminCommand) -> bool {
        match *a {
            AdminCommand::Move { group, to } => {
                let Some(g) = self.groups.get_mut(usize::from(group)) else {
                    return false;
                };
                match to {
                    Some(n) => {
                        g.home = Some(n);
                        g.avoid = None;
                    }
                    None => {
                        g.avoid = g.instances.first().map(|i| i.node);
                        g.home = None;
                    }
                }
                g.request_cause = Some(Cause::Admin);
                g.failback_now = false;
                g.version += 1;
                true
            }
            AdminCommand::Standby { node, on } => {
                let Some(s) = self.standby.get_mut(usize::from(node)) else {
                    return false;
                };
                let changed = *s != on;
                *s = on;
                if changed {
                    for g in &mut self.groups {
                        g.version += 1;
                    }
                }
                changed
            }
            AdminCommand::Maintenance { on } => {
                let changed = self.maintenance != on;
                self.maintenance = on;
                if changed {
                    for g in &mut self.groups {
                        g.version += 1;
                    }
                }
                changed
            }
            AdminCommand::FailbackNow { group } => {
                let Some(g) = self.groups.get_mut(usize::from(group)) else {
                    return false;
                };
                g.home = None;
                g.avoid = None;
                g.failback_now = true;
                g.request_cause = Some(Cause::Failback);
                g.version += 1;
                true
            }
            AdminCommand::Disable { group, on } => {
                let Some(g) = self.groups.get_mut(usize::from(group)) else {
                    return false;
                };
                let changed = g.disabled != on;
                g.disabled = on;
                if changed {
                    g.request_cause = Some(Cause::Admin);
                    g.version += 1;
                }
                changed
            }
            AdminCommand::Manage { resource, on } => {
                let Some((group, r)) = spec.resource_at(resource) else {
                    return false;
                };
                let g = &mut self.groups[usize::from(group)];
                let was = g.unmanaged.contains(&r);
                if on {
                    g.unmanaged.retain(|&x| x != r);
                } else if !was {
                    g.unmanaged.push(r);
                    g.unmanaged.sort_unstable();
                }
                let changed = was == on;
                if changed {
                    g.version += 1;
                }
                changed
            }
            AdminCommand::ClearFailures { group, node } => {
                let Some(g) = self.groups.get_mut(usize::from(group)) else {
                    return false;
                };
                match node {
                    Some(n) => {
                        if let Some(f) = g.failures.get_mut(usize::from(n)) {
                            *f = 0;
                        }
                    }
                    None => g.failures.iter_mut().for_each(|f| *f = 0),
                }
                g.version += 1;
                let _ = spec;
                true
            }
        }
    }

    /// Check an admin command against the current state and liveness (`alive[n]`), so that
    /// what the cluster cannot do is refused with a reason instead of silently ignored.
    pub fn check_admin(
        &self,
        spec: &ClusterSpec,
        alive: &[bool],
        cmd: &AdminCommand,
    ) -> Result<(), AdminError> {
        let group_spec = |g: GroupId| {
            spec.groups
                .get(usize::from(g))
                .ok_or(AdminError::Unknown("group"))
        };
        let node_spec = |n: NodeId| {
            spec.nodes
                .get(usize::from(n))
                .ok_or(AdminError::Unknown("node"))
        };
        match *cmd {
            AdminCommand::Move { group, to } => {
                let gs = group_spec(group)?;
                if !gs.is_exclusive() {
                    return Err(AdminError::Refused(format!(
                        "group {} is a clone group: it runs on every chosen node and does not move",
                        gs.name
                    )));
                }
                if let Some(n) = to {
                    let ns = node_spec(n)?;
                    let why = if !gs.nodes.contains(&n) {
                        Some("it is not in the group's node list".to_string())
                    } else if !alive.get(usize::from(n)).copied().unwrap_or(false) {
                        Some("it is down".to_string())
                    } else if self.standby[usize::from(n)] {
                        Some("it is in standby".to_string())
                    } else if self.groups[usize::from(group)].failures[usize::from(n)] > 0 {
                        Some("the group failed there; clear its failures first".to_string())
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        return Err(AdminError::NotEligible {
                            group: gs.name.clone(),
                            node: ns.name.clone(),
                            why,
                        });
                    }
                    if self.groups[usize::from(group)]
                        .instances
                        .iter()
                        .any(|i| i.node == n)
                    {
                        return Err(AdminError::Refused(format!(
                            "group {} already runs on {}",
                            gs.name, ns.name
                        )));
                    }
                }
                Ok(())
            }
            AdminCommand::Standby { node, .. } => node_spec(node).map(|_| ()),
            AdminCommand::Maintenance { .. } => Ok(()),
            AdminCommand::FailbackNow { group } | AdminCommand::ClearFailures { group, .. } => {
                group_spec(group).map(|_| ())
            }
            AdminCommand::Manage { resource, on } => {
                let (g, r) = spec
                    .resource_at(resource)
                    .ok_or(AdminError::Unknown("resource"))?;
                let name = &spec.groups[usize::from(g)].resources[usize::from(r)].name;
                if self.groups[usize::from(g)].unmanaged.contains(&r) != on {
                    return Err(AdminError::Refused(format!(
                        "resource {name} is already {}",
                        if on { "managed" } else { "unmanaged" }
                    )));
                }
                Ok(())
            }
            AdminCommand::Disable { group, on } => {
                let gs = group_spec(group)?;
                if self.groups[usize::from(group)].disabled == on {
                    return Err(AdminError::Refused(format!(
                        "group {} is already {}",
                        gs.name,
                        if on { "disabled" } else { "enabled" }
                    )));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
