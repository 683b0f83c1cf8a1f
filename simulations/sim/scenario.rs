//! Scenarios: a cluster shape, its config and a fault plan, all derived from one seed.

use std::sync::Arc;

use crate::policy::rng::Rng;
use crate::policy::schedule::{CronExpr, DailyWindow};
use crate::policy::spec::*;

/// Everything that defines one simulated run. Derived from a seed by [`Scenario::from_seed`],
/// so a seed alone replays it.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed everything comes from.
    pub seed: u64,
    /// The cluster.
    pub spec: Arc<ClusterSpec>,
    /// Simulated run length.
    pub duration_us: u64,
    /// Faults are injected until this time; afterwards everything heals.
    pub faults_until_us: u64,
    /// Mean time between two injected faults.
    pub fault_every_us: u64,
    /// Whether faults are injected at all.
    pub faults: bool,
    /// The network's delays, loss and duplication.
    pub network: NetworkOptions,
    /// The raft log's disk: how long a write takes to be durable.
    pub disk: DiskOptions,
    /// Faults at fixed times, on top of (or instead of) the random ones: the demo's plot.
    pub script: Vec<(u64, Scripted)>,
}

/// How the simulated network behaves, in one place (after TigerBeetle's packet simulator
/// options): every draw of a delay, a loss or a duplicate reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkOptions {
    /// Base one-way delay on a network path and the jitter on top (jitter reorders).
    pub delay_us: (u64, u64),
    /// Background loss on network paths, per million (faults add loss per path).
    pub loss_ppm: u32,
    /// Duplication of messages, per million.
    pub dup_ppm: u32,
    /// One-way delay on the disk path: its base and spread (the daemon reads it every few
    /// ms).
    pub disk_delay_us: (u64, u64),
}

/// How the raft log's disk behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskOptions {
    /// How long a batch that must be fsync'ed takes to be durable: base and spread.
    pub sync_us: (u64, u64),
    /// How long a batch that needs no fsync (only the commit index moved) takes.
    pub write_us: (u64, u64),
    /// Applied entries between two snapshots of a node's state: far fewer than the daemon's
    /// `SNAPSHOT_EVERY`, so that every run compacts logs and sends snapshots to nodes that
    /// fell behind.
    pub snapshot_every: u64,
}

/// A fault the scenario injects at a fixed time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scripted {
    /// The node crashes; it boots again after `down_us`.
    Crash {
        /// Which node.
        node: NodeId,
        /// How long it stays down.
        down_us: u64,
    },
    /// A resource's process exits on whichever node runs it.
    Exit {
        /// The group.
        group: GroupId,
        /// The resource.
        resource: ResourceId,
    },
    /// The node loses every network path (both directions) for `for_us`.
    Isolate {
        /// Which node.
        node: NodeId,
        /// For how long.
        for_us: u64,
    },
}

/// Size and fault options a caller may fix instead of drawing them from the seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    /// Number of resource-holding nodes (a two-node cluster gets a witness).
    pub nodes: Option<usize>,
    /// Number of groups.
    pub groups: Option<usize>,
    /// Simulated seconds.
    pub seconds: Option<u64>,
    /// Turn faults off.
    pub no_faults: bool,
    /// Force a witness on or off.
    pub witness: Option<bool>,
}

/// Timing for clusters up to about eight nodes: 50 ms × 4 heartbeats, 150 ms leases.
pub fn tight_timing() -> TimingSpec {
    TimingSpec {
        lease_ms: 150,
        lease_renew_ms: 25,
        max_clock_drift_ppm: 10_000,
        takeover_margin_ms: 40,
        stop_budget_ms: 50,
        raft_tick_ms: 20,
        election_ticks: 10,
        heartbeat_ticks: 1,
    }
}

/// Timing for large clusters (the 32-node profile): 100 ms × 5 heartbeats, 400 ms leases,
/// consensus heartbeats every 100 ms.
pub fn large_timing() -> TimingSpec {
    TimingSpec {
        lease_ms: 400,
        lease_renew_ms: 100,
        max_clock_drift_ppm: 10_000,
        takeover_margin_ms: 60,
        stop_budget_ms: 120,
        raft_tick_ms: 50,
        election_ticks: 10,
        heartbeat_ticks: 2,
    }
}

