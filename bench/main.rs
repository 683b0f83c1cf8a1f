//! `eterne-bench loopback --trials N`: failover on loopback, measured.
//! `eterne-bench netns --trials N`: the outage a client sees per fault kind, in network
//! namespaces (see `netns.rs`).
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

mod netns;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eterne::control::Status;
use eterne::transport::certs;
use netns::cluster::support;

const INTERVAL_MS: u32 = 50;
const MISSES: u32 = 4;
const WAIT: Duration = Duration::from_secs(30);

struct Node {
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    fn status(&self) -> Option<Status> {
        support::status(&self.socket())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials = args
        .iter()
        .position(|a| a == "--trials")
        .and_then(|i| args.get(i + 1))
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(20);
    let result = match args.first().map(String::as_str) {
        Some("loopback") => run(trials),
        Some("netns") => {
            let faults: Vec<String> = args
                .iter()
                .position(|a| a == "--faults")
                .and_then(|i| args.get(i + 1))
                .map_or("crash,nic,partition,app", String::as_str)
                .split(',')
                .map(str::to_string)
                .collect();
            netns::run(trials, &faults)
        }
        _ => {
            eprintln!("usage: eterne-bench loopback [--trials N]\n       eterne-bench netns [--trials N] [--faults crash,nic,partition,app]   (root)");
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
    let dir = std::env::temp_dir().join(format!("eterne-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tls = dir.join("tls");
    certs::init_ca(&tls, false).map_err(|e| e.to_string())?;
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let name = format!("n{i}");
        certs::issue_node_cert(&tls, &name, false).map_err(|e| e.to_string())?;
        nodes.push(Node {
            dir: dir.join(&name),
            name,
            child: None,
        });
    }
    let config = dir.join("cluster.toml");
    std::fs::write(&config, config_text()).map_err(|e| e.to_string())?;
    let start = |n: &mut Node| -> Result<(), String> {
        std::fs::create_dir_all(&n.dir).map_err(|e| e.to_string())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.dir.join("eterned.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new(&eterned)
            .arg("--config")
            .arg(&config)
            .arg("--node")
            .arg(&n.name)
            .arg("--state-dir")
            .arg(n.dir.join("state"))
            .arg("--tls-dir")
            .arg(&tls)
            .arg("--run-dir")
            .arg(n.dir.join("run"))
            .arg("--control-socket")
            .arg(n.socket())
            .arg("--events")
            .arg(n.events())
            .env("ETERNE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        n.child = Some(child);
        Ok(())
    };
    for n in nodes.iter_mut() {
        start(n)?;
    }
    let mut detect_us = Vec::new();
    let mut active_us = Vec::new();
    let result = (|| -> Result<(), String> {
        for trial in 0..trials {
            let owner = wait(|| running_on(&nodes)).ok_or("the group never ran")?;
            wait(|| formed(&nodes).then_some(())).ok_or("the cluster did not form")?;
            // Let the cluster settle (leases renewed) before the fault.
            std::thread::sleep(Duration::from_millis(500));
            let oi = nodes.iter().position(|n| n.name == owner).ok_or("owner")?;
            let app = app_pid(&nodes[oi].dir);
            let t0 = unix_us();
            if let Some(mut c) = nodes[oi].child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(pid) = app {
                // SAFETY: kill of the application's process group (pgid = pid).
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let new_owner = wait(|| running_on(&nodes).filter(|n| *n != owner))
                .ok_or("the group did not fail over")?;
            let ni = nodes
                .iter()
                .position(|n| n.name == new_owner)
                .ok_or("new")?;
            let detected = nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != oi)
                .flat_map(|(_, n)| events(&n.events()))
                .filter(|e| e["event"] == "node_lost" && e["peer"] == owner.as_str())
                .filter_map(|e| e["unix_us"].as_u64())
                .filter(|t| *t > t0)
                .min()
                .ok_or("no node_lost event")?;
            let active = events(&nodes[ni].events())
                .into_iter()
                .filter(|e| e["event"] == "group_status" && e["status"] == "running")
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
            start(&mut nodes[oi])?;
        }
        Ok(())
    })();
    for n in nodes.iter_mut() {
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(pid) = app_pid(&n.dir) {
            // SAFETY: as above.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
    result?;
    println!(
        "\nloopback, 3 nodes, 2 network paths, heartbeats {INTERVAL_MS} ms × {MISSES} misses, lease 150 ms, {} trials",
        detect_us.len()
    );
    report("detection (kill -9 → node_lost)", &mut detect_us);
    report("active on next node (kill -9 → running)", &mut active_us);
    let _ = std::fs::remove_dir_all(&dir);
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

fn running_on(nodes: &[Node]) -> Option<String> {
    nodes
        .iter()
        .filter(|n| n.child.is_some())
        .find_map(|n| support::running_here(&n.status()?, "demo").map(|(node, _)| node))
}

fn formed(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| {
        n.child.is_some()
            && n.status()
                .is_some_and(|s| s.leader.is_some() && s.nodes.iter().all(|v| v.alive))
    })
}

fn app_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("run").join("bench-app.pid")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    support::read_events(path)
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
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
            "[[node]]\nname = \"n{}\"\naddresses = {{ lan = \"127.90.1.{}:7400\", backplane = \"127.91.1.{}:7400\" }}\n",
            n + 1,
            n + 1,
            n + 1
        );
    }
    c.push_str("[[group]]\nname = \"demo\"\nnodes = [\"n1\", \"n2\", \"n3\"]\n\n  [[group.resource]]\n  name = \"bench-app\"\n  type = \"application\"\n  params = { command = \"sleep 1000\" }\n  start_timeout_ms = 5000\n  stop_timeout_ms = 3000\n");
    c
}
