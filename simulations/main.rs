//! `eterne-sim`: run the deterministic cluster simulator.
//!
//! - `eterne-sim --demo`: watch a simulated three-node cluster fail over, step by step.
//! - `eterne-sim --seeds 10000`: many seeded runs of mixed sizes with faults; a summary.
//! - `eterne-sim --seed 42`: one run (the replay command a violation prints).
//! - `eterne-sim --bench`: the 32-node, 100-group, 10-simulated-minute benchmark.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use eterne::policy::node::Faults;
use eterne::sim::{replay_command, run_seed, Report, Scenario, Shape, Sim, MAX_NODES};

#[derive(Parser, Debug)]
#[command(
    name = "eterne-sim",
    about = "EterneCluster's deterministic cluster simulator"
)]
struct Args {
    /// Run this many seeds (starting at --first-seed) and print a summary.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of a --seeds run.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Run one seed and print its trace tail.
    #[arg(long)]
    seed: Option<u64>,
    /// Resource-holding nodes (default: drawn from the seed; 2 to 7).
    #[arg(long)]
    nodes: Option<usize>,
    /// Resource groups (default: drawn from the seed).
    #[arg(long)]
    groups: Option<usize>,
    /// Simulated seconds per run (default 60, 120 for large clusters).
    #[arg(long)]
    seconds: Option<u64>,
    /// Force a witness on or off.
    #[arg(long)]
    witness: Option<bool>,
    /// No fault injection.
    #[arg(long)]
    no_faults: bool,
    /// Test-only: take over without waiting for the old owner's lease (must be caught as S1).
    #[arg(long)]
    break_skip_lease_wait: bool,
    /// Test-only: acknowledge raft log writes before they are durable (must be caught as LOG).
    #[arg(long)]
    break_ack_before_durable: bool,
    /// Test-only: the monitor process never stops anything hard when its core died or stalled
    /// (must be caught as S1).
    #[arg(long)]
    break_no_stop_hard: bool,
    /// Test-only: a two-node survivor goes on alone without fencing its silent peer (must be
    /// caught; with `--nodes 2 --witness false`, as S2: two diverged logs place one epoch).
    #[arg(long)]
    break_alone_unfenced: bool,
    /// Test-only: vote for a candidate whatever its cluster.toml (must be caught as CFG: a
    /// node whose file differs becomes coordinator).
    #[arg(long)]
    break_vote_any_config: bool,
    /// Watch a three-node cluster fail over, in readable lines.
    #[arg(long)]
    demo: bool,
    /// The 32-node, 100-group, 10-simulated-minute benchmark (prints its figures).
    #[arg(long)]
    bench: bool,
    /// With --seed: print the whole trace as it happens.
    #[arg(long)]
    verbose: bool,
    /// Worker threads for --seeds (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
}

fn main() {
    let args = Args::parse();
    if let Some(n) = args.nodes.filter(|&n| !(2..MAX_NODES).contains(&n)) {
        eprintln!("eterne-sim: --nodes {n}: a simulation runs 2 to {} resource-holding nodes (one more slot is kept for a witness)", MAX_NODES - 1);
        std::process::exit(2);
    }
    let shape = Shape {
        nodes: args.nodes,
        groups: args.groups,
        seconds: args.seconds,
        no_faults: args.no_faults,
        witness: args.witness,
    };
    let breaker = Faults {
        skip_lease_wait: args.break_skip_lease_wait,
        ack_before_durable: args.break_ack_before_durable,
        monitor_never_stops_hard: args.break_no_stop_hard,
        alone_unfenced: args.break_alone_unfenced,
        vote_any_config: args.break_vote_any_config,
    };
    let code = if args.demo {
        demo()
    } else if args.bench {
        bench(breaker)
    } else if let Some(seed) = args.seed {
        one(seed, shape, breaker, args.verbose)
    } else {
        many(
            args.first_seed,
            args.seeds.unwrap_or(100),
            shape,
            breaker,
            args.jobs,
        )
    };
    std::process::exit(code);
}

fn print_violation(r: &Report, shape: &Shape, breaker: Faults) {
    if let Some(v) = &r.violation {
        println!(
            "VIOLATION {} at step {} ({:.3} s simulated), seed {}:",
            v.rule,
            v.step,
            v.at_us as f64 / 1e6,
            r.seed
        );
        println!("  {}", v.detail);
        println!("  last events:");
        for line in &r.tail {
            println!("    {line}");
        }
        println!("  replay: {}", replay_command(r.seed, shape, breaker));
    }
}

fn one(seed: u64, shape: Shape, breaker: Faults, verbose: bool) -> i32 {
    let sc = Scenario::from_seed(seed, shape);
    println!(
        "seed {seed}: {} nodes ({}), {} groups, {} s simulated, faults {}",
        sc.spec.nodes.len(),
        sc.spec
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        sc.spec.groups.len(),
        sc.duration_us / 1_000_000,
        if sc.faults { "on" } else { "off" }
    );
    let started = Instant::now();
    let mut sim = Sim::new(sc, breaker);
    if verbose {
        sim.set_verbose(true);
        sim.echo = Some(|line| println!("{line}"));
    }
    let r = sim.run();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} steps, {} commits, {} failovers, {} faults, {} lost or torn log writes, {} state disks failed, {} snapshots taken, {} installed, trace digest {:016x}, {:.3} s real",
        r.steps, r.commits, r.failovers, r.faults, r.torn_writes, r.disk_failures, r.snapshots_taken,
        r.snapshots_installed, r.trace_digest, secs
    );
    if let Some(rec) = r.recovery_us {
        println!(
            "recovered {:.3} s after the faults stopped",
            rec as f64 / 1e6
        );
    }
    if r.violation.is_some() {
        print_violation(&r, &shape, breaker);
        return 1;
    }
    println!("no violation");
    0
}

