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

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::pidfd::{pidfd_exited, pidfd_open, pidfd_send_signal};
use super::pidfile;
use super::process::{self, find_program, AbortOnDrop, Credentials, KillGroupOnDrop, SessionSetup};
use tokio::time::Instant;

use super::{known_params, lookup, param_err};
use super::{Agent, AgentContext, AgentError, AgentEvent, Depth, Report};
use crate::policy::spec::{GroupId, ResourceId, ResourceSpec};

/// Every parameter the agent knows; anything else is a typo and refused.
pub const PARAMS: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "user",
    "pidfile",
    "log_file",
    "check_command",
    "check_tcp",
    "check_http",
    "deep_check_command",
    "deep_check_tcp",
    "deep_check_http",
    "stop_timeout_ms",
];

/// After SIGKILL, how long `stop` waits for the process to be gone before it reports a failed
/// stop. The caller's deadline is normally shorter; this bounds the wait if it is not.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// After the main process exited on SIGTERM, how often `stop` looks whether the rest of its
/// group has gone too (bounded by the SIGTERM wait and by [`GROUP_WAIT_STEPS_MAX`]).
const GROUP_WAIT_STEP: Duration = Duration::from_millis(20);
/// At most this many looks.
const GROUP_WAIT_STEPS_MAX: u32 = 3000;
/// Health-check attempts during `start`, at most (the time bound is `start_timeout_ms`).
const START_CHECKS_MAX: u32 = 1000;
/// First pause between two failed health checks during `start`; doubles up to the max.
const START_CHECK_PAUSE_MIN: Duration = Duration::from_millis(50);
/// Longest pause between two failed health checks during `start`.
const START_CHECK_PAUSE_MAX: Duration = Duration::from_millis(1000);
/// The HTTP check reads at most this much of the answer to find its status line.
const HTTP_STATUS_LINE_MAX: usize = 1024;
/// `getpwnam_r`'s buffer grows up to this size, no further.
const PASSWD_BUF_MAX: usize = 1 << 20;

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

/// Parameters, parsed.
#[derive(Debug, Clone)]
struct Params {
    /// Program and arguments (`command` then `args`); never empty.
    argv: Vec<String>,
    /// Extra environment.
    env: Vec<(String, String)>,
    /// Working directory.
    cwd: Option<PathBuf>,
    /// Run as.
    user: Option<String>,
    /// Our pidfile.
    pidfile: PathBuf,
    /// stdout/stderr go here (appended), else nowhere.
    log_file: Option<PathBuf>,
    /// The quick health check.
    quick: Option<Check>,
    /// The deep health check.
    deep: Option<Check>,
}

