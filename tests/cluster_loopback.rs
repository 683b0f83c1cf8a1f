//! A real cluster on one machine: three `eterned` processes on loopback addresses
//! (127.81-83.<test>.<node>), real QUIC with mutual TLS, a real application process
//! (`sleep 1000`), driven through the control socket. Each test has its own address byte.
//!
//! Tests assert behaviour, never timing: every wait is bounded by a generous limit that only
//! turns a hang into a failure. An observation that something does *not* happen (no failback,
//! no failover) watches for a fixed [`QUIET`] period.
//!
//! They need root (real-time priority, and the daemon is a root service); without it each
//! prints one line and returns.

mod cluster;

use std::time::{Duration, Instant};

use cluster::loopback::{Opts, APP};
use cluster::support::small_disk::SmallDisk;
use cluster::{support, Cluster};
use eterne::control::Request;

/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_secs(3);

fn skip(test: &str) -> bool {
    support::skip_unless_root(test, "eterned (a root service); CI runs as root")
}

/// Fails if `group` leaves `node` during [`QUIET`].
fn stays(c: &Cluster, group: &str, node: &str) {
    let until = Instant::now() + QUIET;
    while Instant::now() < until {
        let on = c.on(group);
        if on.as_deref() != Some(node) {
            // A transient "not answering" is not a move; a running instance elsewhere is.
            if on.is_some() {
                c.dump();
                panic!("{group} moved to {on:?}, expected it to stay on {node}");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.on(group).as_deref(), Some(node));
}

/// Forms the cluster and waits for demo on n1.
fn up(c: &mut Cluster) {
    c.start_all();
    c.wait_for("the cluster forms", |c| c.formed());
    c.wait_for("demo runs on its preferred node n1", |c| {
        c.on("demo").as_deref() == Some("n1")
    });
}

/// kill -9 of n1's daemon and application: demo becomes active on n2; n1 comes back.
fn kill_n1_and_fail_over(c: &mut Cluster) {
    c.kill_daemon(0);
    assert!(c.kill_app(0, APP).is_some(), "n1 ran the application");
    c.wait_for("demo fails over to n2 (next in priority order)", |c| {
        c.on("demo").as_deref() == Some("n2")
    });
    let failovers: Vec<_> = c
        .events_named(1, "failover")
        .into_iter()
        .filter(|e| e["group"] == "demo" && e["on"] == "n2")
        .collect();
    assert!(!failovers.is_empty(), "a failover event on n2");
    c.start(0);
    c.wait_for("n1 rejoins", |c| c.formed());
}

#[test]
fn kill_9_fails_over_and_manual_failback_stays() {
    if skip("kill_9_fails_over_and_manual_failback_stays") {
        return;
    }
    let mut c = Cluster::loopback(1, &Opts::default());
    up(&mut c);
    kill_n1_and_fail_over(&mut c);
    stays(&c, "demo", "n2");
}

#[test]
fn kill_9_then_auto_failback_returns() {
    if skip("kill_9_then_auto_failback_returns") {
        return;
    }
    let mut c = Cluster::loopback(
        2,
        &Opts {
            failback: "auto",
            ..Opts::default()
        },
    );
    up(&mut c);
    kill_n1_and_fail_over(&mut c);
    c.wait_for("demo fails back to n1", |c| {
        c.on("demo").as_deref() == Some("n1")
    });
    assert!(!c.events_named(1, "failback").is_empty() || !c.events_named(0, "failback").is_empty());
}

#[test]
fn kill_9_then_auto_failback_outside_its_window_waits() {
    if skip("kill_9_then_auto_failback_outside_its_window_waits") {
        return;
    }
    let (now, _) = eterne::actors::node::local_civil_time().expect("local time");
    // A one-hour window starting two hours from now: now is outside it.
    let start = (now.hour + 2) % 24;
    let window = format!("{start:02}:00-{:02}:00", (start + 1) % 24);
    let mut c = Cluster::loopback(
        3,
        &Opts {
            failback: "auto",
            window: Some(window),
            ..Opts::default()
        },
    );
    up(&mut c);
    kill_n1_and_fail_over(&mut c);
    stays(&c, "demo", "n2");
}

#[test]
fn a_killed_application_restarts_in_place_then_moves_past_max_restarts() {
    if skip("a_killed_application_restarts_in_place_then_moves_past_max_restarts") {
        return;
    }
    let max_restarts = 2;
    let mut c = Cluster::loopback(
        4,
        &Opts {
            max_restarts,
            ..Opts::default()
        },
    );
    up(&mut c);
    let first = c.kill_app(0, APP).expect("the application runs on n1");
    c.wait_for("the application is restarted on n1", |c| {
        c.app_pid(0, APP).is_some_and(|p| p != first) && c.on("demo").as_deref() == Some("n1")
    });
    let s = c.status(0).expect("n1 answers");
    let g = s.groups.iter().find(|g| g.name == "demo").expect("demo");
    assert_eq!(g.resources[0].failures, 1, "one failure counted on n1");
    // What failed, how and when, in the status and in the event.
    let last = g.resources[0]
        .last_failure
        .as_ref()
        .expect("the last failure is shown");
    assert_eq!(last.action, "monitor_quick", "{last:?}");
    assert!(
        last.reason.contains(&format!("process {first}")) && last.reason.contains("signal 9"),
        "{last:?}"
    );
    let failed = c.events_named(0, "resource_failed");
    assert!(
        failed.iter().any(|e| e["resource"] == APP
            && e["reason"].as_str().is_some_and(|r| r.contains("signal 9"))),
        "{failed:?}"
    );
    assert!(
        g.failures.is_empty(),
        "a local restart is no failover: {:?}",
        g.failures
    );
    assert_eq!(c.events_named(0, "local_restart").len(), 1);
    // Kill it again until local recovery is exhausted: max_restarts more kills restart it
    // in place... the (max_restarts + 1)th failure in the window moves the group.
    let mut kills = 1;
    while kills <= max_restarts {
        let pid = c.app_pid(0, APP).expect("running on n1");
        c.kill_app(0, APP);
        kills += 1;
        if kills <= max_restarts {
            c.wait_for("restarted in place again", |c| {
                c.app_pid(0, APP).is_some_and(|p| p != pid) && c.on("demo").as_deref() == Some("n1")
            });
        }
    }
    c.wait_for("demo moves to n2 once local recovery is exhausted", |c| {
        c.on("demo").as_deref() == Some("n2")
    });
    let s = c.status(1).expect("n2 answers");
    let g = s.groups.iter().find(|g| g.name == "demo").expect("demo");
    assert_eq!(g.failures, vec![("n1".to_string(), 1)]);
    assert!(!c.events_named(0, "group_cannot_run").is_empty());
}

#[test]
fn foreign_ca_and_unknown_name_are_refused_and_the_cluster_is_unaffected() {
    if skip("foreign_ca_and_unknown_name_are_refused_and_the_cluster_is_unaffected") {
        return;
    }
    let mut c = Cluster::loopback(5, &Opts::default());
    c.start(0);
    c.start(1);
    c.wait_for("n1 and n2 form", |c| c.formed());
    c.wait_for("demo runs on n1", |c| c.on("demo").as_deref() == Some("n1"));
    // An impostor on n3's addresses with a certificate from another CA.
    let other_ca = c.dir.join("other-ca");
    eterne::transport::certs::init_ca(&other_ca, false).expect("ca");
    eterne::transport::certs::issue_node_cert(&other_ca, "n3", false).expect("cert");
    // A node with a valid certificate of the cluster CA, for a name not in the config
    // ("n4"), presenting it on n3's addresses.
    let wrong_name = c.dir.join("wrong-name");
    std::fs::create_dir_all(&wrong_name).expect("dir");
    let tls = c.nodes[0].tls.clone();
    std::fs::copy(tls.join("ca.crt"), wrong_name.join("ca.crt")).expect("copy");
    std::fs::copy(tls.join("ca.key"), wrong_name.join("ca.key")).expect("copy");
    eterne::transport::certs::issue_node_cert(&wrong_name, "n4", false).expect("cert");
    std::fs::rename(wrong_name.join("n4.crt"), wrong_name.join("n3.crt")).expect("rename");
    std::fs::rename(wrong_name.join("n4.key"), wrong_name.join("n3.key")).expect("rename");
    for (k, dir) in [other_ca, wrong_name].into_iter().enumerate() {
        let before =
            c.events_named(0, "peer_refused").len() + c.events_named(1, "peer_refused").len();
        c.nodes[2].tls = dir;
        c.start(2);
        c.wait_for("the impostor is refused (logged with the reason)", |c| {
            c.events_named(0, "peer_refused").len() + c.events_named(1, "peer_refused").len()
                > before
        });
        let why: Vec<String> = c
            .events_named(0, "peer_refused")
            .into_iter()
            .chain(c.events_named(1, "peer_refused"))
            .map(|e| e["why"].to_string())
            .collect();
        assert!(
            why.iter().all(|w| w.len() > 2),
            "every refusal says why: {why:?}"
        );
        // The cluster is unaffected: same coordinator, n3 not admitted, demo stays on n1.
        stays(&c, "demo", "n1");
        for i in 0..2 {
            let s = c.status(i).expect("answers");
            assert!(s.coordinator.is_some());
            assert!(!s.nodes[2].alive, "impostor {k} not admitted");
        }
        c.kill_daemon(2);
    }
}

#[test]
fn a_lost_path_is_an_event_not_a_failover_and_the_disk_path_keeps_a_node() {
    if skip("a_lost_path_is_an_event_not_a_failover_and_the_disk_path_keeps_a_node") {
        return;
    }
    let mut c = Cluster::loopback(
        6,
        &Opts {
            disk: true,
            ..Opts::default()
        },
    );
    up(&mut c);
    // Cut "lan" on n2 (as if its NIC on that path were unplugged).
    let r = c.ask(1, Request::CutPath { path: "lan".into() });
    assert!(r.ok, "{}", r.message);
    c.wait_for("n1 reports path lan to n2 lost", |c| {
        c.events_named(0, "path_lost")
            .iter()
            .any(|e| e["peer"] == "n2" && e["path"] == "lan")
    });
    stays(&c, "demo", "n1");
    let s = c.status(0).expect("n1 answers");
    assert!(s.nodes[1].alive, "n2 is alive on its other paths");
    // Now leave a node with the disk path only: one that neither runs demo nor coordinates.
    let leader = s.coordinator.clone().expect("a coordinator");
    let x = ["n2", "n3"]
        .into_iter()
        .find(|n| *n != leader)
        .expect("a node");
    let xi = c.index(x);
    for p in ["lan", "backplane"] {
        let r = c.ask(xi, Request::CutPath { path: p.into() });
        assert!(r.ok, "{}", r.message);
    }
    c.wait_for("n1 reports both network paths to that node lost", |c| {
        let lost = c.events_named(0, "path_lost");
        ["lan", "backplane"]
            .iter()
            .all(|p| lost.iter().any(|e| e["peer"] == x && e["path"] == *p))
    });
    stays(&c, "demo", "n1");
    let s = c.status(0).expect("n1 answers");
    assert!(
        s.nodes[xi].alive,
        "{x} is alive on the disk path: partitioned, not dead"
    );
    for i in 0..3 {
        assert!(
            c.events_named(i, "failover").is_empty(),
            "no failover anywhere"
        );
    }
}

#[test]
fn sigterm_hands_the_groups_over_cleanly() {
    if skip("sigterm_hands_the_groups_over_cleanly") {
        return;
    }
    let mut c = Cluster::loopback(7, &Opts::default());
    up(&mut c);
    let app = c.app_pid(0, APP).expect("the application runs on n1");
    let code = c.terminate(0, Duration::from_secs(30));
    assert_eq!(code, Some(0), "a clean drain exits 0");
    // SAFETY: signal 0 only checks.
    assert_ne!(
        unsafe { libc::kill(app, 0) },
        0,
        "n1's application was stopped"
    );
    c.wait_for("demo runs on n2", |c| c.on("demo").as_deref() == Some("n2"));
    let s = c.status(1).expect("n2 answers");
    let g = s.groups.iter().find(|g| g.name == "demo").expect("demo");
    assert!(
        g.failures.is_empty(),
        "a drain counts no failure: {:?}",
        g.failures
    );
    assert!(
        c.events_named(1, "failover").is_empty(),
        "a drain is no failover"
    );
    // Back again, the node takes itself out of standby.
    c.start(0);
    c.wait_for("n1 leaves standby once it has joined", |c| {
        c.status(1)
            .is_some_and(|s| !s.nodes[0].standby && s.nodes[0].alive)
    });
}

/// Agreement by content, on real daemons: n3's `cluster.toml` has one more group, before
/// `demo` (the case where reading entries by position made n3 take the wrong group). n3 knows
/// its file is not the committed one, the others see it differ, and it never coordinates,
/// holds a lease or runs anything: not while n1 is killed (whatever the election does), and
/// not after its own restart, when it says so again at once and the others still see it.
#[test]
fn a_node_whose_file_differs_never_coordinates_or_runs_anything() {
    if skip("a_node_whose_file_differs_never_coordinates_or_runs_anything") {
        return;
    }
    let mut c = Cluster::loopback(8, &Opts::default());
    let agreed = std::fs::read_to_string(&c.config).expect("the config");
    let before = "[[group]]\nname = \"demo\"";
    let extra = "[[group]]\nname = \"extra\"\nnodes = [\"n3\", \"n1\", \"n2\"]\n\n  [[group.resource]]\n  name = \"extra-app\"\n  type = \"application\"\n  params = { command = \"sleep 1000\" }\n\n";
    let own = agreed.replacen(before, &format!("{extra}{before}"), 1);
    assert_ne!(own, agreed, "the group went in before demo");
    let file = c.dir.join("n3-cluster.toml");
    std::fs::write(&file, own).expect("n3's file");
    c.nodes[2].config = Some(file);
    up(&mut c);
    c.wait_for("n3 knows its file is not the committed one", |c| {
        c.status(2).is_some_and(|s| s.config_differs.is_some())
    });
    c.wait_for("n1 sees n3's file differ", |c| {
        c.status(0).is_some_and(|s| s.nodes[2].config_mismatch)
    });
    let n3_stays_out = |c: &Cluster| {
        if let Some(s) = c.status(2) {
            assert_ne!(s.coordinator.as_deref(), Some("n3"), "n3 coordinates");
            assert!(!s.holds_lease, "n3 holds a lease");
        }
        let pids = c.app_pids(2);
        if !pids.is_empty() {
            c.dump();
            panic!("n3 runs something: {pids:?}");
        }
    };
    let watch = |c: &Cluster, what: &dyn Fn(&Cluster)| {
        let until = Instant::now() + QUIET;
        while Instant::now() < until {
            what(c);
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    watch(&c, &n3_stays_out);

    // The owner dies: n2 may go on as coordinator or nobody may be elected (n3 votes for no
    // candidate of the other file); demo never comes to n3.
    c.kill_daemon(0);
    assert!(c.kill_app(0, APP).is_some(), "n1 ran the application");
    watch(&c, &n3_stays_out);
    c.start(0);
    c.wait_for("n1 rejoins", |c| c.formed());
    c.wait_for("demo runs, on n1 or n2", |c| {
        matches!(c.on("demo").as_deref(), Some("n1" | "n2"))
    });

    // n3 restarts: its own log tells it again, and the others still see it differ.
    c.kill_daemon(2);
    c.start(2);
    c.wait_for("n3 flagged again after its restart", |c| {
        c.status(2).is_some_and(|s| s.config_differs.is_some())
    });
    c.wait_for("n1 hears the restarted n3 and sees its file differ", |c| {
        c.status(0)
            .is_some_and(|s| s.nodes[2].alive && s.nodes[2].config_mismatch)
    });
    watch(&c, &|c: &Cluster| {
        n3_stays_out(c);
        if let Some(s) = c.status(0) {
            if !s.nodes[2].config_mismatch {
                c.dump();
                panic!("n1 forgot that n3 differs: {:?}", s.nodes[2]);
            }
        }
    });
    assert!(
        !c.events_named(2, "config_differs").is_empty(),
        "n3 told why it acts on nothing"
    );
}

/// One identity, one node: a second `eterned` started on a running node's state directory
/// (its own socket and run directory, the same `--state-dir`) is refused before it starts
/// anything (exit 2, naming the directory and the holder), and the node goes on unaffected.
#[test]
fn a_second_daemon_on_a_nodes_state_directory_is_refused() {
    if skip("a_second_daemon_on_a_nodes_state_directory_is_refused") {
        return;
    }
    let mut c = Cluster::loopback(9, &Opts::default());
    up(&mut c);
    let n = &c.nodes[0];
    let twin = n.dir.join("twin");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eterned"))
        .arg("--config")
        .arg(&c.config)
        .args(["--node", "n1", "--state-dir"])
        .arg(&n.state)
        .arg("--tls-dir")
        .arg(&n.tls)
        .arg("--run-dir")
        .arg(twin.join("run"))
        .arg("--control-socket")
        .arg(twin.join("control.sock"))
        .arg("--events")
        .arg(twin.join("events.jsonl"))
        .arg("--no-realtime")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run a second eterned");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "refused as a bad start: {stderr}"
    );
    assert!(
        stderr.contains(&n.state.display().to_string()) && stderr.contains("in use by eterned pid"),
        "names the directory and its holder: {stderr}"
    );
    stays(&c, "demo", "n1");
    assert!(c.formed(), "the cluster is as it was");
}

/// A control socket that cannot be locked or misread: 1,000 idle connections and 100
/// watchers are open, and `status` still answers within a second; watchers past their own
/// limit are refused; a typo'd field is refused naming it and moves nothing; an idle
/// connection is closed with a reason after its timeout.
#[test]
fn idle_connections_and_watchers_never_lock_out_the_operator() {
    if skip("idle_connections_and_watchers_never_lock_out_the_operator") {
        return;
    }
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    // Our side needs the descriptors too.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit on our stack.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65_536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    let mut c = Cluster::loopback(10, &Opts::default());
    up(&mut c);
    let socket = c.nodes[0].socket.clone();
    let idle: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(&socket).expect("an idle connection"))
        .collect();
    let mut watching = 0;
    let mut refused = Vec::new();
    let mut watchers = Vec::new();
    for _ in 0..100 {
        let mut w = UnixStream::connect(&socket).expect("a watcher");
        w.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        w.write_all(b"{\"cmd\":\"watch\"}\n").unwrap();
        let mut first = String::new();
        BufReader::new(w.try_clone().unwrap())
            .read_line(&mut first)
            .expect("a first answer");
        let r: serde_json::Value = serde_json::from_str(&first).expect("json");
        if r["ok"] == true {
            watching += 1;
        } else {
            refused.push(r["message"].as_str().unwrap_or_default().to_string());
        }
        watchers.push(w);
    }
    assert_eq!(watching, eterne::control::server::MAX_WATCHERS);
    assert!(
        refused.iter().all(|m| m.contains("watchers")),
        "{refused:?}"
    );
    let asked = Instant::now();
    let s = c.status(0).expect("status answers beside them");
    let took = asked.elapsed();
    println!("status with 1000 idle connections and 100 watchers: {took:?}");
    assert!(took < Duration::from_secs(1), "status took {took:?}");
    assert_eq!(s.node, "n1");

    // A typo is refused, naming the field, and nothing moves.
    let mut typo = UnixStream::connect(&socket).unwrap();
    typo.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    typo.write_all(b"{\"cmd\":\"move\",\"group\":\"demo\",\"nod\":\"n2\"}\n")
        .unwrap();
    let mut answer = String::new();
    BufReader::new(typo).read_line(&mut answer).unwrap();
    assert!(
        answer.contains("unknown field `nod`") && answer.contains("\"ok\":false"),
        "{answer}"
    );
    stays(&c, "demo", "n1");

    // An idle connection is closed with its reason once its timeout has passed.
    let mut first = idle.into_iter().next().expect("one");
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut bye = String::new();
    BufReader::new(&mut first).read_line(&mut bye).unwrap();
    assert!(bye.contains("no complete request within"), "{bye}");
}

/// A log that survives its disk, on real daemons that snapshot every 5 entries. A follower
/// (n2 or n3, not the coordinator) is down while the others move `demo` back and forth: its
/// entries are compacted away, and back up it installs the coordinator's snapshot. Then a
/// length byte in the middle of its log is flipped: the start is refused naming the offset
/// and the way out; `eternectl state discard` needs its explicit flag, sets the log aside,
/// and the node rejoins from the cluster: it holds at least every entry it had, says when it
/// votes again, and agrees on where `demo` runs.
#[test]
fn a_follower_far_behind_catches_up_and_a_damaged_log_rejoins_from_the_cluster() {
    if skip("a_follower_far_behind_catches_up_and_a_damaged_log_rejoins_from_the_cluster") {
        return;
    }
    let mut c = Cluster::loopback(11, &Opts::default());
    for n in &mut c.nodes {
        n.extra = vec!["--snapshot-every".into(), "5".into()];
    }
    up(&mut c);
    // The node that falls behind: not n1 (demo's home) and not the coordinator (whose death
    // costs an election, which is not what this test is about).
    let coordinator = c
        .status(0)
        .and_then(|s| s.coordinator)
        .expect("a coordinator");
    let (b, other) = if coordinator == "n3" {
        (1, "n3")
    } else {
        (2, "n2")
    };
    c.kill_daemon(b);
    for to in [other, "n1", other, "n1"] {
        let r = c.ask(
            0,
            Request::Move {
                group: "demo".into(),
                node: Some(to.into()),
            },
        );
        assert!(r.ok, "move demo to {to}: {}", r.message);
        c.wait_for(&format!("demo runs on {to}"), |c| {
            c.on("demo").as_deref() == Some(to)
        });
    }
    c.start(b);
    c.wait_for("it installs a snapshot and rejoins", |c| {
        !c.events_named(b, "snapshot_installed").is_empty() && c.formed()
    });
    let sees = |c: &Cluster, i: usize| {
        c.status(i).and_then(|s| {
            s.groups
                .iter()
                .find(|g| g.name == "demo")
                .and_then(|g| g.instances.iter().find(|i| i.phase == "active"))
                .map(|i| i.node.clone())
        })
    };
    c.wait_for("n3 sees demo on n1", |c| {
        sees(c, b).as_deref() == Some("n1")
    });

    // Damage in the middle of n3's log: the length field of its second record.
    let raft = c.nodes[b].state.join(eterne::storage::RAFT_DIR);
    c.kill_daemon(b);
    let had = eterne::storage::inspect(&raft).expect("n3's log reads").log;
    let had_commit = had.hard_state().commit;
    let path = raft.join(eterne::storage::LOG_FILE);
    let mut bytes = std::fs::read(&path).expect("n3's raft.log");
    let first = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let second = 8 + first;
    assert!(bytes.len() > second + 64, "records after the second");
    bytes[second + 3] = 0x7f;
    std::fs::write(&path, &bytes).expect("damage the log");
    c.start(b);
    assert_eq!(c.exit_code(b, c.wait), Some(1), "a damaged log is refused");
    let log = std::fs::read_to_string(&c.nodes[b].log).expect("n3's stderr");
    assert!(
        log.contains(&format!("offset {second}")) && log.contains("eternectl state discard"),
        "names the offset and the way out: {log}"
    );
    let state_dir = c.nodes[b].state.clone();
    let (ok, out) = support::eternectl([
        "state".as_ref(),
        "check".as_ref(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
    ]);
    assert!(!ok && out.contains(&format!("offset {second}")), "{out}");
    let (ok, out) = support::eternectl([
        "state".as_ref(),
        "discard".as_ref(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
    ]);
    assert!(
        !ok && out.contains("--rejoin-from-cluster"),
        "needs its flag: {out}"
    );
    assert!(path.exists(), "and changed nothing");
    let (ok, out) = support::eternectl([
        "state".as_ref(),
        "discard".as_ref(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
        "--rejoin-from-cluster".as_ref(),
    ]);
    assert!(ok, "{out}");
    assert!(!path.exists() && raft.join(eterne::storage::REJOIN_FILE).exists());

    c.start(b);
    c.wait_for("n3 catches up and votes again", |c| {
        !c.events_named(b, "rejoined").is_empty() && c.formed()
    });
    assert!(
        !raft.join(eterne::storage::REJOIN_FILE).exists(),
        "the marker goes once caught up"
    );
    let now = eterne::storage::inspect(&raft).expect("n3's new log").log;
    assert!(
        now.hard_state().commit >= had_commit,
        "n3 holds every entry it had: commit {} < {had_commit}",
        now.hard_state().commit
    );
    c.wait_for("n3 sees demo on n1", |c| {
        sees(c, b).as_deref() == Some("n1")
    });
    stays(&c, "demo", "n1");
}

/// Commits that leave demo where it is (n3 into standby and out, through n2), until n1,
/// which must write them, reports its state disk failed. Once n1 fails a request may wait
/// for a new coordinator and time out: that is not what is tested.
fn commit_until_n1_fails(c: &Cluster) {
    for on in [true, false, true, false, true, false] {
        if c.status(0).is_some_and(|s| s.state_disk_failed.is_some()) {
            return;
        }
        let node = "n3".to_string();
        let _ = c.ask(
            1,
            if on {
                Request::Standby { node }
            } else {
                Request::Unstandby { node }
            },
        );
    }
}

/// Fills the filesystem of `dir` with `dir/filler` until a write fails.
fn fill(dir: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..100_000 {
        if f.write_all(&chunk).and_then(|()| f.sync_all()).is_err() {
            return;
        }
    }
    panic!("{} never filled", dir.display());
}

#[test]
fn a_full_state_disk_on_the_owner_moves_its_group_and_the_node_recovers_once_there_is_room() {
    if skip(
        "a_full_state_disk_on_the_owner_moves_its_group_and_the_node_recovers_once_there_is_room",
    ) {
        return;
    }
    let mut c = Cluster::loopback(45, &Opts::default());
    // n1's state, run dir, event log and stderr log (both processes' `tracing`) on a small
    // disk of its own; a snapshot every 2 entries, so that every second commit writes a new
    // file there.
    let disk = SmallDisk::mount(&c.nodes[0].dir, "8m");
    c.nodes[0]
        .extra
        .extend(["--snapshot-every".into(), "2".into()]);
    up(&mut c);
    let app = c.app_running(0, APP).expect("n1 runs the application");

    fill(&disk.dir);
    let full = Instant::now();
    commit_until_n1_fails(&c);
    c.wait_for("n1 reports its state disk failed", |c| {
        c.status(0)
            .and_then(|s| s.state_disk_failed)
            .is_some_and(|why| why.contains("No space left"))
    });
    let s = c.status(0).expect("n1 answers");
    assert!(!s.holds_lease, "n1 gave its lease up");
    c.wait_for("demo moves to n2, next in priority order", |c| {
        c.on("demo").as_deref() == Some("n2")
    });
    let moved = full.elapsed();
    assert!(
        !cluster::alive(app),
        "n1 stopped its application before n2 started demo"
    );
    for i in [1, 2] {
        let s = c.status(i).expect("answers");
        let n1 = s.nodes.iter().find(|n| n.name == "n1").expect("n1");
        assert!(!n1.alive, "n{} sees n1 lost: it fell silent", i + 1);
        assert_ne!(s.coordinator.as_deref(), Some("n1"));
    }
    println!(
        "demo ran on n2 {} ms after n1's disk filled",
        moved.as_millis()
    );

    // Room again: n1 writes, is heard again, and the event log resumes with what it lost.
    std::fs::remove_file(disk.dir.join("filler")).expect("free the space");
    c.wait_for("n1 recovers and the cluster forms again", |c| {
        c.status(0).is_some_and(|s| s.state_disk_failed.is_none()) && c.formed()
    });
    c.wait_for("n1 holds a lease again", |c| {
        c.status(0).is_some_and(|s| s.holds_lease)
    });
    // Written once there was room again (what fit in the last page of the file while the
    // disk was full was written then; what did not is counted when the log reopens).
    let names: Vec<String> = c
        .events(0)
        .iter()
        .filter_map(|e| e["event"].as_str().map(str::to_string))
        .collect();
    let recovered = names.iter().position(|e| e == "state_disk_recovered");
    assert!(
        recovered.is_some_and(|at| at + 1 < names.len()),
        "n1's event log goes on after its recovery: {names:?}"
    );
    for e in c.events_named(0, "event_log_reopened") {
        assert!(e["lost"].as_u64().is_some_and(|l| l >= 1), "{e}");
    }
    stays(&c, "demo", "n2");

    // A start on a full disk is no refusal either: n1 starts, fails as a node once it must
    // write, and comes back once there is room.
    c.kill_daemon(0);
    fill(&disk.dir);
    c.start(0);
    c.wait_for("n1 starts on its full disk and answers", |c| {
        c.status(0).is_some()
    });
    commit_until_n1_fails(&c);
    c.wait_for("n1 reports its state disk failed", |c| {
        c.status(0).is_some_and(|s| s.state_disk_failed.is_some())
    });
    std::fs::remove_file(disk.dir.join("filler")).expect("free the space");
    c.wait_for("n1 recovers and the cluster forms again", |c| {
        c.status(0).is_some_and(|s| s.state_disk_failed.is_none()) && c.formed()
    });
    stays(&c, "demo", "n2");
}

#[test]
fn an_agent_missing_everywhere_fences_no_one_and_leaves_the_other_groups_alone() {
    if skip("an_agent_missing_everywhere_fences_no_one_and_leaves_the_other_groups_alone") {
        return;
    }
    let o = Opts {
        extra: "[[group]]\nname = \"ghost\"\nnodes = [\"n1\", \"n2\", \"n3\"]\n\n  [[group.resource]]\n  name = \"ghost-res\"\n  type = \"ocf\"\n  params = { type = \"NoSuchAgent\", ocf_root = \"@DIR@/no-ocf\" }\n".into(),
        ..Opts::default()
    };
    let mut c = Cluster::loopback(46, &o);
    up(&mut c);
    c.wait_for("ghost is given up on every node", |c| {
        (0..3).all(|i| {
            c.events_named(i, "group_cannot_run")
                .iter()
                .any(|e| e["group"] == "ghost")
        })
    });
    stays(&c, "demo", "n1");
    for i in 0..3 {
        let pid = c.daemon_pid(i).expect("a daemon");
        assert!(cluster::alive(pid), "n{}'s daemon is alive", i + 1);
        assert!(
            c.events_named(i, "fenced").is_empty(),
            "n{} fenced itself over an agent it does not have",
            i + 1
        );
        let refused = c.events_named(i, "resource_refused");
        assert!(
            refused.iter().any(|e| e["resource"] == "ghost-res"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("NoSuchAgent"))),
            "n{}'s resource_refused names the missing agent: {refused:?}",
            i + 1
        );
        let log = std::fs::read_to_string(&c.nodes[i].log).unwrap_or_default();
        assert!(
            log.contains("no-ocf/resource.d/heartbeat/NoSuchAgent does not exist"),
            "n{}'s log names the missing agent",
            i + 1
        );
    }
}

/// A loopback cluster (address byte `byte`) whose group demo has, beside its application,
/// an OCF resource `name` run by `script` (`@DIR@` is the cluster's directory), installed
/// as `ocf:eterne-test:<name>` under the cluster's own OCF root.
fn cluster_with_test_agent(byte: u8, name: &str, script: &str) -> Cluster {
    let o = Opts {
        extra: format!("  [[group.resource]]\n  name = \"{name}\"\n  type = \"ocf\"\n  params = {{ type = \"{name}\", provider = \"eterne-test\", ocf_root = \"@DIR@/ocf\" }}\n"),
        ..Opts::default()
    };
    let c = Cluster::loopback(byte, &o);
    let agents = c.dir.join("ocf/resource.d/eterne-test");
    std::fs::create_dir_all(&agents).unwrap();
    let file = agents.join(name);
    std::fs::write(&file, script.replace("@DIR@", &c.dir.display().to_string())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    c
}

/// An OCF agent that is "not installed" on n1 (its `validate-all` says so there, exit 5)
/// and a Dummy-like agent everywhere else. Its state is per node, as the loopback harness's
/// stuck agent keeps it.
const PICKY_AGENT: &str = r#"#!/bin/sh
node=$(tr '\0' '\n' < /proc/$PPID/environ | sed -n 's/^ETERNE_TEST_NODE=//p')
state="@DIR@/picky-$node"
case "$1" in
  start) : > "$state"; exit 0 ;;
  stop) rm -f "$state"; exit 0 ;;
  monitor) if [ -e "$state" ]; then exit 0; else exit 7; fi ;;
  meta-data) echo '<?xml version="1.0"?><resource-agent name="picky" version="1.0"><version>1.0</version><parameters/><actions><action name="start" timeout="5s"/><action name="stop" timeout="5s"/><action name="monitor" timeout="5s"/><action name="meta-data" timeout="5s"/><action name="validate-all" timeout="5s"/></actions></resource-agent>'; exit 0 ;;
  validate-all) if [ "$node" = n1 ]; then echo "picky-tool is not installed on $node" >&2; exit 5; fi; exit 0 ;;
  *) exit 3 ;;
