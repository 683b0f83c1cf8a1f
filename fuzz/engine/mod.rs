//! `eterne-fuzz`: seeded, structure-aware fuzzing on stable Rust of every decoder that reads
//! bytes someone else wrote: the config loader and validator, the wire envelope, the raft wire
//! decoder (and the log entry's command), the control request parser, and the disk blocks
//! (the disk path's header, slot records and pills, the `disk_lock` owner block and slots).
//!
//! No libFuzzer and no coverage: each [`Target`] brings a corpus of valid inputs (encoded from
//! real values, or the example configs), a generator of fresh valid values, and mutators that
//! know its format (MessagePack markers and lengths, TOML and JSON tokens and lines, CRC seals),
//! besides the byte-level ones every target shares ([`mutate`]). The oracle: no panic
//! (caught per input), decoding is total (a value or an error), the round trips the format
//! promises hold, and no input takes longer than a bound.
//!
//! Input `i` of a run is made from its own generator, seeded by (seed, `i`) alone: any input
//! is reproduced from the two numbers (`eterne-fuzz --target T --seed S --replay I`), and
//! the inputs of a run do not depend on how many jobs share it.
//!
//! - [`run`]: one target for a number of executions; a [`Report`].
//! - [`targets`]: the targets, one module each; [`targets::all`].
//! - [`mutate`], [`msgpack`], [`text`]: the mutators.

pub mod msgpack;
pub mod mutate;
pub mod targets;
pub mod text;

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::policy::rng::Rng;

/// What one execution made of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Decoded (and every property checked held).
    Accepted,
    /// Refused with an error of this kind (a short, stable name: the variant or the
    /// message's words before any detail).
    Refused(String),
}

/// A fuzz target: one decoder, its corpus and its mutators.
pub trait Target: Send + Sync {
    /// The name `--target` takes.
    fn name(&self) -> &'static str;
    /// Valid inputs to start from (never empty).
    fn seeds(&self) -> &[Vec<u8>];
    /// A fresh input from a random valid value, if the target can make one.
    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>>;
    /// One mutation of `input` that knows the format; `corpus` is there to splice from.
    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]);
    /// The longest input worth making.
    fn max_len(&self) -> usize;
    /// Runs the decoder on `input`: its outcome, or `Err` with what property broke.
    fn exec(&self, input: &[u8]) -> Result<Outcome, String>;
    /// Whether inputs are text (shown as text in reports).
    fn is_text(&self) -> bool {
        false
    }
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Executions in all.
    pub execs: u64,
    /// The run's seed.
    pub seed: u64,
    /// Threads sharing the executions.
    pub jobs: usize,
    /// An input slower than this is a finding.
    pub slow_ms: u64,
    /// An input still running after this stops the process (a hang), having saved it.
    pub hang_ms: u64,
    /// Where findings are saved (`None`: not saved).
    pub crash_dir: Option<PathBuf>,
    /// The stack of each worker thread (the daemon's tokio workers have 2 MiB).
    pub stack_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            execs: 100_000,
            seed: 1,
            jobs: 1,
            slow_ms: 1000,
            hang_ms: 30_000,
            crash_dir: None,
            stack_bytes: 2 << 20,
        }
    }
}

/// What kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// The decoder panicked.
    Panic,
    /// A property broke (a round trip, totality).
    Property,
    /// The input took longer than [`Options::slow_ms`].
    Slow,
}

