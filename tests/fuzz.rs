//! Every fuzz target for a short, fixed budget with a fixed seed (issue 10): no panic, no
//! broken round trip, no slow input. One test per target, so that they run side by side and a
//! failure names its target. The long runs and their figures are in docs/benchmarks.md
//! (`eterne-fuzz --target all --execs 1000000`).

use eterne::fuzz::{describe, run, select, Options};

/// Runs `name` for `execs` executions with the suite's seed and asserts it found nothing.
fn survives(name: &str, execs: u64) {
    let target = select(name).unwrap().remove(0);
    let opts = Options {
        execs,
        seed: 20261206,
        jobs: 1,
        // A debug build is many times slower than the release build the 1 s bound is for.
        slow_ms: 10_000,
        hang_ms: 60_000,
        crash_dir: Some(std::env::temp_dir().join("eterne-fuzz-crashes")),
        // Debug frames are several times larger than release ones (MessagePack nests up to
        // 1024 deep); the release runs use the daemon's 2 MiB.
        stack_bytes: 16 << 20,
    };
    let r = run(&*target, &opts);
    let shown: Vec<String> = r
        .findings
        .iter()
        .map(|f| describe(f, target.is_text()))
        .collect();
    assert_eq!(r.execs, execs, "{name}: every execution ran");
    assert_eq!(
        (r.crashes, r.slow),
        (0, 0),
        "{name}: findings:\n{}",
        shown.join("\n")
    );
    // The corpus is valid: its inputs are among the accepted.
    assert!(r.accepted > 0, "{name}: nothing accepted");
    eprintln!(
        "{name}: {} execs, {} accepted, {} kinds of refusal, slowest {:?}, {:.1} s",
        r.execs,
        r.accepted,
        r.kinds.len(),
        r.slowest,
        r.wall.as_secs_f64()
    );
}

/// A config goes through four parsers and the validator: a hundred times a wire message's
/// cost, hence the smaller budget.
#[test]
fn config_loader_and_validator() {
    survives("config", 1_000);
}

#[test]
fn wire_envelope() {
    survives("envelope", 20_000);
}

#[test]
fn raft_wire_decoder() {
    survives("raft", 20_000);
}

#[test]
fn log_entry_command() {
    survives("entry", 20_000);
}

#[test]
fn snapshot_state() {
    survives("snapshot", 20_000);
}

#[test]
fn control_request_parser() {
    survives("control", 20_000);
}

#[test]
fn disk_blocks() {
    survives("disk", 20_000);
}

/// The same seed makes the same inputs, whatever the number of jobs.
#[test]
fn a_run_is_replayed_from_its_seed() {
    for target in eterne::fuzz::targets::all() {
        for i in [0, 500, 12_345] {
            assert_eq!(
                eterne::fuzz::input_for(&*target, 7, i),
                eterne::fuzz::input_for(&*target, 7, i),
                "{} input {i}",
                target.name()
            );
        }
        let one = Options {
            execs: 300,
            seed: 7,
            jobs: 1,
            stack_bytes: 16 << 20,
            ..Options::default()
        };
        let two = Options {
            jobs: 2,
            ..one.clone()
        };
        let (a, b) = (run(&*target, &one), run(&*target, &two));
        assert_eq!(
            (a.accepted, a.kinds),
            (b.accepted, b.kinds),
            "{}",
            target.name()
        );
    }
}
