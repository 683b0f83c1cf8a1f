//! Node cores in one process on a virtual clock, every effect carried by hand (the node
//! core's doctest, times n): heartbeats and messages to every other core that is up, log
//! writes to a disk per node that survives a crash, agents that answer at once. Each core may
//! have a config of its own, as nodes whose files differ do.

use std::sync::Arc;

use eterne::config::ClusterConfig;
use eterne::policy::group::{Action, Outcome};
use eterne::policy::message::Waiting;
use eterne::policy::message::{Effect, Event, Input};
use eterne::policy::node::NodeCore;
use eterne::policy::raft_log::{MemLog, Persist};
use eterne::policy::spec::ClusterSpec;

/// The cores and what connects them.
pub struct Cores {
    /// `None`: that node is down.
    pub cores: Vec<Option<NodeCore>>,
    /// Each node's config.
    pub specs: Vec<Arc<ClusterSpec>>,
    /// Each node's durable raft log.
    pub disks: Vec<MemLog>,
    /// (to, input) not yet delivered.
    queue: Vec<(usize, Input)>,
    /// Drop heartbeats from this node to that one.
    pub deaf: Option<(usize, usize)>,
    /// Every event of each node since the test last cleared them.
    pub events: Vec<Vec<Event>>,
    /// Per node: its state disk fails ([`Cores::fail_disk`]); the batches it could not write,
    /// in order, wait here as they do in the daemon's writer.
    held: Vec<Option<Vec<(Persist, Waiting)>>>,
    /// Per node: heartbeats and messages it sent.
    pub sent: Vec<u64>,
    /// Each node's daemon starts so far (its incarnation).
    starts: Vec<u64>,
    /// Feeds each start's election timeouts.
    pub seed: u64,
    /// The virtual clock, µs.
    pub now: u64,
}

/// Three nodes on one path and one group `web` of one application that may run on each
/// (failback manual).
pub const THREE_NODES_WEB: &str = r#"
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

/// The spec of `toml`.
pub fn spec_of(toml: &str) -> Arc<ClusterSpec> {
    Arc::new(
        ClusterConfig::from_str(toml, "cluster.toml")
            .expect("config")
            .spec(),
    )
}

impl Cores {
    /// A node per spec, each started with an empty log.
    pub fn new(specs: Vec<Arc<ClusterSpec>>, seed: u64) -> Cores {
        let n = specs.len();
        let voters: Vec<u64> = (1..=n as u64).collect();
        let empty = MemLog::new_with_conf_state(&voters);
        let mut c = Cores {
            cores: (0..n).map(|_| None).collect(),
            specs,
            disks: vec![empty; n],
            queue: Vec::new(),
            deaf: None,
            events: vec![Vec::new(); n],
            held: vec![None; n],
            sent: vec![0; n],
            starts: vec![0; n],
            seed,
            now: 1_000_000,
        };
        for i in 0..n {
            c.start(i);
        }
        c
    }

    /// Starts node `i`'s core over its disk, with a new incarnation (a daemon start).
    pub fn start(&mut self, i: usize) {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        self.starts[i] += 1;
        let inc = 100 * self.starts[i] + i as u64;
        let mut core = NodeCore::new(
            self.specs[i].clone(),
            i as u16,
            self.disks[i].clone(),
            inc,
            self.seed.wrapping_mul(31).wrapping_add(inc),
            self.now,
            &logger,
        )
        .expect("core");
        let n = self.specs.len();
        for peer in (0..n as u16).filter(|&p| usize::from(p) != i) {
            let up = Input::Connection {
                peer,
                path: 0,
                up: true,
            };
            core.handle(up, self.now);
        }
        self.cores[i] = Some(core);
        self.effects(i);
    }

    /// Node `i`'s daemon dies: what it had not written is lost, its disk stays.
    pub fn crash(&mut self, i: usize) {
        self.cores[i] = None;
        if let Some(held) = &mut self.held[i] {
            held.clear();
        }
        self.queue.retain(|(to, _)| *to != i);
    }

