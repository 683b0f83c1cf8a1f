//! The core's side of its monitor process (see [`crate::monitor`]): what the node actor tells
//! it, and a thread that starts a new monitor when the old one dies.
//!
//! The core tells the monitor, before it acts on it, whatever would let the monitor keep the
//! node's promise alone: how to stop each exclusive resource ([`ToMonitor::Hello`], once), by
//! when they must be down and which lease the core holds at which applied index
//! ([`ToMonitor::Arm`], whenever one of those changes, before the messages of that step are
//! sent), and that it is alive (every [`alive_every`], from the actor thread, so a wedged actor
//! thread falls silent). A monitor that dies is replaced at once by the watcher thread, which
//! tells the new one all of it again; nothing in the core changes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::monitor::link::{
    self, Armed, Link, OnStopFailure, PillWatch, Received, ToCore, ToMonitor, PEER_ENV,
};
use crate::resources::pidfd::{pidfd_exited, pidfd_open};
use crate::resources::HardStop;

/// How often the actor thread tells the monitor it is alive, for the cluster's stop budget
/// ([`crate::policy::monitor::alive_every_us`]: the monitor counts a core silent after a few
/// missed messages, and must know that before the stop point).
pub fn alive_every(stop_budget_ms: u32) -> Duration {
    Duration::from_micros(crate::policy::monitor::alive_every_us(
        u64::from(stop_budget_ms) * 1000,
    ))
}
/// How long a new core waits for its monitor's start message.
const START_WAIT_MS: i32 = 5_000;

struct Inner {
    link: Link,
    hello: ToMonitor,
    armed: Option<Armed>,
}

/// The core's handle on its monitor.
#[derive(Clone)]
pub struct Monitor {
    inner: Arc<Mutex<Inner>>,
}

/// What the monitor handed this core at its start.
#[derive(Debug, Default)]
pub struct Handover {
    /// The lease the previous core held, if any.
    pub lease: Option<link::Inherited>,
    /// What the monitor stopped hard since the previous core.
    pub stopped_hard: Vec<String>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Monitor")
    }
}

impl Monitor {
    /// The link this core was started with, and what its monitor handed it. An error if the
    /// core was started without a monitor: only the monitor starts cores.
    pub fn connect() -> Result<(Link, Handover), String> {
        let link = Link::inherited().ok_or(
            "the core was started without its monitor; start eterned itself, which starts both",
        )?;
        match link.recv::<ToCore>(START_WAIT_MS) {
            Received::Message(ToCore::Start {
                lease,
                stopped_hard,
            }) => Ok((
                link,
                Handover {
                    lease,
                    stopped_hard,
                },
            )),
            Received::Nothing => Err("the monitor did not hand over in time".into()),
            Received::Closed => Err("the monitor went away before handing over".into()),
            Received::Malformed(e) => Err(format!("the monitor's handover does not decode: {e}")),
        }
    }

    /// Say hello on `link` with `holdings`, and start the thread that replaces a monitor
    /// that dies.
    pub fn start(
        link: Link,
        holdings: Vec<HardStop>,
        alive_every: Duration,
        on_stop_failure: OnStopFailure,
        pill: Option<PillWatch>,
    ) -> Monitor {
        let hello = ToMonitor::Hello {
            pid: std::process::id(),
            holdings,
            alive_every_ms: alive_every.as_millis() as u64,
            on_stop_failure,
            pill,
        };
        if let Err(e) = link.send(&hello) {
            tracing::error!(error = %e, "cannot tell the monitor hello");
        }
        let m = Monitor {
            inner: Arc::new(Mutex::new(Inner {
                link,
                hello,
                armed: None,
            })),
        };
        // The monitor that started us is our parent.
        let parent = std::env::var(PEER_ENV)
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|&p| p == std::os::unix::process::parent_id());
        let watched = parent.and_then(|p| pidfd_open(p).ok());
        let w = m.clone();
        let spawned = std::thread::Builder::new()
            .name("monitor-watch".into())
            .spawn(move || w.watch(watched));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the thread that watches the monitor");
        }
        m
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// The actor thread stepped.
    pub fn alive(&self) {
        self.with(|i| {
            let _ = i.link.send(&ToMonitor::Alive);
        });
    }

    /// What must be down by when, and the lease; sent only when it changed.
    pub fn arm(&self, armed: Option<Armed>) {
        self.with(|i| {
            if i.armed == armed {
                return;
            }
            i.armed = armed;
            if let Err(e) = i.link.send(&ToMonitor::Arm(armed)) {
                tracing::error!(error = %e, "cannot tell the monitor the deadline");
            }
        });
    }

    /// The core exits on purpose with `code`.
    pub fn exiting(&self, code: i32) {
        self.with(|i| {
            let _ = i.link.send(&ToMonitor::Exiting { code });
        });
    }

    /// Wait for the monitor to die and start another, forever.
    fn watch(&self, mut watched: Option<OwnedFd>) {
        let mut child: Option<Child> = None;
        loop {
            let gone = match &watched {
                Some(fd) => {
                    let mut pfd = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, 1_000) };
                    pidfd_exited(fd)
                }
                None => true,
            };
            if !gone {
                continue;
            }
            if let Some(mut c) = child.take() {
                let _ = c.wait();
            }
            tracing::error!("the monitor process is gone: starting a new one");
            match self.respawn() {
                Ok((c, fd)) => {
                    child = Some(c);
                    watched = Some(fd);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a new monitor; trying again in 1 s");
                    watched = None;
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Start a monitor for this core and tell it everything.
    fn respawn(&self) -> std::io::Result<(Child, OwnedFd)> {
        let (link, child_end) = Link::pair()?;
        let child = link::spawn_role("monitor", child_end)?;
        let fd = pidfd_open(child.id())?;
        self.with(|i| {
            let _ = link.send(&i.hello);
            let _ = link.send(&ToMonitor::Arm(i.armed));
            i.link = link;
        });
        tracing::warn!(monitor = child.id(), "new monitor started");
        Ok((child, fd))
    }
}
