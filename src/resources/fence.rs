//! Fence agents, run the way Pacemaker runs Debian's `fence-agents` (`fence_ipmilan`,
//! `fence_virsh`, …): `[fencing]` in `cluster.toml` names one.
//!
//! The contract:
//!
//! | what | how |
//! |---|---|
//! | the program | `agent` looked up on `PATH`, then `/usr/sbin` and `/sbin`, or an absolute path |
//! | arguments | `key=value` lines on stdin, none on the command line: `action=…`, the target as `plug=` (or `port=`, `target_arg`) from `[fencing] targets` or else the node name, `nodename=` the node name, then every `params` entry with the target's `node_params` over them |
//! | actions | `off`, `on`, `reboot`, `status`, `monitor`, `metadata` (the last two name no target) |
//! | verdict | the exit code: 0 done; for `status` 0 = on, 2 = off, anything else an error |
//! | timeout | ours (`timeout_ms`): past it the agent's process group is SIGKILLed and the run failed |
//! | output | stdout and stderr share one pipe; its tail goes into the fence events (for `metadata`, stdout is kept whole) |
//!
//! The child runs as an OCF agent does (`captured::prepare_child`): a session of its
//! own, signals at their defaults, no descriptor inherited past stderr. A fence of a node
//! waits that node's `delay_ms` first (Pacemaker's `pcmk_delay_base`), so two nodes that
//! shoot each other at once do not both die.
//!
//! The runner is async and runs on a worker thread, never the node core's: a fence agent
//! that takes a minute delays no heartbeat.
//!
//! With `method = "poison_pill"` the same device runs no agent: a fence writes a pill on the
//! disk path and waits for the target's acknowledgement or the bound
//! ([`super::fence_pill`]); its `monitor` reads the pill area.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::captured::{cloexec_pipe, last_words, prepare_child, run_captured};
use super::fence_pill::{PillFence, PillResult};
use super::process::find_program;
use crate::config::{FenceActionConfig, FenceTargetArg, FencingConfig};

/// Where fence agents live besides `PATH` (Debian installs them in `/usr/sbin`).
pub const AGENT_DIRS: &str = "/usr/sbin:/sbin";

/// The most bytes of arguments we write on an agent's stdin: all of it fits in a pipe's
/// buffer before the agent starts, so writing never waits for the agent.
const STDIN_MAX_BYTES: usize = 16 * 1024;

/// A fence agent action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceAction {
    /// Power the target off.
    Off,
    /// Power the target on.
    On,
    /// Power cycle the target.
    Reboot,
    /// Is the target on (0) or off (2)?
    Status,
    /// Is the device reachable? (no target)
    Monitor,
    /// The agent's XML description (no target).
    Metadata,
}

impl FenceAction {
    /// The word on the `action=` line.
    pub fn as_str(self) -> &'static str {
        match self {
            FenceAction::Off => "off",
            FenceAction::On => "on",
            FenceAction::Reboot => "reboot",
            FenceAction::Status => "status",
            FenceAction::Monitor => "monitor",
            FenceAction::Metadata => "metadata",
        }
    }

    /// Whether the action is about one node.
    fn has_target(self) -> bool {
        !matches!(self, FenceAction::Monitor | FenceAction::Metadata)
    }
}

impl From<FenceActionConfig> for FenceAction {
    fn from(a: FenceActionConfig) -> Self {
        match a {
            FenceActionConfig::Reboot => FenceAction::Reboot,
            FenceActionConfig::Off => FenceAction::Off,
        }
    }
}

/// What a run of the agent concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The action was carried out (exit 0).
    Done,
    /// `status`: the target is on (exit 0).
    On,
    /// `status`: the target is off (exit 2).
    Off,
    /// The agent failed: the reason, for the event.
    Failed(String),
}

impl From<FenceRun> for crate::policy::message::FenceOutcome {
    fn from(run: FenceRun) -> Self {
        crate::policy::message::FenceOutcome {
            ok: run.ok(),
            action: run.action.as_str().into(),
            exit_code: run.exit_code,
            duration_ms: run.duration.as_millis() as u64,
            reason: match run.verdict {
                Verdict::Failed(why) => why,
                _ => String::new(),
            },
            output: run.output,
        }
    }
}

/// One run of a fence agent.
#[derive(Clone, Debug)]
pub struct FenceRun {
    /// The action.
    pub action: FenceAction,
    /// The verdict.
    pub verdict: Verdict,
    /// The agent's exit code, if it exited (not killed, not failed to start).
    pub exit_code: Option<i32>,
    /// How long it ran (the delay before it not counted).
    pub duration: Duration,
    /// The tail of what it printed (stdout and stderr; for `metadata`, stderr only).
    pub output: String,
    /// `metadata` only: what it printed on stdout.
    pub stdout: String,
}

