//! `eterne-bench netns [--trials N] [--faults crash,nic,partition,app,core-kill,core-stop]
//! [--long-lease]`: the outage a client sees, per fault kind, on a real three-node cluster in
//! network namespaces (the harness of `tests/cluster` on its namespace network; root only),
//! and for the faults of one node's own processes whether two nodes ever held the address or
//! ran the application at once.
//!
//! Per fault kind a fresh cluster (nodes n1..n3, heartbeats on two private bridges, the group
//! `web` = the test application + the floating address 192.0.2.10 on the public bridge). Per
//! trial a probe in the client namespace connects to the floating address every 2 ms; once it
//! is answered, the fault is injected on the node that runs the group; the **outage** is the
//! longest gap between two answers from the last answer before the fault until the first
//! answer after it — what a client polling the service saw. Then the fault is undone and the
//! cluster settles before the next trial.
//!
//! | fault | what is done | undone by |
//! |---|---|---|
//! | `crash` | kill -9 of everything in the owner's namespace, its links down, the address forgotten | links up, eterned restarted |
//! | `nic` | the NIC holding the address (n1 has pub0 and pub1) set down: local NIC failover | the NIC set up again |
//! | `partition` | nftables in the owner's namespace drop everything to/from the peers' private addresses (the public net still works) | the rules removed |
//! | `app` | SIGKILL of the application's process group (`max_restarts = 0`: the group fails over) | `clear web` |
//! | `core-kill` | SIGKILL of the owner's core process alone (its monitor, application and address left alone) | nothing: the monitor starts a new core |
//! | `core-stop` | SIGSTOP of the owner's core for [`PAUSE`], then SIGCONT | nothing: the monitor stops hard and starts a new core |
//!
//! For `core-kill` and `core-stop` the owner is first moved off the coordinator if it is the
//! coordinator (a coordinator's death costs an election, which is not what they measure), and
//! an [`OwnerWatch`] samples every 5 ms, all nodes at once, who holds the floating address
//! (netlink in each node namespace) and who runs the application (its pidfile, pid alive
//! with the recorded start time). Per kind they print the samples in which two nodes held the
//! address, and in which two ran the application (both must be 0), and in how many trials
//! nothing stopped or moved: the same node and epoch, the same application pid, the address
//! held by the owner alone in every sample. Each kind runs [`default_trials`] in a row unless
//! `--trials` says otherwise, one fault every 6.9 s at the most: the monitor gives up on a core
//! that died `RESTART_LIMIT` (10) times within `RESTART_WINDOW` (60 s), a crash loop, and
//! these faults are not one.
//!
//! `--long-lease` runs every kind with a 1.5 s lease and 2 s failure detection (the tests'
//! `GroupOpts::long_lease`) instead of the default `[timing]`.
//!
//! Times are wall-clock differences on one machine, printed with min / p50 / p99 / max;
//! nothing is asserted.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::namespaces::{self as harness, GroupOpts, Net, OwnerWatch, Probe};
use crate::cluster::{signal, Cluster};
use eterne::control::Request;
use eterne::monitor::{RESTART_LIMIT, RESTART_WINDOW};

use super::{report, wait};

/// The probe's period.
const EVERY: Duration = Duration::from_millis(2);
/// The most one trial's probe runs.
const TRIAL_MAX: Duration = Duration::from_secs(60);
/// Between two trials, once the cluster has formed again: leases renewed, ARP settled.
const SETTLE: Duration = Duration::from_millis(700);

/// How long `core-stop` pauses the owner's core.
const PAUSE: Duration = Duration::from_secs(3);
/// The period of the [`OwnerWatch`].
const OWNER_EVERY: Duration = Duration::from_millis(5);
/// After a killed core's successor answers: long enough for its inherited lease's stop point
/// (at most the lease less the stop budget after the kill) to pass, so a lapse shows.
const AFTER_CORE: Duration = Duration::from_millis(1500);
/// The group's application resource.
const APP: &str = "web-app";

/// Trials of fault kind `fault` when `--trials` is not given: the 100 kills of the
/// core in a row, 20 of everything else.
pub fn default_trials(fault: &str) -> usize {
    if fault == "core-kill" {
        100
    } else {
        20
    }
}

