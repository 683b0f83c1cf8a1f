//! The config loader and validator: bytes → UTF-8 → TOML → schema → validation, as
//! [`ClusterConfig::load`] does after reading the file; a config that passes is resolved and
//! digested too, as the daemon does next.

use crate::config::{input, ClusterConfig};
use crate::fuzz::mutate::pick;
use crate::fuzz::text::{self, Syntax};
use crate::fuzz::{kind_of, Outcome, Target};
use crate::policy::rng::Rng;

/// The example configs, built in so that the corpus is the same wherever the binary runs.
const EXAMPLES: [&str; 6] = [
    include_str!("../../../config/clone-group.toml"),
    include_str!("../../../config/m-to-n.toml"),
    include_str!("../../../config/n-plus-1.toml"),
    include_str!("../../../config/three-node.toml"),
    include_str!("../../../config/two-node-fencing.toml"),
    include_str!("../../../config/two-node-witness.toml"),
];

/// Keys and values of the schema.
const WORDS: &[&str] = &[
    "action",
    "addresses",
    "agent",
    "anti_affinity",
    "ca",
    "capacity",
    "cluster",
    "command",
    "copies",
    "cron",
    "deep",
    "deep_interval_ms",
    "deep_timeout_ms",
    "delay_ms",
    "depends_on",
    "device",
    "election_ticks",
    "events",
    "failback",
    "failback_window",
    "fencing",
    "group",
    "heartbeat_ticks",
    "interval_ms",
    "kind",
    "lease_ms",
    "lease_renew_ms",
    "load",
    "max_clock_drift",
    "max_restarts",
    "method",
    "misses",
    "mode",
    "monitor",
    "monitor_interval_ms",
    "name",
    "no_automatic_failover_across_partition",
    "node_params",
    "nodes",
    "on_stop_failure",
    "params",
    "path",
    "pill_timeout_ms",
    "quick",
    "quick_interval_ms",
    "quick_timeout_ms",
    "raft_tick_ms",
    "resource",
    "restart_window_ms",
    "restart_backoff_ms",
    "restart_backoff_max_ms",
    "failure_timeout_ms",
    "schedule",
    "slot_bytes",
    "socket",
    "start_timeout_ms",
    "stickiness",
    "stop_budget_ms",
    "stop_timeout_ms",
    "takeover_margin_ms",
    "target_arg",
    "targets",
    "timeout_ms",
    "timing",
    "to",
    "url",
    "witness",
    "network",
    "disk",
    "reboot",
    "exit",
    "agent",
    "poison_pill",
    "off",
    "plug",
    "port",
    "exclusive",
    "clone",
    "manual",
    "auto",
    "log",
    "script",
    "webhook",
    "application",
    "ip",
    "service",
    "filesystem",
    "disk_lock",
    "ocf",
    "notification",
];

/// Lines worth inserting.
const LINES: &[&str] = &[
    "[cluster]\n",
    "[timing]\n",
    "[monitor]\n",
    "[fencing]\n",
    "[[path]]\n",
    "[[node]]\n",
    "[[group]]\n",
    "[[group.resource]]\n",
    "[[schedule]]\n",
    "[[notification]]\n",
    "[group]\n",
    "name = \"n1\"\n",
    "name = \"\"\n",
    "kind = \"disk\"\n",
    "device = \"/dev/null\"\n",
    "witness = true\n",
    "mode = \"clone\"\n",
    "copies = 3\n",
    "nodes = [\"n1\", \"n1\", \"n2\"]\n",
    "depends_on = [\"a\", \"b\"]\n",
    "anti_affinity = [\"web\"]\n",
    "type = \"application\"\n",
    "params = { command = \"/bin/true\" }\n",
    "addresses = { lan = \"10.0.0.1:7400\" }\n",
    "cron = \"*/5 * * * *\"\n",
    "method = \"poison_pill\"\n",
    "a.b.c = 1\n",
    "x = 1979-05-27\n",
    "# comment\n",
    "\n",
];

/// The `config` target.
pub struct ConfigTarget {
    seeds: Vec<Vec<u8>>,
}

impl ConfigTarget {
    /// The examples, and the broken configs of `tests/configs` where the source tree is.
    pub fn new() -> ConfigTarget {
        let mut seeds: Vec<Vec<u8>> = EXAMPLES.iter().map(|s| s.as_bytes().to_vec()).collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/broken");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            seeds.extend(paths.iter().filter_map(|p| std::fs::read(p).ok()));
        }
        ConfigTarget { seeds }
    }
}

impl Default for ConfigTarget {
    fn default() -> ConfigTarget {
        ConfigTarget::new()
    }
}