impl FenceRun {
    /// Whether a fencing action (`off`, `on`, `reboot`) was carried out.
    pub fn ok(&self) -> bool {
        self.verdict == Verdict::Done
    }
}

/// `[fencing]`, ready to run.
#[derive(Clone, Debug)]
pub struct FenceDevice {
    agent: String,
    params: BTreeMap<String, String>,
    node_params: BTreeMap<String, BTreeMap<String, String>>,
    action: FenceAction,
    timeout: Duration,
    target_arg: FenceTargetArg,
    targets: BTreeMap<String, String>,
    delays_ms: BTreeMap<String, u32>,
    monitor_every: Option<Duration>,
    /// `method = "poison_pill"`: pills on the disk path instead of an agent.
    pill: Option<PillFence>,
}

impl FenceDevice {
    /// The device `[fencing]` describes (already validated).
    pub fn new(c: &FencingConfig) -> FenceDevice {
        FenceDevice {
            agent: c.agent.clone(),
            params: c.params.clone(),
            node_params: c.node_params.clone(),
            action: c.action.into(),
            timeout: Duration::from_millis(u64::from(c.timeout_ms.max(1))),
            target_arg: c.target_arg,
            targets: c.targets.clone(),
            delays_ms: c.delay_ms.clone(),
            monitor_every: (c.monitor_interval_ms > 0)
                .then(|| Duration::from_millis(u64::from(c.monitor_interval_ms))),
            pill: None,
        }
    }

    /// The device `[fencing]` with `method = "poison_pill"` describes: `pill` says where the
    /// pills go. The action (`reboot` or `off`) is what the target's monitor does after it
    /// stopped everything.
    pub fn poison_pill(c: &FencingConfig, pill: PillFence) -> FenceDevice {
        FenceDevice {
            pill: Some(pill),
            ..FenceDevice::new(c)
        }
    }

    /// A run of `action` by pill: `f` blocking on a worker thread.
    async fn run_pill(
        &self,
        action: FenceAction,
        f: impl FnOnce(&PillFence) -> PillResult + Send + 'static,
    ) -> FenceRun {
        let started = Instant::now();
        let pill = self.pill.clone();
        let result = match pill {
            Some(p) => tokio::task::spawn_blocking(move || f(&p))
                .await
                .unwrap_or_else(|e| Err(format!("the pill task ended: {e}"))),
            None => Err("no poison pill configured".into()),
        };
        let (verdict, output) = match result {
            Ok(words) => (Verdict::Done, words),
            Err(why) => (
                Verdict::Failed(format!("poison pill: {why}")),
                String::new(),
            ),
        };
        FenceRun {
            action,
            verdict,
            exit_code: None,
            duration: started.elapsed(),
            output,
            stdout: String::new(),
        }
    }

    /// How often to run the device's `monitor` action (`monitor_interval_ms`), if at all.
    pub fn monitor_every(&self) -> Option<Duration> {
        self.monitor_every
    }

    /// Whether the device answers: its `monitor` action, bounded by the timeout.
    pub async fn monitor(&self) -> FenceRun {
        if self.pill.is_some() {
            return self.run_pill(FenceAction::Monitor, |p| p.check()).await;
        }
        self.run(FenceAction::Monitor, None).await
    }

    /// The configured fencing action (`reboot` or `off`).
    pub fn action(&self) -> FenceAction {
        self.action
    }

    /// How long one run may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long to wait before fencing `node` (`delay_ms`).
    pub fn delay(&self, node: &str) -> Duration {
        Duration::from_millis(u64::from(self.delays_ms.get(node).copied().unwrap_or(0)))
    }

    /// The agent's program on this machine, or what to fix.
    pub fn locate(&self) -> Result<PathBuf, String> {
        match &self.pill {
            Some(p) if p.place.device.exists() => Ok(p.place.device.clone()),
            Some(p) => Err(format!(
                "the poison pill's device {} does not exist on this node",
                p.place.device.display()
            )),
            None => locate(&self.agent),
        }
    }

