//! The rules of `[fencing]`: with `method = "agent"` a non-empty agent (a name or an
//! absolute path), `timeout_ms` in 1..=600000, `params` and `node_params` without the keys
//! the cluster writes on the agent's stdin itself and on one line each, `targets` and
//! `node_params` keyed by known nodes. With `method = "poison_pill"`: a `path` naming a disk
//! path, `pill_timeout_ms` above the lease and its takeover margin, and none of `agent`,
//! `params`, `node_params`, `targets`. Both: `monitor_interval_ms` 0 (off) or
//! 1000..=86400000, `delay_ms` keyed by known nodes, and in a two-node cluster without
//! witness different `delay_ms` on the two nodes.

use std::collections::BTreeMap;

use super::super::locate::Loc;
use super::super::schema::*;
use super::{list, Report};

/// The longest a poison pill's wait may be: ten minutes (its range in [`crate::config::limits::RANGES`]).
const FENCE_MS_MAX: u32 = 600_000;

/// The keys this product writes on a fence agent's stdin itself.
const FENCE_RESERVED_KEYS: &[&str] = &["action", "plug", "port", "nodename"];

pub(super) fn check_fencing(c: &ClusterConfig, f: &FencingConfig, r: &mut Report) {
    let loc = Loc::root().key("fencing");
    match f.method {
        FenceMethod::Agent => check_agent(c, f, &loc, r),
        FenceMethod::PoisonPill => check_pill(c, f, &loc, r),
    }
    r.within(
        loc.key("monitor_interval_ms"),
        u64::from(f.monitor_interval_ms),
    );
    if c.nodes.len() == 2 && c.witness.is_none() {
        let delay = |n: &NodeConfig| f.delay_ms.get(&n.name).copied().unwrap_or(0);
        let (a, b) = (&c.nodes[0], &c.nodes[1]);
        if delay(a) == delay(b) {
            r.push(
                loc.key("delay_ms"),
                format!(
                    "a two-node cluster without witness gives {} and {} the same fencing delay \
                     ({} ms): in a partition both fence at once and both may go down",
                    a.name,
                    b.name,
                    delay(a)
                ),
                format!(
                    "delay the fencing of the node that should survive a partition, e.g. \
                     delay_ms = {{ {} = 5000 }}",
                    a.name
                ),
            );
        }
    }
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    for (node, &ms) in &f.delay_ms {
        let dloc = loc.key("delay_ms").key(node);
        if !names.contains(&node.as_str()) {
            r.push(
                dloc,
                format!("delay_ms names unknown node {node:?}"),
                format!("use one of: {}", list(names.iter().copied())),
            );
        } else {
            r.within(dloc, u64::from(ms));
        }
    }
}

/// `method = "agent"`: the agent, its timeout and what it is passed.
fn check_agent(c: &ClusterConfig, f: &FencingConfig, loc: &Loc, r: &mut Report) {
    if f.agent.trim().is_empty() {
        r.push(
            loc.key("agent"),
            "the fencing agent is empty",
            "name a fence agent, e.g. agent = \"fence_ipmilan\" (or set method = \"poison_pill\" \
             to fence through the disk path)",
        );
    } else if f.agent.trim() != f.agent || f.agent.contains('\0') {
        r.push(
            loc.key("agent"),
            format!(
                "the fencing agent {:?} has surrounding spaces or a NUL",
                f.agent
            ),
            "give the agent's name or absolute path exactly",
        );
    } else if f.agent.contains('/') && !f.agent.starts_with('/') {
        r.push(
            loc.key("agent"),
            format!("the fencing agent {:?} is a relative path", f.agent),
            "give a name looked up on PATH (e.g. fence_ipmilan) or an absolute path",
        );
    }
    if let Some(p) = &f.path {
        r.push(
            loc.key("path"),
            format!("path = {p:?} is for method = \"poison_pill\""),
            "remove it, or set method = \"poison_pill\"",
        );
    }
    r.within(loc.key("timeout_ms"), u64::from(f.timeout_ms));
    check_fence_params(loc.key("params"), "params", &f.params, r);
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    for (node, params) in &f.node_params {
        let nloc = loc.key("node_params").key(node);
        if !names.contains(&node.as_str()) {
            r.push(
                nloc,
                format!("node_params names unknown node {node:?}"),
                format!("use one of: {}", list(names.iter().copied())),
            );
        } else {
            check_fence_params(nloc, &format!("node_params.{node}"), params, r);
        }
    }
    for (node, plug) in &f.targets {
        let tloc = loc.key("targets").key(node);
        if !names.contains(&node.as_str()) {
            r.push(
                tloc,
                format!("targets names unknown node {node:?}"),
                format!("use one of: {}", list(names.iter().copied())),
            );
        } else if plug.trim().is_empty() || plug.contains(['\n', '\r', '\0']) {
            r.push(
                tloc,
                format!("targets.{node} is empty or has a line break"),
                "give the name the fence device knows this node by, on one line",
            );
        }
    }
}

