//! `eternectl agent test TYPE`: an agent run through its contract on this node, like
//! ocf-tester. A well-behaved LSB init script and Debian's `ocf:heartbeat:Dummy` pass; a
//! script that still says "running" after its stop, and one whose stop of what is stopped
//! fails, are reported at the step they get wrong; a resource that already runs is left alone.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

mod support;

/// An LSB script for a detached `sleep` with a pidfile in `$DIR`; `$DIR/broken-status` makes
/// `status` always say running, `$DIR/broken-stop` makes `stop` answer 0 and stop nothing.
const SCRIPT: &str = r#"#!/bin/sh
DIR=@DIR@
PIDFILE="$DIR/daemon.pid"
running() {
    [ -f "$DIR/broken-status" ] && return 0
    [ -f "$PIDFILE" ] || return 1
    state=$(sed 's/.*) //' "/proc/$(cat "$PIDFILE")/stat" 2>/dev/null | cut -c1)
    [ -n "$state" ] && [ "$state" != Z ]
}
case "$1" in
start) running && exit 0
    setsid sleep 1000 </dev/null >/dev/null 2>&1 &
    echo $! > "$PIDFILE"; exit 0;;
stop) [ -f "$DIR/broken-stop" ] && exit 0
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null; rm -f "$PIDFILE"; fi
    exit 0;;
status) running && exit 0; exit 3;;
*) exit 2;;
esac
"#;

fn script(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("svc");
    std::fs::write(&path, SCRIPT.replace("@DIR@", dir.to_str().unwrap())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `eternectl agent test ARGS…`: success, and what it printed.
fn agent_test(run_dir: &Path, args: &[&str]) -> (bool, String) {
    let run_dir = run_dir.to_str().unwrap();
    let fixed = [
        "--run-dir",
        run_dir,
        "--start-timeout-ms",
        "10000",
        "--stop-timeout-ms",
        "10000",
    ];
    let all = ["agent", "test"].iter().chain(args).chain(fixed.iter());
    support::eternectl(all)
}

#[test]
fn a_good_agent_passes_and_a_bad_one_is_told_where_it_breaks_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let path = script(tmp.path());
    let s = format!("script={}", path.display());
    let lsb = ["service", "name=svc", "manager=lsb", s.as_str()];

    let (ok, out) = agent_test(tmp.path(), &lsb);
    assert!(ok, "a well-behaved script passes:\n{out}");
    assert!(out.contains("service: passed every step"), "{out}");
    for step in [
        "validate",
        "probe",
        "start again",
        "monitor (deep)",
        "stop again",
    ] {
        assert!(
            out.contains(&format!("ok    {step}")),
            "{step} is reported:\n{out}"
        );
    }

    // A stop that says it stopped and did not: seen by the checks after it.
    std::fs::write(tmp.path().join("broken-stop"), "").unwrap();
    let (ok, out) = agent_test(tmp.path(), &lsb);
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAIL  monitor (quick, stopped): wanted NotRunning, got Ok"),
        "{out}"
    );
    assert!(out.contains("FAIL  probe (stopped)"), "{out}");
    assert!(out.contains("2 problem(s)"), "{out}");
    std::fs::remove_file(tmp.path().join("broken-stop")).unwrap();
    assert!(Command::new(&path).arg("stop").status().unwrap().success());

    // A resource already running here is not touched.
    assert!(Command::new(&path).arg("start").status().unwrap().success());
    let (ok, out) = agent_test(tmp.path(), &lsb);
    assert!(!ok, "{out}");
    assert!(out.contains("it already runs on this node"), "{out}");
    assert!(
        Command::new(&path)
            .arg("status")
            .status()
            .unwrap()
            .success(),
        "still running"
    );
    assert!(Command::new(&path).arg("stop").status().unwrap().success());

    // A status that always says running: stopped is not seen as stopped.
    let (ok, out) = agent_test(tmp.path(), &lsb);
    assert!(ok, "{out}");
    std::fs::write(tmp.path().join("broken-status"), "").unwrap();
    let (ok, out) = agent_test(tmp.path(), &lsb);
    assert!(!ok, "{out}");
    assert!(
        out.contains("it already runs on this node"),
        "a status stuck at running fails the first probe:\n{out}"
    );
    std::fs::remove_file(tmp.path().join("broken-status")).unwrap();

    // Bad input is named.
    let (ok, out) = agent_test(tmp.path(), &["service", "nmae=svc"]);
    assert!(!ok);
    assert!(out.contains("nmae"), "{out}");
    let (ok, out) = agent_test(tmp.path(), &["service", "name"]);
    assert!(!ok);
    assert!(out.contains("not KEY=VALUE"), "{out}");
}

#[test]
fn debians_dummy_agent_passes() {
    if support::skip_unless_root(
        "debians_dummy_agent_passes",
        "the OCF state directory /run/resource-agents",
    ) {
        return;
    }
    let dummy = Path::new("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    if !dummy.exists() {
        println!("SKIPPED debians_dummy_agent_passes: {} is missing; install resource-agents (scripts/setup.sh does)", dummy.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = format!("state={}", tmp.path().join("dummy.state").display());
    let (ok, out) = agent_test(tmp.path(), &["ocf:heartbeat:Dummy", state.as_str()]);
    assert!(ok, "Dummy passes:\n{out}");
    let (ok, out) = agent_test(tmp.path(), &["ocf:heartbeat:NoSuchAgent"]);
    assert!(!ok);
    assert!(
        out.contains("stopped early: validate failed") && out.contains("NoSuchAgent"),
        "{out}"
    );
}
