//! The `service` agent: a system service run by the host's own service manager, a systemd
//! unit where systemd is PID 1 and an LSB init script otherwise (design.md §7).
//!
//! # Parameters
//!
//! | parameter | meaning |
//! |---|---|
//! | `name` | Required. The service: a systemd unit (`nginx`, taken as `nginx.service`, or a full unit name such as `nginx@a.service`), or the init script's name (`/etc/init.d/<name>`). |
//! | `manager` | `"auto"` (default): systemd when it runs as PID 1 (`/run/systemd/system` exists), LSB otherwise. `"systemd"` or `"lsb"` to choose. |
//! | `script` | LSB only: the init script's absolute path. Default `/etc/init.d/<name>`. |
//! | `pidfile` | LSB only: the service's pidfile. When given, the main process it names is watched after each start and probe, so its exit is seen at once rather than at the next monitor. |
//!
//! # systemd
//!
//! - `start`: `systemctl start UNIT`, then `systemctl is-active UNIT` must say `active`. A
//!   unit this node does not have (`LoadState=not-found`) or has masked is a hard failure:
//!   no restart here mends it, so the group goes elsewhere.
//! - `stop`: `systemctl stop UNIT`, which waits for the stop job; a unit not found is stopped.
//! - `monitor` (both depths): `is-active` `active` or `reloading` → `Ok`; `inactive` →
//!   `NotRunning`; `failed` (the unit's own failure state) or a transition → `Failed`.
//! - `probe`: anything but `inactive`, `failed` or not found is running here (and adopted).
//! - The main process (`systemctl show -p MainPID`) is watched through a pidfd after each
//!   start and adoption: its exit reaches the group at once.
//! - `validate`: the unit exists here, is not enabled (systemd would start it at boot behind
//!   the cluster's back, on every node) and has `Restart=no` (a unit systemd restarts by
//!   itself fights the cluster's own local restart and its stop).
//! - Hard stop (the monitor process, when the core cannot stop in time):
//!   `systemctl kill --signal=SIGKILL UNIT`.
//!
//! # LSB
//!
//! - `start`: `SCRIPT start`, then `SCRIPT status` must answer 0. Exit codes as LSB defines
//!   them: 0 success; 2 (invalid arguments), 3 (unimplemented), 4 (no permission) and 5 (not
//!   installed) are hard, 6 (not configured) is fatal, everything else soft.
//! - `stop`: `SCRIPT stop`; a non-zero exit is forgiven when `status` then says not running
//!   (many scripts answer 1 or 7 to a stop of what was already stopped).
//! - `monitor` and `probe`: `SCRIPT status`: 0 running; 1 (dead, pidfile left), 2 (dead,
//!   lock file left) and 3 not running; 4 (unknown) and anything else a failure.
//! - `validate`: the script is an executable file.
//! - Hard stop: `SCRIPT stop`, bounded, then SIGKILL of its process group.
//!
//! Scripts and `systemctl` run with a clean environment (`PATH` and `LANG=C` only), stdin
//! from `/dev/null`, in a session of their own (see [`super::captured`]); what a script
//! leaves running on purpose (the daemon) lives on after it exits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;

mod lsb;
mod systemd;

use self::lsb::{lsb_action_meaning, lsb_action_outcome, lsb_status_report};
use self::systemd::{parse_show, systemd_state, unit_name, unit_problem, value};
use super::captured::{last_words, prepare_child, run_captured};
use super::pidfd::pidfd_open;
use super::process::{find_program, AbortOnDrop};
use super::{known_params, lookup, param_err};
use super::{Agent, AgentContext, AgentError, AgentEvent, Depth, HardStop, Report};
use crate::policy::group::Outcome;
use crate::policy::spec::{GroupId, ResourceId, ResourceSpec};

/// Every parameter the agent knows.
pub const PARAMS: &[&str] = &["name", "manager", "script", "pidfile"];
/// Where init scripts live.
pub const INIT_DIR: &str = "/etc/init.d";
/// Present exactly when systemd runs as PID 1 (what `sd_booted()` checks).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";
/// `PATH` for scripts and `systemctl`.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Which service manager runs it, as the parameter says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Auto,
    Systemd,
    Lsb,
}

