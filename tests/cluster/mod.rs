//! The cluster harness: real `eterned` processes, three (or more) of them, on loopback
//! ([`loopback`]) or one per network namespace ([`namespaces`]). Whatever the [`Network`],
//! it writes the config and the certificates in a scratch directory, starts each daemon with
//! its own state, run and socket paths, talks to them over the control socket (status,
//! requests, formed, where a group runs) and reads their event logs.
//!
//! Every wait is bounded (the network's bound); nothing asserts how long something took.
//! Everything is undone in `Drop` (daemons, applications, namespaces, files), also when a test
//! panics. The harness needs only the library's dependencies, so `eterne-bench` includes it
//! with `#[path]`.

#![allow(dead_code)]

pub mod loopback;
pub mod namespaces;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eterne::control::client::request;
use eterne::control::{Request, Response, Status};
use eterne::transport::certs;

#[path = "../support/mod.rs"]
pub mod support;
pub use support::is_root;

use namespaces::Net;

/// Where the daemons run.
pub enum Network {
    /// On 127.x.`test`.y addresses of the host's loopback; each test has its own `test` byte
    /// so tests never share addresses.
    Loopback {
        /// The test's address byte.
        test: u8,
    },
    /// One network namespace per node (the network is deleted with the cluster).
    Namespaces(Net),
}

/// One daemon and its files.
pub struct Node {
    /// Its name (n1, n2, …).
    pub name: String,
    /// Its directory (the files below).
    pub dir: PathBuf,
    /// Its control socket (a path: reachable from any network namespace).
    pub socket: PathBuf,
    /// Its state dir.
    pub state: PathBuf,
    /// Its run dir (pidfiles).
    pub run: PathBuf,
    /// Its event log.
    pub events: PathBuf,
    /// Its stderr log.
    pub log: PathBuf,
    /// The running process (in namespaces: `ip netns exec … eterned`, the same pid as
    /// eterned: both exec).
    pub child: Option<Child>,
    /// Extra flags for `eterned`.
    pub extra: Vec<String>,
    /// A `cluster.toml` of this node's own instead of the cluster's (a node whose file
    /// differs).
    pub config: Option<PathBuf>,
    /// The node name passed with --node (normally `name`).
    pub as_name: String,
    /// The TLS dir (normally the cluster's).
    pub tls: PathBuf,
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One cluster at a time: three daemons per test are what a two-core CI machine can run at
/// real-time priority without starving each other's heartbeats (debug builds do their TLS
/// handshakes slowly). Hold the guard for the cluster's lifetime. A test that failed while
/// holding it poisons it; the next one may still run.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The daemons, their network and their files.
pub struct Cluster {
    /// The daemons, n1..nN. Killed in Drop before the network goes.
    pub nodes: Vec<Node>,
    /// The scratch directory (removed in Drop; in namespaces kept when `ETERNE_NETNS_KEEP` is
    /// set).
    pub dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The mount point of the shared filesystem, when the group has one (`<dir>/mnt`).
    pub mnt: PathBuf,
    /// The `eterned` binary.
    eterned: PathBuf,
    /// Where the daemons run (a namespace network is deleted after the daemons were killed).
    pub network: Network,
    /// The bound of every wait.
    pub wait: Duration,
    /// How often a wait polls.
    pub every: Duration,
    /// The daemons' `ETERNE_LOG`.
    pub log_level: &'static str,
    /// Serializes the tests (see [`one_at_a_time`]), when the cluster holds the turn itself;
    /// released after `drop` killed the daemons.
    _turn: Option<MutexGuard<'static, ()>>,
}

impl Cluster {
    /// The scratch directory `<tmp>/eterne-<name>`, the config `config` in it, a CA and a
    /// certificate for each of `n` nodes n1..nN; starts nothing.
    fn create(
        name: &str,
        n: usize,
        eterned: PathBuf,
        network: Network,
        config: impl FnOnce(&Path) -> String,
    ) -> Cluster {
        let dir = std::env::temp_dir().join(format!("eterne-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let file = dir.join("cluster.toml");
        std::fs::write(&file, config(&dir)).expect("write config");
        let tls = dir.join("tls");
        certs::init_ca(&tls, false).expect("ca");
        let mut nodes = Vec::new();
        for i in 1..=n {
            let name = format!("n{i}");
            certs::issue_node_cert(&tls, &name, false).expect("cert");
            let base = dir.join(&name);
            nodes.push(Node {
                socket: base.join("control.sock"),
                state: base.join("state"),
                run: base.join("run"),
                events: base.join("events.jsonl"),
                log: base.join("eterned.log"),
                dir: base,
                child: None,
                extra: Vec::new(),
                config: None,
                as_name: name.clone(),
                tls: tls.clone(),
                name,
            });
        }
        Cluster {
            nodes,
            mnt: dir.join("mnt"),
            dir,
            config: file,
            eterned,
            network,
            wait: Duration::from_secs(30),
            every: Duration::from_millis(50),
            log_level: "info",
            _turn: None,
        }
    }

    /// The namespace network; panics on loopback.
    pub fn net(&self) -> &Net {
        match &self.network {
            Network::Namespaces(net) => net,
            Network::Loopback { .. } => panic!("a loopback cluster has no namespaces"),
        }
    }

    /// Starts node `i` (0-based): on loopback directly, in namespaces inside its node
    /// namespace with a private `/run/resource-agents` (see [`namespaces`]).
    pub fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let _ = std::fs::create_dir_all(&n.dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .expect("log file");
        let mut cmd = match &self.network {
            Network::Loopback { .. } => Command::new(&self.eterned),
            Network::Namespaces(net) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &net.nodes[i], "sh", "-c"])
                    .arg("mount -t tmpfs eterne-rsctmp /run/resource-agents && exec \"$0\" \"$@\"")
                    .arg(&self.eterned);
                cmd
            }
        };
        cmd.arg("--config")
            .arg(n.config.as_ref().unwrap_or(&self.config))
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
            .env("ETERNE_LOG", self.log_level)
            .env("ETERNE_TEST_NODE", &n.name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // The monitor and its core share this group: a node's crash kills both.
            .process_group(0);
        n.child = Some(cmd.spawn().expect("spawn eterned"));
    }