    /// The lines written on the agent's stdin for `action` on `node`.
    pub fn stdin_lines(&self, action: FenceAction, node: Option<&str>) -> String {
        let mut s = format!("action={}\n", action.as_str());
        let node = node.filter(|_| action.has_target());
        if let Some(node) = node {
            let plug = self.targets.get(node).map_or(node, String::as_str);
            let key = match self.target_arg {
                FenceTargetArg::Plug => "plug",
                FenceTargetArg::Port => "port",
            };
            s.push_str(&format!("{key}={plug}\nnodename={node}\n"));
        }
        let mut params = self.params.clone();
        if let Some(own) = node.and_then(|n| self.node_params.get(n)) {
            params.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for (k, v) in &params {
            s.push_str(&format!("{k}={v}\n"));
        }
        s
    }

    /// Fence `node`: wait its delay, then run the configured action.
    pub async fn fence(&self, node: &str) -> FenceRun {
        let delay = self.delay(node);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.pill.is_some() {
            let node = node.to_string();
            return self.run_pill(self.action, move |p| p.fence(&node)).await;
        }
        self.run(self.action, Some(node)).await
    }

    /// Run `action` (on `node`, for actions with a target), bounded by the timeout.
    pub async fn run(&self, action: FenceAction, node: Option<&str>) -> FenceRun {
        let started = Instant::now();
        let fail = |why: String| FenceRun {
            action,
            verdict: Verdict::Failed(why),
            exit_code: None,
            duration: started.elapsed(),
            output: String::new(),
            stdout: String::new(),
        };
        let program = match self.locate() {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let lines = self.stdin_lines(action, node);
        let stdin = match stdin_pipe(&lines) {
            Ok(fd) => fd,
            Err(e) => return fail(format!("cannot pass arguments to {}: {e}", self.agent)),
        };
        let mut cmd = tokio::process::Command::new(&program);
        prepare_child(&mut cmd);
        cmd.stdin(stdin);
        let metadata = action == FenceAction::Metadata;
        let run = tokio::time::timeout(self.timeout, run_captured(cmd, metadata)).await;
        let fin = match run {
            Ok(Ok(fin)) => fin,
            Ok(Err(e)) => return fail(e),
            Err(_) => {
                return fail(format!(
                    "{} {} gave no answer within timeout_ms ({} ms) and was killed",
                    self.agent,
                    action.as_str(),
                    self.timeout.as_millis()
                ))
            }
        };
        let verdict = verdict(action, fin.status, &self.agent, &fin.output);
        FenceRun {
            action,
            verdict,
            exit_code: fin.status.code(),
            duration: started.elapsed(),
            output: fin.output,
            stdout: String::from_utf8_lossy(&fin.stdout).into_owned(),
        }
    }
}

/// A fence agent's program: `agent` as is if it is a path, else on `PATH`, then in
/// [`AGENT_DIRS`].
pub fn locate(agent: &str) -> Result<PathBuf, String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut dirs: Vec<&str> = path.split(':').filter(|d| !d.is_empty()).collect();
    for d in AGENT_DIRS.split(':') {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    let dirs = dirs.join(":");
    find_program(agent, &dirs).map_err(|e| format!("fence agent {e}"))
}

/// A pipe holding `lines`, its write end closed: the agent reads them, then end of file.
fn stdin_pipe(lines: &str) -> std::io::Result<Stdio> {
    if lines.len() > STDIN_MAX_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes of arguments, more than {STDIN_MAX_BYTES}",
            lines.len()
        )));
    }
    let (r, w) = cloexec_pipe()?;
    let mut w = std::fs::File::from(w);
    w.write_all(lines.as_bytes())?;
    drop(w);
    Ok(Stdio::from(r))
}

