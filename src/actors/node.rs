//! NodeActor: owns the [`NodeCore`] (consensus included: there is no separate
//! ConsensusActor, see [`super`]), arms its one timer at `next_timeout_us`, and carries out its
//! effects exactly as the simulator does:
//!
//! | effect | action |
//! |---|---|
//! | `Heartbeat { path, hb }` | the path's QUIC transport sends a datagram to every peer; on the disk path, [`DiskPath::heartbeat`] |
//! | `Send { to, paths, msg }` | on each path of `paths` (the core's choice, `policy::route`): a network path's QUIC transport, or [`DiskPath::send`] |
//! | `Persist { batch, then }` | to the raft log writer thread; once durable, `then` is sent and `Input::Persisted` fed; a batch it cannot write feeds `Input::StateDiskFailed`, and `Input::StateDiskRecovered` once it could |
//! | `Agent(op)` | to the GroupActor of `op.group` |
//! | `Watchdog { deadline_us }` | the monitor process is told (with the lease and the applied index) before the step's other effects go out, see [`super::monitor`] |
//! | `Event(ev)` | a JSON line in the event log and a `tracing` line; answers pending control requests |
//!
//! It also answers control requests ([`crate::control`]), drains the node on SIGTERM and
//! sets the civil time every minute.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Recipient, SpawnHandle};
use serde_json::json;
use tokio::sync::oneshot;

use super::events::{describe, obj, EventLog, Names};
use super::group::{self, GroupActor};
use super::messages::{
    ChildFailed, Connection, Control, Feed, FromPeer, PeerInboxes, PeerRefused, ReopenLog, RunOp,
    Terminate,
};
use super::monitor::Monitor;
use super::peer::{self, PeerActor};
use super::shutdown;
use super::writer::{Writer, Written};
use super::{guard, Clock};
use crate::control::server::{Call, Caller};
use crate::control::status;
use crate::control::{Request, Response, Status};
use crate::monitor::link::{mono_ns, Armed, Inherited};
use crate::policy::admin::AdminRequest;
use crate::policy::drain::{Drain, DrainStep, Undrain};
use crate::policy::message::{Effect, Event, FenceOutcome, Input, Message, PathSet};
use crate::policy::node::NodeCore;
use crate::policy::schedule::CivilTime;
use crate::policy::spec::{ClusterSpec, GroupId, NodeId, PathId, PathKind};
use crate::policy::state::{AdminCommand, Command};
use crate::resources::fence::FenceDevice;
use crate::storage::FileLog;
use crate::transport::disk::DiskPath;
use crate::transport::Transport;

/// How long a control request waits for its command to be committed.
const COMMIT_WAIT: Duration = Duration::from_secs(5);
/// How often the drain (SIGTERM) and the undrain (next start) look at their progress.
const DRAIN_TICK: Duration = Duration::from_millis(50);
/// Beyond the sum of the stop timeouts, how long a drain may wait for the coordinator.
const DRAIN_SLACK: Duration = Duration::from_secs(10);

/// Everything the NodeActor is built from.
pub struct NodeSetup {
    /// The resolved config.
    pub spec: Arc<ClusterSpec>,
    /// This node.
    pub me: NodeId,
    /// Witness: consensus only, no resources.
    pub witness: bool,
    /// The node core.
    pub core: NodeCore,
    /// The durable raft log the core's `Persist` batches go to (by the writer thread).
    pub log: FileLog,
    /// The monotonic clock the core runs on.
    pub clock: Clock,
    /// One transport per network path, indexed by path id (`None` for the disk path).
    pub nets: Vec<Option<Transport>>,
    /// The disk path, if the config has one, and its id.
    pub disk: Option<(PathId, DiskPath)>,
    /// The event log.
    pub events: EventLog,
    /// The core's handle on its monitor process.
    pub monitor: Monitor,
    /// The drain marker (`<state dir>/drained`): present if the last stop was a drain.
    pub drain_marker: PathBuf,
    /// `raft/rejoin`: removed once a discarded log caught up (`Event::Rejoined`).
    pub rejoin_marker: PathBuf,
    /// Whether fault injection requests (`cut_path`) are allowed.
    pub test_faults: bool,
    /// Per group: its resources' agents if this node may run the group.
    pub groups: Vec<Option<Vec<super::group::ResourceSetup>>>,
    /// `[fencing]`: the fence device this node runs when, as the coordinator, it fences.
    pub fence: Option<FenceDevice>,
}