    /// Node `i`'s state disk fails: from now on its batches are not written, and its core
    /// hears so, as from the daemon's writer at its first failed write.
    pub fn fail_disk(&mut self, i: usize, why: &str) {
        self.held[i].get_or_insert_with(Vec::new);
        let now = self.now;
        let why = why.to_string();
        self.core_mut(i).handle(Input::StateDiskFailed { why }, now);
        self.effects(i);
    }

    /// Node `i`'s state disk works again: what waited is written in order, and the core
    /// hears it recovered before the first of them is durable.
    pub fn repair_disk(&mut self, i: usize) {
        let Some(held) = self.held[i].take() else {
            return;
        };
        let now = self.now;
        self.core_mut(i).handle(Input::StateDiskRecovered, now);
        self.effects(i);
        for (batch, then) in held {
            self.write(i, batch, then);
        }
    }

    /// Makes `batch` durable on node `i`'s disk, sends what waited for it, tells the core.
    fn write(&mut self, i: usize, batch: Persist, then: Waiting) {
        batch.write_to(&mut self.disks[i]).expect("write");
        for (to, _, msg) in then {
            let from = i as u16;
            self.sent[i] += 1;
            self.queue
                .push((usize::from(to), Input::Message { from, msg }));
        }
        let number = batch.number;
        if let Some(core) = self.cores[i].as_mut() {
            core.handle(Input::Persisted { number }, self.now);
        }
        self.effects(i);
    }

    /// Node `i`'s core (it must be up).
    pub fn core(&self, i: usize) -> &NodeCore {
        self.cores[i].as_ref().expect("that node is up")
    }

    /// Node `i`'s core, to give it an input (it must be up).
    pub fn core_mut(&mut self, i: usize) -> &mut NodeCore {
        self.cores[i].as_mut().expect("that node is up")
    }

    /// Carries out node `i`'s effects: sends, heartbeats, log writes; keeps its events.
    pub fn effects(&mut self, i: usize) {
        let Some(core) = self.cores[i].as_mut() else {
            return;
        };
        let effects: Vec<Effect> = core.drain_effects().collect();
        let n = self.specs.len();
        for e in effects {
            match e {
                Effect::Heartbeat { path, hb } => {
                    self.sent[i] += 1;
                    for to in (0..n).filter(|&t| t != i) {
                        if self.deaf != Some((i, to)) {
                            let from = i as u16;
                            self.queue.push((to, Input::Heartbeat { from, path, hb }));
                        }
                    }
                }
                Effect::Send { to, msg, .. } => {
                    self.sent[i] += 1;
                    let from = i as u16;
                    self.queue
                        .push((usize::from(to), Input::Message { from, msg }));
                }
                Effect::Persist { batch, then } => match &mut self.held[i] {
                    Some(held) => held.push((*batch, then)),
                    None => self.write(i, *batch, then),
                },
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
                        reason: String::new(),
                    };
                    self.queue.push((i, done));
                }
                _ => {}
            }
        }
    }

    /// Runs every core that is up until `until_us` on the virtual clock, 1 ms at a time;
    /// `each_ms` is called after every millisecond.
    pub fn run_checking(&mut self, until_us: u64, each_ms: &mut dyn FnMut(&Cores)) {
        while self.now < until_us {
            self.now += 1000;
            for i in 0..self.cores.len() {
                let due = self.cores[i]
                    .as_ref()
                    .is_some_and(|c| c.next_timeout_us() <= self.now);
                if due {
                    let now = self.now;
                    self.core_mut(i).handle_timeout(now);
                }
                self.effects(i);
            }
            for (to, input) in std::mem::take(&mut self.queue) {
                let now = self.now;
                if let Some(core) = self.cores[to].as_mut() {
                    core.handle(input, now);
                    self.effects(to);
                }
            }
            each_ms(self);
        }
    }

    /// [`Cores::run_checking`] with nothing checked.
    pub fn run(&mut self, until_us: u64) {
        self.run_checking(until_us, &mut |_| {});
    }
}