/// What one fault kind measured.
struct Measured {
    /// The outage the client saw, per trial (µs).
    outages: Vec<u64>,
    /// For the faults of the owner's core: the overlap counts and how many trials kept
    /// everything in place.
    core: Option<CoreFigures>,
}

/// The figures of `core-kill` and `core-stop`, summed over the trials.
#[derive(Default)]
struct CoreFigures {
    trials: usize,
    samples: usize,
    two_addresses: usize,
    two_apps: usize,
    /// Trials in which nothing stopped or moved.
    kept: usize,
    /// Trials after which the owner's next core logged `stopped_hard`.
    stopped_hard: usize,
    /// Trials in which another node held the address or ran the application at some sample
    /// (the group may come back: an admin move made to leave the coordinator pins it).
    moved: usize,
    /// Per trial in which the owner was emptied: from the fault to the first sample in which
    /// the owner held neither the address nor the application (µs).
    emptied: Vec<u64>,
    /// Per trial in which another node took over: from the owner's emptying to the first
    /// sample in which another node held the address or ran the application (µs).
    margins: Vec<u64>,
}

/// Set by SIGINT or SIGTERM: the current trial ends, and the namespaces, processes and files
/// are removed by the harness's Drop (a signal's default action would leave them behind).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Runs the benchmark; Err says why it could not.
pub fn run(trials: Option<usize>, faults: &[String], long_lease: bool) -> Result<(), String> {
    if let Some(why) = harness::unavailable() {
        return Err(format!("netns: {why}"));
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let eterned = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("eterned");
    if !eterned.exists() {
        return Err(format!(
            "{} not found: cargo build --release --bin eterned",
            eterned.display()
        ));
    }
    let mut results = Vec::new();
    for fault in faults {
        let n = trials.unwrap_or_else(|| default_trials(fault));
        let v = bench_fault(&eterned, fault, n, long_lease)?;
        results.push((fault.clone(), v));
    }
    let timing = if long_lease {
        "heartbeats 200 ms × 10 misses on 2 private bridges, [timing] lease 1500 ms, renew \
         200 ms, takeover margin 100 ms, stop budget 300 ms"
            .to_string()
    } else {
        format!(
            "heartbeats {} ms × {} misses on 2 private bridges, default [timing] (lease 150 ms, \
             renew 30 ms, takeover margin 40 ms, stop budget 60 ms)",
            harness::HB_INTERVAL_MS,
            harness::HB_MISSES
        )
    };
    println!(
        "\nnetns, 3 nodes in network namespaces, {timing}, probe every {} ms",
        EVERY.as_millis()
    );
    for (fault, mut m) in results {
        report(
            &format!(
                "outage seen by the client: {fault} ({} trials)",
                m.outages.len()
            ),
            &mut m.outages,
        );
        if let Some(mut f) = m.core {
            println!(
                "  {fault}: {} samples every {} ms of all 3 nodes: {} with two nodes holding {}, \
                 {} with two running the application; nothing stopped or moved in {} of {} \
                 trials (stopped hard in {}, another node held or ran them in {})",
                f.samples,
                OWNER_EVERY.as_millis(),
                f.two_addresses,
                harness::FLOATING,
                f.two_apps,
                f.kept,
                f.trials,
                f.stopped_hard,
                f.moved
            );
            report(&format!("  {fault}: fault → owner emptied"), &mut f.emptied);
            report(
                &format!("  {fault}: owner emptied → another node holds or runs"),
                &mut f.margins,
            );
        }
    }
    Ok(())
}

fn bench_fault(
    eterned: &Path,
    fault: &str,
    trials: usize,
    long_lease: bool,
) -> Result<Measured, String> {
    // Namespace names are short: "core-kill" → "bck".
    let tag: String = fault.split('-').filter_map(|w| w.chars().next()).collect();
    let net = Net::new(&format!("b{tag}"), 3, fault == "nic");
    let g = GroupOpts {
        nics: (fault == "nic").then(|| "pub0,pub1".to_string()),
        long_lease,
        ..GroupOpts::default()
    };
    let mut c = Cluster::namespaces(eterned.to_path_buf(), net, &g);
    c.start_all();
    c.wait_until("the cluster forms", |c| c.formed())?;
    c.wait_until("web runs", |c| c.on("web").is_some())?;
    if fault.starts_with("core-") {
        return bench_core(&c, fault, trials);
    }
    let mut outages = Vec::new();
    for trial in 0..trials {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted; namespaces and processes removed".into());
        }
        let owner = wait(|| c.on("web")).ok_or("web does not run")?;
        let oi = c.index(&owner);
        std::thread::sleep(SETTLE);
        let probe = Probe::start(&c.net().client, EVERY, TRIAL_MAX);
        c.wait_until("the client is answered", |_| {
            probe.samples().last().is_some_and(|(_, w)| w.is_some())
        })?;
        let at = probe.t0.elapsed();
        let holder = nic_holding(&c, oi);
        match fault {
            "crash" => c.crash(oi),
            "nic" => c.net().link(oi, &holder, false)?,
            "partition" => c.net().partition(oi, 100)?,
            "app" => {
                c.kill_app(oi, "web-app").ok_or("no application pid")?;
            }
            other => return Err(format!("unknown fault {other:?}")),
        }
        // Answered again: by another node, or (nic) by the same node once the address is on
        // its other NIC (an answer before the move is from before the fault took hold).
        let mut after = at;
        if fault == "nic" {
            c.wait_until("the address moves to the other NIC", |c| {
                nic_holding(c, oi) != holder
            })?;
            after = probe.t0.elapsed();
        }
        c.wait_until("the client is answered after the fault", |_| {
            probe.samples().iter().any(|(t, w)| {
                *t > after
                    && w.as_deref()
                        .is_some_and(|w| fault == "nic" || w != owner.as_str())
            })
        })?;
        let samples = probe.stop();
        let outage = harness::outage_after(&samples, at).ok_or("no answer after the fault")?;
        let now_on = samples
            .iter()
            .rev()
            .find_map(|(_, w)| w.clone())
            .unwrap_or_default();
        println!(
            "{fault} trial {:>2}: {owner}{} → answered by {now_on}, outage {:>7.1} ms",
            trial + 1,
            if fault == "nic" {
                format!(" ({holder} down)")
            } else {
                String::new()
            },
            outage.as_secs_f64() * 1000.0
        );
        outages.push(outage.as_micros() as u64);
        match fault {
            "crash" => c.reboot(oi),
            "nic" => c.net().link(oi, &holder, true)?,
            "partition" => c.net().heal(oi),
            _ => {}
        }
        c.wait_until("the cluster forms again", |c| c.formed())?;
        if fault == "app" {
            c.wait_until("web runs elsewhere", |c| {
                c.on("web").is_some_and(|n| n != owner)
            })?;
            let r = c.ask(
                oi,
                Request::Clear {
                    target: "web".into(),
                },
            );
            if !r.ok {
                return Err(format!("clear web: {}", r.message));
            }
        }
    }
    Ok(Measured {
        outages,
        core: None,
    })
}

