//! Data-driven coordinator cases: `src/policy/testdata/coordinator.txt`. Each case is a short
//! script run top to bottom against one [`Coordinator`]; `pass` runs a pass and the `>` lines
//! under it are the commands it must propose (and the wake-up it must arm), in order.

use super::*;
use crate::policy::spec::GroupKind;
use crate::policy::testutil::simple_spec;

/// A cluster of three nodes a, b, c and one exclusive group `web` on a, b, c (manual
/// failback, stop timeout 1 s), as every case starts.
fn base_spec() -> ClusterSpec {
    let mut spec = simple_spec(3, 1);
    for (n, name) in spec.nodes.iter_mut().zip(["a", "b", "c"]) {
        n.name = name.into();
    }
    spec.groups[0].name = "web".into();
    spec
}

/// A running case: the config, the state, the liveness view and the coordinator.
struct Script {
    title: String,
    spec: ClusterSpec,
    state: ClusterState,
    alive: Vec<bool>,
    coordinator: Option<Coordinator>,
    /// What the last pass proposed, for `commit`.
    last: Vec<Command>,
    /// What the last pass printed, and what the case expects of it.
    got: Vec<String>,
    want: Vec<String>,
    failures: Vec<String>,
}

fn ms(words: &[&str], k: usize) -> u64 {
    let w = words.get(k).copied().unwrap_or_default();
    let n: f64 = w
        .trim_end_matches("ms")
        .parse()
        .unwrap_or_else(|_| panic!("not a time in ms: {w:?}"));
    (n * 1000.0).round() as u64
}

fn show_ms(us: u64) -> String {
    if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{}ms", us as f64 / 1000.0)
    }
}

fn lower<T: std::fmt::Debug>(v: T) -> String {
    let mut out = String::new();
    for (i, ch) in format!("{v:?}").chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.extend(ch.to_lowercase());
    }
    out
}

impl Script {
    fn node(&self, name: &str) -> NodeId {
        self.spec
            .node_id(name)
            .unwrap_or_else(|| panic!("{}: unknown node {name}", self.title))
    }

    fn name(&self, n: NodeId) -> &str {
        &self.spec.nodes[usize::from(n)].name
    }

    fn coordinator(&mut self) -> &mut Coordinator {
        if self.coordinator.is_none() {
            self.coordinator = Some(Coordinator::new(&self.spec, 0, 0));
        }
        self.coordinator.as_mut().expect("just made")
    }

    fn show(&self, cmd: &Command) -> String {
        let g = |g: GroupId| self.spec.groups[usize::from(g)].name.clone();
        match *cmd {
            Command::Activate { group, node, cause } => {
                format!(
                    "activate {} on {} ({})",
                    g(group),
                    self.name(node),
                    lower(cause)
                )
            }
            Command::Stop {
                group,
                node,
                epoch,
                cause,
            } => format!(
                "stop {} on {} epoch {epoch} ({})",
                g(group),
                self.name(node),
                lower(cause)
            ),
            Command::Released {
                group,
                node,
                epoch,
                how,
            } => format!(
                "release {} on {} epoch {epoch} ({})",
                g(group),
                self.name(node),
                lower(how)
            ),
            Command::Failed {
                group,
                node,
                epoch,
                everywhere,
            } => format!(
                "failed {} on {} epoch {epoch}{}",
                g(group),
                self.name(node),
                if everywhere { " everywhere" } else { "" }
            ),
            Command::Fenced { node, through } => {
                format!("fenced {} through {through}", self.name(node))
            }
            ref other => format!("{other:?}"),
        }
    }

    fn add_instance(&mut self, node: NodeId, phase: Phase) {
        let gs = &mut self.state.groups[0];
        gs.last_epoch += 1;
        gs.version += 1;
        gs.instances.push(Instance {
            node,
            epoch: gs.last_epoch,
            phase,
            stop_cause: (phase == Phase::Stopping).then_some(Cause::Failure),
        });
    }

    fn check(&mut self) {
        if self.got != self.want {
            self.failures.push(format!(
                "{}:\n  expected: {}\n  got:      {}",
                self.title,
                self.want.join(" | "),
                self.got.join(" | ")
            ));
        }
        self.got.clear();
        self.want.clear();
    }

