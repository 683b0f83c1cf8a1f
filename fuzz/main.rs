//! `eterne-fuzz`: seeded, structure-aware fuzzing of the decoders (see `fuzz/engine/mod.rs`).
//!
//! - `eterne-fuzz --target all --execs 1000000`: every target, a line of figures each.
//! - `eterne-fuzz --target envelope --seed 7 --jobs 2`: one target on two threads.
//! - `eterne-fuzz --target config --seed 7 --replay 123`: input 123 of seed 7, shown and run
//!   on this thread, so a panic prints its backtrace (the command a finding prints).
//!
//! Exits 1 if any target had a finding (a panic, a broken property, an input slower than
//! `--slow-ms`), 3 on a hang (an input still running after `--hang-ms`), 2 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use eterne::fuzz::{describe, input_for, run, select, Options};

#[derive(Parser, Debug)]
#[command(
    name = "eterne-fuzz",
    about = "EterneCluster's seeded, structure-aware fuzzer"
)]
struct Args {
    /// The target: config, envelope, raft, entry, control, disk, or all.
    #[arg(long, default_value = "all")]
    target: String,
    /// Executions per target.
    #[arg(long, default_value_t = 100_000)]
    execs: u64,
    /// The run's seed (input i of a target depends on the seed and i only).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads per target.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// An input slower than this (ms) is a finding.
    #[arg(long, default_value_t = 1000)]
    slow_ms: u64,
    /// An input still running after this (ms) is saved and the process stops (exit 3).
    #[arg(long, default_value_t = 30_000)]
    hang_ms: u64,
    /// Where findings' inputs are saved.
    #[arg(long, default_value = "fuzz-crashes")]
    crash_dir: PathBuf,
    /// Each worker's stack, KiB (the daemon's tokio workers have 2048).
    #[arg(long, default_value_t = 2048)]
    stack_kib: usize,
    /// Show and run input number N of the seed instead of a run.
    #[arg(long)]
    replay: Option<u64>,
    /// Run the input saved in this file (a finding under --crash-dir) instead of a run.
    #[arg(long)]
    input: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let targets = match select(&args.target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("eterne-fuzz: {e}");
            return ExitCode::from(2);
        }
    };
    if args.replay.is_some() || args.input.is_some() {
        // On a worker's stack, so that a replay overflows where the run did.
        let stack = args.stack_kib * 1024;
        let run = std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || replay(&args, &targets));
        return match run.map(|h| h.join()) {
            Ok(Ok(code)) => code,
            Ok(Err(_)) => ExitCode::from(1),
            Err(e) => {
                eprintln!("eterne-fuzz: cannot start the replay thread: {e}");
                ExitCode::from(2)
            }
        };
    }
    let opts = Options {
        execs: args.execs,
        seed: args.seed,
        jobs: args.jobs,
        slow_ms: args.slow_ms,
        hang_ms: args.hang_ms,
        crash_dir: Some(args.crash_dir.clone()),
        stack_bytes: args.stack_kib * 1024,
    };
    println!(
        "{:<9} {:>10} {:>9} {:>7} {:>5} {:>11} {:>6} {:>10} {:>10} {:>9}",
        "target",
        "execs",
        "accepted",
        "crashes",
        "slow",
        "execs/s",
        "kinds",
        "slowest",
        "(input)",
        "wall"
    );
    let mut failed = false;
    for t in &targets {
        let r = run(&**t, &opts);
        println!(
            "{:<9} {:>10} {:>9} {:>7} {:>5} {:>11.0} {:>6} {:>10.1?} {:>10} {:>8.1}s",
            r.target,
            r.execs,
            r.accepted,
            r.crashes,
            r.slow,
            r.execs_per_s(),
            r.kinds.len(),
            r.slowest,
            r.slowest_iteration,
            r.wall.as_secs_f64()
        );
        for f in &r.findings {
            println!("{}", describe(f, t.is_text()));
        }
        failed |= r.crashes > 0 || r.slow > 0;
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Shows and runs one input: number `--replay` of `--seed`, or the file `--input`.
fn replay(args: &Args, targets: &[std::sync::Arc<dyn eterne::fuzz::Target>]) -> ExitCode {
    for t in targets {
        let (input, what) = match (&args.input, args.replay) {
            (Some(path), _) => match std::fs::read(path) {
                Ok(b) => (b, path.display().to_string()),
                Err(e) => {
                    eprintln!("eterne-fuzz: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
            (None, i) => {
                let i = i.unwrap_or(0);
                (
                    input_for(&**t, args.seed, i),
                    format!("seed {} input {i}", args.seed),
                )
            }
        };
        let shown = if t.is_text() {
            let text = String::from_utf8_lossy(&input);
            format!("{:?}", text.chars().take(4000).collect::<String>())
        } else {
            input
                .iter()
                .take(2048)
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        println!("{} {what} ({} bytes): {shown}", t.name(), input.len());
        let started = std::time::Instant::now();
        let got = t.exec(&input);
        println!("  → {got:?} in {:?}", started.elapsed());
        if got.is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
