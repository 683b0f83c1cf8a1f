//! Data-driven admin cases: `src/policy/testdata/admin.txt`.

use super::*;
use crate::policy::spec::{GroupKind, NodeSpec};
use crate::policy::state::{Instance, Phase};
use crate::policy::testutil::simple_spec;

/// One case: a cluster, a request, and what must come of it.
struct Case {
    title: String,
    spec: ClusterSpec,
    state: ClusterState,
    alive: Vec<bool>,
    request: Vec<String>,
    expect: String,
}

fn node(spec: &ClusterSpec, name: &str) -> NodeId {
    spec.node_id(name)
        .unwrap_or_else(|| panic!("unknown node {name}"))
}

fn parse_cases(text: &str) -> Vec<Case> {
    text.split("\n## ").skip(1).map(parse_case).collect()
}

fn parse_case(block: &str) -> Case {
    let mut lines = block.lines();
    let title = lines.next().unwrap_or_default().trim().to_string();
    // Three nodes a, b, c and one exclusive group web on a, b, c with resource web-app;
    // directives change it.
    let mut spec = simple_spec(3, 1);
    for (n, name) in spec.nodes.iter_mut().zip(["a", "b", "c"]) {
        n.name = name.into();
    }
    spec.groups[0].name = "web".into();
    spec.groups[0].resources[0].name = "web-app".into();
    let mut setup = Vec::new();
    let mut request = Vec::new();
    let mut expect = String::new();
    for line in lines
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        match words[0].as_str() {
            "witness" => spec.nodes.push(NodeSpec {
                name: words[1].clone(),
                capacity: u32::MAX,
                witness: true,
            }),
            "clone" => spec.groups[0].kind = GroupKind::Clone { copies: None },
            "nodes" => {
                spec.groups[0].nodes = words[1..].iter().map(|n| node(&spec, n)).collect();
            }
            "request" => request = words[1..].to_vec(),
            "expect" => expect = words[1..].join(" "),
            _ => setup.push(words),
        }
    }
    let mut state = ClusterState::new(&spec);
    let mut alive = vec![true; spec.nodes.len()];
    for (epoch, words) in (1..).zip(setup) {
        let arg = |k: usize| node(&spec, &words[k]);
        match words[0].as_str() {
            "down" => alive[usize::from(arg(1))] = false,
            "standby" => state.standby[usize::from(arg(1))] = true,
            "failed" => state.groups[0].failures[usize::from(arg(1))] = 1,
            "maintenance" => state.maintenance = true,
            "run" => state.groups[0].instances.push(Instance {
                node: arg(1),
                epoch,
                phase: Phase::Active,
                stop_cause: None,
            }),
            other => panic!("{title}: unknown directive {other}"),
        }
    }
    Case {
        title,
        spec,
        state,
        alive,
        request,
        expect,
    }
}

fn request(words: &[String]) -> AdminRequest<'_> {
    let w = |k: usize| words.get(k).map(String::as_str);
    let on = |k: usize| w(k) == Some("on");
    match w(0) {
        Some("move") => AdminRequest::Move {
            group: w(1).unwrap_or_default(),
            node: w(2),
        },
        Some("standby") => AdminRequest::Standby {
            node: w(1).unwrap_or_default(),
            on: true,
        },
        Some("unstandby") => AdminRequest::Standby {
            node: w(1).unwrap_or_default(),
            on: false,
        },
        Some("maintenance") => AdminRequest::Maintenance { on: on(1) },
        Some("failback") => AdminRequest::Failback {
            group: w(1).unwrap_or_default(),
        },
        Some("clear") => AdminRequest::Clear {
            target: w(1).unwrap_or_default(),
        },
        other => panic!("unknown request {other:?}"),
    }
}

#[test]
fn admin_cases() {
    let cases = parse_cases(include_str!("../testdata/admin.txt"));
    assert!(cases.len() >= 10, "the case file was read");
    let mut failed = Vec::new();
    for c in &cases {
        let got = match resolve(&c.spec, &c.state, &c.alive, request(&c.request)) {
            Ok(r) => format!("ok {}", r.what),
            Err(why) => format!("refused {why}"),
        };
        let (kind, text) = c.expect.split_once(' ').unwrap_or((&c.expect, ""));
        let pass = got.starts_with(kind) && got.contains(text);
        if !pass {
            failed.push(format!("{}: expected {}, got {got}", c.title, c.expect));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
