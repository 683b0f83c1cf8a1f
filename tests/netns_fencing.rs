//! Fencing in network namespaces (design.md §5, rule 4c; issue 9 part 4): three `eterned`
//! with `[fencing]`, the owner of the group partitioned from its peers, and a fence agent of
//! the tests that speaks the fence-agents contract (`key=value` lines on stdin, the exit code
//! as the verdict) and powers a node namespace off: it kills every process in it, sets its
//! links down and forgets its addresses, as a power switch would.
//!
//! - The agent succeeds: the partitioned owner is fenced (its processes are gone), the group
//!   runs on the next node, never two holders of the floating address; the fenced node,
//!   powered on and started again, rejoins the cluster.
//! - The agent fails: no takeover (the group runs nowhere while the owner is silent),
//!   `fence_failed` events, retried; once the partition heals the owner confirms its stop and
//!   the group runs again.
//!
//! - Two nodes and no witness: the survivor of a dead peer fences it and goes on alone, with
//!   the group; the peer, started again, rejoins. A partition of the two leaves exactly one
//!   of them powered on and serving: the one whose fencing is delayed (`delay_ms`).
//!
//! Root only; without root (or a tool) each test prints one line and returns. Namespaces are
//! named `hf-…`.

mod cluster;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::namespaces::{self as netns, max_holders, AddrWatch, GroupOpts, Net, Probe, FLOATING};
use cluster::{one_at_a_time, Cluster};

/// The probe's period.
const EVERY: Duration = Duration::from_millis(5);
/// The most any probe or watch runs.
const OBSERVE_MAX: Duration = Duration::from_secs(90);
/// How long "no takeover" is watched for while the fence keeps failing.
const NO_TAKEOVER: Duration = Duration::from_secs(4);

/// The test fence agent: the fence-agents contract over a network namespace (`plug` names
/// it). `fail=yes` makes it fail as a switch that cannot be reached; `log=FILE` appends one
/// line per run; while the file `down=FILE` exists, its `monitor` fails as a device that
/// cannot be reached.
const FENCE_NETNS: &str = r#"#!/bin/sh
# fence_netns: a fence agent for the namespace tests. Arguments as key=value lines on stdin.
action=""; plug=""; log=""; fail=""; nodename=""; down=""
while IFS= read -r line; do
  key=${line%%=*}; val=${line#*=}
  case $key in
    action) action=$val ;;
    plug|port) plug=$val ;;
    nodename) nodename=$val ;;
    log) log=$val ;;
    fail) fail=$val ;;
    down) down=$val ;;
  esac
done
[ -n "$log" ] && echo "action=$action plug=$plug nodename=$nodename" >> "$log"
case $action in
  metadata)
    echo '<?xml version="1.0" ?><resource-agent name="fence_netns" shortdesc="Powers off a network namespace"><parameters><parameter name="plug" unique="1" required="1"/></parameters><actions><action name="on"/><action name="off"/><action name="reboot"/><action name="status"/><action name="monitor"/><action name="metadata"/></actions></resource-agent>'
    exit 0 ;;
  monitor)
    [ -n "$down" ] && [ -e "$down" ] && { echo "Failed: Unable to connect/login to fencing device" >&2; exit 1; }
    exit 0 ;;
esac
[ -n "$plug" ] || { echo "Failed: no plug given" >&2; exit 1; }
[ -e "/run/netns/$plug" ] || { echo "Failed: no namespace $plug" >&2; exit 1; }
[ "$fail" = yes ] && { echo "Failed: Unable to connect/login to fencing device" >&2; exit 1; }
links() { ip -n "$plug" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -vx lo; }
case $action in
  off|reboot)
    for l in $(links); do ip -n "$plug" link set "$l" down; done
    ip -n "$plug" addr flush scope global
    # All at once, as a power cut: again until nothing is left (a process that was about
    # to start another, say the monitor restarting its core, is caught the next round).
    i=0
    while [ -n "$(ip netns pids "$plug")" ] && [ $i -lt 100 ]; do
      for p in $(ip netns pids "$plug"); do kill -9 "$p" 2>/dev/null; done
      sleep 0.02; i=$((i+1))
    done
    [ -z "$(ip netns pids "$plug")" ] || { echo "Failed: processes survive in $plug" >&2; exit 1; }
    echo "Success: Powered OFF"
    exit 0 ;;
  on)
    for l in $(links); do ip -n "$plug" link set "$l" up; done
    echo "Success: Powered ON"; exit 0 ;;
  status)
    [ -n "$(ip netns pids "$plug")" ] && { echo "Status: ON"; exit 0; }
    echo "Status: OFF"; exit 2 ;;
  *) echo "Failed: unknown action $action" >&2; exit 1 ;;