/// `core-kill` and `core-stop`: `trials` faults of the owner's core in a row.
fn bench_core(c: &Cluster, fault: &str, trials: usize) -> Result<Measured, String> {
    let mut outages = Vec::new();
    let mut f = CoreFigures::default();
    let mut last_fault: Option<Instant> = None;
    for trial in 0..trials {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted; namespaces and processes removed".into());
        }
        c.wait_until("the cluster forms", |c| c.formed())?;
        let owner = c.owner_off_the_coordinator("web")?;
        let oi = c.index(&owner);
        c.wait_until("the owner runs the application", |c| {
            c.app_running(oi, APP).is_some()
        })?;
        std::thread::sleep(SETTLE);
        // The monitor gives up on a core that dies RESTART_LIMIT times within RESTART_WINDOW
        // (a crash loop): faults in a row are spaced so that this never counts, with room
        // for one more restart per window (a new core killed for a stop point it missed).
        if let Some(last) = last_fault {
            let spacing = RESTART_WINDOW / (RESTART_LIMIT as u32 - 1) + Duration::from_millis(200);
            std::thread::sleep(spacing.saturating_sub(last.elapsed()));
        }
        let before = c.running_on("web").ok_or("web does not run")?;
        let app = c.app_running(oi, APP).ok_or("no application pid")?;
        let core = c.core_pid(oi).ok_or("the owner has no core")?;
        let hard_before = c.events_named(oi, "stopped_hard").len();
        let probe = Probe::start(&c.net().client, EVERY, TRIAL_MAX);
        let watch = OwnerWatch::start(c, APP, probe.t0, OWNER_EVERY, TRIAL_MAX);
        c.wait_until("the client is answered", |_| {
            probe.samples().last().is_some_and(|(_, w)| w.is_some())
        })?;
        let at = probe.t0.elapsed();
        last_fault = Some(Instant::now());
        if fault == "core-kill" {
            signal(core, libc::SIGKILL);
            c.wait_until("the monitor starts a new core", |c| {
                c.core_pid(oi).is_some_and(|p| p != core) && c.status(oi).is_some()
            })?;
            std::thread::sleep(AFTER_CORE);
        } else {
            signal(core, libc::SIGSTOP);
            std::thread::sleep(PAUSE);
            signal(core, libc::SIGCONT);
        }
        // Whatever happened, the group runs again on one node and answers the client.
        let back = probe.t0.elapsed();
        c.wait_until("web runs with its application", |c| {
            c.running_on("web")
                .is_some_and(|(n, _)| c.app_running(c.index(&n), APP).is_some())
        })?;
        c.wait_until("the client is answered again", |_| {
            probe
                .samples()
                .iter()
                .any(|(t, w)| *t > back && w.is_some())
        })?;
        let samples = probe.stop();
        let seen = watch.stop();
        let outage = harness::outage_after(&samples, at).ok_or("no answer after the fault")?;
        let after = c.running_on("web");
        let kept = after.as_ref() == Some(&before)
            && c.app_running(oi, APP) == Some(app)
            && seen.kept_by(oi, app)
            && !seen.elsewhere_than(oi);
        let hard = c.events_named(oi, "stopped_hard").len() > hard_before;
        let now_on = after.map_or_else(|| "?".to_string(), |(n, _)| n);
        let emptied = seen
            .changes
            .iter()
            .find(|(t, o)| {
                *t > at && !o.address.contains(&oi) && o.app.iter().all(|&(j, _)| j != oi)
            })
            .map(|(t, _)| *t);
        let elsewhere = seen
            .changes
            .iter()
            .find(|(t, o)| {
                *t > at
                    && (o.address.iter().any(|&j| j != oi) || o.app.iter().any(|&(j, _)| j != oi))
            })
            .map(|(t, _)| *t);
        f.moved += usize::from(elsewhere.is_some());
        let unanswered = samples
            .iter()
            .filter(|(t, w)| *t > at && w.is_none())
            .count();
        let mut timeline = format!(", {unanswered} probes unanswered");
        if let Some(e) = emptied {
            f.emptied.push((e - at).as_micros() as u64);
            timeline += &format!(
                ", owner emptied at +{:.1} ms",
                (e - at).as_secs_f64() * 1000.0
            );
            if let Some(x) = elsewhere {
                f.margins.push(x.saturating_sub(e).as_micros() as u64);
                timeline += &format!(", elsewhere at +{:.1} ms", (x - at).as_secs_f64() * 1000.0);
            }
        }
        f.trials += 1;
        f.samples += seen.samples;
        f.two_addresses += seen.two_addresses;
        f.two_apps += seen.two_apps;
        f.kept += usize::from(kept);
        f.stopped_hard += usize::from(hard);
        println!(
            "{fault} trial {:>3}: {owner} → web on {now_on}, {}, {} samples, two holders {}, \
             two runners {}, outage {:>7.1} ms{timeline}",
            trial + 1,
            if kept {
                "nothing moved"
            } else {
                "stopped or moved"
            },
            seen.samples,
            seen.two_addresses,
            seen.two_apps,
            outage.as_secs_f64() * 1000.0
        );
        outages.push(outage.as_micros() as u64);
    }
    Ok(Measured {
        outages,
        core: Some(f),
    })
}

/// The NIC of node `i` that holds the floating address (pub0 if none).
fn nic_holding(c: &Cluster, i: usize) -> String {
    let out = harness::sh(&["ip", "-n", &c.net().nodes[i], "-o", "-4", "addr", "show"])
        .unwrap_or_default();
    out.lines()
        .find(|l| l.contains(&format!(" {}/", harness::FLOATING)))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("pub0")
        .to_string()
}
