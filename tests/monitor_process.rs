//! The two processes of a node (the core and its monitor), on a real three-node loopback
//! cluster with a real application: what happens when only one of them dies or stalls.
//!
//! - The core killed alone: the monitor starts a new core with the old one's lease; the
//!   application keeps running (same pid), the group keeps its node and its epoch.
//! - The core paused past its lease: the monitor stops the application before the lease ends,
//!   and at no sample do two nodes run it.
//! - The monitor killed: the core starts a new one; nothing moves; the new monitor restarts a
//!   killed core in its turn.
//! - SIGHUP to either process ends nothing; the core opens its event log again (rotation).
//!
//! They use a 1.5 s lease and 2 s failure detection ([`RESTART_TIMING`]) so that a debug
//! core restarts well inside its lease. They need root (as every loopback cluster test);
//! without it each prints one line and returns.

mod cluster;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::loopback::{Opts, APP, RESTART_TIMING};
use cluster::{core_of, support, Cluster};

/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_secs(4);

fn skip(test: &str) -> bool {
    support::skip_unless_root(test, "eterned (a root service); CI runs as root")
}

fn opts() -> Opts {
    let _ = RESTART_TIMING;
    Opts {
        long_lease: true,
        // demo starts on n2 while n1 is not yet up, and comes to n1 when it joins.
        failback: "auto",
        ..Opts::default()
    }
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) of a pid of this test's cluster.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether `pid` runs (a zombie does not: an orphan's reaper may be slow or absent).
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// n2 and n3 form the cluster first, so the coordinator is one of them (a coordinator's death
/// costs an election, which is not what these tests look at); then n1 joins and demo fails
/// back to it, its preferred node.
fn up_with_n1_not_coordinating(c: &mut Cluster) {
    c.start(1);
    c.start(2);
    c.wait_for("n2 and n3 elect a coordinator", |c| {
        c.status(1).is_some_and(|s| s.coordinator.is_some())
    });
    c.start(0);
    c.wait_for("the cluster forms", |c| c.formed());
    c.wait_for("demo runs on n1", |c| {
        c.on("demo").as_deref() == Some("n1") && c.app_pid(0, APP).is_some()
    });
    let coordinator = c.status(1).and_then(|s| s.coordinator);
    assert_ne!(coordinator.as_deref(), Some("n1"), "n1 does not coordinate");
}

