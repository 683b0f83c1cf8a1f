//! `eterned`: loads the config, opens the consensus log, starts the transports, the disk path,
//! the agents, the control socket and the actor tree, and handles signals.
//!
//! Start-up order: config (refused with every error, exit 2) → node name → real-time priority
//! and memory locking (best effort) → consensus log (fsync) → disk path (blocking, before the
//! runtime) → runtime → QUIC endpoints → NodeActor → control socket → signals.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::events::EventLog;
use super::group::ResourceSetup;
use super::messages::{
    Control, FromPeer, PathEvent, PeerInboxes, PeerRefused, ReopenLog, Terminate,
};
use super::monitor::Monitor;
use super::node::{NodeActor, NodeSetup};
use super::Clock;
use crate::config::{ClusterConfig, PathKindConfig};
use crate::control;
use crate::monitor::link::mono_ns;
use crate::policy::node::NodeCore;
use crate::policy::raft_log::StoreError;
use crate::policy::spec::{NodeId, PathKind};
use crate::resources::fence::FenceDevice;
use crate::resources::fence_pill::PillFence;
use crate::resources::{build, AgentContext};
use crate::storage::{self, FileLog};
use crate::transport::disk::pill::PillPlace;
use crate::transport::disk::{DiskPath, DiskPathConfig};
use crate::transport::{Inbound, TlsFiles, Transport, TransportConfig};

pub use super::shutdown::{EXIT_CONFIG, EXIT_START};

/// What `eterned` is told on its command line.
#[derive(Clone, Debug)]
pub struct Options {
    /// The cluster.toml.
    pub config: PathBuf,
    /// This node's name (default: the hostname).
    pub node: Option<String>,
    /// Where the consensus log, the event log and the drain marker live.
    pub state_dir: PathBuf,
    /// Where `ca.crt`, `NODE.crt`, `NODE.key` are.
    pub tls_dir: PathBuf,
    /// Where agents keep pidfiles.
    pub run_dir: PathBuf,
    /// The control socket.
    pub control_socket: PathBuf,
    /// The event log (default `<state dir>/events.jsonl`).
    pub events: Option<PathBuf>,
    /// Run as a witness: consensus only, no resources.
    pub witness: bool,
    /// Skip real-time priority and memory locking.
    pub no_realtime: bool,
    /// Allow fault injection requests on the control socket (tests only).
    pub test_faults: bool,
    /// Applied entries between two snapshots (`--snapshot-every`).
    pub snapshot_every: u64,
}

