//! The control socket: how `eternectl` (and the tests) talk to the local `eterned`.
//!
//! A Unix stream socket (default [`DEFAULT_SOCKET`], mode 0600, root only) speaking JSON
//! lines: the client writes one [`Request`] as one line, the daemon answers one [`Response`]
//! line. `watch` is the exception: the daemon answers with a stream of responses, each
//! carrying a [`Status`] snapshot, until the client hangs up.
//!
//! ```text
//! → {"cmd":"move","group":"web","node":"n2"}
//! ← {"ok":true,"message":"move of web to n2 committed at index 17"}
//! → {"cmd":"standby","node":"n9"}
//! ← {"ok":false,"message":"no node \"n9\" in the config (nodes: n1, n2, n3)"}
//! ```
//!
//! The daemon checks what it can before it submits anything (unknown names, a move to a node
//! that is down or not in the group's list, a witness) and refuses with the reason; what it
//! submits becomes an [`crate::policy::state::AdminCommand`] for its node core, and the answer
//! says whether the cluster committed or refused it. Every request that changes something is
//! written to the event log with who asked (uid and pid from `SO_PEERCRED`).
//!
//! - [`server`]: the daemon's side (accepts connections, hands each request to the node).
//! - [`client`]: a small blocking client for `eternectl` and the tests.
//! - [`status`]: the [`Status`] snapshot, built from a node core, for every front end.

pub mod client;
pub mod server;
pub mod status;

use serde::{Deserialize, Serialize};

/// Where the control socket lives unless `--control-socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/eterne/control.sock";

/// The longest request line the daemon reads; longer lines are refused.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// One request, one JSON line: `{"cmd": "<name>", ...fields}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// A snapshot of what this node knows. (Braces, not a unit variant: serde checks the
    /// fields of a struct variant only, and `{"cmd":"status","x":1}` must be refused too.)
    Status {},
    /// A stream of snapshots, one every `interval_ms` (default 1000, at least 100).
    Watch {
        /// Time between two snapshots.
        #[serde(default)]
        interval_ms: Option<u32>,
    },
    /// Move a group to `node`, or to the next eligible node in its order.
    Move {
        /// The group's name.
        group: String,
        /// The target node's name, if any.
        #[serde(default)]
        node: Option<String>,
    },
    /// Drain a node: its groups move away and nothing is placed on it.
    Standby {
        /// The node's name.
        node: String,
    },
    /// Let a drained node host groups again.
    Unstandby {
        /// The node's name.
        node: String,
    },
    /// Stop managing (on) or resume (off): nothing is started, stopped or moved meanwhile.
    Maintenance {
        /// On or off.
        on: bool,
    },
    /// Return a group to its most preferred eligible node now.
    Failback {
        /// The group's name.
        group: String,
    },
    /// Stop a group everywhere and start it nowhere until it is enabled.
    Disable {
        /// The group's name.
        group: String,
    },
    /// Let a disabled group run again.
    Enable {
        /// The group's name.
        group: String,
    },
    /// Leave a resource to the administrator: monitored, never started or stopped, its
    /// group neither moved nor stopped, until `manage`.
    Unmanage {
        /// The resource's name.
        resource: String,
    },
    /// Give an unmanaged resource back to the cluster.
    Manage {
        /// The resource's name.
        resource: String,
    },
    /// Forget the failure counts of a group (named directly or through one of its resources).
    Clear {
        /// A group or resource name.
        target: String,
    },
    /// Test-only fault injection: close this node's endpoint on a network path, as if its NIC
    /// on that path were unplugged. Refused unless eterned runs with `--test-faults`.
    CutPath {
        /// The path's name.
        path: String,
    },
}

/// Why a request line was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// More than [`MAX_REQUEST_BYTES`] without a newline; the server closes the connection.
    #[error("request line longer than {MAX_REQUEST_BYTES} bytes; refused and closed")]
    TooLong,
    /// Not UTF-8; the server closes the connection.
    #[error("request is not UTF-8 text")]
    NotText,
    /// Not a [`Request`] (bad JSON, an unknown command or field); the connection stays open.
    #[error("cannot read the request: {0}")]
    Malformed(String),
}

