//! Every resource's agent is built as each of its group's nodes would build it
//! ([`crate::resources::build`]: the parameters' syntax, nothing of this machine), so a
//! typo, a missing parameter or a malformed value is refused at its field by
//! `eternectl config check` and by the daemon's load, not found at the first start.
//!
//! Every type the schema names has an agent ([`AGENT_TYPES`]); a type the schema gains before
//! its agent must be refused here, with the alternative named: a resource that validates and
//! can never run is worse than one refused.

use super::super::locate::Loc;
use super::super::resolve::resource_spec;
use super::super::schema::*;
use super::Report;
use crate::resources::{self, AgentContext, AgentError, AGENT_TYPES};

pub(super) fn check_agents(c: &ClusterConfig, r: &mut Report) {
    for (gi, g) in c.groups.iter().enumerate() {
        for (ri, res) in g.resources.iter().enumerate() {
            let loc = Loc::root().key("group").at(gi).key("resource").at(ri);
            if !AGENT_TYPES.contains(&res.kind.as_str()) {
                continue; // An unknown type is refused with the other resource rules.
            }
            let spec = resource_spec(res, &c.monitor, Vec::new());
            // Each node of the group builds it with its own defaults (a disk_lock's slot):
            // the first node that cannot is the one reported.
            let nodes = g
                .nodes
                .iter()
                .filter_map(|n| c.nodes.iter().position(|m| &m.name == n));
            for node in nodes {
                let (events, _) = tokio::sync::mpsc::channel(1);
                let ctx = AgentContext {
                    group: gi as u16,
                    resource: ri as u16,
                    name: res.name.clone(),
                    run_dir: std::path::PathBuf::from("/nonexistent"),
                    events,
                };
                let spec = resources::on_node(&spec, node as u16);
                let Err(e) = resources::build(&spec, &ctx) else {
                    continue;
                };
                match e {
                    AgentError::Param { param, problem, .. } => {
                        // The path names the parameter when the file has it; a missing
                        // one is named in the message. A slot only the node adds is named
                        // with the node.
                        let (at, mut message) = if res.params.contains_key(&param) {
                            (loc.key("params").key(&param), problem)
                        } else {
                            (loc.key("params"), format!("{param}: {problem}"))
                        };
                        if param == "node_slot" && !res.params.contains_key(&param) {
                            message.push_str(&format!(
                                " (node {} gets slot {node})",
                                c.nodes[node].name
                            ));
                        }
                        r.push(at, message, agent_fix(&res.kind));
                    }
                    other => r.push(loc.key("type"), other.to_string(), ""),
                }
                break;
            }
        }
    }
}

/// Where a user reads an agent's parameters.
fn agent_fix(kind: &str) -> String {
    format!("see the \"{kind}\" row of the resource types in docs/resources.md")
}
