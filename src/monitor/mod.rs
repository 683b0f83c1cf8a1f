//! The monitor: the second process of every node, which keeps the node's promise when the core
//! cannot (design.md §5.4; docs/runtime.md "The two processes").
//!
//! `eterned` starts as the monitor. The monitor starts the core (the same program, in the
//! `core` role: everything the daemon does) and from then on each watches the other through a
//! pidfd and the [`link`]: the core says it is alive every [`link::ToMonitor::Alive`]
//! interval from its actor thread, and before acting tells the monitor by when every exclusive
//! resource here must be down ([`link::Armed`]) and how to take each down without it
//! ([`crate::resources::HardStop`]).
//!
//! | what happens | what the monitor does |
//! |---|---|
//! | the core dies or exits with a crash (SIGKILL, OOM, panic, [`EXIT_CRASH`]) | starts a new core at once, handing it the lease the old one held; the new core adopts what runs (probe, no stop, no start) |
//! | the core is silent for [`WEDGED`] (SIGSTOP, a wedged thread) | SIGKILL, then as above |
//! | the stop point passes (the deadline less the stop budget) while no core is up or the core is silent ([`rules::MISSED_ALIVE`] of its alive messages missed; [`SILENT`] until it said how often it sends them) | SIGKILL of the core if it lives, then every hard stop at once, before the lease ends |
//! | the deadline itself passes while armed | the same, whatever the core says: a core that lets its lease run out with resources up is broken |
//! | a hard stop fails | as the node's `on_stop_failure` says: `reboot` (the default) reboots the machine at once ([`reboot_now`]); `exit` ends the monitor with [`EXIT_STOP_FAILED`] and no new core. Either way it stops petting a hardware watchdog, which then resets the machine |
//! | the core exits on purpose (drained: 0, gave up: 1) or cannot start (bad config: 2, start: 1) | stops hard anything still armed, exits with the core's code |
//! | SIGTERM / SIGINT | passed to the core, which drains; then as above |
//! | SIGHUP | passed to the core, which opens its event log again (log rotation); reloading cluster.toml is not supported yet |
//! | a poison pill for this node on the disk path (`[fencing] method = "poison_pill"`; [`pill`]) | SIGKILL of the core, every hard stop, the acknowledgement, then a reboot (`action = "reboot"`) or exit with [`EXIT_POISONED`] (`off`); never a new core |
//! | the monitor dies | the core starts a new one and tells it everything again (`actors::monitor`) |
//!
//! Neither restart moves or restarts a resource: the cluster sees the node's lease, not its
//! processes, and the lease is handed from one core to the next. What the monitor stopped is
//! told to the next core, which logs it (`stopped_hard`).
//!
//! The monitor has no async runtime: one thread polls the core's pidfd, the link and a
//! self-pipe of signals, every [`TICK`] at the longest. It shares the program, not the code
//! paths: nothing of the actor tree, the transports or consensus runs in it.

pub mod link;
pub mod pill;

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use link::{mono_ns, Armed, Link, OnStopFailure, Received, ToCore, ToMonitor, PEER_ENV};
use pill::PillWatcher;

use crate::config::schema::FenceActionConfig;
use crate::transport::disk::pill::Pill;

use crate::actors::shutdown::{EXIT_CRASH, EXIT_START};
use crate::policy::monitor::{self as rules, CoreSeen, Deadline, Verdict};
use crate::resources::hard_stop::{self, HardStop};
use crate::resources::pidfd::{pidfd_exited, pidfd_open, pidfd_send_signal};

/// The monitor's exit code when a hard stop failed and the node's `on_stop_failure` is
/// `exit` (`EX_OSERR`: the system could not stop what it runs).
pub const EXIT_STOP_FAILED: i32 = 71;
/// The monitor's exit code after it obeyed a poison pill with `[fencing] action = "off"`:
/// everything stopped and the node left the cluster until it is started again.
pub const EXIT_POISONED: i32 = 72;
/// The longest the hard stops after a poison pill may take (less if the pill's bound is
/// shorter: half of it).
const PILL_STOP_MAX: Duration = Duration::from_secs(10);

