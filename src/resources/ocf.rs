//! The `ocf` agent: any OCF resource agent (Pacemaker's resource-agents package), run under
//! the OCF contract of design.md §7.
//!
//! # Parameters
//!
//! | parameter | meaning |
//! |---|---|
//! | `type` | Required. The agent's name, e.g. `"IPaddr2"`, `"Dummy"`, `"pgsql"`. |
//! | `provider` | The agent's provider directory. Default `"heartbeat"`. |
//! | `ocf_root` | Absolute path of the OCF tree. Default `"/usr/lib/ocf"`. |
//! | `deep_check_level` | `OCF_CHECK_LEVEL` of the deep monitor (OCF levels are 0, 10, 20). Default 10. The quick monitor and the probe use 0. |
//! | anything else, `k = "v"` | An agent parameter: passed as `OCF_RESKEY_k=v`. |
//! | `OCF_RESKEY_k = "v"` | The same, spelled out: the way to pass an agent parameter whose name is one of ours (`dnsupdate` and `nvmet-port` have a `type`). |
//!
//! The agent file is `<ocf_root>/resource.d/<provider>/<type>`. Agent parameter names are
//! letters, digits and `_`; `CRM_meta_*` names are set by us and cannot be given.
//!
//! # How an action runs
//!
//! - `argv[1]` is the action: `start`, `stop`, `monitor` (also for the probe), `meta-data`,
//!   `validate-all`.
//! - The environment is cleared, then holds `PATH` (the daemon's, or a standard one),
//!   `OCF_ROOT`, `OCF_RESOURCE_INSTANCE` (the resource's name), `OCF_RESOURCE_TYPE`,
//!   `OCF_RESOURCE_PROVIDER`, `OCF_RA_VERSION_MAJOR=1`, `OCF_RA_VERSION_MINOR=1`, the
//!   `OCF_RESKEY_*` parameters, `OCF_RESKEY_CRM_meta_timeout` (ms: the resource's
//!   `start_timeout_ms` for start and validate-all, `stop_timeout_ms` for stop, the quick or
//!   deep monitor's `timeout_ms` for monitors and the probe) and, as Pacemaker does,
//!   `OCF_RESKEY_CRM_meta_interval` (ms: the monitor's interval; 0 for the probe and every
//!   other action — agents tell a probe from a monitor by it, `ocf_is_probe`). Monitors also
//!   get `OCF_CHECK_LEVEL`. Clearing the environment makes an agent behave the same on every
//!   node and keeps stray `OCF_*` variables of the daemon's environment out.
//! - The process runs in a session (and process group) of its own, with the default SIGPIPE
//!   disposition (and the other signals a daemon may ignore reset), no blocked signals, stdin
//!   from `/dev/null` and every descriptor but 0, 1 and 2 closed at exec.
//! - stdout and stderr go to one pipe; its last 4 KiB are kept for the log line of the
//!   action and (the last lines) for the [`Report`]'s reason. The pipe is not read to its
//!   end: an agent may leave a daemon behind that inherited it, so reading stops when the
//!   agent exits and what it wrote is drained.
//! - If the caller drops the action at its deadline, the agent's whole process group is
//!   SIGKILLed (kill on drop). After a normal exit the group is left alone: what an agent
//!   started on purpose (a daemon that did not call `setsid`) must live on.
//!
//! # Exit codes
//!
//! 0 success, 1 generic (soft), 2 args (hard), 3 unimplemented (hard), 4 perm (hard),
//! 5 not installed (hard), 6 not configured (fatal), 7 not running; 8/9 and 190/191 are the
//! promoted and degraded codes of OCF 1.1. They map onto [`Outcome`](crate::policy::group::Outcome):
//!
//! | action | Ok | NotRunning | Failed |
//! |---|---|---|---|
//! | start | 0 | – | anything else |
//! | stop | 0, 7 | – | anything else: a reason to fence |
//! | monitor | 0, 8, 190 (degraded, said in the reason) | 7 | anything else |
//! | probe (`monitor`, `OCF_CHECK_LEVEL=0`) | 0, 8, 190 | 7, 5 | anything else |
//!
//! A failed start or monitor carries its severity: 2 to 5 are `Outcome::FailedHard` and 6
//! `Outcome::FailedFatal`, on which the group escalates at once instead of restarting the
//! resource here; everything else is `Outcome::Failed` (soft). A failed stop is a stop
//! failure whatever its code.
//!
//! A probe that answers 5 (not installed) is taken as not running, as Pacemaker does: what
//! is not installed on this node cannot be running on it, and a `Failed` probe would have the
//! node stop (and, when that fails too, be fenced for) a resource it never had. An agent
//! whose program does not exist on this node is the same case, seen before anything runs: a
//! probe finds it not running, a stop has nothing to stop, a start or monitor fails hard (the
//! group goes to a node that has the agent), and the reason names the missing file. A failed
//! reason names the code (`OCF_ERR_INSTALLED`), its severity and the agent's last words.
//!
//! # Changed parameters: reload or restart
//!
//! Each start records the parameters it ran with in the runtime directory
//! (`<run_dir>/<resource>.ocf-params`; a stop removes it). A probe that finds the resource
//! running compares them with the config's, which differ after the config was changed and
//! the daemons restarted with it (a daemon restart adopts what runs, it never restarts it).
//! If they differ, the agent's meta-data decides, as Pacemaker's does:
//!
//! - OCF 1.1 `reload-agent`, and every changed parameter is `reloadable="1"`: it is run;
//! - the older `reload`, and no changed parameter is `unique="1"`: it is run;
//! - otherwise, or if the reload fails, the probe fails, so the group stops the resource and
//!   starts it again with the new parameters (and its dependents with it).
//!
//! The reason names the parameters that changed and what was done.
//!
//! # Validation
//!
//! [`build`](super::build) checks syntax only (`type` given, names well formed), so
//! `eternectl config check` runs anywhere. [`Agent::validate`] checks this node: the agent
//! file exists and is executable; its `meta-data` parses and every parameter it marks
//! `required` is given and no parameter it does not declare is passed; then `validate-all`
//! runs if the agent advertises it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use async_trait::async_trait;

