//! The watchdog behind `Effect::Watchdog`: the node core arms it at its lease's end while
//! exclusive resources may be active here, and disarms it once they are stopped.
//!
//! A thread of its own (so a wedged actor thread cannot stop it) checks the deadline every
//! [`TICK`]:
//!
//! - **With a hardware watchdog** (`--watchdog-device /dev/watchdog`): the thread pets the
//!   device while the deadline is not passed (or none is armed). Past the deadline it stops
//!   petting, so the device reboots the machine after its own timeout, and meanwhile does what
//!   the software watchdog does.
//! - **Without one** (this is what happens on a machine without `/dev/watchdog`, or when the
//!   flag is not given): past the deadline the daemon stops hard what may still be active —
//!   SIGKILL to the process group of every exclusive resource whose pidfile it knows (the
//!   `application` agent's pidfiles, checked against the process start time) — and exits with
//!   [`EXIT_WATCHDOG`], so this node holds nothing and its daemon restarts clean. This covers
//!   a wedged daemon or a stop that hangs, but not a hung kernel: only a hardware watchdog (or
//!   a fencing device) covers that.

use crate::resources::{pidfile, process};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the thread looks at the deadline (and pets a hardware watchdog).
pub const TICK: Duration = Duration::from_millis(5);
pub use super::shutdown::EXIT_WATCHDOG;

#[derive(Debug, Default)]
struct State {
    deadline: Option<Instant>,
}

/// The watchdog handle the NodeActor arms and disarms.
#[derive(Clone, Debug)]
pub struct Watchdog {
    state: Arc<Mutex<State>>,
}

impl Watchdog {
    /// Starts the watchdog thread. `pidfiles` are the pidfiles of the exclusive resources
    /// this node may run (killed hard when the deadline passes); `device` a hardware
    /// watchdog to pet, if any.
    pub fn start(pidfiles: Vec<PathBuf>, device: Option<PathBuf>) -> std::io::Result<Watchdog> {
        let mut hw = match &device {
            Some(path) => {
                let f = File::options().write(true).open(path)?;
                tracing::info!(device = %path.display(), "hardware watchdog opened");
                Some(f)
            }
            None => {
                tracing::warn!("no hardware watchdog: a deadline that passes while exclusive resources may be active kills them and exits the daemon (a hung kernel is not covered)");
                None
            }
        };
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                let deadline = match shared.lock() {
                    Ok(s) => s.deadline,
                    Err(p) => p.into_inner().deadline,
                };
                let passed = deadline.is_some_and(|d| Instant::now() >= d);
                if !passed {
                    if let Some(f) = &mut hw {
                        let _ = f.write_all(b"\0").and_then(|()| f.flush());
                    }
                    continue;
                }
                tracing::error!(
                    late_ms = deadline.map_or(0, |d| Instant::now().duration_since(d).as_millis() as u64),
                    "watchdog deadline passed while exclusive resources may be active: killing them and exiting"
                );
                for p in &pidfiles {
                    kill_pidfile(p);
                }
                std::process::exit(EXIT_WATCHDOG);
            })?;
        Ok(Watchdog { state })
    }

    /// Arms the watchdog at `deadline`, or disarms it.
    pub fn set(&self, deadline: Option<Instant>) {
        match self.state.lock() {
            Ok(mut s) => s.deadline = deadline,
            Err(p) => p.into_inner().deadline = deadline,
        }
    }
}

/// SIGKILLs the process group of the pid in `path` ("<pid> <start time>"), if that process
/// still has the recorded start time (a recycled pid is left alone).
pub fn kill_pidfile(path: &std::path::Path) {
    let Some((pid, start)) = pidfile::read(path) else {
        return;
    };
    if pid <= 1 || pidfile::start_time(pid).ok() != Some(start) {
        return;
    }
    // The agent starts each resource in a session of its own, so pgid = pid.
    process::kill_group(pid, libc::SIGKILL);
    // SAFETY: kill(2) on a pid whose start time we just checked; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    tracing::error!(pidfile = %path.display(), pid, "watchdog: killed");
}
