//! The `application` agent: one long-running process (design.md §7).
//!
//! # Parameters
//!
//! All values are strings (`params = { … }` in `cluster.toml`). Lists are split like a POSIX
//! shell splits words (quotes and backslashes work; no variables, globs or pipes: no shell
//! runs).
//!
//! | parameter | meaning |
//! |---|---|
//! | `command` | Required. The program and its arguments, e.g. `"/usr/bin/redis-server /etc/redis.conf"`. The program must stay in the foreground: its exit is the resource's exit. A program without `/` is looked up in `PATH`. |
//! | `args` | More arguments, appended to `command`. |
//! | `env` | Extra environment variables as `NAME=VALUE` words, e.g. `"PGDATA=/srv/db LANG='C.UTF-8'"`. The process otherwise inherits the daemon's environment (plus `HOME`, `USER`, `LOGNAME` of `user`). |
//! | `cwd` | Absolute working directory. Default: the daemon's (`/` under systemd). |
//! | `user` | Run as this user (its primary group and supplementary groups). Default: the daemon's user (root). |
//! | `pidfile` | Absolute path of the agent's pidfile. Default: `<run dir>/<resource>.pid`. |
//! | `log_file` | Absolute path that stdout and stderr are appended to. Default: discarded. |
//! | `check_command` | Quick health check: a program run like `command` (same user, env, cwd); exit 0 = healthy. |
//! | `check_tcp` | Quick health check: `"host:port"` accepts a TCP connection. |
//! | `check_http` | Quick health check: `"http://host[:port]/path"` answers a GET with 2xx or 3xx. Plain HTTP only. |
//! | `deep_check_command`, `deep_check_tcp`, `deep_check_http` | The same, for the deep health check. |
//! | `stop_timeout_ms` | How long `stop` waits after SIGTERM before SIGKILL. Must be below the resource's `stop_timeout_ms` (the caller's deadline for the whole stop). Default: half of it. |
//!
//! At most one check per depth. Without a check, a monitor of that depth only asks whether the
//! process is alive.
//!
//! # How it runs
//!
//! - `start` spawns the process in a session of its own (`setsid`), stdin from `/dev/null`, so
//!   a daemon restart neither signals nor moves it (design.md: a core restart never moves or
//!   restarts a resource). It writes the pidfile `"<pid> <start time>\n"`, the start time
//!   being field 22 of `/proc/<pid>/stat`, so that a recycled pid is never taken for ours.
//!   With a quick check configured, start succeeds once the check passes (polled, bounded by
//!   the resource's `start_timeout_ms`). Starting an instance that already runs (ours, or one
//!   the pidfile names) starts no second copy; it too succeeds once the quick check passes.
//! - The exit of the process is seen at once: a task awaits the child we spawned; an instance
//!   adopted from the pidfile is watched through a pidfd (Linux ≥ 5.3). It is reported as
//!   [`AgentEvent::Exited`] unless our own `stop` caused it.
//! - `stop` sends SIGTERM to the process group, waits `stop_timeout_ms` for the process to
//!   exit, then sends SIGKILL to the group. Once the main process is gone, members of its
//!   group get what is left of that wait to exit too, then are SIGKILLed, also when the main
//!   process had died on its own (nothing of the instance may outlive a stop, or a failover
//!   could run two copies). It removes the pidfile. Stopping a stopped instance is Ok.
//! - `probe` reads the pidfile: same pid and same start time → running, and adopted.
//! - `monitor` asks whether the process is alive, then runs that depth's check.
//!
//! # Where the code is
//!
//! - this file: the [`Application`] type and its [`Agent`] flow (start, stop, monitor, probe,
//!   and finding the instance: the one held, else one adopted from the pidfile);
//! - `params.rs`: the parameters, parsed and checked for syntax only ([`PARAMS`]);
//! - `checks.rs`: the health checks, with the `host:port` and URL parsers and the HTTP status
//!   line;
//! - `process.rs`: spawning in a session, the pidfile, adoption, exit reporting, the process
//!   group, and the user lookup. The lookup sits with the process, not the parameters: it
//!   asks the node (NSS, which may block), while `params.rs` never does, and only the
//!   spawning uses what it finds.

mod checks;
mod params;
mod process;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::checks::Check;
use self::params::{deep_param, quick_param, Params};
use self::process::{group_has_members, sweep_group, Handle, Instance};
use super::process::find_program;
use super::{param_err, Agent, AgentContext, AgentError, AgentEvent, Depth, HardStop, Report};
use crate::policy::spec::{GroupId, ResourceId, ResourceSpec};

pub use self::params::PARAMS;

