//! `failure_timeout_ms` (Pacemaker's `failure-timeout`): a node's failure count of a group is
//! forgotten once it has not grown for that long, and the node may host the group again;
//! with 0 it stays until an administrator clears it. Node cores on a virtual clock
//! (`tests/support/cores.rs`).

mod support;

use eterne::policy::message::{Event, Input};
use eterne::policy::state::{Command, Phase};
use support::cores::{spec_of, Cores, THREE_NODES_WEB};

fn owner(net: &Cores) -> usize {
    let g = &net.core(0).state().groups[0];
    g.instances
        .iter()
        .find(|i| i.phase == Phase::Active)
        .map(|i| usize::from(i.node))
        .expect("web is placed")
}

/// web fails on its owner past its restarts (none allowed), so it moves; the count stays on
/// the old owner for `timeout_ms` and (with a timeout) is gone by `timeout_ms` and a margin.
fn fail_and_watch(timeout_ms: u64) -> (usize, Vec<u32>, Vec<u32>, bool) {
    let toml = THREE_NODES_WEB.replace(
        "nodes = [\"n1\", \"n2\", \"n3\"]",
        &format!(
            "nodes = [\"n1\", \"n2\", \"n3\"]\nmax_restarts = 0\nfailure_timeout_ms = {timeout_ms}"
        ),
    );
    let spec = spec_of(&toml);
    let mut net = Cores::new(vec![spec.clone(), spec.clone(), spec], 5);
    net.run(6_000_000);
    let first = owner(&net);
    let now = net.now;
    net.core_mut(first).handle(
        Input::ResourceFailed {
            group: 0,
            resource: 0,
            reason: "its process exited".into(),
        },
        now,
    );
    net.effects(first);
    net.run(net.now + 2_000_000);
    assert_ne!(owner(&net), first, "web moved off the node where it failed");
    let before: Vec<u32> = (0..3)
        .map(|i| net.core(i).state().groups[0].failures[first])
        .collect();
    net.run(now + timeout_ms.max(10_000) * 1000 + 3_000_000);
    let after: Vec<u32> = (0..3)
        .map(|i| net.core(i).state().groups[0].failures[first])
        .collect();
    // Under its own name in the log (and so in every node's events), not as an admin's.
    let named = net.events.iter().all(|ev| {
        ev.iter().any(|e| {
            matches!(e, Event::Committed { cmd: Command::FailuresExpired { group: 0, node }, .. }
                if usize::from(*node) == first)
        })
    });
    (first, before, after, named)
}

#[test]
fn a_failure_count_is_forgotten_after_its_timeout_and_kept_without_one() {
    let (_, before, after, named) = fail_and_watch(5_000);
    assert_eq!(
        before,
        [1, 1, 1],
        "counted on every node while it is recent"
    );
    assert_eq!(
        after,
        [0, 0, 0],
        "forgotten everywhere after failure_timeout_ms"
    );
    assert!(named, "every node saw FailuresExpired committed");

    let (_, before, after, named) = fail_and_watch(0);
    assert_eq!(before, [1, 1, 1]);
    assert_eq!(after, [1, 1, 1], "without a timeout it stays until cleared");
    assert!(!named);
}
