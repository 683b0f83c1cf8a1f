//! PeerActor (one per other node) and PathActor (one per heartbeat path to it).
//!
//! What arrives from the transports and the disk path is routed to the PathActor of its
//! (peer, path): it tells the node when a QUIC connection on the path comes up or goes down
//! ([`Connection`]: the NodeActor sends messages on the first connected path, and the status
//! shows it), and feeds every heartbeat and message to the node as [`Input::Heartbeat`] /
//! [`Input::Message`]. Whether a path is
//! *lost* is the failure detector's call inside the node core (design.md §6), which emits
//! `path_lost` and `node_lost` events; the actors only carry.

use actix::{Actor, Addr, AsyncContext, Context, Handler, Recipient, Supervised, Supervisor};

use super::messages::{ChildFailed, Connection, Feed, FromPeer, PathEvent};
use super::{guard, Crashes};
use crate::policy::message::Input;
use crate::policy::spec::{NodeId, PathId};

/// Where a PeerActor and its PathActors report: the node core's inputs, the connection
/// changes, and the node's escalations.
#[derive(Clone)]
pub struct Up {
    /// Inputs for the node core (heartbeats, messages).
    pub feed: Recipient<Feed>,
    /// Connections that came up or went down.
    pub connection: Recipient<Connection>,
    /// The node, told when this peer's actor crashes too often.
    pub failed: Recipient<ChildFailed>,
}

/// One peer.
pub struct PeerActor {
    peer: NodeId,
    paths: Vec<Addr<PathActor>>,
    up: Up,
    crashes: Crashes,
}

impl PeerActor {
    /// Starts the PeerActor of `peer` (supervised), with one supervised PathActor per path.
    pub fn start(peer: NodeId, paths: usize, up: Up) -> Addr<PeerActor> {
        Supervisor::start(move |ctx: &mut Context<PeerActor>| {
            let me = ctx.address().recipient();
            let paths = (0..paths)
                .map(|p| {
                    let up = up.clone();
                    let parent = me.clone();
                    Supervisor::start(move |_: &mut Context<PathActor>| PathActor {
                        peer,
                        path: p as PathId,
                        feed: up.feed,
                        connection: up.connection,
                        parent,
                        crashes: Crashes::default(),
                    })
                })
                .collect();
            PeerActor {
                peer,
                paths,
                up,
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
        self.up.failed.do_send(m);
    }
}

impl PeerActor {
    fn crashed(&mut self, why: String, ctx: &mut Context<Self>) {
        if self.crashes.record() {
            self.up.failed.do_send(ChildFailed {
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
    feed: Recipient<Feed>,
    connection: Recipient<Connection>,
    parent: Recipient<ChildFailed>,
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
        let (node, connection) = (&self.feed, &self.connection);
        let r = guard("path", || match m.ev {
            PathEvent::Up | PathEvent::Down => {
                let up = matches!(m.ev, PathEvent::Up);
                tracing::info!(peer, path, up, "connection");
                connection.do_send(Connection { peer, path, up });
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
