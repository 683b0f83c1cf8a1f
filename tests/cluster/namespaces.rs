//! The namespace network of the cluster harness (design.md §10.4): one `eterned` per network
//! namespace, wired through bridges that live in a "switch" namespace of their own, so nothing
//! of the test touches the host's network.
//!
//! ```text
//!   switch ns ({p}-sw): brpub (public, 192.0.2.0/24), brhb1 (198.51.100.0/24), brhb2 (203.0.113.0/24)
//!   node ns ({p}-nK):   pub0 192.0.2.1K [pub1 192.0.2.2K], hb1 198.51.100.1K, hb2 203.0.113.1K
//!   client ns ({p}-cl): pub0 192.0.2.100
//!   floating address:   192.0.2.10/24 (the group's `ip` resource)
//! ```
//!
//! The heartbeat paths are the two private bridges only; the public bridge carries the
//! clients. Every address is in a TEST-NET range and exists only inside these namespaces.
//!
//! Each `eterned` runs as `ip netns exec NS sh -c 'mount tmpfs /run/resource-agents; exec
//! eterned …'`: `ip netns exec` gives it a mount namespace of its own (so its mounts are seen in
//! `/proc/<pid>/mountinfo`, not on the host), and the private `/run/resource-agents` gives each
//! node its own OCF state directory, as separate machines have.
//!
//! Faults: a node crash (kill -9 of everything in the node's namespace, its links down and the
//! floating address forgotten, as a power cut does), a NIC down, a partition from the peers on
//! every private path with nftables (the public net still works), one-way random loss, an
//! application crash.
//!
//! Observers: a [`Probe`] in the client namespace connects to the floating address every few
//! milliseconds and records who answered; an [`AddrWatch`] reads every node's addresses through
//! netlink in a loop and records who held the floating address when; an [`OwnerWatch`] takes
//! one sample of every node at a time (who holds the address, who runs the application) and
//! counts the samples in which two nodes do; [`Cluster::mounted`] reads a daemon's mountinfo.
//!
//! Everything is undone in `Drop` (processes, namespaces — which take their veths and bridges
//! with them — loop devices), also when a test panics. Every loop is bounded in count and time.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::loopback::RESTART_TIMING;
use super::{is_root, running, Cluster, Network};

/// The bound of every wait: generous, so that only a hang fails a test.
pub const WAIT: Duration = Duration::from_secs(40);
/// The floating address (without prefix).
pub const FLOATING: &str = "192.0.2.10";
/// The port the group's application answers on.
pub const APP_PORT: u16 = 8080;
/// The client's address on the public bridge.
pub const CLIENT: &str = "192.0.2.100";
/// Heartbeat interval and misses of both private paths.
pub const HB_INTERVAL_MS: u32 = 50;
/// See [`HB_INTERVAL_MS`].
pub const HB_MISSES: u32 = 4;

/// Why the namespace tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces, nftables, loop devices)".into());
    }
    for tool in ["ip", "nft", "losetup", "mkfs.ext4", "nsenter"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        if !found {
            return Some(format!(
                "`{tool}` not found (bash scripts/setup.sh installs it)"
            ));
        }
    }
    if !Path::new(PYTHON).exists() {
        return Some(format!("{PYTHON} not found (the test application)"));
    }
    None
}

/// Whether namespace test `test` must skip: true, after printing one line saying why, when
/// [`unavailable`] says it cannot run here.
pub fn skip(test: &str) -> bool {
    match unavailable() {
        Some(why) => {
            println!("SKIPPED {test}: {why}");
            true
        }
        None => false,
    }
}

/// The interpreter of the test application (the system one: fast to start).
pub const PYTHON: &str = "/usr/bin/python3";

