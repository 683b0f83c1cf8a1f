//! The `share` agent against a real Samba: each test starts its own `smbd` in a network
//! namespace of its own (`sh<pid>-<test>`), with an smb.conf whose every directory is under
//! `/tmp/share-<namespace>`, listening only on the namespace's address. The agent runs inside
//! that namespace too (the test body runs on a thread that entered it), and a real
//! `smbclient` there is the client: what it can list, read and write is what is asserted.
//!
//! Root only (network namespaces, smbd); without root or Samba each test prints one line and
//! returns. Every wait is bounded by [`LIMIT`], which only turns a hang into a failure;
//! smbd and everything else in the namespace is killed when the test ends, also on a panic.

mod support;

use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use eterne::policy::group::Outcome;
use eterne::policy::spec::MonitorSpec;
use eterne::resources::contract::{self, Bounds};
use eterne::resources::{build, Agent, AgentError, Depth};
use support::agent::Timings;
use support::samba::{self, Listen, SambaNs};
use support::wait::bounded;

const LIMIT: Duration = Duration::from_secs(30);

const TIMINGS: Timings = Timings {
    quick: MonitorSpec {
        interval_ms: 5000,
        timeout_ms: 4000,
    },
    deep: Some(MonitorSpec {
        interval_ms: 10000,
        timeout_ms: 8000,
    }),
    start_ms: 10000,
    stop_ms: 10000,
};

/// Whether test `test` must skip (after one line saying why).
fn skip(test: &str) -> bool {
    if support::skip_unless_root(test, "network namespaces and an smbd of the test's own") {
        return true;
    }
    match samba::unavailable() {
        Some(why) => {
            println!("SKIPPED {test}: {why}");
            true
        }
        None => false,
    }
}

/// The test's namespace: `sh<pid>-<tag>`, its address on `lo`.
fn namespace(tag: &str, addr: &str) -> SambaNs {
    SambaNs::new(&format!("sh{}-{tag}", std::process::id() % 1000), addr)
}

/// A Samba in `ns`: its smb.conf (registry shares on, listening on the namespace's address
/// only), smbd started when `run`.
fn samba_in(ns: &SambaNs, run: bool) -> PathBuf {
    let conf = samba::write_smb_conf(
        &ns.dir.join("samba"),
        "ETERNETEST",
        &Listen::Only(ns.addr.clone()),
        true,
    );
    if run {
        samba::start_smbd(&ns.ns, &conf, &ns.addr).unwrap_or_else(|e| panic!("{e}"));
    }
    conf
}

/// A directory to share, world-writable (guests write as `nobody`), with `hello.txt` in it.
fn shared_dir(ns: &SambaNs, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = ns.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), format!("hello from {name}\n")).unwrap();
    for d in [&ns.dir, &dir] {
        let mode = if d == &dir { 0o777 } else { 0o755 };
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dir
}

/// A share agent with `params` (plus `smb_conf`), as the daemon builds it.
fn agent(ns: &SambaNs, conf: &Path, params: &[(&str, &str)]) -> Box<dyn Agent> {
    let conf = conf.to_string_lossy().into_owned();
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.push(("smb_conf", &conf));
    let spec = support::agent::resource("files", "share", &all, &TIMINGS);
    let (ctx, _events) = support::agent::context(0, 0, "files", ns.dir.join("run"), 4);
    build(&spec, &ctx).expect("well-formed parameters")
}