impl Scenario {
    /// The scenario of `seed`, with `shape` overriding what it fixes.
    pub fn from_seed(seed: u64, shape: Shape) -> Scenario {
        let mut rng = Rng::new(seed);
        let nodes = shape.nodes.unwrap_or_else(|| match rng.range(0, 20) {
            0..=5 => 2,
            6..=13 => 3,
            14..=18 => 5,
            _ => 7,
        });
        let large = nodes > 8;
        let witness = shape
            .witness
            .unwrap_or(nodes % 2 == 0 || rng.chance(200_000));
        // Some two-node clusters have a fencing device instead of their witness (a generator
        // of its own, so that the other scenarios stay as they were).
        let two_node_fencing =
            shape.witness != Some(true) && super::fence::two_node_fencing(seed, nodes);
        let witness = witness && !two_node_fencing;
        let total = nodes + usize::from(witness);
        let mut paths = vec![
            PathSpec {
                name: "private-a".into(),
                kind: PathKind::Network,
                interval_ms: 50,
                misses: 4,
            },
            PathSpec {
                name: "private-b".into(),
                kind: PathKind::Network,
                interval_ms: 50,
                misses: 4,
            },
        ];
        if large {
            for p in &mut paths {
                p.interval_ms = 100;
                p.misses = 5;
            }
        }
        if rng.chance(500_000) {
            paths.push(PathSpec {
                name: "disk".into(),
                kind: PathKind::Disk,
                interval_ms: 200,
                misses: 5,
            });
        }
        let capacities = rng.chance(300_000);
        let node_specs: Vec<NodeSpec> = (0..total)
            .map(|i| {
                let w = witness && i == total - 1;
                NodeSpec {
                    name: if w { "witness".into() } else { format!("n{i}") },
                    capacity: if w {
                        0
                    } else if capacities {
                        10 + rng.range(0, 20) as u32
                    } else {
                        u32::MAX
                    },
                    witness: w,
                }
            })
            .collect();
        let group_count = shape
            .groups
            .unwrap_or_else(|| 1 + rng.range(0, (nodes * 2) as u64) as usize);
        let mut groups = Vec::with_capacity(group_count);
        for g in 0..group_count {
            // Priority order: a rotation so that preferred nodes spread, then some shuffling.
            let mut order: Vec<NodeId> = (0..nodes as NodeId).collect();
            order.rotate_left(g % nodes);
            let len = if nodes <= 2 {
                nodes
            } else {
                2 + rng.range(0, (nodes - 1) as u64) as usize
            };
            order.truncate(len.min(nodes));
            if order.len() > 2 && rng.chance(300_000) {
                let (a, b) = (
                    rng.range(1, order.len() as u64) as usize,
                    rng.range(1, order.len() as u64) as usize,
                );
                order.swap(a, b);
            }
            let clone = rng.chance(120_000);
            let kind = if clone {
                GroupKind::Clone {
                    copies: if rng.chance(500_000) {
                        Some(order.len().min(2) as u16)
                    } else {
                        None
                    },
                }
            } else {
                GroupKind::Exclusive
            };
            let failback = match rng.range(0, 4) {
                0 | 1 => Failback::Manual,
                2 => Failback::Auto { window: None },
                _ => {
                    let start = rng.range(0, 24) as u16 * 60;
                    Failback::Auto {
                        window: Some(DailyWindow {
                            start_min: start,
                            end_min: (start + 120) % 1440,
                        }),
                    }
                }
            };
            let rcount = 1 + rng.range(0, 3) as usize;
            let resources = (0..rcount)
                .map(|r| ResourceSpec {
                    name: format!("g{g}-r{r}"),
                    agent: ["ip", "filesystem", "application"][r % 3].into(),
                    params: Vec::new(),
                    depends_on: if r == 0 {
                        Vec::new()
                    } else {
                        vec![(r - 1) as ResourceId]
                    },
                    monitor_quick: MonitorSpec {
                        interval_ms: 1000,
                        timeout_ms: 500,
                    },
                    monitor_deep: rng.chance(300_000).then_some(MonitorSpec {
                        interval_ms: 5000,
                        timeout_ms: 2000,
                    }),
                    start_timeout_ms: 2000,
                    stop_timeout_ms: 1000,
                    migration_threshold: None,
                })
                .collect();
            groups.push(GroupSpec {
                name: format!("g{g}"),
                nodes: order,
                kind,
                failback,
                stickiness: !rng.chance(100_000),
                max_restarts: 1 + rng.range(0, 3) as u32,
                restart_window_ms: 60_000,
                // The defaults of the config: restarts after the first wait 1 s, 2 s, ….
                restart_backoff_ms: 1_000,
                restart_backoff_max_ms: 30_000,
                // Half the groups forget a node's failures after 5 to 20 s.
                failure_timeout_ms: if rng.chance(500_000) {
                    rng.range(5_000, 20_000)
                } else {
                    0
                },
                load: if capacities {
                    1 + rng.range(0, 8) as u32
                } else {
                    1
                },
                anti_affinity: Vec::new(),
                resources,
            });
        }
        if group_count >= 2
            && rng.chance(250_000)
            && groups[0].is_exclusive()
            && groups[1].is_exclusive()
        {
            groups[0].anti_affinity.push(1);
            groups[1].anti_affinity.push(0);
        }
        let mut schedules = Vec::new();
        if rng.chance(200_000) && groups[0].is_exclusive() {
            let minute = rng.range(0, 60);
            if let Ok(cron) = CronExpr::parse(&format!("{minute} * * * *")) {
                schedules.push(ScheduledMove {
                    group: 0,
                    to: None,
                    cron,
                });
            }
        }
        let partition = if witness || nodes >= 3 {
            PartitionPolicy::Quorum
        } else {
            PartitionPolicy::NoAutoFailover
        };
        let partition = if two_node_fencing {
            PartitionPolicy::Fence
        } else {
            super::fence::with_fencing(seed, partition)
        };
        let spec = ClusterSpec {
            name: format!("sim-{seed}"),
            nodes: node_specs,
            paths,
            timing: if large {
                large_timing()
            } else {
                tight_timing()
            },
            partition,
            groups,
            schedules,
            digest: 0xE7E2_u64,
        };
        let seconds = shape.seconds.unwrap_or(if large { 120 } else { 60 });
        let duration_us = seconds * 1_000_000;
        let faults = !shape.no_faults;
        // From the seed, not the generator, so that it moves no other draw.
        let snapshot_every = 15 + seed % 50;
        Scenario {
            seed,
            spec: Arc::new(spec),
            duration_us,
            faults_until_us: if faults { duration_us * 6 / 10 } else { 0 },
            fault_every_us: if large { 1_500_000 } else { 2_000_000 },
            faults,
            network: NetworkOptions {
                delay_us: (100, if rng.chance(300_000) { 5_000 } else { 1_000 }),
                loss_ppm: if faults {
                    rng.range(0, 20_000) as u32
                } else {
                    0
                },
                dup_ppm: if faults { 5_000 } else { 0 },
                disk_delay_us: (5_000, 20_000),
            },
            // Mostly a fast disk; a slow one now and then (a busy array, a cheap SSD).
            disk: if rng.chance(200_000) {
                DiskOptions {
                    sync_us: (2_000, 20_000),
                    write_us: (100, 1_000),
                    snapshot_every,
                }
            } else {
                DiskOptions {
                    sync_us: (50, 500),
                    write_us: (10, 50),
                    snapshot_every,
                }
            },
            script: Vec::new(),
        }
    }

