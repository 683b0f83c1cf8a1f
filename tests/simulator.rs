//! The deterministic simulator as a test (design.md §10.2): a few hundred seeded runs across
//! cluster sizes, with and without witness, all faults on; replay by seed; and a rule breaker
//! that the checker must catch.
//!
//! A failing seed prints the exact `eterne-sim` command that replays it.

use eterne::policy::node::Faults;
use eterne::sim::{replay_command, run_seed, Report, Scenario, Shape, Sim};

/// Run `count` seeds from `first` with `shape`, two at a time, and fail on any violation.
fn sweep(first: u64, count: u64, shape: Shape) {
    let reports: Vec<Report> = std::thread::scope(|s| {
        let halves = [
            (first, first + count / 2),
            (first + count / 2, first + count),
        ];
        let handles: Vec<_> = halves
            .iter()
            .map(|&(a, b)| {
                s.spawn(move || {
                    (a..b)
                        .map(|seed| run_seed(seed, shape, Faults::default()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a simulator thread panicked"))
            .collect()
    });
    assert_eq!(reports.len() as u64, count);
    let bad: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            r.violation.as_ref().map(|v| {
                format!(
                    "seed {}: {} at {:.3} s: {}\n  replay: {}",
                    r.seed,
                    v.rule,
                    v.at_us as f64 / 1e6,
                    v.detail,
                    replay_command(r.seed, &shape, Faults::default())
                )
            })
        })
        .collect();
    assert!(bad.is_empty(), "violations:\n{}", bad.join("\n"));
    // Every run injected faults and recovered from them within the bound (L1 passed).
    assert!(reports
        .iter()
        .all(|r| r.faults > 0 && r.recovery_us.is_some()));
}

fn shape(nodes: usize, witness: bool) -> Shape {
    Shape {
        nodes: Some(nodes),
        witness: Some(witness),
        ..Shape::default()
    }
}

#[test]
fn two_nodes_with_witness() {
    sweep(1_000, 60, shape(2, true));
}

/// Two nodes without a witness: without fencing they never fail over across a partition
/// (no quorum); with a fencing device (half of the seeds, `simulations/sim/fence.rs`) the
/// survivor fences its peer and goes on alone. Every run stays safe and recovers.
#[test]
fn two_nodes_without_witness_fail_over_only_by_fencing() {
    sweep(2_000, 60, shape(2, false));
}

/// Two nodes with a fencing device and no witness: in some seeds a survivor fences its
/// silent peer, commits `Solo` and runs the peer's groups (docs/architecture.md §6).
#[test]
fn a_two_node_survivor_fences_its_peer_and_goes_on_alone() {
    let (mut alone, mut taken_over) = (0, 0);
    for seed in 2_000..2_060u64 {
        let mut sim = Sim::new(
            Scenario::from_seed(seed, shape(2, false)),
            Faults::default(),
        );
        sim.set_verbose(true);
        let r = sim.run();
        assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
        let solo = r.tail.iter().position(|l| l.contains(" Solo {"));
        alone += usize::from(solo.is_some());
        taken_over += usize::from(solo.is_some_and(|i| {
            r.tail[i..]
                .iter()
                .any(|l| l.contains("activate") && l.contains("Failure"))
        }));
    }
    assert!(alone >= 3, "only {alone} of 60 seeds went on alone");
    assert!(taken_over >= 1, "no survivor ever took a group over");
}

/// Go on alone without fencing the peer first, and both nodes of a partition run the same
/// groups: the checker must catch it for some seed, and the same seed is clean with fencing.
#[test]
fn going_alone_without_a_fence_is_caught() {
    let breaker = Faults {
        alone_unfenced: true,
        ..Faults::default()
    };
    caught_in(2_000..=2_300, shape(2, false), breaker, "S2");
}

/// Vote for any candidate whatever its file, and a node restarted with a `cluster.toml` of its
/// own becomes coordinator for some seed (or starts what it may not): caught as CFG, and the
/// same seed is clean with the vote checked.
#[test]
fn voting_for_a_node_with_another_file_is_caught() {
    let breaker = Faults {
        vote_any_config: true,
        ..Faults::default()
    };
    caught(1..=100, breaker, "CFG");
}

#[test]
fn three_nodes() {
    sweep(3_000, 80, shape(3, false));
}

#[test]
fn five_nodes_with_and_without_witness() {
    sweep(5_000, 40, shape(5, false));
    sweep(5_500, 30, shape(5, true));
}

#[test]
fn mixed_sizes_drawn_from_the_seed() {
    sweep(1, 60, Shape::default());
}

#[test]
fn thirty_two_nodes() {
    let s = Shape {
        nodes: Some(32),
        groups: Some(40),
        seconds: Some(50),
        witness: Some(false),
        no_faults: false,
    };
    sweep(32_000, 4, s);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [3, 17, 42] {
        let a = run_seed(seed, Shape::default(), Faults::default());
        let b = run_seed(seed, Shape::default(), Faults::default());
        assert_eq!(
            a.trace_digest, b.trace_digest,
            "seed {seed} is not deterministic"
        );
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.commits, b.commits);
    }
    let a = run_seed(3, Shape::default(), Faults::default());
    let c = run_seed(4, Shape::default(), Faults::default());
    assert_ne!(
        a.trace_digest, c.trace_digest,
        "different seeds, same trace"
    );
}

#[test]
fn verbosity_does_not_change_the_trace() {
    let quiet = Sim::new(Scenario::from_seed(11, Shape::default()), Faults::default()).run();
    let mut sim = Sim::new(Scenario::from_seed(11, Shape::default()), Faults::default());
    sim.set_verbose(true);
    let loud = sim.run();
    assert_eq!(quiet.trace_digest, loud.trace_digest);
}

/// The first seed of `seeds` for which `breaker` is caught breaking `rule`, with its report;
/// fails unless that seed is clean without the breaker (the breaker, not the seed, is caught).
fn caught(seeds: std::ops::RangeInclusive<u64>, breaker: Faults, rule: &str) -> (u64, Report) {
    caught_in(seeds, Shape::default(), breaker, rule)
}

/// [`caught`] for scenarios of `shape`.
fn caught_in(
    seeds: std::ops::RangeInclusive<u64>,
    shape: Shape,
    breaker: Faults,
    rule: &str,
) -> (u64, Report) {
    let (first, last) = (*seeds.start(), *seeds.end());
    let (seed, r) = seeds
        .map(|seed| (seed, run_seed(seed, shape, breaker)))
        .find(|(_, r)| r.violation.as_ref().is_some_and(|v| v.rule == rule))
        .unwrap_or_else(|| panic!("no seed in {first}..={last} caught {breaker:?} as {rule}"));
    let clean = run_seed(seed, shape, Faults::default());
    assert!(
        clean.violation.is_none(),
        "seed {seed} fails without the breaker too: {:?}",
        clean.violation
    );
    (seed, r)
}

/// A checker that cannot fail is no checker: take over without waiting for the old owner's
/// lease, and the simulator must report two active nodes (S1) for some seed; the same seed
/// without the breaker is clean.
#[test]
fn taking_over_before_the_lease_ran_out_is_caught_as_s1() {
    let breaker = Faults {
        skip_lease_wait: true,
        ..Faults::default()
    };
    let (_, r) = caught(1..=300, breaker, "S1");
    let detail = r.violation.map(|v| v.detail).unwrap_or_default();
    assert!(detail.contains(" active on "), "{detail}");
}

/// The monitor process is what keeps a node's promise when its core dies or stalls: switch its
/// hard stop off, and a core crash or pause with exclusive resources up must be caught as S1
/// for some seed (the trace shows the monitor standing by); the same seed is clean with it.
#[test]
fn a_monitor_that_never_stops_hard_is_caught_as_s1() {
    let breaker = Faults {
        monitor_never_stops_hard: true,
        ..Faults::default()
    };
    let (seed, r) = caught(1..=100, breaker, "S1");
    assert!(
        r.tail
            .iter()
            .any(|l| l.contains("would stop everything hard")),
        "seed {seed}: caught, but not after the monitor stood by: {:#?}",
        r.tail
    );
}

/// A node tells another only what its disk holds: acknowledge raft log writes (appends
/// accepted, votes granted) before they are durable, and the checker must report DURABLE, on
/// the first seed it tries; the same seed with acknowledgements after the write is clean.
/// (What such a breach costs later, a committed entry lost at a crash and its index reused,
/// shows as LOG only about once in 4,000 seeds since a coordinator catches up a follower that
/// lost entries it acknowledged; the direct rule does not wait for that.)
#[test]
fn acknowledging_a_log_write_before_it_is_durable_is_caught_as_durable() {
    let breaker = Faults {
        ack_before_durable: true,
        ..Faults::default()
    };
    let (seed, r) = caught(1..=1, breaker, "DURABLE");
    let detail = r.violation.map(|v| v.detail).unwrap_or_default();
    assert!(
        detail.contains("before its disk held it") || detail.contains("on its disk"),
        "seed {seed}: {detail}"
    );
}

/// Seeds that once broke a rule, kept as regressions (the fix is named beside each).
#[test]
fn seeds_that_once_failed() {
    // S1: a coordinator took a stale "Stopped" (sent during a lease lapse, before the owner
    // started again) as confirmation of a later stop. Fixed: only a report made after the
    // owner applied the stop confirms it.
    let seed = 1647;
    let r = run_seed(seed, Shape::default(), Faults::default());
    assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
    // L1 (with fencing): a node refused leases while it was fenced was allowed again inside a
    // pass whose liveness view still counted it out, and nothing asked for another pass, so
    // a group that could only run there stayed down. Fixed: allowing a node marks the
    // coordinator dirty.
    let seed = 2943;
    let r = run_seed(seed, Shape::default(), Faults::default());
    assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
    // S1 (two nodes with fencing): the survivor's state disk failed right after its fence of
    // the peer succeeded, so its Solo committed seconds later; the fenced peer had rebooted
    // meanwhile and was granted a lease by the survivor, and started a group the Solo's
    // takeover started on the survivor too. Fixed: a peer left out after its fence gets no
    // lease until it is taken back.
    let seed = 9252;
    let r = run_seed(seed, Shape::default(), Faults::default());
    assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
    // 3056: a follower sent a snapshot while its disk failed held an election, and raft-rs
    // stopped the process over the entries the snapshot replaced (a panic, not a violation).
    // Fixed: no election while a leader's snapshot is being written.
    let r = run_seed(3056, shape(3, false), Faults::default());
    assert!(r.violation.is_none(), "seed 3056: {:?}", r.violation);
}

/// The demo tells a story with a failover, a local restart and a failback, and stays safe.
#[test]
fn the_demo_fails_over_and_back() {
    let mut sim = Sim::new(Scenario::demo(), Faults::default());
    sim.set_verbose(true);
    let r = sim.run();
    assert!(r.violation.is_none(), "{:?}", r.violation);
    let text = r.tail.join("\n");
    assert!(
        text.contains("activate web on n2") && text.contains("Failure"),
        "{text}"
    );
    assert!(text.contains("local restart of web-app"), "{text}");
    assert!(
        text.contains("activate web on n1") && text.contains("Failback"),
        "{text}"
    );
}

/// A third of the seeds with quorum run with a fencing device: their silent owners are
/// fenced (the device succeeds, fails or hangs, see `simulations/sim/fence.rs`), a success
/// power cycles the target in world truth, and every run stays safe and recovers.
#[test]
fn fencing_runs_in_the_mix_and_stays_safe() {
    let (mut fenced_runs, mut power_cycles) = (0, 0);
    for seed in 1..=60u64 {
        let mut sim = Sim::new(
            Scenario::from_seed(seed, Shape::default()),
            Faults::default(),
        );
        sim.set_verbose(true);
        let r = sim.run();
        assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
        assert!(r.recovery_us.is_some(), "seed {seed} did not recover");
        fenced_runs += usize::from(r.tail.iter().any(|l| l.contains(" fences ")));
        power_cycles += r
            .tail
            .iter()
            .filter(|l| l.contains("fenced: power cycled"))
            .count();
    }
    assert!(fenced_runs >= 3, "only {fenced_runs} of 60 seeds fenced");
    assert!(power_cycles >= 1, "no fence ever powered a node off");
}
