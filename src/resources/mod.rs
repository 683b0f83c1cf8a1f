//! Resource agents behind one trait (design.md §7): [`Agent`] with `start`, `stop`,
//! `monitor(depth)`, `probe` and `validate`. The built-ins and the OCF adapter implement it;
//! the simulator drives simulated agents through the same [`crate::policy::group::AgentOp`]s.
//!
//! # Who does what
//!
//! - The agent carries out one operation and says how it went: a [`Report`], that is a
//!   [`Outcome`] (`Ok`, `NotRunning`, `Failed`) and a reason for the logs.
//! - The **caller** (the ResourceActor) enforces every timeout: it wraps each call in
//!   `tokio::time::timeout` with the op's deadline and counts a late op as failed. Agents are
//!   written so that dropping a call at any `.await` leaves them consistent (a started process
//!   is recorded before the first await that could be cut short). An agent may still bound
//!   steps of its own (the `application` agent's SIGTERM → SIGKILL step, each health-check
//!   attempt), always below the caller's deadline.
//! - One operation runs per resource at a time (the OCF rule): the caller serializes calls on
//!   one agent. Methods take `&self` so that an agent can be shared (`Arc<dyn Agent>`) with the
//!   task that runs the op.
//! - A process exit is seen at once, never by polling: an agent that runs a process reports its
//!   exit on [`AgentContext::events`] as [`AgentEvent::Exited`], which the caller turns into
//!   [`crate::policy::message::Input::ResourceFailed`]. An exit the agent caused itself (by `stop`) is
//!   not reported.
//!
//! # Choices made here (and why)
//!
//! - `validate` is split in two. [`build`] checks the parameters' syntax and needs nothing of
//!   the node, so `eternectl config check` can run it anywhere and every node agrees on it;
//!   [`Agent::validate`] checks this node (programs, users, directories) before anything runs.
//! - [`Agent::start`] takes the activation's epoch (design.md §5.2): `disk_lock` will need it
//!   as its fencing key; agents without fencing ignore it.
//! - Processes of a resource live in a session of their own and survive the daemon, so a
//!   daemon restart never moves or restarts a resource. Under systemd this needs
//!   `KillMode=process` (or `mixed`) in the unit: the default `control-group` would kill them
//!   with the daemon.
//!
//! # Adding an agent
//!
//! One module per agent type (a file, or a folder once it has parts), one line in [`build`],
//! one name in [`AGENT_TYPES`].

pub mod application;
pub(crate) mod captured;
pub mod contract;
pub mod disk_lock;
pub mod fence;
pub mod fence_pill;
pub mod filesystem;
pub mod hard_stop;
pub mod ip;
pub mod network_name;
pub mod ocf;
pub(crate) mod pidfd;
pub mod pidfile;
pub mod process;
pub mod service;
pub mod share;

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::mpsc;

pub use hard_stop::HardStop;

use crate::policy::group::{Action, Outcome};
use crate::policy::spec::{GroupId, ResourceId, ResourceSpec};

/// The agent types [`build`] knows.
pub const AGENT_TYPES: &[&str] = &[
    "application",
    "filesystem",
    "ocf",
    "ip",
    "disk_lock",
    "service",
    "network_name",
    "share",
];

/// A parameter error of `resource`, naming the parameter and what is wrong with it.
pub(crate) fn param_err(resource: &str, param: &str, problem: impl Into<String>) -> AgentError {
    AgentError::Param {
        resource: resource.to_string(),
        param: param.to_string(),
        problem: problem.into(),
    }
}