/// One health check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    /// Run a program; exit 0 = healthy.
    Command(Vec<String>),
    /// Connect to host:port.
    Tcp {
        /// Host name or address (no brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// GET a URL; 2xx/3xx = healthy.
    Http(HttpTarget),
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpTarget {
    /// Host to connect to (no brackets).
    host: String,
    /// Port (80 by default).
    port: u16,
    /// The `Host:` header (the URL's authority as written).
    authority: String,
    /// Path and query, starting with `/`.
    path: String,
}

/// A process we started or adopted.
#[derive(Debug)]
struct Instance {
    /// What operations need; cheap to clone out of the lock.
    handle: Handle,
    /// The task that waits for the exit; aborted when the instance is forgotten.
    _watcher: AbortOnDrop,
}

/// The shared part of an [`Instance`].
#[derive(Debug, Clone)]
struct Handle {
    /// Main process (and process group, since it called setsid).
    pid: u32,
    /// Its start time (`/proc/<pid>/stat` field 22).
    start: u64,
    /// Refers to exactly our process, even after its pid is recycled: signals go through it.
    pidfd: Arc<OwnedFd>,
    /// `Some(how it ended)` once the process has exited.
    exit: watch::Receiver<Option<String>>,
    /// Set by `stop` before it signals: the exit it causes is not reported as an event.
    expected: Arc<AtomicBool>,
}

impl Handle {
    fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Waits until the process has exited, up to `limit`; true if it did.
    async fn wait_exit(&self, limit: Duration) -> bool {
        let mut rx = self.exit.clone();
        let exited = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
        matches!(exited, Ok(Ok(_)))
    }

    /// Signals the main process (through its pidfd) and its process group.
    fn signal(&self, sig: libc::c_int) {
        // The pidfd cannot hit a recycled pid. The group is signalled by id: while any member
        // lives, the kernel does not hand its id to another process.
        let _ = pidfd_send_signal(&self.pidfd, sig);
        process::kill_group(self.pid, sig);
    }
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

/// A user to run as, looked up on this node.
#[derive(Debug, Clone)]
struct User {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
    home: String,
    groups: Vec<libc::gid_t>,
}

impl Application {
    /// Parses and checks the parameters of `spec` (syntax only; [`Agent::validate`] checks
    /// the node).
    pub fn new(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Self, AgentError> {
        let params = Params::parse(spec, &ctx.run_dir)?;
        let stop_ms = u64::from(spec.stop_timeout_ms);
        let term_wait_ms = match lookup(spec, "stop_timeout_ms") {
            None => (stop_ms / 2).max(1),
            Some(v) => {
                let ms: u64 = v.trim().parse().ok().filter(|&ms| ms > 0).ok_or_else(|| {
                    param_err(
                        &spec.name,
                        "stop_timeout_ms",
                        format!("{v:?} is not a positive number of milliseconds"),
                    )
                })?;
                if stop_ms > 0 && ms >= stop_ms {
                    return Err(param_err(
                        &spec.name,
                        "stop_timeout_ms",
                        format!(
                            "{ms} ms is not below the resource's stop_timeout_ms ({stop_ms} ms): \
                             the stop would be cut off before SIGKILL is sent; give a smaller \
                             value or raise the resource's stop_timeout_ms"
                        ),
                    ));
                }
                ms
            }
        };
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
            term_wait: Duration::from_millis(term_wait_ms),
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

    /// Adopts the instance named by the pidfile if it is still that very process.
    fn adopt(&self) -> Found {
        let path = &self.params.pidfile;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Found::Gone(format!("no pidfile {}", path.display()), None)
            }
            Err(e) => {
                return Found::Unknown(format!("cannot read pidfile {}: {e}", path.display()))
            }
        };
        // We write pidfiles atomically: one we cannot parse is not ours to trust.
        let Some((pid, start)) = pidfile::parse(&text) else {
            let why = format!("pidfile {} is malformed: {text:?}", path.display());
            return Found::Gone(why, None);
        };
        let same = |pid| match pidfile::start_time(pid) {
            Ok(t) if t == start => Ok(true),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("pid {pid}: /proc/{pid}/stat: {e}")),
        };
        let stale = || {
            let why = format!("pid {pid} of the pidfile is gone (stale pidfile)");
            Found::Gone(why, Some((pid, start)))
        };
        match same(pid) {
            Ok(true) => {}
            Ok(false) => return stale(),
            Err(e) => return Found::Unknown(e),
        }
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return stale(),
            Err(e) => return Found::Unknown(format!("pid {pid}: pidfd_open: {e}")),
        };
        // The pid may have been recycled between the first look and pidfd_open: look again
        // now that the pidfd pins whichever process it is.
        match same(pid) {
            Ok(true) => {}
            Ok(false) => return stale(),
            Err(e) => return Found::Unknown(e),
        }
        if pidfd_exited(&pidfd) {
            return Found::Gone(format!("pid {pid} has exited"), Some((pid, start)));
        }
        let watched = pidfd.try_clone().map_err(|e| e.to_string()).and_then(|fd| {
            // SAFETY: the OwnedFd is moved into the AsyncFd, which alone owns and closes it.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| e.to_string())
        });
        let async_fd = match watched {
            Ok(fd) => fd,
            Err(e) => return Found::Unknown(format!("pid {pid}: cannot watch its pidfd: {e}")),
        };
        let (tx, rx) = watch::channel(None);
        let handle = Handle {
            pid,
            start,
            pidfd: Arc::new(pidfd),
            exit: rx,
            expected: Arc::new(AtomicBool::new(false)),
        };
        let reporter = self.reporter(&handle, tx);
        let task = tokio::spawn(async move {
            // A pidfd turns readable when its process terminates.
            let _ = async_fd.readable().await;
            reporter.report("exited (adopted process: exit status unknown)".to_string());
        });
        self.set_instance(Some(Instance {
            handle: handle.clone(),
            _watcher: AbortOnDrop(task),
        }));
        tracing::info!(resource = %self.name, pid, "adopted running instance from pidfile");
        Found::Running(handle)
    }

    fn reporter(&self, h: &Handle, tx: watch::Sender<Option<String>>) -> ExitReporter {
        ExitReporter {
            tx,
            expected: h.expected.clone(),
            events: self.events.clone(),
            name: self.name.clone(),
            group: self.group,
            resource: self.resource,
            pid: h.pid,
        }
    }

    /// Spawns the process and records it. No `.await` between spawn and record, so a caller
    /// that gives up on `start` never loses a process.
    fn spawn(&self, user: Option<&User>) -> Result<Handle, String> {
        if let Some(dir) = self.params.pidfile.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut cmd = self.command(&self.params.argv, user, true)?;
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", self.params.argv[0]))?;
        let Some(pid) = child.id() else {
            return Err("the process vanished at once".to_string());
        };
        let kill_now = |child: &mut tokio::process::Child| {
            process::kill_group(pid, libc::SIGKILL);
            let _ = child.start_kill();
        };
        let ids = pidfile::start_time(pid)
            .map_err(|e| format!("pid {pid}: /proc/{pid}/stat: {e}"))
            .and_then(|st| {
                pidfd_open(pid)
                    .map(|fd| (st, fd))
                    .map_err(|e| format!("pid {pid}: pidfd_open: {e}"))
            });
        let (start, pidfd) = match ids {
            Ok(v) => v,
            Err(e) => {
                kill_now(&mut child);
                return Err(e);
            }
        };
        if let Err(e) = pidfile::write(&self.params.pidfile, pid, start) {
            // Without a pidfile a restarted daemon could not find this process and would
            // start a second copy: refuse to run it.
            kill_now(&mut child);
            return Err(format!(
                "cannot write pidfile {}: {e}",
                self.params.pidfile.display()
            ));
        }
        let (tx, rx) = watch::channel(None);
        let handle = Handle {
            pid,
            start,
            pidfd: Arc::new(pidfd),
            exit: rx,
            expected: Arc::new(AtomicBool::new(false)),
        };
        let reporter = self.reporter(&handle, tx);
        let task = tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(e) => format!("exited (wait failed: {e})"),
            };
            reporter.report(how);
        });
        self.set_instance(Some(Instance {
            handle: handle.clone(),
            _watcher: AbortOnDrop(task),
        }));
        tracing::info!(resource = %self.name, pid, "started");
        Ok(handle)
    }

    /// A command for the application or one of its checks: its own session, the user, cwd
    /// and environment of the resource.
    fn command(
        &self,
        argv: &[String],
        user: Option<&User>,
        with_log: bool,
    ) -> Result<tokio::process::Command, String> {
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null());
        if let Some(u) = user {
            cmd.env("HOME", &u.home)
                .env("USER", &u.name)
                .env("LOGNAME", &u.name);
        }
        cmd.envs(self.params.env.iter().map(|(k, v)| (k, v)));
        match (&self.params.log_file, with_log) {
            (Some(path), true) => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    // The daemon opens it as root: never through a planted symlink.
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(|e| format!("cannot open log_file {}: {e}", path.display()))?;
                let f2 = f
                    .try_clone()
                    .map_err(|e| format!("log_file {}: {e}", path.display()))?;
                cmd.stdout(Stdio::from(f)).stderr(Stdio::from(f2));
            }
            _ => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        // Switch user only if it is another one (a non-root daemon cannot setgroups).
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let credentials = user.filter(|u| u.uid != me).map(|u| Credentials {
            uid: u.uid,
            gid: u.gid,
            groups: u.groups.clone(),
        });
        let cwd = match &self.params.cwd {
            Some(p) => Some(
                CString::new(p.as_os_str().as_bytes())
                    .map_err(|_| format!("cwd {} contains a NUL byte", p.display()))?,
            ),
            None => None,
        };
        let setup = SessionSetup {
            credentials,
            cwd,
            ..SessionSetup::default()
        };
        process::in_own_session(&mut cmd, setup);
        Ok(cmd)
    }

    /// The user to run as, looked up now (NSS may block: off the runtime's threads).
    async fn user(&self) -> Result<Option<User>, String> {
        let Some(name) = self.params.user.clone() else {
            return Ok(None);
        };
        let found = tokio::task::spawn_blocking(move || lookup_user(&name))
            .await
            .map_err(|e| format!("user lookup: {e}"))?;
        match found {
            Ok(Some(u)) => Ok(Some(u)),
            Ok(None) => Err(format!(
                "user {:?} does not exist on this node",
                self.params.user.as_deref().unwrap_or_default()
            )),
            Err(e) => Err(format!("user lookup: {e}")),
        }
    }

    /// Runs one health check, bounded by `limit`. `Ok(what passed)` or `Err(why not)`.
    async fn run_check(&self, check: &Check, limit: Duration) -> Result<String, String> {
        match tokio::time::timeout(limit, self.run_check_unbounded(check)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{} gave no answer within {} ms",
                check.describe(),
                limit.as_millis()
            )),
        }
    }

    async fn run_check_unbounded(&self, check: &Check) -> Result<String, String> {
        match check {
            Check::Command(argv) => {
                let user = self.user().await?;
                let mut cmd = self.command(argv, user.as_ref(), false)?;
                cmd.kill_on_drop(true);
                let mut child = cmd
                    .spawn()
                    .map_err(|e| format!("cannot run check {:?}: {e}", argv[0]))?;
                // If the check is cut off (timeout), its whole group goes with it.
                let _group = KillGroupOnDrop(child.id());
                let status = child
                    .wait()
                    .await
                    .map_err(|e| format!("check {:?}: {e}", argv[0]))?;
                if status.success() {
                    Ok(format!("check {:?} passed", argv[0]))
                } else {
                    Err(format!("check {:?} {}", argv[0], describe_exit(status)))
                }
            }
            Check::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("{}: {e}", check.describe()))?;
                // With nothing listening on a local port of the ephemeral range, TCP may
                // connect the socket to itself (simultaneous open): that is no server.
                if s.local_addr().ok() == s.peer_addr().ok() {
                    return Err(format!("{}: nothing listens", check.describe()));
                }
                Ok(format!("{} accepts connections", check.describe()))
            }
            Check::Http(t) => match http_get_status(t).await {
                Ok(code) if (200..400).contains(&code) => {
                    Ok(format!("{} answered {code}", check.describe()))
                }
                Ok(code) => Err(format!("{} answered {code}", check.describe())),
                Err(e) => Err(format!("{}: {e}", check.describe())),
            },
        }
    }

    /// During start: polls the quick check until it passes, the process exits, or
    /// `start_timeout` has passed (and at most [`START_CHECKS_MAX`] times).
    async fn await_healthy(&self, h: &Handle, check: &Check) -> Report {
        let deadline = Instant::now() + self.start_timeout;
        let mut pause = START_CHECK_PAUSE_MIN;
        let mut last = String::new();
        for _ in 0..START_CHECKS_MAX {
            if let Some(how) = h.exited() {
                return Report::failed(format!("pid {} {how} during start", h.pid));
            }
            match self.run_check(check, self.quick_timeout).await {
                Ok(what) => return Report::ok(format!("pid {} running; {what}", h.pid)),
                Err(why) => last = why,
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(START_CHECK_PAUSE_MAX);
        }
        Report::failed(format!(
            "pid {} started but its quick check did not pass within start_timeout_ms \
             ({} ms): {last}",
            h.pid,
            self.start_timeout.as_millis()
        ))
    }

    fn remove_pidfile(&self) {
        match std::fs::remove_file(&self.params.pidfile) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                resource = %self.name,
                pidfile = %self.params.pidfile.display(),
                error = %e,
                "cannot remove pidfile"
            ),
        }
    }
}