esac
"#;

/// A resource whose agent refuses this node at start (`validate` fails here only) keeps its
/// group off that node: the group's first start goes to n2, the next in priority order, n1
/// writes `resource_refused` naming the resource and the agent's reason, and nobody is
/// fenced or restarted over it.
#[test]
fn a_resource_its_agent_refuses_on_one_node_runs_on_the_next_and_fences_no_one() {
    if skip("a_resource_its_agent_refuses_on_one_node_runs_on_the_next_and_fences_no_one") {
        return;
    }
    let mut c = cluster_with_test_agent(12, "picky", PICKY_AGENT);

    c.start_all();
    c.wait_for("the cluster forms", |c| c.formed());
    c.wait_for("demo runs on n2, the first node that can run it", |c| {
        c.on("demo").as_deref() == Some("n2")
    });
    let refused = c.events_named(0, "resource_refused");
    let why = refused
        .iter()
        .find(|e| e["resource"] == "picky" && e["group"] == "demo")
        .unwrap_or_else(|| panic!("n1 writes resource_refused for picky; got {refused:?}"));
    let reason = why["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("validate-all") && reason.contains("picky-tool is not installed on n1"),
        "the event gives the agent's reason: {reason}"
    );
    for i in 1..3 {
        assert!(
            c.events_named(i, "resource_refused").is_empty(),
            "n{} can run picky",
            i + 1
        );
    }
    stays(&c, "demo", "n2");
    for i in 0..3 {
        let pid = c.daemon_pid(i).expect("a daemon");
        assert!(cluster::alive(pid), "n{}'s daemon is alive", i + 1);
        assert!(
            c.events_named(i, "fenced").is_empty(),
            "n{} fenced over a resource that cannot run on n1",
            i + 1
        );
    }
    assert!(
        c.app_running(0, APP).is_none(),
        "n1 runs nothing of demo (its application stopped after the refused start)"
    );
}

