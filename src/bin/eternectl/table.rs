//! The compact readable table of `eternectl status`: nodes, groups and their resources in
//! columns as wide as their widest cell.

use eterne::control::Status;

/// The compact readable table of `eternectl status`.
pub(crate) fn table(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "cluster {}  node {}{}  coordinator {}  term {}  lease {}{}{}  digest {}",
        s.cluster,
        s.node,
        if s.witness { " (witness)" } else { "" },
        s.coordinator.as_deref().unwrap_or("-"),
        s.term,
        if s.holds_lease { "held" } else { "none" },
        if s.maintenance { "  MAINTENANCE" } else { "" },
        if s.draining { "  DRAINING" } else { "" },
        s.digest
    );
    if let Some(d) = &s.fence_device {
        let why = if d.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", d.reason)
        };
        let _ = writeln!(o, "fence device {}{why}", d.state);
    }
    if let Some(why) = &s.config_differs {
        let _ = writeln!(
            o,
            "CONFIG DIFFERS: {why}; this node runs nothing until its cluster.toml matches"
        );
    }
    if let Some(why) = &s.state_disk_failed {
        let _ = writeln!(
            o,
            "STATE DISK FAILED: {why}; this node gave up its lease and is silent until its raft log can be written again"
        );
    }
    let mut nodes = vec![cells(&["NODE", "STATE", "PATHS"])];
    for n in &s.nodes {
        let state = if !n.alive {
            "suspected"
        } else if n.standby {
            "standby"
        } else if n.witness {
            "witness"
        } else {
            "alive"
        };
        let mut paths = if n.me {
            "(this node)".to_string()
        } else {
            n.paths
                .iter()
                .map(|p| format!("{}:{}", p.name, p.state))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if n.config_mismatch {
            paths.push_str("  CONFIG DIFFERS");
        }
        nodes.push(vec![n.name.clone(), state.into(), paths]);
    }
    o.push('\n');
    o.push_str(&columns(&nodes, ""));
    let mut groups = vec![cells(&[
        "GROUP", "NODE", "EPOCH", "PHASE", "STATUS", "FAILURES",
    ])];
    let mut resources = Vec::new();
    for g in &s.groups {
        let failures = g
            .failures
            .iter()
            .map(|(n, c)| format!("{n}={c}"))
            .collect::<Vec<_>>()
            .join(",");
        if g.instances.is_empty() {
            groups.push(vec![
                g.name.clone(),
                "-".into(),
                "-".into(),
                if g.disabled { "disabled" } else { "stopped" }.into(),
                "-".into(),
                failures.clone(),
            ]);
        }
        for i in &g.instances {
            groups.push(vec![
                g.name.clone(),
                i.node.clone(),
                i.epoch.to_string(),
                if g.disabled && i.phase == "stopping" {
                    "stopping (disabled)".into()
                } else {
                    i.phase.clone()
                },
                i.status.clone().unwrap_or_else(|| "-".into()),
                failures.clone(),
            ]);
        }
        for r in &g.resources {
            resources.push(vec![
                g.name.clone(),
                r.name.clone(),
                r.kind.clone(),
                match (r.state.clone(), r.unmanaged) {
                    (Some(s), true) => format!("{s} (unmanaged)"),
                    (None, true) => "unmanaged".into(),
                    (s, false) => s.unwrap_or_else(|| "-".into()),
                },
                r.failures.to_string(),
                r.last_failure.as_ref().map_or_else(
                    || "-".to_string(),
                    |f| format!("{} {}s ago: {}", f.action, f.seconds_ago, f.reason),
                ),
            ]);
        }
    }
    o.push('\n');
    o.push_str(&columns(&groups, ""));
    if !resources.is_empty() {
        resources.insert(
            0,
            cells(&[
                "GROUP",
                "RESOURCE",
                "AGENT",
                "STATE",
                "FAILURES HERE",
                "LAST FAILURE HERE",
            ]),
        );
        o.push('\n');
        o.push_str(&columns(&resources, "  "));
    }
    o
}

fn cells(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Rows as columns as wide as their widest cell, two spaces apart, each line after `indent`;
/// the last column is not padded.
fn columns(rows: &[Vec<String>], indent: &str) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut o = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        o.push_str(line.trim_end());
        o.push('\n');
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            cells(&["GROUP", "NODE", "STATUS"]),
            cells(&["a-group-name-longer-than-thirteen", "n1", "running"]),
            cells(&["web", "node-with-a-long-name", "-"]),
        ];
        let text = columns(&rows, "  ");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "  GROUP                              NODE                   STATUS"
        );
        assert_eq!(
            lines[1],
            "  a-group-name-longer-than-thirteen  n1                     running"
        );
        assert_eq!(
            lines[2],
            "  web                                node-with-a-long-name  -"
        );
    }
}