#[async_trait]
impl Agent for Application {
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

/// What the exit-watch task needs to report an exit.
struct ExitReporter {
    tx: watch::Sender<Option<String>>,
    expected: Arc<AtomicBool>,
    events: mpsc::Sender<AgentEvent>,
    name: String,
    group: GroupId,
    resource: ResourceId,
    pid: u32,
}

impl ExitReporter {
    /// Records the exit and, unless `stop` caused it, sends the event.
    fn report(self, how: String) {
        self.tx.send_replace(Some(how.clone()));
        if self.expected.load(Ordering::SeqCst) {
            return;
        }
        tracing::warn!(resource = %self.name, pid = self.pid, how = %how, "process exited");
        let ev = AgentEvent::Exited {
            group: self.group,
            resource: self.resource,
            pid: self.pid,
            reason: how,
        };
        // Never block the watcher on a full channel: hand the send to a task of its own.
        let events = self.events;
        tokio::spawn(async move {
            let _ = events.send(ev).await;
        });
    }
}

/// SIGKILLs what is left of an instance's process group once its main process `pid` (started
/// at `start`) is gone. While any member lives the kernel keeps the group's id from being
/// handed out; the one risk is a recycled `pid` that made itself a group leader, and then a
/// process `pid` with another start time exists: such a group is not ours and is left alone.
fn sweep_group(pid: u32, start: u64) {
    match pidfile::start_time(pid) {
        Ok(t) if t != start => {}
        // Gone, or still our (zombie or dying) process.
        _ => {
            process::kill_group(pid, libc::SIGKILL);
        }
    }
}

/// Whether any live process (not a zombie) is left in group `pgid`. Zombies do not count: an
/// orphan waits for init to reap it, and some inits (in containers) take their time.
fn group_has_members(pgid: u32) -> bool {
    if !process::group_exists(pgid) {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            // After the name: state (field 3), ppid (4), pgrp (5).
            let fields = stat.rfind(')').map(|i| stat[i + 1..].split_whitespace());
            let mut f = fields.into_iter().flatten();
            let state = f.next();
            let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        })
}