use super::captured::{last_words, prepare_child, run_captured, STDOUT_MAX_BYTES};
use super::{lookup, param_err};
use super::{Agent, AgentContext, AgentError, Depth, HardStop, Report};
use crate::policy::group::Outcome;
use crate::policy::spec::ResourceSpec;

/// The parameters of the `ocf` agent itself; every other parameter goes to the OCF agent.
pub const PARAMS: &[&str] = &["type", "provider", "ocf_root", "deep_check_level"];

/// The prefix of the environment variables that carry agent parameters.
pub const RESKEY_PREFIX: &str = "OCF_RESKEY_";

/// Default `provider`.
pub const DEFAULT_PROVIDER: &str = "heartbeat";
/// Default `ocf_root`.
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";
/// Default `deep_check_level`.
pub const DEFAULT_DEEP_CHECK_LEVEL: u32 = 10;

/// `PATH` for agents when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Bound of a `meta-data` run during `validate` (agents advertise 5 s).
const META_DATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The `ocf` agent. See the module documentation for parameters and behaviour.
#[derive(Debug)]
pub struct Ocf {
    /// The resource's name: `OCF_RESOURCE_INSTANCE`, and in messages.
    name: String,
    /// `OCF_RESOURCE_PROVIDER`.
    provider: String,
    /// `OCF_RESOURCE_TYPE`.
    agent_type: String,
    /// `OCF_ROOT`.
    ocf_root: PathBuf,
    /// The agent parameters, in config order.
    reskeys: Vec<Reskey>,
    /// `OCF_CHECK_LEVEL` of the deep monitor.
    deep_check_level: u32,
    /// `OCF_RESKEY_CRM_meta_timeout` of start and validate-all (and the bound of
    /// validate-all during `validate`).
    start_timeout_ms: u32,
    /// `OCF_RESKEY_CRM_meta_timeout` of stop.
    stop_timeout_ms: u32,
    /// `OCF_RESKEY_CRM_meta_timeout` of the quick monitor and the probe.
    quick_timeout_ms: u32,
    /// `OCF_RESKEY_CRM_meta_timeout` of the deep monitor.
    deep_timeout_ms: u32,
    /// `OCF_RESKEY_CRM_meta_interval` of the quick monitor.
    quick_interval_ms: u32,
    /// `OCF_RESKEY_CRM_meta_interval` of the deep monitor.
    deep_interval_ms: u32,
    /// The parameters the running instance was started with (see "Changed parameters").
    params_file: PathBuf,
}

/// One agent parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reskey {
    /// The key as written in the config (`ip` or `OCF_RESKEY_ip`), for messages.
    given: String,
    /// The OCF name (`ip`).
    name: String,
    /// Its value.
    value: String,
}

/// What an agent's `meta-data` says, as far as we use it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaData {
    /// The declared parameters, in document order.
    pub parameters: Vec<MetaParam>,
    /// The declared actions (`start`, `monitor`, `validate-all`, ...).
    pub actions: Vec<String>,
}

/// One `<parameter>` of an agent's meta-data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaParam {
    /// Its name (without `OCF_RESKEY_`).
    pub name: String,
    /// `required="1"`: the agent cannot run without it.
    pub required: bool,
    /// `unique="1"`: two instances may not share a value (and the older `reload` cannot
    /// change it).
    pub unique: bool,
    /// `reloadable="1"` (OCF 1.1): `reload-agent` can change it in a running instance.
    pub reloadable: bool,
}