struct Pending {
    cmd: AdminCommand,
    what: String,
    reply: oneshot::Sender<Response>,
    until: Instant,
}

/// The node actor. See the module docs.
pub struct NodeActor {
    spec: Arc<ClusterSpec>,
    me: NodeId,
    witness: bool,
    core: NodeCore,
    /// The raft log, until `started` hands it to the writer thread.
    log: Option<FileLog>,
    writer: Option<Writer>,
    clock: Clock,
    nets: Vec<Option<Transport>>,
    disk: Option<(PathId, DiskPath)>,
    cut: Vec<bool>,
    events: EventLog,
    monitor: Monitor,
    /// The last watchdog deadline the core asked for (its clock).
    deadline_us: Option<u64>,
    /// CLOCK_MONOTONIC ns at this core's clock's 0.
    mono_offset_ns: i128,
    drain_marker: PathBuf,
    rejoin_marker: PathBuf,
    test_faults: bool,
    setups: Vec<Option<Vec<super::group::ResourceSetup>>>,
    fence: Option<Arc<FenceDevice>>,
    groups: Vec<Option<Addr<GroupActor>>>,
    /// The PeerActors, by node id (None for this node); the inbound pumps route to them.
    peers: Vec<Option<Addr<PeerActor>>>,
    timer: Option<(u64, SpawnHandle)>,
    pending: Vec<Pending>,
    drain: Option<Drain>,
    undrain: Option<Undrain>,
    civil_minute: u64,
}

impl NodeActor {
    /// The actor, not yet started.
    pub fn new(s: NodeSetup) -> NodeActor {
        let n = s.spec.nodes.len();
        let undrain = s.drain_marker.exists().then(|| Undrain::new(s.me));
        NodeActor {
            cut: vec![false; s.spec.paths.len()],
            groups: (0..s.spec.groups.len()).map(|_| None).collect(),
            peers: (0..n).map(|_| None).collect(),
            spec: s.spec,
            me: s.me,
            witness: s.witness,
            core: s.core,
            log: Some(s.log),
            writer: None,
            clock: s.clock,
            nets: s.nets,
            disk: s.disk,
            events: s.events,
            monitor: s.monitor,
            deadline_us: None,
            mono_offset_ns: i128::from(mono_ns()) - i128::from(s.clock.now_us()) * 1000,
            drain_marker: s.drain_marker,
            rejoin_marker: s.rejoin_marker,
            test_faults: s.test_faults,
            setups: s.groups,
            fence: s.fence.map(Arc::new),
            timer: None,
            pending: Vec::new(),
            drain: None,
            undrain,
            civil_minute: 0,
        }
    }