/// One finding, with what reproduces it.
#[derive(Clone, Debug)]
pub struct Finding {
    /// What happened.
    pub kind: FindingKind,
    /// The target.
    pub target: &'static str,
    /// The run's seed.
    pub seed: u64,
    /// The input's number in the run.
    pub iteration: u64,
    /// The input.
    pub input: Vec<u8>,
    /// The panic's message and place, the broken property, or the time taken.
    pub message: String,
    /// Where it was saved, if it was.
    pub saved: Option<PathBuf>,
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Executions done.
    pub execs: u64,
    /// Inputs accepted.
    pub accepted: u64,
    /// Panics and broken properties.
    pub crashes: u64,
    /// Inputs slower than the bound.
    pub slow: u64,
    /// Distinct kinds of refusal seen, with how often.
    pub kinds: HashMap<String, u64>,
    /// The slowest input's time.
    pub slowest: Duration,
    /// The slowest input's number (replay it with `--replay`).
    pub slowest_iteration: u64,
    /// The whole run's wall time.
    pub wall: Duration,
    /// The first findings (at most [`MAX_FINDINGS`] kept).
    pub findings: Vec<Finding>,
}

impl Report {
    /// Nothing run yet on `target`.
    fn empty(target: &'static str) -> Report {
        Report {
            target,
            execs: 0,
            accepted: 0,
            crashes: 0,
            slow: 0,
            kinds: HashMap::new(),
            slowest: Duration::ZERO,
            slowest_iteration: 0,
            wall: Duration::ZERO,
            findings: Vec::new(),
        }
    }

    /// Executions per second of wall time.
    pub fn execs_per_s(&self) -> f64 {
        self.execs as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Findings kept per run (the rest are counted).
pub const MAX_FINDINGS: usize = 8;
/// Distinct refusal kinds kept per run.
const MAX_KINDS: usize = 4096;

/// The input numbered `iteration` of a run of `target` seeded with `seed`: a seed of the
/// corpus as it is (the first inputs), a fresh valid value, or a corpus entry mutated a few
/// times.
pub fn input_for(target: &dyn Target, seed: u64, iteration: u64) -> Vec<u8> {
    let corpus = target.seeds();
    if let Some(s) = corpus.get(iteration as usize) {
        return s.clone();
    }
    let mut x = seed;
    let mut rng = Rng::new(splitmix(&mut x) ^ iteration);
    if rng.chance(100_000) {
        if let Some(g) = target.generate(&mut rng) {
            return g;
        }
    }
    let mut input = corpus[rng.range(0, corpus.len() as u64) as usize].clone();
    let rounds = 1 << rng.range(0, 4);
    for _ in 0..rounds {
        if rng.chance(250_000) {
            mutate::bytes(&mut rng, &mut input, corpus);
        } else {
            target.mutate(&mut rng, &mut input, corpus);
        }
        input.truncate(target.max_len());
    }
    input
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

thread_local! {
    /// Set on a fuzz worker: the panic hook records the message here instead of printing.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that is silent on fuzz workers and records the
/// message and place there; on any other thread it defers to the hook it replaced.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let on_worker = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        *slot = Some(info.to_string());
                        true
                    }
                    None => false,
                }
            });
            if !on_worker {
                previous(info);
            }
        }));
    });
}

/// One worker's progress, read by the hang watch.
struct Progress {
    /// The input running (valid while `since_us` is non-zero).
    iteration: AtomicU64,
    /// When it started, µs after the run's start plus one; 0 while idle.
    since_us: AtomicU64,
}

