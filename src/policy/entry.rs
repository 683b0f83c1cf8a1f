//! A log entry's bytes: a [`Command`] that names groups, nodes and scheduled moves by what
//! they are, not by where they stand in a file.
//!
//! In memory every node indexes groups, nodes and scheduled moves by their position in its
//! own `cluster.toml` ([`super::spec`]). A position means nothing to a node whose file has
//! one more group, or lists the nodes in another order: read positionally, the entry that two
//! nodes apply as "web on n1" would be "extra on n1" on the third. So an entry carries, beside
//! the command, a key for every id the command holds, in the order [`Command::ids_mut`] visits
//! them; the ids themselves are written as zero. A reader puts back its own index for each key
//! through its own [`Keys`].
//!
//! A key is FNV-1a over a tag of its kind and the name (a scheduled move has no name of its
//! own: its group, its target and its cron expression are its identity, so two identical
//! moves share one key and mean the same; names are unique per kind by validation, and two of
//! one kind meeting in 64 bits is left to chance). A key this node does
//! not know means the committed entry names something its file does not have: the entry cannot
//! be applied here, and the node must not act on the cluster's state (see
//! [`super::node::NodeCore::config_differs`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::spec::{ClusterSpec, GroupId, ResourceId};
use super::state::{Command, IdKind};
use crate::ondisk::{fnv1a64, fnv1a64_from};

/// The keys of one config: what every group, node and scheduled move is called in the log.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    groups: Vec<u64>,
    nodes: Vec<u64>,
    schedules: Vec<u64>,
    /// Per resource, numbered as [`ClusterSpec::resources`].
    resources: Vec<u64>,
    /// Per group, the number of its first resource.
    first_resource: Vec<u16>,
    /// Key to (kind, index in this config).
    index: HashMap<u64, (IdKind, u16)>,
}

/// Why an entry could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not an entry of this format (a log of another version, or damage).
    #[error("not a command this version can read: {0}")]
    Malformed(String),
    /// It names a group, node or scheduled move this config does not have.
    #[error("it names a {kind} this config does not have (key {key:#018x})")]
    Unknown {
        /// What it names.
        kind: IdKind,
        /// The key.
        key: u64,
    },
}

/// The stored form.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// A key per id of `cmd`, in visiting order.
    k: Vec<u64>,
    /// The command, its ids zeroed.
    c: Command,
}

impl Keys {
    /// The keys of `spec`'s groups, nodes and scheduled moves.
    pub fn new(spec: &ClusterSpec) -> Keys {
        let groups: Vec<u64> = spec.groups.iter().map(|g| key("group", &g.name)).collect();
        let nodes: Vec<u64> = spec.nodes.iter().map(|n| key("node", &n.name)).collect();
        let name = |v: &[String], i: Option<u16>| {
            i.and_then(|i| v.get(usize::from(i)).cloned())
                .unwrap_or_default()
        };
        let group_names: Vec<String> = spec.groups.iter().map(|g| g.name.clone()).collect();
        let node_names: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
        let schedules: Vec<u64> = spec
            .schedules
            .iter()
            .map(|s| {
                let what = format!(
                    "{}\0{}\0{}",
                    name(&group_names, Some(s.group)),
                    name(&node_names, s.to),
                    s.cron
                );
                key("schedule", &what)
            })
            .collect();
        // Resource names are unique in the cluster (validation), like group names.
        let resources: Vec<u64> = spec
            .resources()
            .map(|(g, r)| {
                key(
                    "resource",
                    &spec.groups[usize::from(g)].resources[usize::from(r)].name,
                )
            })
            .collect();
        let mut first_resource = Vec::with_capacity(spec.groups.len());
        let mut n = 0u16;
        for gs in &spec.groups {
            first_resource.push(n);
            n = n.saturating_add(gs.resources.len() as u16);
        }
        let mut index = HashMap::new();
        for (kind, keys) in [
            (IdKind::Group, &groups),
            (IdKind::Node, &nodes),
            (IdKind::Schedule, &schedules),
            (IdKind::Resource, &resources),
        ] {
            for (i, k) in keys.iter().enumerate() {
                index.insert(*k, (kind, i as u16));
            }
        }
        Keys {
            groups,
            nodes,
            schedules,
            resources,
            first_resource,
            index,
        }
    }