/// The exit status as a verdict (see the module docs).
fn verdict(action: FenceAction, status: ExitStatus, agent: &str, output: &str) -> Verdict {
    let words = last_words(output);
    match (action, status.code()) {
        (FenceAction::Status, Some(0)) => Verdict::On,
        (FenceAction::Status, Some(2)) => Verdict::Off,
        (_, Some(0)) => Verdict::Done,
        (_, Some(c)) => Verdict::Failed(format!("{agent} {} exited {c}{words}", action.as_str())),
        (_, None) => Verdict::Failed(format!(
            "{agent} {} was killed by a signal{words}",
            action.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A directory of its own for one test's agents, removed when dropped.
    struct Dir(PathBuf);

    impl std::ops::Deref for Dir {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("fence-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// Writes an executable shell script.
    fn agent(d: &std::path::Path, body: &str) -> String {
        let p = d.join("fence_test");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn device(agent: String, timeout_ms: u32) -> FenceDevice {
        let mut c = FencingConfig {
            method: crate::config::FenceMethod::Agent,
            agent,
            path: None,
            pill_timeout_ms: 10_000,
            params: BTreeMap::new(),
            action: FenceActionConfig::Reboot,
            timeout_ms,
            target_arg: FenceTargetArg::Plug,
            node_params: BTreeMap::new(),
            targets: BTreeMap::new(),
            delay_ms: BTreeMap::new(),
            monitor_interval_ms: 0,
        };
        let mut own = BTreeMap::new();
        own.insert("ipaddr".to_string(), "10.0.0.12".to_string());
        c.node_params.insert("n2".into(), own);
        c.params.insert("ipaddr".into(), "10.0.0.9".into());
        c.params.insert("login".into(), "admin".into());
        c.targets.insert("n1".into(), "server-01".into());
        FenceDevice::new(&c)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn arguments_go_on_stdin_as_key_value_lines() {
        let d = dir("stdin");
        let out = d.join("stdin.txt");
        let a = agent(&d, &format!("cat > {}\nexit 0", out.display()));
        let dev = device(a, 5000);
        let run = rt().block_on(dev.fence("n1"));
        assert!(run.ok(), "{run:?}");
        assert_eq!(run.exit_code, Some(0));
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            got,
            "action=reboot\nplug=server-01\nnodename=n1\nipaddr=10.0.0.9\nlogin=admin\n"
        );
        // A node not in `targets` is named by its node name; monitor names no target.
        assert_eq!(
            dev.stdin_lines(FenceAction::Off, Some("n2")),
            "action=off\nplug=n2\nnodename=n2\nipaddr=10.0.0.12\nlogin=admin\n",
            "node_params.n2 over params"
        );
        assert_eq!(
            dev.stdin_lines(FenceAction::Monitor, Some("n2")),
            "action=monitor\nipaddr=10.0.0.9\nlogin=admin\n"
        );
    }

    #[test]
    fn a_failing_agent_is_a_failed_fence_with_its_output() {
        let d = dir("fail");
        let a = agent(
            &d,
            "echo 'Failed: Unable to obtain correct plug status' >&2\nexit 1",
        );
        let run = rt().block_on(device(a, 5000).fence("n2"));
        assert!(!run.ok());
        assert_eq!(run.exit_code, Some(1));
        assert!(run.output.contains("Unable to obtain"), "{run:?}");
        let Verdict::Failed(why) = &run.verdict else {
            panic!("{run:?}")
        };
        assert!(why.contains("exited 1") && why.contains("Unable"), "{why}");
    }

    #[test]
    fn status_reads_on_off_and_error() {
        let d = dir("status");
        let a = agent(
            &d,
            "while read l; do case $l in plug=on) exit 0;; plug=off) exit 2;; esac; done; exit 1",
        );
        let dev = device(a, 5000);
        let rt = rt();
        let st = |n: &str| rt.block_on(dev.run(FenceAction::Status, Some(n))).verdict;
        assert_eq!(st("on"), Verdict::On);
        assert_eq!(st("off"), Verdict::Off);
        assert!(matches!(st("x"), Verdict::Failed(_)));
    }

    #[test]
    fn a_hanging_agent_is_killed_at_the_timeout_with_its_children() {
        let d = dir("hang");
        let pidfile = d.join("child.pid");
        let a = agent(
            &d,
            &format!("sleep 30 &\necho $! > {}\nwait", pidfile.display()),
        );
        let started = Instant::now();
        let run = rt().block_on(device(a, 300).fence("n2"));
        assert!(started.elapsed() < Duration::from_secs(5), "{run:?}");
        assert!(!run.ok());
        let Verdict::Failed(why) = &run.verdict else {
            panic!("{run:?}")
        };
        assert!(why.contains("within timeout_ms (300 ms)"), "{why}");
        // The agent's child went with its process group.
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        // SAFETY: kill with signal 0 only checks whether the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive || is_zombie(pid), "the agent's child {pid} survived");
    }

    fn is_zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    }

    #[test]
    fn metadata_keeps_stdout_whole_and_a_missing_agent_says_so() {
        let d = dir("meta");
        let a = agent(&d, "echo '<resource-agent name=\"fence_test\"/>'");
        let run = rt().block_on(device(a, 5000).run(FenceAction::Metadata, None));
        assert!(run.ok());
        assert!(run.stdout.contains("resource-agent"), "{run:?}");
        let missing = rt().block_on(device("fence_no_such_agent".into(), 5000).fence("n1"));
        let Verdict::Failed(why) = &missing.verdict else {
            panic!("{missing:?}")
        };
        assert!(why.contains("not found"), "{why}");
    }

    #[test]
    fn the_delay_comes_before_the_run() {
        let d = dir("delay");
        let a = agent(&d, "exit 0");
        let mut dev = device(a, 5000);
        dev.delays_ms.insert("n1".into(), 300);
        let started = Instant::now();
        assert!(rt().block_on(dev.fence("n1")).ok());
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(dev.delay("n2"), Duration::ZERO);
    }
}