impl Target for ConfigTarget {
    fn name(&self) -> &'static str {
        "config"
    }

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        Some(generate(rng).into_bytes())
    }

    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, _corpus: &[Vec<u8>]) {
        text::mutate(rng, input, Syntax::Toml, WORDS, LINES);
    }

    fn max_len(&self) -> usize {
        256 * 1024
    }

    fn is_text(&self) -> bool {
        true
    }

    fn exec(&self, bytes: &[u8]) -> Result<Outcome, String> {
        let text = match input::decode(bytes, "fuzz.toml") {
            Ok(t) => t,
            Err(e) => return Ok(Outcome::Refused(format!("input: {}", kind_of(&e.message)))),
        };
        match ClusterConfig::from_str(text, "fuzz.toml") {
            Ok(config) => {
                let spec = config.spec();
                let digest = config.digest();
                if spec.digest != digest {
                    return Err(format!(
                        "spec digest {:#x} differs from the config's {digest:#x}",
                        spec.digest
                    ));
                }
                let _ = crate::policy::entry::Keys::new(&spec);
                Ok(Outcome::Accepted)
            }
            Err(errors) => match errors.errors.first() {
                Some(e) => Ok(Outcome::Refused(kind_of(&e.message))),
                None => Err("refused with an empty list of errors".to_string()),
            },
        }
    }
}

/// A config of random shape: up to the count limits, names that may collide, dependency
/// chains, clone groups, schedules; mostly small, now and then large.
fn generate(rng: &mut Rng) -> String {
    // Now and then one dimension at (or just past) its limit: nodes, groups, or resources.
    let big = if rng.chance(50_000) {
        rng.range(1, 4)
    } else {
        0
    };
    let nodes = if big == 1 {
        rng.range(60, 70)
    } else {
        rng.range(1, 8)
    } as usize;
    let groups = if big == 2 {
        rng.range(1000, 1030)
    } else {
        rng.range(0, 6)
    } as usize;
    let paths = rng.range(1, 4) as usize;
    let mut out = format!("[cluster]\nname = \"g{}\"\n", rng.range(0, 3));
    if rng.chance(300_000) {
        let lease = *pick(rng, &[1u64, 150, 1500, 60_000, 4_294_967_295]);
        out.push_str(&format!(
            "[timing]\nlease_ms = {lease}\nlease_renew_ms = {}\nstop_budget_ms = {}\n",
            lease / 5,
            lease / 3
        ));
    }
    for p in 0..paths {
        out.push_str(&format!("[[path]]\nname = \"p{p}\"\nkind = \"network\"\n"));
    }
    for n in 0..nodes {
        let name = if rng.chance(20_000) { 0 } else { n };
        let addrs: Vec<String> = (0..paths)
            .map(|p| format!("p{p} = \"10.{p}.{}.{}:7400\"", n / 250, n % 250 + 1))
            .collect();
        out.push_str(&format!(
            "[[node]]\nname = \"n{name}\"\naddresses = {{ {} }}\n",
            addrs.join(", ")
        ));
        if rng.chance(100_000) {
            out.push_str("witness = true\n");
        }
    }
    for g in 0..groups {
        let list: Vec<String> = (0..rng.range(1, nodes as u64 + 2))
            .map(|_| format!("\"n{}\"", rng.range(0, nodes as u64 + 1)))
            .collect();
        out.push_str(&format!(
            "[[group]]\nname = \"g{g}\"\nnodes = [{}]\n",
            list.join(", ")
        ));
        if rng.chance(200_000) {
            out.push_str(&format!("mode = \"clone\"\ncopies = {}\n", rng.range(0, 4)));
        }
        if rng.chance(100_000) {
            out.push_str(&format!(
                "anti_affinity = [\"g{}\"]\n",
                rng.range(0, groups as u64)
            ));
        }
        let resources = if big == 3 {
            rng.range(60, 70)
        } else {
            rng.range(1, 5)
        };
        for r in 0..resources {
            out.push_str(&format!(
                "  [[group.resource]]\n  name = \"g{g}-r{r}\"\n  type = \"application\"\n  params = {{ command = \"/bin/sleep 1\" }}\n"
            ));
            if r > 0 {
                // Usually the one before (a chain); sometimes a later one (a cycle) or all.
                let dep = match rng.range(0, 10) {
                    0 => (r + 1) % resources,
                    1 => rng.range(0, resources),
                    _ => r - 1,
                };
                out.push_str(&format!("  depends_on = [\"g{g}-r{dep}\"]\n"));
            }
        }
    }
    if groups > 0 && rng.chance(200_000) {
        for _ in 0..rng.range(1, if big == 2 { 300 } else { 4 }) {
            out.push_str(&format!(
                "[[schedule]]\ngroup = \"g{}\"\ncron = \"{} {} * * *\"\n",
                rng.range(0, groups as u64),
                rng.range(0, 61),
                rng.range(0, 25)
            ));
        }
    }
    out
}