/// The longest the monitor sleeps (and how often it pets a hardware watchdog).
pub const TICK: Duration = Duration::from_millis(5);
/// A core silent this long at its stop point will not stop in time, until its `Hello` said
/// how often it says it is alive (then [`rules::MISSED_ALIVE`] of those).
pub const SILENT: Duration = Duration::from_millis(250);
/// A core silent this long is wedged: killed and started again.
pub const WEDGED: Duration = Duration::from_secs(2);
/// [`SILENT`] and [`WEDGED`] for [`rules::verdict`], in ns.
const RULES: rules::Rules = rules::Rules {
    silent: SILENT.as_nanos() as u64,
    wedged: WEDGED.as_nanos() as u64,
};
/// Core restarts allowed within [`RESTART_WINDOW`] before the monitor gives up.
pub const RESTART_LIMIT: usize = 10;
/// The window over which core restarts are counted.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// The least time a hard stop is given when its deadline is already near or past.
const HARD_STOP_FLOOR: Duration = Duration::from_millis(500);

/// What the monitor is told on the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A hardware watchdog device to pet.
    pub watchdog_device: Option<PathBuf>,
}

/// The core as the monitor sees it.
struct Core {
    pid: u32,
    pidfd: OwnedFd,
    /// Our child, when we started it (then we reap it and see its exit code).
    child: Option<Child>,
    link: Link,
    /// When it last said anything; `None` until its `Hello`.
    heard: Option<Instant>,
    /// The rules for this core, in ns (its silence from its `Hello`).
    rules: rules::Rules,
    /// The code it said it exits with.
    exiting: Option<i32>,
}

/// The monitor's state.
struct Monitor {
    watchdog: Option<File>,
    core: Option<Core>,
    holdings: Vec<HardStop>,
    armed: Option<Armed>,
    stopped_hard: Vec<String>,
    /// A hard stop failed: the node cannot be trusted until it is reset.
    stop_failed: bool,
    /// What to do then (the core's `Hello` says; `reboot` until it has).
    on_stop_failure: OnStopFailure,
    terminating: bool,
    restarts: VecDeque<Instant>,
    /// `[fencing] method = "poison_pill"`: the thread reading this node's pill block.
    pills: Option<PillWatcher>,
}

/// Run the monitor until the node's daemon ends; the exit code.
pub fn run(opts: Options) -> i32 {
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("eterned: monitor: cannot install signal handlers: {e}");
            return EXIT_START;
        }
    };
    let watchdog = match &opts.watchdog_device {
        Some(path) => match File::options().write(true).open(path) {
            Ok(f) => {
                tracing::info!(device = %path.display(), "hardware watchdog opened");
                Some(f)
            }
            Err(e) => {
                eprintln!("eterned: watchdog {}: {e}", path.display());
                return EXIT_START;
            }
        },
        None => None,
    };
    let mut m = Monitor {
        watchdog,
        core: None,
        holdings: Vec::new(),
        armed: None,
        stopped_hard: Vec::new(),
        stop_failed: false,
        on_stop_failure: OnStopFailure::Reboot,
        terminating: false,
        restarts: VecDeque::new(),
        pills: None,
    };
    // Started by a core whose monitor died: watch that core. Otherwise start one.
    match (Link::inherited(), peer_pid()) {
        (Some(link), Some(pid)) => match pidfd_open(pid) {
            Ok(pidfd) => {
                tracing::info!(core = pid, "monitor started by its core");
                m.core = Some(Core {
                    pid,
                    pidfd,
                    child: None,
                    link,
                    heard: Some(Instant::now()),
                    // Until the core's hello (it tells a new monitor everything again).
                    rules: RULES,
                    exiting: None,
                });
            }
            Err(e) => {
                eprintln!("eterned: monitor: core {pid}: {e}");
                return EXIT_START;
            }
        },
        _ => {
            if let Err(e) = m.start_core() {
                eprintln!("eterned: monitor: cannot start the core: {e}");
                return EXIT_START;
            }
        }
    }
    loop {
        if let Some(code) = m.step(&signals) {
            return code;
        }
    }
}

/// The core's pid named in our environment (a monitor the core started).
fn peer_pid() -> Option<u32> {
    std::env::var(PEER_ENV).ok()?.parse().ok()
}

