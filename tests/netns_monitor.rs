//! The two processes of a node (the core and its monitor, docs/runtime.md "The two
//! processes") in network namespaces, with the floating address and the application of the
//! namespace harness (`tests/cluster/namespaces.rs`): what a client and the kernels see when
//! only one of the owner's two processes dies or stalls.
//!
//! - The owner's core killed alone: the monitor starts a new core, which adopts what runs; the
//!   owner holds the address and runs the same application process throughout, no other node
//!   ever holds or runs either, the group keeps its node and epoch.
//! - The owner's core paused past its lease: the monitor takes the address and the
//!   application down here before any other node holds the one or runs the other (or this
//!   node runs them again); the group then runs again on one node, and the paused core's
//!   SIGCONT leaves one holder.
//! - The owner's core paused and the owner cut off from its peers: its next core gets no
//!   lease, another node takes the group over, and only after the monitor emptied the owner.
//! - The owner's monitor killed: the core starts a new one; nothing moves.
//!
//! Who holds the address is read through netlink in every node namespace ([`AddrWatch`],
//! every 2 ms per node; [`OwnerWatch`], every 5 ms, one sample of all nodes at once, with who
//! runs the application). What is asserted is behaviour and safety, never how long it took:
//! every wait is bounded by a generous limit that only turns a hang into a failure.
//!
//! They use a 1.5 s lease and 2 s failure detection (`GroupOpts::long_lease`) so that a debug
//! core restarts well inside its lease. Root only; without root (or a tool) each test prints
//! one line and returns.

mod cluster;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cluster::namespaces::{
    answer_runs, max_holders, sh, skip, AddrWatch, GroupOpts, Net, OwnerRecord, OwnerWatch, Probe,
    FLOATING,
};
use cluster::{alive, core_of, one_at_a_time, signal, Cluster};

/// The group's application resource.
const APP: &str = "web-app";
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_secs(4);
/// The period of the probe and of the owner watch.
const EVERY: Duration = Duration::from_millis(5);
/// The most any probe or watch runs.
const OBSERVE_MAX: Duration = Duration::from_secs(90);

fn eterned() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_eterned"))
}

fn cluster(test: &str) -> Cluster {
    let g = GroupOpts {
        long_lease: true,
        ..GroupOpts::default()
    };
    Cluster::namespaces(eterned(), Net::new(test, 3, false), &g)
}

/// Starts every node; waits for web to run on a node that does not coordinate (a
/// coordinator's death costs an election, which is not what these tests look at: web is
/// moved off it if it started there) and for that node to answer the client. Returns the
/// owner's index.
fn up(c: &mut Cluster) -> Owner {
    c.start_all();
    c.wait_for("the cluster forms", |c| c.formed());
    let owner = c.owner_off_the_coordinator("web").unwrap_or_else(|e| {
        c.dump();
        panic!("{e}")
    });
    let oi = c.index(&owner);
    c.wait_for("the owner runs the application", |c| {
        c.app_running(oi, APP).is_some()
    });
    let probe = Probe::start(&c.net().client, EVERY, Duration::from_secs(30));
    c.wait_for(&format!("the client is answered by {owner}"), |_| {
        probe
            .samples()
            .last()
            .is_some_and(|(_, w)| w.as_deref() == Some(owner.as_str()))
    });
    let before = c.running_on("web").expect("web runs");
    let app = c
        .app_running(oi, APP)
        .expect("the owner runs the application");
    let monitor = c.daemon_pid(oi).expect("the owner runs");
    let core = c.core_pid(oi).expect("the owner has a core");
    Owner {
        oi,
        before,
        app,
        monitor,
        core,
    }
}

/// After a fault that must move nothing: quiet for a while, then what the observers saw
/// shows the owner alone holding and running web throughout, at the same node and epoch.
fn stays_in_place(c: &Cluster, o: Owner, obs: Observers) -> Seen {
    nothing_moves(c, &o.before, o.oi, o.app);
    let seen = obs.stop();
    kept_in_place(c, o.oi, o.app, &seen);
    assert_eq!(c.running_on("web"), Some(o.before), "same node, same epoch");
    seen
}

/// The node that runs web, as the faults find it.
struct Owner {
    /// Its index.
    oi: usize,
    /// Where web runs (node, epoch).
    before: (String, u64),
    /// The application's pid.
    app: i32,
    /// Its monitor's pid and its core's.
    monitor: i32,
    core: i32,
}

/// What the observers saw: who answered the client (runs), the address changes, the owner
/// record.
type Seen = (Vec<String>, Vec<(Duration, usize, bool)>, OwnerRecord);

/// The observers of one test: a client probe, the address watch and the owner watch, all
/// timed from the probe's start.
struct Observers {
    probe: Probe,
    addrs: AddrWatch,
    owners: OwnerWatch,
}