/// The manager, once chosen on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Manager {
    Systemd { unit: String },
    Lsb { script: PathBuf },
}

/// The `service` agent. See the module documentation for parameters and behaviour.
#[derive(Debug)]
pub struct Service {
    name: String,
    group: GroupId,
    resource: ResourceId,
    events: mpsc::Sender<AgentEvent>,
    choice: Choice,
    /// `name` as given.
    service: String,
    /// LSB: the script.
    script: PathBuf,
    /// LSB: the pidfile, if given.
    pidfile: Option<PathBuf>,
    stop_timeout_ms: u32,
    /// The watch on the main process, while one runs.
    watch: Mutex<Option<Watch>>,
}

/// A watched main process: its exit is reported unless `expected` was set first (by stop).
#[derive(Debug)]
struct Watch {
    pid: u32,
    expected: Arc<AtomicBool>,
    _task: AbortOnDrop,
}

/// A plain name: what a unit or script name may be.
fn is_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@:\\".contains(c))
}

/// An absolute path without NUL bytes.
fn absolute(s: &str) -> bool {
    s.starts_with('/') && !s.contains('\0')
}

impl Service {
    /// Checks the parameters (syntax only).
    pub fn new(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Self, AgentError> {
        known_params(spec, "a service", PARAMS)?;
        let err = |param: &str, problem: String| param_err(&spec.name, param, problem);
        let service = match lookup(spec, "name").map(str::trim) {
            Some(n) if is_service_name(n) => n.to_string(),
            Some(n) => {
                return Err(err(
                    "name",
                    format!(
                        "{n:?} is not a service name; give the unit or init script's name, \
                         e.g. name = \"nginx\""
                    ),
                ))
            }
            None => {
                return Err(err(
                    "name",
                    "is missing; give the unit or init script's name, e.g. name = \"nginx\""
                        .to_string(),
                ))
            }
        };
        let choice = match lookup(spec, "manager").map(str::trim) {
            None | Some("auto") => Choice::Auto,
            Some("systemd") => Choice::Systemd,
            Some("lsb") => Choice::Lsb,
            Some(m) => {
                return Err(err(
                    "manager",
                    format!("{m:?} is not a service manager; use \"auto\", \"systemd\" or \"lsb\""),
                ))
            }
        };
        let script = match lookup(spec, "script") {
            Some(_) if choice == Choice::Systemd => {
                return Err(err(
                    "script",
                    "is for LSB init scripts; with manager = \"systemd\" name the unit only"
                        .to_string(),
                ))
            }
            Some(s) if absolute(s) => PathBuf::from(s),
            Some(s) => {
                return Err(err(
                    "script",
                    format!("{s:?} is not an absolute path; give one like \"/etc/init.d/nginx\""),
                ))
            }
            None => Path::new(INIT_DIR).join(&service),
        };
        let pidfile = match lookup(spec, "pidfile") {
            Some(_) if choice == Choice::Systemd => {
                return Err(err(
                    "pidfile",
                    "is for LSB init scripts; systemd knows the unit's main process".to_string(),
                ))
            }
            Some(p) if absolute(p) => Some(PathBuf::from(p)),
            Some(p) => {
                return Err(err(
                    "pidfile",
                    format!("{p:?} is not an absolute path; give one like \"/run/nginx.pid\""),
                ))
            }
            None => None,
        };
        Ok(Self {
            name: spec.name.clone(),
            group: ctx.group,
            resource: ctx.resource,
            events: ctx.events.clone(),
            choice,
            service,
            script,
            pidfile,
            stop_timeout_ms: spec.stop_timeout_ms,
            watch: Mutex::new(None),
        })
    }

    /// The manager on this node, chosen anew at each call (cheap: one `stat`).
    fn manager(&self) -> Manager {
        let systemd = match self.choice {
            Choice::Systemd => true,
            Choice::Lsb => false,
            Choice::Auto => Path::new(SYSTEMD_RUNNING).is_dir(),
        };
        if systemd {
            Manager::Systemd {
                unit: unit_name(&self.service),
            }
        } else {
            Manager::Lsb {
                script: self.script.clone(),
            }
        }
    }

    /// Runs `program args…`; its exit code (`None`: killed by a signal) and output.
    async fn run(&self, program: &Path, args: &[&str]) -> Result<(Option<i32>, String), String> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", PATH)
            .env("LANG", "C");
        prepare_child(&mut cmd);
        let fin = run_captured(cmd, true).await?;
        let stdout = String::from_utf8_lossy(&fin.stdout).into_owned();
        let out = if fin.output.trim().is_empty() {
            stdout
        } else {
            format!("{stdout}{}", fin.output)
        };
        Ok((fin.status.code(), out))
    }