    /// Runs `f` on the core, then carries out its effects and re-arms the timer. A panic in
    /// the core is not survivable in place: the core exits for its monitor process to
    /// restart it.
    fn step(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut NodeCore, u64)) {
        let now = self.clock.now_us();
        let core = &mut self.core;
        if let Err(why) = guard("node", || f(core, now)) {
            shutdown::crash(
                &mut self.events,
                obj(json!({"actor": "node", "panic": why})),
            );
        }
        self.carry_out(ctx);
    }

    fn carry_out(&mut self, ctx: &mut Context<Self>) {
        let effects: Vec<Effect> = self.core.drain_effects().collect();
        self.tell_monitor(&effects);
        for e in effects {
            match e {
                Effect::Heartbeat { path, hb } => self.heartbeat(path, hb),
                Effect::Send { to, paths, msg } => self.send(to, paths, msg),
                Effect::Persist { batch, then } => match &self.writer {
                    Some(w) => w.submit(*batch, then),
                    None => tracing::error!("no raft log writer: batch dropped"),
                },
                Effect::Agent(op) => match self.groups.get(usize::from(op.group)) {
                    Some(Some(g)) => g.do_send(RunOp(op)),
                    _ => {
                        tracing::error!(
                            group = op.group,
                            "agent op for a group this node does not run; failed"
                        );
                        ctx.address().do_send(Feed(Input::AgentResult {
                            group: op.group,
                            resource: op.resource,
                            op: op.op,
                            outcome: crate::policy::group::Outcome::Failed,
                            reason: "this node does not run the group".into(),
                        }));
                    }
                },
                Effect::Watchdog { deadline_us } => tracing::debug!(deadline_us, "watchdog"),
                Effect::Fence { target, attempt } => self.fence(target, attempt, ctx),
                Effect::Event(ev) => self.event(ev),
            }
        }
        self.arm_timer(ctx);
    }

    /// Runs the fence agent against `target` on a worker thread (never this one: a fence may
    /// take a minute, heartbeats may not wait) and feeds its outcome back, exactly once: a
    /// panic in the run is a failed fence.
    fn fence(&self, target: NodeId, attempt: u32, ctx: &mut Context<Self>) {
        let addr = ctx.address();
        let name = Names(&self.spec).node(target);
        let feed = move |outcome| {
            addr.do_send(Feed(Input::FenceResult {
                target,
                attempt,
                outcome,
            }))
        };
        let Some(dev) = self.fence.clone() else {
            feed(FenceOutcome::failed(
                "",
                "this node has no [fencing] device".into(),
            ));
            return;
        };
        let action = dev.action().as_str();
        let run = tokio::spawn(async move { dev.fence(&name).await });
        tokio::spawn(async move {
            let outcome = match run.await {
                Ok(run) => FenceOutcome::from(run),
                Err(e) => FenceOutcome::failed(action, format!("the fence task ended: {e}")),
            };
            feed(outcome);
        });
    }

    /// Runs the fence device's `monitor` action now and then every `monitor_interval_ms`,
    /// one run at a time, off this thread, feeding each outcome to the core; ends with the
    /// actor.
    fn watch_fence_device(&self, addr: Addr<NodeActor>) {
        let Some(dev) = self.fence.clone() else {
            return;
        };
        let Some(every) = dev.monitor_every() else {
            return;
        };
        tokio::spawn(async move {
            while addr.connected() {
                let outcome = FenceOutcome::from(dev.monitor().await);
                addr.do_send(Feed(Input::FenceDeviceChecked { outcome }));
                tokio::time::sleep(every).await;
            }
        });
    }

    /// Before anything of this step goes out: the monitor learns by when exclusive resources
    /// must be down, and the lease with the index it was used at (a report sent after a stop
    /// must never leave the monitor with an older index to hand to the next core).
    fn tell_monitor(&mut self, effects: &[Effect]) {
        for e in effects {
            if let Effect::Watchdog { deadline_us } = e {
                self.deadline_us = *deadline_us;
            }
        }
        // A millisecond early, for the rounding of the offset.
        let ns = |us: u64| {
            let v = self.mono_offset_ns + i128::from(us) * 1000 - 1_000_000;
            u64::try_from(v.max(0)).unwrap_or(u64::MAX)
        };
        let budget_us = u64::from(self.spec.timing.stop_budget_ms) * 1000;
        let now = self.clock.now_us();
        let until = self.core.lease_until_us();
        let armed = self.deadline_us.map(|d| Armed {
            deadline_ns: ns(d),
            stop_at_ns: ns(d.saturating_sub(budget_us)),
            lease: (until > now).then(|| Inherited {
                until_ns: ns(until),
                applied: self.core.applied(),
            }),
        });
        self.monitor.arm(armed);
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let next = self.core.next_timeout_us();
        if self.timer.as_ref().is_some_and(|(at, _)| *at == next) {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let h = ctx.run_later(self.clock.until(next), |act, ctx| {
            act.timer = None;
            act.step(ctx, |core, now| core.handle_timeout(now));
        });
        self.timer = Some((next, h));
    }

    fn heartbeat(&self, path: PathId, hb: crate::policy::message::Heartbeat) {
        if self.cut.get(usize::from(path)).copied().unwrap_or(true) {
            return;
        }
        if let Some((p, d)) = &self.disk {
            if *p == path {
                d.heartbeat(hb);
                return;
            }
        }
        if let Some(Some(t)) = self.nets.get(usize::from(path)) {
            t.heartbeat(path, hb);
        }
    }

    /// `msg` to `to` on each of `paths`, as the core chose them.
    fn send(&self, to: NodeId, paths: PathSet, msg: Message) {
        for p in paths.iter() {
            if let Some((d, disk)) = &self.disk {
                if *d == p {
                    disk.send(to, &msg);
                    continue;
                }
            }
            // A path cut by a test fault has no transport any more: dropped.
            if let Some(Some(t)) = self.nets.get(usize::from(p)) {
                t.send(to, msg.clone());
            }
        }
    }

    fn event(&mut self, ev: Event) {
        let (name, fields) = describe(&self.spec, &ev);
        match &ev {
            Event::ConfigMismatch { peer, digest } => {
                tracing::warn!(peer = %Names(&self.spec).node(*peer), digest = %format!("{digest:#018x}"), ours = %format!("{:#018x}", self.spec.digest), "config digest differs: that node takes over nothing until the files agree");
            }
            Event::Rejoined { through } => {
                let dir = self.rejoin_marker.parent().unwrap_or(&self.rejoin_marker);
                match crate::storage::rejoin_done(dir) {
                    Ok(()) => {
                        tracing::info!(through, "the discarded raft log is caught up: voting again")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "caught up, but the rejoin marker stays: this node will not vote after a restart until it catches up again")
                    }
                }
            }
            Event::ConfigDiffers { why: Some(why) } => {
                tracing::error!(%why, "this node takes nothing over and runs no group until its cluster.toml is the committed one");
            }
            Event::Committed {
                index,
                cmd: Command::Admin(a),
            } => {
                if let Some(i) = self.pending.iter().position(|p| p.cmd == *a) {
                    let p = self.pending.swap_remove(i);
                    let _ = p.reply.send(Response::ok(format!(
                        "{} committed at index {index}",
                        p.what
                    )));
                }
                if *a
                    == (AdminCommand::Standby {
                        node: self.me,
                        on: false,
                    })
                    && self.undrain.is_some()
                {
                    self.undrain = None;
                    let _ = std::fs::remove_file(&self.drain_marker);
                    self.events.write(
                        "undrained",
                        obj(json!({"why": "the last stop was a drain; back out of standby"})),
                    );
                }
            }
            Event::AdminRefused { cmd, why } => {
                if let Some(i) = self.pending.iter().position(|p| p.cmd == *cmd) {
                    let p = self.pending.swap_remove(i);
                    let _ = p.reply.send(Response::refused(format!(
                        "{} refused by the cluster: {why}",
                        p.what
                    )));
                }
            }
            _ => {}
        }
        self.events.write(name, fields);
    }

    // ---- control requests ----

    fn control(&mut self, call: Call, ctx: &mut Context<Self>) {
        let Call { req, caller, reply } = call;
        if req.is_action() {
            self.events.write(
                "admin_action",
                obj(json!({"request": req, "uid": caller.uid, "pid": caller.pid})),
            );
        }
        match req {
            Request::Status {} | Request::Watch { .. } => {
                let _ = reply.send(Response {
                    ok: true,
                    message: String::new(),
                    status: Some(self.status()),
                });
            }
            Request::CutPath { path } => {
                let _ = reply.send(self.cut_path(&path));
            }
            other => match self.admin_command(&other) {
                Err(why) => {
                    self.events.write(
                        "admin_refused",
                        obj(json!({"request": other, "why": why, "uid": caller.uid})),
                    );
                    let _ = reply.send(Response::refused(why));
                }
                Ok((cmd, what)) => self.submit(cmd, what, reply, caller, ctx),
            },
        }
    }

    fn submit(
        &mut self,
        cmd: AdminCommand,
        what: String,
        reply: oneshot::Sender<Response>,
        _caller: Caller,
        ctx: &mut Context<Self>,
    ) {
        self.pending.push(Pending {
            cmd: cmd.clone(),
            what,
            reply,
            until: Instant::now() + COMMIT_WAIT,
        });
        self.step(ctx, |core, now| core.handle(Input::Admin(cmd), now));
        ctx.run_later(COMMIT_WAIT, |act, _| act.expire_pending());
    }

    fn expire_pending(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].until <= now {
                let p = self.pending.swap_remove(i);
                let _ = p.reply.send(Response::refused(format!(
                    "{}: submitted, but not committed within {} s (no quorum, or the coordinator refused it: see its event log)",
                    p.what,
                    COMMIT_WAIT.as_secs()
                )));
            } else {
                i += 1;
            }
        }
    }

    /// Turns a request into an admin command: the words become an [`AdminRequest`], and the
    /// node core resolves and checks it (`policy::admin`).
    fn admin_command(&self, req: &Request) -> Result<(AdminCommand, String), String> {
        let req = match req {
            Request::Move { group, node } => AdminRequest::Move {
                group,
                node: node.as_deref(),
            },
            Request::Standby { node } => AdminRequest::Standby { node, on: true },
            Request::Unstandby { node } => AdminRequest::Standby { node, on: false },
            Request::Maintenance { on } => AdminRequest::Maintenance { on: *on },
            Request::Failback { group } => AdminRequest::Failback { group },
            Request::Clear { target } => AdminRequest::Clear { target },
            Request::Disable { group } => AdminRequest::Disable { group, on: true },
            Request::Unmanage { resource } => AdminRequest::Manage {
                resource,
                on: false,
            },
            Request::Manage { resource } => AdminRequest::Manage { resource, on: true },
            Request::Enable { group } => AdminRequest::Disable { group, on: false },
            Request::Status {} | Request::Watch { .. } | Request::CutPath { .. } => {
                return Err("not an admin command".into())
            }
        };
        let r = self.core.resolve_admin(req)?;
        Ok((r.cmd, r.what))
    }

    fn cut_path(&mut self, name: &str) -> Response {
        if !self.test_faults {
            return Response::refused(
                "cut_path is a test fault; eterned runs without --test-faults",
            );
        }
        let Some(p) = self
            .spec
            .paths
            .iter()
            .position(|p| p.name == name && p.kind == PathKind::Network)
        else {
            return Response::refused(format!("no network path \"{name}\""));
        };
        self.cut[p] = true;
        let now = self.clock.now_us();
        for peer in 0..self.spec.nodes.len() as NodeId {
            let down = Input::Connection {
                peer,
                path: p as PathId,
                up: false,
            };
            self.core.handle(down, now);
        }
        if let Some(t) = self.nets.get_mut(p).and_then(Option::take) {
            actix::spawn(async move { t.shutdown().await });
        }
        self.events
            .write("test_fault", obj(json!({"cut_path": name})));
        Response::ok(format!("path {name} cut on this node"))
    }

    // ---- status ----

    fn status(&self) -> Status {
        status::build(
            &self.core,
            &status::Shell {
                witness: self.witness,
                draining: self.drain.is_some(),
                now_us: self.clock.now_us(),
            },
        )
    }

    // ---- drain on SIGTERM, undrain on the next start ----

    /// One look at the drain (or the undrain): the decision is `policy::drain`'s.
    fn drain_tick(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now_us();
        let view = self.core.drain_view();
        let submit = if let Some(d) = &mut self.drain {
            match d.step(view, now) {
                DrainStep::Done => {
                    self.events.write("shutdown", obj(json!({"drained": true})));
                    self.exit(0, ctx);
                    return;
                }
                DrainStep::GaveUp => {
                    self.events.write(
                        "shutdown",
                        obj(json!({"drained": false, "why": "the drain did not finish in time"})),
                    );
                    self.exit(shutdown::EXIT_DRAIN_GAVE_UP, ctx);
                    return;
                }
                DrainStep::Submit(cmd) => Some(cmd),
                DrainStep::Wait => None,
            }
        } else if let Some(u) = &mut self.undrain {
            u.step(view.coordinator_known, now)
        } else {
            None
        };
        if let Some(cmd) = submit {
            self.step(ctx, |core, now| core.handle(Input::Admin(cmd), now));
        }
    }

    /// The orderly end (see [`shutdown`]): this actor stops, then everything it opened.
    fn exit(&mut self, code: i32, ctx: &mut Context<Self>) {
        let teardown = shutdown::Teardown {
            nets: self.nets.iter_mut().filter_map(Option::take).collect(),
            disk: self.disk.take().map(|(_, d)| d),
        };
        self.monitor.exiting(code);
        ctx.stop();
        shutdown::stop(teardown, code);
    }

    fn civil_tick(&mut self, ctx: &mut Context<Self>) {
        let Some((t, minute)) = local_civil_time() else {
            return;
        };
        if minute != self.civil_minute {
            self.civil_minute = minute;
            self.core.set_civil_time(t, minute);
            self.step(ctx, |core, now| core.handle_timeout(now));
        }
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Mailboxes: inputs arrive in bursts (a heartbeat from every peer on every path).
        ctx.set_mailbox_capacity(4096);
        // The monitor hears from the actor thread itself: a wedged thread falls silent.
        let every = super::monitor::alive_every(self.spec.timing.stop_budget_ms);
        ctx.run_interval(every, |act, _| act.monitor.alive());
        let me = ctx.address();
        self.watch_fence_device(me.clone());
        if let Some(log) = self.log.take() {
            let to = me.clone();
            match Writer::start(log, move |w| to.do_send(w)) {
                Ok(w) => self.writer = Some(w),
                Err(e) => shutdown::crash(
                    &mut self.events,
                    obj(
                        json!({"actor": "node", "why": format!("cannot start the raft log writer: {e}")}),
                    ),
                ),
            }
        }
        let group_up = group::Up {
            feed: me.clone().recipient(),
            failed: me.clone().recipient(),
        };
        for (g, setup) in self.setups.iter_mut().enumerate() {
            if let Some(resources) = setup.take() {
                self.groups[g] = Some(GroupActor::start(
                    g as GroupId,
                    self.spec.groups[g].name.clone(),
                    resources,
                    group_up.clone(),
                    self.clock,
                ));
            }
        }
        let peer_up = peer::Up {
            feed: me.clone().recipient(),
            connection: me.clone().recipient(),
            failed: me.recipient(),
        };
        for n in 0..self.spec.nodes.len() {
            if n != usize::from(self.me) {
                self.peers[n] = Some(PeerActor::start(
                    n as NodeId,
                    self.spec.paths.len(),
                    peer_up.clone(),
                ));
            }
        }
        self.civil_tick(ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.civil_tick(ctx));
        ctx.run_interval(DRAIN_TICK, |act, ctx| act.drain_tick(ctx));
        if self.undrain.is_some() {
            self.events.write(
                "undrain_pending",
                obj(json!({"why": "the last stop was a drain; leaving standby once joined"})),
            );
        }
        self.step(ctx, |core, now| core.handle_timeout(now));
    }
}