impl Check {
    fn describe(&self) -> String {
        match self {
            Check::Command(argv) => format!("check {:?}", argv[0]),
            Check::Tcp { host, port } => format!("tcp {host}:{port}"),
            Check::Http(t) => format!("http://{}{}", t.authority, t.path),
        }
    }
}

fn quick_param(c: &Option<Check>) -> &'static str {
    match c {
        Some(Check::Tcp { .. }) => "check_tcp",
        Some(Check::Http(_)) => "check_http",
        _ => "check_command",
    }
}

fn deep_param(c: &Option<Check>) -> &'static str {
    match c {
        Some(Check::Tcp { .. }) => "deep_check_tcp",
        Some(Check::Http(_)) => "deep_check_http",
        _ => "deep_check_command",
    }
}

impl Params {
    fn parse(spec: &ResourceSpec, run_dir: &Path) -> Result<Self, AgentError> {
        let name = spec.name.as_str();
        let err = |param: &str, problem: String| param_err(name, param, problem);
        known_params(spec, "an application", PARAMS)?;
        let words = |param: &str| -> Result<Vec<String>, AgentError> {
            match lookup(spec, param) {
                None => Ok(Vec::new()),
                Some(v) => shell_words::split(v).map_err(|e| {
                    err(
                        param,
                        format!("{v:?} cannot be split into words ({e}); balance the quotes"),
                    )
                }),
            }
        };
        let mut argv = words("command")?;
        if argv.is_empty() {
            return Err(err(
                "command",
                "is missing or empty; give the program and its arguments, e.g. \
                 command = \"/usr/bin/redis-server /etc/redis.conf\""
                    .to_string(),
            ));
        }
        argv.extend(words("args")?);
        let mut env = Vec::new();
        for word in words("env")? {
            let Some((k, v)) = word.split_once('=').filter(|(k, _)| is_env_name(k)) else {
                return Err(err(
                    "env",
                    format!("{word:?} is not NAME=VALUE; write words like \"A=1 B='two words'\""),
                ));
            };
            env.push((k.to_string(), v.to_string()));
        }
        let abs = |param: &str| -> Result<Option<PathBuf>, AgentError> {
            match lookup(spec, param) {
                None => Ok(None),
                Some(v) if v.starts_with('/') && !v.contains('\0') => Ok(Some(PathBuf::from(v))),
                Some(v) => Err(err(
                    param,
                    format!("{v:?} is not an absolute path; give one starting with /"),
                )),
            }
        };
        let cwd = abs("cwd")?;
        let log_file = abs("log_file")?;
        let pidfile = match abs("pidfile")? {
            Some(p) => p,
            None if !name.is_empty() && !name.contains('/') && name != ".." && name != "." => {
                run_dir.join(format!("{name}.pid"))
            }
            None => {
                return Err(err(
                    "pidfile",
                    "the resource's name cannot name a file; set pidfile to an absolute path"
                        .to_string(),
                ))
            }
        };
        let user = match lookup(spec, "user").map(str::trim) {
            None => None,
            Some(u) if !u.is_empty() && !u.contains(['\0', ' ', ':', '/']) => Some(u.to_string()),
            Some(u) => {
                return Err(err(
                    "user",
                    format!("{u:?} is not a user name; give one like \"postgres\""),
                ))
            }
        };
        let quick = parse_depth(spec, ["check_command", "check_tcp", "check_http"])?;
        let deep = parse_depth(
            spec,
            ["deep_check_command", "deep_check_tcp", "deep_check_http"],
        )?;
        Ok(Params {
            argv,
            env,
            cwd,
            user,
            pidfile,
            log_file,
            quick,
            deep,
        })
    }
}

