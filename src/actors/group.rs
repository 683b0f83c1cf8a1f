//! GroupActor (one per group this node may run) and ResourceActor (one per resource).
//!
//! The node core decides every operation ([`AgentOp`]); the GroupActor hands each to the
//! ResourceActor of its resource, which runs it through [`perform`] in a task of its own on
//! the runtime's worker threads, bounded by `tokio::time::timeout` at the op's deadline
//! (the core's `deadline_us`, on the daemon's monotonic clock). A late op is
//! [`Outcome::Failed`]; so is an op whose task panicked. The result goes back to the node as
//! [`Input::AgentResult`]. Process exits the agent reports ([`AgentEvent::Exited`]) go to the
//! node as [`Input::ResourceFailed`].
//!
//! A resource this node cannot run ([`ResourceSetup::refused`]: its agent could not be built
//! here, or its `validate` failed at start) fails every start hard
//! ([`Outcome::FailedHard`]): no local restart, the group escalates at once and the
//! coordinator places it elsewhere, and nothing is fenced. Probe, stop and monitor still go
//! to its agent when there is one, so a copy that runs here is still found and stopped;
//! without an agent, probe is `NotRunning` and stop `Ok` (nothing of it can run here).
//! A resource whose `validate` failed before what it depends on ran
//! ([`ResourceSetup::recheck`]) is validated again before each start instead, and a start
//! it fails then fails hard.

use std::sync::Arc;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Recipient, Supervised, Supervisor,
};
use tokio::sync::mpsc;

use super::messages::{ChildFailed, Feed, ResourceCrashed, RunOp};
use super::{guard, Clock, Crashes};
use crate::policy::group::{Action, AgentOp, Outcome};
use crate::policy::message::Input;
use crate::policy::spec::{GroupId, ResourceId};
use crate::resources::{perform, Agent, AgentEvent, Report};

/// One resource of a group, as the GroupActor is given it.
pub struct ResourceSetup {
    /// The resource's name (logs).
    pub name: String,
    /// Its agent, if this daemon could build one.
    pub agent: Option<Arc<dyn Agent>>,
    /// Why this node cannot start it, if it cannot (no agent, or `validate` failed).
    pub refused: Option<String>,
    /// `validate` failed before the resources it depends on ran (they may provide what it
    /// missed: a mount point, a program on a shared disk): it is validated again right
    /// before each start, once they run, and a start it fails then fails hard.
    pub recheck: bool,
    /// The agent's event channel (exits), pumped to the node.
    pub events: Option<mpsc::Receiver<AgentEvent>>,
}

/// One group.
pub struct GroupActor {
    group: GroupId,
    name: String,
    resources: Vec<Addr<ResourceActor>>,
    up: Up,
    crashes: Crashes,
}

/// Where a GroupActor reports: the node core's inputs, and its parent's escalations.
#[derive(Clone)]
pub struct Up {
    /// Inputs for the node core (agent results, process exits).
    pub feed: Recipient<Feed>,
    /// The parent, told when this group's actor crashes too often.
    pub failed: Recipient<ChildFailed>,
}

impl GroupActor {
    /// Starts the GroupActor of `group` (supervised) and one supervised ResourceActor per
    /// resource; pumps each agent's exit events to the node.
    pub fn start(
        group: GroupId,
        name: String,
        resources: Vec<ResourceSetup>,
        up: Up,
        clock: Clock,
    ) -> Addr<GroupActor> {
        Supervisor::start(move |ctx: &mut Context<GroupActor>| {
            let me = ctx.address().recipient();
            let mut addrs = Vec::with_capacity(resources.len());
            for (r, mut setup) in resources.into_iter().enumerate() {
                let resource = r as ResourceId;
                if let Some(mut rx) = setup.events.take() {
                    let node = up.feed.clone();
                    tokio::spawn(async move {
                        while let Some(ev) = rx.recv().await {
                            // Both are a resource failing on its own: the group's local
                            // recovery takes over, as after a failed monitor.
                            let (group, resource, reason) = match ev {
                                AgentEvent::Exited {
                                    group,
                                    resource,
                                    pid,
                                    reason,
                                } => {
                                    tracing::warn!(group, resource, pid, %reason, "resource process exited");
                                    (group, resource, format!("process {pid} {reason}"))
                                }
                                AgentEvent::Failed {
                                    group,
                                    resource,
                                    reason,
                                } => {
                                    tracing::warn!(group, resource, %reason, "resource failed");
                                    (group, resource, reason)
                                }
                            };
                            node.do_send(Feed(Input::ResourceFailed {
                                group,
                                resource,
                                reason,
                            }));
                        }
                    });
                }
                let node = up.feed.clone();
                let parent = me.clone();
                let agent = setup.agent.clone();
                let refused = setup.refused.clone();
                let recheck = setup.recheck;
                let rname = setup.name.clone();
                addrs.push(Supervisor::start(move |_: &mut Context<ResourceActor>| {
                    ResourceActor {
                        group,
                        resource,
                        name: rname,
                        agent,
                        refused,
                        recheck,
                        node,
                        parent,
                        clock,
                        crashes: Crashes::default(),
                    }
                }));
            }
            GroupActor {
                group,
                name,
                resources: addrs,
                up,
                crashes: Crashes::default(),
            }
        })
    }
}

impl Actor for GroupActor {
    type Context = Context<Self>;
}

