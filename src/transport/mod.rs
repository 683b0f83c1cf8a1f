//! QUIC endpoints per heartbeat path, mutual TLS, the wire envelope and the disk heartbeat.
//! The simulator's in-memory network carries the same [`crate::policy::message::Message`] types.
//!
//! # Layout
//!
//! - [`disk`]: the disk heartbeat path: a slot per node on a shared device, carrying heartbeats
//!   and lease messages.
//! - [`certs`]: the cluster CA and node certificates (`eternectl ca init`, `cert issue NODE`).
//! - `tls`: rustls (ring provider only) with mutual TLS against the cluster CA; a client
//!   certificate must be valid for a node name of the config.
//! - [`envelope`]: the versioned wire envelope and its total decoder.
//! - `quic`: [`Transport`] — one quinn endpoint per network heartbeat path, one connection per
//!   path and peer, heartbeats as datagrams, messages on streams.
//!
//! # How a path to a peer comes up
//!
//! On each network path, of two nodes the one whose name sorts first dials, the other accepts
//! (names, not node ids: two nodes whose configs list the nodes in different orders, as
//! during a rolling config change, still agree on who dials). The TLS handshake authenticates
//! both sides; then the dialer sends `Hello` on the first stream and the acceptor answers
//! `HelloAck` once it has checked the Hello's cluster, version and sender name (which must be a
//! name the certificate is valid for). Only then is the path up ([`Inbound::PathUp`]). A QUIC
//! client may believe it is connected before the server has checked its certificate, which is
//! why the dialer waits for the `HelloAck`.
//!
//! A lost connection is redialled with a bounded backoff (20 ms doubling to 500 ms). A
//! restarted peer resets the old connection at once (stateless reset with a key derived from
//! its private key), so the path is back within a fraction of a second.
//!
//! # What the caller sees
//!
//! Everything arrives on the [`Inbound`] channel given to [`Transport::start`]. Per peer and
//! path, `PathUp` and `PathDown` strictly alternate, starting with `PathUp`. Refused peers are
//! reported as [`Inbound::Refused`] and logged (`warn`, fields `path`, `remote`, `reason`),
//! at most once per 10 s for the same path, address and reason. Envelopes that cannot be used
//! (garbage, another cluster, another version, a sender other than the authenticated peer) are
//! logged (`warn`, fields `peer`, `path`, `reason`) and dropped.
//!
//! Sending never blocks and never panics: a message to a peer with no path up is dropped (raft
//! and leases retry), as is one that finds the peer's send queue full.

// Bytes from a peer must never be able to panic the daemon: outside tests, this module and its
// submodules never unwrap, expect or panic (clippy enforces it; `scripts/test.sh` runs clippy).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod certs;
pub mod disk;
pub mod envelope;
mod quic;
mod tls;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::config::ClusterConfig;
use crate::policy::message::{Heartbeat, Message};
use crate::policy::spec::{NodeId, PathId, PathKind};

pub use quic::Transport;
pub use tls::ALPN;

/// One network heartbeat path, as the transport needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetPath {
    /// The path's index in [`crate::policy::spec::ClusterSpec::paths`].
    pub id: PathId,
    /// The path's name from the config (for logs).
    pub name: String,
    /// Every node's address on this path, indexed by [`NodeId`]. This node's own entry is
    /// where its endpoint binds.
    pub addrs: Vec<SocketAddr>,
    /// How long a peer may be silent on this path before it is lost (`interval × misses`):
    /// while a link to a node was heard within it, another process claiming that node from
    /// another address is refused.
    pub detect: std::time::Duration,
}

/// Everything [`Transport::start`] needs to know about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// The cluster's name; envelopes of another cluster are refused.
    pub cluster: String,
    /// This node's config digest, sent in every envelope.
    pub digest: u64,
    /// This node.
    pub me: NodeId,
    /// This daemon's incarnation (changes at every start), sent in every envelope.
    pub incarnation: u64,
    /// Node names by [`NodeId`], the witness included (as in
    /// [`crate::policy::spec::ClusterSpec::nodes`]).
    pub nodes: Vec<String>,
    /// The network heartbeat paths (a disk path is not the transport's).
    pub paths: Vec<NetPath>,
}

impl TransportConfig {
    /// Builds the transport's view of a loaded config for node `node`. Node and path ids agree
    /// with [`ClusterConfig::spec`]: nodes in config order then the witness; network paths in
    /// config order (disk paths come after them in the spec and are skipped here). Host names
    /// in addresses are resolved now (a blocking lookup) and the first address is used.
    pub fn from_cluster(
        config: &ClusterConfig,
        node: &str,
        incarnation: u64,
    ) -> Result<TransportConfig, TransportError> {
        let spec = config.spec();
        let me = spec.node_id(node).ok_or_else(|| {
            TransportError::Config(format!(
                "node \"{node}\" is not in the config (nodes: {}); pass --node NAME with a name of the config",
                spec.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        // Addresses by node id: the nodes in config order, then the witness (as resolve does).
        let addresses: Vec<(&str, &std::collections::BTreeMap<String, String>)> = config
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), &n.addresses))
            .chain(
                config
                    .witness
                    .iter()
                    .map(|w| (w.name.as_str(), &w.addresses)),
            )
            .collect();
        let mut paths = Vec::new();
        for (id, p) in spec.paths.iter().enumerate() {
            if p.kind != PathKind::Network {
                continue;
            }
            let mut addrs = Vec::with_capacity(addresses.len());
            for (name, map) in &addresses {
                let text = map.get(&p.name).ok_or_else(|| {
                    TransportError::Config(format!(
                        "node \"{name}\" has no address on path \"{}\"",
                        p.name
                    ))
                })?;
                addrs.push(resolve_addr(text).map_err(|why| {
                    TransportError::Config(format!(
                        "node \"{name}\" → addresses → {}: \"{text}\": {why}",
                        p.name
                    ))
                })?);
            }
            paths.push(NetPath {
                id: PathId::try_from(id)
                    .map_err(|_| TransportError::Config("too many heartbeat paths".to_string()))?,
                name: p.name.clone(),
                addrs,
                detect: std::time::Duration::from_micros(p.timeout_us()),
            });
        }
        Ok(TransportConfig {
            cluster: spec.name.clone(),
            digest: spec.digest,
            me,
            incarnation,
            nodes: spec.nodes.iter().map(|n| n.name.clone()).collect(),
            paths,
        })
    }
}

fn resolve_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| "the name resolves to no address".to_string())
}