    async fn systemctl(&self, args: &[&str]) -> Result<(Option<i32>, String), String> {
        let program = find_program("systemctl", PATH).map_err(|e| format!("systemctl: {e}"))?;
        self.run(&program, args).await
    }

    /// `systemctl show -p KEY…`: the values, by key.
    async fn unit_show(&self, unit: &str, keys: &[&str]) -> Result<Vec<(String, String)>, String> {
        let props = keys.join(",");
        let (code, out) = self
            .systemctl(&["show", "--no-pager", "-p", &props, "--", unit])
            .await?;
        if code != Some(0) {
            return Err(format!(
                "systemctl show {unit} {}{}",
                exit(code),
                last_words(&out)
            ));
        }
        Ok(parse_show(&out))
    }

    /// `systemctl is-active`'s word for the unit.
    async fn unit_state(&self, unit: &str) -> Result<String, String> {
        let (_, out) = self.systemctl(&["is-active", "--", unit]).await?;
        Ok(out.lines().next().unwrap_or("").trim().to_string())
    }

    /// The LSB `status` exit code.
    async fn lsb_status(&self, script: &Path) -> Result<(Option<i32>, String), String> {
        self.run(script, &["status"]).await
    }

    /// Starts watching the main process (`pid`), replacing an earlier watch.
    fn watch_pid(&self, pid: u32) {
        let mut slot = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|w| w.pid == pid) {
            return;
        }
        let fd = match pidfd_open(pid).map_err(|e| e.to_string()).and_then(|fd| {
            // SAFETY: the OwnedFd is moved into the AsyncFd, which alone owns and closes it.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| e.to_string())
        }) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(resource = %self.name, pid, error = %e, "cannot watch the service's main process: its exit is seen at the next monitor");
                *slot = None;
                return;
            }
        };
        let expected = Arc::new(AtomicBool::new(false));
        let (flag, events) = (expected.clone(), self.events.clone());
        let (group, resource, name) = (self.group, self.resource, self.name.clone());
        let task = tokio::spawn(async move {
            // A pidfd turns readable when its process ends.
            let _ = fd.readable().await;
            if flag.load(Ordering::SeqCst) {
                return;
            }
            tracing::warn!(resource = %name, pid, "the service's main process exited");
            let _ = events
                .send(AgentEvent::Exited {
                    group,
                    resource,
                    pid,
                    reason: "the service's main process exited".to_string(),
                })
                .await;
        });
        *slot = Some(Watch {
            pid,
            expected,
            _task: AbortOnDrop(task),
        });
    }

    /// Stops watching: what ends from now on is expected.
    fn unwatch(&self) {
        let mut slot = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = slot.take() {
            w.expected.store(true, Ordering::SeqCst);
        }
    }

    /// After a start or an adoption: watch the main process, where it can be known.
    async fn watch_main(&self, manager: &Manager) {
        let pid = match manager {
            Manager::Systemd { unit } => match self.unit_show(unit, &["MainPID"]).await {
                Ok(props) => value(&props, "MainPID").and_then(|v| v.parse::<u32>().ok()),
                Err(e) => {
                    tracing::warn!(resource = %self.name, error = %e, "cannot read the unit's main process");
                    None
                }
            },
            Manager::Lsb { .. } => self.pidfile.as_deref().and_then(read_pid),
        };
        match pid {
            Some(pid) if pid > 0 => self.watch_pid(pid),
            _ => self.unwatch(),
        }
    }

    /// Is the unit missing or masked here? `Some(reason)` if so.
    async fn unit_missing(&self, unit: &str) -> Option<String> {
        let props = self.unit_show(unit, &["LoadState"]).await.ok()?;
        match value(&props, "LoadState") {
            Some("not-found") => Some(format!("no unit {unit} on this node")),
            Some("masked") => Some(format!("unit {unit} is masked on this node")),
            _ => None,
        }
    }

    async fn status_report(&self, manager: &Manager, probe: bool) -> Report {
        match manager {
            Manager::Systemd { unit } => {
                let state = match self.unit_state(unit).await {
                    Ok(s) => s,
                    Err(e) => return Report::failed(e),
                };
                let report = systemd_state(unit, &state, probe);
                if probe && report.outcome == Outcome::Ok {
                    self.watch_main(manager).await;
                }
                report
            }
            Manager::Lsb { script } => {
                if probe && !script.exists() {
                    // What is not installed here cannot be running here.
                    return Report::not_running(format!(
                        "{} is not installed here",
                        script.display()
                    ));
                }
                match self.lsb_status(script).await {
                    Ok((code, out)) => {
                        let report = lsb_status_report(script, code, &out);
                        if probe && report.outcome == Outcome::Ok {
                            self.watch_main(manager).await;
                        }
                        report
                    }
                    Err(e) => Report::failed(e),
                }
            }
        }
    }
}

