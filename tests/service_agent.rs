//! The `service` agent against real LSB init scripts: one written into a temporary directory
//! that starts a real daemon (detached, with a pidfile) and answers `status` the LSB way, one
//! that fails with each LSB code, and (as root) the same script installed as
//! `/etc/init.d/NAME`, found by its name alone. systemd cannot be tested here: it is not PID 1
//! on this machine (the unit's parsing and rules are unit tests in `src/resources/service/systemd.rs`).
//!
//! Every wait is bounded by [`LIMIT`], which only turns a hang into a failure.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eterne::policy::group::Outcome;
use eterne::policy::spec::MonitorSpec;
use eterne::resources::{build, Agent, AgentEvent, Depth, HardStop};
use support::agent::Timings;
use support::wait::bounded;
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(30);

const TIMINGS: Timings = Timings {
    quick: MonitorSpec {
        interval_ms: 1000,
        timeout_ms: 5000,
    },
    deep: None,
    start_ms: 20000,
    stop_ms: 15000,
};

/// An LSB init script for a daemon (`sleep`, detached with setsid) with a pidfile in `$DIR`.
/// `$DIR/fail-<action>` makes that action exit with the code it holds.
const SCRIPT: &str = r#"#!/bin/sh
DIR=@DIR@
PIDFILE="$DIR/daemon.pid"
if [ -f "$DIR/fail-$1" ]; then exit "$(cat "$DIR/fail-$1")"; fi
# Alive and not a zombie (an orphan waits for init to reap it).
running() {
    [ -f "$PIDFILE" ] || return 1
    state=$(sed 's/.*) //' "/proc/$(cat "$PIDFILE")/stat" 2>/dev/null | cut -c1)
    [ -n "$state" ] && [ "$state" != Z ]
}
case "$1" in
start)
    running && exit 0
    setsid sleep 1000 </dev/null >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
    echo "started" >> "$DIR/log"
    exit 0;;
stop)
    if running; then kill "$(cat "$PIDFILE")"; fi
    rm -f "$PIDFILE"
    echo "stopped" >> "$DIR/log"
    exit 0;;
status)
    running && exit 0
    [ -f "$PIDFILE" ] && exit 1
    exit 3;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2;;
esac
"#;

