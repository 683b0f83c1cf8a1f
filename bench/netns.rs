//! `eterne-bench netns --trials N [--faults crash,nic,partition,app]`: the outage a client
//! sees, per fault kind, on a real three-node cluster in network namespaces (the harness of
//! `tests/cluster` on its namespace network; root only).
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
//!
//! Times are wall-clock differences on one machine, printed with min / p50 / p99 / max;
//! nothing is asserted.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cluster::namespaces::{self as harness, GroupOpts, Net, Probe};
use crate::cluster::Cluster;
use eterne::control::Request;

use super::{report, wait};

/// The probe's period.
const EVERY: Duration = Duration::from_millis(2);
/// The most one trial's probe runs.
const TRIAL_MAX: Duration = Duration::from_secs(60);
/// Between two trials, once the cluster has formed again: leases renewed, ARP settled.
const SETTLE: Duration = Duration::from_millis(700);

/// Set by SIGINT or SIGTERM: the current trial ends, and the namespaces, processes and files
/// are removed by the harness's Drop (a signal's default action would leave them behind).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Runs the benchmark; Err says why it could not.
pub fn run(trials: usize, faults: &[String]) -> Result<(), String> {
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
        let v = bench_fault(&eterned, fault, trials)?;
        results.push((fault.clone(), v));
    }
    println!(
        "\nnetns, 3 nodes in network namespaces, heartbeats {} ms × {} misses on 2 private \
         bridges, default [timing] (lease 150 ms, renew 30 ms, takeover margin 40 ms, stop \
         budget 60 ms), probe every {} ms, {trials} trials per fault",
        harness::HB_INTERVAL_MS,
        harness::HB_MISSES,
        EVERY.as_millis()
    );
    for (fault, mut v) in results {
        report(&format!("outage seen by the client: {fault}"), &mut v);
    }
    Ok(())
}

fn bench_fault(eterned: &Path, fault: &str, trials: usize) -> Result<Vec<u64>, String> {
    let net = Net::new(&format!("b{fault}"), 3, fault == "nic");
    let g = GroupOpts {
        nics: (fault == "nic").then(|| "pub0,pub1".to_string()),
        ..GroupOpts::default()
    };
    let mut c = Cluster::namespaces(eterned.to_path_buf(), net, &g);
    c.start_all();
    c.wait_until("the cluster forms", |c| c.formed())?;
    c.wait_until("web runs", |c| c.on("web").is_some())?;
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
    Ok(outages)
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