/// Runs the core of the daemon (started by its monitor, see [`crate::monitor`]); returns its
/// exit code.
pub fn run(opts: Options) -> i32 {
    let (link, handover) = match Monitor::connect() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("eterned: {e}");
            return EXIT_START;
        }
    };
    let config = match ClusterConfig::load(&opts.config) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.errors {
                eprintln!("{e}");
            }
            eprintln!(
                "eterned: {} has {} error(s); not starting",
                opts.config.display(),
                errors.errors.len()
            );
            return EXIT_CONFIG;
        }
    };
    let spec = Arc::new(config.spec());
    let name = match opts.node.clone().or_else(hostname) {
        Some(n) => n,
        None => {
            eprintln!("eterned: cannot tell this node's name: pass --node NAME");
            return EXIT_CONFIG;
        }
    };
    let Some(me) = spec.node_id(&name) else {
        eprintln!(
            "eterned: node \"{name}\" is not in {} (nodes: {}); pass --node NAME with a name of the config",
            opts.config.display(),
            spec.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        return EXIT_CONFIG;
    };
    // Any node may become the coordinator, and the coordinator runs the fence agent: a node
    // that cannot run it would leave every silent owner's groups where they are.
    let fence = config
        .fencing
        .as_ref()
        .map(|f| fence_device(&config, &spec, me, f));
    if let Some(Err(e)) = fence.as_ref().map(FenceDevice::locate) {
        eprintln!(
            "eterned: {}: fencing → agent: {e}; not starting",
            opts.config.display()
        );
        return EXIT_CONFIG;
    }
    let config_witness = spec.nodes[usize::from(me)].witness;
    if opts.witness && !config_witness && spec.groups.iter().any(|g| g.nodes.contains(&me)) {
        eprintln!(
            "eterned: --witness, but node \"{name}\" is listed in groups of the config; a witness holds no resources: make it the [witness] of the config"
        );
        return EXIT_CONFIG;
    }
    let witness = opts.witness || config_witness;
    if !opts.no_realtime {
        realtime();
    }
    raise_open_files();
    let clock = Clock::start();
    let incarnation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1);
    // Held until this function returns: the core's whole life. A core the monitor restarts
    // takes it again once the old one is gone.
    let _state_lock = match lock_state_dir(&opts.state_dir) {
        Ok(f) => f,
        Err(why) => {
            eprintln!("eterned: --state-dir {}: {why}", opts.state_dir.display());
            return EXIT_CONFIG;
        }
    };
    let voters: Vec<u64> = (1..=spec.nodes.len() as u64).collect();
    let raft_dir = opts.state_dir.join(storage::RAFT_DIR);
    let store = match FileLog::open(&raft_dir, &voters) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "eterned: consensus log in {}: {e}",
                opts.state_dir.display()
            );
            if matches!(e, StoreError::Corrupt { .. }) {
                eprintln!(
                    "eterned: the log is damaged, not torn by a crash: records that may have been \
                     acknowledged cannot be read. To rejoin the cluster from the other nodes \
                     (losing nothing they hold; this node votes again once caught up), run \
                     `eternectl state discard --state-dir {} --rejoin-from-cluster`; the damaged \
                     files are kept aside",
                    opts.state_dir.display()
                );
            }
            return EXIT_START;
        }
    };
    let rejoining = storage::rejoin_pending(&raft_dir);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let core = match NodeCore::new(
        spec.clone(),
        me,
        store.mem().clone(),
        incarnation,
        incarnation ^ u64::from(me).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        clock.now_us(),
        &logger,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eterned: cannot start consensus: {e}");
            return EXIT_START;
        }
    };
    let mut core = core;
    core.set_snapshot_every(opts.snapshot_every);
    if rejoining {
        tracing::warn!(dir = %raft_dir.display(), "the raft log was discarded: rejoining the cluster; this node votes again once caught up");
        core.rejoin();
    }
    if let Some(l) = handover.lease {
        // The previous core's lease, on this core's clock.
        let left_us = l.until_ns.saturating_sub(mono_ns()) / 1000;
        let now = clock.now_us();
        core.inherit_lease(now + left_us, l.applied, now);
    }
    let tcfg = match TransportConfig::from_cluster(&config, &name, incarnation) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eterned: {e}");
            return EXIT_CONFIG;
        }
    };
    // What every path delivers, network and disk, goes through one channel.
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    // The disk path: blocking start, before the runtime.
    let disk = match disk_path(&config, &spec, me, incarnation, in_tx.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("eterned: {e}");
            return EXIT_START;
        }
    };
    let events_path = opts
        .events
        .clone()
        .unwrap_or_else(|| opts.state_dir.join("events.jsonl"));
    let mut events = EventLog::open(&events_path, &name);
    if !config.notifications.is_empty() {
        events.notify_to(crate::actors::notify::Notifier::start(
            &config.notifications,
        ));
    }
    events.write(
        "daemon_started",
        serde_json::json!({"incarnation": incarnation, "witness": witness, "digest": format!("{:#018x}", spec.digest), "pid": std::process::id()})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    // Agents for every group this node is listed in (none for a witness).
    let mut holdings = Vec::new();
    let mut agent_setups = Vec::new();
    for (g, gs) in spec.groups.iter().enumerate() {
        if witness || !gs.nodes.contains(&me) {
            agent_setups.push(None);
            continue;
        }
        let mut rs = Vec::new();
        for (r, res) in gs.resources.iter().enumerate() {
            let (tx, rx) = mpsc::channel(64);
            let ctx = AgentContext {
                group: g as u16,
                resource: r as u16,
                name: res.name.clone(),
                run_dir: opts.run_dir.clone(),
                events: tx,
            };
            let res = &crate::resources::on_node(res, me);
            let (agent, refused) = match build(res, &ctx) {
                Ok(a) => (Some(Arc::from(a)), None),
                // `config check` builds every agent, so only a daemon older or newer than
                // the file's writer gets here.
                Err(e) => (None, Some(e.to_string())),
            };
            if gs.is_exclusive() {
                holdings.extend(
                    agent
                        .as_ref()
                        .and_then(|a: &Arc<dyn crate::resources::Agent>| a.hard_stop()),
                );
            }
            rs.push(ResourceSetup {
                name: res.name.clone(),
                agent,
                refused,
                recheck: false,
                events: Some(rx),
            });
        }
        agent_setups.push(Some(rs));
    }
    if !handover.stopped_hard.is_empty() {
        events.write(
            "stopped_hard",
            serde_json::json!({"resources": handover.stopped_hard, "by": "monitor", "why": "the previous core could not stop them before its lease ended"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    }
    let monitor = Monitor::start(
        link,
        holdings,
        crate::actors::monitor::alive_every(spec.timing.stop_budget_ms),
        config
            .nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.on_stop_failure)
            .unwrap_or_default(),
        pill_watch(&config, &spec, me),
    );
    refuse_what_cannot_run(&mut agent_setups, &spec, &mut events);
    let listener_path = opts.control_socket.clone();
    let tls = TlsFiles::in_dir(&opts.tls_dir, &name);
    let drain_marker = opts.state_dir.join("drained");
    let test_faults = opts.test_faults;
    let n = spec.nodes.len();
    let paths = spec.paths.len();

    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("eterned")
            .build()
            .unwrap_or_else(|e| {
                eprintln!("eterned: cannot build the async runtime: {e}");
                std::process::exit(EXIT_START)
            })
    });
    let started: Result<(), String> = system.block_on(async move {
        let mut nets: Vec<Option<Transport>> = (0..paths).map(|_| None).collect();
        for p in &tcfg.paths {
            let mut one = tcfg.clone();
            one.paths = vec![p.clone()];
            let t = Transport::start(one, &tls, in_tx.clone())
                .await
                .map_err(|e| e.to_string())?;
            nets[usize::from(p.id)] = Some(t);
        }
        drop(in_tx);
        let listener = control::server::bind(&listener_path).map_err(|e| e.to_string())?;
        let node = NodeActor::new(NodeSetup {
            spec: spec.clone(),
            me,
            witness,
            core,
            log: store,
            clock,
            nets,
            disk,
            events,
            monitor,
            drain_marker,
            rejoin_marker: raft_dir.join(storage::REJOIN_FILE),
            test_faults,
            groups: agent_setups,
            fence,
        });
        let addr = actix::Actor::start(node);
        pump(addr.clone(), n, me, in_rx);
        let control_addr = addr.clone();
        tokio::spawn(control::server::serve(listener, move |call| {
            control_addr.do_send(Control(call));
        }));
        let term = addr.clone();
        actix::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut t), Ok(mut i), Ok(mut h)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            loop {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                    _ = h.recv() => {
                        tracing::warn!("SIGHUP: the event log is opened again; reloading cluster.toml is not supported yet");
                        term.do_send(ReopenLog);
                        continue;
                    }
                }
                tracing::info!("SIGTERM: draining");
                term.do_send(Terminate);
            }
        });
        tracing::info!(node = %name, witness, "eterned started");
        Ok(())
    });
    if let Err(e) = started {
        eprintln!("eterned: {e}");
        return EXIT_START;
    }
    match system.run_with_code() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("eterned: {e}");
            EXIT_START
        }
    }
}

