//! The `ocf` agent against real OCF agents: Debian's `resource-agents` (`ocf:heartbeat:Dummy`,
//! and `ocf:heartbeat:IPaddr2` in a network namespace as root) and a fake agent written into a
//! temporary OCF root that covers every exit code, the environment, check levels, closed
//! descriptors and a hung action killed with its whole process group.
//!
//! Tests assert behaviour, never timing: every wait is bounded by a generous [`LIMIT`] that only
//! turns a hang into a failure. `scripts/setup.sh` installs `resource-agents`.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eterne::policy::group::Outcome;
use eterne::policy::spec::{MonitorSpec, ResourceSpec};
use eterne::resources::{build, Agent, AgentError, Depth};
use support::agent::Timings;
use support::wait::{bounded, eventually};

/// The bound of every wait: long enough for a loaded machine, short enough to fail a hang.
const LIMIT: Duration = Duration::from_secs(30);
/// Where Debian installs the OCF tree.
const SYSTEM_OCF_ROOT: &str = "/usr/lib/ocf";

/// A fake OCF agent: each action does what its parameters say (`rc`: the exit code, or
/// `kill` to die by SIGKILL; `hang`: start never returns and leaves a child in its group) and
/// records its environment and descriptors in `dir`.
const FAKE_AGENT: &str = r#"#!/bin/sh
case "$1" in
meta-data)
    cat <<'EOF'
<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Fake" version="1.0">
<version>1.0</version>
<parameters>
<parameter name="dir" required="1"><content type="string"/></parameter>
<parameter name="rc"><content type="string"/></parameter>
<parameter name="hang"><content type="string"/></parameter>
</parameters>
<actions>
<action name="start" timeout="20s"/>
<action name="stop" timeout="20s"/>
<action name="monitor" timeout="20s" interval="10s" depth="0"/>
<action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="20s"/>
</actions>
</resource-agent>
EOF
    exit 0;;
esac
d="$OCF_RESKEY_dir"
env > "$d/env-$1"
for fd in /proc/$$/fd/*; do echo "${fd##*/} $(readlink "$fd")"; done > "$d/fds-$1"
echo "fake $1 says hello"
echo "fake $1 complains on stderr" >&2
if [ "$1" = start ] && [ -n "$OCF_RESKEY_hang" ]; then
    sleep 1000 &
    echo $$ > "$d/hung.pid.tmp" && mv "$d/hung.pid.tmp" "$d/hung.pid"
    sleep 1000
fi
if [ "$OCF_RESKEY_rc" = kill ]; then kill -9 $$; fi
exit "${OCF_RESKEY_rc:-0}"
"#;

/// The timings of the test resources.
const TIMINGS: Timings = Timings {
    quick: MonitorSpec {
        interval_ms: 1000,
        timeout_ms: 1500,
    },
    deep: Some(MonitorSpec {
        interval_ms: 20000,
        timeout_ms: 7000,
    }),
    start_ms: 20000,
    stop_ms: 15000,
};

fn spec(name: &str, params: &[(&str, &str)]) -> ResourceSpec {
    support::agent::resource(name, "ocf", params, &TIMINGS)
}

fn agent(name: &str, params: &[(&str, &str)]) -> Box<dyn Agent> {
    let (ctx, _rx) = support::agent::context(0, 0, name, std::env::temp_dir(), 4);
    build(&spec(name, params), &ctx).expect("the parameters are well formed")
}

/// Whether Debian's resource-agents are here; prints one line if not.
fn have_resource_agents(test: &str) -> bool {
    let dummy = Path::new(SYSTEM_OCF_ROOT).join("resource.d/heartbeat/Dummy");
    if dummy.exists() {
        return true;
    }
    println!(
        "SKIPPED {test}: {} is missing; install resource-agents (scripts/setup.sh does)",
        dummy.display()
    );
    false
}

/// A temporary OCF root holding the fake agent as `ocf:test:Fake`.
fn fake_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("resource.d/test");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("Fake");
    std::fs::write(&file, FAKE_AGENT).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `NAME=VALUE` lines of an `env` dump.
fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Live (not zombie) members of process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(i) = stat.rfind(')') else {
                return false;
            };
            let mut f = stat[i + 1..].split_whitespace();
            let state = f.next();
            let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        })
        .collect()
}

