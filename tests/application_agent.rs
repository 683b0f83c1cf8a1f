//! The `application` agent against real processes: start/monitor/stop, exits reported at once,
//! SIGTERM → SIGKILL, adoption after a daemon restart (pidfile + pidfd), stale pidfiles, TCP and
//! HTTP health checks, running as another user, and parameter errors.
//!
//! Tests assert behaviour, never timing: every wait is bounded by a generous [`LIMIT`] that only
//! turns a hang into a failure.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eterne::policy::group::{Action, Outcome};
use eterne::policy::spec::{MonitorSpec, ResourceSpec};
use eterne::resources::application::Application;
use eterne::resources::{
    build, perform, Agent, AgentContext, AgentError, AgentEvent, Depth, Report,
};
use support::agent::Timings;
use support::wait::bounded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The bound of every wait: long enough for a loaded machine, short enough to fail a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// A scratch directory of one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "eterne-app-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            test
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    /// Also kills what a failed test left running: the group of each pidfile in `run/` whose
    /// pid still has the start time the pidfile recorded.
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.0.join("run")).into_iter().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.unwrap().path()) else {
                continue;
            };
            let mut it = text.split_whitespace();
            let (Some(Ok(pid)), Some(start)) = (it.next().map(str::parse::<u32>), it.next()) else {
                continue;
            };
            if pid > 1 && proc_start(pid).as_deref() == Some(start) {
                // SAFETY: plain kill(2) of the group the agent created.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The timings of the test applications.
const TIMINGS: Timings = Timings {
    quick: MonitorSpec {
        interval_ms: 10_000,
        timeout_ms: 5_000,
    },
    deep: Some(MonitorSpec {
        interval_ms: 60_000,
        timeout_ms: 5_000,
    }),
    start_ms: 20_000,
    stop_ms: 20_000,
};

fn spec(name: &str, params: &[(&str, &str)]) -> ResourceSpec {
    support::agent::resource(name, "application", params, &TIMINGS)
}

fn ctx(dir: &Scratch, name: &str) -> (AgentContext, mpsc::Receiver<AgentEvent>) {
    support::agent::context(3, 1, name, dir.path("run"), 16)
}

fn agent(dir: &Scratch, params: &[(&str, &str)]) -> (Application, mpsc::Receiver<AgentEvent>) {
    let (c, rx) = ctx(dir, "app");
    (Application::new(&spec("app", params), &c).unwrap(), rx)
}

fn assert_outcome(r: &Report, want: Outcome, what: &str) {
    assert_eq!(r.outcome, want, "{what}: {}", r.reason);
}

/// Field 22 of /proc/PID/stat.
fn proc_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_string)
}

/// Alive = exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap();
            state != "Z"
        }
        Err(_) => false,
    }
}

/// Live processes of a process group.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        // Fields after the name: state (3), ppid (4), pgrp (5).
        if f[0] != "Z" && f[2] == pgid.to_string() {
            out.push(pid);
        }
    }
    out
}