impl LineError {
    /// Whether the server closes the connection after refusing the line.
    pub fn closes(&self) -> bool {
        !matches!(self, LineError::Malformed(_))
    }
}

/// Reads one request line (its bytes without the newline): `Ok(None)` for a blank line, which
/// is skipped. Pure and total: the server's only parser, and what `eterne-fuzz` exercises.
pub fn parse_request(line: &[u8]) -> Result<Option<Request>, LineError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(LineError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotText)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| LineError::Malformed(e.to_string()))
}

impl Request {
    /// Whether the request changes something (and so is logged as an `admin_action` event).
    pub fn is_action(&self) -> bool {
        !matches!(self, Request::Status {} | Request::Watch { .. })
    }
}

/// One answer line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was done (or, for status, answered).
    pub ok: bool,
    /// What happened, in one readable line; the reason when refused.
    pub message: String,
    /// The snapshot, for `status` and `watch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Response {
    /// Done.
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: message.into(),
            status: None,
        }
    }

    /// Refused or failed, with the reason.
    pub fn refused(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            message: message.into(),
            status: None,
        }
    }
}

/// What one node knows about the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// This node.
    pub node: String,
    /// The cluster's name.
    pub cluster: String,
    /// Whether this daemon runs as a witness (consensus only).
    pub witness: bool,
    /// The coordinator (raft leader), if known.
    pub coordinator: Option<String>,
    /// The consensus term.
    pub term: u64,
    /// Whether this node holds a lease (may run exclusive groups).
    pub holds_lease: bool,
    /// The whole cluster is in maintenance.
    pub maintenance: bool,
    /// This node's config digest, hex.
    pub digest: String,
    /// Why this node acts on nothing, if it does not: its file is not the config the log was
    /// committed under (it runs no group and coordinates nothing until the files agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_differs: Option<String>,
    /// Why this node's state disk failed, while it does: it holds no lease, runs no exclusive
    /// group and is silent to the others until its raft log can be written again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_disk_failed: Option<String>,
    /// This daemon is draining (SIGTERM) and exits once its groups have moved.
    pub draining: bool,
    /// Every node, the witness included.
    pub nodes: Vec<NodeView>,
    /// Every group.
    pub groups: Vec<GroupView>,
    /// With `[fencing]`: what this node's fence device last answered to its `monitor`
    /// action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_device: Option<FenceDeviceView>,
}

/// This node's fence device, as its last `monitor` check found it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FenceDeviceView {
    /// `unknown` (not checked yet, or monitoring off), `answers` or `fails`.
    pub state: String,
    /// Why the last check failed (empty unless `fails`).
    #[serde(default)]
    pub reason: String,
}

/// One node as this node sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// Whether it is this node.
    pub me: bool,
    /// Whether it is the witness.
    pub witness: bool,
    /// Not suspected (some heartbeat path is up, or it is this node).
    pub alive: bool,
    /// Drained by an administrator (or by its own shutdown).
    pub standby: bool,
    /// Its config digest differs from ours: it takes over nothing until the files agree.
    pub config_mismatch: bool,
    /// The heartbeat paths to it (empty for this node).
    pub paths: Vec<PathView>,
}

/// One heartbeat path to one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathView {
    /// The path's name.
    pub name: String,
    /// `network` or `disk`.
    pub kind: String,
    /// The failure detector's view: `up`, `lost` or `unknown` (never heard).
    pub state: String,
    /// For a network path: whether a QUIC connection is up on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
}

/// One group as this node sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    /// Its name.
    pub name: String,
    /// `exclusive` or `clone`.
    pub mode: String,
    /// Its node list, in priority order.
    pub nodes: Vec<String>,
    /// An administrator disabled it (`eternectl disable`): it runs nowhere until enabled.
    #[serde(default)]
    pub disabled: bool,
    /// Its instances in the replicated state (at most one for an exclusive group).
    pub instances: Vec<InstanceView>,
    /// Failures counted per node (only nodes with a count), from the replicated state.
    pub failures: Vec<(String, u32)>,
    /// Its resources, with this node's view of them.
    pub resources: Vec<ResourceView>,
}