impl Handler<Feed> for NodeActor {
    type Result = ();

    fn handle(&mut self, Feed(input): Feed, ctx: &mut Context<Self>) {
        self.step(ctx, |core, now| core.handle(input, now));
    }
}

impl Handler<PeerInboxes> for NodeActor {
    type Result = actix::MessageResult<PeerInboxes>;

    fn handle(&mut self, _: PeerInboxes, _: &mut Context<Self>) -> Self::Result {
        let inboxes: Vec<Option<Recipient<FromPeer>>> = self
            .peers
            .iter()
            .map(|p| p.clone().map(Addr::recipient))
            .collect();
        actix::MessageResult(inboxes)
    }
}

impl Handler<Written> for NodeActor {
    type Result = ();

    fn handle(&mut self, w: Written, ctx: &mut Context<Self>) {
        match w {
            Written::Durable { number, then } => {
                for (to, paths, msg) in then {
                    self.send(to, paths, msg);
                }
                self.step(ctx, |core, now| {
                    core.handle(Input::Persisted { number }, now)
                });
            }
            Written::Failed { number, why } => {
                tracing::error!(batch = number, %why, "cannot write the raft log: this node fails as a whole until it can (tried every second)");
                self.step(ctx, |core, now| {
                    core.handle(Input::StateDiskFailed { why }, now)
                });
            }
            Written::Recovered { number, tries } => {
                tracing::warn!(
                    batch = number,
                    tries,
                    "the raft log is written again: this node rejoins"
                );
                self.step(ctx, |core, now| core.handle(Input::StateDiskRecovered, now));
            }
        }
    }
}

