//! An admin command forwarded to the coordinator and refused there is answered: the asking
//! node hears why at once, instead of "not committed within 5 s". Three node cores in one
//! process on a virtual clock, every effect carried by hand (the node core's doctest, times
//! three), with the coordinator deaf to n3's heartbeats so that it sees n3 down while n1 sees
//! it up.

use std::sync::Arc;

use eterne::config::ClusterConfig;
use eterne::policy::admin::AdminRequest;
use eterne::policy::group::{Action, Outcome};
use eterne::policy::message::{Effect, Event, Input};
use eterne::policy::node::NodeCore;
use eterne::policy::raft_log::MemLog;

const TOML: &str = r#"
[cluster]
name = "demo"
[[path]]
name = "lan"
kind = "network"
[[node]]
name = "n1"
addresses = { lan = "10.0.0.1:7400" }
[[node]]
name = "n2"
addresses = { lan = "10.0.0.2:7400" }
[[node]]
name = "n3"
addresses = { lan = "10.0.0.3:7400" }
[[group]]
name = "web"
nodes = ["n1", "n2", "n3"]
  [[group.resource]]
  name = "web-app"
  type = "application"
  params = { command = "/usr/bin/sleep infinity" }
"#;

struct Net {
    cores: Vec<NodeCore>,
    disks: Vec<MemLog>,
    /// (to, input) not yet delivered.
    queue: Vec<(usize, Input)>,
    /// Drop heartbeats from this node to that one.
    deaf: Option<(usize, usize)>,
    events: Vec<Vec<Event>>,
    now: u64,
}

impl Net {
    fn new() -> Net {
        let spec = Arc::new(
            ClusterConfig::from_str(TOML, "cluster.toml")
                .expect("config")
                .spec(),
        );
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let empty = MemLog::new_with_conf_state(&[1, 2, 3]);
        let cores = (0..3u16)
            .map(|i| {
                let inc = 100 + u64::from(i);
                NodeCore::new(
                    spec.clone(),
                    i,
                    empty.clone(),
                    inc,
                    42 + inc,
                    1_000_000,
                    &logger,
                )
                .expect("core")
            })
            .collect();
        let mut cores: Vec<NodeCore> = cores;
        for (i, core) in cores.iter_mut().enumerate() {
            for peer in (0..3u16).filter(|&p| usize::from(p) != i) {
                let up = Input::Connection {
                    peer,
                    path: 0,
                    up: true,
                };
                core.handle(up, 1_000_000);
            }
        }
        Net {
            cores,
            disks: vec![empty.clone(), empty.clone(), empty],
            queue: Vec::new(),
            deaf: None,
            events: vec![Vec::new(); 3],
            now: 1_000_000,
        }
    }

    /// Carries out node `i`'s effects: sends, heartbeats, log writes; keeps its events.
    fn effects(&mut self, i: usize) {
        let effects: Vec<Effect> = self.cores[i].drain_effects().collect();
        for e in effects {
            match e {
                Effect::Heartbeat { path, hb } => {
                    for to in (0..3).filter(|&t| t != i) {
                        if self.deaf != Some((i, to)) {
                            let from = i as u16;
                            self.queue.push((to, Input::Heartbeat { from, path, hb }));
                        }
                    }
                }
                Effect::Send { to, msg, .. } => {
                    let from = i as u16;
                    self.queue
                        .push((usize::from(to), Input::Message { from, msg }));
                }
                Effect::Persist { batch, then } => {
                    batch.write_to(&mut self.disks[i]).expect("write");
                    for (to, _, msg) in then {
                        let from = i as u16;
                        self.queue
                            .push((usize::from(to), Input::Message { from, msg }));
                    }
                    let number = batch.number;
                    self.cores[i].handle(Input::Persisted { number }, self.now);
                    self.effects(i);
                }
                Effect::Event(ev) => self.events[i].push(ev),
                // The agents answer at once: nothing runs, every action succeeds.
                Effect::Agent(op) => {
                    let outcome = match op.action {
                        Action::Probe | Action::MonitorQuick | Action::MonitorDeep => {
                            if op.epoch == 0 {
                                Outcome::NotRunning
                            } else {
                                Outcome::Ok
                            }
                        }
                        _ => Outcome::Ok,
                    };
                    let done = Input::AgentResult {
                        group: op.group,
                        resource: op.resource,
                        op: op.op,
                        outcome,
                    };
                    self.queue.push((i, done));
                }
                _ => {}
            }
        }
    }

    /// Runs the three until `until_us` on the virtual clock, 1 ms at a time.
    fn run(&mut self, until_us: u64) {
        while self.now < until_us {
            self.now += 1000;
            for i in 0..3 {
                if self.cores[i].next_timeout_us() <= self.now {
                    self.cores[i].handle_timeout(self.now);
                }
                self.effects(i);
            }
            for (to, input) in std::mem::take(&mut self.queue) {
                self.cores[to].handle(input, self.now);
                self.effects(to);
            }
        }
    }
}

#[test]
fn a_move_the_coordinator_refuses_is_answered_to_the_node_that_asked() {
    let mut net = Net::new();
    net.run(5_000_000);
    let leader = net.cores[0].coordinator().expect("a coordinator") as usize;
    assert!((0..3).all(|i| net.cores[i].coordinator() == Some(leader as u16)));
    // Two nodes that are not the coordinator: one asks, the other is the move's target.
    let asker = (0..3).find(|&i| i != leader).expect("a follower");
    let target = (0..3)
        .find(|&i| i != leader && i != asker)
        .expect("another");
    let target_name = format!("n{}", target + 1);

    // The coordinator stops hearing the target; everyone else still does.
    net.deaf = Some((target, leader));
    net.run(net.now + 2_000_000);
    let r = net.cores[asker]
        .resolve_admin(AdminRequest::Move {
            group: "web",
            node: Some(&target_name),
        })
        .expect("the asking node sees the target up and passes the move on");
    net.events[asker].clear();
    net.cores[asker].handle(Input::Admin(r.cmd.clone()), net.now);
    net.effects(asker);
    net.run(net.now + 50_000);
    let refused: Vec<&Event> = net.events[asker]
        .iter()
        .filter(|e| matches!(e, Event::AdminRefused { .. }))
        .collect();
    let [Event::AdminRefused { cmd, why }] = refused.as_slice() else {
        panic!("one refusal at the asking node: {:?}", net.events[asker]);
    };
    assert_eq!(cmd, &r.cmd);
    let by = format!("said the coordinator, n{}", leader + 1);
    assert!(why.contains("down") && why.contains(&by), "{why}");
}