    /// The key of this config's `kind` number `id` (0 for an id out of range).
    pub fn key_of(&self, kind: IdKind, id: u16) -> u64 {
        let v = match kind {
            IdKind::Group => &self.groups,
            IdKind::Node => &self.nodes,
            IdKind::Schedule => &self.schedules,
            IdKind::Resource => &self.resources,
        };
        // An id out of this config's range names nothing: key 0 reads back as unknown.
        v.get(usize::from(id)).copied().unwrap_or(0)
    }

    /// The key of resource `r` of group `g`.
    pub fn resource_key(&self, g: GroupId, r: ResourceId) -> u64 {
        let first = self.first_resource.get(usize::from(g)).copied();
        first.map_or(0, |f| self.key_of(IdKind::Resource, f.saturating_add(r)))
    }

    /// The group and index of the resource with `key`, or [`EntryError::Unknown`].
    pub fn resource_of(&self, key: u64) -> Result<(GroupId, ResourceId), EntryError> {
        let n = self.id_of(IdKind::Resource, key)?;
        let g = self
            .first_resource
            .partition_point(|&f| f <= n)
            .saturating_sub(1);
        Ok((g as GroupId, n - self.first_resource[g]))
    }

    /// This config's `kind` number for `key`, or [`EntryError::Unknown`].
    pub fn id_of(&self, kind: IdKind, key: u64) -> Result<u16, EntryError> {
        match self.index.get(&key) {
            Some(&(k, i)) if k == kind => Ok(i),
            _ => Err(EntryError::Unknown { kind, key }),
        }
    }

    /// The bytes of `cmd` in the log.
    pub fn encode(&self, cmd: &Command) -> Result<Vec<u8>, EntryError> {
        let mut c = cmd.clone();
        let mut k = Vec::new();
        c.ids_mut(&mut |kind, id| {
            k.push(self.key_of(kind, *id));
            *id = 0;
        });
        rmp_serde::to_vec(&Stored { k, c }).map_err(|e| EntryError::Malformed(e.to_string()))
    }

    /// The command in `bytes`, with this config's ids.
    pub fn decode(&self, bytes: &[u8]) -> Result<Command, EntryError> {
        let Stored { k, mut c } =
            rmp_serde::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        let mut keys = k.into_iter();
        let mut err = None;
        c.ids_mut(&mut |kind, id| {
            let Some(key) = keys.next() else {
                err.get_or_insert(EntryError::Malformed("fewer keys than ids".into()));
                return;
            };
            match self.index.get(&key) {
                Some(&(k, i)) if k == kind => *id = i,
                _ => {
                    err.get_or_insert(EntryError::Unknown { kind, key });
                }
            }
        });
        if keys.next().is_some() {
            err.get_or_insert(EntryError::Malformed("more keys than ids".into()));
        }
        match err {
            Some(e) => Err(e),
            None => Ok(c),
        }
    }
}

