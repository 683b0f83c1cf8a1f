//! A state disk that fails is a node failure, handled as one (node cores on a virtual clock,
//! `tests/support/cores.rs`; the daemon's side, a real full tmpfs, is in
//! `tests/cluster_loopback.rs`): the owner whose raft log cannot be written gives up its
//! lease and stops its group at once, falls silent, and its group runs on another node once
//! its lease has run out, never on two at once; once its writes succeed it is heard again,
//! catches up and holds a lease again.

mod support;

use eterne::policy::message::Event;
use eterne::policy::state::Phase;
use support::cores::{spec_of, Cores, THREE_NODES_WEB as TOML};

/// Where `web` is placed, as node `i` sees it.
fn placed(net: &Cores, i: usize) -> Option<usize> {
    let g = &net.core(i).state().groups[0];
    g.instances
        .iter()
        .find(|x| x.phase == Phase::Active)
        .map(|x| usize::from(x.node))
}

/// The nodes where `web` may be active now.
fn active(net: &Cores) -> Vec<usize> {
    (0..3)
        .filter(|&i| {
            net.core(i)
                .local_group(0)
                .is_some_and(|l| l.may_be_active())
        })
        .collect()
}

fn owner_fails(owner_is_coordinator: bool) {
    let spec = spec_of(TOML);
    let mut found = None;
    // A seed whose first placement is (or is not) on the coordinator.
    for seed in 1..40 {
        let mut net = Cores::new(vec![spec.clone(), spec.clone(), spec.clone()], seed);
        net.run(6_000_000);
        let Some(owner) = placed(&net, 0) else {
            continue;
        };
        let coordinator = net.core(0).coordinator().map(usize::from);
        if (coordinator == Some(owner)) == owner_is_coordinator && active(&net) == vec![owner] {
            found = Some((net, owner));
            break;
        }
    }
    let (mut net, owner) = found.expect("a seed with that placement");
    for e in &mut net.events {
        e.clear();
    }

    net.fail_disk(
        owner,
        "write /var/lib/eterne/raft/raft.log: No space left on device",
    );
    assert!(
        !net.core(owner).holds_lease(),
        "the lease is given up at once"
    );
    assert_eq!(
        net.core(owner).state_disk_failed(),
        Some("write /var/lib/eterne/raft/raft.log: No space left on device")
    );
    assert!(net.events[owner]
        .iter()
        .any(|e| matches!(e, Event::StateDiskFailed { .. })));
    // Agents answer at once here: the stop is done within the millisecond.
    net.run(net.now + 1_000);
    assert!(
        active(&net).is_empty(),
        "the owner stopped its group at once"
    );
    let sent = net.sent[owner];

    // Silent: the others lose it, a new owner is placed once its lease has run out.
    let start = net.now;
    let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let mut moved_at = None;
    net.run_checking(start + 15_000_000, &mut |net| {
        assert!(active(net).len() <= 1, "web active on {:?}", active(net));
        if moved_at.is_none() && active(net).iter().any(|&i| i != owner) {
            moved_at = Some(net.now);
        }
    });
    assert_eq!(
        net.sent[owner], sent,
        "a node whose disk failed sends nothing"
    );
    let moved_at = moved_at.expect("web runs on another node");
    let new_owner = active(&net)[0];
    assert_ne!(new_owner, owner);
    for &i in &others {
        assert_eq!(placed(&net, i), Some(new_owner), "as n{} sees it", i + 1);
        assert_ne!(net.core(i).coordinator(), Some(owner as u16));
        assert!(net.core(i).liveness().is_suspected(owner as u16));
    }
    println!(
        "web moved {} ms after the owner's disk failed",
        (moved_at - start) / 1000
    );
    assert!(
        net.events[owner]
            .iter()
            .all(|e| !matches!(e, Event::FenceStarted { .. })),
        "a node that hears no one shoots no one"
    );

    // Room again: heard, caught up, a lease again; web stays where it went (manual failback).
    net.repair_disk(owner);
    net.run_checking(net.now + 8_000_000, &mut |net| {
        assert!(active(net).len() <= 1, "web active on {:?}", active(net));
    });
    assert_eq!(net.core(owner).state_disk_failed(), None);
    assert!(net.events[owner]
        .iter()
        .any(|e| matches!(e, Event::StateDiskRecovered)));
    assert!(net.core(owner).holds_lease(), "a lease again");
    let c = usize::from(net.core(others[0]).coordinator().expect("a coordinator"));
    assert!(
        !net.core(c).liveness().is_suspected(owner as u16),
        "heard again"
    );
    assert_eq!(
        net.core(owner).applied(),
        net.core(c).applied(),
        "caught up"
    );
    assert_eq!(placed(&net, owner), Some(new_owner));
    assert_eq!(active(&net), vec![new_owner]);
}

#[test]
fn an_owner_whose_state_disk_fails_gives_its_group_up_and_comes_back_once_it_can_write() {
    owner_fails(false);
}

#[test]
fn a_coordinator_whose_state_disk_fails_gives_up_too_and_another_takes_over() {
    owner_fails(true);
}
