//! A snapshot's bytes: the replicated [`ClusterState`] at one log index, naming groups, nodes
//! and scheduled moves by their keys ([`Keys`]), never by their position in a file, for the
//! same reason log entries do (see [`super::entry`]).
//!
//! The node core takes one every [`SNAPSHOT_EVERY`] applied entries: the log up to that
//! index is then dropped (on disk too), so a node's log and its boot time stay bounded however
//! long the cluster runs, and a follower that needs entries the log no longer holds is sent
//! this instead.
//!
//! Decoding is total. A key this config does not know is [`EntryError::Unknown`], as for an
//! entry: the node's file differs from the one the state was built under, and it must not act
//! on the state. A group, node or scheduled move of this config that the snapshot does not
//! name (one added to every file since) starts from its initial state.

use serde::{Deserialize, Serialize};

use super::entry::{EntryError, Keys};
use super::spec::ClusterSpec;
use super::state::{Cause, ClusterState, GroupState, IdKind, Instance, Phase};

/// Applied entries between two snapshots.
pub const SNAPSHOT_EVERY: u64 = 1000;

/// The format's version, first in the bytes: a node refuses a snapshot of another.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    groups: Vec<(u64, StoredGroup)>,
    /// Nodes in standby.
    standby: Vec<u64>,
    maintenance: bool,
    schedule_fired: Vec<(u64, u64)>,
    solo: Option<u64>,
    joined: Vec<(u64, u64)>,
    config: u64,
    applied: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredGroup {
    instances: Vec<StoredInstance>,
    /// Nodes with a failure count, and the count.
    failures: Vec<(u64, u32)>,
    home: Option<u64>,
    avoid: Option<u64>,
    failback_now: bool,
    request_cause: Option<Cause>,
    last_cause: Option<Cause>,
    last_epoch: u64,
    version: u64,
    /// Added after format 1's first release: a snapshot without it reads as enabled.
    #[serde(default)]
    disabled: bool,
    /// Keys of its unmanaged resources (added with `disabled`).
    #[serde(default)]
    unmanaged: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct StoredInstance {
    node: u64,
    epoch: u64,
    stopping: bool,
    stop_cause: Option<Cause>,
}

/// The bytes of `state`.
pub fn encode(state: &ClusterState, keys: &Keys) -> Result<Vec<u8>, EntryError> {
    let node = |n: u16| keys.key_of(IdKind::Node, n);
    let stored = Stored {
        format: FORMAT,
        groups: state
            .groups
            .iter()
            .enumerate()
            .map(|(g, gs)| {
                (
                    keys.key_of(IdKind::Group, g as u16),
                    encode_group(gs, &node, &|r| keys.resource_key(g as u16, r)),
                )
            })
            .collect(),
        standby: state
            .standby
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(n, _)| node(n as u16))
            .collect(),
        maintenance: state.maintenance,
        schedule_fired: state
            .schedule_fired
            .iter()
            .enumerate()
            .map(|(s, m)| (keys.key_of(IdKind::Schedule, s as u16), *m))
            .collect(),
        solo: state.solo.map(node),
        joined: state
            .joined
            .iter()
            .enumerate()
            .map(|(n, inc)| (node(n as u16), *inc))
            .collect(),
        config: state.config,
        applied: state.applied,
    };
    rmp_serde::to_vec(&stored).map_err(|e| EntryError::Malformed(e.to_string()))
}

fn encode_group(
    gs: &GroupState,
    node: &impl Fn(u16) -> u64,
    resource: &impl Fn(u16) -> u64,
) -> StoredGroup {
    StoredGroup {
        instances: gs
            .instances
            .iter()
            .map(|i| StoredInstance {
                node: node(i.node),
                epoch: i.epoch,
                stopping: i.phase == Phase::Stopping,
                stop_cause: i.stop_cause,
            })
            .collect(),
        failures: gs
            .failures
            .iter()
            .enumerate()
            .filter(|(_, f)| **f > 0)
            .map(|(n, f)| (node(n as u16), *f))
            .collect(),
        home: gs.home.map(node),
        avoid: gs.avoid.map(node),
        failback_now: gs.failback_now,
        request_cause: gs.request_cause,
        last_cause: gs.last_cause,
        last_epoch: gs.last_epoch,
        version: gs.version,
        disabled: gs.disabled,
        unmanaged: gs.unmanaged.iter().map(|&r| resource(r)).collect(),
    }
}

/// The state in `bytes`, with this config's ids, and the first key this config does not
/// know, if any: what it names is left out (a group removed from every file since, or a
/// file that differs), as a log entry naming it would be unreadable. Bytes that are not a
/// snapshot of this format are [`EntryError::Malformed`].
pub fn decode(
    bytes: &[u8],
    spec: &ClusterSpec,
    keys: &Keys,
) -> Result<(ClusterState, Option<EntryError>), EntryError> {
    let s: Stored =
        rmp_serde::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
    if s.format != FORMAT {
        return Err(EntryError::Malformed(format!(
            "snapshot format {} (this version reads {FORMAT})",
            s.format
        )));
    }
    let mut unknown = None;
    let mut known = |r: Result<u16, EntryError>| match r {
        Ok(id) => Some(usize::from(id)),
        Err(e) => {
            unknown.get_or_insert(e);
            None
        }
    };
    let mut state = ClusterState::new(spec);
    for (key, g) in s.groups {
        if let Some(at) = known(keys.id_of(IdKind::Group, key)) {
            state.groups[at] = decode_group(g, at as u16, &state.groups[at], keys, &mut known);
        }
    }
    for k in s.standby {
        if let Some(n) = known(keys.id_of(IdKind::Node, k)) {
            state.standby[n] = true;
        }
    }
    state.maintenance = s.maintenance;
    for (key, minute) in s.schedule_fired {
        if let Some(at) = known(keys.id_of(IdKind::Schedule, key)) {
            state.schedule_fired[at] = minute;
        }
    }
    state.solo = s
        .solo
        .and_then(|k| known(keys.id_of(IdKind::Node, k)))
        .map(|n| n as u16);
    for (k, inc) in s.joined {
        if let Some(n) = known(keys.id_of(IdKind::Node, k)) {
            state.joined[n] = inc;
        }
    }
    state.config = s.config;
    state.applied = s.applied;
    Ok((state, unknown))
}