fn many(first: u64, count: u64, shape: Shape, breaker: Faults, jobs: Option<usize>) -> i32 {
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicU64::new(first);
    let done = AtomicUsize::new(0);
    let node_us = AtomicU64::new(0);
    let worst_recovery = AtomicU64::new(0);
    let torn = AtomicU64::new(0);
    let disk_failed = AtomicU64::new(0);
    let snaps = (AtomicU64::new(0), AtomicU64::new(0));
    let failures: Mutex<Vec<Report>> = Mutex::new(Vec::new());
    let started = Instant::now();
    let end = first + count;
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let r = run_seed(seed, shape, breaker);
                node_us.fetch_add(
                    (r.sim_seconds * 1e6) as u64 * r.nodes as u64,
                    Ordering::Relaxed,
                );
                if let Some(rec) = r.recovery_us {
                    worst_recovery.fetch_max(rec, Ordering::Relaxed);
                }
                torn.fetch_add(r.torn_writes, Ordering::Relaxed);
                disk_failed.fetch_add(r.disk_failures, Ordering::Relaxed);
                snaps.0.fetch_add(r.snapshots_taken, Ordering::Relaxed);
                snaps.1.fetch_add(r.snapshots_installed, Ordering::Relaxed);
                if r.violation.is_some() {
                    if let Ok(mut f) = failures.lock() {
                        f.push(r);
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 10 == 0 || d as u64 == count {
                    progress(
                        d as u64,
                        count,
                        started.elapsed().as_secs_f64(),
                        failures.lock().map_or(0, |f| f.len()),
                    );
                }
            });
        }
    });
    eprintln!();
    let secs = started.elapsed().as_secs_f64();
    let failures = failures.into_inner().unwrap_or_default();
    let node_seconds = node_us.load(Ordering::Relaxed) as f64 / 1e6;
    for r in failures.iter().take(3) {
        print_violation(r, &shape, breaker);
    }
    println!(
        "seeds: {count}, violations: {}, simulated node-seconds: {:.0}, real seconds: {:.1}, throughput: {:.0} simulated node-seconds per real second, slowest recovery after faults: {:.2} s (bound {} s), raft log writes lost or torn at a crash: {}, state disks failed for a while: {}, snapshots taken: {}, installed from a coordinator: {}",
        failures.len(),
        node_seconds,
        secs,
        node_seconds / secs.max(1e-9),
        worst_recovery.load(Ordering::Relaxed) as f64 / 1e6,
        eterne::sim::RECOVERY_BOUND_US / 1_000_000,
        torn.load(Ordering::Relaxed),
        disk_failed.load(Ordering::Relaxed),
        snaps.0.load(Ordering::Relaxed),
        snaps.1.load(Ordering::Relaxed)
    );
    i32::from(!failures.is_empty())
}

fn progress(done: u64, total: u64, secs: f64, bad: usize) {
    let width = 40;
    let filled = (done * width / total.max(1)) as usize;
    let bar: String = "#".repeat(filled) + &"-".repeat(width as usize - filled);
    eprint!("\r[{bar}] {done}/{total} seeds, {bad} violations, {secs:.1} s");
    let _ = std::io::stderr().flush();
}

fn bench(breaker: Faults) -> i32 {
    let shape = Shape {
        nodes: Some(32),
        groups: Some(100),
        seconds: Some(600),
        no_faults: false,
        witness: Some(false),
    };
    let mut worst = 0.0f64;
    let mut total = 0.0;
    let runs = 5;
    println!("benchmark: 32 nodes, 100 groups, 600 simulated seconds with faults, {runs} seeds (release build recommended)");
    for seed in 1..=runs {
        let started = Instant::now();
        let r = run_seed(seed, shape, breaker);
        let secs = started.elapsed().as_secs_f64();
        worst = worst.max(secs);
        total += secs;
        println!(
            "seed {seed}: {:.3} s real for {:.0} simulated s ({} steps, {} commits, {} failovers, {} faults){}",
            secs,
            r.sim_seconds,
            r.steps,
            r.commits,
            r.failovers,
            r.faults,
            if r.violation.is_some() { " VIOLATION" } else { "" }
        );
        if r.violation.is_some() {
            print_violation(&r, &shape, breaker);
            return 1;
        }
    }
    println!(
        "32-node run: mean {:.3} s, worst {:.3} s real per 10 simulated minutes",
        total / runs as f64,
        worst
    );
    0
}

fn demo() -> i32 {
    println!(
        "A simulated three-node cluster (n1, n2, n3) with one group, web: web-ip, then web-fs,"
    );
    println!(
        "then web-app, each depending on the one before. web prefers n1, then n2, then n3, and"
    );
    println!(
        "fails back automatically. Times are simulated; #N is the consensus log index, which is"
    );
    println!("also the epoch (fencing token) of an activation.\n");
    println!(
        "The plot: at 3 s n1 crashes (back 4 s later), at 12 s web-app exits, at 18 s the node"
    );
    println!("running web is cut off from the network for 5 s.\n");
    let mut sim = Sim::new(Scenario::demo(), Faults::default());
    sim.set_verbose(true);
    sim.echo = Some(|line| println!("{line}"));
    let r = sim.run();
    println!(
        "\n{} commits, {} failovers, {} faults injected; {}",
        r.commits,
        r.failovers,
        r.faults,
        match &r.violation {
            None => "no safety violation".to_string(),
            Some(v) => format!("VIOLATION {}: {}", v.rule, v.detail),
        }
    );
    i32::from(r.violation.is_some())
}