/// The check of one depth from its three parameters (command, tcp, http): at most one.
fn parse_depth(spec: &ResourceSpec, keys: [&str; 3]) -> Result<Option<Check>, AgentError> {
    let given: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| lookup(spec, k).is_some())
        .collect();
    if given.len() > 1 {
        return Err(param_err(
            &spec.name,
            given[1],
            format!(
                "{} are both set; give one check per depth",
                given.join(" and ")
            ),
        ));
    }
    let Some(&key) = given.first() else {
        return Ok(None);
    };
    let v = lookup(spec, key).unwrap_or_default();
    let err = |problem: String| param_err(&spec.name, key, problem);
    let check = if key == keys[0] {
        let argv = shell_words::split(v)
            .map_err(|e| err(format!("{v:?} cannot be split into words ({e})")))?;
        if argv.is_empty() {
            return Err(err(
                "is empty; give a program, e.g. \"/usr/bin/pg_isready -q\"".to_string(),
            ));
        }
        Check::Command(argv)
    } else if key == keys[1] {
        let (host, port) = parse_host_port(v, None).map_err(err)?;
        Check::Tcp { host, port }
    } else {
        Check::Http(parse_http_url(v).map_err(err)?)
    };
    Ok(Some(check))
}

fn is_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `host:port`, `[v6]:port`, or (with a default port) `host` / `[v6]`.
fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("{s:?} is not host:port; write e.g. \"127.0.0.1:5432\" or \"[::1]:5432\"");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
        None => default_port.ok_or_else(bad)?,
    };
    Ok((host.to_string(), port))
}