    /// Starts every node.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// The pid of node `i`'s eterned as started: its monitor process.
    pub fn daemon_pid(&self, i: usize) -> Option<i32> {
        self.nodes[i].child.as_ref().map(|c| c.id() as i32)
    }

    /// The pid of node `i`'s core process: the child of its monitor that is eterned.
    pub fn core_pid(&self, i: usize) -> Option<i32> {
        let monitor = self.daemon_pid(i)?;
        core_of(monitor)
    }

    /// Node `i`'s status, if it runs and answers.
    pub fn status(&self, i: usize) -> Option<Status> {
        self.nodes[i].child.as_ref()?;
        support::status(&self.nodes[i].socket)
    }

    /// A request to node `i`.
    pub fn ask(&self, i: usize, req: Request) -> Response {
        request(&self.nodes[i].socket, &req, Duration::from_secs(15))
            .unwrap_or_else(|e| Response::refused(e.to_string()))
    }

    /// Waits until `f` holds (polling every [`Cluster::every`]), at most [`Cluster::wait`];
    /// Err with `what`.
    pub fn wait_until(
        &self,
        what: &str,
        mut f: impl FnMut(&Cluster) -> bool,
    ) -> Result<(), String> {
        support::wait::wait_until(self.wait, self.every, what, || f(self))
    }

