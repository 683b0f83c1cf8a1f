//! Agreement by content (docs/architecture.md, "Agreement by content"): a node whose
//! `cluster.toml` differs from the one the cluster committed never coordinates, never helps
//! elect a coordinator, runs no group and says so, across its restarts too; nodes that all
//! change to one new file agree again. Three node cores in one process on a virtual clock
//! (`tests/support/cores.rs`), over several seeds so that the elections differ, with the
//! coordinator crashed and restarted on the way.

mod support;

use std::sync::Arc;

use eterne::policy::group::GroupStatus;
use eterne::policy::message::Event;
use eterne::policy::spec::ClusterSpec;
use eterne::policy::state::Command;
use support::cores::{spec_of, Cores};

/// Three nodes, two groups; `before_web` is put before `web`, and `web_nodes` is web's
/// order of preference.
fn toml(before_web: &str, web_nodes: &str) -> String {
    format!(
        r#"
[cluster]
name = "demo"
[[path]]
name = "lan"
kind = "network"
[[node]]
name = "n1"
addresses = {{ lan = "10.0.0.1:7400" }}
[[node]]
name = "n2"
addresses = {{ lan = "10.0.0.2:7400" }}
[[node]]
name = "n3"
addresses = {{ lan = "10.0.0.3:7400" }}
{before_web}
[[group]]
name = "web"
nodes = {web_nodes}
  [[group.resource]]
  name = "web-app"
  type = "application"
  params = {{ command = "/usr/bin/sleep infinity" }}
[[group]]
name = "db"
nodes = ["n2", "n1", "n3"]
  [[group.resource]]
  name = "db-app"
  type = "application"
  params = {{ command = "/usr/bin/sleep infinity" }}
"#
    )
}

const EXTRA: &str = r#"
[[group]]
name = "extra"
nodes = ["n3", "n1", "n2"]
  [[group.resource]]
  name = "extra-app"
  type = "application"
  params = { command = "/usr/bin/sleep infinity" }
"#;

const PREFERENCE: &str = r#"["n1", "n2", "n3"]"#;

/// The agreed file, and two ways for n3's to differ.
fn agreed() -> Arc<ClusterSpec> {
    spec_of(&toml("", PREFERENCE))
}

fn inserted_group() -> Arc<ClusterSpec> {
    spec_of(&toml(EXTRA, PREFERENCE))
}