impl Monitor {
    /// Start a new core, handing it the lease the last one held if it may still use it
    /// ([`rules::next_core`]).
    fn start_core(&mut self) -> std::io::Result<()> {
        let (link, child_end) = Link::pair()?;
        let child = link::spawn_role("core", child_end)?;
        let pid = child.id();
        let pidfd = pidfd_open(pid)?;
        let now_ns = mono_ns();
        let lease = self.armed.and_then(|a| a.lease).filter(|l| {
            rules::next_core(self.deadline(), Some(l.until_ns), now_ns, RULES).hand_lease
        });
        let start = ToCore::Start {
            lease,
            stopped_hard: std::mem::take(&mut self.stopped_hard),
        };
        if let Err(e) = link.send(&start) {
            tracing::error!(error = %e, "cannot hand the new core its start");
        }
        tracing::info!(
            core = pid,
            inherited_lease = lease.is_some(),
            "core started"
        );
        self.core = Some(Core {
            pid,
            pidfd,
            child: Some(child),
            link,
            heard: None,
            rules: RULES,
            exiting: None,
        });
        Ok(())
    }

    /// One wait and what it brought; `Some(code)` when the monitor exits.
    fn step(&mut self, signals: &Signals) -> Option<i32> {
        let mut fds = vec![libc::pollfd {
            fd: signals.read_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(c) = &self.core {
            for fd in [c.pidfd.as_raw_fd(), c.link.raw()] {
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        // SAFETY: poll(2) over pollfds we own.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, poll_ms()) };
        for sig in signals.take() {
            match sig {
                libc::SIGTERM | libc::SIGINT => {
                    tracing::info!("SIGTERM: the core drains");
                    self.terminating = true;
                    match &self.core {
                        Some(c) => signal_core(c, libc::SIGTERM),
                        None => return Some(self.end(0)),
                    }
                }
                libc::SIGHUP => {
                    // The core keeps the event log: it opens it again (log rotation).
                    tracing::info!("SIGHUP: passed to the core");
                    if let Some(c) = &self.core {
                        signal_core(c, libc::SIGHUP);
                    }
                }
                _ => {}
            }
        }
        self.read_link();
        if let Some(pill) = self.pills.as_ref().and_then(PillWatcher::take) {
            return Some(self.obey(pill));
        }
        let gone = self.core.as_ref().is_some_and(|c| pidfd_exited(&c.pidfd));
        if gone {
            if let Some(code) = self.core_gone() {
                return Some(code);
            }
        }
        self.check_time();
        if self.stop_failed && self.on_stop_failure == OnStopFailure::Exit {
            // Never a new core: the node leaves the cluster and stays out until reset.
            if let Some(c) = &self.core {
                signal_core(c, libc::SIGKILL);
            }
            return Some(self.end(EXIT_STOP_FAILED));
        }
        self.pet();
        None
    }

    /// Everything the core sent.
    fn read_link(&mut self) {
        let Some(c) = &mut self.core else { return };
        loop {
            match c.link.recv_now::<ToMonitor>() {
                Received::Message(msg) => {
                    c.heard = Some(Instant::now());
                    match msg {
                        ToMonitor::Hello {
                            pid,
                            holdings,
                            alive_every_ms,
                            on_stop_failure,
                            pill,
                        } => {
                            self.on_stop_failure = on_stop_failure;
                            let same = self.pills.as_ref().map(PillWatcher::watch) == pill.as_ref();
                            if !same {
                                self.pills = pill.and_then(|w| {
                                    PillWatcher::start(w)
                                        .map_err(|e| {
                                            tracing::error!(error = %e,
                                                "cannot start reading the poison pill block")
                                        })
                                        .ok()
                                });
                            }
                            tracing::info!(
                                core = pid,
                                holdings = holdings.len(),
                                alive_every_ms,
                                "core up"
                            );
                            self.holdings = holdings;
                            if alive_every_ms > 0 {
                                let every_ns = alive_every_ms * 1_000_000;
                                c.rules = rules::Rules::new(every_ns, RULES.wedged);
                            }
                        }
                        ToMonitor::Alive => {}
                        ToMonitor::Arm(a) => self.armed = a,
                        ToMonitor::Exiting { code } => c.exiting = Some(code),
                    }
                }
                Received::Malformed(e) => {
                    tracing::error!(error = %e, "malformed message from the core; dropped")
                }
                Received::Nothing | Received::Closed => return,
            }
        }
    }

    /// The core ended: reap it, then start another or end.
    fn core_gone(&mut self) -> Option<i32> {
        let mut c = self.core.take()?;
        let status = c.child.as_mut().and_then(|ch| ch.wait().ok());
        let code = c.exiting.or_else(|| status.and_then(|s| s.code()));
        tracing::warn!(core = c.pid, ?status, said = ?c.exiting, "core ended");
        let on_purpose =
            c.exiting.is_some() || self.terminating || matches!(code, Some(k) if k != EXIT_CRASH);
        if on_purpose {
            return Some(self.end(code.unwrap_or(EXIT_CRASH)));
        }
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= RESTART_LIMIT {
            tracing::error!(
                restarts = self.restarts.len(),
                "the core keeps dying; the monitor gives up"
            );
            return Some(self.end(EXIT_CRASH));
        }
        self.restarts.push_back(now);
        // Dead at or past its stop point: no one else will stop what runs, and a new core
        // handed that lease would be killed for it at once. Stop hard now, with no core up;
        // the next core starts without a lease and is told what was stopped.
        let now_ns = mono_ns();
        let lease_until = self.armed.and_then(|a| a.lease).map(|l| l.until_ns);
        if rules::next_core(self.deadline(), lease_until, now_ns, RULES).stop_hard_first {
            if let Some(a) = self.armed {
                tracing::error!(
                    late_ms = now_ns.saturating_sub(a.stop_at_ns) / 1_000_000,
                    "the core died past its stop point: stopping hard before the next core starts"
                );
                self.stop_hard(a.deadline_ns.saturating_sub(now_ns));
            }
        }
        if let Err(e) = self.start_core() {
            tracing::error!(error = %e, "cannot start a new core");
            return Some(self.end(EXIT_CRASH));
        }
        None
    }

    /// What the core armed, as the rules see it.
    fn deadline(&self) -> Option<Deadline> {
        self.armed.map(|a| Deadline {
            deadline: a.deadline_ns,
            stop_at: a.stop_at_ns,
        })
    }

    /// The deadlines and the core's silence, judged by [`rules::verdict`].
    fn check_time(&mut self) {
        let now_ns = mono_ns();
        let now = Instant::now();
        let seen = match &self.core {
            None => CoreSeen::Absent,
            Some(c) => match c.heard {
                None => CoreSeen::Starting,
                // Its age, on the monitor's monotonic ns scale.
                Some(h) => {
                    CoreSeen::Heard(now_ns.saturating_sub(now.duration_since(h).as_nanos() as u64))
                }
            },
        };
        let core_rules = self.core.as_ref().map_or(RULES, |c| c.rules);
        match (
            rules::verdict(self.deadline(), seen, now_ns, core_rules),
            self.armed,
        ) {
            (Verdict::Wait, _) | (Verdict::StopHard { .. }, None) => {}
            (Verdict::StopHard { core_absent }, Some(a)) => {
                tracing::error!(
                    late_ms = now_ns.saturating_sub(a.stop_at_ns) / 1_000_000,
                    core_absent,
                    "exclusive resources must be down now and the core cannot do it: stopping hard"
                );
                if let Some(c) = &self.core {
                    signal_core(c, libc::SIGKILL);
                }
                self.stop_hard(a.deadline_ns.saturating_sub(now_ns));
            }
            (Verdict::KillWedged, _) => {
                if let Some(c) = &self.core {
                    tracing::error!(core = c.pid, "core silent for {WEDGED:?}: wedged; killed");
                    signal_core(c, libc::SIGKILL);
                }
            }
        }
    }

    /// Every hard stop at once, bounded by what is left until the deadline.
    fn stop_hard(&mut self, left_ns: u64) {
        let bound = Duration::from_nanos(left_ns).max(HARD_STOP_FLOOR);
        let failed = hard_stop::run_all(&self.holdings, bound);
        self.stopped_hard = self
            .holdings
            .iter()
            .map(|h| h.resource().to_string())
            .collect();
        self.armed = None;
        if !failed.is_empty() {
            self.stop_failed = true;
            let watchdog = self.watchdog.is_some();
            match self.on_stop_failure {
                OnStopFailure::Reboot => {
                    tracing::error!(?failed, "hard stop failed: rebooting the machine now");
                    reboot_now();
                }
                OnStopFailure::Exit if watchdog => tracing::error!(
                    ?failed,
                    "hard stop failed: the monitor exits and no longer pets the hardware watchdog; the machine resets"
                ),
                OnStopFailure::Exit => tracing::error!(
                    ?failed,
                    "hard stop failed: the monitor exits (on_stop_failure = \"exit\"); with no hardware watchdog, what would not stop is left running for the operator"
                ),
            }
        }
    }

    /// A poison pill for this node: kill the core, stop every exclusive resource hard,
    /// acknowledge, then reboot or leave (`[fencing] action`). Never a new core.
    fn obey(&mut self, pill: Pill) -> i32 {
        tracing::error!(
            from = pill.from,
            nonce = pill.nonce,
            bound_ms = pill.bound_ms,
            "poison pill: this node was fenced; stopping everything and leaving the cluster"
        );
        if let Some(c) = &self.core {
            signal_core(c, libc::SIGKILL);
        }
        let bound = Duration::from_millis(u64::from(pill.bound_ms) / 2).min(PILL_STOP_MAX);
        // A failed stop with on_stop_failure = "reboot" reboots here, before any
        // acknowledgement: the fencer then counts on the bound.
        self.stop_hard(bound.as_nanos() as u64);
        let stopped = !self.stop_failed;
        let Some(w) = self.pills.take() else {
            return self.end(EXIT_POISONED);
        };
        match w.acknowledge(&pill, stopped) {
            Ok(()) => tracing::warn!(nonce = pill.nonce, stopped, "poison pill acknowledged"),
            Err(e) => tracing::error!(error = %e,
                "cannot acknowledge the poison pill; the fencer waits for its bound"),
        }
        if w.watch().action == FenceActionConfig::Reboot {
            tracing::error!("poison pill: rebooting the machine");
            reboot_now();
        }
        self.end(EXIT_POISONED)
    }

    /// Pet the hardware watchdog unless a hard stop failed.
    fn pet(&mut self) {
        if self.stop_failed {
            return;
        }
        if let Some(f) = &mut self.watchdog {
            let _ = f.write_all(b"\0").and_then(|()| f.flush());
        }
    }

    /// The monitor ends with `code`: anything still armed is stopped hard first.
    fn end(&mut self, code: i32) -> i32 {
        if let Some(a) = self.armed {
            tracing::warn!("the core ended with exclusive resources possibly up: stopping hard");
            self.stop_hard(a.deadline_ns.saturating_sub(mono_ns()));
        }
        match &mut self.watchdog {
            // The magic close: a clean end disarms the device. After a failed stop the end is
            // not clean: the device resets the machine.
            Some(f) if !self.stop_failed => {
                let _ = f.write_all(b"V").and_then(|()| f.flush());
            }
            _ => {}
        }
        if self.stop_failed && self.on_stop_failure == OnStopFailure::Exit {
            return EXIT_STOP_FAILED;
        }
        code
    }
}

/// Reboots the machine at once, the way a hardware watchdog would: no sync (a device that
/// would not let a resource stop can hang a sync too), no orderly shutdown. In a PID namespace
/// of its own the kernel ends that namespace instead (every process in it dies), which is how
/// the tests see it work. If the kernel refuses (no `CAP_SYS_BOOT`), the process ends with
/// [`EXIT_STOP_FAILED`] rather than go on.
pub fn reboot_now() -> ! {
    // SAFETY: reboot(2) with a valid command; it returns only on failure.
    let r = unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    let e = std::io::Error::last_os_error();
    tracing::error!(result = r, error = %e, "reboot refused; the monitor exits instead");
    std::process::exit(EXIT_STOP_FAILED)
}

/// How long one poll may sleep.
fn poll_ms() -> i32 {
    TICK.as_millis() as i32
}

/// Signal the core through its pidfd (never a recycled pid).
fn signal_core(c: &Core, sig: libc::c_int) {
    if let Err(e) = pidfd_send_signal(&c.pidfd, sig) {
        tracing::warn!(core = c.pid, sig, error = %e, "cannot signal the core");
    }
}

// ---------------------------------------------------------------------------------------------
// Signals, through a self-pipe: the handler writes the signal number, the loop reads it.

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; one byte from the stack.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use std::os::fd::FromRawFd;
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors are new and ours.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction with our handler, no flags but SA_RESTART.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(Signals {
            read,
            _write: write,
        })
    }

    fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The signals that arrived since the last call.
    fn take(&self) -> Vec<libc::c_int> {
        let mut buf = [0u8; 64];
        // SAFETY: read(2) into a buffer we own, non-blocking.
        let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return Vec::new();
        }
        buf[..n as usize]
            .iter()
            .map(|&b| libc::c_int::from(b))
            .collect()
    }
}
