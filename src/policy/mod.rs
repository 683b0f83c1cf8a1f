//! Every decision EterneCluster makes, as pure state machines.
//!
//! Nothing here does IO, reads a clock, spawns a thread or draws global randomness: time comes
//! in as `now_us` (the caller's monotonic clock, microseconds), civil time as
//! [`schedule::CivilTime`], randomness as a seed. Inputs are typed messages and outputs typed
//! effects, so the simulator (`simulations/`) and the daemon drive exactly the same code.
//!
//! - [`spec`]: the resolved cluster description (ids instead of names).
//! - [`schedule`]: cron expressions and daily windows.
//! - [`detector`]: failure detection per peer per path, and node liveness across paths.
//! - [`lease`]: leases, the quorum anchor and the takeover rule.
//! - [`group`]: one group instance on one node: dependency order, local recovery, escalation.
//! - [`state`]: the cluster state machine applied from the replicated log.
//! - [`placement`]: the target placement of every group.
//! - [`consensus`]: raft-rs driven through tick/step/ready, with seeded elections.
//! - [`entry`]: a command's bytes in the log, naming groups and nodes by name, not position.
//! - [`message`]: heartbeats, messages, inputs, effects and events.
//! - [`admin`]: admin requests by name, resolved and checked against the liveness view.
//! - [`drain`]: the drain on SIGTERM and the undrain on the next start.
//! - [`coordinator`]: the leader's pass: releases, one step per group, fired schedules.
//! - [`local`]: this node's group instances brought in line with the state and the lease.
//! - [`timer`]: the node core's deadlines in one table.
//! - [`monitor`]: the monitor process's rules: when to stop hard, when a core is wedged.
//! - [`node`]: the node core that composes all of the above.
//! - [`route`]: which paths a message to a peer takes, from the connections the shell reports.
//! - [`rng`]: the seeded generator, the only source of randomness.
//! - [`raft_log`]: the in-memory raft log and the [`raft_log::LogStore`] trait the consensus core
//!   is generic over.
//! - [`raft_wire`]: raft messages in our own serde types, so peers never make us decode protobuf.

pub mod admin;
pub mod consensus;
pub mod coordinator;
pub mod detector;
pub mod drain;
pub mod entry;
pub mod fencing;
pub mod group;
pub mod lease;
pub mod local;
pub mod message;
pub mod monitor;
pub mod node;
pub mod placement;
pub mod raft_log;
pub mod raft_wire;
pub mod rng;
pub mod route;
pub mod schedule;
pub mod snapshot;
pub mod spec;
pub mod state;
pub mod timer;
pub mod two_node;

#[cfg(test)]
pub(crate) mod testutil;