/// The action that applies a change of the parameters `changed` to a running instance,
/// if the agent has one that can: `reload-agent` when every one is reloadable, else the
/// older `reload` when none is unique (see the module docs).
pub fn reload_action(md: &MetaData, changed: &[String]) -> Option<&'static str> {
    let param = |n: &String| md.parameters.iter().find(|p| &p.name == n);
    let has = |a: &str| md.actions.iter().any(|x| x == a);
    if has("reload-agent")
        && changed
            .iter()
            .all(|n| param(n).is_some_and(|p| p.reloadable))
    {
        return Some("reload-agent");
    }
    if has("reload") && changed.iter().all(|n| param(n).is_none_or(|p| !p.unique)) {
        return Some("reload");
    }
    None
}

/// The names of the parameters that differ between two parameter texts
/// ([`Ocf::params_text`]: one `name=value` per line, sorted), given, removed or changed.
fn changed_params(old: &str, new: &str) -> Vec<String> {
    let parse = |t: &str| -> std::collections::BTreeMap<String, String> {
        t.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (a, b) = (parse(old), parse(new));
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(k) != b.get(k)).collect()
}

/// Which operation an action result answers: each maps exit codes its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Start,
    Stop,
    Monitor,
    Probe,
}

impl Op {
    fn action(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Monitor | Op::Probe => "monitor",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::Probe => "probe",
            other => other.action(),
        }
    }
}