esac
"#;

fn skip(test: &str) -> bool {
    match netns::unavailable() {
        Some(why) => {
            println!("SKIPPED {test}: {why}");
            true
        }
        None => false,
    }
}

fn eterned() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_eterned"))
}

/// Three nodes whose namespaces are `hf-…`, with `[fencing]` by the test agent (`fail`: it
/// always fails). The agent logs to `<dir>/fence.log`; its device is monitored at the
/// default interval (one check at each start, then every minute).
fn fenced_cluster(test: &str, fail: bool) -> Cluster {
    fenced_cluster_with(test, fail, "")
}

/// [`fenced_cluster`] with more lines of `[fencing]` (`@DIR@` is the cluster's directory)
/// and more agent `params` (`, key = "value"` pairs).
fn fenced_cluster_with(test: &str, fail: bool, extra: &str) -> Cluster {
    fenced_nodes(test, 3, fail, extra)
}

/// [`fenced_cluster_with`] of `n` nodes (no witness).
fn fenced_nodes(test: &str, n: usize, fail: bool, extra: &str) -> Cluster {
    let prefix = format!("hf{}-{test}", std::process::id() % 1000);
    let net = Net::with_prefix(prefix, n, false);
    let targets: Vec<String> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, ns)| format!("n{} = \"{ns}\"", i + 1))
        .collect();
    Cluster::namespaces_with(eterned(), net, &GroupOpts::default(), |dir| {
        let agent = write_agent(dir);
        let log = dir.join("fence.log");
        let fail = if fail { ", fail = \"yes\"" } else { "" };
        let (lines, params) = extra.split_once('|').unwrap_or((extra, ""));
        let at = |t: &str| t.replace("@DIR@", &dir.display().to_string());
        format!(
            "\n[fencing]\nagent = \"{}\"\naction = \"off\"\ntimeout_ms = 10000\n{}\
             targets = {{ {} }}\nparams = {{ log = \"{}\"{fail}{} }}\n",
            agent.display(),
            at(lines),
            targets.join(", "),
            log.display(),
            at(params)
        )
    })
}