impl Supervised for GroupActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(group = %self.name, "GroupActor restarting");
    }
}

impl Handler<RunOp> for GroupActor {
    type Result = ();

    fn handle(&mut self, m: RunOp, ctx: &mut Context<Self>) {
        let (resources, node) = (&self.resources, &self.up.feed);
        let r = guard("group", || match resources.get(usize::from(m.0.resource)) {
            Some(a) => a.do_send(m),
            None => node.do_send(Feed(Input::AgentResult {
                group: m.0.group,
                resource: m.0.resource,
                op: m.0.op,
                outcome: Outcome::Failed,
                reason: "no actor for this resource".into(),
            })),
        });
        if let Err(why) = r {
            if self.crashes.record() {
                self.up.failed.do_send(ChildFailed {
                    who: format!("GroupActor {}", self.name),
                    why,
                });
            }
            ctx.stop();
        }
    }
}

impl Handler<ResourceCrashed> for GroupActor {
    type Result = ();

    /// A ResourceActor that keeps crashing is a failed resource: the node core recovers it
    /// per policy (local restart, then failover), as for a process exit.
    fn handle(&mut self, m: ResourceCrashed, _: &mut Context<Self>) {
        tracing::error!(group = %self.name, resource = m.resource, why = %m.why, "resource actor keeps crashing: treated as a failed resource");
        self.up.feed.do_send(Feed(Input::ResourceFailed {
            group: self.group,
            resource: m.resource,
            reason: format!("its actor keeps crashing: {}", m.why),
        }));
    }
}

/// One resource.
pub struct ResourceActor {
    group: GroupId,
    resource: ResourceId,
    name: String,
    agent: Option<Arc<dyn Agent>>,
    refused: Option<String>,
    recheck: bool,
    node: Recipient<Feed>,
    parent: Recipient<ResourceCrashed>,
    clock: Clock,
    crashes: Crashes,
}

impl Actor for ResourceActor {
    type Context = Context<Self>;
}

impl Supervised for ResourceActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(resource = %self.name, "ResourceActor restarting");
    }
}

impl Handler<RunOp> for ResourceActor {
    type Result = ();

    fn handle(&mut self, RunOp(op): RunOp, ctx: &mut Context<Self>) {
        let r = guard("resource", || self.run(op));
        if let Err(why) = r {
            // The op never started: report it failed so the core does not wait for its
            // deadline, then restart.
            self.node.do_send(Feed(Input::AgentResult {
                group: op.group,
                resource: op.resource,
                op: op.op,
                outcome: Outcome::Failed,
                reason: format!("the op could not start: {why}"),
            }));
            if self.crashes.record() {
                self.parent.do_send(ResourceCrashed {
                    resource: self.resource,
                    why,
                });
            }
            ctx.stop();
        }
    }
}

impl ResourceActor {
    /// Spawns the op's task: perform, bounded by the deadline, result to the node.
    fn run(&self, op: AgentOp) {
        let node = self.node.clone();
        let wait = self.clock.until(op.deadline_us);
        let name = self.name.clone();
        if let (Some(why), Action::Start) = (&self.refused, op.action) {
            tracing::warn!(resource = %name, reason = %why, "this node cannot run the resource: its start fails hard");
            let reason = format!("this node cannot run it: {why}");
            node.do_send(Feed(result(op, Outcome::FailedHard, reason)));
            return;
        }
        let Some(agent) = self.agent.clone() else {
            let outcome = match op.action {
                Action::Probe => Outcome::NotRunning,
                Action::Stop => Outcome::Ok,
                _ => Outcome::FailedHard,
            };
            tracing::warn!(resource = %name, action = ?op.action, ?outcome, "no agent for this resource on this node");
            let reason = "no agent for it on this node".to_string();
            node.do_send(Feed(result(op, outcome, reason)));
            return;
        };
        debug_assert_eq!((op.group, op.resource), (self.group, self.resource));
        let recheck = self.recheck && op.action == Action::Start;
        let task = tokio::spawn(async move {
            let checked_then_done = async {
                if recheck {
                    if let Err(e) = agent.validate().await {
                        return Report {
                            outcome: Outcome::FailedHard,
                            reason: format!("this node cannot run it: {e}"),
                        };
                    }
                }
                perform(&*agent, op.action, op.epoch).await
            };
            match tokio::time::timeout(wait, checked_then_done).await {
                Ok(report) => {
                    tracing::info!(resource = %name, action = ?op.action, outcome = ?report.outcome, reason = %report.reason, epoch = op.epoch, "agent op done");
                    (report.outcome, report.reason)
                }
                Err(_) => {
                    tracing::warn!(resource = %name, action = ?op.action, waited_ms = wait.as_millis() as u64, "agent op timed out: failed");
                    let reason = format!("no answer within its timeout ({} ms)", wait.as_millis());
                    (Outcome::Failed, reason)
                }
            }
        });
        tokio::spawn(async move {
            let (outcome, reason) = match task.await {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(error = %e, "agent op task panicked: failed");
                    (Outcome::Failed, format!("the agent's task panicked: {e}"))
                }
            };
            node.do_send(Feed(result(op, outcome, reason)));
        });
    }
}

fn result(op: AgentOp, outcome: Outcome, reason: String) -> Input {
    Input::AgentResult {
        group: op.group,
        resource: op.resource,
        op: op.op,
        outcome,
        reason,
    }
}