/// Microseconds since the Unix epoch (the event log's `unix_us`).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Runs a command, bounded; Err with its output when it fails.
pub fn sh(args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{}: timed out", args.join(" ")));
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{} failed: {}{}",
            args.join(" "),
            text,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Panics with the command's error.
fn must(args: &[&str]) -> String {
    sh(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Enters network namespace `ns` on the calling thread only.
pub fn enter_netns(ns: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(Path::new("/run/netns").join(ns))?;
    // SAFETY: setns with a namespace fd we own; affects this thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The network: namespaces, bridges, veths. Deleting the namespaces deletes the rest.
pub struct Net {
    /// The unique prefix of every namespace of this test.
    pub prefix: String,
    /// The switch namespace (bridges).
    pub switch: String,
    /// The node namespaces, n1..nN.
    pub nodes: Vec<String>,
    /// The client namespace.
    pub client: String,
    /// Namespaces created so far (deleted in Drop).
    created: Vec<String>,
}

impl Net {
    /// `n` nodes; node 1 gets a second public NIC `pub1` when `second_nic`.
    pub fn new(test: &str, n: usize, second_nic: bool) -> Net {
        Net::with_prefix(
            format!("et{}-{test}", std::process::id() % 1000),
            n,
            second_nic,
        )
    }

    /// As [`Net::new`], every namespace named `{prefix}-…`.
    pub fn with_prefix(prefix: String, n: usize, second_nic: bool) -> Net {
        let mut net = Net {
            switch: format!("{prefix}-sw"),
            nodes: (1..=n).map(|i| format!("{prefix}-n{i}")).collect(),
            client: format!("{prefix}-cl"),
            prefix,
            created: Vec::new(),
        };
        // A namespace left by an earlier run of the same pid and test would clash.
        for ns in std::iter::once(&net.switch)
            .chain(&net.nodes)
            .chain(std::iter::once(&net.client))
        {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        let sw = net.switch.clone();
        net.add_ns(&sw);
        for br in ["brpub", "brhb1", "brhb2"] {
            must(&["ip", "-n", &sw, "link", "add", br, "type", "bridge"]);
            // No STP delay: a port forwards at once.
            must(&[
                "ip",
                "-n",
                &sw,
                "link",
                "set",
                br,
                "type",
                "bridge",
                "forward_delay",
                "0",
            ]);
            must(&["ip", "-n", &sw, "link", "set", br, "up"]);
        }
        for (i, ns) in net.nodes.clone().iter().enumerate() {
            net.add_ns(ns);
            let k = i + 1;
            net.plug(
                ns,
                &format!("n{k}pub0"),
                "pub0",
                "brpub",
                &format!("192.0.2.1{k}/24"),
            );
            if second_nic && k == 1 {
                net.plug(
                    ns,
                    &format!("n{k}pub1"),
                    "pub1",
                    "brpub",
                    &format!("192.0.2.2{k}/24"),
                );
            }
            net.plug(
                ns,
                &format!("n{k}hb1"),
                "hb1",
                "brhb1",
                &format!("198.51.100.1{k}/24"),
            );
            net.plug(
                ns,
                &format!("n{k}hb2"),
                "hb2",
                "brhb2",
                &format!("203.0.113.1{k}/24"),
            );
            // A link that lost carrier keeps its routes unless told otherwise; a real NIC
            // failure must not leave replies routed into a dead port.
            for key in ["all", "default"] {
                let _ = sh(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv4.conf.{key}.ignore_routes_with_linkdown=1"),
                ]);
            }
        }
        let cl = net.client.clone();
        net.add_ns(&cl);
        net.plug(&cl, "clpub0", "pub0", "brpub", &format!("{CLIENT}/24"));
        net
    }

    fn add_ns(&mut self, ns: &str) {
        must(&["ip", "netns", "add", ns]);
        self.created.push(ns.to_string());
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    /// A veth from bridge `br` of the switch into `ns` as `inner`, with `cidr`.
    fn plug(&self, ns: &str, outer: &str, inner: &str, br: &str, cidr: &str) {
        let sw = &self.switch;
        must(&[
            "ip", "-n", sw, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns",
            ns,
        ]);
        must(&["ip", "-n", sw, "link", "set", outer, "master", br, "up"]);
        must(&["ip", "-n", ns, "addr", "add", cidr, "dev", inner]);
        must(&["ip", "-n", ns, "link", "set", inner, "up"]);
    }

    /// The switch-side name of node `i`'s (0-based) `nic`.
    pub fn outer(&self, i: usize, nic: &str) -> String {
        format!("n{}{nic}", i + 1)
    }

    /// Node `i`'s address on heartbeat path `hb` (1 or 2).
    pub fn hb_addr(i: usize, hb: u8) -> String {
        match hb {
            1 => format!("198.51.100.1{}", i + 1),
            _ => format!("203.0.113.1{}", i + 1),
        }
    }

    /// Sets link `nic` of node namespace `i` up or down.
    pub fn link(&self, i: usize, nic: &str, up: bool) -> Result<(), String> {
        sh(&[
            "ip",
            "-n",
            &self.nodes[i],
            "link",
            "set",
            nic,
            if up { "up" } else { "down" },
        ])
        .map(|_| ())
    }

    /// Pids of every process in node namespace `i`.
    pub fn pids(&self, i: usize) -> Vec<i32> {
        sh(&["ip", "netns", "pids", &self.nodes[i]])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Drops every packet between node `i` and its peers on both private paths (nftables in
    /// node `i`'s namespace); the public net is untouched. `loss_pct` < 100 drops that share at
    /// random, outbound only (one-way loss).
    pub fn partition(&self, i: usize, loss_pct: u32) -> Result<(), String> {
        let peers: Vec<String> = (0..self.nodes.len())
            .filter(|&j| j != i)
            .flat_map(|j| [Net::hb_addr(j, 1), Net::hb_addr(j, 2)])
            .collect();
        let set = peers.join(", ");
        let mut rules = String::from("table inet eterne_fault {\n");
        if loss_pct >= 100 {
            let _ = writeln!(
                rules,
                "  chain in {{ type filter hook input priority 0; ip saddr {{ {set} }} drop; }}"
            );
            let _ = writeln!(
                rules,
                "  chain out {{ type filter hook output priority 0; ip daddr {{ {set} }} drop; }}"
            );
        } else {
            let _ = writeln!(
                rules,
                "  chain out {{ type filter hook output priority 0; ip daddr {{ {set} }} numgen random mod 100 < {loss_pct} drop; }}"
            );
        }
        rules.push_str("}\n");
        let file = std::env::temp_dir().join(format!("{}-nft-{i}.nft", self.prefix));
        std::fs::write(&file, rules).map_err(|e| e.to_string())?;
        let r = sh(&[
            "ip",
            "netns",
            "exec",
            &self.nodes[i],
            "nft",
            "-f",
            &file.to_string_lossy(),
        ]);
        let _ = std::fs::remove_file(&file);
        r.map(|_| ())
    }

    /// Removes node `i`'s fault rules.
    pub fn heal(&self, i: usize) {
        let _ = sh(&[
            "ip",
            "netns",
            "exec",
            &self.nodes[i],
            "nft",
            "delete",
            "table",
            "inet",
            "eterne_fault",
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Whatever still runs inside (an application an eterned started, a stray helper):
        // only processes in our namespaces are signalled.
        for ns in self.created.iter().rev() {
            let pids = sh(&["ip", "netns", "pids", ns]).unwrap_or_default();
            for p in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: kill of a pid that `ip netns pids` listed in our namespace.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
        for ns in self.created.iter().rev() {
            let mut tries = 0;
            while sh(&["ip", "netns", "del", ns]).is_err() && tries < 20 {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A loop device on a temp file: the shared disk every node sees (one host, one /dev).
pub struct LoopDisk {
    /// The backing file.
    pub file: PathBuf,
    /// `/dev/loopN`.
    pub dev: String,
}

impl LoopDisk {
    /// A zeroed disk of `mib` MiB.
    pub fn new(file: PathBuf, mib: u64) -> Result<LoopDisk, String> {
        let f = std::fs::File::create(&file).map_err(|e| e.to_string())?;
        f.set_len(mib * 1024 * 1024).map_err(|e| e.to_string())?;
        drop(f);
        let dev = sh(&["losetup", "-f", "--show", &file.to_string_lossy()])?
            .trim()
            .to_string();
        if !dev.starts_with("/dev/loop") {
            return Err(format!("losetup gave {dev:?}"));
        }
        Ok(LoopDisk { file, dev })
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = sh(&["losetup", "-d", &self.dev]);
        let _ = std::fs::remove_file(&self.file);
    }
}

/// What the group holds, besides the address and the answering application.
#[derive(Clone, Debug, Default)]
pub struct GroupOpts {
    /// NICs of the `ip` resource (default `"pub0"`).
    pub nics: Option<String>,
    /// A `disk_lock` lease device and an ext4 device mounted at `<scratch>/mnt` before the
    /// application (which then runs with the mount as cwd).
    pub disk: Option<(String, String)>,
    /// The address by OCF (`Dummy` + `IPaddr2`) instead of the built-in `ip` agent.
    pub ocf: bool,
    /// Local restarts before failover.
    pub max_restarts: Option<u32>,
    /// Timing for agents whose stop takes longer than the default `stop_budget_ms` (60 ms):
    /// an OCF `IPaddr2` stop is a shell script of about 90 ms. See [`SLOW_TIMING`].
    pub slow_timing: bool,
    /// A lease long enough for a core to restart inside it, with failure detection longer
    /// than the lease (the loopback harness's [`RESTART_TIMING`], heartbeats 200 ms × 10):
    /// for the tests of the monitor process, whose debug core must come back before its
    /// lease's stop point. Takes precedence over `slow_timing`.
    pub long_lease: bool,
}

/// `[timing]` and heartbeats for slow agents: a stop budget of 300 ms needs a lease above it,
/// and a lease must be shorter than failure detection (here 100 ms × 6).
pub const SLOW_TIMING: &str = "[timing]\nlease_ms = 500\nlease_renew_ms = 100\nmax_clock_drift = 0.01\ntakeover_margin_ms = 100\nstop_budget_ms = 300\nraft_tick_ms = 50\nelection_ticks = 20\nheartbeat_ticks = 2\n";

/// The test application: answers every connection with the node's name (from the daemon's
/// environment, which the `application` agent passes on) and, when asked with a line
/// "read NAME", with the contents of NAME in its cwd.
const ANSWER_PY: &str = r#"import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(128)
me = os.environ.get("ETERNE_TEST_NODE", "?").encode()
while True:
    c, _ = s.accept()
    try:
        c.sendall(me)
    except OSError:
        pass
    c.close()
"#;

impl Cluster {
    /// A cluster of one daemon per node namespace of `net` (the `eterned` binary given, so
    /// the bench can run a release build) with one group "web" as `g` says: writes the config,
    /// the certificates and the test application; starts nothing.
    pub fn namespaces(eterned: PathBuf, net: Net, g: &GroupOpts) -> Cluster {
        Cluster::namespaces_with(eterned, net, g, |_| String::new())
    }

    /// As [`Cluster::namespaces`], with `extra(dir)` appended to the config (a `[fencing]`
    /// section, say; it may write files into the scratch directory `dir`).
    pub fn namespaces_with(
        eterned: PathBuf,
        net: Net,
        g: &GroupOpts,
        extra: impl FnOnce(&Path) -> String,
    ) -> Cluster {
        let (prefix, n) = (net.prefix.clone(), net.nodes.len());
        let mut c = Cluster::create(&prefix, n, eterned, Network::Namespaces(net), |dir| {
            let mut text = config_text(&prefix, n, dir, &dir.join("mnt"), g);
            text.push_str(&extra(dir));
            text
        });
        std::fs::write(c.dir.join("answer.py"), ANSWER_PY).expect("answer.py");
        let _ = std::fs::create_dir_all("/run/resource-agents");
        c.wait = WAIT;
        c.every = Duration::from_millis(20);
        c
    }

    /// Node crash, as a power cut: kill -9 of every process in the node's namespace (eterned
    /// first), its links down, the floating address forgotten (RAM is gone).
    pub fn crash(&mut self, i: usize) {
        self.kill_daemon(i);
        for p in self.net().pids(i) {
            // SAFETY: a pid that `ip netns pids` listed in our node namespace.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
        for nic in self.nics(i) {
            let _ = self.net().link(i, &nic, false);
        }
        self.forget_floating(i);
    }

    /// After [`Cluster::crash`]: links up, daemon started (a reboot).
    pub fn reboot(&mut self, i: usize) {
        for nic in self.nics(i) {
            let _ = self.net().link(i, &nic, true);
        }
        self.start(i);
    }

    /// After a fence agent powered node `i` off (links down, addresses flushed, every
    /// process killed): what a boot does — faults healed, the static addresses of its NICs
    /// configured again, links up — then the daemon started.
    pub fn power_on(&mut self, i: usize) {
        self.kill_daemon(i);
        self.net().heal(i);
        let k = i + 1;
        let ns = self.net().nodes[i].clone();
        for nic in self.nics(i) {
            let cidr = match nic.as_str() {
                "pub0" => format!("192.0.2.1{k}/24"),
                "pub1" => format!("192.0.2.2{k}/24"),
                "hb1" => format!("{}/24", Net::hb_addr(i, 1)),
                _ => format!("{}/24", Net::hb_addr(i, 2)),
            };
            // Already there (a node that was never flushed) is fine.
            let _ = sh(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", &nic]);
            let _ = self.net().link(i, &nic, true);
        }
        self.start(i);
    }

    /// Removes the floating address from node `i`, wherever it is.
    fn forget_floating(&self, i: usize) {
        for nic in self.nics(i) {
            let _ = sh(&[
                "ip",
                "-n",
                &self.net().nodes[i],
                "addr",
                "del",
                &format!("{FLOATING}/24"),
                "dev",
                &nic,
            ]);
        }
    }

    /// Node `i`'s NICs (not lo).
    pub fn nics(&self, i: usize) -> Vec<String> {
        let mut v = vec!["pub0".to_string()];
        if sh(&["ip", "-n", &self.net().nodes[i], "link", "show", "pub1"]).is_ok() {
            v.push("pub1".into());
        }
        v.extend(["hb1".to_string(), "hb2".to_string()]);
        v
    }

    /// Lines of node `i`'s eterned mountinfo whose mount point is the shared mount.
    pub fn mounted(&self, i: usize) -> bool {
        let Some(pid) = self.daemon_pid(i) else {
            return false;
        };
        mounted_in(pid, &self.mnt)
    }
}

/// Whether `/proc/<pid>/mountinfo` has a mount at `mnt`.
pub fn mounted_in(pid: i32, mnt: &Path) -> bool {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let want = mnt.to_string_lossy();
    text.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

/// The config: n nodes on the two private paths, one group "web".
pub fn config_text(prefix: &str, n: usize, dir: &Path, mnt: &Path, g: &GroupOpts) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "[cluster]\nname = \"{prefix}\"\n");
    let _ = writeln!(c, "[monitor]\nquick_interval_ms = 500\nquick_timeout_ms = 400\nstart_timeout_ms = 8000\nstop_timeout_ms = 4000\n");
    let (interval_ms, misses) = if g.long_lease {
        let _ = writeln!(c, "{RESTART_TIMING}");
        (200, 10)
    } else if g.slow_timing {
        let _ = writeln!(c, "{SLOW_TIMING}");
        (100, 6)
    } else {
        (HB_INTERVAL_MS, HB_MISSES)
    };
    for p in ["hb1", "hb2"] {
        let _ = writeln!(
            c,
            "[[path]]\nname = \"{p}\"\nkind = \"network\"\ninterval_ms = {interval_ms}\nmisses = {misses}\n"
        );
    }
    for i in 0..n {
        let _ = writeln!(
            c,
            // Never `reboot`: a failed hard stop must not reboot the machine running the tests.
            "[[node]]\nname = \"n{}\"\naddresses = {{ hb1 = \"{}:7400\", hb2 = \"{}:7400\" }}\non_stop_failure = \"exit\"\n",
            i + 1,
            Net::hb_addr(i, 1),
            Net::hb_addr(i, 2)
        );
    }
    let nodes: Vec<String> = (1..=n).map(|i| format!("\"n{i}\"")).collect();
    let _ = writeln!(
        c,
        "[[group]]\nname = \"web\"\nnodes = [{}]\nfailback = \"manual\"\nmax_restarts = {}\nrestart_window_ms = 60000\n",
        nodes.join(", "),
        g.max_restarts.unwrap_or(0)
    );
    let mut app_deps: Vec<&str> = Vec::new();
    if let Some((lock, fs)) = &g.disk {
        let _ = writeln!(c, "  [[group.resource]]\n  name = \"web-lock\"\n  type = \"disk_lock\"\n  params = {{ method = \"lease\", device = \"{lock}\", nodes = \"{n}\", lease_ms = \"800\" }}\n");
        let _ = writeln!(c, "  [[group.resource]]\n  name = \"web-fs\"\n  type = \"filesystem\"\n  params = {{ device = \"{fs}\", directory = \"{}\", fstype = \"ext4\" }}\n  depends_on = [\"web-lock\"]\n", mnt.display());
        app_deps.push("web-fs");
    }
    let cwd = if g.disk.is_some() {
        format!(", cwd = \"{}\"", mnt.display())
    } else {
        String::new()
    };
    let _ = writeln!(c, "  [[group.resource]]\n  name = \"web-app\"\n  type = \"application\"\n  params = {{ command = \"{PYTHON} {} {APP_PORT}\", check_tcp = \"127.0.0.1:{APP_PORT}\"{cwd} }}\n  depends_on = [{}]\n", dir.join("answer.py").display(), app_deps.iter().map(|d| format!("\"{d}\"")).collect::<Vec<_>>().join(", "));
    if g.ocf {
        let _ = writeln!(c, "  [[group.resource]]\n  name = \"web-dummy\"\n  type = \"ocf\"\n  params = {{ type = \"Dummy\" }}\n  depends_on = [\"web-app\"]\n");
        let _ = writeln!(c, "  [[group.resource]]\n  name = \"web-ip\"\n  type = \"ocf\"\n  params = {{ type = \"IPaddr2\", ip = \"{FLOATING}\", cidr_netmask = \"24\", nic = \"{}\" }}\n  depends_on = [\"web-dummy\"]\n", g.nics.as_deref().unwrap_or("pub0"));
    } else {
        let _ = writeln!(c, "  [[group.resource]]\n  name = \"web-ip\"\n  type = \"ip\"\n  params = {{ address = \"{FLOATING}/24\", nics = \"{}\", arp_count = \"5\", arp_interval_ms = \"100\" }}\n  depends_on = [\"web-app\"]\n", g.nics.as_deref().unwrap_or("pub0"));
    }
    c
}

/// One probe result: when (since the probe started) and who answered (None: no answer).
pub type Sample = (Duration, Option<String>);

/// A client in the client namespace that connects to the floating address every
/// `every` and records who answered. Stops at `stop()` or after `max` (bounded).
pub struct Probe {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<()>>,
    /// When it started.
    pub t0: Instant,
}

impl Probe {
    /// Starts probing from namespace `ns`.
    pub fn start(ns: &str, every: Duration, max: Duration) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let (s2, v2, ns) = (stop.clone(), samples.clone(), ns.to_string());
        let thread = std::thread::spawn(move || {
            if let Err(e) = enter_netns(&ns) {
                eprintln!("probe: cannot enter {ns}: {e}");
                return;
            }
            let addr: SocketAddr = format!("{FLOATING}:{APP_PORT}").parse().expect("addr");
            let max_count = (max.as_millis() / every.as_millis().max(1)) as usize + 1;
            for _ in 0..max_count {
                if s2.load(Ordering::Relaxed) || t0.elapsed() > max {
                    break;
                }
                let at = t0.elapsed();
                let who = ask(addr);
                if let Ok(mut v) = v2.lock() {
                    v.push((at, who));
                }
                std::thread::sleep(every);
            }
        });
        Probe {
            stop,
            samples,
            thread: Some(thread),
            t0,
        }
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Stops and returns every sample.
    pub fn stop(mut self) -> Vec<Sample> {
        self.halt();
        self.samples()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.halt();
    }
}

/// How long a probe's connect may take. Short, because a SYN sent to the old owner's MAC is
/// lost and the next attempt waits for this timeout: it is the resolution of an outage.
/// Within one bridge an answer takes well under a millisecond.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(20);

/// One connection: the name the application sent, if any, within 100 ms.
fn ask(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    for _ in 0..8 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&got).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The node names that answered, in order, with runs collapsed: `[n1, n2]` for a clean
/// failover; `[n1, n2, n1, …]` means two nodes answered interleaved.
pub fn answer_runs(samples: &[Sample]) -> Vec<String> {
    let mut runs: Vec<String> = Vec::new();
    for who in samples.iter().filter_map(|(_, w)| w.as_ref()) {
        if runs.last() != Some(who) {
            runs.push(who.clone());
        }
    }
    runs
}

/// The outage a client saw after a fault at `after` (time since the probe started): the
/// longest gap between two consecutive answers from the last answer before the fault on.
/// None if no answer came after the fault.
pub fn outage_after(samples: &[Sample], after: Duration) -> Option<Duration> {
    let answered: Vec<Duration> = samples
        .iter()
        .filter(|(_, w)| w.is_some())
        .map(|(t, _)| *t)
        .collect();
    let from = answered.iter().rposition(|t| *t <= after).unwrap_or(0);
    let tail = &answered[from..];
    if !tail.iter().any(|t| *t > after) {
        return None;
    }
    tail.windows(2).map(|w| w[1] - w[0]).max()
}

/// The first answer after `after` by someone other than `old`: (time, who).
pub fn first_answer_by_other(samples: &[Sample], after: Duration, old: &str) -> Option<Sample> {
    samples
        .iter()
        .find(|(t, w)| *t > after && w.as_deref().is_some_and(|w| w != old))
        .cloned()
}

/// Reads every node namespace's addresses through netlink in a loop and records, per node,
/// when it held the floating address: (since start, node index, holds).
pub struct AddrWatch {
    stop: Arc<AtomicBool>,
    changes: Arc<Mutex<Vec<(Duration, usize, bool)>>>,
    threads: Vec<JoinHandle<()>>,
}

impl AddrWatch {
    /// One thread per node namespace, polling every 2 ms, for at most `max`.
    pub fn start(nodes: &[String], t0: Instant, max: Duration) -> AddrWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let want: std::net::IpAddr = FLOATING.parse().expect("addr");
        let threads = nodes
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (stop, changes, ns) = (stop.clone(), changes.clone(), ns.clone());
                std::thread::spawn(move || {
                    if let Err(e) = enter_netns(&ns) {
                        eprintln!("addr watch: cannot enter {ns}: {e}");
                        return;
                    }
                    let Ok(nl) = eterne::resources::ip::netlink::Netlink::open() else {
                        eprintln!("addr watch: no netlink in {ns}");
                        return;
                    };
                    let mut held = false;
                    let max_count = max.as_millis() as usize / 2 + 1;
                    for _ in 0..max_count {
                        if stop.load(Ordering::Relaxed) || t0.elapsed() > max {
                            break;
                        }
                        let now = nl
                            .addrs(libc::AF_INET)
                            .map(|v| v.iter().any(|a| a.addr == want))
                            .unwrap_or(held);
                        if now != held {
                            held = now;
                            if let Ok(mut c) = changes.lock() {
                                c.push((t0.elapsed(), i, now));
                            }
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
            })
            .collect();
        AddrWatch {
            stop,
            changes,
            threads,
        }
    }

    /// Stops; returns the changes in time order.
    pub fn stop(mut self) -> Vec<(Duration, usize, bool)> {
        self.halt();
        let mut v = self.changes.lock().map(|c| c.clone()).unwrap_or_default();
        v.sort_by_key(|c| c.0);
        v
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for AddrWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The most nodes that held the address at once, over a change record.
pub fn max_holders(changes: &[(Duration, usize, bool)]) -> usize {
    let mut held = std::collections::BTreeSet::new();
    let mut max = 0;
    for (_, i, h) in changes {
        if *h {
            held.insert(*i);
        } else {
            held.remove(i);
        }
        max = max.max(held.len());
    }
    max
}

/// One sample of an [`OwnerWatch`]: the nodes (indices) holding the floating address and the
/// nodes running the watched resource, with its pid there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owners {
    /// Nodes whose namespace has the floating address.
    pub address: Vec<usize>,
    /// Nodes where the resource runs (its pidfile names a live process with its start time).
    pub app: Vec<(usize, i32)>,
}

/// What an [`OwnerWatch`] saw.
#[derive(Clone, Debug, Default)]
pub struct OwnerRecord {
    /// Samples taken.
    pub samples: usize,
    /// Samples in which more than one node held the address.
    pub two_addresses: usize,
    /// Samples in which more than one node ran the resource.
    pub two_apps: usize,
    /// The first sample and every sample that differed from the one before: (since `t0`,
    /// what it saw).
    pub changes: Vec<(Duration, Owners)>,
}

impl OwnerRecord {
    /// Whether node `i` held the address and ran the resource as `pid` in every sample.
    pub fn kept_by(&self, i: usize, pid: i32) -> bool {
        !self.changes.is_empty()
            && self
                .changes
                .iter()
                .all(|(_, o)| o.address.contains(&i) && o.app.contains(&(i, pid)))
    }

    /// Whether any sample saw a node other than `i` hold the address or run the resource.
    pub fn elsewhere_than(&self, i: usize) -> bool {
        self.changes
            .iter()
            .any(|(_, o)| o.address.iter().any(|&j| j != i) || o.app.iter().any(|&(j, _)| j != i))
    }
}

/// Samples every `every`, from one thread, every node at once: who holds the floating address
/// (a netlink socket opened in each node namespace) and who runs resource `res` (its pidfile
/// in each node's run dir), so that one sample is one instant for all nodes. Counts the
/// samples with two holders or two runners; keeps the changes. Bounded by a count and `max`.
pub struct OwnerWatch {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<OwnerRecord>>,
    thread: Option<JoinHandle<()>>,
}

impl OwnerWatch {
    /// Starts watching the nodes of `c` for resource `res`, times since `t0`.
    pub fn start(c: &Cluster, res: &str, t0: Instant, every: Duration, max: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(OwnerRecord::default()));
        let namespaces = c.net().nodes.clone();
        let pidfiles: Vec<PathBuf> = (0..c.nodes.len()).map(|i| c.app_pidfile(i, res)).collect();
        let want: std::net::IpAddr = FLOATING.parse().expect("addr");
        let (stop2, record2) = (stop.clone(), record.clone());
        let thread = std::thread::spawn(move || {
            // A socket is bound to the namespace it was opened in: one per node, opened from
            // inside each in turn.
            let mut sockets = Vec::new();
            for ns in &namespaces {
                let nl =
                    enter_netns(ns).and_then(|()| eterne::resources::ip::netlink::Netlink::open());
                match nl {
                    Ok(nl) => sockets.push(nl),
                    Err(e) => {
                        eprintln!("owner watch: no netlink in {ns}: {e}");
                        return;
                    }
                }
            }
            let mut held = vec![false; sockets.len()];
            let count = (max.as_millis() / every.as_millis().max(1)) as usize + 1;
            for _ in 0..count {
                if stop2.load(Ordering::Relaxed) || t0.elapsed() > max {
                    break;
                }
                let at = t0.elapsed();
                for (k, nl) in sockets.iter().enumerate() {
                    // A failed read keeps the last answer.
                    if let Ok(v) = nl.addrs(libc::AF_INET) {
                        held[k] = v.iter().any(|a| a.addr == want);
                    }
                }
                let now = Owners {
                    address: (0..held.len()).filter(|&k| held[k]).collect(),
                    app: pidfiles
                        .iter()
                        .enumerate()
                        .filter_map(|(k, p)| running(p).map(|pid| (k, pid)))
                        .collect(),
                };
                if let Ok(mut r) = record2.lock() {
                    r.samples += 1;
                    r.two_addresses += usize::from(now.address.len() > 1);
                    r.two_apps += usize::from(now.app.len() > 1);
                    if r.changes.last().is_none_or(|(_, o)| *o != now) {
                        r.changes.push((at, now));
                    }
                }
                std::thread::sleep(every);
            }
        });
        OwnerWatch {
            stop,
            record,
            thread: Some(thread),
        }
    }

    /// What it saw so far.
    pub fn record(&self) -> OwnerRecord {
        self.record.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Stops; what it saw.
    pub fn stop(mut self) -> OwnerRecord {
        self.halt();
        self.record()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OwnerWatch {
    fn drop(&mut self) {
        self.halt();
    }
}