impl Ocf {
    /// Parses and checks the parameters of `spec` (syntax only; [`Agent::validate`] checks
    /// the node).
    pub fn new(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Self, AgentError> {
        let name = spec.name.as_str();
        let err = |param: &str, problem: String| param_err(name, param, problem);
        let own = |key: &str| lookup(spec, key).map(str::trim);
        let agent_type = match own("type") {
            Some(t) if is_file_name(t) => t.to_string(),
            Some(t) => {
                return Err(err(
                    "type",
                    format!("{t:?} is not an agent name; give one like \"IPaddr2\""),
                ))
            }
            None => {
                return Err(err(
                    "type",
                    "is missing; give the OCF agent's name, e.g. type = \"IPaddr2\"".to_string(),
                ))
            }
        };
        let provider = match own("provider") {
            None => DEFAULT_PROVIDER.to_string(),
            Some(p) if is_file_name(p) => p.to_string(),
            Some(p) => {
                return Err(err(
                    "provider",
                    format!("{p:?} is not a provider name; give one like \"heartbeat\""),
                ))
            }
        };
        let ocf_root = match own("ocf_root") {
            None => PathBuf::from(DEFAULT_OCF_ROOT),
            Some(r) if r.starts_with('/') && !r.contains('\0') => PathBuf::from(r),
            Some(r) => {
                return Err(err(
                    "ocf_root",
                    format!("{r:?} is not an absolute path; give one like \"/usr/lib/ocf\""),
                ))
            }
        };
        let deep_check_level = match own("deep_check_level") {
            None => DEFAULT_DEEP_CHECK_LEVEL,
            Some(v) => v.parse().map_err(|_| {
                err(
                    "deep_check_level",
                    format!("{v:?} is not a number; OCF check levels are 0, 10 and 20"),
                )
            })?,
        };
        let mut reskeys: Vec<Reskey> = Vec::new();
        for (k, v) in &spec.params {
            if PARAMS.contains(&k.as_str()) {
                continue;
            }
            let ocf_name = k.strip_prefix(RESKEY_PREFIX).unwrap_or(k);
            if ocf_name.is_empty()
                || !ocf_name
                    .chars()
                    .all(|c| c == '_' || c.is_ascii_alphanumeric())
            {
                return Err(err(
                    k,
                    "is not an OCF parameter name (letters, digits and _ only)".to_string(),
                ));
            }
            if ocf_name.starts_with("CRM_meta_") {
                return Err(err(
                    k,
                    "CRM_meta_* parameters are set by EterneCluster from the resource's \
                     timeouts and monitor intervals; remove it"
                        .to_string(),
                ));
            }
            if v.contains('\0') {
                return Err(err(k, "the value contains a NUL byte".to_string()));
            }
            if let Some(first) = reskeys.iter().find(|r| r.name == ocf_name) {
                return Err(err(
                    k,
                    format!(
                        "gives agent parameter {ocf_name:?} a second time (also as {:?}); keep one",
                        first.given
                    ),
                ));
            }
            reskeys.push(Reskey {
                given: k.clone(),
                name: ocf_name.to_string(),
                value: v.clone(),
            });
        }
        let quick_timeout_ms = spec.monitor_quick.timeout_ms.max(1);
        Ok(Self {
            name: name.to_string(),
            provider,
            agent_type,
            ocf_root,
            reskeys,
            deep_check_level,
            start_timeout_ms: spec.start_timeout_ms.max(1),
            stop_timeout_ms: spec.stop_timeout_ms.max(1),
            quick_timeout_ms,
            deep_timeout_ms: spec
                .monitor_deep
                .map(|d| d.timeout_ms.max(1))
                .unwrap_or(quick_timeout_ms),
            quick_interval_ms: spec.monitor_quick.interval_ms,
            deep_interval_ms: spec
                .monitor_deep
                .map(|d| d.interval_ms)
                .unwrap_or(spec.monitor_quick.interval_ms),
            params_file: ctx.run_dir.join(format!("{name}.ocf-params")),
        })
    }

    /// The parameters as recorded at start: one `name=value` per line, sorted by name (a
    /// value's newlines escaped, so one line is one parameter).
    fn params_text(&self) -> String {
        let mut lines: Vec<String> = self
            .reskeys
            .iter()
            .map(|r| {
                format!(
                    "{}={}",
                    r.name,
                    r.value.replace('\\', "\\\\").replace('\n', "\\n")
                )
            })
            .collect();
        lines.sort();
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn record_params(&self) {
        if let Some(dir) = self.params_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&self.params_file, self.params_text()) {
            tracing::warn!(resource = %self.name, file = %self.params_file.display(), error = %e, "cannot record the parameters of a start");
        }
    }

    /// After a probe found the instance running: applies a change of its parameters by
    /// reload, or fails the probe so that the group restarts it (module docs).
    async fn reconcile_params(&self, found: Report) -> Report {
        let now = self.params_text();
        let Ok(then) = std::fs::read_to_string(&self.params_file) else {
            // Started before parameters were recorded (or by hand): adopt as it is.
            self.record_params();
            return found;
        };
        let changed = changed_params(&then, &now);
        if changed.is_empty() {
            return found;
        }
        let list = changed.join(", ");
        let action = match self.meta_data().await {
            Ok(md) => reload_action(&md, &changed),
            Err(e) => {
                return Report::failed(format!(
                    "running with other parameters ({list} changed) and {e}: restarting it"
                ))
            }
        };
        let Some(action) = action else {
            return Report::failed(format!(
                "running with other parameters ({list} changed), which {} cannot reload: \
                 restarting it",
                self.label()
            ));
        };
        let cmd = self.command(action, self.start_timeout_ms, 0, None);
        let limit = Duration::from_millis(u64::from(self.start_timeout_ms));
        match tokio::time::timeout(limit, run_captured(cmd, false)).await {
            Ok(Ok(fin)) if fin.status.success() => {
                self.record_params();
                tracing::info!(resource = %self.name, agent = %self.label(), action, changed = %list, "parameters reloaded");
                Report::ok(format!(
                    "{}; {list} changed: {action} applied it",
                    found.reason
                ))
            }
            Ok(Ok(fin)) => Report::failed(format!(
                "{} {action} for {list} {}{}: restarting it",
                self.label(),
                describe_code(fin.status),
                last_words(&fin.output)
            )),
            Ok(Err(e)) => Report::failed(format!("{} {action}: {e}: restarting it", self.label())),
            Err(_) => Report::failed(format!(
                "{} {action} gave no answer within start_timeout_ms: restarting it",
                self.label()
            )),
        }
    }

    /// The agent file: `<ocf_root>/resource.d/<provider>/<type>`.
    pub fn path(&self) -> PathBuf {
        self.ocf_root
            .join("resource.d")
            .join(&self.provider)
            .join(&self.agent_type)
    }

    /// `ocf:<provider>:<type>`, as Pacemaker writes it.
    pub fn label(&self) -> String {
        format!("ocf:{}:{}", self.provider, self.agent_type)
    }

    /// Runs the agent's `meta-data` and parses it.
    pub async fn meta_data(&self) -> Result<MetaData, String> {
        let cmd = self.command("meta-data", META_DATA_TIMEOUT.as_millis() as u32, 0, None);
        let run = tokio::time::timeout(META_DATA_TIMEOUT, run_captured(cmd, true));
        let fin = match run.await {
            Ok(r) => r?,
            Err(_) => {
                return Err(format!(
                    "{} meta-data gave no answer within {} s",
                    self.label(),
                    META_DATA_TIMEOUT.as_secs()
                ))
            }
        };
        if !fin.status.success() {
            return Err(format!(
                "{} meta-data {}{}",
                self.label(),
                describe_code(fin.status),
                last_words(&fin.output)
            ));
        }
        if fin.stdout_cut {
            return Err(format!(
                "{} meta-data printed more than {} bytes: not an agent's meta-data",
                self.label(),
                STDOUT_MAX_BYTES
            ));
        }
        let xml = String::from_utf8_lossy(&fin.stdout);
        parse_meta_data(&xml).map_err(|e| format!("{} meta-data: {e}", self.label()))
    }

    /// The whole environment of one action, as the OCF contract wants it.
    fn environment(
        &self,
        timeout_ms: u32,
        interval_ms: u32,
        check_level: Option<u32>,
    ) -> Vec<(String, String)> {
        let path = std::env::var("PATH").ok().filter(|p| !p.is_empty());
        let mut env = vec![
            (
                "PATH".to_string(),
                path.unwrap_or_else(|| DEFAULT_PATH.into()),
            ),
            ("OCF_ROOT".into(), self.ocf_root.display().to_string()),
            ("OCF_RESOURCE_INSTANCE".into(), self.name.clone()),
            ("OCF_RESOURCE_TYPE".into(), self.agent_type.clone()),
            ("OCF_RESOURCE_PROVIDER".into(), self.provider.clone()),
            ("OCF_RA_VERSION_MAJOR".into(), "1".into()),
            ("OCF_RA_VERSION_MINOR".into(), "1".into()),
            ("OCF_RESKEY_CRM_meta_timeout".into(), timeout_ms.to_string()),
            (
                "OCF_RESKEY_CRM_meta_interval".into(),
                interval_ms.to_string(),
            ),
        ];
        for r in &self.reskeys {
            env.push((format!("{RESKEY_PREFIX}{}", r.name), r.value.clone()));
        }
        if let Some(level) = check_level {
            env.push(("OCF_CHECK_LEVEL".into(), level.to_string()));
        }
        env
    }

    /// The command for one action, with the OCF environment.
    fn command(
        &self,
        action: &str,
        timeout_ms: u32,
        interval_ms: u32,
        check_level: Option<u32>,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.path());
        cmd.arg(action)
            .env_clear()
            .envs(self.environment(timeout_ms, interval_ms, check_level));
        prepare_child(&mut cmd);
        cmd
    }

