//! PeerActor (one per other node) and PathActor (one per heartbeat path to it).
//!
//! What arrives from the transports and the disk path is routed to the PathActor of its
//! (peer, path): it records whether a QUIC connection is up on the path (the NodeActor sends
//! messages on the first connected path, and the status shows it), and feeds every heartbeat
//! and message to the node as [`Input::Heartbeat`] / [`Input::Message`]. Whether a path is
//! *lost* is the failure detector's call inside the node core (design.md §6), which emits
//! `path_lost` and `node_lost` events; the actors only carry.

use std::sync::{Arc, Mutex};

use actix::{
    Actor, Addr, AsyncContext, Context, Handler, Message as ActixMessage, Supervised, Supervisor,
};

use super::node::{Feed, NodeActor};
use super::{guard, ChildFailed, Crashes};
use crate::policy::message::{Heartbeat, Input, Message};
use crate::policy::spec::{NodeId, PathId};

/// Per peer, per path: whether a QUIC connection is up (network paths; the disk path is
/// never "connected"). Shared by the PathActors (writers) and the NodeActor (reader); only
/// ever locked for a moment on the actor thread.
pub type Connected = Arc<Mutex<Vec<Vec<bool>>>>;

/// Reads (or writes) the connection table, whatever a panicked writer left.
pub fn connected_lock(c: &Connected) -> std::sync::MutexGuard<'_, Vec<Vec<bool>>> {
    match c.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

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

/// One peer.
pub struct PeerActor {
    peer: NodeId,
    paths: Vec<Addr<PathActor>>,
    node: Addr<NodeActor>,
    crashes: Crashes,
}

impl PeerActor {
    /// Starts the PeerActor of `peer` (supervised), with one supervised PathActor per path.
    pub fn start(
        peer: NodeId,
        paths: usize,
        node: Addr<NodeActor>,
        connected: Connected,
    ) -> Addr<PeerActor> {
        Supervisor::start(move |ctx: &mut Context<PeerActor>| {
            let me = ctx.address();
            let paths = (0..paths)
                .map(|p| {
                    let node = node.clone();
                    let connected = connected.clone();
                    let parent = me.clone();
                    Supervisor::start(move |_: &mut Context<PathActor>| PathActor {
                        peer,
                        path: p as PathId,
                        node,
                        parent,
                        connected,
                        crashes: Crashes::default(),
                    })
                })
                .collect();
            PeerActor {
                peer,
                paths,
                node,
                crashes: Crashes::default(),
            }
        })
    }
}

impl Actor for PeerActor {
    type Context = Context<Self>;
}

impl Supervised for PeerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(peer = self.peer, "PeerActor restarting");
    }
}

impl Handler<FromPeer> for PeerActor {
    type Result = ();

    fn handle(&mut self, m: FromPeer, ctx: &mut Context<Self>) {
        let paths = &self.paths;
        let r = guard("peer", || match paths.get(usize::from(m.path)) {
            Some(p) => p.do_send(m),
            None => tracing::debug!(path = m.path, "no such path; dropped"),
        });
        if let Err(why) = r {
            self.crashed(why, ctx);
        }
    }
}

impl Handler<ChildFailed> for PeerActor {
    type Result = ();

    /// A PathActor that keeps crashing: the peer cannot be tracked; the node decides.
    fn handle(&mut self, m: ChildFailed, _: &mut Context<Self>) {
        self.node.do_send(m);
    }
}

impl PeerActor {
    fn crashed(&mut self, why: String, ctx: &mut Context<Self>) {
        if self.crashes.record() {
            self.node.do_send(ChildFailed {
                who: format!("PeerActor {}", self.peer),
                why,
            });
        }
        actix::ActorContext::stop(ctx);
    }
}

/// One heartbeat path to one peer.
pub struct PathActor {
    peer: NodeId,
    path: PathId,
    node: Addr<NodeActor>,
    parent: Addr<PeerActor>,
    connected: Connected,
    crashes: Crashes,
}

impl Actor for PathActor {
    type Context = Context<Self>;
}

impl Supervised for PathActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(peer = self.peer, path = self.path, "PathActor restarting");
    }
}

impl Handler<FromPeer> for PathActor {
    type Result = ();

    fn handle(&mut self, m: FromPeer, ctx: &mut Context<Self>) {
        let (peer, path) = (self.peer, self.path);
        let (node, connected) = (&self.node, &self.connected);
        let r = guard("path", || match m.ev {
            PathEvent::Up | PathEvent::Down => {
                let up = matches!(m.ev, PathEvent::Up);
                if let Some(slot) = connected_lock(connected)
                    .get_mut(usize::from(peer))
                    .and_then(|row| row.get_mut(usize::from(path)))
                {
                    *slot = up;
                }
                tracing::info!(peer, path, up, "connection");
            }
            PathEvent::Heartbeat(hb) => node.do_send(Feed(Input::Heartbeat {
                from: peer,
                path,
                hb,
            })),
            PathEvent::Message(msg) => node.do_send(Feed(Input::Message { from: peer, msg })),
        });
        if let Err(why) = r {
            if self.crashes.record() {
                self.parent.do_send(ChildFailed {
                    who: format!("PathActor {peer}/{path}"),
                    why,
                });
            }
            actix::ActorContext::stop(ctx);
        }
    }
}