fn parse_http_url(s: &str) -> Result<HttpTarget, String> {
    if s.starts_with("https://") {
        return Err(format!(
            "{s:?}: https is not supported; check a plain-HTTP endpoint or use a tcp check"
        ));
    }
    let rest = s.strip_prefix("http://").ok_or_else(|| {
        format!("{s:?} is not an http:// URL; write e.g. \"http://127.0.0.1:8080/health\"")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!("{s:?}: user:password@ in the URL is not supported"));
    }
    if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?}: the path contains spaces or control characters"
        ));
    }
    let (host, port) = parse_host_port(authority, Some(80))
        .map_err(|_| format!("{s:?}: bad host or port in the URL"))?;
    Ok(HttpTarget {
        host,
        port,
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

/// A minimal HTTP/1.1 GET: the status code of the answer.
async fn http_get_status(t: &HttpTarget) -> io::Result<u16> {
    let mut stream = TcpStream::connect((t.host.as_str(), t.port)).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: eterne-check\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        t.path, t.authority
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < HTTP_STATUS_LINE_MAX {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not an HTTP answer: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(64)])
            ),
        )
    })
}

/// `HTTP/1.x NNN ...` → NNN.
fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// `exited with status N` / `killed by signal N`.
fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "exited".to_string(),
    }
}