    /// Runs a start, stop, monitor or probe and maps its exit onto a [`Report`].
    async fn run_op(&self, op: Op, depth: Depth) -> Report {
        let (timeout_ms, interval_ms, level) = match (op, depth) {
            (Op::Start, _) => (self.start_timeout_ms, 0, None),
            (Op::Stop, _) => (self.stop_timeout_ms, 0, None),
            (Op::Probe, _) => (self.quick_timeout_ms, 0, Some(0)),
            (Op::Monitor, Depth::Quick) => (self.quick_timeout_ms, self.quick_interval_ms, Some(0)),
            (Op::Monitor, Depth::Deep) => (
                self.deep_timeout_ms,
                self.deep_interval_ms,
                Some(self.deep_check_level),
            ),
        };
        let path = self.path();
        if !path.exists() {
            return not_installed(op, &self.label(), &path);
        }
        let cmd = self.command(op.action(), timeout_ms, interval_ms, level);
        let fin = match run_captured(cmd, false).await {
            Ok(f) => f,
            Err(e) => {
                let why = format!("{} {}: {e}", self.label(), op.label());
                tracing::warn!(resource = %self.name, agent = %self.label(), op = op.label(), error = %e, "cannot run OCF agent");
                return Report::failed(why);
            }
        };
        let report = map_exit(op, fin.status, &self.label(), &fin.output);
        let code = fin.status.code().unwrap_or(-1);
        if report.outcome.is_failure() {
            tracing::warn!(resource = %self.name, agent = %self.label(), op = op.label(), code, output = %fin.output, "OCF action failed");
        } else {
            tracing::info!(resource = %self.name, agent = %self.label(), op = op.label(), code, output = %fin.output, "OCF action done");
        }
        report
    }
}

#[async_trait]
impl Agent for Ocf {
    fn hard_stop(&self) -> Option<HardStop> {
        Some(HardStop::Command {
            resource: self.name.clone(),
            program: self.path(),
            args: vec!["stop".into()],
            env: self.environment(self.stop_timeout_ms, 0, None),
            timeout_ms: u64::from(self.stop_timeout_ms),
        })
    }