/// Runs `body` on a thread that entered namespace `ns`, on a runtime of that thread: the
/// agent's commands (and their children) run in the namespace.
fn in_ns<F, Fut>(ns: &str, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let ns = ns.to_string();
    let joined = std::thread::spawn(move || {
        let f = std::fs::File::open(Path::new("/run/netns").join(&ns)).expect("the namespace");
        // SAFETY: setns with a namespace fd we own; it affects this thread only.
        let entered = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            entered,
            0,
            "setns {ns}: {}",
            std::io::Error::last_os_error()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(body());
    })
    .join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

async fn outcome(
    what: &str,
    f: impl std::future::Future<Output = eterne::resources::Report>,
) -> (Outcome, String) {
    let r = bounded(LIMIT, what, f).await;
    (r.outcome, r.reason)
}

/// The whole life of a share as a client sees it: not there before, a guest lists and reads
/// its file once started, a second start changes nothing, a share defined behind the agent's
/// back is adopted by probe, and after stop the share is gone from the registry and the
/// client is refused.
#[test]
fn a_started_share_serves_its_files_and_a_stopped_one_is_refused() {
    let test = "a_started_share_serves_its_files_and_a_stopped_one_is_refused";
    if skip(test) {
        return;
    }
    let ns = namespace("life", "192.0.2.1");
    let conf = samba_in(&ns, true);
    let dir = shared_dir(&ns, "data");
    let share = agent(
        &ns,
        &conf,
        &[
            ("name", "data"),
            ("path", dir.to_str().unwrap()),
            ("guest_ok", "true"),
            ("comment", "the test's files"),
        ],
    );
    let (name, addr, conf2) = (ns.ns.clone(), ns.addr.clone(), conf.clone());
    in_ns(&ns.ns, move || async move {
        share
            .validate()
            .await
            .expect("this node can serve the share");
        assert_eq!(outcome("probe", share.probe()).await.0, Outcome::NotRunning);
        let (o, why) = outcome("monitor", share.monitor(Depth::Quick)).await;
        assert_eq!(o, Outcome::NotRunning, "{why}");
        let (refused, out) = samba::smbclient(&name, &addr, "data", "ls");
        assert!(!refused, "the share is served before start: {out}");

        let (o, why) = outcome("start", share.start(1)).await;
        assert_eq!(o, Outcome::Ok, "{why}");
        assert!(samba::registry_has(&conf2, "data"));
        let (ok, out) = samba::smbclient(&name, &addr, "data", "ls; get hello.txt /dev/stdout");
        assert!(ok, "a guest reads the share: {out}");
        assert!(out.contains("hello.txt"), "{out}");
        assert!(out.contains("hello from data"), "{out}");
        let (ok, list) = samba::in_ns(
            &name,
            &["smbclient", "-L", &format!("//{addr}"), "-N"],
            None,
        );
        assert!(
            ok && list.contains("the test's files"),
            "the share is listed with its comment: {list}"
        );
        for depth in [Depth::Quick, Depth::Deep] {
            let (o, why) = outcome("monitor", share.monitor(depth)).await;
            assert_eq!(o, Outcome::Ok, "{depth:?}: {why}");
        }
        let (o, why) = outcome("start again", share.start(2)).await;
        assert_eq!(o, Outcome::Ok, "starting what runs: {why}");
        assert!(samba::smbclient(&name, &addr, "data", "ls").0);

        let (o, why) = outcome("stop", share.stop()).await;
        assert_eq!(o, Outcome::Ok, "{why}");
        assert!(
            !samba::registry_has(&conf2, "data"),
            "stop deletes it from the registry"
        );
        let (ok, out) = samba::smbclient(&name, &addr, "data", "ls");
        assert!(!ok, "a stopped share is refused: {out}");
        assert!(out.contains("NT_STATUS_BAD_NETWORK_NAME"), "{out}");
        assert_eq!(outcome("probe", share.probe()).await.0, Outcome::NotRunning);
        let (o, why) = outcome("monitor", share.monitor(Depth::Quick)).await;
        assert_eq!(o, Outcome::NotRunning, "stopped is not failed: {why}");
        let (o, why) = outcome("stop again", share.stop()).await;
        assert_eq!(o, Outcome::Ok, "stopping what is stopped: {why}");

        // Defined behind the agent's back (by hand, say, or a daemon restarted): adopted.
        let (ok, out) = samba::net_conf(&conf2, &["addshare", "data", dir.to_str().unwrap()]);
        assert!(ok, "{out}");
        let (o, why) = outcome("probe", share.probe()).await;
        assert_eq!(o, Outcome::Ok, "probe finds the share: {why}");
        assert_eq!(outcome("stop", share.stop()).await.0, Outcome::Ok);
        assert!(!samba::registry_has(&conf2, "data"));
    });
}

/// The agent through its whole contract, as `eternectl agent test share …` runs it.
#[test]
fn the_share_passes_the_agent_contract() {
    let test = "the_share_passes_the_agent_contract";
    if skip(test) {
        return;
    }
    let ns = namespace("contract", "192.0.2.2");
    let conf = samba_in(&ns, true);
    let dir = shared_dir(&ns, "c");
    let share = agent(
        &ns,
        &conf,
        &[("name", "c"), ("path", dir.to_str().unwrap())],
    );
    in_ns(&ns.ns, move || async move {
        let bounds = Bounds {
            start: Duration::from_secs(10),
            stop: Duration::from_secs(10),
            monitor: Duration::from_secs(8),
        };
        let run = contract::run(share.as_ref(), bounds).await;
        let problems: Vec<_> = run.problems().collect();
        assert!(run.passed(), "{problems:?} {:?}", run.stopped_early);
    });
}

/// A stop cuts off the clients still connected to the share here (they would otherwise keep
/// writing through the old node), not only new ones.
#[test]
fn stop_cuts_off_a_client_still_connected() {
    let test = "stop_cuts_off_a_client_still_connected";
    if skip(test) {
        return;
    }
    let ns = namespace("cut", "192.0.2.3");
    let conf = samba_in(&ns, true);
    let dir = shared_dir(&ns, "live");
    let share = agent(
        &ns,
        &conf,
        &[
            ("name", "live"),
            ("path", dir.to_str().unwrap()),
            ("guest_ok", "yes"),
        ],
    );
    let (addr, conf2) = (ns.addr.clone(), conf.clone());
    in_ns(&ns.ns, move || async move {
        assert_eq!(outcome("start", share.start(1)).await.0, Outcome::Ok);
        // One smbclient session, its commands fed one by one.
        let mut client = Command::new("smbclient")
            .args([&format!("//{addr}/live"), "-N"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("smbclient");
        let mut stdin = client.stdin.take().unwrap();
        writeln!(stdin, "ls").unwrap();
        // The session is connected to the share once smbd's status lists it.
        let c = conf2.to_string_lossy().into_owned();
        let connected = support::wait::eventually(LIMIT, || {
            let (_, status) = samba::run(&["smbstatus", "-S", "-s", &c], None);
            status.lines().any(|l| l.trim_start().starts_with("live "))
        })
        .await;
        assert!(
            connected,
            "smbstatus never listed the client's connection to the share"
        );
        let (o, why) = outcome("stop", share.stop()).await;
        assert_eq!(o, Outcome::Ok, "{why}");
        writeln!(stdin, "ls").unwrap();
        writeln!(stdin, "quit").unwrap();
        drop(stdin);
        let done =
            support::wait::eventually(LIMIT, || matches!(client.try_wait(), Ok(Some(_)))).await;
        if !done {
            let _ = client.kill();
        }
        let _ = client.wait();
        let mut out = String::new();
        client
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        client
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(
            out.contains("hello.txt"),
            "the first listing went through: {out}"
        );
        assert!(
            out.contains("NT_STATUS_NETWORK_NAME_DELETED"),
            "the open session was cut off at stop: {out}"
        );
    });
}

/// A start rewrites the share whole: a changed config (here read-only) is applied to a
/// share already defined, and a change behind the cluster's back (`net conf setparm`) fails
/// the deep monitor, naming what changed.
#[test]
fn a_start_applies_a_changed_config_and_the_deep_monitor_sees_drift() {
    let test = "a_start_applies_a_changed_config_and_the_deep_monitor_sees_drift";
    if skip(test) {
        return;
    }
    let ns = namespace("drift", "192.0.2.4");
    let conf = samba_in(&ns, true);
    let dir = shared_dir(&ns, "rw");
    let path = dir.to_str().unwrap().to_string();
    let writable = agent(
        &ns,
        &conf,
        &[("name", "rw"), ("path", &path), ("guest_ok", "true")],
    );
    let read_only = agent(
        &ns,
        &conf,
        &[
            ("name", "rw"),
            ("path", &path),
            ("guest_ok", "true"),
            ("read_only", "true"),
            ("options", "browseable = no"),
        ],
    );
    let (name, addr, conf2) = (ns.ns.clone(), ns.addr.clone(), conf.clone());
    in_ns(&ns.ns, move || async move {
        assert_eq!(outcome("start", writable.start(1)).await.0, Outcome::Ok);
        let (ok, out) = samba::smbclient(&name, &addr, "rw", "put /etc/hostname one.txt");
        assert!(ok && dir.join("one.txt").exists(), "writable: {out}");

        let (ok, out) = samba::net_conf(&conf2, &["setparm", "rw", "guest ok", "no"]);
        assert!(ok, "{out}");
        let (o, why) = outcome("deep monitor", writable.monitor(Depth::Deep)).await;
        assert_eq!(o, Outcome::Failed, "{why}");
        assert!(why.contains("guest ok = no instead of yes"), "{why}");
        assert_eq!(
            outcome("quick monitor", writable.monitor(Depth::Quick))
                .await
                .0,
            Outcome::Ok,
            "the quick check looks at the path and smbd only"
        );

        let (o, why) = outcome("start read-only", read_only.start(2)).await;
        assert_eq!(o, Outcome::Ok, "{why}");
        let (_, shown) = samba::net_conf(&conf2, &["showshare", "rw"]);
        assert!(
            shown.contains("read only = yes") && shown.contains("guest ok = yes"),
            "{shown}"
        );
        assert!(shown.contains("browseable = no"), "{shown}");
        let (ok, out) = samba::smbclient(&name, &addr, "rw", "put /etc/hostname two.txt");
        assert!(
            !ok || out.contains("NT_STATUS_ACCESS_DENIED"),
            "read-only refuses a write: {out}"
        );
        assert!(!dir.join("two.txt").exists(), "{out}");
        let (ok, out) = samba::smbclient(&name, &addr, "rw", "get hello.txt /dev/stdout");
        assert!(
            ok && out.contains("hello from rw"),
            "read-only still reads: {out}"
        );
        assert_eq!(
            outcome("deep monitor", read_only.monitor(Depth::Deep))
                .await
                .0,
            Outcome::Ok
        );
        assert_eq!(outcome("stop", read_only.stop()).await.0, Outcome::Ok);
    });
}

/// Without smbd nobody can reach a share: the start fails soft, at once (not at the caller's
/// timeout), says so, and defines nothing. smbd dying under a started share fails its
/// monitor.
#[test]
fn a_start_without_smbd_fails_soft_and_defines_nothing() {
    let test = "a_start_without_smbd_fails_soft_and_defines_nothing";
    if skip(test) {
        return;
    }
    let ns = namespace("down", "192.0.2.5");
    let conf = samba_in(&ns, false);
    let dir = shared_dir(&ns, "d");
    let share = agent(
        &ns,
        &conf,
        &[("name", "d"), ("path", dir.to_str().unwrap())],
    );
    let (name, addr, conf2) = (ns.ns.clone(), ns.addr.clone(), conf.clone());
    in_ns(&ns.ns, move || async move {
        share
            .validate()
            .await
            .expect("smbd not running is no reason to refuse the node");
        let (o, why) = outcome("start without smbd", share.start(1)).await;
        assert_eq!(o, Outcome::Failed, "{why}");
        assert!(why.contains("smbd is not running"), "{why}");
        assert!(!samba::registry_has(&conf2, "d"), "nothing defined");
        assert_eq!(outcome("probe", share.probe()).await.0, Outcome::NotRunning);

        samba::start_smbd(&name, &conf2, &addr).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome("start", share.start(2)).await.0, Outcome::Ok);
        samba::kill_all_in(&name);
        let (o, why) = outcome("monitor without smbd", share.monitor(Depth::Quick)).await;
        assert_eq!(o, Outcome::Failed, "{why}");
        assert!(why.contains("smbd is not running"), "{why}");
        // Nothing serves it any more; the stop still cleans the registry.
        let (o, why) = outcome("stop without smbd", share.stop()).await;
        assert_eq!(o, Outcome::Ok, "{why}");
        assert!(why.contains("no smbd runs"), "{why}");
        assert!(!samba::registry_has(&conf2, "d"));
    });
}

/// What cannot work on this node is told apart from what may pass: no directory at `path`
/// is hard (another node may have it), an option Samba does not know is fatal (wrong
/// everywhere); neither defines the share.
#[test]
fn a_missing_directory_is_hard_and_an_unknown_option_is_fatal() {
    let test = "a_missing_directory_is_hard_and_an_unknown_option_is_fatal";
    if skip(test) {
        return;
    }
    let ns = namespace("sev", "192.0.2.6");
    let conf = samba_in(&ns, true);
    let dir = shared_dir(&ns, "s");
    let missing = ns.dir.join("no-such-dir");
    let no_dir = agent(
        &ns,
        &conf,
        &[("name", "s"), ("path", missing.to_str().unwrap())],
    );
    let bogus = agent(
        &ns,
        &conf,
        &[
            ("name", "s"),
            ("path", dir.to_str().unwrap()),
            ("options", "no such parameter = 1"),
        ],
    );
    let conf2 = conf.clone();
    in_ns(&ns.ns, move || async move {
        let e = no_dir.validate().await.expect_err("no directory");
        assert!(
            matches!(&e, AgentError::Param { param, .. } if param == "path"),
            "{e}"
        );
        let (o, why) = outcome("start", no_dir.start(1)).await;
        assert_eq!(o, Outcome::FailedHard, "{why}");
        let (o, why) = outcome("start", bogus.start(1)).await;
        assert_eq!(o, Outcome::FailedFatal, "{why}");
        assert!(why.contains("Samba refuses a parameter"), "{why}");
        assert!(!samba::registry_has(&conf2, "s"), "nothing defined");
    });
}

/// The monitor process's hard stop deletes the share and cuts its clients, without the
/// agent; a second run (the share already gone) succeeds too.
#[test]
fn the_hard_stop_deletes_the_share() {
    let test = "the_hard_stop_deletes_the_share";
    if skip(test) {
        return;
    }
    let ns = namespace("hard", "192.0.2.7");
    let conf = samba_in(&ns, true);
    let dir = shared_dir(&ns, "h");
    let share = agent(
        &ns,
        &conf,
        &[
            ("name", "h"),
            ("path", dir.to_str().unwrap()),
            ("guest_ok", "1"),
        ],
    );
    let (name, addr, conf2) = (ns.ns.clone(), ns.addr.clone(), conf.clone());
    in_ns(&ns.ns, move || async move {
        assert_eq!(outcome("start", share.start(1)).await.0, Outcome::Ok);
        assert!(samba::smbclient(&name, &addr, "h", "ls").0);
        let stop = share.hard_stop().expect("a share has a hard stop");
        let ran = tokio::task::spawn_blocking(move || {
            let first = stop.run(LIMIT);
            (first, stop.run(LIMIT))
        })
        .await
        .unwrap();
        assert_eq!(ran, (Ok(()), Ok(())), "both runs succeed");
        assert!(!samba::registry_has(&conf2, "h"));
        assert!(
            !samba::smbclient(&name, &addr, "h", "ls").0,
            "refused after a hard stop"
        );
    });
}

/// `validate` refuses an smb.conf that does not enable registry shares, naming the line to
/// add and the parameter, and one that does not exist. Needs no smbd, nor root: only Samba's
/// programs.
#[test]
fn validate_refuses_an_smb_conf_without_registry_shares_naming_the_line() {
    let test = "validate_refuses_an_smb_conf_without_registry_shares_naming_the_line";
    if let Some(why) = samba::unavailable() {
        println!("SKIPPED {test}: {why}");
        return;
    }
    let dir = PathBuf::from(format!("/tmp/share-{}-validate", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(dir.clone());
    let no_registry = samba::write_smb_conf(&dir.join("off"), "OFF", &Listen::Any, false);
    let registry = samba::write_smb_conf(&dir.join("on"), "ON", &Listen::Any, true);
    let shared = dir.join("data");
    std::fs::create_dir_all(&shared).unwrap();
    let build_with = |conf: &Path| {
        let conf = conf.to_string_lossy().into_owned();
        let spec = support::agent::resource(
            "files",
            "share",
            &[
                ("name", "data"),
                ("path", shared.to_str().unwrap()),
                ("smb_conf", &conf),
            ],
            &TIMINGS,
        );
        let (ctx, _) = support::agent::context(0, 0, "files", dir.join("run"), 4);
        build(&spec, &ctx).expect("well-formed")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = build_with(&no_registry)
            .validate()
            .await
            .expect_err("no registry shares");
        let shown = e.to_string();
        assert!(
            matches!(&e, AgentError::Param { param, .. } if param == "smb_conf"),
            "{shown}"
        );
        assert!(shown.contains("resource \"files\""), "{shown}");
        assert!(
            shown.contains("add the line \"registry shares = yes\" to its [global] section"),
            "{shown}"
        );
        let e = build_with(&dir.join("none.conf"))
            .validate()
            .await
            .expect_err("no file");
        assert!(e.to_string().contains("cannot read"), "{e}");
        build_with(&registry)
            .validate()
            .await
            .expect("registry shares on");
    });
}
