//! An agent's test resource and its context, built as the daemon builds them from a config:
//! each test file gives its agent type, parameters and the timings it needs.

use std::path::PathBuf;

use eterne::policy::spec::{GroupId, MonitorSpec, ResourceId, ResourceSpec};
use eterne::resources::{AgentContext, AgentEvent};
use tokio::sync::mpsc;

/// How long a test resource's health checks and operations may take.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// The quick health check.
    pub quick: MonitorSpec,
    /// The deep health check, if any.
    pub deep: Option<MonitorSpec>,
    /// How long `start` may take.
    pub start_ms: u32,
    /// How long `stop` may take.
    pub stop_ms: u32,
}

/// Resource `name` of agent type `agent` with `params`, no dependencies, timed by `t`.
pub fn resource(name: &str, agent: &str, params: &[(&str, &str)], t: &Timings) -> ResourceSpec {
    ResourceSpec {
        name: name.to_string(),
        agent: agent.to_string(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        depends_on: vec![],
        monitor_quick: t.quick,
        monitor_deep: t.deep,
        start_timeout_ms: t.start_ms,
        stop_timeout_ms: t.stop_ms,
        migration_threshold: None,
    }
}

/// The context of resource `resource` (`name`) of group `group`, keeping its files in
/// `run_dir`, and the receiving end of its events (a channel of `capacity`).
pub fn context(
    group: GroupId,
    resource: ResourceId,
    name: &str,
    run_dir: PathBuf,
    capacity: usize,
) -> (AgentContext, mpsc::Receiver<AgentEvent>) {
    let (events, rx) = mpsc::channel(capacity);
    let ctx = AgentContext {
        group,
        resource,
        name: name.to_string(),
        run_dir,
        events,
    };
    (ctx, rx)
}
