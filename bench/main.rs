//! `eterne-bench loopback --trials N`: failover on loopback, measured (on the cluster harness
//! of `tests/cluster`).
//! `eterne-bench boot [--entries N]`: what a start replays of the raft log after a long
//! history, with and without snapshots (see `boot.rs`).
//! `eterne-bench netns [--trials N] [--faults …] [--long-lease]`: the outage a client sees per
//! fault kind, in network namespaces, and for faults of the owner's core whether two nodes
//! ever held the address or ran the application (see `netns.rs`).
//!
//! Starts three `eterned` processes (the binary next to this one) on 127.90.x.y with real
//! QUIC, one group of one application (`sleep 1000`), then per trial `kill -9`s the daemon and
//! the application of the node running the group and reads the survivors' event logs:
//!
//! - **detection**: from the kill to the first `node_lost` event for that node on a survivor;
//! - **active again**: from the kill to the `group_status running` event on the new owner.
//!
//! The killed node is restarted between trials (failback is manual, so the group stays where
//! it went and the next trial kills that node). Times are wall-clock differences on one
//! machine. Prints min / p50 / p99 / max with the heartbeat settings used; asserts nothing.
//!
//! Build first: `cargo build --release --bin eterned --bin eterne-bench`, or run
//! `cargo run --release --bin eterne-bench -- loopback --trials 20` (which builds both).

mod boot;
#[path = "../tests/cluster/mod.rs"]
mod cluster;
mod netns;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cluster::namespaces::unix_us;
use cluster::Cluster;

const INTERVAL_MS: u32 = 50;
const MISSES: u32 = 4;
const WAIT: Duration = Duration::from_secs(30);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials = args
        .iter()
        .position(|a| a == "--trials")
        .and_then(|i| args.get(i + 1))
        .and_then(|t| t.parse::<usize>().ok());
    let result = match args.first().map(String::as_str) {
        Some("loopback") => run(trials.unwrap_or(20)),
        Some("boot") => {
            let entries = args
                .iter()
                .position(|a| a == "--entries")
                .and_then(|i| args.get(i + 1))
                .and_then(|t| t.parse::<u64>().ok());
            boot::run(entries.unwrap_or(1_000_000))
        }
        Some("netns") => {
            let faults: Vec<String> = args
                .iter()
                .position(|a| a == "--faults")
                .and_then(|i| args.get(i + 1))
                .map_or(
                    "crash,nic,partition,app,core-kill,core-stop",
                    String::as_str,
                )
                .split(',')
                .map(str::to_string)
                .collect();
            netns::run(trials, &faults, args.iter().any(|a| a == "--long-lease"))
        }
        _ => {
            eprintln!("usage: eterne-bench loopback [--trials N]\n       eterne-bench boot [--entries N]\n       eterne-bench netns [--trials N] [--faults crash,nic,partition,app,core-kill,core-stop] [--long-lease]   (root)\n       (netns without --trials: 100 trials of core-kill, 20 of every other kind)");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("eterne-bench: {e}");
        std::process::exit(1);
    }
}

fn run(trials: usize) -> Result<(), String> {
    let eterned = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("eterned");
    if !eterned.exists() {
        return Err(format!(
            "{} not found: cargo build --release --bin eterned",
            eterned.display()
        ));
    }
    let name = format!("bench-{}", std::process::id());
    let mut c = Cluster::loopback_with(eterned, &name, 1, |_| config_text());
    c.log_level = "warn";
    c.start_all();
    let mut detect_us = Vec::new();
    let mut active_us = Vec::new();
    for trial in 0..trials {
        let owner = wait(|| c.on("demo")).ok_or("the group never ran")?;
        wait(|| c.formed().then_some(())).ok_or("the cluster did not form")?;
        // Let the cluster settle (leases renewed) before the fault.
        std::thread::sleep(Duration::from_millis(500));
        let oi = c.index(&owner);
        let app = c.app_pid(oi, "bench-app");
        let t0 = unix_us();
        c.kill_daemon(oi);
        if let Some(pid) = app {
            // SAFETY: kill of the application's process group (pgid = pid).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let new_owner =
            wait(|| c.on("demo").filter(|n| *n != owner)).ok_or("the group did not fail over")?;
        let ni = c.index(&new_owner);
        let detected = (0..c.nodes.len())
            .filter(|i| *i != oi)
            .flat_map(|i| c.events_named(i, "node_lost"))
            .filter(|e| e["peer"] == owner.as_str())
            .filter_map(|e| e["unix_us"].as_u64())
            .filter(|t| *t > t0)
            .min()
            .ok_or("no node_lost event")?;
        let active = c
            .events_named(ni, "group_status")
            .into_iter()
            .filter(|e| e["status"] == "running")
            .filter_map(|e| e["unix_us"].as_u64())
            .filter(|t| *t > t0)
            .min()
            .ok_or("no running event")?;
        detect_us.push(detected - t0);
        active_us.push(active - t0);
        println!(
            "trial {:>2}: {owner} killed → detected {:>6.1} ms, active on {new_owner} {:>6.1} ms",
            trial + 1,
            (detected - t0) as f64 / 1000.0,
            (active - t0) as f64 / 1000.0
        );
        c.start(oi);
    }
    // The cluster's Drop kills the daemons and their applications and removes the files.
    drop(c);
    println!(
        "\nloopback, 3 nodes, 2 network paths, heartbeats {INTERVAL_MS} ms × {MISSES} misses, lease 150 ms, {} trials",
        detect_us.len()
    );
    report("detection (kill -9 → node_lost)", &mut detect_us);
    report("active on next node (kill -9 → running)", &mut active_us);
    Ok(())
}

/// Prints min / p50 / p99 / max of `v` (µs) in ms.
pub(crate) fn report(what: &str, v: &mut [u64]) {
    if v.is_empty() {
        return;
    }
    v.sort_unstable();
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    println!(
        "{what:<42} min {:>6.1} ms  p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        v[0] as f64 / 1000.0,
        pct(0.5),
        pct(0.99),
        v[v.len() - 1] as f64 / 1000.0
    );
}

/// Polls `f` every 20 ms until it gives a value, at most 30 s.
pub(crate) fn wait<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + WAIT;
    while Instant::now() < until {
        if let Some(t) = f() {
            return Some(t);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn config_text() -> String {
    let mut c = String::from("[cluster]\nname = \"bench\"\n\n");
    for (p, name) in ["lan", "backplane"].iter().enumerate() {
        let _ = writeln!(
            c,
            "[[path]]\nname = \"{name}\"\nkind = \"network\"\ninterval_ms = {INTERVAL_MS}\nmisses = {MISSES}\n"
        );
        let _ = p;
    }
    for n in 0..3 {
        let _ = writeln!(
            c,
            // Never `reboot`: a failed hard stop must not reboot the machine benchmarked on.
            "[[node]]\nname = \"n{}\"\naddresses = {{ lan = \"127.90.1.{}:7400\", backplane = \"127.91.1.{}:7400\" }}\non_stop_failure = \"exit\"\n",
            n + 1,
            n + 1,
            n + 1
        );
    }
    c.push_str("[[group]]\nname = \"demo\"\nnodes = [\"n1\", \"n2\", \"n3\"]\n\n  [[group.resource]]\n  name = \"bench-app\"\n  type = \"application\"\n  params = { command = \"sleep 1000\" }\n  start_timeout_ms = 5000\n  stop_timeout_ms = 3000\n");
    c
}
