//! Small specs for the cores' and the agents' unit tests.

use super::spec::*;

/// The default timing of `cluster.toml`.
pub fn default_timing() -> TimingSpec {
    TimingSpec {
        lease_ms: 150,
        lease_renew_ms: 30,
        max_clock_drift_ppm: 10_000,
        takeover_margin_ms: 40,
        stop_budget_ms: 60,
        raft_tick_ms: 20,
        election_ticks: 10,
        heartbeat_ticks: 2,
    }
}

/// `nodes` nodes and the given network paths `(interval_ms, misses)`, no groups.
pub fn spec_with_paths(nodes: usize, paths: &[(u32, u32)]) -> ClusterSpec {
    ClusterSpec {
        name: "test".into(),
        nodes: (0..nodes)
            .map(|i| NodeSpec {
                name: format!("n{i}"),
                capacity: u32::MAX,
                witness: false,
            })
            .collect(),
        paths: paths
            .iter()
            .enumerate()
            .map(|(i, &(interval_ms, misses))| PathSpec {
                name: format!("p{i}"),
                kind: PathKind::Network,
                interval_ms,
                misses,
            })
            .collect(),
        timing: default_timing(),
        partition: PartitionPolicy::Quorum,
        groups: Vec::new(),
        schedules: Vec::new(),
        digest: 1,
    }
}

/// One resource with default timings.
pub fn resource(name: &str, depends_on: Vec<ResourceId>) -> ResourceSpec {
    ResourceSpec {
        name: name.into(),
        agent: "application".into(),
        params: Vec::new(),
        depends_on,
        monitor_quick: MonitorSpec {
            interval_ms: 1000,
            timeout_ms: 500,
        },
        monitor_deep: None,
        start_timeout_ms: 1000,
        stop_timeout_ms: 1000,
        migration_threshold: None,
    }
}

/// A resource named `name` run by `agent` with `params`: a quick monitor every second (500 ms
/// timeout), no deep monitor, start and stop timeouts of 5 s and 4 s.
pub fn agent_resource(name: &str, agent: &str, params: &[(&str, &str)]) -> ResourceSpec {
    ResourceSpec {
        name: name.into(),
        agent: agent.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        start_timeout_ms: 5000,
        stop_timeout_ms: 4000,
        ..resource(name, vec![])
    }
}

/// `nodes` nodes, one path, `groups` exclusive groups over every node in order, each with a
/// single resource, manual failback.
pub fn simple_spec(nodes: usize, groups: usize) -> ClusterSpec {
    let mut spec = spec_with_paths(nodes, &[(50, 4)]);
    spec.groups = (0..groups)
        .map(|g| GroupSpec {
            name: format!("g{g}"),
            nodes: (0..nodes as NodeId).collect(),
            kind: GroupKind::Exclusive,
            failback: Failback::Manual,
            stickiness: true,
            max_restarts: 2,
            restart_window_ms: 60_000,
            restart_backoff_ms: 0,
            restart_backoff_max_ms: 0,
            failure_timeout_ms: 0,
            load: 1,
            anti_affinity: Vec::new(),
            resources: vec![resource(&format!("g{g}-r0"), Vec::new())],
        })
        .collect();
    spec
}