    /// As [`Cluster::wait_until`], panicking with the nodes' logs.
    pub fn wait_for(&self, what: &str, f: impl FnMut(&Cluster) -> bool) {
        if let Err(e) = self.wait_until(what, f) {
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

    /// Every running node answers, agrees on a leader and sees every running node alive.
    pub fn formed(&self) -> bool {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .collect();
        let statuses: Vec<Option<Status>> = running.iter().map(|&i| self.status(i)).collect();
        support::formed(&statuses, &running)
    }

    /// Where `group` runs: the node whose own status says its instance is `running`, with
    /// that instance's epoch.
    pub fn running_on(&self, group: &str) -> Option<(String, u64)> {
        (0..self.nodes.len()).find_map(|i| support::running_here(&self.status(i)?, group))
    }

    /// Where `group` runs once it runs, after moving it off the coordinator if it ran there:
    /// a coordinator's death costs an election, which what looks at one node's own processes
    /// does not want to measure. The owner's name.
    pub fn owner_off_the_coordinator(&self, group: &str) -> Result<String, String> {
        self.wait_until(&format!("{group} runs"), |c| c.running_on(group).is_some())?;
        let coordinator = (0..self.nodes.len())
            .find_map(|i| self.status(i).and_then(|s| s.coordinator))
            .ok_or("no coordinator")?;
        let (owner, _) = self
            .running_on(group)
            .ok_or(format!("{group} stopped running"))?;
        if owner != coordinator {
            return Ok(owner);
        }
        let to = self
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .find(|n| *n != coordinator)
            .ok_or("no other node")?;
        let r = self.ask(
            self.index(&coordinator),
            Request::Move {
                group: group.into(),
                node: Some(to.clone()),
            },
        );
        if !r.ok {
            return Err(format!("move {group} to {to}: {}", r.message));
        }
        self.wait_until(&format!("{group} runs on {to}"), |c| {
            c.on(group).as_deref() == Some(to.as_str())
        })?;
        Ok(to)
    }

    /// The name of the node running `group`.
    pub fn on(&self, group: &str) -> Option<String> {
        self.running_on(group).map(|(n, _)| n)
    }

    /// The index of node `name`.
    pub fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .expect("node name")
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

    /// The pid of resource `res` on node `i`, from its pidfile, if alive.
    /// Where node `i`'s agent keeps the pidfile of resource `res`.
    pub fn app_pidfile(&self, i: usize, res: &str) -> PathBuf {
        self.nodes[i].run.join(format!("{res}.pid"))
    }

    pub fn app_pid(&self, i: usize, res: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.nodes[i].run.join(format!("{res}.pid"))).ok()?;
        let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
        // SAFETY: signal 0 only checks.
        (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
    }

    /// The pid of resource `res` on node `i` if it really runs: its pidfile names a live
    /// process (not a zombie) whose start time is the one the agent recorded, so a recycled
    /// pid or a stale pidfile does not count.
    pub fn app_running(&self, i: usize, res: &str) -> Option<i32> {
        running(&self.app_pidfile(i, res))
    }

    /// The pids of node `i`'s resources that have a pidfile and are alive.
    pub fn app_pids(&self, i: usize) -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir(&self.nodes[i].run) else {
            return Vec::new();
        };
        dir.filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            self.app_pid(i, name.strip_suffix(".pid")?)
        })
        .collect()
    }

    /// Application crash: SIGKILL of resource `res`'s process group (and process) on node `i`.
    pub fn kill_app(&self, i: usize, res: &str) -> Option<i32> {
        let pid = self.app_pid(i, res)?;
        // SAFETY: kill with a pid we read; the application runs in a session of its own
        // (pgid = pid).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
        Some(pid)
    }

    /// `kill -9` of node `i`'s eterned only, both its processes (and reaps the monitor).
    pub fn kill_daemon(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            // SAFETY: kill(2) of the process group we created for this node's eterned.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
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

    /// Node `i`'s eterned's exit code once it ended by itself (waits up to `bound`; `None`
    /// if it still runs then, or ended by a signal).
    pub fn exit_code(&mut self, i: usize, bound: Duration) -> Option<i32> {
        let until = Instant::now() + bound;
        while Instant::now() < until {
            let c = self.nodes[i].child.as_mut()?;
            if let Ok(Some(st)) = c.try_wait() {
                self.nodes[i].child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_daemon(i);
        }
        // On loopback the applications the daemons started are host processes; in namespaces
        // the network's own Drop kills what is left in them and deletes them.
        if let Network::Loopback { .. } = self.network {
            for i in 0..self.nodes.len() {
                for pid in self.app_pids(i) {
                    // SAFETY: kill with a pid of a pidfile of ours; the application runs in a
                    // session of its own (pgid = pid).
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        let keep = std::env::var_os("ETERNE_NETNS_KEEP").is_some();
        if keep && matches!(self.network, Network::Namespaces(_)) {
            eprintln!("ETERNE_NETNS_KEEP: logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The eterned child of `monitor` (its core), by the parent pid in `/proc/*/stat`.
pub fn core_of(monitor: i32) -> Option<i32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok());
            ppid == Some(monitor) && head.contains("(eterned")
        })
}

/// The process a pidfile names, if it runs as recorded there (see [`Cluster::app_running`]).
pub fn running(pidfile: &Path) -> Option<i32> {
    let (pid, start) = eterne::resources::pidfile::read(pidfile)?;
    (eterne::resources::pidfile::start_time(pid).ok() == Some(start) && alive(pid as i32))
        .then_some(pid as i32)
}

/// Whether `pid` runs (a zombie does not: an orphan's reaper may be slow or absent).
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Sends `sig` to `pid` (a process of the test's cluster).
pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) of a pid the caller took from its own cluster.
    unsafe {
        libc::kill(pid, sig);
    }
}