/// Where a node's TLS material lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA's certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate (PEM), signed by the CA, valid for the node's name.
    pub cert: PathBuf,
    /// This node's private key (PEM, PKCS#8 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files `eternectl ca init` and `eternectl cert issue NODE` write in `dir`:
    /// `ca.crt`, `NODE.crt`, `NODE.key` (default dir [`certs::DEFAULT_TLS_DIR`]).
    pub fn in_dir(dir: impl AsRef<Path>, node: &str) -> TlsFiles {
        let dir = dir.as_ref();
        TlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join(format!("{node}.crt")),
            key: dir.join(format!("{node}.key")),
        }
    }
}

/// What the transport tells its owner.
#[derive(Clone, Debug, PartialEq)]
pub enum Inbound {
    /// A heartbeat datagram from an authenticated peer.
    Heartbeat {
        /// From whom.
        from: NodeId,
        /// On which path.
        path: PathId,
        /// What it said.
        hb: Heartbeat,
    },
    /// A control or consensus message from an authenticated peer.
    Message {
        /// From whom.
        from: NodeId,
        /// On which path it came.
        path: PathId,
        /// What.
        msg: Message,
    },
    /// A connection to `peer` on `path` is confirmed (Hello / HelloAck done).
    PathUp {
        /// The peer.
        peer: NodeId,
        /// The path.
        path: PathId,
    },
    /// The connection to `peer` on `path` is gone (or was replaced by a newer one, which is
    /// then announced by a `PathUp` right after).
    PathDown {
        /// The peer.
        peer: NodeId,
        /// The path.
        path: PathId,
    },
    /// A peer was refused, or refused us: bad CA, a name not in the config, another cluster or
    /// protocol version. Also logged.
    Refused {
        /// The path it tried.
        path: PathId,
        /// Its address.
        remote: SocketAddr,
        /// Why, for the operator.
        why: String,
    },
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The [`TransportConfig`] is inconsistent, or a config could not be turned into one.
    #[error("transport config: {0}")]
    Config(String),
    /// A TLS file is missing or unusable.
    #[error("{}: {reason}", file.display())]
    Tls {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An endpoint could not bind its address.
    #[error("path \"{path}\": cannot bind {addr}: {source}; check that this node has the address and that no other daemon uses the port")]
    Bind {
        /// The path's name.
        path: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_cluster_agrees_with_the_spec() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/two-node-witness.toml");
        let config = ClusterConfig::load(file).unwrap();
        let spec = config.spec();
        let cfg = TransportConfig::from_cluster(&config, "tiebreaker", 5).unwrap();
        assert_eq!(cfg.nodes, ["alpha", "beta", "tiebreaker"]);
        assert_eq!(Some(cfg.me), spec.node_id("tiebreaker"));
        assert_eq!((cfg.cluster.as_str(), cfg.digest), ("db-pair", spec.digest));
        assert_eq!(cfg.incarnation, 5);
        // The disk path is not the transport's; the network paths keep their spec ids.
        assert_eq!(cfg.paths.len(), 2);
        for p in &cfg.paths {
            let sp = &spec.paths[usize::from(p.id)];
            assert_eq!(
                (sp.name.as_str(), sp.kind),
                (p.name.as_str(), PathKind::Network)
            );
        }
        let a = &cfg.paths[0];
        assert_eq!(a.name, "private-a");
        let want: Vec<SocketAddr> = ["10.0.0.1:7400", "10.0.0.2:7400", "10.0.0.9:7400"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(a.addrs, want);
    }

    #[test]
    fn from_cluster_names_an_unknown_node() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/two-node-witness.toml");
        let config = ClusterConfig::load(file).unwrap();
        let err = TransportConfig::from_cluster(&config, "gamma", 1).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"gamma\"") && text.contains("alpha, beta, tiebreaker"),
            "{text}"
        );
    }

    #[test]
    fn tls_files_in_dir() {
        let f = TlsFiles::in_dir("/etc/eterne/tls", "alpha");
        assert_eq!(f.ca, Path::new("/etc/eterne/tls/ca.crt"));
        assert_eq!(f.cert, Path::new("/etc/eterne/tls/alpha.crt"));
        assert_eq!(f.key, Path::new("/etc/eterne/tls/alpha.key"));
    }
}