/// `method = "poison_pill"`: a disk path to carry the pills, a bound past the lease, and
/// nothing of an agent.
fn check_pill(c: &ClusterConfig, f: &FencingConfig, loc: &Loc, r: &mut Report) {
    let disks: Vec<&str> = c
        .paths
        .iter()
        .filter(|p| p.kind == PathKindConfig::Disk)
        .map(|p| p.name.as_str())
        .collect();
    match &f.path {
        None => r.push(
            loc.key("path"),
            "method = \"poison_pill\" without a path: the pills need a shared disk",
            if disks.is_empty() {
                "add a [[path]] with kind = \"disk\" (a shared device every node reaches) and \
                 name it here"
                    .to_string()
            } else {
                format!("name the disk path, e.g. path = {:?}", disks[0])
            },
        ),
        Some(p) if !disks.contains(&p.as_str()) => r.push(
            loc.key("path"),
            format!("path = {p:?} is not a [[path]] with kind = \"disk\""),
            if disks.is_empty() {
                "add a [[path]] with kind = \"disk\" and name it here".to_string()
            } else {
                format!("use one of: {}", list(disks.iter().copied()))
            },
        ),
        Some(_) => {}
    }
    let unused: [(&str, bool); 4] = [
        ("agent", !f.agent.is_empty()),
        ("params", !f.params.is_empty()),
        ("node_params", !f.node_params.is_empty()),
        ("targets", !f.targets.is_empty()),
    ];
    for (key, set) in unused {
        if set {
            r.push(
                loc.key(key),
                format!("{key} is for method = \"agent\"; a poison pill runs no agent"),
                format!("remove {key}, or set method = \"agent\""),
            );
        }
    }
    let lease = u64::from(c.timing.lease_ms) + u64::from(c.timing.takeover_margin_ms);
    let bound = f.pill_timeout_ms;
    if u64::from(bound) <= lease || bound > FENCE_MS_MAX {
        r.push(
            loc.key("pill_timeout_ms"),
            format!(
                "pill_timeout_ms = {bound} is not above the lease and its margin ({lease} ms) \
                 or is above {FENCE_MS_MAX}: a pill counted done by its bound is safe only once \
                 a node that never read it has lost its lease"
            ),
            format!("give more than {lease}, e.g. 10000"),
        );
    }
}

/// `params` or one node's `node_params`: keys the cluster does not write itself, each
/// passable as one `key=value` line.
fn check_fence_params(loc: Loc, what: &str, params: &BTreeMap<String, String>, r: &mut Report) {
    for (k, v) in params {
        let ploc = loc.key(k);
        if FENCE_RESERVED_KEYS.contains(&k.as_str()) {
            r.push(
                ploc,
                format!("{what}.{k} is set by the cluster itself"),
                "remove it: the action comes from [fencing] action, the target from \
                 [fencing] targets (or the node name)",
            );
        } else if !is_stdin_key(k) {
            r.push(
                ploc,
                format!("{what} key {k:?} cannot be passed as a key=value line"),
                "use letters, digits, '_' and '-' only",
            );
        } else if v.contains(['\n', '\r', '\0']) {
            r.push(
                ploc,
                format!("{what}.{k} has a line break or NUL"),
                "fence agents read one key=value per line: put the value on one line",
            );
        }
    }
}

/// A key a fence agent can read from a `key=value` line.
fn is_stdin_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}