/// Refuse a parameter the agent does not know (a typo would otherwise be ignored), naming it
/// and listing the known ones; `what` is the agent as a phrase ("an application").
pub(crate) fn known_params(
    spec: &ResourceSpec,
    what: &str,
    known: &[&str],
) -> Result<(), AgentError> {
    match spec
        .params
        .iter()
        .find(|(k, _)| !known.contains(&k.as_str()))
    {
        Some((k, _)) => Err(param_err(
            &spec.name,
            k,
            format!("unknown parameter of {what}; known: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// The value of parameter `key` of a resource, if given.
pub(crate) fn lookup<'a>(spec: &'a ResourceSpec, key: &str) -> Option<&'a str> {
    spec.params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Which health check a monitor runs (design.md §6: two depths, each with its own interval and
/// timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Depth {
    /// The cheap, frequent check.
    Quick,
    /// The thorough, rarer check.
    Deep,
}

/// How an operation went: the outcome the policy core takes, and why, for the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What the policy core is told
    /// ([`crate::policy::message::Input::AgentResult`]'s `outcome`).
    pub outcome: Outcome,
    /// A short human-readable reason (logged and shown in events), e.g. `"pid 4242 running"`.
    pub reason: String,
}

impl Report {
    /// Success; for probe and monitor: running and healthy.
    pub fn ok(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Ok,
            reason: reason.into(),
        }
    }

    /// Probe or monitor: cleanly not running.
    pub fn not_running(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::NotRunning,
            reason: reason.into(),
        }
    }

    /// The operation failed.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Failed,
            reason: reason.into(),
        }
    }
}

/// Something an agent noticed on its own, between operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// The resource's process exited (not by our `stop`). The caller feeds
    /// [`crate::policy::message::Input::ResourceFailed`] with `group` and `resource`.
    Exited {
        /// The group, from [`AgentContext::group`].
        group: GroupId,
        /// The resource, from [`AgentContext::resource`].
        resource: ResourceId,
        /// The process that exited (the instance's main process).
        pid: u32,
        /// How it ended, e.g. `"exited with status 1"`, `"killed by signal 9"`.
        reason: String,
    },
    /// The resource failed on its own and the agent cannot cure it locally: an `ip` whose
    /// NICs all lost carrier, a `disk_lock` that was fenced or lost its lease. The caller
    /// feeds it to the group like a failed monitor
    /// ([`crate::policy::message::Input::AgentResult`] with `Outcome::Failed`), so the group's
    /// local recovery, then escalation, takes over.
    Failed {
        /// The group, from [`AgentContext::group`].
        group: GroupId,
        /// The resource, from [`AgentContext::resource`].
        resource: ResourceId,
        /// What happened, for the logs and events.
        reason: String,
    },
}

/// What an agent needs from its surroundings besides its [`ResourceSpec`].
#[derive(Clone, Debug)]
pub struct AgentContext {
    /// The resource's group; copied into [`AgentEvent`]s.
    pub group: GroupId,
    /// The resource's index in its group; copied into [`AgentEvent`]s.
    pub resource: ResourceId,
    /// The resource's name (as in the config), for error messages and logs.
    pub name: String,
    /// Where agents keep runtime files such as pidfiles (e.g. `/run/eterne`). It must survive
    /// a daemon restart (so a restarted daemon adopts what runs) and may be cleared at boot
    /// (nothing survives a reboot anyway). Created on first use.
    pub run_dir: PathBuf,
    /// Where the agent reports [`AgentEvent`]s. Bounded: a full channel delays only the task
    /// that reports, never an operation.
    pub events: mpsc::Sender<AgentEvent>,
}

/// Why an agent cannot be built or cannot run here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The resource names an agent type we do not have.
    #[error(
        "resource {resource:?}: unknown type {agent:?}; use one of: {known}",
        known = AGENT_TYPES.join(", ")
    )]
    UnknownType {
        /// The resource.
        resource: String,
        /// The type it asked for.
        agent: String,
    },
    /// A parameter is missing, malformed, or names something this node does not have.
    #[error("resource {resource:?}: parameter {param:?}: {problem}")]
    Param {
        /// The resource.
        resource: String,
        /// The parameter.
        param: String,
        /// What is wrong and what to do about it.
        problem: String,
    },
}

/// The one interface of every resource agent (design.md §7).
///
/// Every method may be cancelled by the caller at its deadline (see the module docs); none
/// blocks a thread.
#[async_trait]
pub trait Agent: Send + Sync + std::fmt::Debug {
    /// Checks that this node can run the resource: programs, users and directories named by
    /// the parameters exist. Parameter syntax was already checked by [`build`], which needs
    /// no access to the node; this one does. Runs before anything is started.
    async fn validate(&self) -> Result<(), AgentError>;