/// Routes what the transports and the disk path deliver to the PeerActors.
fn pump(
    node: actix::Addr<NodeActor>,
    n: usize,
    me: NodeId,
    mut net: mpsc::UnboundedReceiver<Inbound>,
) {
    // The PeerActors are created in NodeActor::started; ask for their addresses once.
    actix::spawn(async move {
        let Ok(peers) = node.send(PeerInboxes).await else {
            return;
        };
        let peers = Arc::new(peers);
        let route = move |from: NodeId, path, ev| {
            if usize::from(from) < n && from != me {
                if let Some(Some(p)) = peers.get(usize::from(from)) {
                    p.do_send(FromPeer { path, ev });
                }
            }
        };
        while let Some(m) = net.recv().await {
            match m {
                Inbound::Heartbeat { from, path, hb } => {
                    route(from, path, PathEvent::Heartbeat(hb))
                }
                Inbound::Message { from, path, msg } => route(from, path, PathEvent::Message(msg)),
                Inbound::PathUp { peer, path } => route(peer, path, PathEvent::Up),
                Inbound::PathDown { peer, path } => route(peer, path, PathEvent::Down),
                Inbound::Refused { path, remote, why } => {
                    node.do_send(PeerRefused { path, remote, why })
                }
            }
        }
    });
}

/// `[fencing]` as this node runs it: an agent, or pills on the disk path `path` names.
fn fence_device(
    config: &ClusterConfig,
    spec: &crate::policy::spec::ClusterSpec,
    me: NodeId,
    f: &crate::config::FencingConfig,
) -> FenceDevice {
    if f.method != crate::config::FenceMethod::PoisonPill {
        return FenceDevice::new(f);
    }
    FenceDevice::poison_pill(f, pill_fence(config, spec, me, f.pill_timeout_ms))
}

