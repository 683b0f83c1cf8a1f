//! A harness for tests with real `eterned` processes on loopback: writes a three-node config
//! on 127.<81 + path>.<test>.<node + 1> (each test passes its own `test` byte so tests never
//! share addresses), makes the CA and certificates in a temp dir, starts the daemons with their
//! own state, run and socket paths, and talks to them over the control socket.
//!
//! Every wait is bounded ([`WAIT`]); nothing asserts how long something took.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eterne::control::client::request;
use eterne::control::{Request, Response, Status};
use eterne::transport::certs;

#[path = "../support/mod.rs"]
mod support;
pub use support::is_root;

/// The bound of every wait: generous, so that only a hang fails a test.
pub const WAIT: Duration = Duration::from_secs(30);

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
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            failback: "manual",
            window: None,
            max_restarts: 3,
            disk: false,
        }
    }
}

/// One daemon of the cluster.
pub struct Node {
    /// Its name (n1, n2, n3).
    pub name: String,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its state dir.
    pub state: PathBuf,
    /// Its run dir (pidfiles).
    pub run: PathBuf,
    /// Its event log.
    pub events: PathBuf,
    /// Its stderr log.
    pub log: PathBuf,
    /// The running process.
    pub child: Option<Child>,
    /// Extra flags for `eterned`.
    pub extra: Vec<String>,
    /// The node name passed with --node (normally `name`).
    pub as_name: String,
    /// The TLS dir (normally the cluster's).
    pub tls: PathBuf,
}

/// One cluster at a time: three daemons per test are what a two-core CI machine can run at
/// real-time priority without starving each other's heartbeats (debug builds do their TLS
/// handshakes slowly). Held for the cluster's lifetime.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Three daemons and their files.
pub struct Cluster {
    /// Serializes the tests (see [`ONE_AT_A_TIME`]); released after `drop` killed the daemons.
    _turn: std::sync::MutexGuard<'static, ()>,
    /// The scratch directory.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The nodes, n1..n3.
    pub nodes: Vec<Node>,
    /// The test's address byte.
    pub test: u8,
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
    for p in ["lan", "backplane"] {
        let _ = writeln!(
            c,
            "[[path]]\nname = \"{p}\"\nkind = \"network\"\ninterval_ms = 50\nmisses = 4\n"
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
            "[[node]]\nname = \"n{}\"\naddresses = {{ lan = \"{}\", backplane = \"{}\" }}\n",
            n + 1,
            addr(test, 0, n),
            addr(test, 1, n)
        );
    }
    let _ = writeln!(c, "[[group]]\nname = \"demo\"\nnodes = [\"n1\", \"n2\", \"n3\"]\nfailback = \"{}\"\nmax_restarts = {}\nrestart_window_ms = 60000", o.failback, o.max_restarts);
    if let Some(w) = &o.window {
        let _ = writeln!(c, "failback_window = \"{w}\"");
    }
    let _ = writeln!(c, "\n  [[group.resource]]\n  name = \"demo-app\"\n  type = \"application\"\n  params = {{ command = \"sleep 1000\" }}\n");
    c
}