impl Observers {
    fn start(c: &Cluster) -> Observers {
        let probe = Probe::start(&c.net().client, EVERY, OBSERVE_MAX);
        let addrs = AddrWatch::start(&c.net().nodes, probe.t0, OBSERVE_MAX);
        let owners = OwnerWatch::start(c, APP, probe.t0, EVERY, OBSERVE_MAX);
        // Let each of them see the cluster before the fault.
        std::thread::sleep(Duration::from_millis(300));
        Observers {
            probe,
            addrs,
            owners,
        }
    }

    /// Stops all three: who answered (runs), the address changes, the owner record.
    fn stop(self) -> Seen {
        let runs = answer_runs(&self.probe.stop());
        (runs, self.addrs.stop(), self.owners.stop())
    }
}

/// Fails if, during [`QUIET`], web runs anywhere but where it ran (at its epoch) or the
/// application there changes pid or stops.
fn nothing_moves(c: &Cluster, before: &(String, u64), oi: usize, app: i32) {
    let until = Instant::now() + QUIET;
    for _ in 0..(QUIET.as_millis() / 50 + 1) {
        if Instant::now() >= until {
            break;
        }
        if let Some(now) = c.running_on("web") {
            if now != *before {
                c.dump();
                panic!("web moved or restarted: now {now:?}, was {before:?}");
            }
        }
        if c.app_running(oi, APP) != Some(app) {
            c.dump();
            panic!("the application on the owner was stopped or restarted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that node `oi` held the address and ran the application `app` throughout, and
/// that no other node ever held or ran either, by every observer.
fn kept_in_place(c: &Cluster, oi: usize, app: i32, (runs, addrs, owners): &Seen) {
    let owner = c.nodes[oi].name.clone();
    let held_throughout = !addrs.is_empty() && addrs.iter().all(|(_, i, h)| *i == oi && *h);
    if !held_throughout {
        c.dump();
        panic!("only {owner} holds the address, and all the time: {addrs:?}");
    }
    if !owners.kept_by(oi, app) || owners.elsewhere_than(oi) {
        c.dump();
        panic!(
            "{owner} holds the address and runs pid {app} in every sample, no one else does: {:?}",
            owners.changes
        );
    }
    assert_eq!(
        (owners.two_addresses, owners.two_apps),
        (0, 0),
        "no sample with two holders"
    );
    assert_eq!(*runs, vec![owner], "only the owner answered the client");
}

#[test]
fn the_owners_core_killed_alone_keeps_the_address_and_the_application_in_place() {
    if skip("the_owners_core_killed_alone_keeps_the_address_and_the_application_in_place") {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = cluster("mcore");
    let o = up(&mut c);
    let (oi, monitor, core) = (o.oi, o.monitor, o.core);
    let obs = Observers::start(&c);
    signal(core, libc::SIGKILL);
    c.wait_for("the monitor starts a new core", |c| {
        c.core_pid(oi).is_some_and(|p| p != core) && c.status(oi).is_some()
    });
    let seen = stays_in_place(&c, o, obs);
    assert!(alive(monitor), "the monitor lives on");
    assert_eq!(
        c.events_named(oi, "daemon_started").len(),
        2,
        "the owner's core started twice"
    );
    assert!(
        c.events_named(oi, "stopped_hard").is_empty(),
        "nothing was stopped hard"
    );
    println!(
        "core killed: {} samples of all three nodes, the owner kept everything",
        seen.2.samples
    );
}

#[test]
fn the_owners_core_paused_past_its_lease_is_emptied_before_the_group_runs_again() {
    if skip("the_owners_core_paused_past_its_lease_is_emptied_before_the_group_runs_again") {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = cluster("mstop");
    let Owner { oi, app, core, .. } = up(&mut c);
    let obs = Observers::start(&c);
    let paused = obs.probe.t0.elapsed();
    signal(core, libc::SIGSTOP);
    c.wait_for("the monitor takes the application down here", |_| {
        !alive(app)
    });
    c.wait_for(
        "web runs again, with one application and one address",
        |_| {
            let r = obs.owners.record();
            r.changes
                .last()
                .is_some_and(|(_, o)| o.app.len() == 1 && o.app[0].1 != app && o.address.len() == 1)
        },
    );
    // A core the monitor has not killed would go on from here; it has been killed.
    signal(core, libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(1));
    let (_, addrs, owners) = obs.stop();
    no_overlap(&c, &addrs, &owners);
    let (gone, back, node) = emptied_then_back(&c, oi, app, paused, &owners);
    println!(
        "core paused: the owner n{} was emptied {:?} after the pause; {:?} later the \
         application ran again on n{}",
        oi + 1,
        gone - paused,
        back - gone,
        node + 1
    );
    // Where it runs again is the cluster's choice: the owner's next core is up and
    // heartbeating well before failure detection (2 s) would declare the owner lost, so the
    // group usually starts again on the owner itself, under a new lease.
    assert!(!alive(core), "the paused core was killed by its monitor");
    c.wait_for("the cluster forms again", |c| c.formed());
    c.wait_for(
        "the owner's next core records what the monitor stopped",
        |c| !c.events_named(oi, "stopped_hard").is_empty(),
    );
    c.wait_for("one node holds the address, the one that runs web", |c| {
        one_holder_runs_web(c)
    });
}

/// The owner's core paused and the owner cut off from its peers at once (nftables on both
/// private paths): its next core gets no lease, so the cluster takes the group over, and the
/// monitor must have emptied the owner before another node holds the address or runs the
/// application.
#[test]
fn the_owners_core_paused_and_cut_off_is_emptied_before_another_node_starts() {
    if skip("the_owners_core_paused_and_cut_off_is_emptied_before_another_node_starts") {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = cluster("mcut");
    let Owner { oi, app, core, .. } = up(&mut c);
    let obs = Observers::start(&c);
    let paused = obs.probe.t0.elapsed();
    signal(core, libc::SIGSTOP);
    c.net().partition(oi, 100).expect("cut the owner off");
    c.wait_for("the monitor takes the application down here", |_| {
        !alive(app)
    });
    c.wait_for("web runs on another node, which holds the address", |_| {
        obs.owners.record().changes.last().is_some_and(|(_, o)| {
            o.app.len() == 1 && o.app[0].0 != oi && o.address == vec![o.app[0].0]
        })
    });
    signal(core, libc::SIGCONT);
    c.net().heal(oi);
    c.wait_for("the cluster forms again", |c| c.formed());
    std::thread::sleep(Duration::from_secs(1));
    let (_, addrs, owners) = obs.stop();
    no_overlap(&c, &addrs, &owners);
    let (gone, back, node) = emptied_then_back(&c, oi, app, paused, &owners);
    println!(
        "core paused and cut off: the owner n{} was emptied {:?} after the pause; {:?} later \
         n{} ran the application",
        oi + 1,
        gone - paused,
        back - gone,
        node + 1
    );
    assert_ne!(node, oi, "another node took the group over");
    assert!(!alive(core), "the paused core was killed by its monitor");
    c.wait_for("one node holds the address, the one that runs web", |c| {
        one_holder_runs_web(c)
    });
}

/// Fails if two nodes ever held the address at once (either watch) or ran the application
/// in one sample.
fn no_overlap(c: &Cluster, addrs: &[(Duration, usize, bool)], owners: &OwnerRecord) {
    if max_holders(addrs) > 1 || owners.two_addresses > 0 || owners.two_apps > 0 {
        c.dump();
        panic!(
            "two nodes held the address or ran the application at once: {addrs:?} {:?}",
            owners.changes
        );
    }
}

/// After a fault at `fault` on owner `oi` (application `app`): when the owner first held
/// neither the address nor the application, when anything came back (another node holding
/// or running either, or the owner running another application process), and where. Fails
/// unless the owner was emptied first.
fn emptied_then_back(
    c: &Cluster,
    oi: usize,
    app: i32,
    fault: Duration,
    owners: &OwnerRecord,
) -> (Duration, Duration, usize) {
    let gone = owners
        .changes
        .iter()
        .find(|(t, o)| {
            *t > fault && !o.address.contains(&oi) && o.app.iter().all(|&(j, _)| j != oi)
        })
        .map(|(t, _)| *t);
    let back = owners
        .changes
        .iter()
        .find(|(t, o)| {
            *t > fault
                && (o.address.iter().any(|&j| j != oi)
                    || o.app.iter().any(|&(j, p)| j != oi || p != app))
        })
        .and_then(|(t, o)| {
            let node = o
                .app
                .first()
                .map(|&(j, _)| j)
                .or(o.address.first().copied())?;
            Some((*t, node))
        });
    match (gone, back) {
        (Some(g), Some((b, node))) if g < b => (g, b, node),
        other => {
            c.dump();
            panic!(
                "the owner is emptied before the group runs again: {other:?} in {:?}",
                owners.changes
            );
        }
    }
}

/// Exactly one node namespace has the floating address, and it is the node that says it
/// runs web.
fn one_holder_runs_web(c: &Cluster) -> bool {
    let holders: Vec<usize> = (0..c.nodes.len())
        .filter(|&i| {
            sh(&["ip", "-n", &c.net().nodes[i], "-o", "-4", "addr", "show"])
                .is_ok_and(|out| out.contains(&format!(" {FLOATING}/")))
        })
        .collect();
    holders.len() == 1 && c.on("web").map(|n| c.index(&n)) == Some(holders[0])
}

#[test]
fn the_owners_monitor_killed_is_replaced_and_nothing_moves() {
    if skip("the_owners_monitor_killed_is_replaced_and_nothing_moves") {
        return;
    }
    let _turn = one_at_a_time();
    let mut c = cluster("mmon");
    let o = up(&mut c);
    let (oi, monitor, core) = (o.oi, o.monitor, o.core);
    let obs = Observers::start(&c);
    signal(monitor, libc::SIGKILL);
    c.wait_for("the core starts a new monitor", |_| core_of(core).is_some());
    stays_in_place(&c, o, obs);
    assert!(alive(core), "the core lives on");
    assert!(core_of(core).is_some_and(alive), "the new monitor lives on");
    assert!(
        c.events_named(oi, "stopped_hard").is_empty(),
        "nothing was stopped hard"
    );
}