/// With `[fencing] method = "poison_pill"`: what the monitor needs to obey a pill for `me`.
fn pill_watch(
    config: &ClusterConfig,
    spec: &crate::policy::spec::ClusterSpec,
    me: NodeId,
) -> Option<crate::monitor::link::PillWatch> {
    let f = config.fencing.as_ref()?;
    if f.method != crate::config::FenceMethod::PoisonPill {
        return None;
    }
    let p = pill_fence(config, spec, me, f.pill_timeout_ms);
    Some(crate::monitor::link::PillWatch {
        place: p.place,
        me,
        every_ms: p.poll.as_millis() as u64,
        action: f.action,
    })
}

/// Where this cluster's pills go: the disk path `[fencing] path` names (validated to exist).
fn pill_fence(
    config: &ClusterConfig,
    spec: &crate::policy::spec::ClusterSpec,
    me: NodeId,
    bound_ms: u32,
) -> PillFence {
    let name = config
        .fencing
        .as_ref()
        .and_then(|f| f.path.clone())
        .unwrap_or_default();
    let pc = config
        .paths
        .iter()
        .find(|p| p.kind == PathKindConfig::Disk && p.name == name);
    PillFence {
        place: PillPlace {
            device: PathBuf::from(pc.and_then(|p| p.device.clone()).unwrap_or_default()),
            cluster: spec.name.clone(),
            nodes: spec.nodes.len(),
            slot_bytes: pc.map_or(4096, |p| p.slot_bytes()),
        },
        me,
        names: spec.nodes.iter().map(|n| n.name.clone()).collect(),
        bound: Duration::from_millis(u64::from(bound_ms)),
        poll: Duration::from_millis(u64::from(pc.map_or(200, |p| p.interval_ms()))),
    }
}

fn disk_path(
    config: &ClusterConfig,
    spec: &crate::policy::spec::ClusterSpec,
    me: NodeId,
    incarnation: u64,
    tx: mpsc::UnboundedSender<Inbound>,
) -> Result<Option<(u8, DiskPath)>, String> {
    let Some(id) = spec.paths.iter().position(|p| p.kind == PathKind::Disk) else {
        return Ok(None);
    };
    let Some(pc) = config
        .paths
        .iter()
        .find(|p| p.kind == PathKindConfig::Disk && p.name == spec.paths[id].name)
    else {
        return Ok(None);
    };
    let device = pc.device.clone().unwrap_or_default();
    let cfg = DiskPathConfig {
        path: id as u8,
        device: PathBuf::from(device),
        slot_bytes: pc.slot_bytes(),
        interval_ms: pc.interval_ms(),
        cluster: spec.name.clone(),
        me,
        nodes: spec.nodes.len(),
        incarnation,
        digest: spec.digest,
    };
    let d = DiskPath::start(cfg, tx).map_err(|e| e.to_string())?;
    tracing::info!(path = %spec.paths[id].name, mode = ?d.io_mode(), "disk path started");
    Ok(Some((id as u8, d)))
}

/// Raises the soft limit on open files to the hard one (at most 65536): the control socket
/// keeps up to `control::server::MAX_OPEN` connections open, beside the peers' sockets, the
/// logs and the agents' pipes, and the usual soft limit of 1024 would make accept fail first.
/// Agents inherit the raised limit. Refusal is a warning.
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit on our stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = lim.rlim_max.min(65_536);
        if lim.rlim_cur < want {
            lim.rlim_cur = want;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!(soft = lim.rlim_cur, "cannot raise the open-file limit");
            }
        }
    }
}

/// Best-effort real-time priority (SCHED_FIFO, reset on fork so agents' processes run at
/// normal priority) and locked memory, as corosync does: a busy machine must not make a
/// healthy node look dead. Refusal is a warning.
fn realtime() {
    // SAFETY: plain syscalls with a valid sched_param on our stack.
    unsafe {
        let param = libc::sched_param { sched_priority: 10 };
        if libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot get real-time priority (SCHED_FIFO); continuing at normal priority");
        }
        if libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lock memory (mlockall); continuing");
        }
    }
}

/// The short host name: certificates and configs use node names, not FQDNs.
fn hostname() -> Option<String> {
    let name = crate::resources::process::host_name()?;
    Some(name.split('.').next().unwrap_or(&name).to_string()).filter(|n| !n.is_empty())
}

