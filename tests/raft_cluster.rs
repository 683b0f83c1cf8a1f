//! Three raft-rs nodes on `MemLog`, every message through our wire types and MessagePack:
//! they elect a leader and all commit a proposal. Checks that the store and the wire format
//! are enough for raft-rs, which the unit tests cannot show on their own.

use eterne::policy::raft_log::{LogStore, MemLog};
use eterne::policy::raft_wire::WireMessage;
use eterne::storage::FileLog;
use raft::eraftpb::{EntryType, Message};
use raft::Storage;
use raft::{Config, RawNode, StateRole};
use std::collections::VecDeque;

type Node = RawNode<MemLog>;

fn node(id: u64) -> Node {
    let config = Config {
        id,
        election_tick: 10,
        heartbeat_tick: 1,
        ..Config::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    RawNode::new(&config, MemLog::new_with_conf_state(&[1, 2, 3]), &logger).unwrap()
}

/// Every message crosses the "network" as bytes of our own format.
fn over_the_wire(msgs: Vec<Message>, net: &mut VecDeque<Vec<u8>>) {
    for m in msgs {
        net.push_back(WireMessage::from(&m).encode().unwrap());
    }
}

/// Handles one Ready the way the consensus core will (generic over the store), and returns the
/// normal entries applied.
fn handle_ready<S: LogStore>(n: &mut RawNode<S>, net: &mut VecDeque<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut applied = Vec::new();
    if !n.has_ready() {
        return applied;
    }
    let mut rd = n.ready();
    over_the_wire(rd.take_messages(), net);
    if !rd.snapshot().is_empty() {
        n.mut_store().apply_snapshot(rd.snapshot().clone()).unwrap();
    }
    let mut apply = |ents: Vec<raft::eraftpb::Entry>| {
        for e in ents {
            if e.entry_type == EntryType::EntryNormal && !e.data.is_empty() {
                applied.push(e.data.to_vec());
            }
        }
    };
    apply(rd.take_committed_entries());
    n.mut_store().append(rd.entries()).unwrap();
    if let Some(hs) = rd.hs() {
        n.mut_store().set_hardstate(hs.clone()).unwrap();
    }
    n.mut_store().sync().unwrap();
    over_the_wire(rd.take_persisted_messages(), net);
    let mut light = n.advance(rd);
    if let Some(commit) = light.commit_index() {
        n.mut_store().set_commit(commit).unwrap();
    }
    over_the_wire(light.take_messages(), net);
    apply(light.take_committed_entries());
    n.advance_apply();
    applied
}

/// Ticks and delivers until every node applied `proposal` (proposed once a leader exists).
/// Returns what each node applied.
fn run_until_applied<S: LogStore>(nodes: &mut [RawNode<S>], proposal: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut net = VecDeque::new();
    let mut applied: Vec<Vec<Vec<u8>>> = vec![Vec::new(); nodes.len()];
    let mut proposed = false;
    for _round in 0..500 {
        for (i, n) in nodes.iter_mut().enumerate() {
            n.tick();
            applied[i].extend(handle_ready(n, &mut net));
        }
        // Deliver everything in flight, handling the Readies it causes, until quiet.
        for _ in 0..10_000 {
            let Some(bytes) = net.pop_front() else { break };
            let msg = Message::try_from(WireMessage::decode(&bytes).unwrap()).unwrap();
            let to = (msg.to - 1) as usize;
            nodes[to].step(msg).unwrap();
            for (i, n) in nodes.iter_mut().enumerate() {
                applied[i].extend(handle_ready(n, &mut net));
            }
        }
        if !proposed {
            if let Some(leader) = nodes.iter_mut().find(|n| n.raft.state == StateRole::Leader) {
                leader.propose(vec![], proposal.to_vec()).unwrap();
                proposed = true;
            }
        }
        if applied.iter().all(|a| a.iter().any(|p| p == proposal)) {
            break;
        }
    }
    applied
}

#[test]
fn three_nodes_elect_and_commit_over_our_wire_format() {
    let mut nodes: Vec<Node> = (1..=3).map(node).collect();
    let proposal = b"place group web on node 2";
    let applied = run_until_applied(&mut nodes, proposal);
    for (i, a) in applied.iter().enumerate() {
        assert_eq!(a, &vec![proposal.to_vec()], "node {}", i + 1);
    }
    let leaders = nodes
        .iter()
        .filter(|n| n.raft.state == StateRole::Leader)
        .count();
    assert_eq!(leaders, 1);
    // Every node's log holds the leader's empty entry and the proposal, committed.
    for n in &nodes {
        assert_eq!(n.store().hard_state().commit, 2);
    }
}

#[test]
fn file_backed_cluster_restarts_with_its_log() {
    let base = std::env::temp_dir().join(format!("eterne-raft-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let open = |id: u64| {
        let config = Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            ..Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let store = FileLog::open(base.join(format!("node{id}")), &[1, 2, 3]).unwrap();
        RawNode::new(&config, store, &logger).unwrap()
    };

    let mut nodes: Vec<RawNode<FileLog>> = (1..=3).map(open).collect();
    run_until_applied(&mut nodes, b"first");
    let term_before = nodes[0].raft.term;
    drop(nodes);

    // A whole-cluster restart: every node comes back from its files alone.
    let mut nodes: Vec<RawNode<FileLog>> = (1..=3).map(open).collect();
    for n in &nodes {
        assert_eq!(n.store().last_index().unwrap(), 2);
        assert!(n.raft.term >= term_before);
    }
    let applied = run_until_applied(&mut nodes, b"second");
    for a in &applied {
        // Restarted raft re-applies from its applied index (0 here): both entries come back.
        assert!(a.iter().any(|p| p == b"second"), "{a:?}");
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(&base);
}
