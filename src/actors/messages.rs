//! Every message the actors of `eterned` exchange, in one place (after mini-redis's single
//! dispatch module): reading this file tells who can say what to whom.
//!
//! The tree is one-way. A child is given [`Recipient`]s for the few messages it sends up (an
//! input for the node core, an escalation for its parent), never its parent's `Addr`, so no
//! child module names its parent's type.
//!
//! | message | from → to |
//! |---|---|
//! | [`Feed`] | PathActor, ResourceActor, the agents' exit pumps → NodeActor (an [`Input`] for the core) |
//! | [`Connection`] | PathActor → NodeActor (a QUIC connection on a path came up or went down) |
//! | [`FromPeer`] | the inbound pump → PeerActor → PathActor |
//! | [`RunOp`] | NodeActor → GroupActor → ResourceActor |
//! | [`ResourceCrashed`] | ResourceActor → GroupActor |
//! | [`ChildFailed`] | GroupActor, PeerActor → NodeActor; PathActor → PeerActor |
//! | [`Control`], [`Terminate`], [`PeerRefused`], [`PeerInboxes`] | the daemon's tasks → NodeActor |

use actix::{Message as ActixMessage, Recipient};

use crate::control::server::Call;
use crate::policy::group::AgentOp;
use crate::policy::message::{Heartbeat, Input, Message};
use crate::policy::spec::{NodeId, PathId, ResourceId};

/// An input for the node core.
#[derive(ActixMessage, Debug)]
#[rtype(result = "()")]
pub struct Feed(pub Input);

/// A QUIC connection to `peer` on `path` came up (`up`) or went down.
#[derive(ActixMessage, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Connection {
    /// The peer.
    pub peer: NodeId,
    /// The path.
    pub path: PathId,
    /// Up or down.
    pub up: bool,
}

/// A control request.
#[derive(ActixMessage, Debug)]
#[rtype(result = "()")]
pub struct Control(pub Call);

/// SIGTERM (or SIGINT): hand the groups over and exit.
#[derive(ActixMessage, Debug)]
#[rtype(result = "()")]
pub struct Terminate;

/// SIGHUP: open the event log again by its path (log rotation).
#[derive(ActixMessage, Debug)]
#[rtype(result = "()")]
pub struct ReopenLog;

/// A peer was refused by the transport (bad CA, unknown name, …).
#[derive(ActixMessage, Debug)]
#[rtype(result = "()")]
pub struct PeerRefused {
    /// The path it tried.
    pub path: PathId,
    /// Its address.
    pub remote: std::net::SocketAddr,
    /// Why.
    pub why: String,
}

/// Asks the NodeActor for its PeerActors' inboxes (by node id), for the inbound pump.
#[derive(ActixMessage, Debug)]
#[rtype(result = "Vec<Option<Recipient<FromPeer>>>")]
pub struct PeerInboxes;

/// Something that happened on one path to one peer.
#[derive(Debug)]
pub enum PathEvent {
    /// A connection came up (Hello / HelloAck done).
    Up,
    /// The connection went down.
    Down,
    /// A heartbeat arrived.
    Heartbeat(Heartbeat),
    /// A message arrived.
    Message(Message),
}

/// What arrived from a peer on a path, for its PeerActor.
#[derive(ActixMessage, Debug)]
#[rtype(result = "()")]
pub struct FromPeer {
    /// The path.
    pub path: PathId,
    /// What.
    pub ev: PathEvent,
}

/// Run this op.
#[derive(ActixMessage, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct RunOp(pub AgentOp);

/// A resource's actor escalated its crashes to its group.
#[derive(ActixMessage, Debug, Clone)]
#[rtype(result = "()")]
pub struct ResourceCrashed {
    /// Which resource.
    pub resource: ResourceId,
    /// The last panic.
    pub why: String,
}

/// A child tells its parent that it crashed too often ([`super::Crashes`]).
#[derive(ActixMessage, Debug, Clone)]
#[rtype(result = "()")]
pub struct ChildFailed {
    /// Which child, for the logs.
    pub who: String,
    /// The last panic message.
    pub why: String,
}