/// "exited with 3" or "was killed by a signal".
pub(super) fn exit(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exited with {c}"),
        None => "was killed by a signal".to_string(),
    }
}

/// The first number in a pidfile.
fn read_pid(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[async_trait]
impl Agent for Service {
    async fn validate(&self) -> Result<(), AgentError> {
        let err = |param: &str, problem: String| param_err(&self.name, param, problem);
        match self.manager() {
            Manager::Lsb { script } => {
                let param = if lookup_given(self) { "script" } else { "name" };
                find_program(&script.display().to_string(), PATH)
                    .map(|_| ())
                    .map_err(|e| err(param, format!("the init script: {e}")))
            }
            Manager::Systemd { unit } => {
                let props = self
                    .unit_show(&unit, &["LoadState", "UnitFileState", "Restart"])
                    .await
                    .map_err(|e| err("name", e))?;
                unit_problem(&unit, &props).map_or(Ok(()), |p| Err(err("name", p)))
            }
        }
    }

    async fn start(&self, _epoch: u64) -> Report {
        let manager = self.manager();
        let report = match &manager {
            Manager::Systemd { unit } => {
                match self
                    .systemctl(&["start", "--no-ask-password", "--", unit])
                    .await
                {
                    Err(e) => Report::failed(e),
                    Ok((Some(0), _)) => match self.unit_state(unit).await {
                        Ok(s) if s == "active" || s == "reloading" => {
                            Report::ok(format!("{unit} started"))
                        }
                        Ok(s) => Report::failed(format!("{unit} started but is {s}")),
                        Err(e) => Report::failed(e),
                    },
                    Ok((code, out)) => match self.unit_missing(unit).await {
                        Some(why) => Report {
                            outcome: Outcome::FailedHard,
                            reason: why,
                        },
                        None => Report::failed(format!(
                            "systemctl start {unit} {}{}",
                            exit(code),
                            last_words(&out)
                        )),
                    },
                }
            }
            Manager::Lsb { script } => {
                if !script.exists() {
                    return Report {
                        outcome: Outcome::FailedHard,
                        reason: format!("{} is not installed here", script.display()),
                    };
                }
                match self.run(script, &["start"]).await {
                    Err(e) => Report::failed(e),
                    Ok((Some(0), _)) => match self.lsb_status(script).await {
                        Ok((Some(0), _)) => Report::ok(format!("{} started", script.display())),
                        Ok((code, out)) => Report::failed(format!(
                            "{} start succeeded but status {}{}",
                            script.display(),
                            exit(code),
                            last_words(&out)
                        )),
                        Err(e) => Report::failed(e),
                    },
                    Ok((code, out)) => Report {
                        outcome: lsb_action_outcome(code),
                        reason: format!(
                            "{} start {} ({}){}",
                            script.display(),
                            exit(code),
                            lsb_action_meaning(code),
                            last_words(&out)
                        ),
                    },
                }
            }
        };
        if report.outcome == Outcome::Ok {
            self.watch_main(&manager).await;
        }
        report
    }

    async fn stop(&self) -> Report {
        self.unwatch();
        match self.manager() {
            Manager::Systemd { unit } => {
                match self
                    .systemctl(&["stop", "--no-ask-password", "--", &unit])
                    .await
                {
                    Err(e) => Report::failed(e),
                    Ok((Some(0), _)) => Report::ok(format!("{unit} stopped")),
                    Ok((code, out)) => match self.unit_missing(&unit).await {
                        Some(why) => Report::ok(format!("{why}: nothing to stop")),
                        None => Report::failed(format!(
                            "systemctl stop {unit} {}{}",
                            exit(code),
                            last_words(&out)
                        )),
                    },
                }
            }
            Manager::Lsb { script } => {
                if !script.exists() {
                    return Report::ok(format!(
                        "{} is not installed here: nothing to stop",
                        script.display()
                    ));
                }
                match self.run(&script, &["stop"]).await {
                    Err(e) => Report::failed(e),
                    Ok((Some(0), _)) => Report::ok(format!("{} stopped", script.display())),
                    Ok((code, out)) => match self.lsb_status(&script).await {
                        Ok((Some(1..=3), _)) => Report::ok(format!(
                            "{} stop {}, but status says not running",
                            script.display(),
                            exit(code)
                        )),
                        _ => Report::failed(format!(
                            "{} stop {} ({}){}",
                            script.display(),
                            exit(code),
                            lsb_action_meaning(code),
                            last_words(&out)
                        )),
                    },
                }
            }
        }
    }

    async fn monitor(&self, _depth: Depth) -> Report {
        self.status_report(&self.manager(), false).await
    }

    async fn probe(&self) -> Report {
        self.status_report(&self.manager(), true).await
    }

    fn hard_stop(&self) -> Option<HardStop> {
        let env = vec![
            ("PATH".to_string(), PATH.to_string()),
            ("LANG".to_string(), "C".to_string()),
        ];
        let timeout_ms = u64::from(self.stop_timeout_ms);
        Some(match self.manager() {
            Manager::Systemd { unit } => HardStop::Command {
                resource: self.name.clone(),
                program: find_program("systemctl", PATH)
                    .unwrap_or_else(|_| PathBuf::from("/usr/bin/systemctl")),
                args: vec!["kill".into(), "--signal=SIGKILL".into(), "--".into(), unit],
                env,
                timeout_ms,
            },
            Manager::Lsb { script } => HardStop::Command {
                resource: self.name.clone(),
                program: script,
                args: vec!["stop".into()],
                env,
                timeout_ms,
            },
        })
    }
}

/// Whether `script` was given (else the script is named after `name`).
fn lookup_given(s: &Service) -> bool {
    s.script != Path::new(INIT_DIR).join(&s.service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::agent_resource;

    fn build(params: &[(&str, &str)]) -> Result<Service, AgentError> {
        let (events, _) = mpsc::channel(1);
        let ctx = AgentContext {
            group: 0,
            resource: 0,
            name: "svc".into(),
            run_dir: PathBuf::from("/nonexistent"),
            events,
        };
        Service::new(&agent_resource("svc", "service", params), &ctx)
    }

    #[test]
    fn parameters_are_checked_at_their_field() {
        let problem = |params: &[(&str, &str)]| match build(params) {
            Err(AgentError::Param { param, problem, .. }) => format!("{param}: {problem}"),
            other => panic!("expected a parameter error, got {other:?}"),
        };
        assert!(problem(&[]).starts_with("name: is missing"));
        assert!(problem(&[("name", "../etc/passwd")]).starts_with("name: "));
        assert!(problem(&[("name", "a b")]).starts_with("name: "));
        assert!(problem(&[("name", "x"), ("manager", "upstart")]).starts_with("manager: "));
        assert!(problem(&[("name", "x"), ("script", "init.d/x")]).starts_with("script: "));
        assert!(problem(&[
            ("name", "x"),
            ("manager", "systemd"),
            ("script", "/etc/init.d/x")
        ])
        .starts_with("script: is for LSB"));
        assert!(problem(&[("name", "x"), ("pidfile", "x.pid")]).starts_with("pidfile: "));
        assert!(problem(&[("name", "x"), ("nmae", "y")]).starts_with("nmae: unknown parameter"));
        let s = build(&[("name", "nginx")]).unwrap();
        assert_eq!(s.script, PathBuf::from("/etc/init.d/nginx"));
    }
}