/// After SIGKILL, how long `stop` waits for the process to be gone before it reports a failed
/// stop. The caller's deadline is normally shorter; this bounds the wait if it is not.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// After the main process exited on SIGTERM, how often `stop` looks whether the rest of its
/// group has gone too (bounded by the SIGTERM wait and by [`GROUP_WAIT_STEPS_MAX`]).
const GROUP_WAIT_STEP: Duration = Duration::from_millis(20);
/// At most this many looks.
const GROUP_WAIT_STEPS_MAX: u32 = 3000;

/// The `application` agent. See the module documentation for parameters and behaviour.
#[derive(Debug)]
pub struct Application {
    /// The resource's name, for messages.
    name: String,
    /// Copied into exit events.
    group: GroupId,
    /// Copied into exit events.
    resource: ResourceId,
    /// Where exits are reported.
    events: mpsc::Sender<AgentEvent>,
    /// The parsed parameters.
    params: Params,
    /// Bound of one quick health check (the resource's quick timeout).
    quick_timeout: Duration,
    /// Bound of one deep health check (the deep timeout, else the quick one).
    deep_timeout: Duration,
    /// How long `start` keeps polling the quick check.
    start_timeout: Duration,
    /// SIGTERM → SIGKILL.
    term_wait: Duration,
    /// The instance we started or adopted, if any.
    instance: Mutex<Option<Instance>>,
}

/// Whether an instance runs, as far as this node can tell.
#[derive(Debug)]
enum Found {
    /// It runs; we hold it (started or adopted).
    Running(Handle),
    /// It does not run (why, for the logs); the pid and start time the pidfile named, if any,
    /// so that `stop` can clear what is left of its process group.
    Gone(String, Option<(u32, u64)>),
    /// We cannot tell (e.g. the pidfile is unreadable): never taken for "not running".
    Unknown(String),
}

impl Application {
    /// Parses and checks the parameters of `spec` (syntax only; [`Agent::validate`] checks
    /// the node).
    pub fn new(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Self, AgentError> {
        let params = Params::parse(spec, &ctx.run_dir)?;
        let term_wait = params::term_wait(spec)?;
        let quick_timeout = Duration::from_millis(u64::from(spec.monitor_quick.timeout_ms.max(1)));
        let deep_timeout = spec
            .monitor_deep
            .map(|d| Duration::from_millis(u64::from(d.timeout_ms.max(1))))
            .unwrap_or(quick_timeout);
        Ok(Self {
            name: spec.name.clone(),
            group: ctx.group,
            resource: ctx.resource,
            events: ctx.events.clone(),
            params,
            quick_timeout,
            deep_timeout,
            start_timeout: Duration::from_millis(u64::from(spec.start_timeout_ms.max(1))),
            term_wait,
            instance: Mutex::new(None),
        })
    }

    /// The main process of the running instance, if one runs (for status displays).
    pub fn pid(&self) -> Option<u32> {
        self.alive().map(|h| h.pid)
    }

    /// The pidfile this agent writes and reads.
    pub fn pidfile(&self) -> &Path {
        &self.params.pidfile
    }

    /// The instance we hold, if it has not exited.
    fn alive(&self) -> Option<Handle> {
        let guard = self.instance.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .map(|i| i.handle.clone())
            .filter(|h| h.exited().is_none())
    }

    fn set_instance(&self, inst: Option<Instance>) {
        *self.instance.lock().unwrap_or_else(|e| e.into_inner()) = inst;
    }

    /// The running instance: the one we hold, else one adopted from the pidfile.
    fn find(&self) -> Found {
        if let Some(h) = self.alive() {
            return Found::Running(h);
        }
        self.adopt()
    }
}

#[async_trait]
impl Agent for Application {
    fn hard_stop(&self) -> Option<HardStop> {
        Some(HardStop::KillGroup {
            resource: self.name.clone(),
            pidfile: self.params.pidfile.clone(),
        })
    }

    async fn validate(&self) -> Result<(), AgentError> {
        let p = &self.params;
        let path_var = p
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        find_program(&p.argv[0], &path_var).map_err(|e| param_err(&self.name, "command", e))?;
        for (param, check) in [
            (quick_param(&p.quick), &p.quick),
            (deep_param(&p.deep), &p.deep),
        ] {
            if let Some(Check::Command(argv)) = check {
                find_program(&argv[0], &path_var).map_err(|e| param_err(&self.name, param, e))?;
            }
        }
        if let Some(dir) = &p.cwd {
            if !dir.is_dir() {
                return Err(param_err(
                    &self.name,
                    "cwd",
                    format!("{} is not a directory on this node", dir.display()),
                ));
            }
        }
        if let Some(log) = &p.log_file {
            match log.parent() {
                Some(d) if d.is_dir() => {}
                _ => {
                    return Err(param_err(
                        &self.name,
                        "log_file",
                        format!(
                            "the directory of {} does not exist on this node; create it",
                            log.display()
                        ),
                    ))
                }
            }
        }
        self.user()
            .await
            .map_err(|e| param_err(&self.name, "user", e))?;
        Ok(())
    }