    fn line(&mut self, words: &[&str]) {
        let arg = |s: &Script, k: usize| s.node(words.get(k).copied().unwrap_or_default());
        match words[0] {
            ">" => self.want.push(words[1..].join(" ")),
            "clone" => self.spec.groups[0].kind = GroupKind::Clone { copies: None },
            "nodes" => {
                let nodes = words[1..].iter().map(|n| self.node(n)).collect();
                self.spec.groups[0].nodes = nodes;
            }
            "run" => self.add_instance(arg(self, 1), Phase::Active),
            "stopping" => self.add_instance(arg(self, 1), Phase::Stopping),
            "down" => {
                let n = arg(self, 1);
                self.alive[usize::from(n)] = false;
            }
            "up" => {
                let n = arg(self, 1);
                self.alive[usize::from(n)] = true;
            }
            "standby" => {
                let n = arg(self, 1);
                self.state.standby[usize::from(n)] = true;
            }
            "maintenance" => self.state.maintenance = true,
            "disabled" => self.state.groups[0].disabled = true,
            "unmanaged" => self.state.groups[0].unmanaged = vec![0],
            "fencing" => self.spec.partition = PartitionPolicy::Fence,
            "fence-ok" | "fence-failed" => {
                // fence-ok N ATTEMPT T: the shell's outcome of a fence, at T ms.
                let n = arg(self, 1);
                let attempt: u32 = words[2].parse().unwrap_or_else(|_| panic!("attempt"));
                let ok = words[0] == "fence-ok";
                let now_us = ms(words, 3);
                self.coordinator().on_fence_result(n, attempt, ok, now_us);
            }
            "refuse" => {
                let n = arg(self, 1);
                self.coordinator().keeper.refuse(n);
            }
            "restarted" => {
                let n = arg(self, 1);
                self.coordinator().on_restart(n);
            }
            "report" => {
                // report NODE STATUS [stopping]: about that node's instance of web.
                let node = arg(self, 1);
                let status = match words[2] {
                    "starting" => GroupStatus::Starting,
                    "running" => GroupStatus::Running,
                    "stopping" => GroupStatus::Stopping,
                    "stopped" => GroupStatus::Stopped,
                    "cannot-run" => GroupStatus::CannotRun,
                    "cannot-run-anywhere" => GroupStatus::CannotRunAnywhere,
                    "stop-failed" => GroupStatus::StopFailed,
                    other => panic!("{}: unknown status {other}", self.title),
                };
                let epoch = self.state.groups[0]
                    .instances
                    .iter()
                    .find(|i| i.node == node)
                    .map_or(0, |i| i.epoch);
                let stopping = words.get(3) == Some(&"stopping");
                self.coordinator().on_report(
                    0,
                    Reported {
                        node,
                        epoch,
                        status,
                        stopping,
                    },
                );
            }
            "pass" => {
                self.check();
                let now_us = ms(words, 1);
                let mut c = self
                    .coordinator
                    .take()
                    .unwrap_or_else(|| Coordinator::new(&self.spec, 0, 0));
                let mut out = Vec::new();
                c.pass(
                    &View {
                        spec: &self.spec,
                        state: &self.state,
                        alive: &self.alive,
                        heard: &self.alive,
                        civil: None,
                        now_us,
                        faults: Faults::default(),
                    },
                    &mut out,
                );
                self.got = out.iter().map(|c| self.show(c)).collect();
                let asked: Vec<_> = c.fencer.take_requests().collect();
                for r in asked {
                    self.got.push(format!(
                        "fence {} (attempt {})",
                        self.name(r.target),
                        r.attempt
                    ));
                }
                if self.got.is_empty() {
                    self.got.push("nothing".into());
                }
                if let Some(w) = c.wake_us {
                    self.got.push(format!("wake {}", show_ms(w)));
                }
                for n in 0..self.spec.nodes.len() as NodeId {
                    if c.keeper.is_refused(n) {
                        self.got.push(format!("refused {}", self.name(n)));
                    }
                }
                self.coordinator = Some(c);
                self.last = out;
            }
            "commit" => {
                for cmd in std::mem::take(&mut self.last) {
                    let index = self.state.applied + 1;
                    self.state.apply(&self.spec, index, &cmd);
                }
            }
            other => panic!("{}: unknown directive {other}", self.title),
        }
    }
}

fn run_case(block: &str, failures: &mut Vec<String>) {
    let mut lines = block.lines();
    let title = lines.next().unwrap_or_default().trim().to_string();
    let spec = base_spec();
    let n = spec.nodes.len();
    let mut s = Script {
        title,
        state: ClusterState::new(&spec),
        spec,
        alive: vec![true; n],
        coordinator: None,
        last: Vec::new(),
        got: Vec::new(),
        want: Vec::new(),
        failures: Vec::new(),
    };
    for line in lines
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        s.line(&words);
    }
    s.check();
    failures.append(&mut s.failures);
}