#[tokio::test]
async fn dummy_start_monitor_stop_probe() {
    if !have_resource_agents("dummy_start_monitor_stop_probe") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dummy.state");
    let a = agent("dummy1", &[("type", "Dummy"), ("state", s(&state))]);
    a.validate()
        .await
        .expect("Dummy with a state file validates");

    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    let r = bounded(LIMIT, "start", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(state.exists(), "Dummy keeps its state file");
    for depth in [Depth::Quick, Depth::Deep] {
        let r = bounded(LIMIT, "monitor", a.monitor(depth)).await;
        assert_eq!(r.outcome, Outcome::Ok, "{depth:?}: {r:?}");
    }
    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let r = bounded(LIMIT, "start again", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");

    let r = bounded(LIMIT, "stop", a.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(!state.exists());
    let r = bounded(LIMIT, "monitor", a.monitor(Depth::Quick)).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    assert!(r.reason.contains("OCF_NOT_RUNNING"), "{r:?}");
    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    let r = bounded(LIMIT, "stop again", a.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
}

fn param_error(e: AgentError) -> (String, String, String) {
    match e {
        AgentError::Param {
            resource,
            param,
            problem,
        } => (resource, param, problem),
        other => panic!("not a parameter error: {other}"),
    }
}

#[tokio::test]
async fn meta_data_catches_unknown_and_missing_parameters() {
    if !have_resource_agents("meta_data_catches_unknown_and_missing_parameters") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dummy.state");
    let a = agent(
        "dummy2",
        &[("type", "Dummy"), ("state", s(&state)), ("stat", "typo")],
    );
    let e = a
        .validate()
        .await
        .expect_err("an unknown parameter is refused");
    let msg = e.to_string();
    let (resource, param, problem) = param_error(e);
    assert_eq!(
        (resource.as_str(), param.as_str()),
        ("dummy2", "stat"),
        "{msg}"
    );
    assert!(
        problem.contains("unknown parameter of ocf:heartbeat:Dummy"),
        "{msg}"
    );
    assert!(
        problem.contains("state"),
        "the known ones are listed: {msg}"
    );

    // IPaddr2 requires `ip`.
    let a = agent("vip", &[("type", "IPaddr2"), ("nic", "eth0")]);
    let (resource, param, problem) = param_error(a.validate().await.unwrap_err());
    assert_eq!(
        (resource.as_str(), param.as_str()),
        ("vip", "ip"),
        "{problem}"
    );
    assert!(
        problem.contains("required by ocf:heartbeat:IPaddr2"),
        "{problem}"
    );

    // The fake requires `dir`.
    let root = fake_root();
    let a = agent(
        "fake",
        &[
            ("type", "Fake"),
            ("provider", "test"),
            ("ocf_root", s(root.path())),
        ],
    );
    let (_, param, _) = param_error(a.validate().await.unwrap_err());
    assert_eq!(param, "dir");

    // A missing agent is named with the way to fix it.
    let a = agent("nope", &[("type", "NoSuchAgent")]);
    let (_, param, problem) = param_error(a.validate().await.unwrap_err());
    assert_eq!(param, "type");
    assert!(problem.contains("ocf:heartbeat:NoSuchAgent"), "{problem}");
}

#[tokio::test]
async fn validate_all_runs_and_its_refusal_is_an_error() {
    let root = fake_root();
    let work = tempfile::tempdir().unwrap();
    let base = [
        ("type", "Fake"),
        ("provider", "test"),
        ("ocf_root", s(root.path())),
        ("dir", s(work.path())),
    ];
    let a = agent("fake", &base);
    a.validate().await.expect("the fake validates");
    assert!(work.path().join("env-validate-all").exists());

    let mut params = base.to_vec();
    params.push(("rc", "6"));
    let a = agent("fake", &params);
    let (resource, _, problem) = param_error(a.validate().await.unwrap_err());
    assert_eq!(resource, "fake");
    assert!(problem.contains("validate-all"), "{problem}");
    assert!(problem.contains("OCF_ERR_CONFIGURED"), "{problem}");
    assert!(
        problem.contains("fake validate-all says hello"),
        "{problem}"
    );
}

#[tokio::test]
async fn exit_codes_map_onto_outcomes() {
    let root = fake_root();
    let work = tempfile::tempdir().unwrap();
    type Want = [Outcome; 4]; // start, stop, monitor, probe
    use Outcome::{Failed as F, FailedFatal as X, FailedHard as H, NotRunning as N, Ok as O};
    let cases: &[(&str, Want, &str)] = &[
        ("0", [O, O, O, O], "OCF_SUCCESS"),
        ("1", [F, F, F, F], "OCF_ERR_GENERIC"),
        // Hard and fatal codes carry their severity (a stop failure is one whatever its code).
        ("2", [H, F, H, H], "OCF_ERR_ARGS"),
        ("3", [H, F, H, H], "OCF_ERR_UNIMPLEMENTED"),
        ("4", [H, F, H, H], "OCF_ERR_PERM"),
        ("5", [H, F, H, N], "OCF_ERR_INSTALLED"),
        ("6", [X, F, X, X], "OCF_ERR_CONFIGURED"),
        ("7", [F, O, N, N], "OCF_NOT_RUNNING"),
        ("kill", [F, F, F, F], "signal 9"),
    ];
    for (rc, want, name) in cases {
        let a = agent(
            "fake",
            &[
                ("type", "Fake"),
                ("provider", "test"),
                ("ocf_root", s(root.path())),
                ("dir", s(work.path())),
                ("rc", rc),
            ],
        );
        let got = [
            bounded(LIMIT, "start", a.start(1)).await,
            bounded(LIMIT, "stop", a.stop()).await,
            bounded(LIMIT, "monitor", a.monitor(Depth::Quick)).await,
            bounded(LIMIT, "probe", a.probe()).await,
        ];
        for (i, (r, w)) in got.iter().zip(want).enumerate() {
            let op = ["start", "stop", "monitor", "probe"][i];
            assert_eq!(r.outcome, *w, "rc {rc}, {op}: {r:?}");
            if r.outcome != Outcome::Ok || *rc == "0" {
                assert!(r.reason.contains(name), "rc {rc}, {op}: {r:?}");
            }
            if r.outcome.is_failure() {
                // The agent's last words (stdout and stderr) are in the reason.
                assert!(r.reason.contains("says hello"), "{r:?}");
                assert!(r.reason.contains("complains on stderr"), "{r:?}");
            }
        }
        if *rc == "1" {
            assert!(got[1].reason.contains("fence"), "{:?}", got[1]);
        }
    }
}

#[tokio::test]
async fn environment_check_levels_and_closed_descriptors() {
    let root = fake_root();
    let work = tempfile::tempdir().unwrap();
    // A descriptor the daemon leaks (no O_CLOEXEC) must not reach the agent.
    let leaked_path = work.path().join("leaked");
    std::fs::write(&leaked_path, "x").unwrap();
    let cpath = std::ffi::CString::new(s(&leaked_path)).unwrap();
    // SAFETY: a valid path; the descriptor is closed at the end of the test.
    let leaked = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY) };
    assert!(leaked > 2);

    let a = agent(
        "fake-env",
        &[
            ("type", "Fake"),
            ("provider", "test"),
            ("ocf_root", s(root.path())),
            ("dir", s(work.path())),
            ("deep_check_level", "20"),
        ],
    );
    let env = |action: &str| read_env(&work.path().join(format!("env-{action}")));

    assert_eq!(
        bounded(LIMIT, "start", a.start(1)).await.outcome,
        Outcome::Ok
    );
    let e = env("start");
    let want = [
        ("OCF_ROOT", s(root.path())),
        ("OCF_RESOURCE_INSTANCE", "fake-env"),
        ("OCF_RESOURCE_TYPE", "Fake"),
        ("OCF_RESOURCE_PROVIDER", "test"),
        ("OCF_RA_VERSION_MAJOR", "1"),
        ("OCF_RESKEY_dir", s(work.path())),
        ("OCF_RESKEY_CRM_meta_timeout", "20000"),
        ("OCF_RESKEY_CRM_meta_interval", "0"),
    ];
    for (k, v) in want {
        assert_eq!(e.get(k).map(String::as_str), Some(v), "{k} in {e:?}");
    }
    assert!(
        matches!(
            e.get("OCF_RA_VERSION_MINOR").map(String::as_str),
            Some("0" | "1")
        ),
        "{e:?}"
    );
    assert!(e.contains_key("PATH"));
    assert!(
        !e.contains_key("OCF_CHECK_LEVEL"),
        "start has no check level"
    );
    assert!(
        !e.contains_key("OCF_RESKEY_deep_check_level"),
        "ours, not the agent's"
    );

    let fds = std::fs::read_to_string(work.path().join("fds-start")).unwrap();
    assert!(
        fds.lines().any(|l| l == "0 /dev/null"),
        "stdin is /dev/null: {fds}"
    );
    assert!(
        !fds.contains(s(&leaked_path)),
        "a descriptor of the daemon reached the agent: {fds}"
    );

    assert_eq!(bounded(LIMIT, "stop", a.stop()).await.outcome, Outcome::Ok);
    assert_eq!(
        env("stop")
            .get("OCF_RESKEY_CRM_meta_timeout")
            .map(String::as_str),
        Some("15000")
    );

    // Quick monitor, deep monitor, probe: level, timeout, interval.
    let cases: [(&str, Option<Depth>, &str, &str, &str); 3] = [
        ("quick", Some(Depth::Quick), "0", "1500", "1000"),
        ("deep", Some(Depth::Deep), "20", "7000", "20000"),
        ("probe", None, "0", "1500", "0"),
    ];
    for (what, depth, level, timeout, interval) in cases {
        let r = match depth {
            Some(d) => bounded(LIMIT, what, a.monitor(d)).await,
            None => bounded(LIMIT, what, a.probe()).await,
        };
        assert_eq!(r.outcome, Outcome::Ok, "{what}: {r:?}");
        let e = env("monitor");
        let got = |k: &str| e.get(k).cloned().unwrap_or_default();
        assert_eq!(
            (
                got("OCF_CHECK_LEVEL"),
                got("OCF_RESKEY_CRM_meta_timeout"),
                got("OCF_RESKEY_CRM_meta_interval")
            ),
            (level.to_string(), timeout.to_string(), interval.to_string()),
            "{what}"
        );
    }
    // SAFETY: the descriptor opened above.
    unsafe { libc::close(leaked) };
}

#[tokio::test]
async fn a_hung_action_dropped_at_the_deadline_takes_its_process_group_along() {
    let root = fake_root();
    let work = tempfile::tempdir().unwrap();
    let a = agent(
        "fake-hang",
        &[
            ("type", "Fake"),
            ("provider", "test"),
            ("ocf_root", s(root.path())),
            ("dir", s(work.path())),
            ("hang", "1"),
        ],
    );
    let pidfile = work.path().join("hung.pid");
    let pgid = {
        let start = a.start(1);
        tokio::pin!(start);
        // Drive the start until the agent has left a child in its group, as a caller does
        // until its deadline; then give up on it (drop the future).
        let waited = async {
            let found = eventually(LIMIT, || pidfile.exists()).await;
            assert!(found, "the hung agent never wrote its pid");
            let pgid: u32 = std::fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert!(
                eventually(LIMIT, || group_members(pgid).len() >= 2).await,
                "the agent and its child run in a group of their own"
            );
            pgid
        };
        tokio::select! {
            r = &mut start => panic!("a hung start returned: {r:?}"),
            pgid = waited => pgid,
        }
    };
    // The caller dropped the start: nothing of its group may be left.
    let gone = eventually(LIMIT, || group_members(pgid).is_empty()).await;
    assert!(
        gone,
        "process group {pgid} outlived the dropped action: {:?}",
        group_members(pgid)
    );
}

/// A network namespace, deleted when dropped (also when the test fails).
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Self {
        let _ = run("ip", &["netns", "del", name]);
        run("ip", &["netns", "add", name]).expect("ip netns add");
        let ns = Netns(name.to_string());
        // No dummy driver everywhere: a veth pair inside the namespace gives a NIC.
        ns.ip(&["link", "add", "e0", "type", "veth", "peer", "name", "e1"]);
        for dev in ["lo", "e0", "e1"] {
            ns.ip(&["link", "set", dev, "up"]);
        }
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        run("ip", &all).unwrap_or_else(|e| panic!("ip {all:?}: {e}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

fn run(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn ipaddr2_adds_and_removes_an_address_in_a_network_namespace() {
    if support::skip_unless_root(
        "ipaddr2_adds_and_removes_an_address_in_a_network_namespace",
        "ip netns",
    ) {
        return;
    }
    if !have_resource_agents("ipaddr2_adds_and_removes_an_address_in_a_network_namespace") {
        return;
    }
    let ns = Netns::create(&format!("eterne-ocf-{}", std::process::id()));
    // An OCF root whose IPaddr2 runs the real one inside the namespace; the shell function
    // library comes from the system's root.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("resource.d/heartbeat");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(
        Path::new(SYSTEM_OCF_ROOT).join("lib"),
        root.path().join("lib"),
    )
    .unwrap();
    let wrapper = dir.join("IPaddr2");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec ip netns exec {} {SYSTEM_OCF_ROOT}/resource.d/heartbeat/IPaddr2 \"$@\"\n",
            ns.0
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let a = agent(
        "vip",
        &[
            ("type", "IPaddr2"),
            ("ocf_root", s(root.path())),
            ("ip", "192.0.2.55"),
            ("cidr_netmask", "24"),
            ("nic", "e0"),
        ],
    );
    let has_address = || {
        ns.ip(&["-4", "-o", "addr", "show", "dev", "e0"])
            .contains("192.0.2.55/24")
    };
    a.validate()
        .await
        .expect("IPaddr2 validates in the namespace");
    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    let r = bounded(LIMIT, "start", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(has_address(), "start added the address");
    let r = bounded(LIMIT, "monitor", a.monitor(Depth::Quick)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let r = bounded(LIMIT, "stop", a.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(!has_address(), "stop removed the address");
    let r = bounded(LIMIT, "monitor", a.monitor(Depth::Quick)).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    drop(ns);
}

#[test]
fn build_checks_syntax_only() {
    let (ctx, _rx) = support::agent::context(0, 0, "x", PathBuf::from("/run/eterne"), 1);
    // An agent that does not exist here builds (config check runs anywhere)...
    assert!(build(&spec("x", &[("type", "NotHere")]), &ctx).is_ok());
    // ...but a missing type does not.
    let e = build(&spec("x", &[("ip", "1.2.3.4")]), &ctx).unwrap_err();
    assert_eq!(param_error(e).1, "type");
}

/// An agent missing on this node (`type = "NoSuchAgent"`) is OCF's "not installed", seen
/// before anything runs: the probe finds it not running and the stop has nothing to stop, so
/// the node is never fenced for it; the start fails hard, so the group goes to a node that
/// has the agent; each reason names the missing file.
#[tokio::test]
async fn a_missing_agent_is_not_running_here_and_never_a_failed_stop() {
    let root = tempfile::tempdir().unwrap();
    let a = agent(
        "nope",
        &[("type", "NoSuchAgent"), ("ocf_root", s(root.path()))],
    );
    let missing = "resource.d/heartbeat/NoSuchAgent";
    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(r.outcome, Outcome::NotRunning, "{r:?}");
    assert!(
        r.reason.contains(missing) && r.reason.contains("OCF_ERR_INSTALLED"),
        "{r:?}"
    );
    let r = bounded(LIMIT, "stop", a.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "never a failed stop: {r:?}");
    let r = bounded(LIMIT, "start", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::FailedHard, "{r:?}");
    assert!(r.reason.contains(missing), "{r:?}");
    let r = bounded(LIMIT, "monitor", a.monitor(Depth::Quick)).await;
    assert_eq!(r.outcome, Outcome::FailedHard, "{r:?}");
}

/// A daemon restarted with changed parameters finds the resource running with the old ones:
/// the probe applies the change with the agent's reload when the meta-data says it can
/// (Dummy: `reload`, `fake` is not unique), and fails (so the group restarts the resource)
/// when it cannot (`state` is unique). The record of what a start used lives in the run
/// directory and goes with a stop.
#[tokio::test]
async fn changed_parameters_are_reloaded_where_the_agent_can_and_restarted_where_not() {
    if !have_resource_agents(
        "changed_parameters_are_reloaded_where_the_agent_can_and_restarted_where_not",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dummy.state");
    let run = tmp.path().join("run");
    let with = |params: &[(&str, &str)]| {
        let (ctx, _rx) = support::agent::context(0, 0, "reload1", run.clone(), 4);
        build(&spec("reload1", params), &ctx).expect("well formed")
    };
    let a = with(&[("type", "Dummy"), ("state", s(&state)), ("fake", "one")]);
    let r = bounded(LIMIT, "start", a.start(1)).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let recorded = run.join("reload1.ocf-params");
    assert!(std::fs::read_to_string(&recorded)
        .unwrap()
        .contains("fake=one"));

    // Same parameters: adopted as it is.
    let r = bounded(LIMIT, "probe", a.probe()).await;
    assert_eq!(
        (r.outcome, r.reason.contains("changed")),
        (Outcome::Ok, false),
        "{r:?}"
    );

    // fake changed: Dummy's reload applies it, and the new value is recorded.
    let b = with(&[("type", "Dummy"), ("state", s(&state)), ("fake", "two")]);
    let r = bounded(LIMIT, "probe", b.probe()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(
        r.reason.contains("fake changed: reload applied it"),
        "{r:?}"
    );
    assert!(std::fs::read_to_string(&recorded)
        .unwrap()
        .contains("fake=two"));

    // A unique parameter changed (as if the running instance had been started with another
    // state file) cannot be reloaded: the probe fails, which has the group stop the
    // resource and start it again with the config's parameters.
    let c = b;
    let mut text = std::fs::read_to_string(&recorded).unwrap();
    text = text.replace(&format!("state={}", s(&state)), "state=/elsewhere");
    std::fs::write(&recorded, text).unwrap();
    let r = bounded(LIMIT, "probe", c.probe()).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        r.reason.contains("state changed") && r.reason.contains("cannot reload"),
        "{r:?}"
    );

    let r = bounded(LIMIT, "stop", c.stop()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(!recorded.exists(), "a stop forgets what the start used");
}