/// `getpwnam_r` and `getgrouplist`. `Ok(None)`: no such user.
fn lookup_user(name: &str) -> io::Result<Option<User>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in user name"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: passwd is plain old data; zeroed is a valid value to be filled in.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf's length is passed.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < PASSWD_BUF_MAX {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        let home = if pw.pw_dir.is_null() {
            "/".to_string()
        } else {
            // SAFETY: getpwnam_r filled pw_dir with a NUL-terminated string inside buf.
            unsafe { std::ffi::CStr::from_ptr(pw.pw_dir) }
                .to_string_lossy()
                .into_owned()
        };
        let groups = group_list(&cname, pw.pw_gid)?;
        return Ok(Some(User {
            name: name.to_string(),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            home,
            groups,
        }));
    }
}

/// The user's groups (primary included), as `initgroups` would set them.
fn group_list(cname: &CString, gid: libc::gid_t) -> io::Result<Vec<libc::gid_t>> {
    let mut n: libc::c_int = 64;
    for _ in 0..4 {
        let mut groups: Vec<libc::gid_t> = vec![0; n.max(1) as usize];
        let mut got = n;
        // SAFETY: groups has room for `got` entries; the call writes at most that many and
        // sets `got` to the number needed.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut got) };
        if rc >= 0 {
            groups.truncate(got.max(0) as usize);
            return Ok(groups);
        }
        n = got.max(n * 2);
    }
    Err(io::Error::other(
        "getgrouplist: the group list keeps growing",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(params: &[(&str, &str)]) -> ResourceSpec {
        crate::policy::testutil::agent_resource("app", "application", params)
    }

    fn parse(params: &[(&str, &str)]) -> Result<Params, AgentError> {
        Params::parse(&spec(params), Path::new("/run/eterne"))
    }

    fn param_of(e: AgentError) -> String {
        match e {
            AgentError::Param {
                resource, param, ..
            } => {
                assert_eq!(resource, "app");
                param
            }
            other => panic!("not a parameter error: {other}"),
        }
    }

    #[test]
    fn command_args_env_split_like_a_shell() {
        let p = parse(&[
            ("command", "/bin/prog --name 'two words' \"x y\""),
            ("args", "-v a\\ b"),
            ("env", "A=1 B='two words' C="),
        ])
        .unwrap();
        assert_eq!(
            p.argv,
            ["/bin/prog", "--name", "two words", "x y", "-v", "a b"]
        );
        assert_eq!(
            p.env,
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "two words".to_string()),
                ("C".to_string(), String::new())
            ]
        );
        assert_eq!(p.pidfile, Path::new("/run/eterne/app.pid"));
        assert_eq!(p.quick, None);
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "command"),
            (&[("command", "  ")], "command"),
            (&[("command", "/bin/x 'unbalanced")], "command"),
            (&[("command", "/bin/x"), ("comand", "/bin/y")], "comand"),
            (&[("command", "/bin/x"), ("env", "NOEQUALS")], "env"),
            (&[("command", "/bin/x"), ("env", "1A=2")], "env"),
            (&[("command", "/bin/x"), ("cwd", "relative/dir")], "cwd"),
            (&[("command", "/bin/x"), ("pidfile", "x.pid")], "pidfile"),
            (&[("command", "/bin/x"), ("user", "a b")], "user"),
            (
                &[("command", "/bin/x"), ("check_tcp", "localhost")],
                "check_tcp",
            ),
            (
                &[("command", "/bin/x"), ("check_tcp", "h:99999")],
                "check_tcp",
            ),
            (
                &[("command", "/bin/x"), ("check_http", "https://h/")],
                "check_http",
            ),
            (
                &[("command", "/bin/x"), ("deep_check_http", "ftp://h/")],
                "deep_check_http",
            ),
            (
                &[
                    ("command", "/bin/x"),
                    ("check_tcp", "h:1"),
                    ("check_http", "http://h/"),
                ],
                "check_http",
            ),
        ];
        for (params, want) in cases {
            let e = parse(params).expect_err(&format!("{params:?} must be refused"));
            let msg = e.to_string();
            assert_eq!(param_of(e), *want, "{params:?}: {msg}");
        }
    }

    #[test]
    fn stop_timeout_must_leave_room_for_sigkill() {
        let (tx, _rx) = mpsc::channel(1);
        let ctx = AgentContext {
            group: 0,
            resource: 0,
            name: "app".into(),
            run_dir: "/run/eterne".into(),
            events: tx,
        };
        let ok = Application::new(&spec(&[("command", "/bin/x")]), &ctx).unwrap();
        assert_eq!(ok.term_wait, Duration::from_millis(2000));
        for bad in ["4000", "0", "soon"] {
            let e = Application::new(
                &spec(&[("command", "/bin/x"), ("stop_timeout_ms", bad)]),
                &ctx,
            )
            .unwrap_err();
            assert_eq!(param_of(e), "stop_timeout_ms", "{bad}");
        }
    }

    #[test]
    fn checks_parse() {
        let p = parse(&[
            ("command", "/bin/x"),
            ("check_tcp", "[::1]:5432"),
            ("deep_check_http", "http://db.local:8080/health?full=1"),
        ])
        .unwrap();
        assert_eq!(
            p.quick,
            Some(Check::Tcp {
                host: "::1".into(),
                port: 5432
            })
        );
        assert_eq!(
            p.deep,
            Some(Check::Http(HttpTarget {
                host: "db.local".into(),
                port: 8080,
                authority: "db.local:8080".into(),
                path: "/health?full=1".into(),
            }))
        );
        let t = parse_http_url("http://[::1]").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 80, "/"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 302 Found\r\nLocation: /"),
            Some(302)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 503\r\n"), Some(503));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn users_are_looked_up() {
        let root = lookup_user("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        assert!(lookup_user("no-such-user-eterne").unwrap().is_none());
    }
}