/// Runs `target` for `opts.execs` executions on `opts.jobs` threads.
pub fn run(target: &dyn Target, opts: &Options) -> Report {
    install_hook();
    let start = Instant::now();
    let jobs = opts.jobs.max(1);
    let progress: Vec<Progress> = (0..jobs)
        .map(|_| Progress {
            iteration: AtomicU64::new(0),
            since_us: AtomicU64::new(0),
        })
        .collect();
    let done = AtomicBool::new(false);
    let merged = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let watch = scope.spawn(|| watch_hangs(target, opts, start, &progress, &done));
        let workers: Vec<_> = (0..jobs)
            .map(|job| {
                let (progress, merged) = (&progress[job], &merged);
                std::thread::Builder::new()
                    .name(format!("fuzz-{}-{job}", target.name()))
                    .stack_size(opts.stack_bytes)
                    .spawn_scoped(scope, move || {
                        let r = work(target, opts, job as u64, jobs as u64, start, progress);
                        merged.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                    })
                    .map_err(|e| format!("cannot start a fuzz worker: {e}"))
            })
            .collect();
        for w in workers {
            match w {
                Ok(h) => {
                    let _ = h.join();
                }
                Err(e) => eprintln!("{e}"),
            }
        }
        done.store(true, Ordering::Release);
        let _ = watch.join();
    });
    let mut report = Report::empty(target.name());
    report.wall = start.elapsed();
    for r in merged.into_inner().unwrap_or_else(|p| p.into_inner()) {
        report.execs += r.execs;
        report.accepted += r.accepted;
        report.crashes += r.crashes;
        report.slow += r.slow;
        if r.slowest > report.slowest {
            (report.slowest, report.slowest_iteration) = (r.slowest, r.slowest_iteration);
        }
        for (k, n) in r.kinds {
            if report.kinds.len() < MAX_KINDS || report.kinds.contains_key(&k) {
                *report.kinds.entry(k).or_default() += n;
            }
        }
        report.findings.extend(r.findings);
    }
    report.findings.sort_by_key(|f| f.iteration);
    report.findings.truncate(MAX_FINDINGS);
    for f in &mut report.findings {
        f.saved = save(opts, f);
    }
    report
}

/// The inputs of one job: `job`, `job + jobs`, `job + 2 jobs`, … below `opts.execs`.
fn work(
    target: &dyn Target,
    opts: &Options,
    job: u64,
    jobs: u64,
    start: Instant,
    progress: &Progress,
) -> Report {
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    let mut r = Report::empty(target.name());
    let slow = Duration::from_millis(opts.slow_ms);
    let mut i = job;
    while i < opts.execs {
        // A mutator that panics is the fuzzer's bug, not the target's; it is reported as a
        // finding all the same, so that it is fixed rather than hidden.
        let made = panic::catch_unwind(AssertUnwindSafe(|| input_for(target, opts.seed, i)));
        let Ok(input) = made else {
            r.crashes += 1;
            let message = CAUGHT
                .with(|c| c.borrow_mut().as_mut().and_then(Option::take))
                .unwrap_or_default();
            if r.findings.len() < MAX_FINDINGS {
                r.findings.push(Finding {
                    kind: FindingKind::Panic,
                    target: target.name(),
                    seed: opts.seed,
                    iteration: i,
                    input: Vec::new(),
                    message: format!("the fuzzer's own mutator panicked: {message}"),
                    saved: None,
                });
            }
            i += jobs;
            continue;
        };
        progress.iteration.store(i, Ordering::Relaxed);
        progress
            .since_us
            .store(start.elapsed().as_micros() as u64 + 1, Ordering::Release);
        let t0 = Instant::now();
        let got = panic::catch_unwind(AssertUnwindSafe(|| target.exec(&input)));
        let took = t0.elapsed();
        progress.since_us.store(0, Ordering::Release);
        r.execs += 1;
        if took > r.slowest {
            (r.slowest, r.slowest_iteration) = (took, i);
        }
        let mut finding = |kind, message| {
            if r.findings.len() < MAX_FINDINGS {
                r.findings.push(Finding {
                    kind,
                    target: target.name(),
                    seed: opts.seed,
                    iteration: i,
                    input: input.clone(),
                    message,
                    saved: None,
                });
            }
        };
        match got {
            Ok(Ok(Outcome::Accepted)) => r.accepted += 1,
            Ok(Ok(Outcome::Refused(kind))) => {
                if r.kinds.len() < MAX_KINDS || r.kinds.contains_key(&kind) {
                    *r.kinds.entry(kind).or_default() += 1;
                }
            }
            Ok(Err(broken)) => {
                r.crashes += 1;
                finding(FindingKind::Property, broken);
            }
            Err(_) => {
                r.crashes += 1;
                let message = CAUGHT
                    .with(|c| c.borrow_mut().as_mut().and_then(Option::take))
                    .unwrap_or_else(|| "panicked".to_string());
                finding(FindingKind::Panic, message);
            }
        }
        if took > slow {
            r.slow += 1;
            finding(FindingKind::Slow, format!("took {took:?} (bound {slow:?})"));
        }
        i += jobs;
    }
    CAUGHT.with(|c| *c.borrow_mut() = None);
    r
}