#[test]
fn coordinator_cases() {
    let text = include_str!("../testdata/coordinator.txt");
    let blocks: Vec<&str> = text.split("\n## ").skip(1).collect();
    assert!(blocks.len() >= 10, "the case file was read");
    let mut failures = Vec::new();
    for b in blocks {
        run_case(b, &mut failures);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A `Stopped` sent before the node knew of the stop (a lease lapse) does not confirm the
/// stop: the node may have started again, and the report that said so may be lost.
#[test]
fn only_a_stopped_report_made_after_the_stop_confirms_it() {
    let report = |status, stopping| Reported {
        node: 1,
        epoch: 7,
        status,
        stopping,
    };
    let mut r = Reports::new(1, 3);
    r.set(0, report(GroupStatus::Stopped, false));
    assert!(!r.confirms_stop(0, 1, 7));
    r.set(0, report(GroupStatus::Stopping, true));
    assert!(!r.confirms_stop(0, 1, 7));
    r.set(0, report(GroupStatus::Stopped, true));
    assert!(r.confirms_stop(0, 1, 7));
    assert!(!r.confirms_stop(0, 1, 8), "another epoch");
}

/// A cluster with `[fencing]` whose g0 is on its way down on node 1 (epoch 1).
fn fenced_cluster_with_g0_stopping_on_n1() -> (ClusterSpec, ClusterState) {
    let mut spec = base_spec();
    spec.partition = PartitionPolicy::Fence;
    let mut state = ClusterState::new(&spec);
    state.groups[0].instances.push(Instance {
        node: 1,
        epoch: 1,
        phase: Phase::Stopping,
        stop_cause: Some(Cause::Failure),
    });
    state.groups[0].last_epoch = 1;
    (spec, state)
}

/// Only a silent node is fenced: one that is heard but may not host (its config differs, or
/// it is refused a lease) stops its groups itself and confirms, as without fencing.
#[test]
fn a_node_heard_but_not_alive_is_not_fenced() {
    let (spec, state) = fenced_cluster_with_g0_stopping_on_n1();
    let mut c = Coordinator::new(&spec, 0, 0);
    let pass = |c: &mut Coordinator, heard: &[bool]| {
        let mut out = Vec::new();
        c.pass(
            &View {
                spec: &spec,
                state: &state,
                alive: &[true, false, true],
                heard,
                civil: None,
                now_us: 10_000,
                faults: Faults::default(),
            },
            &mut out,
        );
        c.fencer.take_requests().count()
    };
    assert_eq!(pass(&mut c, &[true, true, true]), 0, "heard: no fence");
    assert_eq!(pass(&mut c, &[true, false, true]), 1, "silent: fenced");
    assert_eq!(pass(&mut c, &[true, false, true]), 0, "once per target");
}

/// A node refused while it was being fenced is allowed again once the fence is over and
/// nothing of it waits for a release, and the coordinator looks again at once: the pass that
/// allowed it was given a liveness view that counted it out (seed 2943 once left a group
/// down for good that way).
#[test]
fn a_node_allowed_after_its_fence_gets_a_fresh_pass() {
    let (spec, mut state) = fenced_cluster_with_g0_stopping_on_n1();
    let mut c = Coordinator::new(&spec, 0, 0);
    let pass = |c: &mut Coordinator, state: &ClusterState, heard: &[bool], now_us| {
        let mut out = Vec::new();
        let alive: Vec<bool> = (0..3)
            .map(|n| heard[n] && !c.keeper.is_refused(n as NodeId))
            .collect();
        c.pass(
            &View {
                spec: &spec,
                state,
                alive: &alive,
                heard,
                civil: None,
                now_us,
                faults: Faults::default(),
            },
            &mut out,
        );
        out
    };
    pass(&mut c, &state, &[true, false, true], 10_000);
    assert!(c.keeper.is_refused(1), "refused while being fenced");
    assert!(c.dirty, "the refusal changes the liveness view");
    pass(&mut c, &state, &[true, false, true], 20_000);
    assert!(!c.dirty);
    // b comes back and confirms its stop; the release commits; then the fence fails.
    state.groups[0].instances.clear();
    c.on_fence_result(1, 1, false, 30_000);
    pass(&mut c, &state, &[true, true, true], 30_000);
    assert!(!c.keeper.is_refused(1), "allowed: nothing of it waits");
    assert!(c.dirty, "and a pass with the fresh view follows");
}