/// Fails if, during [`QUIET`], demo runs anywhere but n1 (at `epoch`) or its application
/// changes pid.
fn nothing_moves(c: &Cluster, epoch: u64, app: i32) {
    let until = Instant::now() + QUIET;
    while Instant::now() < until {
        if let Some((node, e)) = c.running_on("demo") {
            if node != "n1" || e != epoch {
                c.dump();
                panic!("demo moved or restarted: now on {node} at epoch {e}, was n1 at {epoch}");
            }
        }
        if c.app_pid(0, APP) != Some(app) {
            c.dump();
            panic!("the application on n1 was stopped or restarted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The samples in which several nodes ran the application (which nodes).
type Overlaps = Arc<Mutex<Vec<Vec<usize>>>>;

/// Samples every 5 ms, from another thread, which nodes run the application; collects the
/// samples in which more than one does. Stop it by setting the flag.
fn overlap_sampler(c: &Cluster) -> (Arc<AtomicBool>, Overlaps, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let both = Arc::new(Mutex::new(Vec::new()));
    let pidfiles: Vec<_> = (0..3).map(|i| c.app_pidfile(i, APP)).collect();
    let t = {
        let (stop, both) = (stop.clone(), both.clone());
        std::thread::spawn(move || {
            // Bounded: at most 60 s of samples.
            for _ in 0..12_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let on: Vec<usize> = pidfiles
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        eterne::resources::pidfile::read(p).is_some_and(|(pid, start)| {
                            eterne::resources::pidfile::start_time(pid).ok() == Some(start)
                                && alive(pid as i32)
                        })
                    })
                    .map(|(i, _)| i)
                    .collect();
                if on.len() > 1 {
                    if let Ok(mut b) = both.lock() {
                        b.push(on);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    (stop, both, t)
}

#[test]
fn core_killed_alone_keeps_everything_in_place() {
    if skip("core_killed_alone_keeps_everything_in_place") {
        return;
    }
    let mut c = Cluster::loopback(40, &opts());
    up_with_n1_not_coordinating(&mut c);
    let (_, epoch) = c.running_on("demo").expect("demo runs");
    let app = c.app_pid(0, APP).expect("n1 runs the application");
    let core = c.core_pid(0).expect("n1 has a core");
    signal(core, libc::SIGKILL);
    c.wait_for("the monitor starts a new core on n1", |c| {
        c.core_pid(0).is_some_and(|p| p != core) && c.status(0).is_some()
    });
    nothing_moves(&c, epoch, app);
    let starts = c.events_named(0, "daemon_started").len();
    assert_eq!(starts, 2, "n1's core started twice");
    assert!(
        c.events_named(0, "stopped_hard").is_empty(),
        "nothing was stopped hard"
    );
}

#[test]
fn core_paused_past_its_lease_is_stopped_here_before_it_runs_elsewhere() {
    if skip("core_paused_past_its_lease_is_stopped_here_before_it_runs_elsewhere") {
        return;
    }
    let mut c = Cluster::loopback(41, &opts());
    up_with_n1_not_coordinating(&mut c);
    let app = c.app_pid(0, APP).expect("n1 runs the application");
    let core = c.core_pid(0).expect("n1 has a core");
    let (stop, both, sampler) = overlap_sampler(&c);
    signal(core, libc::SIGSTOP);
    c.wait_for("the monitor stops n1's application", |_| !alive(app));
    c.wait_for("demo runs again, somewhere", |c| {
        (0..3).any(|i| c.app_pid(i, APP).is_some_and(|p| p != app))
            && c.running_on("demo").is_some()
    });
    // A core the monitor has not killed would go on here; it has been.
    signal(core, libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let both = both.lock().map(|b| b.clone()).unwrap_or_default();
    if !both.is_empty() {
        c.dump();
        panic!(
            "the application ran on several nodes at once: {:?}",
            &both[..both.len().min(5)]
        );
    }
    assert!(!alive(core), "the paused core was killed");
    c.wait_for("n1's next core records what the monitor stopped", |c| {
        !c.events_named(0, "stopped_hard").is_empty()
    });
}

#[test]
fn monitor_killed_is_replaced_and_nothing_moves() {
    if skip("monitor_killed_is_replaced_and_nothing_moves") {
        return;
    }
    let mut c = Cluster::loopback(42, &opts());
    up_with_n1_not_coordinating(&mut c);
    let (_, epoch) = c.running_on("demo").expect("demo runs");
    let app = c.app_pid(0, APP).expect("n1 runs the application");
    let monitor = c.daemon_pid(0).expect("n1 runs");
    let core = c.core_pid(0).expect("n1 has a core");
    signal(monitor, libc::SIGKILL);
    c.wait_for("the core starts a new monitor", |_| core_of(core).is_some());
    nothing_moves(&c, epoch, app);
    assert!(alive(core), "the core lives on");
    // The new monitor does its job: the core killed now is started again, nothing moves.
    let new_monitor = core_of(core).expect("a new monitor");
    signal(core, libc::SIGKILL);
    c.wait_for("the new monitor starts a new core", |c| {
        core_of(new_monitor).is_some() && c.status(0).is_some()
    });
    nothing_moves(&c, epoch, app);
}

#[test]
fn sighup_ends_neither_process() {
    if skip("sighup_ends_neither_process") {
        return;
    }
    let mut c = Cluster::loopback(43, &opts());
    up_with_n1_not_coordinating(&mut c);
    let (_, epoch) = c.running_on("demo").expect("demo runs");
    let app = c.app_pid(0, APP).expect("n1 runs the application");
    let monitor = c.daemon_pid(0).expect("n1 runs");
    let core = c.core_pid(0).expect("n1 has a core");
    // Log rotation: the event log moved away, SIGHUP to the monitor (what systemd's reload
    // and logrotate signal) reaches the core, which starts a new file by the path.
    let events = c.nodes[0].events.clone();
    let rotated = events.with_extension("jsonl.1");
    std::fs::rename(&events, &rotated).expect("rotate the event log");
    signal(monitor, libc::SIGHUP);
    c.wait_for("the core opens a new event log", |_| events.exists());
    signal(core, libc::SIGHUP);
    nothing_moves(&c, epoch, app);
    assert!(alive(monitor) && alive(core), "both processes live");
    assert_eq!(c.core_pid(0), Some(core), "the same core");
}

/// An exclusive application left running on n1 while demo runs on n2 (what an earlier run
/// left behind, or a copy started by hand, with the pidfile the agent writes): when n1's
/// eterned starts, it probes every group that may run there, finds it, and stops it before it
/// asks for a lease.
#[test]
fn an_orphan_left_running_is_stopped_at_start_before_any_lease() {
    if skip("an_orphan_left_running_is_stopped_at_start_before_any_lease") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let mut c = Cluster::loopback(44, &Opts::default());
    c.start(1);
    c.start(2);
    c.wait_for("demo runs on n2", |c| {
        c.on("demo").as_deref() == Some("n2") && c.app_pid(1, APP).is_some()
    });
    // The orphan, in a session of its own as the agent would have started it.
    let mut orphan = std::process::Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .expect("spawn the orphan");
    let pid = orphan.id();
    let pidfile = c.app_pidfile(0, APP);
    std::fs::create_dir_all(pidfile.parent().expect("a run dir")).expect("run dir");
    let start = eterne::resources::pidfile::start_time(pid).expect("its start time");
    eterne::resources::pidfile::write(&pidfile, pid, start).expect("pidfile");
    c.start(0);
    c.wait_for("n1 stops the orphan", |_| {
        matches!(orphan.try_wait(), Ok(Some(_))) || !alive(pid as i32)
    });
    c.wait_for("the cluster forms", |c| c.formed());
    let names: Vec<String> = c
        .events(0)
        .iter()
        .filter_map(|e| e["event"].as_str().map(str::to_string))
        .collect();
    // `orphan_stopped` if the stop ended before n1 learnt that demo is placed on n2,
    // `multiple_active` if after (then two nodes had it active): which one is timing.
    let stopped = names
        .iter()
        .position(|n| n == "orphan_stopped" || n == "multiple_active");
    let lease = names.iter().position(|n| n == "lease_acquired");
    assert!(
        stopped.is_some(),
        "an orphan_stopped or multiple_active event: {names:?}"
    );
    assert!(
        lease.is_none_or(|l| stopped < Some(l)),
        "the orphan was stopped before n1 took a lease: {names:?}"
    );
    assert_eq!(c.on("demo").as_deref(), Some("n2"), "demo stays on n2");
}

/// A stop that fails even hard, with `on_stop_failure = "exit"` (every test config's choice:
/// `reboot` would reboot the machine running the tests): the owner's monitor ends with
/// [`EXIT_STOP_FAILED`] and starts no new core, so the node is out of the cluster; what could
/// be stopped (the application) is down.
#[test]
fn a_hard_stop_that_fails_ends_the_node_when_it_is_told_to_exit() {
    if skip("a_hard_stop_that_fails_ends_the_node_when_it_is_told_to_exit") {
        return;
    }
    let mut c = Cluster::loopback(
        45,
        &Opts {
            stuck: true,
            ..Opts::default()
        },
    );
    c.start_all();
    c.wait_for("demo runs", |c| c.running_on("demo").is_some());
    let owner = c.on("demo").expect("an owner");
    let i = c.index(&owner);
    let app = c.app_pid(i, APP).expect("the application runs");
    // The readable status names the OCF agent in full, in columns that fit.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eternectl"))
        .args(["status", "--socket"])
        .arg(&c.nodes[i].socket)
        .output()
        .expect("eternectl status");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["demo", "stuck", "ocf:eterne-test:stuck", "active", "0", "-"]),
        "{text}"
    );
    // `--watch` on a terminal (script(1) gives it one) redraws in place; into a pipe it
    // appends.
    let eternectl = env!("CARGO_BIN_EXE_eternectl");
    let sock = c.nodes[i].socket.display().to_string();
    let tty = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "timeout 1.5 {eternectl} status --watch --socket {sock}"
        ))
        .arg("/dev/null")
        .output()
        .expect("script(1)");
    let tty = String::from_utf8_lossy(&tty.stdout);
    assert!(
        tty.matches("\x1b[H\x1b[2J").count() >= 2,
        "redrawn at least twice in 1.5 s: {tty:?}"
    );
    let piped = std::process::Command::new("timeout")
        .args(["1.5", eternectl, "status", "--watch", "--socket", &sock])
        .output()
        .expect("eternectl status --watch");
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(!piped.contains('\x1b'), "no escapes into a pipe");
    assert!(piped.matches("cluster loop45").count() >= 2, "{piped}");
    // A move asks the owner to stop the group; "stuck" will not stop.
    let other = if i == 0 { "n2" } else { "n1" };
    let r = c.ask(
        i,
        eterne::control::Request::Move {
            group: "demo".into(),
            node: Some(other.into()),
        },
    );
    assert!(r.ok, "move refused: {r:?}");
    let until = Instant::now() + Duration::from_secs(30);
    let code = loop {
        let child = c.nodes[i].child.as_mut().expect("its monitor");
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() > until {
            c.dump();
            panic!("{owner}'s monitor is still running after its stop failed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        code,
        Some(eterne::monitor::EXIT_STOP_FAILED),
        "{owner}'s monitor exit code"
    );
    assert!(!alive(app), "the application was stopped hard");
    let log = std::fs::read_to_string(&c.nodes[i].log).unwrap_or_default();
    assert!(log.contains("hard stop failed"), "{log}");
}

/// `on_stop_failure = "reboot"` is a real reboot: run as PID 1 of a PID namespace of its own,
/// [`eterne::monitor::reboot_now`] makes the kernel end that namespace, every process in it
/// included, as it would reset the machine from the initial namespace. The test runs itself
/// as that PID 1 (`unshare --pid --fork`); on the host it never calls it.
#[test]
fn the_reboot_after_a_failed_stop_is_the_kernel_s() {
    const AS_PID1: &str = "ETERNE_TEST_REBOOT_AS_PID1";
    const NAME: &str = "the_reboot_after_a_failed_stop_is_the_kernel_s";
    if let Some(marker) = std::env::var_os(AS_PID1) {
        assert_eq!(std::process::id(), 1, "not PID 1 of a namespace of its own");
        // A process of the namespace that must end with it: it writes its pid as the host
        // sees it (the first of its NSpid line).
        // Never waited for: the reboot below ends it with everything else in the namespace.
        #[allow(clippy::zombie_processes)]
        let _sleeper = std::process::Command::new("sh")
            .arg("-c")
            .arg("grep NSpid /proc/self/status > \"$0.tmp\" && mv \"$0.tmp\" \"$0\" && exec sleep 1000")
            .arg(&marker)
            .spawn()
            .expect("spawn the sleeper");
        let bound = Instant::now() + Duration::from_secs(10);
        while !std::path::Path::new(&marker).exists() && Instant::now() < bound {
            std::thread::sleep(Duration::from_millis(10));
        }
        eterne::monitor::reboot_now();
    }
    if skip(NAME) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("eterne-reboot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let marker = dir.join("sleeper");
    let exe = std::env::current_exe().expect("the test binary");
    let status = std::process::Command::new("unshare")
        .args(["--pid", "--fork"])
        .arg(exe)
        .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
        .env(AS_PID1, &marker)
        .stdin(std::process::Stdio::null())
        .status()
        .expect("run unshare");
    use std::os::unix::process::ExitStatusExt;
    // unshare ends the way its child did: a restart of a PID namespace is SIGHUP to its init.
    assert_eq!(status.signal(), Some(libc::SIGHUP), "{status:?}");
    let line = std::fs::read_to_string(&marker).expect("the sleeper wrote its pid");
    let host_pid: i32 = line
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("NSpid line");
    let bound = Instant::now() + Duration::from_secs(5);
    while alive(host_pid) && Instant::now() < bound {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(host_pid),
        "the namespace's other process outlived the reboot"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
