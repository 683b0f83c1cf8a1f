//! Which heartbeat paths a message to a peer takes: the one routing rule of the daemon and
//! the simulator alike.
//!
//! Lease requests and grants go on every path that is up, the disk path included: one lossy
//! NIC must not cost a node its lease, and a node that reaches the cluster only through the
//! shared disk keeps its groups. Everything else goes on the first network path whose
//! connection is up, or, with none known to be up, on the first network path (the transport
//! tries, and drops it if it cannot). The consensus log never uses the disk.
//!
//! What is up is what the shell reports ([`super::message::Input::Connection`]): a QUIC
//! connection in the daemon, a link without a cut in the simulator. A disk path counts as up
//! until the shell says otherwise (the daemon has no connection on it).

use super::message::{Effect, Message, PathSet};
use super::spec::{ClusterSpec, NodeId, PathId, PathKind};

/// The connection table and the rule.
#[derive(Clone, Debug)]
pub struct Router {
    /// Per peer, per path: up.
    up: Vec<Vec<bool>>,
    /// Per path: a network path.
    network: Vec<bool>,
}

impl Router {
    /// Nothing connected yet on the network paths of `spec`; disk paths up.
    pub fn new(spec: &ClusterSpec) -> Router {
        let network: Vec<bool> = spec
            .paths
            .iter()
            .map(|p| p.kind == PathKind::Network)
            .collect();
        let row: Vec<bool> = network.iter().map(|n| !n).collect();
        Router {
            up: vec![row; spec.nodes.len()],
            network,
        }
    }

    /// A connection to `peer` on `path` came up or went down.
    pub fn set(&mut self, peer: NodeId, path: PathId, up: bool) {
        if let Some(slot) = self
            .up
            .get_mut(usize::from(peer))
            .and_then(|row| row.get_mut(usize::from(path)))
        {
            *slot = up;
        }
    }

    /// Whether the connection to `peer` on `path` is up.
    pub fn is_up(&self, peer: NodeId, path: PathId) -> bool {
        self.up
            .get(usize::from(peer))
            .and_then(|row| row.get(usize::from(path)))
            .copied()
            .unwrap_or(false)
    }

    /// `msg` for `to`, on the paths it takes.
    pub fn send(&self, to: NodeId, msg: Message) -> Effect {
        let paths = self.paths(to, &msg);
        Effect::Send { to, paths, msg }
    }

    /// The paths `msg` to `to` takes.
    pub fn paths(&self, to: NodeId, msg: &Message) -> PathSet {
        let Some(row) = self.up.get(usize::from(to)) else {
            return PathSet::default();
        };
        let mut set = PathSet::default();
        if msg.on_every_path() {
            for (p, &up) in row.iter().enumerate() {
                if up {
                    set = set.with(p as PathId);
                }
            }
            return set;
        }
        let first_up = (0..row.len()).find(|&p| self.network[p] && row[p]);
        match first_up.or_else(|| self.network.iter().position(|&n| n)) {
            Some(p) => PathSet::one(p as PathId),
            None => set,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::spec_with_paths;

    fn spec() -> ClusterSpec {
        // Paths 0 and 1 network, 2 disk.
        let mut s = spec_with_paths(3, &[(50, 4), (50, 4), (200, 4)]);
        s.paths[2].kind = PathKind::Disk;
        s
    }

    fn paths(set: PathSet) -> Vec<PathId> {
        set.iter().collect()
    }

    #[test]
    fn a_message_takes_the_first_connected_network_path_or_tries_the_first() {
        let mut r = Router::new(&spec());
        let report = Message::Admin(crate::policy::state::AdminCommand::Maintenance { on: true });
        assert_eq!(
            paths(r.paths(1, &report)),
            [0],
            "nothing up: the first tries"
        );
        r.set(1, 1, true);
        assert_eq!(paths(r.paths(1, &report)), [1]);
        r.set(1, 0, true);
        assert_eq!(paths(r.paths(1, &report)), [0]);
        assert_eq!(
            paths(r.paths(2, &report)),
            [0],
            "another peer has its own row"
        );
    }

    #[test]
    fn leases_take_every_path_that_is_up_the_disk_included() {
        let mut r = Router::new(&spec());
        let lease = Message::LeaseRequest { stamp_us: 5 };
        assert_eq!(
            paths(r.paths(1, &lease)),
            [2],
            "the disk path is up by default"
        );
        r.set(1, 0, true);
        r.set(1, 1, true);
        assert_eq!(paths(r.paths(1, &lease)), [0, 1, 2]);
        r.set(1, 2, false);
        r.set(1, 0, false);
        assert_eq!(paths(r.paths(1, &lease)), [1]);
        assert!(r.is_up(1, 1) && !r.is_up(1, 0));
    }
}