    /// Makes the resource active here. `epoch` is the activation's fencing token
    /// (design.md §5.2) for agents that can enforce it; others ignore it. Starting a resource
    /// that is already active here is `Ok` and starts no second copy.
    async fn start(&self, epoch: u64) -> Report;

    /// Makes the resource inactive here. Stopping an inactive resource is `Ok`. A `Failed` stop
    /// is a reason to fence the node.
    async fn stop(&self) -> Report;

    /// Is it active and healthy? `Ok`, `NotRunning` (cleanly gone) or `Failed` (running but
    /// unhealthy), using the health check of that `depth`.
    async fn monitor(&self, depth: Depth) -> Report;

    /// Is it active here, now? `Ok` or `NotRunning` (`Failed` only if that cannot be told).
    /// An agent that finds its resource running adopts it: it watches it from then on as if it
    /// had started it, so a restarted daemon never starts a second copy.
    async fn probe(&self) -> Report;

    /// How the monitor process takes this resource down without the agent, when the core
    /// cannot do it in time ([`hard_stop`]). `None`: nothing to take down from outside.
    fn hard_stop(&self) -> Option<HardStop> {
        None
    }
}

/// Carries out a policy [`Action`] on an agent: the one `match` a caller needs.
pub async fn perform(agent: &dyn Agent, action: Action, epoch: u64) -> Report {
    match action {
        Action::Probe => agent.probe().await,
        Action::Start => agent.start(epoch).await,
        Action::Stop => agent.stop().await,
        Action::MonitorQuick => agent.monitor(Depth::Quick).await,
        Action::MonitorDeep => agent.monitor(Depth::Deep).await,
    }
}

/// A resource as node `me` runs it. A `disk_lock` without `node_slot` gets the node's
/// position in the config's node list: the config is one file on every node (nodes with
/// different files refuse each other's takeovers), so a per-node value cannot be written in it.
pub fn on_node(res: &ResourceSpec, me: crate::policy::spec::NodeId) -> ResourceSpec {
    let mut res = res.clone();
    if res.agent == "disk_lock" && !res.params.iter().any(|(k, _)| k == "node_slot") {
        res.params.push(("node_slot".into(), me.to_string()));
    }
    res
}

/// Builds the agent for a resource, checking its parameters' syntax (no access to the node is
/// needed, so `eternectl config check` can call this on any machine).
pub fn build(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Box<dyn Agent>, AgentError> {
    match spec.agent.as_str() {
        "application" => Ok(Box::new(application::Application::new(spec, ctx)?)),
        "filesystem" => Ok(Box::new(filesystem::Filesystem::new(spec, ctx)?)),
        "ocf" => Ok(Box::new(ocf::Ocf::new(spec, ctx)?)),
        "ip" => Ok(Box::new(ip::Ip::new(spec, ctx)?)),
        "disk_lock" => Ok(Box::new(disk_lock::DiskLock::new(spec, ctx)?)),
        "service" => Ok(Box::new(service::Service::new(spec, ctx)?)),
        "network_name" => Ok(Box::new(network_name::NetworkName::new(spec, ctx)?)),
        "share" => Ok(Box::new(share::Share::new(spec, ctx)?)),
        other => Err(AgentError::UnknownType {
            resource: spec.name.clone(),
            agent: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::on_node;
    use crate::policy::spec::ResourceSpec;
    use crate::policy::testutil::agent_resource;

    fn res(agent: &str, params: &[(&str, &str)]) -> ResourceSpec {
        agent_resource("r", agent, params)
    }

    #[test]
    fn a_disk_lock_without_node_slot_gets_the_node_position() {
        let r = on_node(&res("disk_lock", &[("device", "/dev/x")]), 2);
        assert!(r.params.contains(&("node_slot".into(), "2".into())));
        // A given slot is kept; other agents are left alone.
        let r = on_node(&res("disk_lock", &[("node_slot", "0")]), 2);
        assert_eq!(r.params, vec![("node_slot".into(), "0".into())]);
        let r = on_node(&res("ip", &[]), 2);
        assert!(r.params.is_empty());
    }
}