impl Handler<Connection> for NodeActor {
    type Result = ();

    fn handle(&mut self, c: Connection, ctx: &mut Context<Self>) {
        // A path cut by a test fault stays down whatever its last connection says.
        let cut = self.cut.get(usize::from(c.path)).copied().unwrap_or(true);
        let input = Input::Connection {
            peer: c.peer,
            path: c.path,
            up: c.up && !cut,
        };
        self.step(ctx, |core, now| core.handle(input, now));
    }
}

impl Handler<Control> for NodeActor {
    type Result = ();

    fn handle(&mut self, Control(call): Control, ctx: &mut Context<Self>) {
        self.control(call, ctx);
    }
}

impl Handler<PeerRefused> for NodeActor {
    type Result = ();

    fn handle(&mut self, m: PeerRefused, _: &mut Context<Self>) {
        let path = Names(&self.spec).path(m.path);
        self.events.write(
            "peer_refused",
            obj(json!({"path": path, "remote": m.remote.to_string(), "why": m.why})),
        );
    }
}

impl Handler<ChildFailed> for NodeActor {
    type Result = ();

    /// A child of the node crashed beyond its restart budget: exit for the monitor process
    /// to restart the daemon (resources survive and are adopted).
    fn handle(&mut self, m: ChildFailed, _: &mut Context<Self>) {
        shutdown::crash(
            &mut self.events,
            obj(
                json!({"actor": m.who, "panic": m.why, "why": "crashed too often; the daemon exits to be restarted"}),
            ),
        );
    }
}