/// The key of the `kind` thing called `name`.
fn key(kind: &str, name: &str) -> u64 {
    fnv1a64_from(fnv1a64(kind.as_bytes()) ^ 0xff, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::state::{AdminCommand, Cause, Release};
    use crate::policy::testutil::simple_spec;

    fn every_command() -> Vec<Command> {
        vec![
            Command::Activate {
                group: 1,
                node: 2,
                cause: Cause::Initial,
            },
            Command::Stop {
                group: 1,
                node: 0,
                epoch: 9,
                cause: Cause::Admin,
            },
            Command::Released {
                group: 0,
                node: 1,
                epoch: 4,
                how: Release::Fenced,
            },
            Command::Failed {
                group: 1,
                node: 2,
                epoch: 5,
                everywhere: true,
            },
            Command::Fenced {
                node: 2,
                through: 7,
            },
            Command::Solo {
                node: 0,
                peer: 1,
                through: 3,
            },
            Command::Joined {
                node: 1,
                incarnation: 77,
            },
            Command::Admin(AdminCommand::Move {
                group: 1,
                to: Some(0),
            }),
            Command::Admin(AdminCommand::Move { group: 0, to: None }),
            Command::Admin(AdminCommand::Standby { node: 2, on: true }),
            Command::Admin(AdminCommand::Maintenance { on: true }),
            Command::Admin(AdminCommand::FailbackNow { group: 1 }),
            Command::Admin(AdminCommand::Disable { group: 1, on: true }),
            Command::Admin(AdminCommand::Manage {
                resource: 1,
                on: false,
            }),
            Command::Admin(AdminCommand::ClearFailures {
                group: 0,
                node: Some(2),
            }),
            Command::FailuresExpired { group: 1, node: 0 },
            Command::Config { digest: 0xfeed },
        ]
    }

    fn three_by_two() -> ClusterSpec {
        simple_spec(3, 2)
    }

    /// A group like the others, called `name`.
    fn named(s: &ClusterSpec, name: &str) -> crate::policy::spec::GroupSpec {
        let mut g = s.groups[0].clone();
        g.name = name.into();
        g
    }

    #[test]
    fn every_command_reads_back_as_written() {
        let s = three_by_two();
        let keys = Keys::new(&s);
        for cmd in every_command() {
            let bytes = keys.encode(&cmd).unwrap();
            assert_eq!(keys.decode(&bytes).unwrap(), cmd, "{cmd:?}");
        }
    }

    #[test]
    fn a_node_with_one_more_group_reads_the_group_the_writer_meant() {
        let writer = three_by_two();
        let mut reader = writer.clone();
        reader.groups.insert(0, named(&writer, "extra"));
        let cmd = Command::Activate {
            group: 0,
            node: 0,
            cause: Cause::Initial,
        };
        let bytes = Keys::new(&writer).encode(&cmd).unwrap();
        // "g0" is group 0 for the writer and group 1 for the reader.
        assert_eq!(
            Keys::new(&reader).decode(&bytes).unwrap(),
            Command::Activate {
                group: 1,
                node: 0,
                cause: Cause::Initial
            }
        );
    }

    #[test]
    fn nodes_listed_in_another_order_are_read_by_name() {
        let writer = three_by_two();
        let mut reader = writer.clone();
        reader.nodes.swap(0, 2);
        let cmd = Command::Fenced {
            node: 0,
            through: 3,
        };
        let bytes = Keys::new(&writer).encode(&cmd).unwrap();
        assert_eq!(
            Keys::new(&reader).decode(&bytes).unwrap(),
            Command::Fenced {
                node: 2,
                through: 3
            }
        );
    }

    #[test]
    fn a_group_this_config_lacks_is_unknown_not_another_group() {
        let mut writer = three_by_two();
        writer.groups.push(named(&writer, "only-there"));
        let reader = three_by_two();
        let bytes = Keys::new(&writer)
            .encode(&Command::Admin(AdminCommand::FailbackNow { group: 2 }))
            .unwrap();
        assert!(matches!(
            Keys::new(&reader).decode(&bytes),
            Err(EntryError::Unknown {
                kind: IdKind::Group,
                ..
            })
        ));
    }

    #[test]
    fn a_group_and_a_node_of_one_name_are_different_keys() {
        let mut s = three_by_two();
        s.groups[0].name = s.nodes[1].name.clone();
        let keys = Keys::new(&s);
        let cmd = Command::Activate {
            group: 0,
            node: 1,
            cause: Cause::Initial,
        };
        assert_eq!(keys.decode(&keys.encode(&cmd).unwrap()).unwrap(), cmd);
    }

    #[test]
    fn bytes_of_another_format_are_malformed() {
        let keys = Keys::new(&three_by_two());
        let positional = rmp_serde::to_vec_named(&Command::Fenced {
            node: 1,
            through: 2,
        })
        .unwrap();
        assert!(matches!(
            keys.decode(&positional),
            Err(EntryError::Malformed(_))
        ));
        assert!(matches!(
            keys.decode(&[0xc1]),
            Err(EntryError::Malformed(_))
        ));
    }
}
