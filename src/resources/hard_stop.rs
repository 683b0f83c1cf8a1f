//! Stopping a resource without its agent: what the monitor process does when the core cannot
//! stop the node's exclusive resources in time (design.md §5.4, docs/runtime.md "The two
//! processes").
//!
//! Each agent that can hold something exclusive says, once at start, how to take it down from
//! outside ([`super::Agent::hard_stop`]): a [`HardStop`] is plain data (it crosses the link
//! to the monitor) and every step is idempotent, so the monitor runs the whole list whether or
//! not a resource is active right now, and running it twice is harmless.
//!
//! | resource | hard stop |
//! |---|---|
//! | `application` | SIGKILL of the process group its pidfile names (checked against the process's start time) |
//! | `ip` | the address removed through netlink from whichever of its interfaces holds it |
//! | `filesystem` | SIGKILL of every process that holds the filesystem, then a lazy unmount |
//! | `ocf` | the agent's `stop`, bounded by a short timeout, then SIGKILL of its process group |
//! | `service` | LSB: the init script's `stop`, bounded, then SIGKILL of its process group; systemd: `systemctl kill --signal=SIGKILL UNIT` |
//! | `share` | `net conf delshare`, then `smbcontrol smbd close-share` (its clients cut off), in one bounded `/bin/sh` run |
//! | `disk_lock` | nothing: the lock is renewed by the core; once nothing renews it, it is abandoned and lapses |

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{filesystem, ip, pidfile, process};

/// How to take one resource down without its agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum HardStop {
    /// SIGKILL the process group of the process `pidfile` names.
    KillGroup {
        /// The resource's name (for logs).
        resource: String,
        /// The pidfile (pid and start time).
        pidfile: PathBuf,
    },
    /// Remove `addr/prefix_len` from whichever of `nics` holds it.
    DelAddr {
        /// The resource's name.
        resource: String,
        /// The floating address.
        addr: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
        /// The interfaces it may be on.
        nics: Vec<String>,
    },
    /// Kill the holders of the filesystem mounted at `directory`, then detach it.
    Unmount {
        /// The resource's name.
        resource: String,
        /// The mount point.
        directory: PathBuf,
    },
    /// Run `program` with `args` and exactly `env`, in a session of its own, for at most
    /// `timeout_ms` (or less, if the deadline is nearer); then SIGKILL its process group.
    Command {
        /// The resource's name.
        resource: String,
        /// The program (an OCF agent).
        program: PathBuf,
        /// Its arguments (`stop`).
        args: Vec<String>,
        /// Its whole environment.
        env: Vec<(String, String)>,
        /// The bound.
        timeout_ms: u64,
    },
}

impl HardStop {
    /// The resource this stops.
    pub fn resource(&self) -> &str {
        match self {
            HardStop::KillGroup { resource, .. }
            | HardStop::DelAddr { resource, .. }
            | HardStop::Unmount { resource, .. }
            | HardStop::Command { resource, .. } => resource,
        }
    }

    /// Take it down, within `bound` where it runs a command. Blocking; `Ok` also when there
    /// was nothing to take down.
    pub fn run(&self, bound: Duration) -> Result<(), String> {
        match self {
            HardStop::KillGroup { pidfile, .. } => {
                kill_recorded(pidfile);
                Ok(())
            }
            HardStop::DelAddr {
                addr,
                prefix_len,
                nics,
                ..
            } => ip::remove_everywhere(*addr, *prefix_len, nics),
            HardStop::Unmount { directory, .. } => filesystem::force_unmount(directory),
            HardStop::Command {
                program,
                args,
                env,
                timeout_ms,
                ..
            } => run_bounded(
                program,
                args,
                env,
                bound.min(Duration::from_millis(*timeout_ms)),
            ),
        }
    }
}

/// Run every hard stop at once, each on a thread of its own, and wait for all of them up to
/// `bound`. Returns the resources that did not stop (failed, or still running at the bound).
pub fn run_all(stops: &[HardStop], bound: Duration) -> Vec<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut waiting: Vec<String> = Vec::new();
    for s in stops {
        let s = s.clone();
        let tx = tx.clone();
        let name = s.resource().to_string();
        let spawned = std::thread::Builder::new()
            .name("hard-stop".into())
            .spawn(move || {
                let r = s.run(bound);
                let _ = tx.send((s.resource().to_string(), r));
            });
        if spawned.is_ok() {
            waiting.push(name);
        } else {
            tracing::error!(resource = %name, "cannot start a thread to stop it hard");
        }
    }
    drop(tx);
    let mut failed = Vec::new();
    let end = Instant::now() + bound;
    while !waiting.is_empty() {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((name, r)) => {
                waiting.retain(|w| *w != name);
                match r {
                    Ok(()) => tracing::warn!(resource = %name, "stopped hard"),
                    Err(e) => {
                        tracing::error!(resource = %name, error = %e, "hard stop failed");
                        failed.push(name);
                    }
                }
            }
            Err(_) => break,
        }
    }
    for w in waiting {
        tracing::error!(resource = %w, "hard stop did not finish in time");
        failed.push(w);
    }
    failed
}

/// SIGKILL the process group of the process a pidfile names, if that process still is the one
/// recorded (same start time).
pub fn kill_recorded(path: &Path) {
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
}

/// Run a command with exactly `env` in a session of its own for at most `bound`, then kill
/// its process group whatever it did.
fn run_bounded(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    bound: Duration,
) -> Result<(), String> {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // As the OCF agent runs it: a session of its own, signals at their defaults, nothing of
    // ours inherited.
    process::in_own_session(
        &mut cmd,
        process::SessionSetup {
            reset_signals: true,
            cloexec_from_3: true,
            ..process::SessionSetup::default()
        },
    );
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        // An agent (or init script) that is not installed on this node: nothing of it can
        // run here, so there is nothing to take down. Failing here would make the monitor
        // act on a stop failure (exit, reboot) over a resource this node never ran.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(program = %program.display(), "hard stop: the agent is not installed here, so nothing of it runs");
            return Ok(());
        }
        Err(e) => return Err(format!("{}: {e}", program.display())),
    };
    let pgid = child.id();
    let end = Instant::now() + bound;
    let verdict = loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => break Ok(()),
            Ok(Some(st)) => break Err(format!("{} stop: {st}", program.display())),
            Ok(None) if Instant::now() >= end => {
                break Err(format!(
                    "{} stop did not finish in {} ms",
                    program.display(),
                    bound.as_millis()
                ))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(e.to_string()),
        }
    };
    process::kill_group(pgid, libc::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(program: &str) -> HardStop {
        HardStop::Command {
            resource: "r".into(),
            program: PathBuf::from(program),
            args: vec!["stop".into()],
            env: Vec::new(),
            timeout_ms: 5000,
        }
    }

    /// An agent missing on this node has nothing running to stop: the hard stop succeeds
    /// (it once failed, and the monitor exited over a resource the node never ran). A stop
    /// that runs and fails is still a failure.
    #[test]
    fn a_missing_agent_is_stopped_and_a_failing_one_is_not() {
        let missing = command("/nonexistent/resource.d/heartbeat/NoSuchAgent");
        assert_eq!(missing.run(Duration::from_secs(5)), Ok(()));
        let failing = command("/bin/false");
        assert!(failing.run(Duration::from_secs(5)).is_err());
        assert_eq!(command("/bin/true").run(Duration::from_secs(5)), Ok(()));
    }
}