/// `eternectl disable GROUP` stops the group where it runs and starts it nowhere, even when
/// its node dies and comes back; `eternectl enable GROUP` lets it run again, on its preferred
/// node. A second disable is refused with the reason, as an exit code.
#[test]
fn a_disabled_group_runs_nowhere_until_it_is_enabled() {
    if skip("a_disabled_group_runs_nowhere_until_it_is_enabled") {
        return;
    }
    let mut c = Cluster::loopback(13, &Opts::default());
    up(&mut c);
    let pid = c.app_pid(0, APP).expect("n1 runs the application");
    let socket = c.nodes[1].socket.display().to_string();
    let (ok, out) = support::eternectl(["disable", "demo", "--socket", &socket]);
    assert!(ok, "disable: {out}");
    c.wait_for("demo stops everywhere", |c| {
        c.running_on("demo").is_none() && (0..3).all(|i| c.app_running(i, APP).is_none())
    });
    // SAFETY: kill with signal 0 only checks that the pid exists.
    assert!(
        unsafe { libc::kill(pid, 0) } != 0,
        "n1's application was stopped"
    );
    let s = c.status(2).expect("n3 answers");
    assert!(s.groups.iter().any(|g| g.name == "demo" && g.disabled));
    let (ok, table) = support::eternectl(["status", "--socket", &socket]);
    assert!(ok && table.contains("disabled"), "{table}");
    let (ok, out) = support::eternectl(["disable", "demo", "--socket", &socket]);
    assert!(!ok && out.contains("already disabled"), "{out}");

    // n1, the group's home, dies and comes back: nothing starts anywhere meanwhile.
    c.kill_daemon(0);
    std::thread::sleep(QUIET);
    c.start(0);
    c.wait_for("n1 rejoins", |c| c.formed());
    std::thread::sleep(QUIET);
    assert!(c.running_on("demo").is_none(), "a disabled group started");
    assert!((0..3).all(|i| c.app_running(i, APP).is_none()));

    let r = c.ask(
        2,
        Request::Enable {
            group: "demo".into(),
        },
    );
    assert!(r.ok, "enable: {}", r.message);
    c.wait_for("demo runs on n1 again", |c| {
        c.on("demo").as_deref() == Some("n1")
    });
    let disabled: Vec<_> = c
        .events_named(1, "admin_committed")
        .into_iter()
        .filter(|e| e.to_string().contains("disable"))
        .collect();
    assert!(!disabled.is_empty(), "the disable is an event");
}