impl Handler<ReopenLog> for NodeActor {
    type Result = ();

    fn handle(&mut self, _: ReopenLog, _: &mut Context<Self>) {
        self.events.reopen();
    }
}

impl Handler<Terminate> for NodeActor {
    type Result = ();

    fn handle(&mut self, _: Terminate, ctx: &mut Context<Self>) {
        if self.drain.is_some() {
            tracing::info!("already draining");
            return;
        }
        let member = self.spec.groups.iter().any(|g| g.nodes.contains(&self.me));
        if self.witness || !member {
            self.events.write(
                "shutdown",
                obj(json!({"drained": true, "why": "holds no resources"})),
            );
            self.exit(0, ctx);
            return;
        }
        let stop_ms: u64 = self
            .spec
            .groups
            .iter()
            .flat_map(|g| g.resources.iter())
            .map(|r| u64::from(r.stop_timeout_ms))
            .sum();
        let bound = Duration::from_millis(stop_ms) + DRAIN_SLACK;
        if let Err(e) = std::fs::write(&self.drain_marker, b"drained on SIGTERM\n") {
            tracing::error!(file = %self.drain_marker.display(), error = %e, "cannot write the drain marker; after restart, take this node out of standby by hand");
        }
        self.undrain = None;
        self.events.write(
            "draining",
            obj(json!({"bound_ms": bound.as_millis() as u64, "holds": self.core.drain_view().holds_anything})),
        );
        self.drain = Some(Drain::new(
            self.me,
            self.clock.now_us(),
            bound.as_micros() as u64,
        ));
        self.drain_tick(ctx);
    }
}

/// Local civil time (libc `localtime_r`) and the minute stamp (minutes since the epoch).
pub fn local_civil_time() -> Option<(CivilTime, u64)> {
    // SAFETY: time(NULL) and localtime_r with valid pointers to our own stack values.
    let (tm, secs) = unsafe {
        let secs = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return None;
        }
        (tm, secs)
    };
    Some((
        CivilTime {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u8,
            day: tm.tm_mday as u8,
            hour: tm.tm_hour as u8,
            minute: tm.tm_min as u8,
            weekday: tm.tm_wday as u8,
        },
        (secs.max(0) as u64) / 60,
    ))
}