/// Waits (bounded) until no live process is left in group `pgid`; returns those left.
async fn group_gone(pgid: u32) -> Vec<u32> {
    bounded(LIMIT, "group gone", async {
        for _ in 0..1000 {
            if group_members(pgid).is_empty() {
                return Vec::new();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        group_members(pgid)
    })
    .await
}

fn read_pidfile(path: &Path) -> (u32, u64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut it = text.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

async fn next_event(rx: &mut mpsc::Receiver<AgentEvent>) -> AgentEvent {
    bounded(LIMIT, "exit event", rx.recv())
        .await
        .expect("event channel closed")
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: plain kill(2).
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill {pid}");
}

#[tokio::test]
async fn start_monitor_stop_of_sleep() {
    let dir = Scratch::new("basic");
    let (app, mut events) = agent(&dir, &[("command", "sleep 1000")]);
    app.validate().await.unwrap();

    assert_outcome(
        &app.probe().await,
        Outcome::NotRunning,
        "probe before start",
    );
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    let pid = app.pid().expect("a pid after start");
    assert!(alive(pid));
    assert_eq!(read_pidfile(app.pidfile()).0, pid);
    // Its own session and process group: a daemon restart does not signal it.
    // SAFETY: getsid/getpgid on a live pid.
    assert_eq!(unsafe { libc::getsid(pid as i32) }, pid as i32);
    assert_eq!(unsafe { libc::getpgid(pid as i32) }, pid as i32);

    for depth in [Depth::Quick, Depth::Deep] {
        assert_outcome(&app.monitor(depth).await, Outcome::Ok, "monitor");
    }
    assert_outcome(&app.probe().await, Outcome::Ok, "probe");
    // Starting again starts no second copy.
    assert_outcome(&app.start(1).await, Outcome::Ok, "second start");
    assert_eq!(app.pid(), Some(pid));

    let stop = bounded(LIMIT, "stop", app.stop()).await;
    assert_outcome(&stop, Outcome::Ok, "stop");
    assert!(stop.reason.contains("SIGTERM"), "{}", stop.reason);
    assert!(!alive(pid), "pid {pid} survived the stop");
    assert!(!app.pidfile().exists(), "pidfile left behind");
    assert_outcome(
        &app.monitor(Depth::Quick).await,
        Outcome::NotRunning,
        "monitor",
    );
    assert_outcome(&app.probe().await, Outcome::NotRunning, "probe after stop");
    assert_outcome(&app.stop().await, Outcome::Ok, "stop is idempotent");
    // The exit caused by our stop is not reported as a failure.
    tokio::task::yield_now().await;
    assert!(events.try_recv().is_err(), "stop reported an exit event");
}

#[tokio::test]
async fn an_exit_is_reported_at_once() {
    let dir = Scratch::new("exit");
    let fifo = dir.path("go");
    let cfifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(cfifo.as_ptr(), 0o600) }, 0);
    // The process exits with status 3 when the test writes to the fifo.
    let command = format!("sh -c 'read x < {}; exit 3'", fifo.display());
    let (app, mut events) = agent(&dir, &[("command", &command)]);
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    let pid = app.pid().unwrap();

    let writer = fifo.clone();
    bounded(
        LIMIT,
        "write to fifo",
        tokio::task::spawn_blocking(move || std::fs::write(writer, "go\n")),
    )
    .await
    .unwrap()
    .unwrap();
    let AgentEvent::Exited {
        group,
        resource,
        pid: exited,
        reason,
    } = next_event(&mut events).await
    else {
        panic!("expected an exit event");
    };
    assert_eq!((group, resource, exited), (3, 1, pid));
    assert_eq!(reason, "exited with status 3");
    assert_outcome(
        &app.monitor(Depth::Quick).await,
        Outcome::NotRunning,
        "monitor",
    );
    assert_outcome(&app.probe().await, Outcome::NotRunning, "probe");

    // Started again, then killed from outside: reported too.
    assert_outcome(
        &bounded(LIMIT, "restart", app.start(2)).await,
        Outcome::Ok,
        "restart",
    );
    let pid = app.pid().unwrap();
    kill(pid, libc::SIGKILL);
    let AgentEvent::Exited { reason, .. } = next_event(&mut events).await else {
        panic!("expected an exit event");
    };
    assert_eq!(reason, "killed by signal 9");
    assert_outcome(&app.stop().await, Outcome::Ok, "stop after exit");
}

#[tokio::test]
async fn sigterm_ignored_means_sigkill_after_stop_timeout() {
    let dir = Scratch::new("term");
    let ready = dir.s("ready");
    // The quick check makes start wait until the trap is set, so the TERM is surely ignored.
    // `ready` appears once sleep is forked, so both are in the group when start returns.
    let command = format!("sh -c 'trap \"\" TERM; sleep 1000 & touch {ready}; wait'");
    let check = format!("test -e {ready}");
    let (app, mut events) = agent(
        &dir,
        &[
            ("command", &command),
            ("check_command", &check),
            ("stop_timeout_ms", "300"),
        ],
    );
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    let pid = app.pid().unwrap();
    assert!(
        group_members(pid).len() >= 2,
        "sh and sleep in the group: {:?}",
        group_members(pid)
    );

    let stop = bounded(LIMIT, "stop", app.stop()).await;
    assert_outcome(&stop, Outcome::Ok, "stop");
    assert!(stop.reason.contains("SIGKILL"), "{}", stop.reason);
    assert!(!alive(pid));
    // The whole group went, not only the shell.
    let left = group_gone(pid).await;
    assert!(left.is_empty(), "left in the group: {left:?}");
    assert!(events.try_recv().is_err(), "stop reported an exit event");
}

#[tokio::test]
async fn a_restarted_daemon_adopts_instead_of_starting_a_second_copy() {
    let dir = Scratch::new("adopt");
    let (first, _events1) = agent(&dir, &[("command", "sleep 1000")]);
    assert_outcome(
        &bounded(LIMIT, "start", first.start(1)).await,
        Outcome::Ok,
        "start",
    );
    let pid = first.pid().unwrap();
    let pidfile = read_pidfile(first.pidfile());
    // The daemon goes away; the process stays.
    drop(first);
    assert!(alive(pid));

    let (second, mut events) = agent(&dir, &[("command", "sleep 1000")]);
    assert_outcome(&second.probe().await, Outcome::Ok, "probe after restart");
    assert_eq!(second.pid(), Some(pid));
    assert_outcome(&second.start(2).await, Outcome::Ok, "start after restart");
    assert_eq!(second.pid(), Some(pid), "a second copy was started");
    assert_eq!(read_pidfile(second.pidfile()), pidfile);
    assert_outcome(&second.monitor(Depth::Quick).await, Outcome::Ok, "monitor");

    // The adopted process's exit is seen through its pidfd.
    kill(pid, libc::SIGKILL);
    let AgentEvent::Exited { pid: exited, .. } = next_event(&mut events).await else {
        panic!("expected an exit event");
    };
    assert_eq!(exited, pid);
    assert_outcome(
        &second.monitor(Depth::Quick).await,
        Outcome::NotRunning,
        "monitor",
    );
    assert_outcome(&second.stop().await, Outcome::Ok, "stop after exit");
    assert!(!second.pidfile().exists());
}

#[tokio::test]
async fn an_adopted_instance_can_be_stopped() {
    let dir = Scratch::new("adopt-stop");
    let (first, _e) = agent(&dir, &[("command", "sleep 1000")]);
    assert_outcome(
        &bounded(LIMIT, "start", first.start(1)).await,
        Outcome::Ok,
        "start",
    );
    let pid = first.pid().unwrap();
    drop(first);

    // A new daemon's first action may be a stop: it adopts and stops.
    let (second, mut events) = agent(&dir, &[("command", "sleep 1000")]);
    let stop = bounded(LIMIT, "stop", second.stop()).await;
    assert_outcome(&stop, Outcome::Ok, "stop");
    assert!(stop.reason.contains(&pid.to_string()), "{}", stop.reason);
    assert!(!alive(pid));
    assert!(!second.pidfile().exists());
    assert!(events.try_recv().is_err(), "stop reported an exit event");
}

#[tokio::test]
async fn stale_pidfiles_probe_not_running() {
    let dir = Scratch::new("stale");
    let (app, _e) = agent(&dir, &[("command", "sleep 1000")]);
    std::fs::create_dir_all(app.pidfile().parent().unwrap()).unwrap();

    // A pid that no longer exists.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(app.pidfile(), format!("{dead_pid} 12345\n")).unwrap();
    assert_outcome(&app.probe().await, Outcome::NotRunning, "dead pid");

    // A recycled pid: a live process (this test) with another start time.
    let me = std::process::id();
    std::fs::write(app.pidfile(), format!("{me} 1\n")).unwrap();
    let probe = app.probe().await;
    assert_outcome(&probe, Outcome::NotRunning, "recycled pid");
    assert_outcome(
        &app.monitor(Depth::Quick).await,
        Outcome::NotRunning,
        "monitor",
    );
    // Stopping must not signal the stranger (this very test would die), and cleans up.
    assert_outcome(&app.stop().await, Outcome::Ok, "stop with a stale pidfile");
    assert!(!app.pidfile().exists());

    // Garbage is stale too, and start replaces it.
    std::fs::write(app.pidfile(), "not a pidfile").unwrap();
    assert_outcome(&app.probe().await, Outcome::NotRunning, "garbage");
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    assert_eq!(read_pidfile(app.pidfile()).0, app.pid().unwrap());
    assert_outcome(
        &bounded(LIMIT, "stop", app.stop()).await,
        Outcome::Ok,
        "stop",
    );
}

#[tokio::test]
async fn tcp_check_follows_the_listener() {
    let dir = Scratch::new("tcp");
    // `holder` keeps the port bound (never listening) for the whole test, so that no other
    // test's listener takes it once ours is closed: a connection is then refused.
    let reuse_socket = || {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_reuseport(true).unwrap();
        s
    };
    let holder = reuse_socket();
    holder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port_addr = holder.local_addr().unwrap();
    let listener = reuse_socket();
    listener.bind(port_addr).unwrap();
    let listener = listener.listen(16).unwrap();
    let addr = port_addr.to_string();
    let (app, _e) = agent(&dir, &[("command", "sleep 1000"), ("check_tcp", &addr)]);
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    assert_outcome(&app.monitor(Depth::Quick).await, Outcome::Ok, "listening");
    drop(listener);
    // A parallel test's fork may hold a copy of the listening socket until its exec closes
    // it: look again a bounded number of times.
    let r = bounded(LIMIT, "monitor", async {
        let mut r = app.monitor(Depth::Quick).await;
        for _ in 0..100 {
            if r.outcome != Outcome::Ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            r = app.monitor(Depth::Quick).await;
        }
        r
    })
    .await;
    assert_outcome(&r, Outcome::Failed, "closed");
    assert!(r.reason.contains(&addr), "{}", r.reason);
    // The deep depth has no check here: alive is enough.
    assert_outcome(&app.monitor(Depth::Deep).await, Outcome::Ok, "deep");
    assert_outcome(
        &bounded(LIMIT, "stop", app.stop()).await,
        Outcome::Ok,
        "stop",
    );
    drop(holder);
}

/// A tiny HTTP server answering every GET with the current `status`.
async fn http_server(status: Arc<AtomicU16>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            assert!(req.starts_with(b"GET /health HTTP/1.1\r\n"), "{req:?}");
            let code = status.load(Ordering::SeqCst);
            let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn http_check_follows_the_server() {
    let dir = Scratch::new("http");
    let status = Arc::new(AtomicU16::new(200));
    let (addr, server) = http_server(status.clone()).await;
    let url = format!("http://{addr}/health");
    let (app, _e) = agent(
        &dir,
        &[("command", "sleep 1000"), ("deep_check_http", &url)],
    );
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    assert_outcome(&app.monitor(Depth::Deep).await, Outcome::Ok, "200");
    status.store(302, Ordering::SeqCst);
    assert_outcome(&app.monitor(Depth::Deep).await, Outcome::Ok, "302");
    status.store(503, Ordering::SeqCst);
    let r = app.monitor(Depth::Deep).await;
    assert_outcome(&r, Outcome::Failed, "503");
    assert!(r.reason.contains("503"), "{}", r.reason);
    server.abort();
    let _ = server.await;
    assert_outcome(
        &bounded(LIMIT, "monitor", app.monitor(Depth::Deep)).await,
        Outcome::Failed,
        "closed",
    );
    assert_outcome(
        &bounded(LIMIT, "stop", app.stop()).await,
        Outcome::Ok,
        "stop",
    );
}

#[tokio::test]
async fn start_waits_for_the_quick_check_and_fails_if_it_never_passes() {
    let dir = Scratch::new("startcheck");
    let mut s = spec(
        "app",
        &[("command", "sleep 1000"), ("check_command", "false")],
    );
    s.start_timeout_ms = 300;
    s.stop_timeout_ms = 5000;
    let (c, _e) = ctx(&dir, "app");
    let app = Application::new(&s, &c).unwrap();
    let r = bounded(LIMIT, "start", app.start(1)).await;
    assert_outcome(&r, Outcome::Failed, "start with a failing check");
    assert!(r.reason.contains("quick check"), "{}", r.reason);
    // The policy stops a failed start; the stop finds the process.
    let pid = app.pid().expect("the process still runs");
    assert_outcome(
        &bounded(LIMIT, "stop", app.stop()).await,
        Outcome::Ok,
        "stop",
    );
    assert!(!alive(pid));

    // A process that exits during start fails the start.
    let (app, _e) = agent(
        &dir,
        &[("command", "sh -c 'exit 1'"), ("check_command", "false")],
    );
    let r = bounded(LIMIT, "start", app.start(1)).await;
    assert_outcome(&r, Outcome::Failed, "start of a process that exits");
}

#[tokio::test]
async fn command_args_env_cwd_and_log_file_reach_the_process() {
    let dir = Scratch::new("env");
    let out = dir.s("out");
    let log = dir.s("log");
    let cwd = dir.s("");
    // `args` are appended to `command`: sh gets $0 = name, $1 = 'one two'.
    let script = format!(
        "echo \"$GREETING|$1|$(pwd)\" > {out}; echo to-stdout; echo to-stderr >&2; \
         exec sleep 1000"
    );
    let command = format!("sh -c {}", shell_quote(&script));
    let (app, _e) = agent(
        &dir,
        &[
            ("command", &command),
            ("args", "name 'one two'"),
            ("env", "GREETING='hello world'"),
            ("cwd", cwd.trim_end_matches('/')),
            ("log_file", &log),
            ("check_command", &format!("grep -q to-stderr {log}")),
        ],
    );
    app.validate().await.unwrap();
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        written.trim_end(),
        format!("hello world|one two|{}", cwd.trim_end_matches('/'))
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("to-stdout") && logged.contains("to-stderr"),
        "{logged}"
    );
    assert_outcome(
        &bounded(LIMIT, "stop", app.stop()).await,
        Outcome::Ok,
        "stop",
    );
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[tokio::test]
async fn runs_as_another_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED runs_as_another_user: needs root to switch to user nobody");
        return;
    }
    let dir = Scratch::new("user");
    let (app, _e) = agent(
        &dir,
        &[
            ("command", "sleep 1000"),
            ("user", "nobody"),
            ("cwd", "/"),
            // The check runs as the user too.
            (
                "check_command",
                "sh -c '[ \"$(id -un)\" = nobody ] && [ \"$USER\" = nobody ]'",
            ),
        ],
    );
    app.validate().await.unwrap();
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    let pid = app.pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let nobody = nobody_ids();
    assert!(
        line("Uid:").iter().all(|u| *u == nobody.0.to_string()),
        "{status}"
    );
    assert!(
        line("Gid:").iter().all(|g| *g == nobody.1.to_string()),
        "{status}"
    );
    assert!(
        !line("Groups:").contains(&"0".to_string()),
        "kept root's groups"
    );
    assert_outcome(
        &app.monitor(Depth::Quick).await,
        Outcome::Ok,
        "check as nobody",
    );
    assert_outcome(
        &bounded(LIMIT, "stop", app.stop()).await,
        Outcome::Ok,
        "stop",
    );
    assert!(!alive(pid));
}