    /// The demo: three nodes, one group `web` (ip → filesystem → application) preferring n1,
    /// automatic failback, no random faults. The plot: n1 crashes and comes back, the
    /// application exits once, and the node running `web` is cut off from the network.
    pub fn demo() -> Scenario {
        let mut sc = Scenario::from_seed(
            7,
            Shape {
                nodes: Some(3),
                groups: Some(1),
                seconds: Some(30),
                no_faults: true,
                witness: Some(false),
            },
        );
        let mut spec = (*sc.spec).clone();
        for (i, n) in spec.nodes.iter_mut().enumerate() {
            n.name = format!("n{}", i + 1);
            n.capacity = u32::MAX;
        }
        spec.name = "demo".into();
        spec.paths.truncate(2);
        spec.schedules.clear();
        let g = &mut spec.groups[0];
        g.name = "web".into();
        g.nodes = vec![0, 1, 2];
        g.kind = GroupKind::Exclusive;
        g.failback = Failback::Auto { window: None };
        g.max_restarts = 2;
        g.anti_affinity.clear();
        let template = g.resources[0].clone();
        g.resources = ["web-ip", "web-fs", "web-app"]
            .iter()
            .zip(["ip", "filesystem", "application"])
            .enumerate()
            .map(|(r, (name, agent))| ResourceSpec {
                name: (*name).into(),
                agent: agent.into(),
                depends_on: if r == 0 {
                    Vec::new()
                } else {
                    vec![(r - 1) as ResourceId]
                },
                monitor_deep: None,
                ..template.clone()
            })
            .collect();
        sc.spec = Arc::new(spec);
        sc.script = vec![
            (
                3_000_000,
                Scripted::Crash {
                    node: 0,
                    down_us: 4_000_000,
                },
            ),
            (
                12_000_000,
                Scripted::Exit {
                    group: 0,
                    resource: 2,
                },
            ),
            (
                18_000_000,
                Scripted::Isolate {
                    node: 0,
                    for_us: 5_000_000,
                },
            ),
        ];
        sc
    }
}