impl Cluster {
    /// Writes the config and certificates; starts nothing.
    pub fn new(test: u8, o: &Opts) -> Cluster {
        // A test that failed while holding the lock poisons it; the next one may still run.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::Builder::new()
            .prefix(&format!("eterne-loop{test}-"))
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, config_text(test, dir.path(), o)).expect("write config");
        let tls = dir.path().join("tls");
        certs::init_ca(&tls, false).expect("ca");
        let mut nodes = Vec::new();
        for i in 1..=3 {
            let name = format!("n{i}");
            certs::issue_node_cert(&tls, &name, false).expect("cert");
            let base = dir.path().join(&name);
            nodes.push(Node {
                socket: base.join("control.sock"),
                state: base.join("state"),
                run: base.join("run"),
                events: base.join("events.jsonl"),
                log: base.join("eterned.log"),
                child: None,
                extra: vec!["--test-faults".into()],
                as_name: name.clone(),
                tls: tls.clone(),
                name,
            });
        }
        Cluster {
            _turn: turn,
            dir,
            config,
            nodes,
            test,
        }
    }

    /// Starts node `i` (0-based).
    pub fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let _ = std::fs::create_dir_all(n.state.parent().expect("parent"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eterned"));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--node")
            .arg(&n.as_name)
            .arg("--state-dir")
            .arg(&n.state)
            .arg("--tls-dir")
            .arg(&n.tls)
            .arg("--run-dir")
            .arg(&n.run)
            .arg("--control-socket")
            .arg(&n.socket)
            .arg("--events")
            .arg(&n.events)
            .args(&n.extra)
            .env("ETERNE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        n.child = Some(cmd.spawn().expect("spawn eterned"));
    }

    /// Starts all three.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// Node `i`'s status, if it answers.
    pub fn status(&self, i: usize) -> Option<Status> {
        support::status(&self.nodes[i].socket)
    }

    /// A request to node `i`.
    pub fn ask(&self, i: usize, req: Request) -> Response {
        request(&self.nodes[i].socket, &req, Duration::from_secs(15))
            .unwrap_or_else(|e| Response::refused(e.to_string()))
    }

    /// Waits until `f` holds (polling every 50 ms), at most [`WAIT`]; panics with `what` and
    /// the nodes' logs otherwise.
    pub fn wait_for(&self, what: &str, mut f: impl FnMut(&Cluster) -> bool) {
        if let Err(e) = support::wait::wait_until(WAIT, Duration::from_millis(50), what, || f(self))
        {
            self.dump();
            panic!("{e}");
        }
    }

    /// Prints the tail of every node's log and events (for a failed test).
    pub fn dump(&self) {
        for n in &self.nodes {
            support::dump(&n.name, &n.log, &n.events);
        }
    }

    /// Every node that answers agrees on a leader and sees every started node alive.
    pub fn formed(&self) -> bool {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .collect();
        let statuses: Vec<Option<Status>> = running.iter().map(|&i| self.status(i)).collect();
        support::formed(&statuses, &running)
    }

    /// Where `group` runs: the node whose own status says its instance is `running`.
    pub fn running_on(&self, group: &str) -> Option<String> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                continue;
            }
            let Some(s) = self.status(i) else { continue };
            if let Some((node, _)) = support::running_here(&s, group) {
                return Some(node);
            }
        }
        None
    }

    /// The index of node `name`.
    pub fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .expect("node name")
    }

    /// The pid of the demo application on node `i`, from its pidfile.
    pub fn app_pid(&self, i: usize) -> Option<i32> {
        let text = std::fs::read_to_string(self.nodes[i].run.join("demo-app.pid")).ok()?;
        let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
        // Alive?
        // SAFETY: signal 0 only checks.
        (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
    }

    /// SIGKILLs node `i`'s application (its process group).
    pub fn kill_app(&self, i: usize) -> Option<i32> {
        let pid = self.app_pid(i)?;
        // SAFETY: kill with a pid we read; the app runs in its own session (pgid = pid).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
        Some(pid)
    }

    /// `kill -9` of node `i`'s eterned (and reaps it).
    pub fn kill_daemon(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM to node `i`'s eterned; waits (bounded) for its exit code.
    pub fn terminate(&mut self, i: usize, bound: Duration) -> Option<i32> {
        let mut c = self.nodes[i].child.take()?;
        // SAFETY: kill with our child's pid.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + bound;
        while Instant::now() < until {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Node `i`'s events as JSON values.
    pub fn events(&self, i: usize) -> Vec<serde_json::Value> {
        support::read_events(&self.nodes[i].events)
    }

    /// Events named `name` on node `i`.
    pub fn events_named(&self, i: usize, name: &str) -> Vec<serde_json::Value> {
        self.events(i)
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_daemon(i);
            self.kill_app(i);
        }
    }
}