    async fn start(&self, _epoch: u64) -> Report {
        let h = match self.find() {
            Found::Running(h) => {
                // A stop cut off by its deadline left `expected` set: the instance is wanted
                // again, so its exit is news again.
                h.expected.store(false, Ordering::SeqCst);
                tracing::info!(resource = %self.name, pid = h.pid, "start: already running");
                h
            }
            // Better no start than a second copy.
            Found::Unknown(why) => return Report::failed(why),
            Found::Gone(..) => {
                let user = match self.user().await {
                    Ok(u) => u,
                    Err(e) => return Report::failed(e),
                };
                match self.spawn(user.as_ref()) {
                    Ok(h) => h,
                    Err(e) => return Report::failed(e),
                }
            }
        };
        // Started or found running, it is started once the quick check passes.
        match &self.params.quick {
            Some(check) => self.await_healthy(&h, check).await,
            None => match h.exited() {
                Some(how) => Report::failed(format!("pid {} {how} during start", h.pid)),
                None => Report::ok(format!("pid {} running", h.pid)),
            },
        }
    }

    async fn stop(&self) -> Report {
        let h = match self.find() {
            Found::Running(h) => h,
            Found::Gone(why, last) => {
                // What outlived a main process that died on its own goes now.
                if let Some((pid, start)) = last {
                    sweep_group(pid, start);
                }
                self.remove_pidfile();
                self.set_instance(None);
                return Report::ok(format!("not running ({why})"));
            }
            Found::Unknown(why) => return Report::failed(why),
        };
        h.expected.store(true, Ordering::SeqCst);
        let mut how = "SIGTERM";
        let term_deadline = Instant::now() + self.term_wait;
        h.signal(libc::SIGTERM);
        if h.wait_exit(self.term_wait).await {
            // The rest of the group had the same SIGTERM: it gets what is left of the wait
            // to finish before the sweep below.
            for _ in 0..GROUP_WAIT_STEPS_MAX {
                if !group_has_members(h.pid) || Instant::now() >= term_deadline {
                    break;
                }
                tokio::time::sleep(GROUP_WAIT_STEP).await;
            }
        } else {
            tracing::warn!(
                resource = %self.name,
                pid = h.pid,
                term_wait_ms = self.term_wait.as_millis() as u64,
                "no exit after SIGTERM; sending SIGKILL"
            );
            how = "SIGKILL";
            h.signal(libc::SIGKILL);
            if !h.wait_exit(KILL_WAIT).await {
                return Report::failed(format!(
                    "pid {} still running {} s after SIGKILL",
                    h.pid,
                    KILL_WAIT.as_secs()
                ));
            }
        }
        // Members of the group that outlived the main process go too.
        sweep_group(h.pid, h.start);
        self.remove_pidfile();
        self.set_instance(None);
        tracing::info!(resource = %self.name, pid = h.pid, signal = how, "stopped");
        Report::ok(format!("stopped pid {} ({how})", h.pid))
    }

    async fn monitor(&self, depth: Depth) -> Report {
        let h = match self.find() {
            Found::Running(h) => h,
            Found::Gone(why, _) => return Report::not_running(why),
            Found::Unknown(why) => return Report::failed(why),
        };
        let (check, limit) = match depth {
            Depth::Quick => (&self.params.quick, self.quick_timeout),
            Depth::Deep => (&self.params.deep, self.deep_timeout),
        };
        let Some(check) = check else {
            return Report::ok(format!("pid {} running", h.pid));
        };
        match self.run_check(check, limit).await {
            Ok(what) => Report::ok(format!("pid {} running; {what}", h.pid)),
            Err(why) => match h.exited() {
                Some(how) => Report::not_running(format!("pid {} {how}", h.pid)),
                None => Report::failed(format!("pid {} running but {why}", h.pid)),
            },
        }
    }

    async fn probe(&self) -> Report {
        match self.find() {
            Found::Running(h) => Report::ok(format!("pid {} running", h.pid)),
            Found::Gone(why, _) => Report::not_running(why),
            Found::Unknown(why) => Report::failed(why),
        }
    }
}
