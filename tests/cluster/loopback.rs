//! The loopback network of the cluster harness: a three-node config on
//! 127.<81 + path>.<test>.<node + 1> (each test passes its own `test` byte so tests never
//! share addresses), one group "demo" of one application, `sleep 1000`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{one_at_a_time, Cluster, Network};

/// The bound of every wait: generous, so that only a hang fails a test.
pub const WAIT: Duration = Duration::from_secs(30);
/// The group's application resource.
pub const APP: &str = "demo-app";

/// The group of the cluster: one application resource.
#[derive(Clone, Debug)]
pub struct Opts {
    /// `manual` or `auto`.
    pub failback: &'static str,
    /// A failback window, if any.
    pub window: Option<String>,
    /// Local restarts before failover.
    pub max_restarts: u32,
    /// Add a disk path on a temp file.
    pub disk: bool,
    /// Leases and failure detection long enough for a core to restart inside its lease
    /// ([`RESTART_TIMING`]).
    pub long_lease: bool,
    /// Add to the group an OCF resource whose stop always fails ([`STUCK_AGENT`]).
    pub stuck: bool,
    /// Appended to the config (`@DIR@`: the cluster's directory).
    pub extra: String,
}

/// An OCF agent whose stop always fails: a resource its node cannot let go of. Its state is
/// per node (the node's name from its daemon's environment: every node runs on this machine).
pub const STUCK_AGENT: &str = r#"#!/bin/sh
node=$(tr '\0' '\n' < /proc/$PPID/environ | sed -n 's/^ETERNE_TEST_NODE=//p')
state="@DIR@/stuck-$node"
case "$1" in
  start) : > "$state"; exit 0 ;;
  stop) echo "this resource cannot be stopped" >&2; exit 1 ;;
  monitor) if [ -e "$state" ]; then exit 0; else exit 7; fi ;;
  meta-data) echo '<?xml version="1.0"?><resource-agent name="stuck" version="1.0"><version>1.0</version><parameters/><actions><action name="start" timeout="5s"/><action name="stop" timeout="5s"/><action name="monitor" timeout="5s"/><action name="meta-data" timeout="5s"/><action name="validate-all" timeout="5s"/></actions></resource-agent>'; exit 0 ;;
  validate-all) exit 0 ;;
  *) exit 3 ;;
esac
"#;

/// `[timing]` for the monitor-process tests: a 1.5 s lease (a debug core restarts well inside
/// it), failure detection of 200 ms × 10, raft ticks of 100 ms.
pub const RESTART_TIMING: &str = "[timing]\nlease_ms = 1500\nlease_renew_ms = 200\nmax_clock_drift = 0.01\ntakeover_margin_ms = 100\nstop_budget_ms = 300\nraft_tick_ms = 100\nelection_ticks = 25\nheartbeat_ticks = 2\n";

impl Default for Opts {
    fn default() -> Self {
        Opts {
            failback: "manual",
            window: None,
            max_restarts: 3,
            disk: false,
            long_lease: false,
            stuck: false,
            extra: String::new(),
        }
    }
}

/// The address of `node` (0-based) on `path` in test `test`.
pub fn addr(test: u8, path: u8, node: usize) -> String {
    format!("127.{}.{}.{}:7400", 81 + path, test, node + 1)
}

/// The config text of a three-node cluster with one group "demo" of one application.
pub fn config_text(test: u8, dir: &Path, o: &Opts) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "[cluster]\nname = \"loop{test}\"\n");
    let _ = writeln!(c, "[monitor]\nquick_interval_ms = 500\nquick_timeout_ms = 400\nstart_timeout_ms = 5000\nstop_timeout_ms = 3000\n");
    let (interval_ms, misses) = if o.long_lease {
        let _ = writeln!(c, "{RESTART_TIMING}");
        (200, 10)
    } else {
        (50, 4)
    };
    for p in ["lan", "backplane"] {
        let _ = writeln!(
            c,
            "[[path]]\nname = \"{p}\"\nkind = \"network\"\ninterval_ms = {interval_ms}\nmisses = {misses}\n"
        );
    }
    if o.disk {
        let dev = dir.join("disk.img");
        let _ = std::fs::write(&dev, vec![0u8; 64 * 1024]);
        let _ = writeln!(c, "[[path]]\nname = \"shared\"\nkind = \"disk\"\ndevice = \"{}\"\ninterval_ms = 50\nmisses = 6\n", dev.display());
    }
    for n in 0..3 {
        let _ = writeln!(
            c,
            // Never `reboot`: a failed hard stop must not reboot the machine running the tests.
            "[[node]]\nname = \"n{}\"\naddresses = {{ lan = \"{}\", backplane = \"{}\" }}\non_stop_failure = \"exit\"\n",
            n + 1,
            addr(test, 0, n),
            addr(test, 1, n)
        );
    }
    let _ = writeln!(c, "[[group]]\nname = \"demo\"\nnodes = [\"n1\", \"n2\", \"n3\"]\nfailback = \"{}\"\nmax_restarts = {}\nrestart_window_ms = 60000", o.failback, o.max_restarts);
    if let Some(w) = &o.window {
        let _ = writeln!(c, "failback_window = \"{w}\"");
    }
    let _ = writeln!(c, "\n  [[group.resource]]\n  name = \"{APP}\"\n  type = \"application\"\n  params = {{ command = \"sleep 1000\" }}\n");
    if o.stuck {
        let agents = dir.join("ocf/resource.d/eterne-test");
        let _ = std::fs::create_dir_all(&agents);
        let script = STUCK_AGENT.replace("@DIR@", &dir.display().to_string());
        let file = agents.join("stuck");
        let _ = std::fs::write(&file, script);
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755));
        let _ = writeln!(c, "  [[group.resource]]\n  name = \"stuck\"\n  type = \"ocf\"\n  params = {{ type = \"stuck\", provider = \"eterne-test\", ocf_root = \"{}\" }}\n", dir.join("ocf").display());
    }
    c.push_str(&o.extra.replace("@DIR@", &dir.display().to_string()));
    c
}

impl Cluster {
    /// Three daemons on loopback (the `eterned` built with the tests, with `--test-faults`):
    /// writes the config and certificates; starts nothing. Holds [`one_at_a_time`] until
    /// dropped.
    pub fn loopback(test: u8, o: &Opts) -> Cluster {
        let turn = one_at_a_time();
        let name = format!("loop{test}-{}", std::process::id());
        // Cargo sets it for integration tests only; the bench, which includes this module too,
        // passes its own binary to `loopback_with`.
        let eterned = match option_env!("CARGO_BIN_EXE_eterned") {
            Some(path) => path.into(),
            None => panic!("a loopback cluster runs the eterned built with the tests"),
        };
        let mut c = Cluster::loopback_with(eterned, &name, test, |dir| config_text(test, dir, o));
        for n in &mut c.nodes {
            n.extra = vec!["--test-faults".into()];
        }
        c.wait = WAIT;
        c.every = Duration::from_millis(50);
        c._turn = Some(turn);
        c
    }

    /// Three daemons n1..n3 of `eterned` on loopback with the config `config` writes (given
    /// the scratch directory): the certificates, no test faults, no turn held (for
    /// `eterne-bench`, which runs a release build and its own config); starts nothing.
    pub fn loopback_with(
        eterned: PathBuf,
        name: &str,
        test: u8,
        config: impl FnOnce(&Path) -> String,
    ) -> Cluster {
        Cluster::create(name, 3, eterned, Network::Loopback { test }, config)
    }
}