/// Takes `dir/lock` (an exclusive `flock`, released when the file is closed or the process
/// ends) and writes our pid into it: two daemons sharing one node's state (a second start by
/// mistake, two units pointing at one directory) would write one raft log from two
/// processes. Refused with the holder's pid when another process has it.
pub fn lock_state_dir(dir: &Path) -> Result<std::fs::File, String> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
    let path = dir.join("lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(format!("cannot lock {}: {err}", path.display()));
        }
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        let who = if holder.is_empty() {
            "another process".to_string()
        } else {
            format!("eterned pid {holder}")
        };
        return Err(format!(
            "in use by {who} ({} is locked); two daemons must never share a node's state: stop that one, or give this one a --state-dir of its own",
            path.display()
        ));
    }
    let pid = std::process::id();
    let wrote = f
        .set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| writeln!(f, "{pid}"));
    if let Err(e) = wrote {
        // The lock is the flock; the pid in it only helps an operator (a full disk).
        tracing::warn!(file = %path.display(), error = %e, "cannot write this daemon's pid into its lock file");
    }
    Ok(f)
}

/// How long one agent's `validate` may take at start (an OCF agent's `meta-data` and
/// `validate-all` are shell scripts; they all run at once).
const VALIDATE_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks each agent on this node ([`crate::resources::Agent::validate`]: programs, users,
/// interfaces, an OCF agent's meta-data and `validate-all`) before anything runs. A resource
/// that fails is refused here: its starts fail hard, so its group runs elsewhere, and the
/// event `resource_refused` names it and why. Nothing is fenced for it, and what of it runs
/// here is still found and stopped. A resource that depends on others is not refused yet:
/// what it lacks may come with them (a mount point), so it is validated again before each
/// start ([`ResourceSetup::recheck`]).
fn refuse_what_cannot_run(
    setups: &mut [Option<Vec<ResourceSetup>>],
    spec: &crate::policy::spec::ClusterSpec,
    events: &mut EventLog,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the agents: no runtime for it");
            return;
        }
    };
    let verdicts = runtime.block_on(async {
        let mut checks = tokio::task::JoinSet::new();
        for (g, rs) in setups.iter().enumerate() {
            for (r, setup) in rs.iter().flatten().enumerate() {
                if let Some(agent) = setup.agent.clone() {
                    checks.spawn(async move {
                        let why = match tokio::time::timeout(VALIDATE_BOUND, agent.validate()).await
                        {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(e.to_string()),
                            Err(_) => Some(format!(
                                "its check gave no answer within {} s",
                                VALIDATE_BOUND.as_secs()
                            )),
                        };
                        (g, r, why)
                    });
                }
            }
        }
        let mut out = Vec::new();
        while let Some(done) = checks.join_next().await {
            if let Ok(v) = done {
                out.push(v);
            }
        }
        out
    });
    for (g, r, why) in verdicts {
        let (Some(why), Some(Some(rs))) = (why, setups.get_mut(g)) else {
            continue;
        };
        if spec.groups[g].resources[r].depends_on.is_empty() {
            rs[r].refused = Some(why);
        } else {
            // What it lacks may come with what it depends on (a filesystem mounted at its
            // cwd, a program on a shared disk): judged again at each start, once they run.
            tracing::info!(resource = %rs[r].name, reason = %why, "cannot run before what it depends on runs: validated again at each start");
            rs[r].recheck = true;
        }
    }
    for (g, rs) in setups.iter().enumerate() {
        for setup in rs.iter().flatten() {
            let Some(why) = &setup.refused else { continue };
            tracing::error!(resource = %setup.name, reason = %why, "this node cannot run the resource: its group will run elsewhere");
            events.write(
                "resource_refused",
                serde_json::json!({"group": spec.groups[g].name, "resource": setup.name, "reason": why})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
}

/// The default paths, as documented for `eterned --help`.
pub fn default_state_dir() -> &'static Path {
    Path::new(crate::storage::DEFAULT_STATE_DIR)
}

#[cfg(test)]
mod tests {
    use super::lock_state_dir;

    /// A second taker of a state directory is refused and told who holds it; once the
    /// holder lets go (closes it, or its process ends), it may be taken again.
    #[test]
    fn a_state_directory_is_taken_by_one_daemon_at_a_time() {
        let dir = std::env::temp_dir().join(format!("eterne-state-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = lock_state_dir(&dir).expect("the first takes it");
        let pid = std::process::id().to_string();
        assert_eq!(
            std::fs::read_to_string(dir.join("lock")).unwrap().trim(),
            pid
        );
        let why = lock_state_dir(&dir).expect_err("a second is refused");
        assert!(why.contains(&format!("eterned pid {pid}")), "{why}");
        assert!(why.contains("--state-dir"), "{why}");
        drop(first);
        // Another test's child between its fork and its exec holds a copy of every
        // descriptor for a moment (ours are close-on-exec): give it a second.
        let free = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            lock_state_dir(&dir).is_ok()
        });
        assert!(free, "free again once the holder let go");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