fn nobody_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let f: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a nobody user in /etc/passwd")
        .split(':')
        .collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

fn param_of(e: &AgentError) -> &str {
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

#[tokio::test]
async fn validation_errors_name_the_resource_and_parameter() {
    let dir = Scratch::new("validate");
    let (c, _e) = ctx(&dir, "app");

    // Syntax: found by build, no access to the node needed.
    let e = build(&spec("app", &[]), &c).unwrap_err();
    assert_eq!(param_of(&e), "command");
    assert!(e.to_string().contains("\"app\"") && e.to_string().contains("command"));
    let e = build(&spec("app", &[("command", "sleep 1"), ("usr", "x")]), &c).unwrap_err();
    assert_eq!(param_of(&e), "usr");
    let mut unknown = spec("app", &[("command", "sleep 1")]);
    unknown.agent = "teleport".into();
    let e = build(&unknown, &c).unwrap_err();
    assert!(matches!(e, AgentError::UnknownType { .. }));
    let msg = e.to_string();
    assert!(msg.contains("\"app\"") && msg.contains("\"teleport\"") && msg.contains("application"));

    // The node: found by validate.
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("command", "no-such-program-eterne")], "command"),
        (&[("command", "/nonexistent/prog")], "command"),
        (
            &[
                ("command", "sleep 1"),
                ("check_command", "no-such-check-eterne"),
            ],
            "check_command",
        ),
        (
            &[("command", "sleep 1"), ("cwd", "/nonexistent/dir")],
            "cwd",
        ),
        (
            &[("command", "sleep 1"), ("user", "no-such-user-eterne")],
            "user",
        ),
        (
            &[("command", "sleep 1"), ("log_file", "/nonexistent/dir/log")],
            "log_file",
        ),
    ];
    for (params, want) in cases {
        let agent = build(&spec("app", params), &c).unwrap();
        let e = agent.validate().await.unwrap_err();
        assert_eq!(param_of(&e), *want, "{params:?}: {e}");
    }

    // A good one passes, and `perform` maps policy actions onto the trait.
    let agent = build(&spec("app", &[("command", "sleep 1000")]), &c).unwrap();
    agent.validate().await.unwrap();
    let r = perform(agent.as_ref(), Action::Probe, 1).await;
    assert_outcome(&r, Outcome::NotRunning, "probe");
    let r = bounded(LIMIT, "start", perform(agent.as_ref(), Action::Start, 1)).await;
    assert_outcome(&r, Outcome::Ok, "start");
    let r = perform(agent.as_ref(), Action::MonitorDeep, 1).await;
    assert_outcome(&r, Outcome::Ok, "monitor");
    let r = bounded(LIMIT, "stop", perform(agent.as_ref(), Action::Stop, 1)).await;
    assert_outcome(&r, Outcome::Ok, "stop");
}