fn write_agent(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fence_netns");
    std::fs::write(&p, FENCE_NETNS).expect("write the fence agent");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

/// Starts every node; waits for the group on n1.
fn up(c: &mut Cluster) {
    c.start_all();
    c.wait_for("the cluster forms", |c| c.formed());
    c.wait_for("web runs on its preferred node n1", |c| {
        c.on("web").as_deref() == Some("n1")
    });
}

/// Fails, with the cluster's logs, if two nodes ever held the floating address at once.
fn never_two_holders(c: &Cluster, holders: &[(Duration, usize, bool)]) {
    if max_holders(holders) > 1 {
        c.dump();
        panic!("two nodes held {FLOATING} at once: {holders:?}");
    }
}

/// Events named `name` on any node.
fn events_anywhere(c: &Cluster, name: &str) -> Vec<serde_json::Value> {
    (0..c.nodes.len())
        .flat_map(|i| c.events_named(i, name))
        .collect()
}

/// Whether some node other than n1 runs web.
fn taken_over(c: &Cluster) -> bool {
    c.on("web").is_some_and(|n| n != "n1")
}

#[test]
fn a_partitioned_owner_is_fenced_and_its_group_runs_on_the_next_node() {
    if skip("a_partitioned_owner_is_fenced_and_its_group_runs_on_the_next_node") {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = fenced_cluster("ok", false);
    up(&mut c);
    let probe = Probe::start(&c.net().client, EVERY, OBSERVE_MAX);
    let watch = AddrWatch::start(&c.net().nodes, probe.t0, OBSERVE_MAX);
    std::thread::sleep(Duration::from_millis(300));
    c.net().partition(0, 100).expect("partition n1");
    c.wait_for("n1 is fenced: no process left in its namespace", |c| {
        c.net().pids(0).is_empty()
    });
    c.wait_for("web runs on n2", |c| c.on("web").as_deref() == Some("n2"));
    c.wait_for("the client is answered by n2", |_| {
        probe
            .samples()
            .last()
            .is_some_and(|(_, w)| w.as_deref() == Some("n2"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let _samples = probe.stop();
    let holders = watch.stop();
    never_two_holders(&c, &holders);
    let succeeded = events_anywhere(&c, "fence_succeeded");
    let ok = succeeded
        .iter()
        .find(|e| e["target"] == "n1")
        .unwrap_or_else(|| {
            c.dump();
            panic!("no fence_succeeded for n1");
        });
    assert_eq!(ok["action"], "off", "{ok}");
    assert_eq!(ok["exit_code"], 0, "{ok}");
    assert!(
        ok["output"].as_str().unwrap_or("").contains("Powered OFF"),
        "{ok}"
    );
    assert!(
        !events_anywhere(&c, "fence_started").is_empty(),
        "a fence_started event"
    );
    assert!(
        (1..3).any(|i| !c.events_named(i, "node_fenced").is_empty()),
        "the fence was committed"
    );
    let log = std::fs::read_to_string(c.dir.join("fence.log")).unwrap_or_default();
    let ns1 = c.net().nodes[0].clone();
    assert!(
        log.lines()
            .any(|l| l == format!("action=off plug={ns1} nodename=n1")),
        "the agent read its arguments on stdin: {log}"
    );
    let fences = log.lines().filter(|l| !l.starts_with("action=monitor"));
    assert_eq!(fences.count(), 1, "one fence: {log}");
    assert!(
        log.lines().any(|l| l.starts_with("action=monitor plug= ")),
        "each node checked the device at its start, with no target: {log}"
    );

    // Powered on again and started: it rejoins, and the group stays where it is.
    c.power_on(0);
    c.wait_for("the fenced node rejoins", |c| c.formed());
    // One sample can miss a busy node's status (it answers within 2 s or counts as not
    // running): what matters is that web runs on n2 and nowhere else, not that every node
    // answered in time once.
    c.wait_for("manual failback: web stays on n2", |c| {
        c.on("web").as_deref() == Some("n2")
    });
    assert!(
        c.app_running(0, "web-app").is_none(),
        "the fenced node started web again"
    );
}

#[test]
fn a_failed_fence_means_no_takeover() {
    if skip("a_failed_fence_means_no_takeover") {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = fenced_cluster("fail", true);
    up(&mut c);
    let watch = AddrWatch::start(&c.net().nodes, std::time::Instant::now(), OBSERVE_MAX);
    c.net().partition(0, 100).expect("partition n1");
    c.wait_for("a fence of n1 fails, twice (it is retried)", |c| {
        events_anywhere(c, "fence_failed")
            .iter()
            .filter(|e| e["target"] == "n1")
            .count()
            >= 2
    });
    // Watch: n1 stops web itself (its lease ran out), and nobody else starts it.
    let until = std::time::Instant::now() + NO_TAKEOVER;
    while std::time::Instant::now() < until {
        if taken_over(&c) {
            c.dump();
            panic!("web was taken over from n1 without a fence");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let failed = events_anywhere(&c, "fence_failed");
    let first = &failed[0];
    assert_eq!(first["exit_code"], 1, "{first}");
    assert!(
        first["output"]
            .as_str()
            .unwrap_or("")
            .contains("Unable to connect"),
        "{first}"
    );
    assert!(events_anywhere(&c, "node_fenced").is_empty());
    assert!(!c.net().pids(0).is_empty(), "n1 was never powered off");
    // The partition heals: n1 confirms its stop, and the group runs again.
    c.net().heal(0);
    c.wait_for("web runs again", |c| c.on("web").is_some());
    let holders = watch.stop();
    never_two_holders(&c, &holders);
}

#[test]
fn a_fence_device_that_stops_answering_is_told_before_a_fence_needs_it() {
    let test = "a_fence_device_that_stops_answering_is_told_before_a_fence_needs_it";
    if skip(test) {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = fenced_cluster_with(
        "mon",
        false,
        "monitor_interval_ms = 1000\n|, down = \"@DIR@/device-down\"",
    );
    up(&mut c);
    let device = |c: &Cluster, i: usize| c.status(i).and_then(|s| s.fence_device);
    c.wait_for("every node's device check answers", |c| {
        (0..3).all(|i| device(c, i).is_some_and(|d| d.state == "answers"))
    });
    assert!(
        events_anywhere(&c, "fence_device_failed").is_empty(),
        "a device that answers is no news"
    );

    std::fs::write(c.dir.join("device-down"), "").expect("take the device away");
    c.wait_for("every node tells that its device fails", |c| {
        (0..3).all(|i| !c.events_named(i, "fence_device_failed").is_empty())
    });
    for i in 0..3 {
        let failed = c.events_named(i, "fence_device_failed");
        assert_eq!(failed.len(), 1, "told once, not at every check: {failed:?}");
        let e = &failed[0];
        assert_eq!(e["action"], "monitor", "{e}");
        assert_eq!(e["exit_code"], 1, "{e}");
        assert!(
            e["output"]
                .as_str()
                .unwrap_or("")
                .contains("Unable to connect"),
            "the agent's own words: {e}"
        );
        let d = device(&c, i).expect("a status with the device");
        assert_eq!(d.state, "fails", "{d:?}");
        assert!(!d.reason.is_empty(), "status says why: {d:?}");
    }
    assert_eq!(
        c.on("web").as_deref(),
        Some("n1"),
        "a device check moves nothing"
    );

    std::fs::remove_file(c.dir.join("device-down")).expect("bring the device back");
    c.wait_for("every node tells that its device answers again", |c| {
        (0..3).all(|i| !c.events_named(i, "fence_device_recovered").is_empty())
    });
    assert!(
        (0..3).all(|i| device(&c, i).is_some_and(|d| d.state == "answers")),
        "status follows"
    );
}

/// Two nodes, no witness, a fencing device; fencing n1 waits 2 s (`delay_ms`), so n1 is the
/// one that survives a partition.
fn two_nodes(test: &str) -> Cluster {
    fenced_nodes(test, 2, false, "delay_ms = { n1 = 2000 }\n")
}

#[test]
fn a_two_node_survivor_fences_its_dead_peer_and_goes_on_alone() {
    let test = "a_two_node_survivor_fences_its_dead_peer_and_goes_on_alone";
    if skip(test) {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = two_nodes("two");
    up(&mut c);
    let watch = AddrWatch::start(&c.net().nodes, std::time::Instant::now(), OBSERVE_MAX);
    c.crash(0);
    c.wait_for("web runs on n2, alone", |c| {
        c.on("web").as_deref() == Some("n2")
    });
    let alone = c.events_named(1, "going_alone");
    assert!(
        alone
            .iter()
            .any(|e| e["node"] == "n2" && e["fenced"] == "n1"),
        "n2 committed that it goes on alone: {alone:?}"
    );
    let ok = c.events_named(1, "fence_succeeded");
    assert!(
        ok.iter().any(|e| e["target"] == "n1"),
        "n2 fenced n1 first: {ok:?}"
    );
    let log = std::fs::read_to_string(c.dir.join("fence.log")).unwrap_or_default();
    let ns1 = c.net().nodes[0].clone();
    assert!(
        log.lines()
            .any(|l| l == format!("action=off plug={ns1} nodename=n1")),
        "{log}"
    );

    // n1 powered on again: it rejoins as a voter, and web stays (manual failback).
    c.power_on(0);
    c.wait_for("n1 rejoins: both see both alive", |c| c.formed());
    c.wait_for("n1's return is committed", |c| {
        c.events_named(1, "joined_committed")
            .iter()
            .any(|e| e["node"] == "n1")
    });
    assert_eq!(
        c.on("web").as_deref(),
        Some("n2"),
        "manual failback: web stays"
    );
    let holders = watch.stop();
    never_two_holders(&c, &holders);

    // Together again, the two are a majority of two: n2 dies now, and n1 goes on alone.
    c.crash(1);
    c.wait_for("web runs on n1, alone", |c| {
        c.on("web").as_deref() == Some("n1")
    });
    assert!(
        c.events_named(0, "going_alone")
            .iter()
            .any(|e| e["node"] == "n1" && e["fenced"] == "n2"),
        "n1 went on alone"
    );
}

#[test]
fn a_partition_of_two_nodes_leaves_exactly_one_serving() {
    let test = "a_partition_of_two_nodes_leaves_exactly_one_serving";
    if skip(test) {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = two_nodes("split");
    up(&mut c);
    let probe = Probe::start(&c.net().client, EVERY, OBSERVE_MAX);
    let watch = AddrWatch::start(&c.net().nodes, probe.t0, OBSERVE_MAX);
    std::thread::sleep(Duration::from_millis(300));
    // Both private paths cut: each node hears nothing of the other, and both fence.
    c.net().partition(0, 100).expect("partition n1 from n2");
    c.wait_for("n2 is powered off by n1's fence", |c| {
        c.net().pids(1).is_empty()
    });
    c.wait_for("web runs on n1, alone", |c| {
        c.on("web").as_deref() == Some("n1")
    });
    c.wait_for("the client is answered by n1", |_| {
        probe
            .samples()
            .last()
            .is_some_and(|(_, w)| w.as_deref() == Some("n1"))
    });
    // Long past n2's delayed fence of n1: n1 still runs (n2's fence died with its machine).
    std::thread::sleep(Duration::from_millis(3000));
    let samples = probe.stop();
    let holders = watch.stop();
    never_two_holders(&c, &holders);
    assert!(!c.net().pids(0).is_empty(), "n1 survives");
    assert_eq!(c.on("web").as_deref(), Some("n1"));
    assert!(
        samples.iter().all(|(_, w)| w.as_deref() != Some("n2")),
        "n2 never answered"
    );
    let log = std::fs::read_to_string(c.dir.join("fence.log")).unwrap_or_default();
    let fences: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("action=monitor"))
        .collect();
    let ns2 = c.net().nodes[1].clone();
    assert_eq!(
        fences,
        vec![format!("action=off plug={ns2} nodename=n2").as_str()],
        "one fence, of n2; n2's fence of n1 never ran: {log}"
    );
    assert!(
        c.events_named(0, "going_alone")
            .iter()
            .any(|e| e["node"] == "n1" && e["fenced"] == "n2"),
        "n1 went on alone"
    );
}

/// `n` nodes with a disk path on a file every namespace sees, fenced by poison pill
/// (`action = "off"`: a node that obeys leaves the cluster) with a bound of `bound_ms`, and
/// `extra` lines of `[fencing]`.
fn pill_cluster(test: &str, n: usize, bound_ms: u32, extra: &str) -> Cluster {
    let prefix = format!("hp{}-{test}", std::process::id() % 1000);
    let net = Net::with_prefix(prefix, n, false);
    Cluster::namespaces_with(eterned(), net, &GroupOpts::default(), |dir| {
        let disk = dir.join("disk.img");
        std::fs::File::create(&disk).expect("the shared disk's file");
        format!(
            "\n[[path]]\nname = \"shared\"\nkind = \"disk\"\ndevice = \"{}\"\ninterval_ms = 50\n\
             misses = 6\n\n[fencing]\nmethod = \"poison_pill\"\npath = \"shared\"\n\
             action = \"off\"\npill_timeout_ms = {bound_ms}\n{extra}",
            disk.display()
        )
    })
}

/// The `fence_succeeded` events of fences of `target`, on any node.
fn fences_of(c: &Cluster, target: &str) -> Vec<serde_json::Value> {
    events_anywhere(c, "fence_succeeded")
        .into_iter()
        .filter(|e| e["target"] == target)
        .collect()
}

#[test]
fn a_poison_pill_empties_its_target_within_the_bound() {
    let test = "a_poison_pill_empties_its_target_within_the_bound";
    if skip(test) {
        return;
    }
    let _turn = one_at_a_time();
    // Two nodes, no witness: a silent peer is fenced whatever it runs. Shots at n1 wait.
    let mut c = pill_cluster("obey", 2, 8000, "delay_ms = { n1 = 2000 }\n");
    up(&mut c);
    let watch = AddrWatch::start(&c.net().nodes, std::time::Instant::now(), OBSERVE_MAX);
    // n2's core stops (a paused process): silent on both networks and on the disk, whose
    // beats only its core gives. Its monitor lives and reads the pill block; n2 holds no
    // lease, so nothing makes the monitor act before its 2 s wedge limit — the pill does.
    let core = c.core_pid(1).expect("n2's core");
    cluster::signal(core, libc::SIGSTOP);
    c.wait_for("n2 is fenced by pill", |c| !fences_of(c, "n2").is_empty());
    let fence = fences_of(&c, "n2").remove(0);
    println!("the pill's fence: {fence}");
    let said = fence["output"].as_str().unwrap_or("").to_string();
    assert!(
        said.contains("acknowledged the poison pill") && said.contains("everything stopped"),
        "n2's monitor acknowledged, the bound did not pass: {fence}"
    );
    assert!(
        fence["duration_ms"].as_u64().is_some_and(|d| d < 8000),
        "within the bound: {fence}"
    );
    assert_eq!(
        c.exit_code(1, Duration::from_secs(5)),
        Some(72),
        "n2's monitor left (EXIT_POISONED)"
    );
    c.wait_for("nothing is left running in n2's namespace", |c| {
        c.net().pids(1).is_empty()
    });
    let log = std::fs::read_to_string(&c.nodes[1].log).unwrap_or_default();
    assert!(
        log.contains("poison pill acknowledged"),
        "n2's monitor tells what it did"
    );
    c.wait_for("n1 goes on alone", |c| {
        c.events_named(0, "going_alone")
            .iter()
            .any(|e| e["node"] == "n1" && e["fenced"] == "n2")
    });
    c.wait_for("web runs on n1", |c| c.on("web").as_deref() == Some("n1"));
    let holders = watch.stop();
    never_two_holders(&c, &holders);
    // Started again, n2 finds its pill acknowledged, obeys nothing and rejoins.
    c.start(1);
    c.wait_for("n2 rejoins", |c| c.formed());
    assert_eq!(c.on("web").as_deref(), Some("n1"));
}

#[test]
fn a_dead_target_of_a_poison_pill_is_counted_fenced_once_the_bound_passed() {
    let test = "a_dead_target_of_a_poison_pill_is_counted_fenced_once_the_bound_passed";
    if skip(test) {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = pill_cluster("bound", 3, 2000, "");
    up(&mut c);
    c.crash(0);
    c.wait_for("web runs on n2", |c| c.on("web").as_deref() == Some("n2"));
    let fence = fences_of(&c, "n1").remove(0);
    println!("the pill's fence: {fence}");
    let said = fence["output"].as_str().unwrap_or("");
    assert!(
        said.contains("did not acknowledge the poison pill"),
        "no monitor read it: {fence}"
    );
    assert!(
        fence["duration_ms"].as_u64().is_some_and(|d| d >= 2000),
        "the fencer waited the whole bound: {fence}"
    );
}