fn reordered_preference() -> Arc<ClusterSpec> {
    spec_of(&toml("", r#"["n3", "n2", "n1"]"#))
}

/// The node each node's state places `group` on (as each names it).
fn owners(net: &Cores, group: &str) -> Vec<Option<String>> {
    (0..3)
        .filter(|&i| net.cores[i].is_some())
        .map(|i| {
            let spec = &net.specs[i];
            let g = spec.group_id(group).expect("group");
            net.core(i)
                .state()
                .active_node(g)
                .map(|n| spec.nodes[usize::from(n)].name.clone())
        })
        .collect()
}

/// Node 2 (n3) does nothing it may not: it is no coordinator, holds no lease, runs nothing
/// and is flagged; the others see its file differ.
fn n3_stays_out(net: &Cores) {
    let Some(n3) = net.cores[2].as_ref() else {
        return;
    };
    assert_ne!(
        n3.coordinator(),
        Some(2),
        "n3 coordinates at {} µs",
        net.now
    );
    assert!(!n3.holds_lease(), "n3 holds a lease at {} µs", net.now);
    for g in 0..net.specs[2].groups.len() as u16 {
        let status = n3.local_group(g).map(|l| l.status());
        assert!(
            !matches!(status, Some(GroupStatus::Starting | GroupStatus::Running)),
            "n3 runs group {} at {} µs: {status:?}",
            net.specs[2].groups[usize::from(g)].name,
            net.now
        );
    }
    if n3.state().config != 0 {
        assert!(n3.config_differs().is_some(), "n3 is not flagged");
    }
    for i in 0..2 {
        if let Some(c) = net.cores[i].as_ref() {
            if c.state().config != 0 {
                assert!(c.config_differs().is_none(), "n{} is flagged", i + 1);
            }
        }
    }
}

/// Runs the cluster with n3's file `n3`: up 3 s, the coordinator crashed for 2 s and back,
/// then n3 restarted; n3 must stay out throughout and after its restart.
fn a_differing_node_stays_out(n3: Arc<ClusterSpec>) {
    for seed in 1..=6u64 {
        let mut net = Cores::new(vec![agreed(), agreed(), n3.clone()], seed);
        let mut check = |net: &Cores| n3_stays_out(net);
        net.run_checking(net.now + 3_000_000, &mut check);
        let leader = net.core(0).coordinator().expect("a coordinator") as usize;
        assert!(leader < 2, "seed {seed}: n3 was elected");
        assert!(
            net.core(0).config_agrees(1) && !net.core(0).config_agrees(2),
            "seed {seed}: n1 sees n2 agree and n3 differ"
        );
        // Both groups run on n1 or n2, and n3 reads the same placement by name.
        for g in ["web", "db"] {
            let seen = owners(&net, g);
            assert!(seen[0].is_some(), "seed {seed}: {g} is placed: {seen:?}");
            assert!(seen.iter().all(|o| o == &seen[0]), "seed {seed}: {seen:?}");
            assert_ne!(seen[0].as_deref(), Some("n3"), "seed {seed}");
        }
        assert!(
            net.events[2]
                .iter()
                .any(|e| matches!(e, Event::ConfigDiffers { why: Some(_) })),
            "seed {seed}: n3 said why it acts on nothing"
        );

        // The coordinator dies: the other agreeing node cannot be elected with n3's vote,
        // nor n3 with its; nobody coordinates until it is back.
        net.crash(leader);
        let other = 1 - leader;
        let mut none_elected = |net: &Cores| {
            n3_stays_out(net);
            assert_eq!(
                net.core(other).coordinator().filter(|&c| c == other as u16),
                None,
                "n{} elected without a majority of its file",
                other + 1
            );
        };
        net.run_checking(net.now + 2_000_000, &mut none_elected);
        net.start(leader);
        net.run_checking(net.now + 3_000_000, &mut check);
        assert!(
            net.core(0).coordinator().is_some_and(|c| c < 2),
            "seed {seed}: a coordinator of the agreed file again"
        );

        // n3 restarts: its log says at once that its file is not the committed one.
        net.crash(2);
        net.run(net.now + 200_000);
        net.start(2);
        net.run_checking(net.now + 5_000, &mut check);
        assert!(
            net.core(2).config_differs().is_some(),
            "seed {seed}: n3 flagged again as soon as it replayed its log"
        );
        net.run_checking(net.now + 2_000_000, &mut check);
        assert!(
            !net.core(0).config_agrees(2),
            "seed {seed}: still seen to differ"
        );
        for g in ["web", "db"] {
            let seen = owners(&net, g);
            assert!(seen.iter().all(|o| o == &seen[0]), "seed {seed}: {seen:?}");
        }
    }
}

#[test]
fn a_node_with_an_inserted_group_never_coordinates_or_runs_a_group() {
    a_differing_node_stays_out(inserted_group());
}

#[test]
fn a_node_with_another_order_of_preference_never_coordinates_or_runs_a_group() {
    a_differing_node_stays_out(reordered_preference());
}

/// The way to change the file today: every daemon restarted with the new one, one after the
/// other. Once a majority has it and elects a coordinator, that coordinator commits it, and
/// the cluster goes on under it; nobody is left flagged.
#[test]
fn every_node_changed_to_one_new_file_agrees_again() {
    let mut net = Cores::new(vec![agreed(), agreed(), agreed()], 3);
    net.run(net.now + 3_000_000);
    let old = agreed().digest;
    assert_eq!(net.core(0).state().config, old);
    let new = reordered_preference();
    for i in 0..3 {
        net.crash(i);
        net.run(net.now + 300_000);
        net.specs[i] = new.clone();
        net.start(i);
        net.run(net.now + 3_000_000);
    }
    for i in 0..3 {
        let c = net.core(i);
        assert_eq!(c.state().config, new.digest, "n{}", i + 1);
        assert_eq!(c.config_differs(), None, "n{}", i + 1);
    }
    let committed = net
        .events
        .iter()
        .flatten()
        .any(|e| matches!(e, Event::Committed { cmd: Command::Config { digest }, .. } if *digest == new.digest));
    assert!(committed, "the new file was committed as the cluster's");
    for g in ["web", "db"] {
        let seen = owners(&net, g);
        assert!(
            seen[0].is_some() && seen.iter().all(|o| o == &seen[0]),
            "{g}: {seen:?}"
        );
    }
}