#[tokio::test]
async fn operations_cut_off_by_the_caller_lose_no_process() {
    let dir = Scratch::new("cutoff");
    let ready = dir.s("ready");
    let command = format!("sh -c 'trap \"\" TERM; sleep 1000 & touch {ready}; wait'");
    let (app, mut events) = agent(
        &dir,
        &[
            ("command", &command),
            // Never passes: start polls until its caller gives up.
            ("check_command", "false"),
            ("stop_timeout_ms", "10000"),
        ],
    );
    // The caller's deadline cuts start off (start itself would poll for 20 s).
    let cut = tokio::time::timeout(Duration::from_millis(300), app.start(1)).await;
    assert!(cut.is_err(), "start cannot pass: {cut:?}");
    let pid = app
        .pid()
        .expect("the process started before the cut is known");
    assert_outcome(&app.probe().await, Outcome::Ok, "probe after the cut");
    assert_outcome(&app.monitor(Depth::Quick).await, Outcome::Failed, "monitor");

    // A stop cut off while waiting after SIGTERM (ignored) ...
    bounded(LIMIT, "ready", async {
        for _ in 0..1000 {
            if Path::new(&ready).exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let cut = tokio::time::timeout(Duration::from_millis(200), app.stop()).await;
    assert!(cut.is_err(), "the stop waits 10 s for TERM: {cut:?}");
    assert!(alive(pid));
    // ... then a start: the instance is wanted again and its exit is reported again.
    let cut = tokio::time::timeout(Duration::from_millis(300), app.start(2)).await;
    assert!(cut.is_err(), "start cannot pass: {cut:?}");
    assert_eq!(app.pid(), Some(pid), "no second copy");
    kill(pid, libc::SIGKILL);
    let AgentEvent::Exited { pid: exited, .. } = next_event(&mut events).await else {
        panic!("expected an exit event");
    };
    assert_eq!(exited, pid);
    // The shell died alone; its background sleep (TERM ignored) is still in the group.
    assert!(!group_members(pid).is_empty());
    assert_outcome(
        &bounded(LIMIT, "stop", app.stop()).await,
        Outcome::Ok,
        "stop",
    );
    let left = group_gone(pid).await;
    assert!(
        left.is_empty(),
        "the stop left {left:?} of the group running"
    );
}

#[tokio::test]
async fn the_group_may_finish_its_sigterm_before_the_sweep() {
    let dir = Scratch::new("grace");
    let ready = dir.s("ready");
    let done = dir.s("done");
    // The main shell dies on SIGTERM at once; a worker of its group needs a moment to finish.
    let script = format!(
        "(trap 'sleep 0.2; touch {done}; exit 0' TERM; while :; do sleep 0.05; done) & \
         touch {ready}; wait"
    );
    let command = format!("sh -c {}", shell_quote(&script));
    let check = format!("test -e {ready}");
    let (app, _e) = agent(&dir, &[("command", &command), ("check_command", &check)]);
    assert_outcome(
        &bounded(LIMIT, "start", app.start(1)).await,
        Outcome::Ok,
        "start",
    );
    let pid = app.pid().unwrap();
    let stop = bounded(LIMIT, "stop", app.stop()).await;
    assert_outcome(&stop, Outcome::Ok, "stop");
    assert!(stop.reason.contains("SIGTERM"), "{}", stop.reason);
    assert!(
        Path::new(&done).exists(),
        "the worker was killed before it finished"
    );
    let left = group_gone(pid).await;
    assert!(left.is_empty(), "left in the group: {left:?}");
}