fn write_script(path: &Path, dir: &Path) {
    std::fs::write(path, SCRIPT.replace("@DIR@", dir.to_str().unwrap())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The test script in `dir`, and a `service` agent for it by its path.
fn lsb_script_agent(dir: &Path) -> (PathBuf, Box<dyn Agent>) {
    let script = dir.join("eterne-test");
    write_script(&script, dir);
    let (svc, _events) = agent(&[
        ("name", "x"),
        ("manager", "lsb"),
        ("script", script.to_str().unwrap()),
    ]);
    (script, svc)
}

fn agent(params: &[(&str, &str)]) -> (Box<dyn Agent>, mpsc::Receiver<AgentEvent>) {
    let spec = support::agent::resource("svc", "service", params, &TIMINGS);
    let (ctx, rx) = support::agent::context(0, 0, "svc", std::env::temp_dir(), 4);
    (build(&spec, &ctx).expect("well-formed parameters"), rx)
}

fn pid_in(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("daemon.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn kill(pid: u32) {
    // SAFETY: a plain signal to a process this test started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// Start, monitor, a death seen at once through the pidfile, stop, and the stop of what is
/// stopped: through a real init script and a real daemon.
#[tokio::test]
async fn an_lsb_script_runs_the_service_and_its_death_is_seen_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("eterne-test");
    write_script(&script, tmp.path());
    let pidfile = tmp.path().join("daemon.pid");
    let (svc, mut events) = agent(&[
        ("name", "eterne-test"),
        ("manager", "lsb"),
        ("script", script.to_str().unwrap()),
        ("pidfile", pidfile.to_str().unwrap()),
    ]);
    svc.validate().await.expect("the script is executable");

    assert_eq!(
        bounded(LIMIT, "probe", svc.probe()).await.outcome,
        Outcome::NotRunning
    );
    let started = bounded(LIMIT, "start", svc.start(1)).await;
    assert_eq!(started.outcome, Outcome::Ok, "{}", started.reason);
    let pid = pid_in(tmp.path());
    assert!(alive(pid), "the daemon runs after start");
    assert_eq!(
        bounded(LIMIT, "monitor", svc.monitor(Depth::Quick))
            .await
            .outcome,
        Outcome::Ok
    );

    // The daemon dies: the agent says so without being asked.
    kill(pid);
    let event = bounded(LIMIT, "exit event", events.recv()).await;
    match event {
        Some(AgentEvent::Exited { pid: p, .. }) => assert_eq!(p, pid),
        other => panic!("expected the exit of pid {pid}, got {other:?}"),
    }
    // Dead with its pidfile left: LSB status 1, not running.
    let m = bounded(LIMIT, "monitor after death", svc.monitor(Depth::Quick)).await;
    assert_eq!(m.outcome, Outcome::NotRunning, "{}", m.reason);
    assert!(m.reason.contains("pidfile remains"), "{}", m.reason);

    // A restart, then a stop that ends the daemon and is not reported as an exit.
    assert_eq!(
        bounded(LIMIT, "stop", svc.stop()).await.outcome,
        Outcome::Ok
    );
    assert_eq!(
        bounded(LIMIT, "restart", svc.start(2)).await.outcome,
        Outcome::Ok
    );
    let pid = pid_in(tmp.path());
    let stopped = bounded(LIMIT, "stop", svc.stop()).await;
    assert_eq!(stopped.outcome, Outcome::Ok, "{}", stopped.reason);
    support::wait::eventually(LIMIT, || !alive(pid)).await;
    assert!(!alive(pid), "stop ended the daemon");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        events.try_recv().is_err(),
        "an exit we caused is not a failure"
    );
    assert_eq!(
        bounded(LIMIT, "probe after stop", svc.probe())
            .await
            .outcome,
        Outcome::NotRunning
    );
    // A stop of what is stopped is a stop (an LSB script may even answer 7 to it).
    std::fs::write(tmp.path().join("fail-stop"), "7").unwrap();
    let again = bounded(LIMIT, "second stop", svc.stop()).await;
    assert_eq!(again.outcome, Outcome::Ok, "{}", again.reason);

    // A probe finds a daemon started behind its back and adopts it.
    std::fs::remove_file(tmp.path().join("fail-stop")).unwrap();
    let out = std::process::Command::new(&script)
        .arg("start")
        .status()
        .unwrap();
    assert!(out.success());
    assert_eq!(
        bounded(LIMIT, "probe", svc.probe()).await.outcome,
        Outcome::Ok
    );
    let pid = pid_in(tmp.path());
    kill(pid);
    match bounded(LIMIT, "exit of the adopted", events.recv()).await {
        Some(AgentEvent::Exited { pid: p, .. }) => assert_eq!(p, pid),
        other => panic!("expected the adopted daemon's exit, got {other:?}"),
    }
    let _ = std::fs::remove_file(&pidfile);
}

/// Each LSB exit code of `start` carries its severity into the group: soft ones may be
/// restarted here, hard ones move the group, "not configured" is wrong everywhere. A script
/// that is not installed here is a hard failure to start and a clean "not running" to probe
/// and stop, never a reason to fence.
#[tokio::test]
async fn lsb_exit_codes_and_a_missing_script_carry_their_severity() {
    let tmp = tempfile::tempdir().unwrap();
    let (_script, svc) = lsb_script_agent(tmp.path());
    for (code, outcome) in [
        (1, Outcome::Failed),
        (4, Outcome::FailedHard),
        (5, Outcome::FailedHard),
        (6, Outcome::FailedFatal),
        (7, Outcome::Failed),
    ] {
        std::fs::write(tmp.path().join("fail-start"), code.to_string()).unwrap();
        let r = bounded(LIMIT, "failing start", svc.start(1)).await;
        assert_eq!(r.outcome, outcome, "start exit {code}: {}", r.reason);
        assert!(
            r.reason.contains(&format!("exited with {code}")),
            "{}",
            r.reason
        );
    }
    std::fs::write(tmp.path().join("fail-status"), "4").unwrap();
    assert_eq!(
        bounded(LIMIT, "status unknown", svc.monitor(Depth::Quick))
            .await
            .outcome,
        Outcome::Failed
    );

    let missing = tmp.path().join("no-such-script");
    let (svc, _events) = agent(&[
        ("name", "x"),
        ("manager", "lsb"),
        ("script", missing.to_str().unwrap()),
    ]);
    let why = svc
        .validate()
        .await
        .expect_err("a missing script is refused");
    assert!(why.to_string().contains("script"), "{why}");
    assert_eq!(
        bounded(LIMIT, "probe", svc.probe()).await.outcome,
        Outcome::NotRunning
    );
    let start = bounded(LIMIT, "start", svc.start(1)).await;
    assert_eq!(start.outcome, Outcome::FailedHard, "{}", start.reason);
    assert!(start.reason.contains("not installed"), "{}", start.reason);
    assert_eq!(
        bounded(LIMIT, "stop", svc.stop()).await.outcome,
        Outcome::Ok
    );
}

/// The monitor process's hard stop runs the script's own `stop`.
#[tokio::test]
async fn the_hard_stop_runs_the_scripts_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let (script, svc) = lsb_script_agent(tmp.path());
    assert_eq!(
        bounded(LIMIT, "start", svc.start(1)).await.outcome,
        Outcome::Ok
    );
    let pid = pid_in(tmp.path());
    let stop = svc.hard_stop().expect("a service has a hard stop");
    assert!(matches!(&stop, HardStop::Command { program, .. } if program == &script));
    stop.run(LIMIT).expect("the hard stop ran");
    support::wait::eventually(LIMIT, || !alive(pid)).await;
    assert!(!alive(pid), "the hard stop ended the daemon");
}

/// As root: the script installed as `/etc/init.d/NAME` is found by its name alone, the way an
/// operator writes `name = "nginx"`.
#[tokio::test]
async fn an_installed_init_script_is_found_by_its_name() {
    if support::skip_unless_root(
        "an_installed_init_script_is_found_by_its_name",
        "writing a script into /etc/init.d",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("eterne-test-{}", std::process::id());
    let installed = PathBuf::from("/etc/init.d").join(&name);
    std::fs::create_dir_all("/etc/init.d").unwrap();
    write_script(&installed, tmp.path());
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::process::Command::new(&self.0).arg("stop").status();
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(installed.clone());
    let (svc, _events) = agent(&[("name", &name), ("manager", "lsb")]);
    svc.validate().await.expect("found in /etc/init.d");
    assert_eq!(
        bounded(LIMIT, "start", svc.start(1)).await.outcome,
        Outcome::Ok
    );
    assert_eq!(
        bounded(LIMIT, "monitor", svc.monitor(Depth::Quick))
            .await
            .outcome,
        Outcome::Ok
    );
    assert_eq!(
        bounded(LIMIT, "stop", svc.stop()).await.outcome,
        Outcome::Ok
    );
}