/// One instance of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    /// Where.
    pub node: String,
    /// The fencing token.
    pub epoch: u64,
    /// `active` or `stopping` (the replicated decision).
    pub phase: String,
    /// The status of the instance as run here (only on that node): `starting`, `running`,
    /// `stopping`, `stopped`, `cannot_run`, `stop_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One resource, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceView {
    /// Its name.
    pub name: String,
    /// Its agent type.
    pub kind: String,
    /// Its state here if this node runs an instance of its group (`active`, `starting`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Failures of this resource seen on this node since this daemon started.
    pub failures: u32,
    /// An administrator took it out of the cluster's hands (`eternectl unmanage`).
    #[serde(default)]
    pub unmanaged: bool,
    /// Its last failure on this node since the daemon started or its group was cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<FailureView>,
}

/// A resource's last failure on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    /// The operation: `start`, `monitor_quick` (also a process that exited), `monitor_deep`,
    /// `probe`, `stop`.
    pub action: String,
    /// Why, as the agent said (an OCF agent's exit code name and last words).
    pub reason: String,
    /// How long ago.
    pub seconds_ago: u64,
}

/// The snake_case name of a serde-serializable unit enum value (e.g. `GroupStatus::CannotRun`
/// → `cannot_run`), for status fields and events.
pub fn snake<T: std::fmt::Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    let mut out = String::with_capacity(text.len() + 4);
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json_lines() {
        let r: Request = serde_json::from_str(r#"{"cmd":"move","group":"web"}"#).unwrap();
        assert_eq!(
            r,
            Request::Move {
                group: "web".into(),
                node: None
            }
        );
        let r: Request = serde_json::from_str(r#"{"cmd":"status"}"#).unwrap();
        assert_eq!(r, Request::Status {});
        let text = serde_json::to_string(&Request::Maintenance { on: true }).unwrap();
        assert_eq!(text, r#"{"cmd":"maintenance","on":true}"#);
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }

    /// A typo is refused naming the field, never read as a request without it: `nod` once
    /// moved a group to the next node, and `dry_run` was ignored and the move done.
    #[test]
    fn unknown_fields_are_refused_naming_the_field() {
        for (line, field) in [
            (r#"{"cmd":"move","group":"web","nod":"n2"}"#, "nod"),
            (r#"{"cmd":"move","group":"web","dry_run":true}"#, "dry_run"),
            (r#"{"cmd":"status","verbose":true}"#, "verbose"),
            (r#"{"cmd":"maintenance","on":true,"force":1}"#, "force"),
        ] {
            let e = serde_json::from_str::<Request>(line)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("unknown field `{field}`")),
                "{line}: {e}"
            );
        }
    }

    #[test]
    fn a_line_is_blank_a_request_or_refused_with_whether_it_closes() {
        assert_eq!(parse_request(b"  \t"), Ok(None));
        assert_eq!(
            parse_request(br#"{"cmd":"status"}"#),
            Ok(Some(Request::Status {}))
        );
        assert_eq!(parse_request(b"\xff\xfe"), Err(LineError::NotText));
        let long = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(parse_request(&long), Err(LineError::TooLong));
        let bad = parse_request(b"{\"cmd\":\"reboot\"}").unwrap_err();
        assert!(matches!(bad, LineError::Malformed(_)) && !bad.closes());
        assert!(LineError::NotText.closes() && LineError::TooLong.closes());
    }

    #[test]
    fn snake_names() {
        assert_eq!(
            snake(&crate::policy::group::GroupStatus::CannotRun),
            "cannot_run"
        );
        assert_eq!(
            snake(&crate::policy::group::GroupStatus::Running),
            "running"
        );
    }
}