/// An OCF agent whose start says "not configured" (exit 6) while `@DIR@/misconfigured`
/// exists, and behaves like Dummy otherwise. Its state is per node.
const MISCONFIGURED_AGENT: &str = r#"#!/bin/sh
node=$(tr '\0' '\n' < /proc/$PPID/environ | sed -n 's/^ETERNE_TEST_NODE=//p')
state="@DIR@/conf-$node"
case "$1" in
  start) if [ -e "@DIR@/misconfigured" ]; then echo "conf.d/app.conf: no listen address" >&2; exit 6; fi; : > "$state"; exit 0 ;;
  stop) rm -f "$state"; exit 0 ;;
  monitor) if [ -e "$state" ]; then exit 0; else exit 7; fi ;;
  meta-data) echo '<?xml version="1.0"?><resource-agent name="conf" version="1.0"><version>1.0</version><parameters/><actions><action name="start" timeout="5s"/><action name="stop" timeout="5s"/><action name="monitor" timeout="5s"/><action name="meta-data" timeout="5s"/><action name="validate-all" timeout="5s"/></actions></resource-agent>'; exit 0 ;;
  validate-all) exit 0 ;;
  *) exit 3 ;;
esac
"#;

/// A fatal failure (OCF 6, "not configured": wrong on every node) keeps the group off every
/// node at once, instead of trying each node in turn: `group_failed` says `everywhere`, the
/// group runs nowhere and no node is fenced; once the configuration is mended, `eternectl
/// clear` lets it run on its preferred node again.
#[test]
fn a_fatal_failure_keeps_the_group_off_every_node_until_it_is_cleared() {
    if skip("a_fatal_failure_keeps_the_group_off_every_node_until_it_is_cleared") {
        return;
    }
    let mut c = cluster_with_test_agent(14, "conf", MISCONFIGURED_AGENT);
    std::fs::write(c.dir.join("misconfigured"), "").unwrap();

    c.start_all();
    c.wait_for("the cluster forms", |c| c.formed());
    c.wait_for(
        "demo fails fatally on n1 and is counted on every node",
        |c| {
            c.status(1).is_some_and(|s| {
                s.groups
                    .iter()
                    .any(|g| g.name == "demo" && g.failures.len() == 3)
            })
        },
    );
    let failed = c.events_named(1, "group_failed");
    assert!(
        failed
            .iter()
            .any(|e| e["everywhere"] == true && e["on"] == "n1"),
        "group_failed everywhere: {failed:?}"
    );
    std::thread::sleep(QUIET);
    assert!(c.running_on("demo").is_none(), "demo started somewhere");
    for i in 0..3 {
        assert!(
            c.app_running(i, APP).is_none(),
            "n{} runs demo's application",
            i + 1
        );
        assert!(c.events_named(i, "fenced").is_empty(), "n{} fenced", i + 1);
    }
    // Only n1 ever tried: the others were never asked to start what is wrong everywhere.
    for i in 1..3 {
        assert!(
            !c.events_named(i, "resource_failed")
                .iter()
                .any(|e| e["resource"] == "conf"),
            "n{} tried to start conf",
            i + 1
        );
    }

    std::fs::remove_file(c.dir.join("misconfigured")).unwrap();
    let r = c.ask(
        2,
        Request::Clear {
            target: "demo".into(),
        },
    );
    assert!(r.ok, "clear: {}", r.message);
    c.wait_for("demo runs on n1 once cleared", |c| {
        c.on("demo").as_deref() == Some("n1")
    });
}