/// Stops the process if an input runs past [`Options::hang_ms`]: it cannot be interrupted,
/// so it is saved (made again from its seed and number) and reported first.
fn watch_hangs(
    target: &dyn Target,
    opts: &Options,
    start: Instant,
    progress: &[Progress],
    done: &AtomicBool,
) {
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        let now_us = start.elapsed().as_micros() as u64 + 1;
        for p in progress {
            let since = p.since_us.load(Ordering::Acquire);
            if since != 0 && now_us.saturating_sub(since) > opts.hang_ms * 1000 {
                let iteration = p.iteration.load(Ordering::Relaxed);
                let mut f = Finding {
                    kind: FindingKind::Slow,
                    target: target.name(),
                    seed: opts.seed,
                    iteration,
                    input: input_for(target, opts.seed, iteration),
                    message: format!("still running after {} ms: a hang", opts.hang_ms),
                    saved: None,
                };
                f.saved = save(opts, &f);
                eprintln!("{}", describe(&f, target.is_text()));
                std::process::exit(3);
            }
        }
    }
}

/// Saves a finding's input under the crash directory; its path, if written.
fn save(opts: &Options, f: &Finding) -> Option<PathBuf> {
    let dir = opts.crash_dir.as_ref()?;
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!(
        "{}-{:?}-seed{}-iter{}.bin",
        f.target, f.kind, f.seed, f.iteration
    ));
    std::fs::write(&path, &f.input).ok()?;
    Some(path)
}

/// A finding in a few lines: what, the replay command, the input (text or hex, cut).
pub fn describe(f: &Finding, text: bool) -> String {
    let shown = if text {
        let t = String::from_utf8_lossy(&f.input);
        let cut: String = t.chars().take(2000).collect();
        format!("{cut:?}")
    } else {
        let hex: String = f
            .input
            .iter()
            .take(512)
            .map(|b| format!("{b:02x}"))
            .collect();
        hex
    };
    let saved = f
        .saved
        .as_ref()
        .map(|p| format!("\n  saved: {}", p.display()))
        .unwrap_or_default();
    format!(
        "{:?} in {}: {}\n  replay: eterne-fuzz --target {} --seed {} --replay {}\n  input ({} bytes): {shown}{saved}",
        f.kind,
        f.target,
        f.message,
        f.target,
        f.seed,
        f.iteration,
        f.input.len()
    )
}

/// The kind of a refusal from its message: the words before the first quote, backquote,
/// digit or colon-space, at most 60 characters (a stable name for counting kinds).
pub fn kind_of(message: &str) -> String {
    let end = message
        .char_indices()
        .find(|&(_, c)| c == '"' || c == '`' || c == '\'' || c.is_ascii_digit() || c == '\n')
        .map_or(message.len(), |(i, _)| i);
    let head = message[..end].trim_end();
    head.chars().take(60).collect()
}

/// Every target by name, `all` for all of them.
pub fn select(name: &str) -> Result<Vec<Arc<dyn Target>>, String> {
    let all = targets::all();
    if name == "all" {
        return Ok(all);
    }
    let names: Vec<&str> = all.iter().map(|t| t.name()).collect();
    all.iter()
        .find(|t| t.name() == name)
        .cloned()
        .map(|t| vec![t])
        .ok_or_else(|| format!("no target {name:?}; targets: all, {}", names.join(", ")))
}