fn decode_group(
    g: StoredGroup,
    at: u16,
    initial: &GroupState,
    keys: &Keys,
    known: &mut impl FnMut(Result<u16, EntryError>) -> Option<usize>,
) -> GroupState {
    let mut node = |k: u64| known(keys.id_of(IdKind::Node, k)).map(|n| n as u16);
    let mut failures = initial.failures.clone();
    for (k, f) in g.failures {
        if let Some(n) = node(k) {
            failures[usize::from(n)] = f;
        }
    }
    let instances = g
        .instances
        .into_iter()
        .filter_map(|i| {
            Some(Instance {
                node: node(i.node)?,
                epoch: i.epoch,
                phase: if i.stopping {
                    Phase::Stopping
                } else {
                    Phase::Active
                },
                stop_cause: i.stop_cause,
            })
        })
        .collect();
    GroupState {
        instances,
        failures,
        home: g.home.and_then(&mut node),
        avoid: g.avoid.and_then(&mut node),
        failback_now: g.failback_now,
        request_cause: g.request_cause,
        last_cause: g.last_cause,
        last_epoch: g.last_epoch,
        version: g.version,
        disabled: g.disabled,
        // A resource this config has in another group is left out: it is managed here.
        unmanaged: g
            .unmanaged
            .into_iter()
            .filter_map(|k| keys.resource_of(k).ok())
            .filter(|&(group, _)| group == at)
            .map(|(_, r)| r)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::simple_spec;

    /// A state with something in every field.
    fn busy(spec: &ClusterSpec) -> ClusterState {
        let mut s = ClusterState::new(spec);
        s.groups[0].instances.push(Instance {
            node: 2,
            epoch: 17,
            phase: Phase::Active,
            stop_cause: None,
        });
        s.groups[1].instances.push(Instance {
            node: 0,
            epoch: 21,
            phase: Phase::Stopping,
            stop_cause: Some(Cause::Admin),
        });
        s.groups[1].failures[1] = 3;
        s.groups[1].home = Some(1);
        s.groups[0].avoid = Some(2);
        s.groups[0].failback_now = true;
        s.groups[0].request_cause = Some(Cause::Admin);
        s.groups[1].last_cause = Some(Cause::Failure);
        s.groups[1].last_epoch = 21;
        s.groups[0].version = 9;
        s.groups[1].disabled = true;
        s.groups[0].unmanaged = vec![0];
        s.standby[1] = true;
        s.maintenance = true;
        s.solo = Some(0);
        s.joined = vec![5, 6, 7];
        s.config = 0xfeed;
        s.applied = 42;
        s
    }

    #[test]
    fn a_state_reads_back_as_written() {
        let spec = simple_spec(3, 2);
        let keys = Keys::new(&spec);
        let s = busy(&spec);
        let bytes = encode(&s, &keys).unwrap();
        assert_eq!(decode(&bytes, &spec, &keys).unwrap(), (s, None));
    }

    #[test]
    fn a_node_with_one_more_group_and_nodes_reordered_reads_by_name() {
        let writer = simple_spec(3, 2);
        let mut reader = writer.clone();
        let mut extra = writer.groups[0].clone();
        extra.name = "extra".into();
        reader.groups.insert(0, extra);
        reader.nodes.swap(0, 2);
        let s = busy(&writer);
        let bytes = encode(&s, &Keys::new(&writer)).unwrap();
        let (r, unknown) = decode(&bytes, &reader, &Keys::new(&reader)).unwrap();
        assert_eq!(unknown, None);
        // Writer's g0 is the reader's group 1, the writer's node 2 is the reader's node 0.
        assert_eq!(r.groups[0], ClusterState::new(&reader).groups[0]);
        assert_eq!(r.groups[1].instances[0].node, 0);
        assert_eq!(r.groups[1].avoid, Some(0));
        assert_eq!(r.groups[2].failures, vec![0, 3, 0]);
        assert_eq!(r.groups[2].instances[0].node, 2);
        assert_eq!(r.solo, Some(2));
        assert_eq!(r.joined, vec![7, 6, 5]);
    }

    #[test]
    fn a_group_this_config_lacks_is_named_unknown_and_left_out() {
        let writer = simple_spec(3, 2);
        let reader = simple_spec(3, 1);
        let s = busy(&writer);
        let bytes = encode(&s, &Keys::new(&writer)).unwrap();
        let (r, unknown) = decode(&bytes, &reader, &Keys::new(&reader)).unwrap();
        assert!(matches!(
            unknown,
            Some(EntryError::Unknown {
                kind: IdKind::Group,
                ..
            })
        ));
        assert_eq!(r.groups, vec![s.groups[0].clone()]);
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        let spec = simple_spec(3, 2);
        let keys = Keys::new(&spec);
        let good = encode(&busy(&spec), &keys).unwrap();
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], &spec, &keys).is_err());
        }
        for at in 0..good.len() {
            let mut b = good.clone();
            b[at] ^= 0xff;
            let _ = decode(&b, &spec, &keys);
        }
    }
}