/// `eternectl unmanage RESOURCE` leaves it to the administrator: its death is an event, not a
/// restart or a failover, and the status says so; the group stays pinned where it is even
/// with its owner's daemon gone. `eternectl manage RESOURCE` gives it back, and the group
/// mends what it finds failed: the application runs again, in place.
#[test]
fn an_unmanaged_resource_is_left_alone_until_it_is_managed_again() {
    if skip("an_unmanaged_resource_is_left_alone_until_it_is_managed_again") {
        return;
    }
    let mut c = Cluster::loopback(15, &Opts::default());
    up(&mut c);
    let socket = c.nodes[0].socket.display().to_string();
    let (ok, out) = support::eternectl(["unmanage", APP, "--socket", &socket]);
    assert!(ok, "unmanage: {out}");
    c.wait_for("every node sees the resource unmanaged", |c| {
        (0..3).all(|i| {
            c.status(i).is_some_and(|s| {
                s.groups
                    .iter()
                    .flat_map(|g| &g.resources)
                    .any(|r| r.name == APP && r.unmanaged)
            })
        })
    });
    let (ok, out) = support::eternectl(["unmanage", APP, "--socket", &socket]);
    assert!(!ok && out.contains("already unmanaged"), "{out}");

    let before = c.running_on("demo").expect("demo runs");
    assert!(c.kill_app(0, APP).is_some(), "n1 ran the application");
    c.wait_for("n1 reports the failure", |c| {
        c.events_named(0, "resource_failed")
            .iter()
            .any(|e| e["resource"] == APP)
    });
    std::thread::sleep(QUIET);
    assert!(
        c.app_running(0, APP).is_none(),
        "an unmanaged application was restarted"
    );
    // The instance is where it was, same epoch, still active (its status is not "running":
    // one of its resources failed).
    let placed = |c: &Cluster| {
        c.status(1).and_then(|s| {
            let g = s.groups.into_iter().find(|g| g.name == "demo")?;
            g.instances
                .into_iter()
                .map(|i| (i.node, i.epoch, i.phase))
                .next()
        })
    };
    assert_eq!(
        placed(&c),
        Some((before.0.clone(), before.1, "active".to_string())),
        "demo moved"
    );
    let (_, table) = support::eternectl(["status", "--socket", &socket]);
    assert!(table.contains("(unmanaged)"), "{table}");

    // Its owner's daemon dies: the group is pinned, so nobody takes it over.
    c.kill_daemon(0);
    std::thread::sleep(QUIET);
    assert!(
        (1..3).all(|i| c.app_running(i, APP).is_none()),
        "a pinned group was started elsewhere"
    );
    assert_eq!(
        placed(&c).map(|p| p.0),
        Some(before.0.clone()),
        "demo moved"
    );
    c.start(0);
    c.wait_for("n1 rejoins", |c| c.formed());

    let r = c.ask(
        1,
        Request::Manage {
            resource: APP.into(),
        },
    );
    assert!(r.ok, "manage: {}", r.message);
    c.wait_for("the application runs on n1 again", |c| {
        c.app_running(0, APP).is_some() && c.on("demo").as_deref() == Some("n1")
    });
}