    async fn validate(&self) -> Result<(), AgentError> {
        let path = self.path();
        let executable = std::fs::metadata(&path)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if !executable {
            return Err(param_err(
                &self.name,
                "type",
                format!(
                    "{} ({}) is not an executable file on this node; install the agent \
                     (Debian: resource-agents) or fix provider, type or ocf_root",
                    self.label(),
                    path.display()
                ),
            ));
        }
        let md = self
            .meta_data()
            .await
            .map_err(|e| param_err(&self.name, "type", e))?;
        for r in &self.reskeys {
            if !md.parameters.iter().any(|p| p.name == r.name) {
                let known: Vec<&str> = md.parameters.iter().map(|p| p.name.as_str()).collect();
                return Err(param_err(
                    &self.name,
                    &r.given,
                    format!(
                        "unknown parameter of {}; it knows: {}",
                        self.label(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        for p in md.parameters.iter().filter(|p| p.required) {
            if !self.reskeys.iter().any(|r| r.name == p.name) {
                return Err(param_err(
                    &self.name,
                    &p.name,
                    format!("is required by {}; give it in params", self.label()),
                ));
            }
        }
        if md.actions.iter().any(|a| a == "validate-all") {
            let cmd = self.command("validate-all", self.start_timeout_ms, 0, None);
            let limit = Duration::from_millis(u64::from(self.start_timeout_ms));
            let fin = match tokio::time::timeout(limit, run_captured(cmd, false)).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => {
                    return Err(param_err(
                        &self.name,
                        "type",
                        format!("{} validate-all: {e}", self.label()),
                    ))
                }
                Err(_) => {
                    return Err(param_err(
                        &self.name,
                        "type",
                        format!(
                            "{} validate-all gave no answer within start_timeout_ms ({} ms)",
                            self.label(),
                            self.start_timeout_ms
                        ),
                    ))
                }
            };
            if !fin.status.success() {
                return Err(param_err(
                    &self.name,
                    "type",
                    format!(
                        "{} validate-all refused the parameters: {}{}",
                        self.label(),
                        describe_code(fin.status),
                        last_words(&fin.output)
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn start(&self, _epoch: u64) -> Report {
        let r = self.run_op(Op::Start, Depth::Quick).await;
        if r.outcome == crate::policy::group::Outcome::Ok {
            self.record_params();
        }
        r
    }

    async fn stop(&self) -> Report {
        let r = self.run_op(Op::Stop, Depth::Quick).await;
        if !r.outcome.is_failure() {
            let _ = std::fs::remove_file(&self.params_file);
        }
        r
    }

    async fn monitor(&self, depth: Depth) -> Report {
        self.run_op(Op::Monitor, depth).await
    }

    async fn probe(&self) -> Report {
        let r = self.run_op(Op::Probe, Depth::Quick).await;
        if r.outcome == crate::policy::group::Outcome::Ok {
            return self.reconcile_params(r).await;
        }
        r
    }
}

/// The OCF name of an exit code.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OCF_SUCCESS",
        1 => "OCF_ERR_GENERIC",
        2 => "OCF_ERR_ARGS",
        3 => "OCF_ERR_UNIMPLEMENTED",
        4 => "OCF_ERR_PERM",
        5 => "OCF_ERR_INSTALLED",
        6 => "OCF_ERR_CONFIGURED",
        7 => "OCF_NOT_RUNNING",
        8 => "OCF_RUNNING_PROMOTED",
        9 => "OCF_FAILED_PROMOTED",
        190 => "OCF_DEGRADED",
        191 => "OCF_DEGRADED_PROMOTED",
        _ => "not an OCF code",
    }
}

/// How bad a failure code is, in Pacemaker's words, and what it means here.
fn severity(code: i32) -> &'static str {
    match code {
        2 => "hard: bad arguments",
        3 => "hard: action not implemented",
        4 => "hard: insufficient privileges",
        5 => "hard: not installed on this node",
        6 => "fatal: the parameters are wrong on every node",
        _ => "soft",
    }
}

/// `exit 5 (OCF_ERR_INSTALLED, hard: ...)` or `killed by signal 9`.
fn describe_code(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c} ({}, {})", code_name(c), severity(c)),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "ended without an exit code".to_string(),
    }
}

/// Maps an action's exit onto a [`Report`] (see the module docs' table).
fn map_exit(op: Op, status: ExitStatus, label: &str, output: &str) -> Report {
    let what = format!("{label} {}", op.label());
    let Some(code) = status.code() else {
        return Report::failed(format!(
            "{what}: {}{}",
            describe_code(status),
            last_words(output)
        ));
    };
    let words = last_words(output);
    match (op, code) {
        (_, 0) => Report::ok(format!("{what}: {}{words}", code_name(0))),
        (Op::Stop, 7) => Report::ok(format!("{what}: was not running ({})", code_name(7))),
        (Op::Monitor | Op::Probe, 7) => {
            Report::not_running(format!("{what}: {}{words}", code_name(7)))
        }
        (Op::Probe, 5) => Report::not_running(format!(
            "{what}: {}: the agent's software is not installed here, so it is not running \
             here{words}",
            code_name(5)
        )),
        (Op::Monitor | Op::Probe, 8 | 190) => {
            Report::ok(format!("{what}: running ({}){words}", code_name(code)))
        }
        (Op::Stop, _) => Report::failed(format!(
            "{what} failed: {}: the resource may still be active (a reason to fence){words}",
            describe_code(status)
        )),
        _ => Report {
            outcome: outcome_of(code),
            reason: format!("{what} failed: {}{words}", describe_code(status)),
        },
    }
}

/// An action of an agent whose program does not exist on this node: what OCF's exit 5 (not
/// installed) stands for, without running anything. Nothing can run here through an agent
/// that is not here, so a probe finds it not running and a stop has nothing to stop (as
/// Pacemaker treats a missing agent); a start or a monitor fails hard, and the group goes to
/// a node that has the agent. Never a failed stop, which would fence the node.
fn not_installed(op: Op, label: &str, path: &Path) -> Report {
    let what = format!("{label} {}", op.label());
    let why = format!(
        "{} ({}, {}): the agent {} does not exist on this node",
        code_name(5),
        "exit 5 as OCF names it",
        severity(5),
        path.display()
    );
    match op {
        Op::Probe => Report::not_running(format!("{what}: {why}, so it is not running here")),
        Op::Stop => Report::ok(format!("{what}: {why}, so nothing of it runs here")),
        Op::Start | Op::Monitor => Report {
            outcome: Outcome::FailedHard,
            reason: format!("{what} failed: {why}"),
        },
    }
}

/// The outcome a failure code stands for: OCF's hard errors (2 to 5) and its fatal one (6)
/// cannot be mended by restarting here, so the group core skips its local restarts.
fn outcome_of(code: i32) -> Outcome {
    match code {
        2..=5 => Outcome::FailedHard,
        6 => Outcome::FailedFatal,
        _ => Outcome::Failed,
    }
}

/// Parses an agent's `meta-data` XML (OCF `ra-api-1.dtd`; the DTD it names is not fetched).
pub fn parse_meta_data(xml: &str) -> Result<MetaData, String> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, opts)
        .map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "resource-agent" {
        return Err(format!(
            "the root element is <{}>, not <resource-agent>",
            root.tag_name().name()
        ));
    }
    let section = |name: &'static str| {
        root.children()
            .filter(move |n| n.is_element() && n.tag_name().name() == name)
    };
    let mut md = MetaData::default();
    for p in section("parameters").flat_map(|s| s.children()) {
        if !(p.is_element() && p.tag_name().name() == "parameter") {
            continue;
        }
        let Some(name) = p.attribute("name").filter(|n| !n.is_empty()) else {
            return Err("a <parameter> has no name".to_string());
        };
        let flag =
            |attr: &str| matches!(p.attribute(attr).map(str::trim), Some("1" | "true" | "yes"));
        md.parameters.push(MetaParam {
            name: name.to_string(),
            required: flag("required"),
            unique: flag("unique"),
            reloadable: flag("reloadable"),
        });
    }
    for a in section("actions").flat_map(|s| s.children()) {
        if a.is_element() && a.tag_name().name() == "action" {
            if let Some(name) = a.attribute("name") {
                md.actions.push(name.to_string());
            }
        }
    }
    Ok(md)
}

fn is_file_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']) && s.trim() == s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::group::Outcome;
    use std::path::Path;
    use tokio::sync::mpsc;

    fn spec(params: &[(&str, &str)]) -> ResourceSpec {
        crate::policy::testutil::agent_resource("res", "ocf", params)
    }

    fn new(params: &[(&str, &str)]) -> Result<Ocf, AgentError> {
        let (tx, _rx) = mpsc::channel(1);
        let ctx = AgentContext {
            group: 0,
            resource: 0,
            name: "res".into(),
            run_dir: "/run/eterne".into(),
            events: tx,
        };
        Ocf::new(&spec(params), &ctx)
    }

    fn param_of(e: AgentError) -> String {
        match e {
            AgentError::Param { param, .. } => param,
            other => panic!("not a parameter error: {other}"),
        }
    }

    #[test]
    fn defaults_and_reskeys() {
        let a = new(&[
            ("type", "IPaddr2"),
            ("ip", "10.0.0.5"),
            ("OCF_RESKEY_type", "A"),
        ])
        .unwrap();
        assert_eq!(
            a.path(),
            Path::new("/usr/lib/ocf/resource.d/heartbeat/IPaddr2")
        );
        assert_eq!(a.label(), "ocf:heartbeat:IPaddr2");
        assert_eq!(a.deep_check_level, 10);
        let names: Vec<(&str, &str)> = a
            .reskeys
            .iter()
            .map(|r| (r.name.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(names, [("ip", "10.0.0.5"), ("type", "A")]);
        assert_eq!(a.deep_timeout_ms, 500);
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "type"),
            (&[("type", "")], "type"),
            (&[("type", "../x")], "type"),
            (&[("type", "x"), ("provider", "a/b")], "provider"),
            (&[("type", "x"), ("ocf_root", "usr/lib/ocf")], "ocf_root"),
            (
                &[("type", "x"), ("deep_check_level", "deep")],
                "deep_check_level",
            ),
            (&[("type", "x"), ("bad-name", "1")], "bad-name"),
            (&[("type", "x"), ("OCF_RESKEY_", "1")], "OCF_RESKEY_"),
            (
                &[("type", "x"), ("CRM_meta_timeout", "1")],
                "CRM_meta_timeout",
            ),
            (
                &[("type", "x"), ("ip", "1"), ("OCF_RESKEY_ip", "2")],
                "OCF_RESKEY_ip",
            ),
        ];
        for (params, want) in cases {
            let e = new(params).expect_err(&format!("{params:?} must be refused"));
            let msg = e.to_string();
            assert!(msg.contains("\"res\""), "{msg}");
            assert_eq!(param_of(e), *want, "{params:?}: {msg}");
        }
    }

    #[test]
    fn a_change_is_reloaded_only_by_an_action_that_can_apply_it() {
        let p = |name: &str, unique, reloadable| MetaParam {
            name: name.into(),
            required: false,
            unique,
            reloadable,
        };
        let md = |actions: &[&str]| MetaData {
            parameters: vec![
                p("port", true, false),
                p("level", false, true),
                p("note", false, false),
            ],
            actions: actions.iter().map(|a| a.to_string()).collect(),
        };
        let ch = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let both = md(&["start", "reload", "reload-agent"]);
        assert_eq!(reload_action(&both, &ch(&["level"])), Some("reload-agent"));
        // note is not reloadable but not unique either: the older reload takes it.
        assert_eq!(
            reload_action(&both, &ch(&["level", "note"])),
            Some("reload")
        );
        assert_eq!(
            reload_action(&both, &ch(&["port"])),
            None,
            "unique: restart"
        );
        assert_eq!(reload_action(&md(&["start"]), &ch(&["level"])), None);
        assert_eq!(
            reload_action(&md(&["reload-agent"]), &ch(&["note"])),
            None,
            "not reloadable, and no legacy reload"
        );
        assert_eq!(
            changed_params("a=1\nb=2\n", "a=1\nb=3\nc=4\n"),
            ["b".to_string(), "c".to_string()]
        );
        assert!(changed_params("a=1\n", "a=1\n").is_empty());
    }

    #[test]
    fn meta_data_parses_with_a_doctype() {
        let xml = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="X" version="1.0">
<parameters>
<parameter name="ip" unique="1" required="1"><content type="string"/></parameter>
<parameter name="nic" reloadable="1"><content type="string"/></parameter>
</parameters>
<actions><action name="start" timeout="20s"/><action name="validate-all" timeout="5s"/></actions>
</resource-agent>"#;
        let md = parse_meta_data(xml).unwrap();
        assert_eq!(
            md.parameters,
            [
                MetaParam {
                    name: "ip".into(),
                    required: true,
                    unique: true,
                    reloadable: false,
                },
                MetaParam {
                    name: "nic".into(),
                    required: false,
                    unique: false,
                    reloadable: true,
                }
            ]
        );
        assert_eq!(md.actions, ["start", "validate-all"]);
        assert!(parse_meta_data("<other/>").is_err());
        assert!(parse_meta_data("not xml").is_err());
        assert!(parse_meta_data(
            "<resource-agent><parameters><parameter/></parameters></resource-agent>"
        )
        .is_err());
    }

    #[test]
    fn exit_codes_map_per_operation() {
        let st = |c: i32| ExitStatus::from_raw(c << 8);
        let o = |op, c| map_exit(op, st(c), "ocf:t:x", "").outcome;
        for op in [Op::Start, Op::Stop, Op::Monitor, Op::Probe] {
            assert_eq!(o(op, 0), Outcome::Ok);
            for c in [1, 2, 3, 4, 6, 9, 42] {
                // The severity of the code: soft, hard (2 to 4 here), fatal (6); a failed
                // stop is a stop failure whatever its code.
                let want = match (op, c) {
                    (Op::Stop, _) => Outcome::Failed,
                    (_, 2..=4) => Outcome::FailedHard,
                    (_, 6) => Outcome::FailedFatal,
                    _ => Outcome::Failed,
                };
                assert_eq!(o(op, c), want, "{op:?} {c}");
            }
        }
        assert_eq!(o(Op::Start, 7), Outcome::Failed);
        assert_eq!(o(Op::Stop, 7), Outcome::Ok);
        assert_eq!(o(Op::Monitor, 7), Outcome::NotRunning);
        assert_eq!(o(Op::Probe, 7), Outcome::NotRunning);
        assert_eq!(
            o(Op::Monitor, 5),
            Outcome::FailedHard,
            "not installed: hard"
        );
        assert_eq!(o(Op::Probe, 5), Outcome::NotRunning);
        assert_eq!(o(Op::Monitor, 190), Outcome::Ok);
        let killed = map_exit(Op::Start, ExitStatus::from_raw(9), "ocf:t:x", "");
        assert_eq!(killed.outcome, Outcome::Failed);
        assert!(killed.reason.contains("signal 9"), "{}", killed.reason);
        let r = map_exit(Op::Start, st(5), "ocf:t:x", "line one\nmissing binary\n");
        assert!(r.reason.contains("OCF_ERR_INSTALLED"), "{}", r.reason);
        assert!(r.reason.contains("hard"), "{}", r.reason);
        assert!(r.reason.contains("missing binary"), "{}", r.reason);
    }
}
